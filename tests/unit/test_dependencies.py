"""Dependency tools: pure domain functions, the real TaskService, and bad input through the registry."""

from __future__ import annotations

import orjson
import pytest

from taskmaster.tasks.dependencies import (
    add_dependency,
    find_cycles,
    fix_dependencies,
    remove_dependency,
    validate_dependencies,
    would_create_cycle,
)
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.state import copy_json
from taskmaster.tools import dependencies as _tools  # noqa: F401  (registers the tools)
from taskmaster.tools.registry import ParamError, ToolContext, call_tool
from tests.conftest import ROOT, make_tx


def task(tid, deps=(), subtasks=()):
    return {"id": tid, "title": f"T{tid}", "description": "", "status": "pending",
            "dependencies": list(deps), "subtasks": [dict(s) for s in subtasks]}


def sub(sid, deps=()):
    return {"id": sid, "title": f"S{sid}", "description": "", "status": "pending", "dependencies": list(deps)}


def tx_of(*tasks, tag="master", **other_tags):
    tags = {tag: {"tasks": list(tasks)}}
    tags.update({name: {"tasks": list(ts)} for name, ts in other_tags.items()})
    return make_tx(tags)


def deps_of(tx, node, tag="master"):
    task_id, _, sub_id = str(node).partition(".")
    t = tx.task(tag, int(task_id))
    if not sub_id:
        return t["dependencies"]
    return next(s for s in t["subtasks"] if s["id"] == int(sub_id))["dependencies"]


def base_tx():
    return tx_of(task(1), task(2, subtasks=[sub(1), sub(2)]), task(3), task(4, subtasks=[sub(1)]))


# ---- add_dependency ----------------------------------------------------------------------------------
def test_add_task_to_task_answers_like_task_master_and_keeps_order():
    tx = base_tx()
    assert add_dependency(tx, "master", "4", "2") == {
        "message": "Successfully added dependency: Task 4 now depends on 2", "taskId": 4, "dependencyId": 2}
    add_dependency(tx, "master", "4", "2.1")
    add_dependency(tx, "master", "4", "1")
    assert deps_of(tx, 4) == [1, 2, "2.1"]


def test_add_duplicate_succeeds_and_writes_nothing():
    tx = tx_of(task(1), task(2, deps=[1]))
    result = add_dependency(tx, "master", "2", "1")
    assert result["message"] == "Successfully added dependency: Task 2 now depends on 1"
    assert tx.work == {}  # not even an edit


def test_add_duplicate_of_a_stored_sibling_writes_nothing():
    tx = tx_of(task(1), task(2, subtasks=[sub(1), sub(2, deps=["2.1"])]))
    add_dependency(tx, "master", "2.2", "2.1")
    assert tx.work == {}


def test_subtask_dependency_forms():
    tx = base_tx()
    assert add_dependency(tx, "master", "2.2", "2.1")["taskId"] == "2.2"
    add_dependency(tx, "master", "2.2", "4.1")
    assert deps_of(tx, "2.2") == ["2.1", "4.1"]  # a sibling is stored as "P.S" like any subtask
    result = add_dependency(tx, "master", "1", "2.2")
    assert result == {"message": "Successfully added dependency: Task 1 now depends on 2.2",
                      "taskId": 1, "dependencyId": "2.2"}
    assert deps_of(tx, 1) == ["2.2"]


@pytest.mark.parametrize("task_id", ["1", "3"])
def test_subtask_on_top_level_task_is_stored_as_an_int(task_id):
    # The reference's bug #542: it stored a bare int, which every reader took for a sibling.
    tx = base_tx()
    assert add_dependency(tx, "master", "2.2", task_id) == {
        "message": f"Successfully added dependency: Task 2.2 now depends on {task_id}",
        "taskId": "2.2", "dependencyId": int(task_id)}
    assert deps_of(tx, "2.2") == [int(task_id)]
    assert deps_of(tx, "2.1") == [] and deps_of(tx, 2) == []
    assert validate_dependencies(tx, "master")["valid"] is True
    add_dependency(tx, "master", "2.2", task_id)  # again: a duplicate, nothing written
    assert deps_of(tx, "2.2") == [int(task_id)]


