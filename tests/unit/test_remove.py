"""remove_task, remove_subtask, clear_subtasks: shapes, all-or-nothing, every reference cleaned."""

from __future__ import annotations

import pytest

from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.remove import clear_subtasks, remove_subtask, remove_task
from taskmaster.tasks.state import copy_json
from tests.builders import deps_of, sub, task, tx_with
from tests.conftest import ROOT


# ---- remove_task ---------------------------------------------------------------------------------
def test_remove_task_response_shape():
    tx = tx_with(task(5), task(6, subs=[sub(1), sub(2)]))
    data = remove_task(tx, "master", "5,6.1")
    assert data == {
        "totalTasks": 2, "successful": 2, "failed": 0,
        "removedTasks": [task(5), {**sub(1), "parentTaskId": 6}],
        "message": "Successfully removed task 5 from tag 'master'\n"
                   "Successfully removed subtask 6.1 from tag 'master'",
        "tasksPath": f"{ROOT}/.taskmaster/tasks/tasks.json", "tag": "master"}
    assert tx.task("master", 5) is None
    assert [s["id"] for s in tx.task("master", 6)["subtasks"]] == [2]


def test_remove_task_cleans_every_reference_from_tasks_and_subtasks():
    tx = tx_with(
        task(2, subs=[sub(1), sub(2, deps=["2.1"]), sub(3, deps=[3, "2.1", "3.1"])]),
        task(3, subs=[sub(1)]),
        task(4, deps=[2, 3, "2.1", "3.1"]),
        task(5, subs=[sub(1, deps=[3, 4, "2.1", "2.3", "3.1"])]),
    )
    remove_task(tx, "master", "3,2.1")
    assert deps_of(tx, 4) == [2]
    assert deps_of(tx, 2, 2) == []  # its sibling 2.1 went
    assert deps_of(tx, 2, 3) == []  # subtask -> task 3 cleaned too
    assert deps_of(tx, 5, 1) == [4, "2.3"]


def test_remove_task_cleans_subtask_references_in_other_tags_where_dangling():
    tx = tx_with(task(3), task(7), feature=[task(3), task(4, subs=[sub(1, deps=[3, 7, "7.1"])])])
    remove_task(tx, "master", "3,7")
    assert deps_of(tx, 4, 1, tag="feature") == [3]  # feature's own task 3 stays


def test_remove_task_cleans_other_tags_only_where_the_id_is_not_theirs():
    tx = tx_with(task(3), task(7), feature=[task(3), task(4, deps=[3, 7, 9, "7.1"])])
    remove_task(tx, "master", "3,7")
    assert deps_of(tx, 4, tag="feature") == [3, 9]  # feature's own 3 stays; 9 was not removed


def test_remove_task_parent_and_its_subtask_together_in_any_order():
    for ids in ("6,6.1", "6.1,6"):
        tx = tx_with(task(6, subs=[sub(1)]), task(7, deps=["6.1", 6]))
        data = remove_task(tx, "master", ids)
        assert data["successful"] == 2 and tx.task("master", 6) is None
        assert deps_of(tx, 7) == []


def test_remove_task_missing_changes_nothing():
    tx = tx_with(task(1), task(2, subs=[sub(1)]))
    with pytest.raises(TaskError) as err:
        remove_task(tx, "master", "1,99,2.5")
    assert err.value.message == "The following tasks were not found in tag 'master': 99, 2.5"
    assert not tx.work


def test_remove_task_duplicates_count_once():
    tx = tx_with(task(1), task(2))
    assert remove_task(tx, "master", "1, 1")["totalTasks"] == 1


# ---- remove_subtask ------------------------------------------------------------------------------
def test_remove_subtask_deletes_and_cleans_references():
    tx = tx_with(task(4, subs=[sub(1), sub(2, deps=[6, "4.1"]), sub(3, deps=["4.1"])]), task(5, deps=["4.1", 4]),
                 task(6))
    assert remove_subtask(tx, "master", "4.1") == {"message": "Subtask 4.1 successfully removed"}
    assert [s["id"] for s in tx.task("master", 4)["subtasks"]] == [2, 3]
    assert deps_of(tx, 4, 2) == [6] and deps_of(tx, 4, 3) == [] and deps_of(tx, 5) == [4]


def test_remove_subtask_convert_makes_a_task_and_rewrites_references():
    tx = tx_with(
        task(4, priority="high", subs=[sub(1), sub(2, deps=[9, "4.1"], testStrategy="ts", metadata={"m": 1}),
                                       sub(3)]),
        task(9),
        task(11, deps=["4.2"]),
    )
    data = remove_subtask(tx, "master", "4.2", convert=True)
    new = data["task"]
    assert data["message"] == "Subtask 4.2 successfully converted to task #12"
    assert new == {"id": 12, "title": "Sub 2", "description": "", "details": "", "status": "pending",
                   "dependencies": [4, 9, "4.1"], "priority": "high", "subtasks": [], "testStrategy": "ts",
                   "metadata": {"m": 1}}
    assert tx.task("master", 12) == new
    assert deps_of(tx, 11) == [12]


