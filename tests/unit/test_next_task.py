"""next_task: the two phases, the ordering, what satisfies a dependency, and the answer's shape."""

from __future__ import annotations

import json

import pytest

from taskmaster.tasks.next_task import NO_NEXT_TASK, next_task
from taskmaster.tasks.state import ProjectView
from taskmaster.tools import tasks_read  # noqa: F401  (registers the tools)
from taskmaster.tools.registry import ParamError, ToolContext, call_tool

ROOT = "/tmp/taskmaster-test-next"


def t(task_id, status="pending", deps=(), priority=None, subtasks=(), **extra):
    task = {"id": task_id, "title": f"task {task_id}", "status": status, "dependencies": list(deps),
            "subtasks": list(subtasks), **extra}
    if priority:
        task["priority"] = priority
    return task


def s(sub_id, status="pending", deps=(), priority=None):
    sub = {"id": sub_id, "title": f"sub {sub_id}", "status": status, "dependencies": list(deps)}
    if priority:
        sub["priority"] = priority
    return sub


def pick(*tasks, report=None):
    view = ProjectView.from_plain(ROOT, {"master": {"tasks": list(tasks), "report": report}})
    return next_task(view, "master")


def picked_id(*tasks):
    return (pick(*tasks)["nextTask"] or {}).get("id")


def test_nothing_eligible_is_a_success_with_a_message():
    assert pick() == {"message": NO_NEXT_TASK, "nextTask": None}
    assert pick(t(1, "done"), t(2, "pending", deps=[3]), t(3, "blocked")) == {"message": NO_NEXT_TASK,
                                                                               "nextTask": None}


def test_top_level_order_priority_then_fewer_dependencies_then_lower_id():
    assert picked_id(t(1, priority="low"), t(2), t(3, priority="high")) == 3
    assert picked_id(t(1, "done"), t(2, deps=[1]), t(3, deps=[])) == 3
    assert picked_id(t(5), t(4)) == 4
    assert picked_id(t(1, priority="critical"), t(2, priority="high")) == 1
    assert picked_id(t(1, priority="weird"), t(2, priority="low")) == 1  # unknown counts as medium
    assert picked_id(t(1), t(2, priority="medium")) == 1  # missing counts as medium


def test_only_pending_and_in_progress_are_returned():
    for status in ("review", "deferred", "blocked", "cancelled", "done", "completed"):
        assert picked_id(t(1, status)) is None, status
    assert picked_id(t(1, "in-progress")) == 1  # an in-progress task can come back (no claims)
    assert picked_id(t(1, "Pending")) == 1  # case-folded as the reference does


def test_only_done_or_completed_satisfy_a_dependency():
    assert picked_id(t(1, "done"), t(2, deps=[1], priority="high")) == 2
    assert picked_id(t(1, "completed"), t(2, deps=[1], priority="high")) == 2
    assert picked_id(t(1, "cancelled"), t(2, deps=[1], priority="high")) is None
    assert picked_id(t(1, "in-progress", priority="low"), t(2, deps=[1], priority="high")) == 1
    assert picked_id(t(2, deps=[99])) is None  # a missing dependency is never done


def test_dependencies_on_subtasks_work():
    parent = t(1, "pending", subtasks=[s(1, "done"), s(2, "pending")])
    assert picked_id(parent, t(2, deps=["1.1"], priority="high")) == 2
    assert picked_id(parent, t(2, deps=["1.2"], priority="high")) == 1


def test_subtasks_of_in_progress_parents_come_first():
    parent = t(1, "in-progress", priority="low", subtasks=[s(1, "done"), s(2, deps=["1.1"]), s(3, deps=["1.2"])])
    answer = pick(parent, t(2, priority="high"))
    assert answer["isSubtask"] is True
    assert answer["nextTask"] == {"id": "1.2", "title": "sub 2", "status": "pending", "priority": "low",
                                  "dependencies": ["1.1"], "parentId": 1}
    assert "nextSteps" in answer and answer["nextSteps"]


def test_subtask_order_priority_fewer_deps_parent_then_subtask_id():
    p1 = t(1, "in-progress", subtasks=[s(1, deps=["2.9"]), s(2)])
    p2 = t(2, "in-progress", subtasks=[s(9, "done"), s(1, priority="high", deps=["2.9"])])
    assert picked_id(p1, p2) == "2.1"  # own priority beats fewer dependencies
    p2["subtasks"][1]["priority"] = None
    assert picked_id(p1, p2) == "1.2"  # same priority: fewer dependencies, then lower parent
    assert picked_id(t(3, "in-progress", subtasks=[s(4), s(2)]), t(4, "in-progress", subtasks=[s(1)])) == "3.2"
    assert picked_id(t(3, "in-progress", priority="high", subtasks=[s(1)]),
                     t(1, "in-progress", subtasks=[s(1)])) == "3.1"  # parent priority is inherited


