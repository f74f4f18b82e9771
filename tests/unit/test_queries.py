"""get_tasks and get_task: filters, statistics, paging, field selection, subtask answers, errors."""

from __future__ import annotations

import json

import pytest

from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.queries import get_task, get_tasks
from taskmaster.tasks.state import ProjectView, copy_json
from taskmaster.tools import tasks_read  # noqa: F401  (registers the tools)
from taskmaster.tools.registry import ParamError, ToolContext, call_tool

ROOT = "/tmp/taskmaster-test-queries"
REPORT = {"meta": {"tasksAnalyzed": 1},
          "complexityAnalysis": [{"taskId": 2, "taskTitle": "b", "complexityScore": 8, "recommendedSubtasks": 4,
                                  "expansionPrompt": "split it", "reasoning": "big"}]}


def tasks():
    return [
        {"id": 1, "title": "a", "description": "da", "status": "done", "priority": "high", "dependencies": []},
        {"id": 2, "title": "b", "description": "db", "status": "in-progress", "dependencies": [1], "subtasks": [
            {"id": 1, "title": "b1", "status": "done", "dependencies": []},
            {"id": 2, "title": "b2", "status": "pending", "dependencies": [1]},
            {"id": 3, "title": "b3", "status": "in-progress", "dependencies": [], "priority": "low"}]},
        {"id": 3, "title": "c", "description": "dc", "status": "pending", "dependencies": [2]},
        {"id": 4, "title": "d", "description": "dd", "status": "cancelled", "dependencies": []},
    ]


@pytest.fixture
def view():
    return ProjectView.from_plain(ROOT, {"master": {"tasks": tasks(), "report": REPORT},
                                         "other": {"tasks": [{"id": 1, "title": "o", "status": "review"}]}})


# ---- get_tasks ------------------------------------------------------------------------------------
def test_get_tasks_without_filter_returns_every_task_with_subtasks(view):
    data = get_tasks(view, "master")
    assert [t["id"] for t in data["tasks"]] == [1, 2, 3, 4]
    assert data["filter"] == "all"
    assert [s["id"] for s in data["tasks"][1]["subtasks"]] == [1, 2, 3]
    assert data["stats"] == {
        "total": 4, "completed": 1, "inProgress": 1, "pending": 1, "blocked": 0, "deferred": 0,
        "cancelled": 1, "review": 0, "completionPercentage": 25,
        "subtasks": {"total": 3, "completed": 1, "inProgress": 1, "pending": 1, "blocked": 0, "deferred": 0,
                     "cancelled": 0, "completionPercentage": 1 / 3 * 100}}  # as JavaScript computes it
    assert "page" not in data


def test_status_filter_is_a_comma_list_and_stats_cover_the_filtered_tasks(view):
    data = get_tasks(view, "master", status=" pending , DONE")
    assert [t["id"] for t in data["tasks"]] == [1, 3]
    assert data["filter"] == " pending , DONE"
    stats = data["stats"]
    assert stats["total"] == 4  # every task of the tag
    assert (stats["completed"], stats["pending"], stats["inProgress"]) == (1, 1, 0)
    assert stats["completionPercentage"] == 25  # done among the filtered / all tasks
    assert stats["subtasks"]["total"] == 0  # task 2 is filtered out, and its subtasks with it


def test_all_and_unknown_statuses(view):
    assert len(get_tasks(view, "master", status="all")["tasks"]) == 4
    assert len(get_tasks(view, "master", status="ALL")["tasks"]) == 4
    data = get_tasks(view, "master", status="nope")
    assert data["tasks"] == [] and data["stats"]["total"] == 4 and data["stats"]["completionPercentage"] == 0


def test_with_subtasks_false_empties_subtasks_without_touching_the_cache(view):
    data = get_tasks(view, "master", with_subtasks=False)
    assert all(t["subtasks"] == [] for t in data["tasks"])
    assert data["stats"]["subtasks"]["total"] == 3  # statistics still count them
    assert len(view.task("master", 2)["subtasks"]) == 3


