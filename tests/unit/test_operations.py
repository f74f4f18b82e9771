"""Supervised operations: async AI tools whose records are replicated, taken over when their runner dies,
applied at most once however often they run, and deleted after their retention on every replica."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmaster.cluster.rpc import RemoteError
from taskmaster.crdt import HLC
from taskmaster.replication.operations import (
    BUCKETS,
    PREFIX,
    ROOT,
    OperationsConfig,
    bucket,
    is_operation_id,
)
from taskmaster.ring import partition_key
from taskmaster.storage import Store, doc_key
from taskmaster.tasks.service import TaskService
from taskmaster.tasks.state import ProjectTx, ProjectView, seeded_uid
from taskmaster.tools import operations as tool_operations
from taskmaster.tools import registry
from taskmaster.tools.ai import _expand_all_finish, _prd_finish
from tests.fakes.llm_servers import FakeLlmServer, Reply
from tests.fakes.llm_setup import tasks_json
from tests.inprocess import Cluster, Peer, eventually

PRD = """# Shop

## Requirements
1. Customers can browse the catalogue
2. Customers can add items to a cart
3. Customers can pay for the cart after adding items
4. Staff can see paid orders
"""
SUBTASKS = json.dumps({"subtasks": [{"id": i, "title": f"Step {i}", "description": f"Do step {i}", "details": "d",
                                     "dependencies": [i - 1] if i > 1 else []} for i in (1, 2, 3)]})
ASYNC = {"async": True}


async def call(peer: Peer, tool: str, **args) -> dict:
    result = await registry.call_tool(tool, args, None, peer.ctx)
    text = result["content"][0]["text"]
    assert not result.get("isError"), text
    return orjson.loads(text)["data"]


async def refusal(peer: Peer, tool: str, **args) -> str:
    result = await registry.call_tool(tool, args, None, peer.ctx)
    assert result.get("isError"), result
    return result["content"][0]["text"]


def project(tmp_path: Path) -> str:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    (root / "prd.txt").write_text(PRD)
    return str(root)


def use_model(peer: Peer, server: FakeLlmServer) -> None:
    """Give the peer (and whatever runs there) the fake OpenAI-compatible server as its main model."""
    (peer.data_dir / "models.json").write_text(json.dumps({
        "models": {"main": {"provider": "openai-compatible", "modelId": "fake-1", "baseURL": server.base_url}},
        "retry": {"maxAttempts": 1}, "timeout": 20}))


async def finished(peer: Peer, root: str, op_id: str, timeout: float = 20.0) -> dict:
    async def check():
        status = await call(peer, "get_operation_status", projectRoot=root, operationId=op_id)
        return status if status["status"] in ("completed", "failed") else None

    return await eventually(check, timeout)


def holders(c: Cluster, op_id: str) -> list[str]:
    key = doc_key(ROOT, bucket(op_id), op_id)
    return [p.name for p in c.live if p.store.get(key) is not None]


def runner_of(c: Cluster, op_id: str) -> Peer:
    record = next(p for p in c.live if p.ops._doc(op_id) is not None).ops._doc(op_id)
    return next(p for p in c.peers if p.name == record.get("runner"))


def titles(peer: Peer, root: str, tag: str = "master") -> list[str]:
    return [t["title"] for t in peer.service.view(root).tasks(tag)]


async def tag_titles(c: Cluster, root: str, tag: str = "master") -> list[str]:
    """The tag as its coordinator holds it (after catching up with the other replicas)."""
    name = c.live[0].rep.candidates(partition_key(root, tag))[0]
    peer = next(p for p in c.live if p.name == name)
    await peer.rep.catch_up(root, tag)
    return titles(peer, root, tag)


# ---- the happy path ---------------------------------------------------------------------------------
async def test_async_parse_prd_answers_at_once_and_every_node_reports_the_result(tmp_path):
    root = project(tmp_path)
    async with Cluster(tmp_path, 3) as c:
        started = await call(c.peers[0], "parse_prd", projectRoot=root, input="prd.txt", **ASYNC)
        op_id = started["operationId"]
        assert is_operation_id(op_id) and started["status"] in ("queued", "in_progress")
        assert len(holders(c, op_id)) >= 2, "the record is durable on W replicas before the id is returned"
        status = await finished(c.peers[2], root, op_id)
        assert status["status"] == "completed" and status["attempts"] == 1
        assert status["progress"] == {"done": 1, "total": 1}
        result = status["result"]
        assert result["taskCount"] == 4 and result["taskIds"] == [1, 2, 3, 4]
        assert result["provider"]["name"] == "offline-planner" and result["provider"]["node"] == status["runner"]
        assert result["tagInfo"] == {"currentTag": "master", "availableTags": ["master"]}
        for peer in c.peers:  # any node answers, with the same record
            again = await call(peer, "get_operation_status", projectRoot=root, operationId=op_id)
            assert again == status
        assert len(await tag_titles(c, root)) == 4


async def test_async_expand_all_and_complexity_match_what_the_call_would_answer(tmp_path):
    root = project(tmp_path)
    async with Cluster(tmp_path, 3) as c:
        a = c.peers[0]
        await call(a, "parse_prd", projectRoot=root, input="prd.txt")
        op = (await call(a, "analyze_project_complexity", projectRoot=root, **ASYNC))["operationId"]
        report = (await finished(c.peers[1], root, op))["result"]
        assert report["reportSummary"]["taskCount"] == 4
        op = (await call(a, "expand_all", projectRoot=root, num="2", **ASYNC))["operationId"]
        status = await finished(c.peers[2], root, op)
        assert status["status"] == "completed" and status["progress"] == {"done": 4, "total": 4}
        details = status["result"]["details"]
        assert details["expandedCount"] == 4 and details["failedCount"] == 0 and details["tasksToExpand"] == 4
        view = a.service.view(root)
        assert all(len(t["subtasks"]) == 2 for t in view.tasks("master"))


async def test_bad_input_fails_the_call_and_starts_nothing(tmp_path):
    root = project(tmp_path)
    async with Cluster(tmp_path, 2) as c:
        a = c.peers[0]
        await call(a, "parse_prd", projectRoot=root, input="prd.txt")
        before = [len(p.ops) for p in c.peers]
        text = await refusal(a, "parse_prd", projectRoot=root, input="prd.txt", **ASYNC)
        assert "already contains 4 tasks" in text
        assert "Invalid numTasks" in await refusal(a, "parse_prd", projectRoot=root, input="prd.txt", numTasks="-3",
                                                   force=True, **ASYNC)
        assert "does not exist" in await refusal(a, "expand_all", projectRoot=root, tag="nope", **ASYNC)
        assert [len(p.ops) for p in c.peers] == before, "no operation was recorded"
        for bad in (" ", "abc", "1..2", "-3", "1.2.3", "A915B2D4F59E6681", "a915b2d4f59e66812"):
            text = await refusal(a, "get_operation_status", projectRoot=root, operationId=bad)
            assert "Invalid operationId" in text, bad
        text = await refusal(a, "get_operation_status", projectRoot=root, operationId="0123456789abcdef")
        assert "not found" in text
        for bad in (7, "", None):
            with pytest.raises(registry.ParamError):
                await registry.call_tool("get_operation_status", {"projectRoot": root, "operationId": bad}, None,
                                         a.ctx)
        with pytest.raises(registry.ParamError):
            await registry.call_tool("parse_prd", {"projectRoot": root, "async": "yes"}, None, a.ctx)
        op = (await call(a, "analyze_project_complexity", projectRoot=root, **ASYNC))["operationId"]
        other = tmp_path / "other"
        other.mkdir()
        assert "not found" in await refusal(a, "get_operation_status", projectRoot=str(other), operationId=op)
        for method, payload in (("op.submit", {"opId": "x"}), ("op.submit", [1]), ("op.status", "zz"),
                                ("op.apply", {"opId": op, "kind": "parse_prd", "root": root, "tag": 5})):
            with pytest.raises(RemoteError):
                await a.rpc.call(c.peers[1].name, ("127.0.0.1", c.peers[1].port), method, payload, 2)
        await finished(a, root, op)


async def test_async_needs_a_node_and_the_status_tool(tmp_path, service):
    root = project(tmp_path)
    bare = await registry.call_tool("parse_prd", {"projectRoot": root, "input": "prd.txt", "async": True}, None,
                                    lambda r: registry.ToolContext(service, r, "n", None))
    assert bare.get("isError") and "needs a taskmasterd node" in bare["content"][0]["text"]
    async with Cluster(tmp_path, 1, tools="core") as c:
        text = await refusal(c.peers[0], "parse_prd", projectRoot=root, input="prd.txt", **ASYNC)
        assert "needs the get_operation_status tool" in text
        assert len(c.peers[0].ops) == 0 and not c.peers[0].service.view(root).tasks("master")


# ---- runners that die ---------------------------------------------------------------------------------
async def test_runner_killed_during_the_model_call_is_replaced_and_each_task_exists_once(tmp_path):
    root = project(tmp_path)
    async with FakeLlmServer("openai", default=Reply(tasks_json("Catalogue", "Cart", "Pay", "Orders")),
                             latency=0.6) as server, Cluster(tmp_path, 3) as c:
        for peer in c.peers:
            use_model(peer, server)
        op_id = (await call(c.peers[0], "parse_prd", projectRoot=root, input="prd.txt", **ASYNC))["operationId"]
        victim = runner_of(c, op_id)
        await eventually(lambda: server.requests)  # the model call is in flight
        await c.kill(victim)
        survivor = c.live[0]
        status = await finished(survivor, root, op_id)
        assert status["status"] == "completed", status
        assert status["runner"] != victim.name and status["attempts"] == 2
        assert status["result"]["provider"]["name"] == "openai-compatible"
        assert sorted(await tag_titles(c, root)) == ["Cart", "Catalogue", "Orders", "Pay"]
        assert len(server.requests) == 2, "the new runner asked again: the first answer never arrived"


async def test_runner_dead_after_its_write_but_before_finishing_writes_nothing_twice(tmp_path):
    root = project(tmp_path)
    async with Cluster(tmp_path, 3) as c:
        applied = asyncio.Event()
        real = {p.name: p.ops.runners["parse_prd"] for p in c.peers}

        def dies_after_the_write(run):
            async def crashing(op):
                write = op.apply

                async def apply(payload):
                    await write(payload)
                    applied.set()
                    await asyncio.Event().wait()  # gone before the result is recorded
                op.apply = apply
                return await run(op)
            return crashing

        for p in c.peers:
            p.ops.runners["parse_prd"] = dies_after_the_write(real[p.name])
        op_id = (await call(c.peers[0], "parse_prd", projectRoot=root, input="prd.txt", **ASYNC))["operationId"]
        await eventually(applied.is_set)
        written = await tag_titles(c, root)
        assert len(written) == 4
        for p in c.peers:
            p.ops.runners["parse_prd"] = real[p.name]
        await c.kill(runner_of(c, op_id))
        status = await finished(c.live[0], root, op_id)
        assert status["status"] == "completed" and status["attempts"] == 2
        assert status["result"]["taskIds"] == [1, 2, 3, 4]
        assert await tag_titles(c, root) == written


async def test_expand_all_takeover_asks_only_for_the_tasks_not_answered(tmp_path):
    root = project(tmp_path)
    async with FakeLlmServer("openai", default=Reply(SUBTASKS), latency=0.3) as server, \
            Cluster(tmp_path, 3) as c:
        await call(c.peers[0], "parse_prd", projectRoot=root, input="prd.txt")  # offline: 4 tasks
        for peer in c.peers:
            use_model(peer, server)
        op_id = (await call(c.peers[0], "expand_all", projectRoot=root, **ASYNC))["operationId"]
        victim = runner_of(c, op_id)
        await eventually(lambda: (victim.ops._doc(op_id).get("progress") or {}).get("done", 0) >= 2, 20)
        await c.kill(victim)
        status = await finished(c.live[0], root, op_id, 30)
        assert status["status"] == "completed" and status["attempts"] == 2
        assert status["progress"] == {"done": 4, "total": 4}
        assert status["result"]["details"]["expandedCount"] == 4
        assert 4 <= len(server.requests) <= 5, "answered tasks are not asked again (one may have been in flight)"
        name = c.live[0].rep.candidates(_tag(root))[0]
        coordinator = next(p for p in c.live if p.name == name)
        await coordinator.rep.catch_up(root, "master")
        for task in coordinator.service.view(root).tasks("master"):
            assert [s["title"] for s in task["subtasks"]] == ["Step 1", "Step 2", "Step 3"], task


async def test_a_restarted_runner_resumes_its_operation(tmp_path):
    root = project(tmp_path)
    async with FakeLlmServer("openai", default=Reply(tasks_json("A", "B")), latency=0.4) as server, \
            Cluster(tmp_path, 3) as c:
        for peer in c.peers:
            use_model(peer, server)
        op_id = (await call(c.peers[0], "parse_prd", projectRoot=root, input="prd.txt", **ASYNC))["operationId"]
        victim = runner_of(c, op_id)
        await eventually(lambda: server.requests)
        back = await c.restart(victim)  # back before anyone saw it dead
        status = await finished(back, root, op_id)
        assert status["status"] == "completed" and status["runner"] == victim.name and status["attempts"] == 2
        assert sorted(await tag_titles(c, root)) == ["A", "B"]


# ---- bounded -----------------------------------------------------------------------------------------
async def test_finished_operations_expire_everywhere_and_do_not_come_back(tmp_path):
    root = project(tmp_path)
    config = OperationsConfig(retention=0.3, scan_interval=0.05, gc_interval=0.05)
    async with Cluster(tmp_path, 3, ops=config) as c:
        op_id = (await call(c.peers[0], "parse_prd", projectRoot=root, input="prd.txt", **ASYNC))["operationId"]
        await finished(c.peers[1], root, op_id)
        prefix = doc_key(ROOT, bucket(op_id), op_id)
        holder = next(p for p in c.live if p.ops._doc(op_id) is not None)
        stale = [(k, v) for k, v in holder.store.scan(prefix)]
        assert len(stale) >= 3  # record, plan, one answer
        await eventually(lambda: all(not list(p.store.scan(prefix)) for p in c.live), 5)
        assert "not found" in await refusal(c.peers[2], "get_operation_status", projectRoot=root, operationId=op_id)
        for p in c.live:  # a replica that missed the deletion sends the documents back: gone again at once
            await p.rep.apply(stale)
            assert not list(p.store.scan(prefix)), p.name
        assert len(await tag_titles(c, root)) == 4, "expiry removes the record, never the tasks"


async def test_ten_thousand_operations_leave_bounded_tables(tmp_path):
    config = OperationsConfig(retention=0.0, scan_interval=0.05, gc_interval=0.2)
    async with Cluster(tmp_path, 1, ops=config) as c:
        peer = c.peers[0]
        ops = peer.ops
        done = asyncio.Queue()

        async def trivial(op):
            await done.put(op.id)
            return {"ok": True}

        ops.register("noop", trivial, None)
        largest = 0
        for _ in range(20):
            await asyncio.gather(*(ops.submit("noop", "/p", "master", {"steps": []}, 0) for _ in range(500)))
            for _ in range(500):
                await done.get()
            await eventually(lambda: not ops._running and not ops._unfinished, 5)
            largest = max(largest, len(ops))
            ops.gc()
        assert len(ops) == 0 and not ops._unfinished and not ops._running
        assert largest <= 2 * 500, largest  # a record and a plan per operation of the last batch, at most
        assert len(peer.rep._prefs) <= BUCKETS + 1 and len(peer.rep._fresh) <= BUCKETS + 1
        assert len(peer.store.digest) < 50
        assert ops.stats["completed"] == 10_000


def test_operation_ids_and_buckets():
    ids = {bucket(f"{i:016x}") for i in range(2000)}
    assert ids == {f"{b:02d}" for b in range(BUCKETS)}
    assert PREFIX == b"d\x00~operations\x00"
    assert is_operation_id("0123456789abcdef") and not is_operation_id("0123456789ABCDEF")
    assert not is_operation_id(None) and not is_operation_id("0123456789abcde")


# ---- applying twice ----------------------------------------------------------------------------------
def _tag(root: str) -> bytes:
    return partition_key(root, "master")


ANSWER = [{"id": i, "title": f"Task {i}", "description": f"Do {i}", "dependencies": [i - 1] if i > 1 else []}
          for i in range(1, 6)]


def _plan(**extra) -> dict:
    return {"tag": "master", "append": False, "force": False, "priority": "medium", "steps": [], **extra}


async def test_applying_a_parse_prd_answer_again_with_its_seed_changes_nothing(service):
    root = "/tmp/ops-apply"
    ctx = registry.ToolContext(service, root, "n")
    calls = tool_operations.Recorded(None, None)
    first = await _prd_finish(ctx, _plan(), [{"data": {"tasks": ANSWER}}], calls, "0123456789abcdef")
    again = await _prd_finish(ctx, _plan(), [{"data": {"tasks": ANSWER}}], calls, "0123456789abcdef")
    assert first["taskIds"] == again["taskIds"] == [1, 2, 3, 4, 5]
    assert [t["title"] for t in service.view(root).tasks("master")] == [f"Task {i}" for i in range(1, 6)]
    forced = _plan(force=True)
    await _prd_finish(ctx, forced, [{"data": {"tasks": ANSWER}}], calls, "fedcba9876543210")
    await _prd_finish(ctx, forced, [{"data": {"tasks": ANSWER}}], calls, "fedcba9876543210")
    assert len(service.view(root).tasks("master")) == 5, "a forced re-run does not delete what its first run made"
    plan = {"tag": "master", "force": False, "tasks": [[t["id"], 3] for t in service.view(root).tasks("master")]}
    answers = [{"data": json.loads(SUBTASKS)}] * 5
    await _expand_all_finish(ctx, plan, answers, calls, "00000000000000aa")
    result = await _expand_all_finish(ctx, plan, answers, calls, "00000000000000aa")
    assert result["details"]["expandedCount"] == 5 and result["details"]["skippedCount"] == 0
    assert all(len(t["subtasks"]) == 3 for t in service.view(root).tasks("master"))


def test_a_seeded_transaction_keys_new_tasks_by_position():
    tx = ProjectTx(ProjectView.from_plain("/p", {"master": {"tasks": []}}))
    tx.seed = "abc"
    for i in range(3):
        tx.add("master", {"id": 10 + i, "title": str(i)})
    assert [tx.work["master"].uid[id(t)] for t in tx.tasks("master")] == [seeded_uid("abc", "task", i)
                                                                           for i in range(3)]


@settings(max_examples=25, deadline=None)
@given(runs=st.lists(st.tuples(st.sampled_from("ab"), st.booleans()), min_size=1, max_size=4),
       existing=st.integers(0, 3), force=st.booleans())
def test_replicas_applying_one_answer_any_number_of_times_merge_to_one_copy(runs, existing, force):
    """Two replicas (the two sides of a partition) each apply the operation's answer some times, with or
    without having seen the other's writes first; after merging both ways every task is there once."""
    asyncio.run(_merge_case(runs, existing, force))


