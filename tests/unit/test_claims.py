"""Claims (next_task with claim): what is picked, leases held, renewed, expired and ended, bad input,
quorum, and the tool path through registry.call_tool on a real TaskService."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest

from taskmaster.tasks import claims
from taskmaster.tasks.claims import CLAIM_REFUSED, claim_next
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.next_task import NO_NEXT_TASK, next_task
from taskmaster.tasks.state import copy_json
from taskmaster.tasks.status import set_task_status
from taskmaster.tools import tasks_read, tasks_write  # noqa: F401  (registers the tools)
from taskmaster.tools.registry import ParamError, ToolContext, call_tool
from tests.conftest import ROOT

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z


def t(task_id, status="pending", deps=(), priority=None, subtasks=()):
    task = {"id": task_id, "title": f"task {task_id}", "description": "", "status": status,
            "dependencies": list(deps), "subtasks": list(subtasks)}
    if priority:
        task["priority"] = priority
    return task


def s(sub_id, status="pending", deps=()):
    return {"id": sub_id, "title": f"sub {sub_id}", "description": "", "status": status, "dependencies": list(deps)}


async def seed(service, *tasks):
    await service.write(ROOT, lambda tx: [tx.add("master", copy_json(task)) for task in tasks])


async def claim(service, agent, now, seconds=300, quorum=None):
    return await service.write(ROOT, lambda tx: claim_next(tx, "master", agent, now, seconds, quorum=quorum))


def claimed_id(answer):
    assert answer["claimed"] is (answer["nextTask"] is not None)
    return answer["nextTask"]["id"] if answer["claimed"] else None


async def set_status(service, ids, status):
    await service.write(ROOT, lambda tx: set_task_status(tx, "master", ids, status))


def stored(service, task_id):
    return service.view(ROOT).task("master", task_id)


def snapshot(service):
    view = service.view(ROOT)
    return {tag: copy_json(view.tasks(tag)) for tag in view.tag_names()}


# ---- the domain function ------------------------------------------------------------------------
async def test_a_claim_takes_what_next_task_offers_and_marks_it(service):
    await seed(service, t(1, priority="low"), t(2, priority="high"), t(3, deps=[2]))
    offered = next_task(service.view(ROOT), "master")
    answer = await claim(service, "ann", T0)
    lease = {"agent": "ann", "expiresAt": "2027-01-15T08:05:00.000Z"}
    assert answer["claimed"] is True and answer["lease"] == lease
    assert set(answer) == set(offered) | {"claimed", "lease"} and answer["isSubtask"] is False
    task = stored(service, 2)
    assert task["status"] == "in-progress" and task["assignee"] == "ann" and task["lease"] == lease
    assert task["updatedAt"] == "2027-01-15T08:00:00.000Z"
    assert answer["nextTask"] == {**offered["nextTask"], "status": "in-progress", "assignee": "ann",
                                  "lease": lease, "updatedAt": task["updatedAt"]}
    assert stored(service, 1)["status"] == "pending" and "lease" not in stored(service, 1)


async def test_a_second_agent_gets_a_different_task_and_a_third_nothing(service):
    await seed(service, t(1, priority="low"), t(2, priority="high"), t(3, deps=[2]))
    assert claimed_id(await claim(service, "ann", T0)) == 2
    assert claimed_id(await claim(service, "bob", T0 + 1)) == 1
    before = snapshot(service)
    assert await claim(service, "cyd", T0 + 2) == {"message": NO_NEXT_TASK, "nextTask": None, "claimed": False}
    assert snapshot(service) == before
    # Plain next_task does not look at leases: it still offers the in-progress task 2.
    assert next_task(service.view(ROOT), "master")["nextTask"]["id"] == 2


async def test_the_same_agent_gets_its_own_item_back_with_the_lease_renewed(service):
    await seed(service, t(1), t(2))
    assert claimed_id(await claim(service, "ann", T0, seconds=60)) == 1
    again = await claim(service, "ann", T0 + 30, seconds=100)
    assert claimed_id(again) == 1 and again["lease"] == {"agent": "ann", "expiresAt": "2027-01-15T08:02:10.000Z"}
    assert stored(service, 1)["lease"] == again["lease"]
    assert stored(service, 1)["updatedAt"] == "2027-01-15T08:00:00.000Z"  # renewing is not a status change
    assert stored(service, 2)["status"] == "pending"  # no second task taken
    assert claimed_id(await claim(service, "bob", T0 + 100)) == 2  # past ann's first expiry, inside the renewal


async def test_an_expired_lease_frees_the_task_for_anyone(service):
    await seed(service, t(1))
    assert claimed_id(await claim(service, "ann", T0, seconds=10)) == 1
    assert claimed_id(await claim(service, "bob", T0 + 9.999)) is None
    taken = await claim(service, "bob", T0 + 10)  # the lease covers [claim, claim + seconds)
    assert claimed_id(taken) == 1 and taken["lease"]["agent"] == "bob"
    assert stored(service, 1)["assignee"] == "bob" and stored(service, 1)["lease"]["agent"] == "bob"
    assert claimed_id(await claim(service, "ann", T0 + 11)) is None  # ann's lease is gone: bob holds it


async def test_dependencies_are_respected_and_done_ends_the_lease(service):
    await seed(service, t(1), t(2, deps=[1]))
    assert claimed_id(await claim(service, "ann", T0)) == 1
    assert claimed_id(await claim(service, "bob", T0)) is None  # 2 waits for 1
    await set_status(service, "1", "done")
    assert stored(service, 1)["lease"]["agent"] == "ann"  # the field stays as a record ...
    assert claimed_id(await claim(service, "ann", T0 + 1)) == 2  # ... but ann no longer holds 1


async def test_setting_a_claimed_task_back_to_pending_frees_it(service):
    await seed(service, t(1))
    assert claimed_id(await claim(service, "ann", T0)) == 1
    await set_status(service, "1", "pending")
    assert claimed_id(await claim(service, "bob", T0 + 1)) == 1


async def test_subtasks_of_an_in_progress_task_are_claimed_one_by_one(service):
    await seed(service, t(1, "in-progress", priority="low", subtasks=[s(1), s(2, deps=["1.1"]), s(3)]),
               t(2, priority="high"))
    first = await claim(service, "ann", T0)
    assert first["isSubtask"] is True and first["nextTask"] == {
        "id": "1.1", "title": "sub 1", "status": "in-progress", "priority": "low", "dependencies": [],
        "parentId": 1}
    sub = stored(service, 1)["subtasks"][0]
    assert sub["assignee"] == "ann" and sub["lease"] == first["lease"] and "lease" not in stored(service, 1)
    assert claimed_id(await claim(service, "bob", T0)) == "1.3"
    # 1.2 waits for 1.1, and task 1 as a whole is off limits while others hold its subtasks.
    assert claimed_id(await claim(service, "cyd", T0)) == 2
    assert claimed_id(await claim(service, "dee", T0)) is None
    assert claimed_id(await claim(service, "ann", T0 + 1)) == "1.1"
    await set_status(service, "1.1", "done")
    assert claimed_id(await claim(service, "ann", T0 + 2)) == "1.2"


async def test_holding_a_task_covers_its_subtasks(service):
    await seed(service, t(1, subtasks=[s(1), s(2)]))
    assert claimed_id(await claim(service, "ann", T0, seconds=60)) == 1  # pending parent: the task itself
    assert claimed_id(await claim(service, "bob", T0 + 1)) is None  # not 1.1 of ann's task
    assert claimed_id(await claim(service, "bob", T0 + 60)) == "1.1"  # ann's lease ended
    assert claimed_id(await claim(service, "ann", T0 + 61)) == "1.2"  # and bob's subtask keeps ann off 1


async def test_unreadable_leases_hold_nothing(service):
    junk = [{"agent": "x", "expiresAt": "soon"}, {"agent": 5, "expiresAt": "2099-01-01T00:00:00.000Z"},
            {"expiresAt": "2099-01-01T00:00:00.000Z"}, "ann until 2099", None]
    await seed(service, *[{**t(i + 1, "in-progress"), "lease": lease} for i, lease in enumerate(junk)])
    taken = [claimed_id(await claim(service, f"agent{i}", T0)) for i in range(len(junk))]
    assert taken == [1, 2, 3, 4, 5]


async def test_a_lease_without_a_timezone_is_read_as_utc_and_now_may_be_a_datetime(service):
    await seed(service, {**t(1, "in-progress"), "lease": {"agent": "ann", "expiresAt": "2027-01-15T08:00:10"}})
    assert claimed_id(await claim(service, "bob", datetime(2027, 1, 15, 8, 0, 9, tzinfo=UTC))) is None
    assert claimed_id(await claim(service, "bob", datetime(2027, 1, 15, 8, 0, 9))) is None  # naive: UTC
    taken = await claim(service, "bob", datetime(2027, 1, 15, 8, 0, 10, tzinfo=UTC), seconds=1)
    assert claimed_id(taken) == 1 and taken["lease"]["expiresAt"] == "2027-01-15T08:00:11.000Z"


@pytest.mark.parametrize(("agent", "seconds", "code"), [
    (None, 300, "INVALID_AGENT"), ("", 300, "INVALID_AGENT"), ("  ", 300, "INVALID_AGENT"),
    (7, 300, "INVALID_AGENT"), ("ann", 0, "INVALID_LEASE"), ("ann", 86_401, "INVALID_LEASE"),
    ("ann", 1.5, "INVALID_LEASE"), ("ann", True, "INVALID_LEASE"), ("ann", "300", "INVALID_LEASE")])
async def test_bad_arguments_change_nothing(service, agent, seconds, code):
    await seed(service, t(1))
    before = snapshot(service)
    with pytest.raises(TaskError) as err:
        await claim(service, agent, T0, seconds)
    assert err.value.code == code
    assert ("agent" if code == "INVALID_AGENT" else "leaseSeconds") in err.value.message
    assert snapshot(service) == before


async def test_an_unknown_tag_is_an_error(service):
    with pytest.raises(TaskError, match="Tag 'nope' does not exist"):
        await service.write(ROOT, lambda tx: claim_next(tx, "nope", "ann", T0))


async def test_without_a_majority_the_claim_is_refused_and_changes_nothing(service):
    await seed(service, t(1))
    before = snapshot(service)
    with pytest.raises(TaskError) as err:
        await claim(service, "ann", T0, quorum=lambda: "1 of 3 replicas reachable")
    assert err.value.code == CLAIM_REFUSED
    assert "majority" in err.value.message and "1 of 3 replicas reachable" in err.value.message
    assert snapshot(service) == before
    assert claimed_id(await claim(service, "ann", T0, quorum=lambda: None)) == 1


def test_live_holder_reads_only_in_progress_items():
    lease = {"agent": "ann", "expiresAt": "2027-01-15T08:00:10.000Z"}
    assert claims.live_holder({"status": "in-progress", "lease": lease}, T0 + 9) == "ann"
    assert claims.live_holder({"status": "in-progress", "lease": lease}, T0 + 10) is None
    assert claims.live_holder({"status": "review", "lease": lease}, T0) is None


# ---- through the tool registry ------------------------------------------------------------------
async def call(service, quorum=None, **args):
    result = await call_tool("next_task", {"projectRoot": ROOT, **args}, None,
                             lambda root: ToolContext(service, root, quorum=quorum))
    text = result["content"][0]["text"]
    return text if result.get("isError") else json.loads(text)["data"]


async def test_tool_claims_with_the_default_lease(service):
    await seed(service, t(1), t(2))
    plain = await call(service)
    assert "claimed" not in plain and plain["nextTask"]["id"] == 1
    started = time.time()
    answer = await call(service, claim=True, agent="ann")
    expiry = datetime.fromisoformat(answer["lease"]["expiresAt"]).timestamp()
    assert answer["claimed"] is True and answer["nextTask"]["id"] == 1 and answer["lease"]["agent"] == "ann"
    assert started + 300 - 0.001 <= expiry <= time.time() + 300
    assert (await call(service, claim=True, agent="bob", leaseSeconds=5))["nextTask"]["id"] == 2
    assert (await call(service, claim=True, agent="cyd"))["claimed"] is False
    assert (await call(service, claim=False, agent="cyd"))["nextTask"]["id"] == 1  # no claim: a plain read


async def assert_param_error(service, args, needle):
    before = snapshot(service)
    with pytest.raises(ParamError, match=needle):
        await call(service, **args)
    assert snapshot(service) == before


async def test_tool_rejects_bad_input_and_changes_nothing(service):
    await seed(service, t(1))
    await assert_param_error(service, {"claim": True, "agent": ""}, "agent: Too small")
    await assert_param_error(service, {"claim": True, "agent": 5}, "agent: Invalid input: expected string")
    await assert_param_error(service, {"claim": "yes", "agent": "ann"}, "claim: Invalid input: expected boolean")
    for bad, needle in [(0, "expected number to be >=1"), (86_401, "expected number to be <=86400"),
                        ("300", "expected number, received string"), (1.5, "expected int, received number"),
                        (True, "expected number, received boolean")]:
        await assert_param_error(service, {"claim": True, "agent": "ann", "leaseSeconds": bad}, f"leaseSeconds: .*{needle}")
    before = snapshot(service)
    for args, needle in [({"claim": True}, "agent is required when claim is true"),
                         ({"claim": True, "agent": " "}, "agent is required when claim is true"),
                         ({"claim": True, "agent": "ann", "tag": "nope"}, "Tag 'nope' does not exist"),
                         ({"claim": True, "agent": "ann", "tag": "bad name!"}, "Tag 'bad name!' does not exist")]:
        text = await call(service, **args)
        assert isinstance(text, str) and text.startswith("Error: ") and needle in text, text
    assert snapshot(service) == before


async def test_tool_refuses_a_claim_without_quorum_but_still_answers_next_task(service):
    await seed(service, t(1))
    before = snapshot(service)
    no_majority = lambda: "only 1 of 3 replicas is reachable"  # noqa: E731
    text = await call(service, quorum=no_majority, claim=True, agent="ann")
    assert text.startswith("Error: A claim needs a majority of the task's replicas")
    assert "only 1 of 3 replicas is reachable" in text and snapshot(service) == before
    assert (await call(service, quorum=no_majority))["nextTask"]["id"] == 1


async def test_ten_concurrent_agents_claim_every_task_exactly_once(service):
    # 40 tasks, many waiting on earlier ones: agents finish what they claim and come back for more.
    await seed(service, *[t(i, deps=[i // 3] if i >= 3 else [], priority=("high", "low", None)[i % 3])
                          for i in range(1, 41)])
    taken: list[int] = []
    held: set[int] = set()
    most_held = 0

    async def agent(name):
        nonlocal most_held
        while True:
            answer = await call(service, claim=True, agent=name, leaseSeconds=600)
            if not answer["claimed"]:
                return
            task_id = answer["nextTask"]["id"]
            assert task_id not in held, (task_id, name)
            held.add(task_id)
            taken.append(task_id)
            most_held = max(most_held, len(held))
            await asyncio.sleep(0)  # hold it across a turn of the loop while others claim
            await call_tool("set_task_status", {"projectRoot": ROOT, "id": str(task_id), "status": "done"},
                            None, lambda root: ToolContext(service, root))
            held.discard(task_id)

    await asyncio.wait_for(asyncio.gather(*[agent(f"agent{i}") for i in range(10)]), timeout=60)
    assert sorted(taken) == list(range(1, 41))
    assert most_held > 1  # the agents really did hold tasks at the same time
    assert all(task["status"] == "done" for task in service.view(ROOT).tasks("master"))
