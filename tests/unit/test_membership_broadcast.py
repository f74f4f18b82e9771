"""The transmit-limited broadcast queue and the timer formulas, against memberlist's numbers."""

from __future__ import annotations

import pytest

from taskmaster.membership.broadcast import BroadcastQueue, retransmit_limit
from taskmaster.membership.pushpull import push_pull_scale
from taskmaster.membership.suspicion import remaining, suspicion_timeouts


def test_least_sent_first_then_newest_first():
    q = BroadcastQueue(retransmit_mult=3, num_nodes=lambda: 5)  # limit 3
    for name in "abc":
        q.queue(name, name.encode() * 10)
    assert q.take(25) == [b"c" * 10, b"b" * 10]  # newest first, as many as fit
    assert q.take(25) == [b"a" * 10, b"c" * 10]  # "a" has been sent least
    q.queue("d", b"d" * 10)
    assert q.take(10) == [b"d" * 10]


def test_each_update_is_sent_at_most_the_retransmit_limit_then_notifies():
    done = []
    q = BroadcastQueue(retransmit_mult=2, num_nodes=lambda: 20)  # 2 * ceil(log10(21)) = 4
    q.queue("a", b"x" * 10, notify=lambda: done.append("a"))
    sends = sum(len(q.take(100)) for _ in range(10))
    assert sends == 4 and len(q) == 0 and done == ["a"]


def test_a_newer_update_replaces_the_queued_one_and_notifies_it():
    done = []
    q = BroadcastQueue(retransmit_mult=4, num_nodes=lambda: 5)
    q.queue("a", b"old", notify=lambda: done.append("old"))
    q.queue("a", b"new")
    assert done == ["old"] and len(q) == 1
    assert q.take(100) == [b"new"]


def test_updates_too_big_for_the_room_left_wait_for_a_later_packet():
    q = BroadcastQueue(retransmit_mult=4, num_nodes=lambda: 5)
    q.queue("big", b"B" * 100)
    q.queue("small", b"s" * 10)
    assert q.take(50) == [b"s" * 10]
    assert q.take(200) == [b"B" * 100, b"s" * 10]


def test_ready_callback_fires_when_the_queue_stops_being_empty():
    ready = []
    q = BroadcastQueue(retransmit_mult=1, num_nodes=lambda: 1, on_ready=lambda: ready.append(1))
    q.queue("a", b"x" * 10)
    q.queue("b", b"y" * 10)
    assert ready == [1]
    q.take(100)
    assert len(q) == 0
    q.queue("c", b"z" * 10)
    assert ready == [1, 1]


@pytest.mark.parametrize(("n", "lan", "local"), [(1, 4, 2), (3, 4, 2), (9, 4, 2), (10, 8, 4), (30, 8, 4),
                                                  (100, 12, 6), (1000, 16, 8), (10_000, 20, 10)])
def test_retransmit_limit_matches_memberlist(n, lan, local):
    assert retransmit_limit(4, n) == lan and retransmit_limit(2, n) == local


@pytest.mark.parametrize(("n", "low", "high"), [(3, 4, 24), (5, 4, 24), (10, 4, 24), (30, 5.908, 35.45),
                                                (100, 8, 48), (1000, 12, 72), (10_000, 16, 96)])
def test_suspicion_timeouts_match_the_anchor_table(n, low, high):
    assert suspicion_timeouts(4, 6, n, 1.0) == pytest.approx((low, high), abs=0.01)


def test_remaining_suspicion_time_falls_from_max_to_min_with_confirmations():
    assert remaining(0, 2, 0.0, 4.0, 24.0) == 24.0
    assert remaining(1, 2, 0.0, 4.0, 24.0) == pytest.approx(24 - 20 * 0.6309, abs=0.001)
    assert remaining(2, 2, 1.5, 4.0, 24.0) == 2.5  # min, minus the time already waited
    assert remaining(2, 2, 10.0, 4.0, 24.0) < 0  # overdue: fire now


@pytest.mark.parametrize(("n", "seconds"), [(1, 30), (32, 30), (33, 60), (64, 60), (100, 90), (1000, 180),
                                            (10_000, 300)])
def test_push_pull_interval_scales_like_memberlist(n, seconds):
    assert push_pull_scale(30.0, n) == seconds
