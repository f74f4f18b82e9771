"""set_task_status: tm-core's rules (a parent's status follows its subtasks, never the reverse).

Deliberate difference from the reference: a comma list is all-or-nothing. Every id is checked
before anything changes; the reference updated the ids before a missing one and then failed.
"""

from __future__ import annotations

from .errors import TaskError
from .ids import Ref
from .model import DONE, STATUSES, exists, find_subtask, iso_now
from .references import refs_or_error
from .state import ProjectTx


def set_task_status(tx: ProjectTx, tag: str, ids: str, status: str) -> dict:
    require_status(status)
    refs = refs_or_error(ids)
    missing = [str(r) for r in refs if not exists(tx, tag, r)]
    if missing:
        raise TaskError(f"Failed to update task status for {', '.join(missing)}: not found in tag "
                        f"'{tag}'. Nothing was changed.", "TASK_NOT_FOUND")
    results = [_set_one(tx, tag, ref, status) for ref in refs]
    return {"message": f'Successfully updated {len(refs)} task(s) to "{status}"', "tasks": results}


def require_status(status: str) -> str:
    if status not in STATUSES:
        raise TaskError(f"Invalid status: {status}. Must be one of: {', '.join(STATUSES)}",
                        "INVALID_STATUS")
    return status


def parent_status(subtasks: list[dict]) -> str | None:
    """What a parent's status becomes after a subtask change (None: leave it as it is).

    All subtasks done -> done; else any in progress or any done -> in-progress; all pending ->
    pending. Cancelled does not count as done.
    """
    statuses = [s.get("status") or "pending" for s in subtasks]
    if not statuses:
        return None
    if all(s in DONE for s in statuses):
        return "done"
    if any(s == "in-progress" or s in DONE for s in statuses):
        return "in-progress"
    if all(s == "pending" for s in statuses):
        return "pending"
    return None


def _set_one(tx: ProjectTx, tag: str, ref: Ref, status: str) -> dict:
    task = tx.task(tag, ref.task)
    item = task if ref.sub is None else find_subtask(task, ref.sub)
    old = item.get("status") or "pending"
    result = {"success": True, "oldStatus": old, "newStatus": status, "taskId": ref.wire}
    if old == status:
        return result  # nothing to write: the transaction stays untouched
    now = iso_now()
    task = tx.edit(tag, task)
    item = task if ref.sub is None else find_subtask(task, ref.sub)
    item["status"] = status
    item["updatedAt"] = now
    if ref.sub is not None:
        new_parent = parent_status(task["subtasks"])
        if new_parent is not None and new_parent != (task.get("status") or "pending"):
            task["status"] = new_parent
            task["updatedAt"] = now
    return result