def test_subtask_on_its_own_parent_is_refused():
    tx = base_tx()
    with pytest.raises(TaskError, match="Subtask 2.2 cannot depend on its own parent task 2: a task is "
                                        "done when its subtasks are"):
        add_dependency(tx, "master", "2.2", "2")
    assert tx.work == {}
    add_dependency(tx, "master", "2", "2.2")  # the other way round is fine (and implied anyway)
    assert deps_of(tx, 2) == ["2.2"]


@pytest.mark.parametrize(("frm", "to", "text"), [
    ("3", "3", "Task 3 cannot depend on itself"),
    ("2.1", "2.1", "Subtask 2.1 cannot depend on itself"),
    ("9", "1", "Task with ID 9 not found"),
    ("2.7", "1", "Subtask 2.7 not found"),
    ("1", "9", "Dependency target 9 does not exist"),
    ("1", "2.9", "Dependency target 2.9 does not exist"),
    ("1", "1,2", "dependsOn: expected a single"),
    ("abc", "1", "id: Invalid task ID format"),
])
def test_invalid_add_is_an_error_and_changes_nothing(frm, to, text):
    tx = base_tx()
    with pytest.raises(TaskError, match=text):
        add_dependency(tx, "master", frm, to)
    assert tx.work == {}


def test_direct_and_indirect_cycles_are_refused_with_the_path():
    tx = tx_of(task(1), task(2, deps=[1]), task(3, deps=[2]))
    with pytest.raises(TaskError, match=r"circular dependency \(1 -> 2 -> 1\)"):
        add_dependency(tx, "master", "1", "2")
    with pytest.raises(TaskError, match=r"circular dependency \(1 -> 3 -> 2 -> 1\)"):
        add_dependency(tx, "master", "1", "3")
    assert tx.work == {}


def test_cycle_through_subtasks_is_refused():
    tx = tx_of(task(2, subtasks=[sub(1), sub(2, deps=["2.1"])]), task(5, subtasks=[sub(1, deps=["2.1"])]))
    with pytest.raises(TaskError, match=r"\(2.1 -> 5.1 -> 2.1\)"):
        add_dependency(tx, "master", "2.1", "5.1")
    with pytest.raises(TaskError, match=r"\(2.1 -> 2.2 -> 2.1\)"):
        add_dependency(tx, "master", "2.1", "2.2")


def test_cycle_across_the_task_subtask_boundary_is_refused_both_ways():
    tx = tx_of(task(2, subtasks=[sub(1)]), task(5))
    add_dependency(tx, "master", "5", "2.1")
    with pytest.raises(TaskError, match=r"Cannot add dependency 5 to subtask 2.1: .*\(2.1 -> 5 -> 2.1\)"):
        add_dependency(tx, "master", "2.1", "5")
    other = tx_of(task(2, subtasks=[sub(1, deps=[5])]), task(5), task(7, deps=[5]))
    with pytest.raises(TaskError, match=r"\(5 -> 2.1 -> 5\)"):
        add_dependency(other, "master", "5", "2.1")
    with pytest.raises(TaskError, match=r"\(5 -> 7 -> 5\)"):
        add_dependency(other, "master", "5", "7")
    add_dependency(other, "master", "7", "2.1")  # 7 -> 2.1 -> 5 closes nothing
    assert deps_of(other, 7) == [5, "2.1"] and find_cycles(other, "master") == []


def test_add_to_unknown_tag_is_an_error():
    with pytest.raises(TaskError, match="Tag 'nope' does not exist"):
        add_dependency(base_tx(), "nope", "1", "2")


def test_add_works_in_the_named_tag_only():
    tx = tx_of(task(1), task(2), other=[task(1), task(2)])
    add_dependency(tx, "other", "2", "1")
    assert deps_of(tx, 2, "other") == [1]
    assert deps_of(tx, 2) == []


