"""set_task_status: response shape, tm-core parent rules, all-or-nothing lists, untouched no-ops."""

from __future__ import annotations

import pytest

from taskmaster.storage import project_prefix
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.state import copy_json
from taskmaster.tasks.status import parent_status, set_task_status
from tests.conftest import ROOT, make_tx


def task(i, status="pending", subs=()):
    return {"id": i, "title": f"Task {i}", "description": "", "status": status, "priority": "medium",
            "dependencies": [], "subtasks": [sub(j, s) for j, s in enumerate(subs, 1)]}


def sub(i, status="pending"):
    return {"id": i, "title": f"Sub {i}", "description": "", "details": "", "status": status,
            "dependencies": []}


def tx_with(*tasks):
    return make_tx({"master": {"tasks": list(tasks)}})


def test_task_status_response_and_updated_at():
    tx = tx_with(task(1), task(2))
    data = set_task_status(tx, "master", "1", "done")
    assert data == {"message": 'Successfully updated 1 task(s) to "done"',
                    "tasks": [{"success": True, "oldStatus": "pending", "newStatus": "done", "taskId": 1}]}
    t1 = tx.task("master", 1)
    assert t1["status"] == "done" and t1["updatedAt"].endswith("Z")
    assert "updatedAt" not in tx.task("master", 2)


def test_setting_parent_does_not_touch_subtasks():
    tx = tx_with(task(1, subs=["pending", "in-progress"]))
    set_task_status(tx, "master", "1", "done")
    assert [s["status"] for s in tx.task("master", 1)["subtasks"]] == ["pending", "in-progress"]


@pytest.mark.parametrize("before,change,parent_before,parent_after", [
    (["pending", "done"], ("1", "done"), "in-progress", "done"),          # all done -> done
    (["pending", "pending"], ("1", "in-progress"), "pending", "in-progress"),
    (["pending", "pending"], ("1", "done"), "pending", "in-progress"),    # any done -> in-progress
    (["done", "pending"], ("1", "pending"), "in-progress", "pending"),    # all pending -> pending
    (["pending", "blocked"], ("1", "deferred"), "review", "review"),      # otherwise unchanged
    (["done", "pending"], ("2", "cancelled"), "in-progress", "in-progress"),  # cancelled is not done
])
def test_subtask_change_recomputes_parent(before, change, parent_before, parent_after):
    tx = tx_with(task(7, parent_before, subs=before))
    data = set_task_status(tx, "master", f"7.{change[0]}", change[1])
    assert data["tasks"][0]["taskId"] == f"7.{change[0]}"
    parent = tx.task("master", 7)
    assert parent["status"] == parent_after
    assert ("updatedAt" in parent) == (parent_before != parent_after)


def test_parent_rule_counts_completed_as_done():
    assert parent_status([{"status": "completed"}, {"status": "done"}]) == "done"
    assert parent_status([{"status": "cancelled"}, {"status": "done"}]) == "in-progress"
    assert parent_status([{}, {"status": "pending"}]) == "pending"
    assert parent_status([{"status": "blocked"}]) is None


def test_comma_list_applies_each_in_order():
    tx = tx_with(task(1), task(2, subs=["pending"]))
    data = set_task_status(tx, "master", " 1 , 2.1 ", "in-progress")
    assert [r["taskId"] for r in data["tasks"]] == [1, "2.1"]
    assert data["message"] == 'Successfully updated 2 task(s) to "in-progress"'
    assert tx.task("master", 2)["status"] == "in-progress"


def test_missing_id_in_list_changes_nothing_and_names_it():
    tx = tx_with(task(4), task(5, subs=["pending"]))
    with pytest.raises(TaskError) as err:
        set_task_status(tx, "master", "4,99,5.7", "done")
    assert "99" in err.value.message and "5.7" in err.value.message and "'master'" in err.value.message
    assert not tx.work  # not even task 4 was touched


def test_same_status_is_success_without_touching_the_transaction():
    tx = tx_with(task(1, "done", subs=["done"]))
    data = set_task_status(tx, "master", "1,1.1", "done")
    assert [r["oldStatus"] for r in data["tasks"]] == ["done", "done"]
    assert not tx.work


def test_invalid_status_rejected():
    with pytest.raises(TaskError, match="Invalid status: urgent"):
        set_task_status(tx_with(task(1)), "master", "1", "urgent")


async def test_service_status_is_durable_and_noop_writes_nothing(service):
    await service.write(ROOT, lambda tx: [tx.add("master", task(i, subs=["pending", "pending"]))
                                          for i in (1, 2)])
    await service.write(ROOT, lambda tx: set_task_status(tx, "master", "2.1", "done"))
    view = service.view(ROOT)
    assert view.task("master", 2)["status"] == "in-progress"
    assert view.task("master", 2)["subtasks"][0]["status"] == "done"
    before = copy_json(view.tasks("master"))
    stored = dict(service.store.scan(project_prefix(ROOT)))
    tasks = service.view(ROOT).tasks("master")
    await service.write(ROOT, lambda tx: set_task_status(tx, "master", "2.1", "done"))
    assert dict(service.store.scan(project_prefix(ROOT))) == stored  # nothing committed
    assert service.view(ROOT).tasks("master") is tasks  # the cache was not refreshed either
    assert service.view(ROOT).tasks("master") == before
