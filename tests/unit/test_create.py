"""add_task (manual mode) and add_subtask (new subtask, or a task converted into one)."""

from __future__ import annotations

import pytest

from taskmaster.tasks.create import add_subtask, add_task
from taskmaster.tasks.errors import TaskError
from tests.conftest import ROOT, make_tx


def task(i, deps=(), subs=(), **extra):
    return {"id": i, "title": f"Task {i}", "description": f"About {i}", "status": "pending",
            "priority": "medium", "dependencies": list(deps), "subtasks": list(subs), **extra}


def sub(i, deps=()):
    return {"id": i, "title": f"Sub {i}", "description": "", "details": "", "status": "pending",
            "dependencies": list(deps)}


def tx_with(*tasks, **other_tags):
    tags = {"master": {"tasks": list(tasks)}}
    tags.update({name: {"tasks": ts} for name, ts in other_tags.items()})
    return make_tx(tags)


def deps_of(tx, tid, sub_id=None):
    t = tx.task("master", tid)
    if sub_id is None:
        return t["dependencies"]
    return next(s for s in t["subtasks"] if s["id"] == sub_id)["dependencies"]


# ---- add_task ------------------------------------------------------------------------------------
def test_add_task_manual_defaults_and_response():
    tx = tx_with(task(3), task(10))
    data = add_task(tx, "master", title="New", description="Thing")
    assert data == {"taskId": 11, "message": "Successfully added new task #11", "telemetryData": None,
                    "tagInfo": None}
    assert tx.task("master", 11) == {"id": 11, "title": "New", "description": "Thing", "details": "",
                                     "testStrategy": "", "status": "pending", "dependencies": [],
                                     "priority": "medium", "subtasks": []}


def test_add_task_priority_normalised_and_unknown_deps_dropped():
    tx = tx_with(task(1, subs=[sub(1)]), task(2))
    add_task(tx, "master", title="a", description="b", priority="urgent", dependencies="2, 99, 1.1, 1.5")
    new = tx.task("master", 3)
    assert new["priority"] == "medium" and new["dependencies"] == [2, "1.1"]
    add_task(tx, "master", title="c", description="d", priority=" HIGH ", details="x", test_strategy="y")
    assert tx.task("master", 4)["priority"] == "high"
    assert tx.task("master", 4)["details"] == "x" and tx.task("master", 4)["testStrategy"] == "y"


def test_add_task_first_in_empty_tag_is_1():
    tx = tx_with()
    assert add_task(tx, "master", title="a", description="b")["taskId"] == 1


@pytest.mark.parametrize("kwargs,match", [
    ({"title": "only title"}, "Either the prompt parameter or both title and description"),
    ({"description": "only description"}, "Either the prompt parameter"),
    ({}, "Either the prompt parameter"),
])
def test_add_task_errors(kwargs, match):
    tx = tx_with(task(1))
    with pytest.raises(TaskError, match=match):
        add_task(tx, "master", **kwargs)
    assert not tx.work


def test_add_task_to_missing_tag_fails():
    with pytest.raises(TaskError, match="Tag 'nope' does not exist"):
        add_task(tx_with(), "nope", title="a", description="b")


# ---- add_subtask: new ----------------------------------------------------------------------------
def test_new_subtask_ids_defaults_and_response():
    tx = tx_with(task(4, subs=[sub(1), sub(3)]), task(5, subs=[sub(1)]))
    data = add_subtask(tx, "master", "4", title="Next", dependencies="1, 5.1")
    expected = {"id": 4, "title": "Next", "description": "", "details": "", "status": "pending",
                "dependencies": ["4.1", "5.1"], "parentTaskId": 4}  # the bare "1" is sibling 4.1
    assert data == {"message": "New subtask 4.4 successfully created", "subtask": expected}
    assert tx.task("master", 4)["subtasks"][-1] == expected


def test_new_subtask_first_one_and_status():
    tx = tx_with(task(2))
    data = add_subtask(tx, "master", "2", title="a", description="d", details="x", status="done")
    assert data["subtask"]["id"] == 1 and data["subtask"]["status"] == "done"
    assert data["subtask"]["details"] == "x"


@pytest.mark.parametrize("args,match", [
    (("99",), "Parent task with ID 99 not found"),
    (("4.1",), "Invalid parent task ID: 4.1"),
    (("4,5",), "Invalid parent task ID"),
])
def test_new_subtask_parent_errors(args, match):
    tx = tx_with(task(4, subs=[sub(1)]), task(5))
    with pytest.raises(TaskError, match=match):
        add_subtask(tx, "master", *args, title="t")
    assert not tx.work