# ---- remove_dependency -------------------------------------------------------------------------------
def test_remove_dependency_and_absent_one():
    tx = tx_of(task(1), task(2, deps=[1, "3.1"]), task(3, subtasks=[sub(1)]))
    assert remove_dependency(tx, "master", "2", "1") == {
        "message": "Successfully removed dependency: Task 2 no longer depends on 1",
        "taskId": 2, "dependencyId": 1}
    assert deps_of(tx, 2) == ["3.1"]
    tx2 = tx_of(task(1), task(2, deps=[1]))
    assert remove_dependency(tx2, "master", "2", "3.1")["dependencyId"] == "3.1"
    assert tx2.work == {}


def test_remove_from_a_subtask_by_full_ids_and_dangling_ones():
    tx = tx_of(task(2, subtasks=[sub(1), sub(2, deps=[7, "2.1", "2.7", "5.5"])]))
    remove_dependency(tx, "master", "2.2", "2.1")
    assert deps_of(tx, "2.2") == [7, "2.7", "5.5"]
    assert remove_dependency(tx, "master", "2.2", "7")["dependencyId"] == 7  # task 7 (dangling)
    assert deps_of(tx, "2.2") == ["2.7", "5.5"]
    remove_dependency(tx, "master", "2.2", "2.7")
    remove_dependency(tx, "master", "2.2", "5.5")
    assert deps_of(tx, "2.2") == []


def test_remove_subtask_on_top_level_task():
    tx = tx_of(task(2, subtasks=[sub(1, deps=[5, "2.5"]), sub(5)]), task(5))
    result = remove_dependency(tx, "master", "2.1", "5")
    assert result == {"message": "Successfully removed dependency: Task 2.1 no longer depends on 5",
                      "taskId": "2.1", "dependencyId": 5}
    assert deps_of(tx, "2.1") == ["2.5"]  # the task went, the sibling 2.5 stays


def test_remove_bare_number_from_a_subtask_falls_back_to_the_sibling():
    # Task Master reads dependsOn "1" on a subtask as its sibling: kept when no task 1 is named.
    tx = tx_of(task(1), task(2, subtasks=[sub(1), sub(2, deps=["2.1", "4.1"])]))
    result = remove_dependency(tx, "master", "2.2", "1")
    assert result == {"message": "Successfully removed dependency: Task 2.2 no longer depends on 2.1",
                      "taskId": "2.2", "dependencyId": "2.1"}
    assert deps_of(tx, "2.2") == ["4.1"]
    both = tx_of(task(1), task(2, subtasks=[sub(1), sub(2, deps=[1, "2.1"])]))
    assert remove_dependency(both, "master", "2.2", "1")["dependencyId"] == 1  # the task comes first
    assert deps_of(both, "2.2") == ["2.1"]
    top = tx_of(task(1), task(2, deps=["2.1"], subtasks=[sub(1)]))
    remove_dependency(top, "master", "2", "1")  # a task's bare number is only ever task 1
    assert top.work == {}


def test_remove_on_missing_task_is_an_error():
    with pytest.raises(TaskError, match="Task with ID 9 not found"):
        remove_dependency(base_tx(), "master", "9", "1")


# ---- graph helpers -----------------------------------------------------------------------------------
def test_would_create_cycle_and_find_cycles():
    tx = tx_of(task(1), task(2, deps=[1]), task(3, deps=[2]))
    assert would_create_cycle(tx, "master", "1", "3") == ["1", "3", "2", "1"]
    assert would_create_cycle(tx, "master", "3", "1") is None
    assert find_cycles(tx, "master") == []
    looped = tx_of(task(1, deps=[3]), task(2, deps=[1]), task(3, deps=[2]), task(4, deps=[4]))
    assert find_cycles(looped, "master") == [["1", "3", "2", "1"]]  # self-dependencies are not cycles


def test_long_chain_needs_no_recursion():
    n = 5000
    tx = tx_of(*[task(i, deps=[i + 1] if i < n else [1]) for i in range(1, n + 1)])
    cycles = find_cycles(tx, "master")
    assert len(cycles) == 1 and len(cycles[0]) == n + 1