def test_unknown_tag_and_empty_project_give_an_empty_list(view):
    data = get_tasks(view, "nope")
    assert data["tasks"] == [] and data["stats"]["total"] == 0 and data["stats"]["completionPercentage"] == 0
    assert get_tasks(ProjectView.from_plain(ROOT, {}), "master")["tasks"] == []


def test_complexity_from_the_report_is_merged_into_listed_tasks(view):
    task2 = get_tasks(view, "master")["tasks"][1]
    assert (task2["complexityScore"], task2["recommendedSubtasks"], task2["expansionPrompt"],
            task2["complexityReasoning"]) == (8, 4, "split it", "big")
    assert "complexityScore" not in get_tasks(view, "master")["tasks"][0]
    assert "complexityScore" not in view.task("master", 2)  # the cached task is not changed


def test_fields_keep_id_and_the_named_fields_only(view):
    data = get_tasks(view, "master", fields="title, status,nosuchfield")
    assert data["tasks"][0] == {"id": 1, "title": "a", "status": "done"}
    data = get_tasks(view, "master", fields="title,complexityScore,subtasks", with_subtasks=False)
    assert data["tasks"][1] == {"id": 2, "title": "b", "complexityScore": 8, "subtasks": []}
    assert get_tasks(view, "master", fields="id")["tasks"][3] == {"id": 4}


def test_limit_and_offset_page_the_filtered_list_and_leave_stats_alone(view):
    full = get_tasks(view, "master", status="done,pending,cancelled")
    page = get_tasks(view, "master", status="done,pending,cancelled", limit=2, offset=1)
    assert [t["id"] for t in page["tasks"]] == [3, 4]
    assert page["stats"] == full["stats"]
    assert page["page"] == {"offset": 1, "limit": 2, "matched": 3, "returned": 2}
    assert get_tasks(view, "master", offset=3)["page"] == {"offset": 3, "limit": None, "matched": 4, "returned": 1}
    assert get_tasks(view, "master", offset=10)["tasks"] == []


# ---- get_task -------------------------------------------------------------------------------------
def test_single_id_gives_an_object_and_a_list_gives_an_array_in_order(view):
    assert get_task(view, "master", "3")["title"] == "c"
    assert [t["id"] for t in get_task(view, "master", " 3 , 1 ")] == [3, 1]
    assert [t["id"] for t in get_task(view, "master", "2,99")] == [2]


def test_missing_ids_raise_the_reference_message(view):
    with pytest.raises(TaskError, match=r"^No tasks found for ID\(s\): 99$"):
        get_task(view, "master", "99")
    with pytest.raises(TaskError, match=r"^No tasks found for ID\(s\): 98,2\.9$"):
        get_task(view, "master", "98,2.9")
    with pytest.raises(TaskError, match="No tasks found"):
        get_task(view, "nope", "1")


def test_subtask_answer_has_full_id_parent_and_inherited_priority(view):
    sub = get_task(view, "master", "2.2")
    assert sub == {"id": "2.2", "title": "b2", "status": "pending", "dependencies": [1], "priority": "medium",
                   "parentTask": {"id": 2, "title": "b", "status": "in-progress"}, "isSubtask": True}
    assert get_task(view, "master", "2.3")["priority"] == "low"
    assert view.task("master", 2)["subtasks"][1]["id"] == 2  # the stored subtask keeps its int id


def test_status_filters_the_subtasks_of_the_returned_task(view):
    task = get_task(view, "master", "2", status="done,IN-PROGRESS")
    assert [s["id"] for s in task["subtasks"]] == [1, 3]
    assert get_task(view, "master", "2", status="all")["subtasks"] == view.task("master", 2)["subtasks"]
    assert len(view.task("master", 2)["subtasks"]) == 3


