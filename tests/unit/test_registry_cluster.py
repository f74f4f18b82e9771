"""The cluster registry, with a regression test for each complaint of Horde's users (anchors.md §3.2):
lookup misses right after register, entries lost when a node joins, entries of dead nodes, unbounded
growth, same-node name races, zombie entries; and partition conflicts with one winner everywhere."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmaster.cluster.registry import (
    ENTRY,
    MAX_NAME,
    PARTITION,
    PROVIDERS,
    ROOT,
    Entry,
    NameTaken,
    RegistryConfig,
    _entry,
    check_name,
)
from taskmaster.cluster.rpc import RemoteError
from taskmaster.crdt import Doc, encode, merge
from taskmaster.crdt.doc import DELETED
from taskmaster.llm import GenerateRequest, LlmError
from taskmaster.ring import Ring
from taskmaster.storage import doc_key
from tests.fakes.llm_servers import FakeLlmServer, Reply, Status
from tests.inprocess import Cluster, Peer, eventually


async def everyone_sees(c: Cluster, name: str) -> set:
    """What a lookup of `name` answers on each live peer (owner and node, or None)."""
    found = await asyncio.gather(*(p.registry.lookup(name) for p in c.live))
    return {(e.owner, e.node) if e is not None else None for e in found}


def coordinator(c: Cluster) -> Peer:
    name = c.live[0].rep.candidates(PARTITION)[0]
    return next(p for p in c.live if p.name == name)


def first_in_walk(existing: list[str]) -> str:
    """A new member name that comes first in the registry partition's walk once it joins."""
    for i in itertools.count():
        name = f"new{i}"
        if name not in existing and Ring([*existing, name]).walk(PARTITION)[0] == name:
            return name
    raise AssertionError("unreachable")


# ---- Horde #247, #223: lookup right after register ------------------------------------------------
async def test_a_lookup_right_after_register_sees_it_from_every_node(tmp_path):
    async with Cluster(tmp_path, 3) as c:
        for i in range(30):
            owner = c.peers[i % 3]
            entry = await owner.registry.register(f"svc-{i}", meta={"i": i})
            assert entry.node == owner.name
            assert await everyone_sees(c, f"svc-{i}") == {(owner.name, owner.name)}, i
        holder = coordinator(c)
        assert len(holder.registry.entries("svc-")) == 30
        assert (await c.peers[1].registry.lookup("svc-7")).meta == {"i": 7}
        assert await c.peers[2].registry.lookup("nothing-here") is None


# ---- Horde #258, #116: entries kept when nodes join ------------------------------------------------
async def test_entries_stay_visible_while_nodes_join_even_a_new_coordinator(tmp_path):
    async with Cluster(tmp_path, 2) as c:
        for i in range(20):
            await c.peers[i % 2].registry.register(f"svc-{i}")
        for _ in range(2):
            joiner = await c.add(name=first_in_walk([p.name for p in c.peers]))
            assert coordinator(c) is joiner, "the empty newcomer coordinates the registry now"
            for i in range(20):
                assert await everyone_sees(c, f"svc-{i}") == {(c.peers[i % 2].name,) * 2}, (joiner.name, i)
            await eventually(lambda j=joiner: len(j.registry.entries("svc-")) == 20)


async def test_a_coordinator_that_has_not_heard_of_a_member_leaves_its_entries_alone(tmp_path):
    async with Cluster(tmp_path, 2, reg=RegistryConfig(scan_interval=0.05)) as c:
        p0, p1 = c.peers
        await p1.registry.register("p1-service")
        joiner = await c.add(connect=False, name=first_in_walk([p.name for p in c.peers]))
        joiner.rep.set_members([p0.member()])  # it knows p0 only, as a node that just started would
        await joiner.rep.catch_up_partition(PARTITION)
        assert joiner.registry.entries("p1-service") and joiner.rep.candidates(PARTITION)[0] == joiner.name
        for _ in range(3):  # upkeep rounds of the new coordinator
            await joiner.registry._tidy()
        assert joiner.registry.entries("p1-service") and joiner.registry.stats["reaped"] == 0
        c.connect()
        assert await everyone_sees(c, "p1-service") == {(p1.name, p1.name)}


