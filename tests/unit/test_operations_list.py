"""Listing the cluster's supervised operations (GET /operations): every member asked for the records it
holds, the newest copy of each kept, members that do not answer named."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given
from hypothesis import strategies as st

from taskmaster.replication.operations import ROOT, _copies, bucket, newest_copies
from taskmaster.storage import doc_key
from tests.inprocess import Cluster, eventually

HOLD = "hold"  # a kind whose runs wait for the test's word


def hold_everywhere(c: Cluster) -> asyncio.Event:
    release = asyncio.Event()

    async def held(run):
        await release.wait()
        return {"ok": True}

    for p in c.peers:
        p.ops.register(HOLD, held, None)
    return release


async def submit(peer, n: int, tag: str = "master") -> list[str]:
    started = await asyncio.gather(*(peer.ops.submit(HOLD, "/srv/p", tag, {"steps": []}, 2) for _ in range(n)))
    return [s["operationId"] for s in started]


async def test_every_member_lists_every_operation_of_the_cluster(tmp_path):
    async with Cluster(tmp_path, 5) as c:  # N=3 of 5: each member holds about 3/5 of the buckets
        release = hold_everywhere(c)
        ids = await submit(c.peers[0], 8) + await submit(c.peers[3], 8, "feat")
        assert any(not set(ids) <= {v["operationId"] for _, v in p.ops.held()} for p in c.peers), \
            "some member holds only part of the records: the list needs the others"
        for p in c.peers:
            listed = await p.ops.gather()
            assert sorted(o["operationId"] for o in listed["operations"]) == sorted(ids), p.name
            assert listed["missing"] == [] and listed["self"] == p.name and listed["all"] is False
            assert {o["status"] for o in listed["operations"]} <= {"queued", "in_progress"}
            assert [o["createdAt"] for o in listed["operations"]] == sorted(o["createdAt"]
                                                                          for o in listed["operations"])
            assert all("result" not in o for o in listed["operations"])
        assert {o["tag"] for o in (await c.peers[1].ops.gather())["operations"]} == {"master", "feat"}
        release.set()

        async def all_finished():
            return not (await c.peers[2].ops.gather())["operations"]

        await eventually(all_finished)
        kept = (await c.peers[4].ops.gather(include_finished=True))["operations"]
        assert sorted(o["operationId"] for o in kept) == sorted(ids)
        assert {(o["status"], o["progress"]["total"]) for o in kept} == {("completed", 2)}
        assert all(o["finishedAt"] and o["runner"] for o in kept)


async def test_members_that_cannot_answer_are_named_and_the_replicas_fill_in(tmp_path):
    async with Cluster(tmp_path, 4) as c:
        hold_everywhere(c)
        ids = await submit(c.peers[0], 6)
        gone = c.peers[3]
        await c.kill(gone)
        listed = await c.peers[1].ops.gather()
        assert listed["missing"] == [gone.name], "still in the ring, dead: not asked"
        # N=3, W=2: every record is on a live member as well
        assert sorted(o["operationId"] for o in listed["operations"]) == sorted(ids)
        c.partition([c.peers[0], c.peers[1]], [c.peers[2]])
        assert c.peers[2].name in (await c.peers[0].ops.gather())["missing"]


async def test_a_replica_that_missed_the_outcome_does_not_make_an_operation_look_unfinished(tmp_path):
    async with Cluster(tmp_path, 3) as c:
        release = hold_everywhere(c)
        [op_id] = await submit(c.peers[0], 1)
        key = doc_key(ROOT, bucket(op_id), op_id)
        stale = c.peers[1].store.get(key)  # as it is before it finishes
        release.set()

        async def finished():
            return all(o["status"] == "completed" for o in (await c.peers[2].ops.gather(True))["operations"])

        await eventually(finished)
        for p in c.peers:
            await p.rep.stop()  # no anti-entropy from here on: the stale copy stays stale
        c.peers[1].store.write({key: stale})
        [(_, copy)] = c.peers[1].ops.held()
        assert copy["status"] in ("queued", "in_progress")
        assert (await c.peers[1].ops.gather())["operations"] == [], "the finished copies win"
        [kept] = (await c.peers[1].ops.gather(True))["operations"]
        assert kept["status"] == "completed"


# ---- merging copies -----------------------------------------------------------------------------------
IDS = [f"{i:016x}" for i in range(4)]
copy = st.tuples(st.integers(0, 50), st.fixed_dictionaries({
    "operationId": st.sampled_from(IDS), "status": st.sampled_from(["queued", "in_progress", "completed", "failed"]),
    "createdAt": st.sampled_from(["2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"]),
    "progress": st.fixed_dictionaries({"done": st.integers(0, 3), "total": st.just(3)})}))


@given(st.lists(st.lists(copy, max_size=6), max_size=4), st.booleans(), st.integers())
def test_merge_keeps_one_copy_per_operation_whatever_the_order(held, everything, seed):
    merged = newest_copies(held, everything)
    rng = random.Random(seed)
    shuffled = [rng.sample(copies, len(copies)) for copies in held]
    rng.shuffle(shuffled)
    assert newest_copies(shuffled, everything) == merged, "order of answers and of copies does not matter"
    assert newest_copies(held + held, everything) == merged, "a copy seen twice changes nothing"
    ids = [v["operationId"] for v in merged]
    assert len(ids) == len(set(ids))
    every = [c for copies in held for c in copies]
    for op_id in {v["operationId"] for _, v in every}:
        mine = [(stamp, v) for stamp, v in every if v["operationId"] == op_id]
        finished = [(stamp, v) for stamp, v in mine if v["status"] in ("completed", "failed")]
        pool = finished or mine
        chosen = next((v for v in merged if v["operationId"] == op_id), None)
        if finished and not everything:
            assert chosen is None, "a finished operation is not running, whatever a stale copy says"
            continue
        assert chosen is not None and chosen in [v for _, v in pool]
        assert max(stamp for stamp, v in pool if v == chosen) == max(stamp for stamp, _ in pool), "the newest"
    assert [(v["createdAt"], v["operationId"]) for v in merged] == sorted((v["createdAt"], v["operationId"])
                                                                          for v in merged)


def test_a_peers_malformed_answer_is_left_out():
    good = [7, {"operationId": IDS[0], "status": "queued"}]
    assert _copies([good, [1], ["x", {}], [-1, good[1]], [True, good[1]], [3, {"operationId": "nope", "status": "x"}],
                    [3, {"operationId": IDS[1]}], "junk"]) == [(7, good[1])]
    assert _copies({"not": "a list"}) is None
