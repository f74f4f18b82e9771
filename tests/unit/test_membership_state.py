"""The membership state machine (state.py) driven directly, in virtual time."""

from __future__ import annotations

import asyncio
import random

import msgpack
import pytest

from taskmaster.membership import messages
from taskmaster.membership.awareness import Awareness
from taskmaster.membership.broadcast import BroadcastQueue
from taskmaster.membership.config import MembershipConfig
from taskmaster.membership.state import MemberTable
from taskmaster.membership.stats import Stats
from taskmaster.transport.virtual_time import VirtualTimeLoop

ME = ("10.0.0.1", 7946)


class Harness:
    def __init__(self, others: int, config: MembershipConfig | None = None):
        self.loop = VirtualTimeLoop()
        self.config = config or MembershipConfig.lan()
        self.changes = []
        self.awareness = Awareness(self.config.awareness_max_multiplier)
        self.stats = Stats()
        self.table = MemberTable(self.config, self.loop, random.Random(1), "me", None, self.awareness,
                                 self.stats, self.changes.append)
        self.queue = self.table.broadcasts = BroadcastQueue(self.config.retransmit_mult, self.table.num_nodes)
        self.table.alive(1, "me", ME, {"role": "test"}, bootstrap=True)
        self.table.local = self.table.by_name["me"]
        for i in range(others):
            self.table.alive(1, f"p{i}", (f"10.0.1.{i}", 7946), {"i": i})
        self.drain()
        self.changes.clear()

    def advance(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def drain(self) -> list[list]:
        """Everything queued for gossip, decoded (and forgotten)."""
        out = [msgpack.unpackb(b) for b in self.queue.take(1 << 20)]
        self.queue.reset()
        return out

    def state(self, name: str) -> tuple[str, int]:
        node = self.table.by_name[name]
        return node.state, node.incarnation


@pytest.fixture
def make():
    """Harness factory; closes the loops afterwards."""
    made: list[Harness] = []

    def factory(others: int, config: MembershipConfig | None = None) -> Harness:
        made.append(Harness(others, config))
        return made[-1]
    yield factory
    for h in made:
        h.loop.close()


def test_alive_adds_a_member_once_and_ignores_stale_news(make):
    h = make(0)
    h.table.alive(3, "p0", ("10.0.1.1", 7946), {"a": 1})
    assert h.state("p0") == ("alive", 3)
    assert [(m.name, m.state, m.incarnation, m.meta) for m in h.changes] == [("p0", "alive", 3, {"a": 1})]
    assert h.drain() == [[messages.ALIVE, 3, "p0", "10.0.1.1", 7946, {"a": 1}]]
    for incarnation in (3, 2):  # same or older: nothing changes, nothing is re-gossiped
        h.table.alive(incarnation, "p0", ("10.0.1.1", 7946), {"a": 2})
    assert h.state("p0") == ("alive", 3) and h.table.by_name["p0"].meta == {"a": 1}
    assert h.drain() == [] and len(h.changes) == 1


def test_newer_alive_updates_meta_and_reports_the_change(make):
    h = make(1)
    h.table.alive(2, "p0", ("10.0.1.0", 7946), {"i": 99})
    assert h.state("p0") == ("alive", 2)
    assert [m.meta for m in h.changes] == [{"i": 99}]


def test_suspect_is_refuted_only_by_a_higher_incarnation(make):
    h = make(9)
    h.table.suspect(1, "p0", "p1")
    assert h.state("p0") == ("suspect", 1)
    assert h.drain() == [[messages.SUSPECT, 1, "p0", "p1"]]
    h.table.alive(1, "p0", ("10.0.1.0", 7946), {"i": 0})
    assert h.state("p0") == ("suspect", 1)
    h.table.alive(2, "p0", ("10.0.1.0", 7946), {"i": 0})
    assert h.state("p0") == ("alive", 2)
    h.advance(100)  # the suspicion timer was cancelled
    assert h.state("p0") == ("alive", 2)
    assert [m.state for m in h.changes] == ["suspect", "alive"]


def test_lone_accusation_waits_the_max_timeout(make):
    h = make(9)  # N=10: min 4 s, max 24 s, k=2
    h.table.suspect(1, "p0", "p1")
    h.advance(23.9)
    assert h.state("p0") == ("suspect", 1)
    h.advance(0.2)
    assert h.state("p0") == ("dead", 1)
    assert h.drain()[-1] == [messages.DEAD, 1, "p0", "me"]


def test_independent_confirmations_shrink_the_timeout_to_the_min(make):
    h = make(9)
    h.table.suspect(1, "p0", "p1")
    timer = h.table.timers["p0"]
    h.advance(1)
    assert timer.confirm("p1") is False  # the first accuser is not a confirmation
    h.table.suspect(1, "p0", "p2")
    h.drain()
    h.table.suspect(1, "p0", "p2")  # the same accuser twice counts once and is not re-gossiped
    assert timer.n == 1 and h.drain() == []
    h.advance(1)
    h.table.suspect(1, "p0", "p3")
    assert timer.n == 2
    h.advance(1.9)  # 3.9 s after the first accusation
    assert h.state("p0") == ("suspect", 1)
    h.advance(0.2)
    assert h.state("p0") == ("dead", 1)


def test_small_cluster_expects_no_confirmations_and_uses_the_min(make):
    h = make(2)  # N=3: fewer other members than k=2
    h.table.suspect(1, "p0", "p1")
    h.advance(3.9)
    assert h.state("p0") == ("suspect", 1)
    h.advance(0.2)
    assert h.state("p0") == ("dead", 1)


def test_dead_ignores_older_incarnations_and_a_self_announced_death_is_a_leave(make):
    h = make(2)
    h.table.alive(5, "p0", ("10.0.1.0", 7946), {"i": 0})
    h.table.dead(4, "p0", "p1")
    assert h.state("p0") == ("alive", 5)
    h.table.dead(5, "p0", "p0")
    assert h.state("p0") == ("left", 5)
    h.table.dead(5, "p1", "p0")
    assert h.state("p1") == ("dead", 5)
    h.table.dead(6, "p1", "p2")  # already dead: no new change
    assert [m.state for m in h.changes] == ["left", "dead"]  # an incarnation bump alone is no change


def test_a_dead_member_comes_back_with_a_higher_incarnation(make):
    h = make(2)
    h.table.dead(1, "p0", "p1")
    h.table.alive(1, "p0", ("10.0.1.0", 7946), {"i": 0})
    assert h.state("p0") == ("dead", 1)
    h.table.alive(2, "p0", ("10.0.1.0", 7946), {"i": 0})
    assert h.state("p0") == ("alive", 2)


def test_suspected_self_refutes_with_a_higher_incarnation_and_loses_health(make):
    h = make(3)
    h.table.suspect(7, "me", "p0")
    assert h.state("me") == ("alive", 8)
    assert h.awareness.score == 1 and h.stats.suspicions_refuted == 1
    assert h.drain() == [[messages.ALIVE, 8, "me", ME[0], ME[1], {"role": "test"}]]
    h.table.dead(8, "me", "p0")
    assert h.state("me") == ("alive", 9) and h.awareness.score == 2
    assert h.changes == []  # we never stopped being alive


def test_leaving_self_announces_left_and_does_not_refute(make):
    h = make(3)
    h.table.leaving = True
    h.table.dead(1, "me", "me")
    assert h.state("me") == ("left", 1)
    assert h.drain() == [[messages.DEAD, 1, "me", "me"]]
    h.table.suspect(1, "me", "p0")
    h.table.alive(5, "me", ME, {"role": "test"})
    assert h.state("me") == ("left", 1) and h.stats.suspicions_refuted == 0


def test_someone_claiming_our_name_with_other_meta_is_refuted(make):
    h = make(1)
    h.table.alive(1, "me", ME, {"role": "test"})  # an echo of our own alive: nothing to do
    assert h.state("me") == ("alive", 1) and h.drain() == []
    h.table.alive(1, "me", ME, {"role": "impostor"})
    assert h.state("me") == ("alive", 2)
    assert h.table.by_name["me"].meta == {"role": "test"}


def test_conflicting_address_is_ignored_unless_the_member_left(make):
    h = make(2)
    h.table.alive(9, "p0", ("10.9.9.9", 7946), {})
    assert h.table.by_name["p0"].addr == ("10.0.1.0", 7946) and h.state("p0") == ("alive", 1)
    h.table.dead(3, "p1", "p1")
    h.table.alive(1, "p1", ("10.9.9.9", 7946), {"new": True})  # a restart elsewhere, lower incarnation
    assert h.state("p1") == ("alive", 1) and h.table.by_name["p1"].addr == ("10.9.9.9", 7946)


def test_merge_treats_a_peers_dead_as_suspect_and_its_left_as_left(make):
    h = make(3)
    names = ["p0", "p1", "p2", "new"]
    h.table.merge([names, ["10.0.1.0", "10.0.1.1", "10.0.1.2", "10.0.2.0"], [7946] * 4,
                   [{"i": 0}, {"i": 1}, {"i": 2}, {}], [1, 1, 1, 4], [2, 3, 0, 0]])
    assert h.state("p0") == ("suspect", 1)
    assert h.state("p1") == ("left", 1)
    assert h.state("p2") == ("alive", 1)
    assert h.state("new") == ("alive", 4)


def test_superseded_news_about_a_member_is_replaced_in_the_queue(make):
    h = make(9)
    h.table.suspect(1, "p0", "p1")
    h.table.dead(1, "p0", "p1")
    assert h.drain() == [[messages.DEAD, 1, "p0", "p1"]]


def test_dead_members_leave_the_probe_list_but_stay_listed_until_their_timeout(make):
    config = MembershipConfig.lan(gossip_to_the_dead_time=5.0, reconnect_timeout=60.0)
    h = make(3, config)
    h.table.dead(1, "p0", "p1")
    h.table.dead(1, "p1", "p1")
    h.advance(6)
    for _ in range(2 * len(h.table.nodes)):  # wrap the round robin: the reshuffle forgets them
        h.table.next_probe_target()
    assert sorted(h.table.by_name) == ["me", "p2"] and h.table.num_nodes() == 2
    assert {m.name: m.state for m in h.table.members()} == {"me": "alive", "p2": "alive", "p0": "dead",
                                                           "p1": "left"}
    h.advance(60)
    for _ in range(2 * len(h.table.nodes)):
        h.table.next_probe_target()
    assert "p0" not in {m.name for m in h.table.members()}  # dead past reconnect_timeout
    assert "p1" in {m.name for m in h.table.members()}  # left: kept for tombstone_timeout (24 h)
    h.table.alive(2, "p0", ("10.0.1.0", 7946), {})  # forgotten: comes back as a new member
    assert h.state("p0") == ("alive", 2)


def test_probe_targets_are_round_robin_over_live_others(make):
    h = make(5)
    h.table.dead(1, "p4", "p0")
    seen = [h.table.next_probe_target().name for _ in range(8)]
    assert "me" not in seen and "p4" not in seen
    assert sorted(seen[:4]) == ["p0", "p1", "p2", "p3"] and sorted(seen[4:]) == ["p0", "p1", "p2", "p3"]


@pytest.mark.parametrize("others", [0, 1])
def test_no_probe_target_when_alone(make, others):
    h = make(others)
    if others:
        h.table.dead(1, "p0", "p0")
    assert h.table.next_probe_target() is None