def test_convert_rewrites_sibling_references_to_the_new_task_and_then_skips_the_parent():
    # 4.3 waited on 4.2, so task 4 waits on the new task 10: adding 4 to its dependencies would loop.
    tx = tx_with(task(4, subs=[sub(1), sub(2, deps=["4.1"]), sub(3, deps=["4.2"])]))
    new = remove_subtask(tx, "master", "4.2", convert=True)["task"]
    assert new["id"] == 5 and new["dependencies"] == ["4.1"]
    assert deps_of(tx, 4, 3) == [5]  # a subtask depending on a top-level task


def test_convert_does_not_add_the_parent_when_the_parent_waits_on_it():
    tx = tx_with(task(4, deps=["4.1"], subs=[sub(1)]))
    new = remove_subtask(tx, "master", "4.1", convert=True)["task"]
    assert new["dependencies"] == [] and deps_of(tx, 4) == [5]


@pytest.mark.parametrize("sid,match", [
    ("4", 'Invalid subtask ID format: 4. Expected format: "parentId.subtaskId"'),
    ("4.9", "Subtask 4.9 not found"),
    ("8.1", "Parent task with ID 8 not found"),
    ("5.1", "Parent task 5 has no subtasks"),
    ("4.1,4.2", "remove_subtask takes one subtask ID"),
])
def test_remove_subtask_errors(sid, match):
    tx = tx_with(task(4, subs=[sub(1), sub(2)]), task(5))
    with pytest.raises(TaskError, match=match):
        remove_subtask(tx, "master", sid)
    assert not tx.work


# ---- clear_subtasks ------------------------------------------------------------------------------
def test_clear_subtasks_by_id_reports_missing_and_cleans_references():
    tx = tx_with(task(1, subs=[sub(1)]), task(2, subs=[sub(1), sub(2)]), task(3, deps=["2.2", 1, "1.1"]))
    data = clear_subtasks(tx, "master", "2,99")
    assert data == {"message": "Successfully cleared subtasks from 2 task(s) in tag 'master'",
                    "tasksCleared": [{"id": 2, "title": "Task 2"}, {"id": 99, "title": "Task not found"}],
                    "tag": "master"}
    assert tx.task("master", 2)["subtasks"] == [] and len(tx.task("master", 1)["subtasks"]) == 1
    assert deps_of(tx, 3) == [1, "1.1"]


def test_clear_all_edits_only_tasks_with_subtasks():
    tx = tx_with(task(1, subs=[sub(1)]), task(2))
    data = clear_subtasks(tx, "master", all_tasks=True)
    assert [t["id"] for t in data["tasksCleared"]] == [1, 2]
    assert tx.task("master", 1)["subtasks"] == []
    assert len(tx.work["master"].uid) == 1  # task 2 was not copied


@pytest.mark.parametrize("kwargs,match", [
    ({}, "Either task IDs with id parameter or all parameter must be provided"),
    ({"ids": " "}, "Either task IDs"),
    ({"ids": "2.1"}, "clear_subtasks takes task IDs, not subtask IDs: 2.1"),
])
def test_clear_subtasks_errors(kwargs, match):
    tx = tx_with(task(2, subs=[sub(1)]))
    with pytest.raises(TaskError, match=match):
        clear_subtasks(tx, "master", **kwargs)
    assert not tx.work


def test_clear_all_on_empty_tag_fails():
    with pytest.raises(TaskError, match="No tasks found in tag context 'master'"):
        clear_subtasks(tx_with(), "master", all_tasks=True)


# ---- through the real store ----------------------------------------------------------------------
async def test_service_remove_is_durable_across_tags(service):
    def seed(tx):
        for t in (task(1), task(2, deps=[1], subs=[sub(1, deps=[])]), task(3, deps=["2.1"])):
            tx.add("master", t)
        tx.create_tag("feature", {})
        tx.add("feature", task(5, deps=[1, 2]))
        tx.add("feature", task(2))

    await service.write(ROOT, seed)
    await service.write(ROOT, lambda tx: remove_task(tx, "master", "1,2"))
    view = service.view(ROOT)
    assert [t["id"] for t in view.tasks("master")] == [3]
    assert view.task("master", 3)["dependencies"] == []
    assert view.task("feature", 5)["dependencies"] == [2]
    before = copy_json(view.tasks("master"))
    with pytest.raises(TaskError):
        await service.write(ROOT, lambda tx: remove_task(tx, "master", "3,4"))
    assert service.view(ROOT).tasks("master") == before