# ---- validate_dependencies ---------------------------------------------------------------------------
def messy_tx():
    return tx_of(
        task(1, deps=[3]),
        task(2, deps=[1], subtasks=[sub(1, deps=["2.2"]), sub(2, deps=["2.1", "2.2", "2.1"])]),
        task(3, deps=[2, 3, 99, 2, "2.9"]),
        other=[task(1, deps=[1])])


def test_validate_reports_every_issue_and_writes_nothing():
    tx = messy_tx()
    result = validate_dependencies(tx, "master")
    assert result["valid"] is False
    found = {(i["type"], i["taskId"], i["dependencyId"]) for i in result["issues"]}
    assert found == {("self", "2.2", "2.2"), ("duplicate", "2.2", "2.1"), ("self", 3, 3), ("missing", 3, 99),
                     ("duplicate", 3, 2), ("missing", 3, "2.9"), ("circular", 2, 1),
                     ("circular", "2.2", "2.1")}
    messages = {(i["taskId"], i["dependencyId"]): i["message"] for i in result["issues"]}
    assert messages[(3, "2.9")] == "Task 3 depends on non-existent subtask 2.9"
    assert messages[(3, 99)] == "Task 3 depends on non-existent task 99"
    assert messages[("2.2", "2.2")] == "Subtask 2.2 depends on itself"
    assert messages[(3, 2)] == "Task 3 lists dependency 2 more than once"
    circular = next(i for i in result["issues"] if i["taskId"] == 2)
    assert circular["message"] == "Task 2 is part of a circular dependency: 2 -> 1 -> 3 -> 2"
    assert all(i["message"] for i in result["issues"])
    assert tx.work == {}


def test_validate_explains_dangling_sibling_task_and_junk():
    # Not the stored form (a numeric string, spaces, a bool) is junk: it names nothing.
    tx = tx_of(task(2, subtasks=[sub(1, deps=["2.7", 7, "abc", "3", " 2.1", True])]))
    assert [(i["dependencyId"], i["message"]) for i in validate_dependencies(tx, "master")["issues"]] == [
        ("2.7", "Subtask 2.1 depends on non-existent subtask 2.7"),
        (7, "Subtask 2.1 depends on non-existent task 7"),
        ("abc", 'Subtask 2.1 has a dependency that is not a task or subtask id: "abc"'),
        ("3", 'Subtask 2.1 has a dependency that is not a task or subtask id: "3"'),
        (" 2.1", 'Subtask 2.1 has a dependency that is not a task or subtask id: " 2.1"'),
        (True, "Subtask 2.1 has a dependency that is not a task or subtask id: true")]


def test_validate_subtask_on_task_is_clean_and_on_its_parent_is_a_self_dependency():
    tx = tx_of(task(2, subtasks=[sub(1, deps=[5]), sub(2, deps=[2, 9])]), task(5))
    issues = validate_dependencies(tx, "master")["issues"]
    assert [(i["type"], i["taskId"], i["dependencyId"], i["message"]) for i in issues] == [
        ("self", "2.2", 2, "Subtask 2.2 depends on its own parent task 2"),
        ("missing", "2.2", 9, "Subtask 2.2 depends on non-existent task 9")]
    stats = fix_dependencies(tx, "master")["stats"]
    assert stats["selfDependenciesRemoved"] == 1 and stats["nonExistentDependenciesRemoved"] == 1
    assert deps_of(tx, "2.1") == [5] and deps_of(tx, "2.2") == []


def test_cycles_across_the_task_subtask_boundary_are_found_and_fixed():
    tx = tx_of(task(2, subtasks=[sub(1, deps=[5])]), task(5, deps=["2.1"]))
    issues = validate_dependencies(tx, "master")["issues"]
    assert [(i["type"], i["taskId"], i["dependencyId"]) for i in issues] == [("circular", 5, "2.1")]
    assert issues[0]["message"] == "Task 5 is part of a circular dependency: 5 -> 2.1 -> 5"
    assert fix_dependencies(tx, "master")["stats"]["circularDependenciesFixed"] == 1
    assert deps_of(tx, 5) == [] and deps_of(tx, "2.1") == [5]
    assert validate_dependencies(tx, "master")["valid"] is True


