"""move_task within a tag (renumber, re-parent, reorder) and across tags."""

from __future__ import annotations

import pytest

from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.moves import move_task
from taskmaster.tasks.state import copy_json
from tests.builders import deps_of, sub, task, tx_with
from tests.conftest import ROOT


def sub_ids(tx, tid, tag="master"):
    return [s["id"] for s in tx.task(tag, tid)["subtasks"]]


# ---- task -> task --------------------------------------------------------------------------------
def test_renumber_rewrites_every_reference():
    tx = tx_with(task(5, deps=[1], subs=[sub(1), sub(2, deps=[1, "5.1"], parentTaskId=5)]), task(1),
                 task(6, deps=[5, "5.2"], subs=[sub(1, deps=[5, "5.1"])]))
    data = move_task(tx, "master", "5", "9")
    assert data["message"] == "Successfully moved task/subtask 5 to 9"
    assert data["movedItem"]["id"] == 9 and data["movedItem"]["dependencies"] == [1]
    assert tx.task("master", 5) is None
    assert deps_of(tx, 9, 2) == [1, "9.1"] and tx.task("master", 9)["subtasks"][1]["parentTaskId"] == 9
    assert deps_of(tx, 6) == [9, "9.2"] and deps_of(tx, 6, 1) == [9, "9.1"]  # subtask -> task follows


@pytest.mark.parametrize("src,dst,match", [
    ("5", "6", "Task with ID 6 already exists. Use a different destination ID."),
    ("1", "1", "Task with ID 1 already exists"),
    ("7", "9", "Source task with ID 7 not found"),
])
def test_renumber_errors(src, dst, match):
    tx = tx_with(task(1), task(5), task(6))
    with pytest.raises(TaskError, match=match):
        move_task(tx, "master", src, dst)
    assert not tx.work


# ---- task -> subtask -----------------------------------------------------------------------------
def test_task_to_free_subtask_slot_keeps_fields_and_rewrites_references():
    tx = tx_with(task(2, subs=[sub(1)]), task(3), task(4, deps=[3, "2.1"], metadata={"a": 1}),
                 task(8, deps=[4, 2], subs=[sub(1, deps=[4])]))
    data = move_task(tx, "master", "4", "2.5")
    assert data["movedItem"]["id"] == 5 and data["movedItem"]["metadata"] == {"a": 1}
    assert data["movedItem"]["dependencies"] == [3, "2.1"]  # its task dependency kept; 2.1 a sibling now
    assert sub_ids(tx, 2) == [1, 5] and tx.task("master", 4) is None
    assert deps_of(tx, 8) == [2, "2.5"] and deps_of(tx, 8, 1) == ["2.5"]


def test_task_under_the_task_it_depended_on_drops_that_dependency():
    tx = tx_with(task(2), task(3), task(4, deps=[2, 3]))
    assert move_task(tx, "master", "4", "2.1")["movedItem"]["dependencies"] == [3]


def test_task_onto_existing_subtask_id_gets_the_next_free_id_after_it():
    tx = tx_with(task(4, subs=[sub(1), sub(3), sub(2)]), task(21))
    data = move_task(tx, "master", "21", "4.3")
    assert data["movedItem"]["id"] == 4
    assert sub_ids(tx, 4) == [1, 3, 4, 2]  # no second 4.3


@pytest.mark.parametrize("src,dst,match", [
    ("9", "4.1", "Source task with ID 9 not found"),
    ("5", "8.1", "Destination parent task with ID 8 not found"),
    ("4", "4.1", "Cannot make a task a subtask of itself"),
    ("4", "5.1", "Task 4 has subtasks of its own"),
    ("6", "5.1", "Cannot create circular dependency: task 5 is already a subtask or dependent of task 6"),
    ("6", "7.1", "Cannot create circular dependency: task 7"),  # it waits on 6 through subtask 7.1
])
def test_task_to_subtask_errors(src, dst, match):
    tx = tx_with(task(4, subs=[sub(1)]), task(5, deps=[6]), task(6), task(7, subs=[sub(1, deps=[6])]))
    with pytest.raises(TaskError, match=match):
        move_task(tx, "master", src, dst)
    assert not tx.work


# ---- subtask -> task -----------------------------------------------------------------------------
def test_subtask_to_new_task():
    tx = tx_with(task(2, subs=[sub(1), sub(2, deps=[3, "2.1", "3.1"], priority="low"), sub(3, deps=["2.2"])]),
                 task(3, deps=["2.2"], subs=[sub(1)]))
    data = move_task(tx, "master", "2.2", "12")
    new = data["movedItem"]
    assert data["message"] == "Successfully moved task/subtask 2.2 to 12"
    assert new["id"] == 12 and new["priority"] == "low" and new["subtasks"] == []
    assert new["dependencies"] == [3, "2.1", "3.1"]  # kept as they were
    assert tx.task("master", 12) == new and sub_ids(tx, 2) == [1, 3]
    assert deps_of(tx, 3) == [12]
    assert deps_of(tx, 2, 3) == [12]  # its former sibling now depends on task 12