# ---- Horde #186, #172: entries of a dead node ----------------------------------------------------
async def test_entries_of_a_dead_node_are_removed_and_its_names_can_be_taken(tmp_path):
    async with Cluster(tmp_path, 3) as c:
        victim = next(p for p in c.peers if p is not coordinator(c))
        for i in range(5):
            await victim.registry.register(f"job-{i}")
        keeper = coordinator(c)
        await keeper.registry.register("keep")
        with pytest.raises(NameTaken):
            await coordinator(c).registry.register("job-0", owner="other")
        await c.kill(victim)
        for i in range(5):
            assert await everyone_sees(c, f"job-{i}") == {None}, "a dead node's entries are not answered"
        await eventually(lambda: all(not p.registry.entries("job-") for p in c.live))
        taken = await c.live[1].registry.register("job-0", owner="successor")
        assert taken.node == c.live[1].name
        assert await everyone_sees(c, "job-0") == {("successor", c.live[1].name)}
        assert await everyone_sees(c, "keep") == {(keeper.name, keeper.name)}, "live nodes' entries stay"


# ---- Horde #250: two registrations of one name on one node ------------------------------------------
@pytest.mark.parametrize("where", ["coordinator", "elsewhere"])
async def test_a_same_node_race_has_exactly_one_winner_and_the_loser_is_told(tmp_path, where):
    async with Cluster(tmp_path, 3, reg=RegistryConfig(scan_interval=0.05)) as c:
        boss = coordinator(c)
        peer = boss if where == "coordinator" else next(p for p in c.peers if p is not boss)
        for i in range(20):
            outcomes = await asyncio.gather(peer.registry.register(f"race-{i}", owner="a"),
                                            peer.registry.register(f"race-{i}", owner="b"), return_exceptions=True)
            won = [o for o in outcomes if isinstance(o, Entry)]
            lost = [o for o in outcomes if isinstance(o, NameTaken)]
            assert len(won) == 1 and len(lost) == 1, outcomes
            assert lost[0].holder.owner == won[0].owner
            assert await everyone_sees(c, f"race-{i}") == {(won[0].owner, peer.name)}
            assert set(peer.registry.mine[f"race-{i}"]) == {won[0].owner}
        for p in c.peers:  # upkeep rounds everywhere: the winners stay
            await p.registry._tidy()
        assert len(boss.registry.entries("race-")) == 20


# ---- Horde #262: no zombie outlives its owner -------------------------------------------------------
async def test_a_restarted_or_departed_owner_leaves_no_zombie(tmp_path):
    async with Cluster(tmp_path, 3, reg=RegistryConfig(tombstone_ttl=0.2, scan_interval=0.05)) as c:
        owner = next(p for p in c.peers if p is not coordinator(c))
        await owner.registry.register("old-spec")
        back = await c.restart(owner)  # a new process: it holds nothing, its old entries are zombies
        await eventually(lambda: all(not p.registry.entries("old-spec") for p in c.live))
        assert await everyone_sees(c, "old-spec") == {None}
        await back.registry.register("fresh")
        await back.registry.unregister("fresh")
        stale = next(p for p in c.live if p is not back)
        key = doc_key(ROOT, "", ENTRY + "fresh")
        live_copy = Doc().set("owner", back.name, 1, back.name).set("node", back.name, 1, back.name).set(
            "boot", back.boot, 1, back.name).set(DELETED, False, 1, back.name)
        await eventually(lambda: all(p.store.get(key) is None for p in c.live), 5)  # tombstones collected
        await stale.rep.apply([(key, encode(live_copy))])  # a replica that missed the removal sends it back
        assert stale.registry.entries("fresh")
        await eventually(lambda: all(not p.registry.entries("fresh") for p in c.live), 5)
        assert await everyone_sees(c, "fresh") == {None}