def test_subtask_dependencies_name_siblings_as_dotted_ids_and_tasks_as_numbers():
    p1 = t(1, "in-progress", subtasks=[s(1), s(2, "done")])
    p2 = t(2, "in-progress", priority="high", subtasks=[s(1, deps=["1.2", "2.2"]), s(2, "done")])
    answer = pick(p1, p2)["nextTask"]
    assert answer["id"] == "2.1" and answer["dependencies"] == ["1.2", "2.2"]
    p2["subtasks"][1]["status"] = "pending"
    assert picked_id(p1, p2) == "2.2"
    # A bare number in a subtask's list is a top-level task (Task Master's bug #542 cannot happen).
    blocked = t(3, "in-progress", subtasks=[s(1, deps=[4])])
    assert picked_id(blocked, t(4, "review")) == 3  # no eligible subtask: the parent itself
    assert picked_id(blocked, t(4, "done")) == "3.1"


def test_subtasks_of_pending_parents_are_never_returned():
    parent = t(1, "pending", subtasks=[s(1, priority="high"), s(2)])
    answer = pick(parent)
    assert answer["isSubtask"] is False and answer["nextTask"]["id"] == 1


def test_without_an_eligible_subtask_the_top_level_phase_runs():
    parent = t(1, "in-progress", subtasks=[s(1, "blocked"), s(2, "done"), s(3, deps=[1])])
    answer = pick(parent, t(2, priority="low"))
    assert answer["isSubtask"] is False and answer["nextTask"]["id"] == 1


def test_full_task_is_returned_with_complexity_score_from_the_report():
    report = {"complexityAnalysis": [{"taskId": "1", "complexityScore": 6}, {"taskId": 3, "complexityScore": 9}]}
    answer = pick(t(1, details="long", testStrategy="tests"), report=report)
    assert answer["nextTask"] == {**t(1, details="long", testStrategy="tests"), "complexityScore": 6}
    sub_answer = pick(t(3, "in-progress", subtasks=[s(1)]), report=report)
    assert sub_answer["nextTask"]["complexityScore"] == 9  # the parent's score
    assert "complexityScore" not in pick(t(2), report=report)["nextTask"]


def test_answer_does_not_touch_the_cached_task():
    view = ProjectView.from_plain(ROOT, {"master": {"tasks": [t(1)],
                                                    "report": {"complexityAnalysis": [{"taskId": 1,
                                                                                       "complexityScore": 3}]}}})
    next_task(view, "master")["nextTask"]["title"] = "changed"
    assert view.task("master", 1)["title"] == "task 1" and "complexityScore" not in view.task("master", 1)


async def test_answers_follow_writes_and_transactions(service):
    await service.write(ROOT, lambda tx: [tx.add("master", t(i)) for i in (1, 2)])
    assert next_task(service.view(ROOT), "master")["nextTask"]["id"] == 1
    assert next_task(service.view(ROOT), "master")["nextTask"]["id"] == 1  # repeated: same answer

    def finish_one(tx):
        tx.find("master", 1)["status"] = "done"
    await service.write(ROOT, finish_one)
    assert next_task(service.view(ROOT), "master")["nextTask"]["id"] == 2

    def inside(tx):
        first = next_task(tx, "master")["nextTask"]["id"]
        tx.add("master", t(3, priority="high"))
        second = next_task(tx, "master")["nextTask"]["id"]
        tx.find("master", 3)["status"] = "blocked"
        return first, second, next_task(tx, "master")["nextTask"]["id"]
    assert await service.write(ROOT, inside) == (2, 3, 2)


# ---- through the tool registry ------------------------------------------------------------------
async def call(service, **args):
    result = await call_tool("next_task", {"projectRoot": ROOT, **args}, None,
                             lambda root: ToolContext(service, root))
    text = result["content"][0]["text"]
    return text if result.get("isError") else json.loads(text)


async def test_tool_uses_the_tag_and_an_explicit_report_file(service, tmp_path):
    def fill(tx):
        tx.add("master", t(1))
        tx.create_tag("feature", {})
        tx.add("feature", t(7, priority="high"))
    await service.write(ROOT, fill)
    assert (await call(service))["data"]["nextTask"]["id"] == 1
    body = await call(service, tag="feature")
    assert body["tag"] == "feature" and body["data"]["nextTask"]["id"] == 7
    assert (await call(service, tag="nope"))["data"] == {"message": NO_NEXT_TASK, "nextTask": None}
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"complexityAnalysis": [{"taskId": 1, "complexityScore": 4}]}))
    assert (await call(service, complexityReport=str(report)))["data"]["nextTask"]["complexityScore"] == 4
    text = await call(service, complexityReport=str(tmp_path / "missing.json"))
    assert text.startswith("Error: No complexity report found.")


async def test_tool_rejects_wrong_types(service):
    with pytest.raises(ParamError, match="complexityReport: Invalid input: expected string"):
        await call(service, complexityReport=1)