def test_subtask_to_existing_task_fails():
    tx = tx_with(task(2, subs=[sub(1)]), task(3))
    with pytest.raises(TaskError, match="Cannot move to existing task ID 3. Choose a different ID"):
        move_task(tx, "master", "2.1", "3")
    with pytest.raises(TaskError, match="Source subtask 2.7 not found"):
        move_task(tx, "master", "2.7", "9")
    with pytest.raises(TaskError, match="Source parent task with ID 8 not found"):
        move_task(tx, "master", "8.1", "9")
    assert not tx.work


# ---- subtask -> subtask --------------------------------------------------------------------------
@pytest.mark.parametrize("src,dst,order", [
    ("2.3", "2.1", [1, 3, 2, 4]),
    ("2.1", "2.3", [2, 3, 1, 4]),
    ("2.2", "2.9", [1, 3, 4, 2]),  # missing destination: to the end
    ("2.2", "2.2", [1, 2, 3, 4]),  # onto itself: stays
])
def test_reorder_within_parent_keeps_ids(src, dst, order):
    tx = tx_with(task(2, subs=[sub(1), sub(2), sub(3), sub(4, deps=[1, "2.2"])]), task(1))
    move_task(tx, "master", src, dst)
    assert sub_ids(tx, 2) == order and deps_of(tx, 2, 4) == [1, "2.2"]


def test_subtask_to_other_parent_free_and_taken_slots():
    tx = tx_with(task(2, subs=[sub(1), sub(2, deps=[5, "2.1"], parentTaskId=2), sub(3, deps=["2.2"])]),
                 task(4, subs=[sub(1)]), task(5, deps=["2.2"]), task(6, subs=[sub(1, deps=["2.2"])]))
    with pytest.raises(TaskError, match="Cannot create circular dependency: task 5 is already"):
        move_task(tx, "master", "2.2", "5.1")  # task 5 waits on 2.2
    data = move_task(tx, "master", "2.2", "4.1")
    moved = data["movedItem"]
    assert moved["id"] == 2 and moved["parentTaskId"] == 4 and moved["dependencies"] == [5, "2.1"]
    assert sub_ids(tx, 4) == [1, 2] and sub_ids(tx, 2) == [1, 3]
    assert deps_of(tx, 5) == ["4.2"] and deps_of(tx, 2, 3) == ["4.2"] and deps_of(tx, 6, 1) == ["4.2"]
    move_task(tx, "master", "2.3", "4.7")
    assert sub_ids(tx, 4) == [1, 2, 7] and deps_of(tx, 4, 7) == ["4.2"]  # "4.2" is now its sibling


def test_subtask_under_the_task_it_depended_on_drops_that_dependency():
    tx = tx_with(task(2, subs=[sub(1, deps=[4, 5])]), task(4), task(5))
    assert move_task(tx, "master", "2.1", "4.1")["movedItem"]["dependencies"] == [5]


def test_subtask_under_a_parent_that_waits_on_it_is_refused():
    tx = tx_with(task(2, subs=[sub(1)]), task(4, deps=["2.1"]))
    with pytest.raises(TaskError, match="Cannot create circular dependency"):
        move_task(tx, "master", "2.1", "4.1")


# ---- lists and arguments -------------------------------------------------------------------------
def test_pairs_apply_in_order():
    tx = tx_with(task(1), task(2), task(3, deps=[1, 2]))
    data = move_task(tx, "master", "1,2", "10,11")
    assert data["message"] == "Successfully moved task/subtask 1,2 to 10,11"
    assert [m["movedItem"]["id"] for m in data["moves"]] == [10, 11]
    assert deps_of(tx, 3) == [10, 11]


@pytest.mark.parametrize("src,dst,match", [
    ("3", "40,41", r"Number of source IDs \(1\) must match number of destination IDs \(2\)"),
    ("3,4", "40", r"Number of source IDs \(2\) must match number of destination IDs \(1\)"),
    ("3", None, "Destination ID is required for within-tag moves"),
    ("3", " ", "Destination ID is required"),
])
def test_argument_errors(src, dst, match):
    tx = tx_with(task(3), task(4))
    with pytest.raises(TaskError, match=match):
        move_task(tx, "master", src, dst)
    assert not tx.work


# ---- across tags ---------------------------------------------------------------------------------
def test_cross_tag_move_keeps_ids_creates_tag_and_records_history():
    tx = tx_with(task(1), task(2, deps=[1], subs=[sub(1, deps=[1]), sub(2, deps=["2.1"])]),
                 task(3, deps=[2, "2.1"], subs=[sub(1, deps=[2])]))
    data = move_task(tx, "master", "2", from_tag="master", to_tag="feature", ignore_dependencies=True)
    assert data["message"] == 'Successfully moved 1 task(s) from "master" to "feature"'
    assert data["movedTasks"] == [{"id": 2, "fromTag": "master", "toTag": "feature"}]
    assert data["moveOptions"] == {"withDependencies": False, "ignoreDependencies": True}
    assert data["sourceTag"] == "master" and data["targetTag"] == "feature" and data["tips"]
    moved = tx.task("feature", 2)
    assert moved["dependencies"] == [] and moved["subtasks"][0]["dependencies"] == []  # on task 1: dropped
    assert moved["subtasks"][1]["dependencies"] == ["2.1"]  # moved along with it: kept
    assert moved["metadata"]["moveHistory"][0]["fromTag"] == "master"
    assert tx.has_tag("feature") and tx.metadata("feature")["description"].startswith("Tag created on")
    assert set(tx.metadata("feature")) == {"created", "updated", "description"}
    assert tx.task("master", 2) is None and deps_of(tx, 3) == []  # left behind: references cleaned
    assert deps_of(tx, 3, 1) == []