def test_validate_honours_tag_and_clean_tag():
    tx = messy_tx()
    other = validate_dependencies(tx, "other")
    assert [(i["type"], i["taskId"]) for i in other["issues"]] == [("self", 1)]
    clean = tx_of(task(1), task(2, deps=[1]))
    assert validate_dependencies(clean, "master") == {
        "message": "Dependencies validated successfully", "valid": True, "issues": []}
    with pytest.raises(TaskError, match="Tag 'nope' does not exist"):
        validate_dependencies(clean, "nope")


# ---- fix_dependencies --------------------------------------------------------------------------------
def test_fix_counts_and_repairs_deterministically():
    tx = messy_tx()
    result = fix_dependencies(tx, "master")
    assert result == {"message": "Dependencies fixed successfully", "tag": "master", "stats": {
        "duplicateDependenciesRemoved": 2, "nonExistentDependenciesRemoved": 2,
        "selfDependenciesRemoved": 2, "circularDependenciesFixed": 2, "tasksFixed": 2, "subtasksFixed": 1}}
    assert deps_of(tx, 1) == [3]
    assert deps_of(tx, 2) == []  # the back edge 2 -> 1 of the DFS from task 1
    assert deps_of(tx, 3) == [2]
    assert deps_of(tx, "2.1") == ["2.2"]
    assert deps_of(tx, "2.2") == []
    assert set(tx.work) == {"master"}  # the other tag is untouched
    assert validate_dependencies(tx, "master")["valid"] is True


def test_fix_is_idempotent_and_quiet_on_clean_data():
    tx = messy_tx()
    fix_dependencies(tx, "master")
    before = copy_json(tx.tasks("master"))
    again = fix_dependencies(tx, "master")
    assert again["message"] == "No dependency issues found"
    assert set(again["stats"].values()) == {0}
    assert tx.tasks("master") == before


def test_fix_honours_tag():
    tx = messy_tx()
    assert fix_dependencies(tx, "other")["stats"]["selfDependenciesRemoved"] == 1
    assert deps_of(tx, 1, "other") == []
    assert set(tx.work) == {"other"}


# ---- through the real service and the registry ------------------------------------------------------
async def seed(service):
    def fill(tx):
        tx.add("master", task(1))
        tx.add("master", task(2, deps=[1], subtasks=[sub(1), sub(2, deps=["2.1"])]))
        tx.add("master", task(3, deps=[2]))
        tx.create_tag("feature", {"description": "f"})
        tx.add("feature", task(1, deps=[1]))
    await service.write(ROOT, fill)


def snapshot(service):
    view = service.view(ROOT)
    return copy_json({"tags": {t: view.tasks(t) for t in view.tag_names()}, "state": view.state,
                      "meta": {t: view.metadata(t) for t in view.tag_names()}})


async def call(service, name, **args):
    """The tool's data, or the TaskError text for a tool error."""
    result = await call_tool(name, {"projectRoot": ROOT, **args}, None, lambda root: ToolContext(service, root))
    text = result["content"][0]["text"]
    if result.get("isError"):
        return text
    return orjson.loads(text)


async def test_service_add_remove_fix_validate(service):
    await seed(service)
    body = await call(service, "add_dependency", id="3", dependsOn="2.2")
    assert body["data"]["taskId"] == 3 and body["tag"] == "master"
    assert service.view(ROOT).task("master", 3)["dependencies"] == [2, "2.2"]
    await call(service, "remove_dependency", id="3", dependsOn="2")
    assert service.view(ROOT).task("master", 3)["dependencies"] == ["2.2"]
    report = await call(service, "validate_dependencies", tag="feature")
    assert report["data"]["valid"] is False and report["tag"] == "feature"
    fixed = await call(service, "fix_dependencies", tag="feature")
    assert fixed["data"]["stats"]["selfDependenciesRemoved"] == 1
    assert service.view(ROOT).task("feature", 1)["dependencies"] == []
    assert service.view(ROOT).task("master", 2)["dependencies"] == [1]  # master untouched