# ---- partitions -------------------------------------------------------------------------------------
async def test_a_name_registered_on_both_sides_of_a_partition_has_one_winner_and_the_loser_is_told(tmp_path):
    async with Cluster(tmp_path, 3, reg=RegistryConfig(scan_interval=0.05)) as c:
        a, b, lone = c.peers
        told = {p.name: [] for p in c.peers}
        for p in c.peers:
            p.registry.on_conflict.append(lambda ours, winner, p=p: told[p.name].append((ours, winner)))
        await a.registry.register("svc-a")
        await lone.registry.register("svc-lone")
        c.partition([a, b], [lone])
        first = await a.registry.register("leader", owner="side-ab")
        second = await lone.registry.register("leader", owner="side-lone")
        assert first.owner == "side-ab" and second.owner == "side-lone", "both sides stay available"
        c.heal()
        for p in c.live:  # anti-entropy merges the sides
            await p.rep.catch_up_partition(PARTITION)

        async def settled():
            views = {(e.owner, e.node) for p in c.live for e in p.registry.entries("leader")}
            return views if len(views) == 1 and all(p.registry.entries("leader") for p in c.live) else None

        (winner,) = await eventually(settled)
        loser = lone if winner[1] == a.name else a
        await eventually(lambda: told[loser.name])  # told when its node merges the winner, maybe after the views agree
        assert [(o.owner, w.owner) for o, w in told[loser.name]] == [
            ("side-lone" if loser is lone else "side-ab", winner[0])]
        assert all(not v for n, v in told.items() if n != loser.name)
        assert "leader" not in loser.registry.mine
        for name, node in (("svc-a", a.name), ("svc-lone", lone.name)):  # each side's reaping undone
            async def restored(n=name, o=node):
                return await everyone_sees(c, n) == {(o, o)} and all(p.registry.entries(n) for p in c.live)

            await eventually(restored)