def test_cross_tag_conflicts_refused_without_an_option():
    tx = tx_with(task(1), task(2, deps=[1]))
    with pytest.raises(TaskError, match="Cannot move tasks: 1 cross-tag dependency conflicts found"):
        move_task(tx, "master", "2", from_tag="master", to_tag="feature")
    assert not tx.work


def test_cross_tag_subtask_on_staying_task_is_a_conflict():
    tx = tx_with(task(1), task(2, subs=[sub(1, deps=[1])]))
    with pytest.raises(TaskError, match=r"\(task 2 depends on 1\)"):
        move_task(tx, "master", "2", from_tag="master", to_tag="feature")
    assert not tx.work
    data = move_task(tx, "master", "2", from_tag="master", to_tag="feature", with_dependencies=True)
    assert [m["id"] for m in data["movedTasks"]] == [2, 1]
    assert tx.task("feature", 2)["subtasks"][0]["dependencies"] == [1]


def test_cross_tag_with_dependencies_moves_the_closure():
    tx = tx_with(task(1), task(2, deps=[1]), task(3, subs=[sub(1, deps=["2.9"])]), task(4, deps=[3]), task(5))
    data = move_task(tx, "master", "4", from_tag="master", to_tag="feature", with_dependencies=True)
    assert [m["id"] for m in data["movedTasks"]] == [4, 1, 2, 3]
    assert data["message"] == 'Successfully moved 4 task(s) from "master" to "feature"'
    assert [t["id"] for t in tx.tasks("master")] == [5]
    assert deps_of(tx, 2, tag="feature") == [1] and "tips" not in data


def test_cross_tag_moving_dependent_tasks_together_is_no_conflict():
    tx = tx_with(task(1), task(2, deps=[1]))
    data = move_task(tx, "master", "1,2", from_tag="master", to_tag="feature")
    assert len(data["movedTasks"]) == 2 and deps_of(tx, 2, tag="feature") == [1]


@pytest.mark.parametrize("src,to_tag,match", [
    ("1", "feature", 'Task 1 already exists in target tag "feature"'),
    ("9", "feature", 'Task 9 not found in source tag "master"'),
    ("1.1", "feature", "Cannot move subtask 1.1 directly between tags"),
    ("1", "bad name", "Tag name can only contain letters"),
    ("1", "x\n", "Tag name can only contain letters"),
    ("1", "Main", "reserved tag name"),
])
def test_cross_tag_errors(src, to_tag, match):
    tx = tx_with(task(1, subs=[sub(1)]), feature=[task(1)])
    with pytest.raises(TaskError, match=match):
        move_task(tx, "master", src, from_tag="master", to_tag=to_tag)
    assert not tx.work


def test_cross_tag_missing_source_tag():
    with pytest.raises(TaskError, match='Source tag "nope" not found or invalid'):
        move_task(tx_with(task(1)), "master", "1", from_tag="nope", to_tag="master")


def test_same_from_and_to_tag_is_a_within_tag_move():
    tx = tx_with(task(1))
    assert move_task(tx, "master", "1", "2", from_tag="master", to_tag="master")["movedItem"]["id"] == 2


# ---- through the real store ----------------------------------------------------------------------
async def test_service_moves_are_atomic_and_durable(service):
    await service.write(ROOT, lambda tx: [tx.add("master", t) for t in
                                          (task(1), task(2, subs=[sub(1)]), task(3, deps=[1]), task(4, deps=["2.1"]))])
    before = copy_json(service.view(ROOT).tasks("master"))
    with pytest.raises(TaskError, match="Task with ID 3 already exists"):
        await service.write(ROOT, lambda tx: move_task(tx, "master", "1,2", "10,3"))
    assert service.view(ROOT).tasks("master") == before  # the first pair did not stick either
    await service.write(ROOT, lambda tx: move_task(tx, "master", "1,2.1", "10,3.1"))
    view = service.view(ROOT)
    assert [t["id"] for t in view.tasks("master")] == [2, 3, 4, 10]
    assert view.task("master", 3)["dependencies"] == [10] and view.task("master", 3)["subtasks"][0]["id"] == 1
    assert view.task("master", 4)["dependencies"] == ["3.1"]
    await service.write(ROOT, lambda tx: move_task(tx, "master", "10", from_tag="master", to_tag="later"))
    view = service.view(ROOT)
    assert view.task("later", 10)["title"] == "Task 1" and view.task("master", 3)["dependencies"] == []