async def _merge_case(runs, existing, force):
    root, seed = "/p", "0123456789abcdef"
    with _two_sides() as sides:
        old = [{"id": i, "title": f"Old {i}", "description": "x"} for i in range(1, existing + 1)]
        await sides["a"].write(root, lambda tx: [tx.add("master", dict(t)) for t in old])
        await _sync(sides)
        calls = tool_operations.Recorded(None, None)
        for side, sync_first in runs:
            if sync_first:
                await _sync(sides)
            ctx = registry.ToolContext(sides[side], root, side)
            await _prd_finish(ctx, _plan(append=not force, force=force), [{"data": {"tasks": ANSWER}}], calls,
                              seed)
        await _sync(sides)
        for svc in sides.values():
            titles = [t["title"] for t in svc.view(root).tasks("master")]
            new = [t for t in titles if t.startswith("Task")]
            assert sorted(new) == sorted(f"Task {i}" for i in range(1, 6)), titles
            assert len(titles) == 5 + (0 if force else existing), titles


@settings(max_examples=20, deadline=None)
@given(runs=st.lists(st.tuples(st.sampled_from("ab"), st.booleans()), min_size=1, max_size=4),
       force=st.booleans(), had=st.booleans())
def test_replicas_applying_one_expansion_any_number_of_times_merge_to_one_set_of_subtasks(runs, force, had):
    asyncio.run(_expansion_case(runs, force, had))