# ---- Horde #200: bounded -------------------------------------------------------------------------------
@pytest.mark.parametrize("members,cycles", [(1, 10_000), (2, 1_000)])
async def test_register_unregister_cycles_leave_a_bounded_table(tmp_path, members, cycles):
    """10,000 cycles on one member; 1,000 on two, where each removal also reaches a replica as a tombstone."""
    async with Cluster(tmp_path, members, reg=RegistryConfig(tombstone_ttl=0.0, scan_interval=60)) as c:
        largest = 0

        async def worker(w: int, count: int) -> None:
            for i in range(count):
                peer = c.peers[i % members]
                await peer.registry.register(f"w{w}-{i}")
                await peer.registry.unregister(f"w{w}-{i}")

        for _ in range(cycles // 1_000):
            await asyncio.gather(*(worker(w, 20) for w in range(50)))  # 1,000 cycles a round
            largest = max(largest, *(len(p.registry) for p in c.peers))
            for p in c.peers:
                p.registry.gc()
        assert all(len(p.registry) == 0 for p in c.peers)
        assert largest <= 1_000, largest  # one round's tombstones at most, not every name ever used
        assert all(not p.registry.mine and not p.registry._pending for p in c.peers)
        assert all(len(p.rep._prefs) <= 1 and len(p.store.digest) == 0 for p in c.peers)
        assert sum(p.registry.stats["registered"] for p in c.peers) == cycles


# ---- bad input ---------------------------------------------------------------------------------------
async def test_bad_names_and_requests_are_refused_and_store_nothing(tmp_path):
    async with Cluster(tmp_path, 2) as c:
        a, b = c.peers
        for bad in ("", "x" * (MAX_NAME + 1), "a\x00b", None, 7):
            with pytest.raises(ValueError):
                await a.registry.register(bad)
            with pytest.raises(ValueError):
                await a.registry.lookup(bad)
        for method, payload in (("reg.register", {"name": "x"}), ("reg.register", {"name": "x", "owner": "o",
                                                                                  "node": 3, "boot": "b"}),
                                ("reg.register", "x"), ("reg.unregister", {"name": "", "owner": "o"}),
                                ("reg.lookup", ["x"])):
            with pytest.raises(RemoteError):
                await a.rpc.call(b.name, ("127.0.0.1", b.port), method, payload, 2)
        assert len(a.registry) == len(b.registry) == 0
        assert check_name("ok/name with spaces") == "ok/name with spaces"
        assert await a.registry.unregister("never-registered") is False


# ---- the merge rule ------------------------------------------------------------------------------------
registrations = st.lists(st.tuples(st.sampled_from(["o1", "o2", "o3"]), st.sampled_from(["n1", "n2", "n3"]),
                                   st.integers(1, 20), st.booleans()), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(registrations, st.randoms(use_true_random=False))
def test_merged_registrations_pick_the_same_winner_in_any_order(regs, rnd):
    """Each registration (or removal) is one delta stamped (ts, node); replicas that merge them in any
    order, any number of times, show the same entry: the one with the greatest stamp."""
    deltas = []
    for owner, node, ts, removal in regs:
        d = Doc()
        if removal:
            d.set(DELETED, True, ts, node)
        else:
            for field, value in (("owner", owner), ("node", node), ("boot", "b"), ("meta", {}), (DELETED, False)):
                d.set(field, value, ts, node)
        deltas.append(((ts, node), removal, owner, d))
    views = set()
    for _ in range(4):
        order = deltas + rnd.sample(deltas, k=len(deltas) // 2)
        rnd.shuffle(order)
        doc = Doc()
        for *_, d in order:
            doc = merge(doc, d)
        entry = _entry("x", doc)
        views.add(None if entry is None else (entry.owner, entry.node))
    assert len(views) == 1
    stamps = [t[0] for t in deltas]
    last = max(deltas, key=lambda t: t[0])
    if stamps.count(last[0]) == 1:  # (a clock never stamps two writes alike; ties only need agreement)
        assert views == {None if last[1] else (last[2], last[0][1])}


# ---- LLM providers through the registry ---------------------------------------------------------------
def _request() -> GenerateRequest:
    return GenerateRequest(schema="research", system="Answer briefly.", messages=[{"role": "user", "content": "Q?"}],
                           command="research")


def _give_model(peer: Peer, server: FakeLlmServer) -> None:
    (peer.data_dir / "models.json").write_text(json.dumps({
        "models": {"main": {"provider": "openai-compatible", "modelId": "fake-1", "baseURL": server.base_url}},
        "retry": {"maxAttempts": 1}, "timeout": 10}))


async def _advertised(c: Cluster, nodes: set[str]) -> None:
    await eventually(lambda: all({e.node for e in p.registry.entries(PROVIDERS)} == nodes for p in c.live))


async def test_a_node_without_a_model_has_the_least_loaded_then_nearest_provider_node_answer(tmp_path):
    async with FakeLlmServer("openai", default=Reply("Yes."), latency=0.2) as server, Cluster(tmp_path, 3) as c:
        p0, p1, p2 = c.peers
        _give_model(p0, server)
        _give_model(p2, server)
        await _advertised(c, {p0.name, p2.name})
        offered = await eventually(lambda: p0.models.advertised)
        assert offered[0]["provider"] == "openai-compatible" and p1.models.advertised == []
        answers = await asyncio.gather(*(p1.models.generate("main", _request(), None) for _ in range(4)))
        assert sorted(node for _, node in answers) == sorted([p0.name, p0.name, p2.name, p2.name]), "spread"
        assert all(result.text == "Yes." and result.provider == "openai-compatible" for result, _ in answers)
        assert not p1.models.inflight and p1.models.stats["forwarded"] == 4
        for _ in range(10):  # p2 is nearer (a round trip is ten times shorter): sequential calls go there
            p1.rpc._observe(p0.name, 0.010)
            p1.rpc._observe(p2.name, 0.001)
        assert p1.models.candidates() == [p2.name, p0.name]
        assert (await p1.models.generate("main", _request(), None))[1] == p2.name
        c.partition([p0, p1], [p2])
        assert p1.models.candidates() == [p0.name], "an unreachable provider node is not asked"
        (p0.data_dir / "models.json").unlink()  # p0 withdraws its model
        await eventually(lambda: {e.node for e in p1.registry.entries(PROVIDERS)} == set())
        assert await p1.models.generate("main", _request(), None) is None, "no node: the caller's own router"


async def test_a_provider_node_whose_model_fails_reports_it(tmp_path):
    async with FakeLlmServer("openai", default=Status(500, "upstream broke"), latency=0) as server, \
            Cluster(tmp_path, 2) as c:
        p0, p1 = c.peers
        _give_model(p0, server)
        await _advertised(c, {p0.name})
        with pytest.raises(LlmError, match=f"upstream broke.*answered by {p0.name}"):
            await p1.models.generate("main", _request(), None)
        for bad in ({"role": "boss", "request": {}}, {"role": "main"}, ["x"],
                    {"role": "main", "request": {"schema": "research"}}):
            with pytest.raises(RemoteError):
                await p1.rpc.call(p0.name, ("127.0.0.1", p0.port), "llm.generate", bad, 5)


async def test_round_trip_averages_leave_out_the_handlers_time(tmp_path):
    async with Cluster(tmp_path, 2) as c:
        p0, p1 = c.peers

        async def slow(peer, payload):
            await asyncio.sleep(0.2)
            return payload

        p0.rpc.register("slow", slow)
        assert p1.rpc.rtt(p0.name) is None or p1.rpc.rtt(p0.name) < 0.05
        for _ in range(3):
            assert await p1.rpc.call(p0.name, ("127.0.0.1", p0.port), "slow", 1, 5) == 1
        assert 0 < p1.rpc.rtt(p0.name) < 0.05, "a 0.2 s handler does not make a loopback peer look far"