def test_get_task_merges_complexity(view):
    assert get_task(view, "master", "2")["complexityScore"] == 8
    assert "complexityScore" not in get_task(view, "master", "1")


def test_malformed_ids_are_task_errors_for_direct_callers(view):
    for bad in ("1..2", "-3", "abc", "1.2.3", "", "1,,2"):
        with pytest.raises(TaskError, match="Invalid task ID format"):
            get_task(view, "master", bad)


# ---- through the tool registry ------------------------------------------------------------------
async def call(service, name: str, **args):
    """Run a tool as the MCP layer does; the parsed envelope, or the error text."""
    result = await call_tool(name, {"projectRoot": ROOT, **args}, None, lambda root: ToolContext(service, root))
    text = result["content"][0]["text"]
    return text if result.get("isError") else json.loads(text)


async def seeded(service):
    def fill(tx):
        for t in tasks():
            tx.add("master", t)
        tx.set_report("master", REPORT)
    await service.write(ROOT, fill)
    return copy_json(service.view(ROOT).tasks("master"))


async def test_get_tasks_tool_envelope_and_paging(service):
    await seeded(service)
    body = await call(service, "get_tasks", status="done,pending", fields="title", limit=1)
    assert body["tag"] == "master" and body["version"]["name"] == "taskmaster"
    assert body["data"]["tasks"] == [{"id": 1, "title": "a"}]
    assert body["data"]["page"] == {"offset": 0, "limit": 1, "matched": 2, "returned": 1}
    body = await call(service, "get_tasks", tag="nope")
    assert body["tag"] == "nope" and body["data"]["tasks"] == []


async def test_get_task_tool_answers_and_errors(service):
    await seeded(service)
    assert (await call(service, "get_task", id="2.1"))["data"]["id"] == "2.1"
    assert [t["id"] for t in (await call(service, "get_task", id="3,1"))["data"]] == [3, 1]
    text = await call(service, "get_task", id="99")
    assert text.startswith("Error: No tasks found for ID(s): 99\nVersion: ")


@pytest.mark.parametrize("tool,args,field", [
    ("get_task", {"id": "1..2"}, "id"), ("get_task", {"id": "-3"}, "id"), ("get_task", {"id": "abc"}, "id"),
    ("get_task", {"id": "1.2.3"}, "id"), ("get_task", {"id": 5}, "id"), ("get_task", {}, "id"),
    ("get_task", {"id": ""}, "id"), ("get_tasks", {"status": 3}, "status"),
    ("get_tasks", {"withSubtasks": "no"}, "withSubtasks"), ("get_tasks", {"limit": 0}, "limit"),
    ("get_tasks", {"offset": -1}, "offset"), ("get_tasks", {"limit": "5"}, "limit"),
    ("get_tasks", {"fields": ["id"]}, "fields"), ("next_task", {"tag": 7}, "tag"),
])
async def test_bad_arguments_are_rejected_and_change_nothing(service, tool, args, field):
    before = await seeded(service)
    with pytest.raises(ParamError, match=rf"parameter validation failed: {field}: "):
        await call(service, tool, **args)
    assert service.view(ROOT).tasks("master") == before


@pytest.mark.parametrize("tag", ["no such tag", "../etc", "a/b", "x" * 300])
async def test_unknown_or_invalid_tag_names_read_as_empty_tags(service, tag):
    before = await seeded(service)
    assert (await call(service, "get_tasks", tag=tag))["data"]["tasks"] == []
    assert (await call(service, "get_task", id="1", tag=tag)).startswith("Error: No tasks found for ID(s): 1")
    assert (await call(service, "next_task", tag=tag))["data"]["nextTask"] is None
    assert service.view(ROOT).tasks("master") == before and service.view(ROOT).tag_names() == ["master"]


async def test_missing_project_root_is_rejected(service):
    with pytest.raises(ParamError, match="projectRoot"):
        await call_tool("get_tasks", {}, None, lambda root: ToolContext(service, root))
