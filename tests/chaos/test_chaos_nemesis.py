"""The nemesis schedule: a pure function of the seed, within the fault window, and within its rules."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos import nemesis
from chaos.nemesis import DOWN_KINDS, PROCESS_KINDS, fault_window, reachable, schedule

ALL = nemesis.CLASSES


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    a = schedule(42, 5, 60, ALL)
    assert a == schedule(42, 5, 60, list(reversed(ALL)))  # the order classes are named in does not matter
    assert a != schedule(43, 5, 60, ALL)
    assert [f.to_json() for f in a] == [f.to_json() for f in schedule(42, 5, 60, ALL)]
    assert [nemesis.Fault.from_json(json.loads(json.dumps(f.to_json()))) for f in a] == a


def test_every_class_asked_for_appears_and_only_those():
    kinds = {f.cls for f in schedule(3, 5, 120, ("partition", "pause"))}
    assert kinds == {"partition", "pause"}
    assert schedule(3, 5, 60, ()) == []
    with pytest.raises(ValueError, match="unknown nemesis bogus"):
        schedule(3, 5, 60, ("bogus",))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31), nodes=st.integers(3, 8), seconds=st.sampled_from([20, 60, 120]))
def test_schedules_keep_their_rules(seed, nodes, seconds):
    faults = schedule(seed, nodes, seconds, ALL)
    first, last = fault_window(seconds)
    for f in faults:
        assert first <= f.start < f.end <= last, "every fault is healed before the quiet tail"
    for f, g in itertools.combinations(faults, 2):
        if f.overlaps(g.start, g.end):
            assert f.cls != g.cls or set(f.nodes).isdisjoint(g.nodes), "a class never overlaps itself on a node"
            if f.cls == "partition":
                assert g.cls != "partition", "one partition at a time"
            if f.kind in PROCESS_KINDS and g.kind in PROCESS_KINDS:
                assert set(f.nodes).isdisjoint(g.nodes), "one process fault per node at a time"
    for f in faults:  # at every fault start, a majority of nodes is up
        down = {n for g in faults if g.kind in DOWN_KINDS and g.start <= f.start < g.end for n in g.nodes}
        assert len(down) <= (nodes - 1) // 2
    wipes = [f for f in faults if f.kind == "kill-empty"]
    assert len(wipes) <= 1
    for w in wipes:
        assert not any(g.cls == "partition" and g.overlaps(w.start - nemesis.SETTLE, w.end) for g in faults)
    for f in faults:
        if f.kind == "clock":
            assert 0.5 <= abs(f.offset) <= nemesis.MAX_SKEW


def test_over_many_seeds_every_fault_kind_occurs():
    kinds = {f.kind for seed in range(40) for f in schedule(seed, 5, 60, ALL)}
    assert kinds == {"partition-halves", "partition-one", "partition-bridge", "partition-ring", "kill",
                     "kill-empty", "pause", "clock", "packet"}


@pytest.mark.parametrize("n", [4, 5, 6, 7, 8])
def test_majorities_ring_gives_every_node_a_majority_and_no_two_the_same(n):
    cut, _ = nemesis.majorities_ring(list(range(n)))
    views = [frozenset(reachable(i, n, cut, ())) for i in range(n)]
    assert all(len(v) > n // 2 for v in views)
    assert len(set(views)) == n
    assert cut, "something is cut"


def test_bridge_node_sees_both_sides_which_do_not_see_each_other():
    order = [3, 0, 4, 1, 2]
    cut, label = nemesis.bridge(order)
    assert reachable(3, 5, cut, ()) == set(range(5))
    assert reachable(0, 5, cut, ()) == {0, 4, 3}
    assert reachable(1, 5, cut, ()) == {1, 2, 3}
    assert label == "n0 n4 | n1 n2, n3 bridges"


def test_halves_and_isolate_one_cut_exactly_the_links_between_groups():
    cut, _ = nemesis.halves([2, 0, 1, 3, 4])
    assert cut == {(0, 1), (0, 3), (0, 4), (1, 2), (2, 3), (2, 4)}
    cut, _ = nemesis.isolate_one([4, 0, 1, 2, 3])
    assert reachable(4, 5, cut, ()) == {4}
    assert reachable(0, 5, cut, ()) == {0, 1, 2, 3}
    assert reachable(0, 5, cut, {1}) == {0, 2, 3}
    assert reachable(1, 5, cut, {1}) == set()


class Recorder:
    """A nemesis target that writes down what it was asked to do (node 9's restart fails, and node
    8's restart takes a while)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        async def act(*args, **kwargs):
            if name == "restart" and args[0] == 9:
                raise RuntimeError("no such node")
            if name == "restart" and args[0] == 8:
                await asyncio.sleep(0.4)
            self.calls.append((name, args, kwargs))
        return act


async def test_the_runner_applies_and_heals_each_fault_on_time_and_records_failures():
    faults = [nemesis.Fault("pause", 0.0, 0.1, (1,)), nemesis.Fault("partition-one", 0.05, 0.15, cut=((0, 1),)),
              nemesis.Fault("kill-empty", 0.0, 0.05, (9,))]
    target, events = Recorder(), []
    await nemesis.run_schedule(faults, target, time.monotonic(), events.append)
    assert [c[0] for c in target.calls] == ["pause", "kill", "partition", "resume", "heal_partition"]
    assert target.calls[2][1] == ({(0, 1)},)
    failed = [e for e in events if not e.ok]
    assert [(e.fault, e.action) for e in failed] == [(2, "heal")]
    assert "no such node" in failed[0].error
    assert sorted((e.fault, e.action) for e in events if e.ok) == [(0, "heal"), (0, "start"), (1, "heal"),
                                                                   (1, "start"), (2, "start")]


async def test_a_slow_action_does_not_hold_up_other_faults():
    faults = [nemesis.Fault("kill", 0.0, 0.01, (8,)), nemesis.Fault("pause", 0.1, 0.15, (1,))]
    events = []
    await nemesis.run_schedule(faults, Recorder(), time.monotonic(), events.append)
    at = {(e.fault, e.action): e.time for e in events}
    assert at[(0, "heal")] >= 0.4 and at[(1, "heal")] < 0.4