async def test_service_subtask_on_top_level_task(service):
    await seed(service)
    body = await call(service, "add_dependency", id="2.1", dependsOn="1")
    assert body["data"] == {"message": "Successfully added dependency: Task 2.1 now depends on 1",
                            "taskId": "2.1", "dependencyId": 1}
    assert service.view(ROOT).task("master", 2)["subtasks"][0]["dependencies"] == [1]
    assert (await call(service, "validate_dependencies"))["data"]["valid"] is True
    answer = await call(service, "add_dependency", id="1", dependsOn="2.1")
    assert "circular dependency (1 -> 2.1 -> 1)" in answer
    await call(service, "remove_dependency", id="2.1", dependsOn="1")
    assert service.view(ROOT).task("master", 2)["subtasks"][0]["dependencies"] == []


@pytest.mark.parametrize(("tool", "args", "text"), [
    ("add_dependency", {"id": "1", "dependsOn": "3"}, "circular dependency (1 -> 3 -> 2 -> 1)"),
    ("add_dependency", {"id": "2", "dependsOn": "2"}, "Task 2 cannot depend on itself"),
    ("add_dependency", {"id": "99", "dependsOn": "1"}, "Task with ID 99 not found"),
    ("add_dependency", {"id": "1", "dependsOn": "99"}, "Dependency target 99 does not exist"),
    ("add_dependency", {"id": "1", "dependsOn": "1,2"}, "expected a single"),
    ("add_dependency", {"id": "3", "dependsOn": "1", "tag": "no such"}, "Tag 'no such' does not exist"),
    ("remove_dependency", {"id": "99", "dependsOn": "1"}, "Task with ID 99 not found"),
    ("remove_dependency", {"id": "2.9", "dependsOn": "1"}, "Subtask 2.9 not found"),
    ("remove_dependency", {"id": "2", "dependsOn": "1", "tag": "bad/tag"}, "Tag 'bad/tag' does not exist"),
    ("validate_dependencies", {"tag": "nope"}, "Tag 'nope' does not exist"),
    ("fix_dependencies", {"tag": "nope"}, "Tag 'nope' does not exist"),
])
async def test_tool_errors_leave_state_unchanged(service, tool, args, text):
    await seed(service)
    before = snapshot(service)
    answer = await call(service, tool, **args)
    assert isinstance(answer, str) and answer.startswith("Error: ") and text in answer
    assert snapshot(service) == before


BAD_PARAMS = [
    ({"id": 3, "dependsOn": "1"}, "id: Invalid input: expected string, received number"),
    ({"id": "3", "dependsOn": ["1"]}, "dependsOn: Invalid input: expected string, received array"),
    ({"id": "3"}, "dependsOn: Invalid input: expected string, received undefined"),
    ({"dependsOn": "1"}, "id: Invalid input: expected string, received undefined"),
    ({"id": "1..2", "dependsOn": "1"}, "id: Invalid task ID format"),
    ({"id": "-3", "dependsOn": "1"}, "id: Invalid task ID format"),
    ({"id": "3", "dependsOn": "abc"}, "dependsOn: Invalid task ID format"),
    ({"id": "3", "dependsOn": "1.2.3"}, "dependsOn: Invalid task ID format"),
    ({"id": "3", "dependsOn": "1", "tag": 5}, "tag: Invalid input: expected string, received number"),
]


@pytest.mark.parametrize("tool", ["add_dependency", "remove_dependency"])
@pytest.mark.parametrize(("args", "text"), BAD_PARAMS)
async def test_schema_and_id_violations_are_param_errors(service, tool, args, text):
    await seed(service)
    before = snapshot(service)
    with pytest.raises(ParamError, match=text):
        await call(service, tool, **args)
    assert snapshot(service) == before


@pytest.mark.parametrize("tool", ["validate_dependencies", "fix_dependencies"])
async def test_read_and_fix_tools_reject_wrong_types(service, tool):
    await seed(service)
    before = snapshot(service)
    with pytest.raises(ParamError, match="tag: Invalid input: expected string, received boolean"):
        await call(service, tool, tag=True)
    with pytest.raises(ParamError, match="projectRoot: Invalid input: expected string, received undefined"):
        await call_tool(tool, {}, None, lambda root: ToolContext(service, root))
    assert snapshot(service) == before