@pytest.mark.parametrize("kwargs,match", [
    ({}, "Either taskId or title must be provided"),
    ({"title": "t", "dependencies": "7"}, r"Dependency 4.7 of the new subtask 4.2 does not exist \(a bare "
                                          r"number names a sibling subtask here; to depend on task 7 use "
                                          r"add_dependency\)"),
    ({"title": "t", "dependencies": "5"}, "Dependency 4.5 of the new subtask 4.2"),  # task 5 exists
    ({"title": "t", "dependencies": "2"}, "Dependency 4.2 of the new subtask 4.2"),  # itself
    ({"title": "t", "dependencies": "5.3"}, "Dependency 5.3 of the new subtask 4.2 does not exist$"),
    ({"title": "t", "status": "finished"}, "Invalid status: finished"),
])
def test_new_subtask_argument_errors(kwargs, match):
    tx = tx_with(task(4, subs=[sub(1)]), task(5))
    with pytest.raises(TaskError, match=match):
        add_subtask(tx, "master", "4", **kwargs)
    assert not tx.work


# ---- add_subtask: convert ------------------------------------------------------------------------
def test_convert_keeps_fields_and_rewrites_every_reference():
    tx = tx_with(
        task(1, subs=[sub(1)]),
        task(2, deps=["1.1"], metadata={"k": "v"}, details="det"),
        task(3, deps=[2]),
        task(4, subs=[sub(1, deps=["2.9", 2])]),
    )
    data = add_subtask(tx, "master", "1", task_id="2")
    assert data["message"] == "Task 2 successfully converted to a subtask of task 1"
    new = data["subtask"]
    assert new["id"] == 2 and new["parentTaskId"] == 1 and new["metadata"] == {"k": "v"}
    assert new["details"] == "det" and new["dependencies"] == ["1.1"]  # now its sibling, same spelling
    assert tx.task("master", 2) is None
    assert tx.task("master", 1)["subtasks"][-1] == new
    assert deps_of(tx, 3) == ["1.2"]
    assert deps_of(tx, 4, 1) == ["1.2"]  # a subtask's task reference follows; "2.9" pointed into
    # task 2, which has no subtasks now


def test_convert_keeps_dependencies_on_top_level_tasks():
    tx = tx_with(task(1), task(2), task(3, deps=[2]))
    new = add_subtask(tx, "master", "1", task_id="3")["subtask"]
    assert new["id"] == 1 and new["dependencies"] == [2] and deps_of(tx, 1, 1) == [2]


def test_convert_drops_the_dependency_on_the_new_parent():
    tx = tx_with(task(1), task(2), task(3, deps=[1, 2]))
    new = add_subtask(tx, "master", "1", task_id="3")["subtask"]
    assert new["dependencies"] == [2]  # a subtask cannot wait for its own parent


@pytest.mark.parametrize("parent,task_id,match", [
    ("99", "2", "Parent task with ID 99 not found"),
    ("1", "98", "Task with ID 98 not found"),
    ("1", "1", "Cannot make a task a subtask of itself"),
    ("1", "2.1", "Invalid task ID to convert: 2.1"),
    ("1", "2", "Task 2 has subtasks of its own"),
    ("3", "4", "Cannot create circular dependency: task 3 is already a subtask or dependent of task 4"),
    ("7", "4", "Cannot create circular dependency"),  # 7 -> 6 -> 4
    ("8", "4", "Cannot create circular dependency: task 8"),  # through its subtask: 8.1 -> 4
])
def test_convert_errors(parent, task_id, match):
    tx = tx_with(task(1), task(2, subs=[sub(1)]), task(3, deps=[6], subs=[sub(1)]), task(4),
                 task(5, subs=[sub(1, ["3.1"])]), task(6, deps=[4]), task(7, deps=[6]),
                 task(8, subs=[sub(1, [4])]))
    with pytest.raises(TaskError, match=match):
        add_subtask(tx, "master", parent, task_id=task_id)
    assert not tx.work


def test_convert_allowed_when_the_parent_only_reaches_other_subtasks():
    tx = tx_with(task(3, subs=[sub(1)]), task(4), task(5, subs=[sub(1, ["3.1"])]))
    assert add_subtask(tx, "master", "5", task_id="4")["subtask"]["id"] == 2


# ---- through the real store ----------------------------------------------------------------------
async def test_service_add_task_and_subtasks_are_stored(service):
    for title in ("a", "b"):
        await service.write(ROOT, lambda tx, title=title: add_task(tx, "master", title=title, description="d"))
    await service.write(ROOT, lambda tx: add_subtask(tx, "master", "2", title="s", dependencies=""))
    data = await service.write(ROOT, lambda tx: add_subtask(tx, "master", "2", title="t", dependencies="1"))
    assert data["subtask"]["id"] == 2
    view = service.view(ROOT)
    assert [t["id"] for t in view.tasks("master")] == [1, 2]
    assert [(s["id"], s["dependencies"]) for s in view.task("master", 2)["subtasks"]] == [(1, []), (2, ["2.1"])]
    await service.write(ROOT, lambda tx: add_subtask(tx, "master", "2", task_id="1"))
    view = service.view(ROOT)
    assert [t["id"] for t in view.tasks("master")] == [2]
    assert view.task("master", 2)["subtasks"][-1]["title"] == "a"