async def _expansion_case(runs, force, had):
    root, seed = "/p", "00000000000000ee"
    with _two_sides() as sides:
        old = [{"id": i, "title": f"T{i}", "description": "x", "status": "pending",
                "subtasks": [{"id": 1, "title": "old", "description": "o", "status": "pending",
                              "dependencies": []}] if had else []} for i in (1, 2)]
        await sides["a"].write(root, lambda tx: [tx.add("master", dict(t)) for t in old])
        await _sync(sides)
        plan = {"tag": "master", "force": force, "tasks": [[1, 3], [2, 3]]}
        answers = [{"data": json.loads(SUBTASKS)}] * 2
        for side, sync_first in runs:
            if sync_first:
                await _sync(sides)
            await _expand_all_finish(registry.ToolContext(sides[side], root, side), plan, answers,
                                     tool_operations.Recorded(None, None), seed)
        await _sync(sides)
        expected = ["Step 1", "Step 2", "Step 3"] if force or not had else ["old"]
        for svc in sides.values():
            for task in svc.view(root).tasks("master"):
                assert [s["title"] for s in task["subtasks"]] == expected, task


@contextlib.contextmanager
def _two_sides():
    """Two replicas, "a" and "b", each on its own store: the two sides of a partition."""
    with tempfile.TemporaryDirectory() as tmp:
        stores = [Store(f"{tmp}/{side}") for side in "ab"]
        try:
            yield {side: TaskService(s, HLC(side)) for side, s in zip("ab", stores, strict=True)}
        finally:
            for s in stores:
                s.close()


async def _sync(sides: dict[str, TaskService]) -> None:
    a, b = sides["a"], sides["b"]
    docs_a, docs_b = list(a.store.documents()), list(b.store.documents())
    await b.apply_remote(docs_a)
    await a.apply_remote(docs_b)
