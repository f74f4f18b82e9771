"""SWIM + Lifeguard behaviour of whole members on the simulated network, in virtual time."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest

from taskmaster.membership import JoinError, Membership, MembershipConfig, messages
from taskmaster.membership.sim_cluster import SimCluster
from taskmaster.transport.memory import SimNetwork
from taskmaster.transport.virtual_time import Stall

LOCAL = MembershipConfig.local()


@pytest.fixture
def make_cluster():
    made: list[SimCluster] = []

    def factory(config: MembershipConfig = LOCAL, **kw) -> SimCluster:
        made.append(SimCluster(config, **kw))
        return made[-1]
    yield factory
    for c in made:
        c.close()


def deaths(cluster: SimCluster) -> list[tuple[str, str]]:
    return [(observer, m.name) for _, observer, m in cluster.changes if m.state == "dead"]


def test_members_converge_and_see_each_others_meta(make_cluster):
    c = make_cluster(seed=1)

    async def scenario():
        for i in range(5):
            await c.add(meta={"http": f"10.0.0.{i}:8080"})
        await c.wait_for(c.converged, timeout=20)
        members = {m.name: m for m in c.nodes["n4"].members()}
        assert members["n0"].meta == {"http": "10.0.0.0:8080"}
        assert members["n0"].addr == c.addr(0) and members["n0"].incarnation == 1
    c.run(scenario())


def test_crashed_member_is_suspected_then_dead_everywhere(make_cluster):
    c = make_cluster(seed=2, loss=0.01)

    async def scenario():
        for _ in range(5):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        crashed_at = c.loop.time()
        await c.nodes["n3"].stop()  # abrupt: no announcement
        survivors = ["n0", "n1", "n2", "n4"]
        took = await c.wait_for(lambda: all(c.states(o)["n3"] == "dead" for o in survivors), timeout=30)
        # memberlist's local profile at N=5: about 5 s (anchors 1.3)
        assert took < 10
        history = [(m.state, t >= crashed_at) for t, _, m in c.changes if m.name == "n3"
                   and m.state != "alive"]
        assert history[0] == ("suspect", True) and ("dead", True) in history
        assert deaths(c) == [(o, "n3") for o, _ in deaths(c)]  # nobody else died
        # Helpers answered with nacks, so no prober blamed itself.
        assert all(c.nodes[o].local_health() == 0 for o in survivors)
    c.run(scenario())


def test_graceful_leave_is_announced_and_is_not_a_failure(make_cluster):
    c = make_cluster(seed=3)

    async def scenario():
        for _ in range(4):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        assert await c.nodes["n2"].leave(timeout=5) is True
        await c.nodes["n2"].stop()
        took = await c.wait_for(lambda: all(c.states(o)["n2"] == "left" for o in ("n0", "n1", "n3")), 5)
        assert took < 1
        await asyncio.sleep(30)
        assert all(c.states(o)["n2"] == "left" for o in ("n0", "n1", "n3"))
        assert deaths(c) == []
    c.run(scenario())


def test_buddy_system_tells_a_suspect_in_the_probe_and_the_refutation_rides_the_ack(make_cluster):
    c = make_cluster(replace(LOCAL, push_pull_interval=1e6), seed=4)  # no other way for news to travel
    sent: list[tuple] = []

    async def scenario():
        for _ in range(3):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        a, b = c.nodes["n0"], c.nodes["n1"]
        a.table.suspect(1, "n1", "n0")  # as if n0's last probe of n1 had failed...
        a.broadcasts.reset()  # ...and its gossip of that were lost
        send = c.net.send
        c.net.send = lambda src, dst, data: (sent.append((src, dst, data)), send(src, dst, data))[1]
        await c.wait_for(lambda: c.states("n0")["n1"] == "alive", timeout=10)
        probes = [a.codec.decode_packet(d) for s, d_, d in sent if s == c.addr(0) and d_ == c.addr(1)]
        probes = [p for p in probes if any(m[0] == messages.PING for m in p)]
        first = probes[0]
        assert [m[0] for m in first[:2]] == [messages.SUSPECT, messages.PING]
        acks = [b.codec.decode_packet(d) for s, d_, d in sent if s == c.addr(1) and d_ == c.addr(0)]
        refuting_ack = next(p for p in acks if p[0][0] == messages.ACK)
        assert [messages.ALIVE, 2, "n1", *c.addr(1), {}] in refuting_ack
        assert b.stats.suspicions_refuted == 1 and b.local_health() == 1
        assert [m.incarnation for m in b.members() if m.name == "n1"] == [2]
    c.run(scenario())


def test_isolated_member_blames_itself_and_recovers_after_heal(make_cluster):
    c = make_cluster(seed=5)

    async def scenario():
        for _ in range(5):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        a = c.nodes["n0"]
        c.net.partition([c.addr(0)], [c.addr(i) for i in range(1, 5)])
        # n0's probes fail and its helpers send no nacks: n0 is the sick one, its score climbs.
        await c.wait_for(lambda: a.local_health() >= 3, timeout=30)
        assert all(c.nodes[n].local_health() == 0 for n in ("n1", "n2", "n3", "n4"))
        # A high score stretches each failed probe round: far fewer probes than one a second.
        await c.wait_for(lambda: a.local_health() == LOCAL.awareness_max_multiplier - 1, timeout=60)
        before = a.metrics_snapshot()["probes_sent"]
        window = 24
        await asyncio.sleep(window)
        unstretched = window / LOCAL.probe_interval
        stretched = window / (LOCAL.probe_interval * LOCAL.awareness_max_multiplier)
        assert a.metrics_snapshot()["probes_sent"] - before <= stretched + 2 < unstretched / 4
        c.net.heal()
        await c.wait_for(c.converged, timeout=60)
        await c.wait_for(lambda: a.local_health() == 0, timeout=30)
    c.run(scenario())


def test_partition_each_side_declares_the_other_dead_then_heals(make_cluster):
    c = make_cluster(seed=6)

    async def scenario():
        for _ in range(5):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        left, right = ["n0", "n1"], ["n2", "n3", "n4"]
        c.net.partition([c.addr(0), c.addr(1)], [c.addr(i) for i in range(2, 5)])

        def split():
            return (all(c.states(o)[t] == "dead" for o in left for t in right)
                    and all(c.states(o)[t] == "dead" for o in right for t in left))
        await c.wait_for(split, timeout=60)
        await asyncio.sleep(60)  # long enough for both sides to forget each other's probe entries
        c.net.heal()
        took = await c.wait_for(c.converged, timeout=60)
        assert took <= 2 * LOCAL.reconnect_interval
    c.run(scenario())


def test_slow_member_is_never_declared_dead_and_declares_nobody_dead(make_cluster):
    c = make_cluster(seed=7, loss=0.01)

    async def scenario():
        for _ in range(4):
            await c.add()
        await c.add("slow", stall=Stall(random.Random(1), pause=0.5, start=c.loop.time() + 1))
        await c.wait_for(c.converged, timeout=20)
        await asyncio.sleep(120)
        assert deaths(c) == []
        assert c.converged()
    c.run(scenario())


def test_a_paused_member_is_suspected_refutes_and_all_agree_afterwards(make_cluster):
    c = make_cluster(seed=8)

    async def scenario():
        for _ in range(4):
            await c.add()
        start = c.loop.time() + 1
        # One 3 s freeze (SIGSTOP ... SIGCONT), then it runs normally.
        await c.add("paused", stall=Stall(random.Random(2), pause=3.0, gap=(1.0, 1.0), start=start - 1,
                                          until=start + 1))
        await c.wait_for(c.converged, timeout=20)
        await asyncio.sleep(30)
        suspected = [m for _, o, m in c.changes if m.name == "paused" and m.state == "suspect"]
        assert suspected, "a 3 s pause outlasts the probe rounds: it must be suspected"
        assert c.converged()
        assert c.nodes["paused"].stats.suspicions_refuted >= 1
        assert all(m.incarnation >= 2 for m in c.nodes["n0"].members() if m.name == "paused")
    c.run(scenario())


def test_restarted_member_rejoins_with_a_higher_incarnation(make_cluster):
    c = make_cluster(seed=9)

    async def scenario():
        for _ in range(4):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        await c.nodes["n2"].stop()
        await c.wait_for(lambda: c.states("n0")["n2"] == "dead", timeout=30)
        # Same name, same address, fresh process: starts again at incarnation 1.
        c._count = 2
        del c.nodes["n2"]
        await c.add("n2")
        await c.wait_for(c.converged, timeout=30)
        assert [m.incarnation for m in c.nodes["n0"].members() if m.name == "n2"][0] >= 2
    c.run(scenario())


def test_join_retries_with_backoff_until_a_seed_answers(make_cluster):
    c = make_cluster(replace(LOCAL, join_backoff=0.5), seed=10)

    async def scenario():
        joiner = await c.add(join=False)
        seed_addr = c.addr(1)
        joined = c.loop.create_task(joiner.join([seed_addr]))
        await asyncio.sleep(1.0)
        assert not joined.done()
        await c.add("seed", join=False)
        assert await joined == 1
        assert c.loop.time() >= 1.0
        await c.wait_for(c.converged, timeout=20)
    c.run(scenario())


def test_join_gives_up_with_a_clear_error_when_nobody_answers(make_cluster):
    c = make_cluster(replace(LOCAL, join_retries=2, join_backoff=0.5), seed=11)

    async def scenario():
        lonely = await c.add(join=False)
        started = c.loop.time()
        with pytest.raises(JoinError, match=r"10\.9\.9\.9:7946.*timed out"):
            await lonely.join([("10.9.9.9", 7946)])
        # three attempts of tcp_timeout each, with 0.5 + 1.0 s of backoff between them
        assert c.loop.time() - started == pytest.approx(3 * LOCAL.tcp_timeout + 1.5, abs=0.1)
        assert await lonely.join([lonely.transport.local_addr]) == 0  # only ourselves: a 1-node cluster
    c.run(scenario())


def test_a_run_replays_exactly_from_its_seed(make_cluster):
    def history(seed: int) -> list:
        c = make_cluster(seed=seed, loss=0.05)

        async def scenario():
            for _ in range(6):
                await c.add()
            await asyncio.sleep(5)
            await c.nodes["n1"].stop()
            await asyncio.sleep(20)
        c.run(scenario())
        return [(round(t, 9), o, m.name, m.state, m.incarnation) for t, o, m in c.changes]

    assert history(12) == history(12)
    assert history(12) != history(13)


def test_metrics_snapshot_counts_what_happened(make_cluster):
    c = make_cluster(seed=13)

    async def scenario():
        for _ in range(3):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        await c.nodes["n2"].stop()
        await c.wait_for(lambda: c.states("n0")["n2"] == "dead", timeout=30)
        snap = c.nodes["n0"].metrics_snapshot()
        assert snap["members"] == {"alive": 2, "suspect": 0, "dead": 1, "left": 0}
        assert snap["probes_sent"] > 0 and snap["packets_sent"] > 0 and snap["packets_received"] > 0
        total_failed = sum(c.nodes[n].metrics_snapshot()["probes_failed"] for n in ("n0", "n1"))
        assert total_failed >= 1
        assert sum(c.nodes[n].metrics_snapshot()["suspicions_raised"] for n in ("n0", "n1")) >= 1
        assert snap["lhm"] == 0 and snap["broadcast_queue_depth"] >= 0
        assert set(snap["packets_dropped"]) >= {"auth", "truncated", "oversized", "version", "malformed"}
    c.run(scenario())


def test_metadata_is_bounded():
    net = SimNetwork(asyncio.new_event_loop(), random.Random(0))
    transport = net.transport(("10.0.0.1", 7946))
    Membership(LOCAL, transport, name="ok", meta={"x": "y" * 500})
    with pytest.raises(ValueError, match="512 bytes"):
        Membership(LOCAL, transport, name="big", meta={"x": "y" * 600})
    with pytest.raises(ValueError, match="msgpack"):
        Membership(LOCAL, transport, name="odd", meta={"x": object()})
    with pytest.raises(ValueError, match="name"):
        Membership(LOCAL, transport, name="", meta={})
    net.loop.close()
