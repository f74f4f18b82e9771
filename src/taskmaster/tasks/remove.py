"""remove_task, remove_subtask and clear_subtasks.

Deliberate differences from the reference: everything is all-or-nothing (every id is checked
first), and every reference to what goes away is cleaned — from tasks and from subtasks, to tasks
and to subtasks (references.py) — where the reference cleaned only numeric ones and left the rest
dangling (ready to point at the next task that reuses the id). As in the reference the cleaning
covers every tag; in another tag a reference is removed only if it does not name an item of that
tag itself (ids are per tag, so there it means something else).
"""

from __future__ import annotations

from collections.abc import Iterable

from .create import next_task_id
from .errors import TaskError
from .ids import Ref
from .model import DEFAULT_PRIORITY, exists, find_subtask, resolve
from .references import drop_refs, reaches, refs_or_error, rewrite_refs, sorted_deps
from .state import ProjectTx, copy_json


def tasks_path(tx: ProjectTx) -> str:
    """Where Task Master keeps the file this project's tasks export to."""
    return f"{tx.root}/.taskmaster/tasks/tasks.json"


def remove_task(tx: ProjectTx, tag: str, ids: str) -> dict:
    refs = list(dict.fromkeys(refs_or_error(ids)))
    missing = [str(r) for r in refs if not exists(tx, tag, r)]
    if missing:
        raise TaskError(f"The following tasks were not found in tag '{tag}': {', '.join(missing)}",
                        "INVALID_TASK_ID")
    whole = {r.task for r in refs if r.sub is None}
    found = [(ref, *resolve(tx, tag, ref)) for ref in refs]  # before anything moves
    removed, messages = [], []
    for ref, task, sub in found:
        if sub is None:
            removed.append(copy_json(task))
            tx.remove(tag, tx.task(tag, ref.task))
            messages.append(f"Successfully removed task {ref} from tag '{tag}'")
            continue
        removed.append({**copy_json(sub), "parentTaskId": ref.task})
        if ref.task not in whole:  # otherwise it goes with its parent
            delete_subtask(tx, tag, ref)
        messages.append(f"Successfully removed subtask {ref} from tag '{tag}'")
    drop_everywhere(tx, tag, refs)
    return {"totalTasks": len(refs), "successful": len(removed), "failed": 0, "removedTasks": removed,
            "message": "\n".join(messages), "tasksPath": tasks_path(tx), "tag": tag}


def remove_subtask(tx: ProjectTx, tag: str, subtask_id: str, convert: bool = False) -> dict:
    text = str(subtask_id).strip()
    if "." not in text:
        raise TaskError(f'Invalid subtask ID format: {text}. Expected format: "parentId.subtaskId"',
                        "INPUT_VALIDATION_ERROR")
    refs = refs_or_error(text)
    if len(refs) != 1:
        raise TaskError(f"remove_subtask takes one subtask ID, got: {text}", "INPUT_VALIDATION_ERROR")
    ref = refs[0]
    parent = tx.task(tag, ref.task)
    if parent is None:
        raise TaskError(f"Parent task with ID {ref.task} not found", "PARENT_TASK_NOT_FOUND")
    if not parent.get("subtasks"):
        raise TaskError(f"Parent task {ref.task} has no subtasks", "PARENT_TASK_NO_SUBTASKS")
    sub = find_subtask(parent, ref.sub)
    if sub is None:
        raise TaskError(f"Subtask {ref} not found", "SUBTASK_NOT_FOUND")
    if not convert:
        delete_subtask(tx, tag, ref)
        drop_everywhere(tx, tag, [ref])
        return {"message": f"Subtask {ref} successfully removed"}
    new_id = next_task_id(tx, tag)
    rewrite_refs(tx, tag, {ref: Ref(new_id)})
    parent = tx.task(tag, ref.task)
    sub = find_subtask(parent, ref.sub)  # the rewrite may have replaced the parent with a working copy
    task = promote(sub, new_id, parent.get("priority"))
    if not reaches(tx, tag, Ref(ref.task), Ref(new_id)):  # the parent may wait on it: no cycle
        task["dependencies"] = sorted_deps([*task["dependencies"], ref.task])  # it follows its parent
    delete_subtask(tx, tag, ref)
    tx.add(tag, task)
    return {"message": f"Subtask {ref} successfully converted to task #{new_id}", "task": copy_json(task)}


def clear_subtasks(tx: ProjectTx, tag: str, ids: str | None = None, all_tasks: bool = False) -> dict:
    if all_tasks:
        task_ids = [t["id"] for t in tx.tasks(tag)]
        if not task_ids:
            raise TaskError(f"No tasks found in tag context '{tag}'", "INPUT_VALIDATION_ERROR")
    elif ids and str(ids).strip():
        refs = refs_or_error(ids)
        bad = [str(r) for r in refs if r.sub is not None]
        if bad:
            raise TaskError(f"clear_subtasks takes task IDs, not subtask IDs: {', '.join(bad)}",
                            "INVALID_TASK_ID")
        task_ids = [r.task for r in refs]
    else:
        raise TaskError("Either task IDs with id parameter or all parameter must be provided",
                        "INPUT_VALIDATION_ERROR")
    summary, gone = [], []
    for tid in task_ids:
        task = tx.task(tag, tid)
        if task is None:
            summary.append({"id": tid, "title": "Task not found"})  # reported, as the reference does
            continue
        summary.append({"id": tid, "title": task.get("title")})
        if task.get("subtasks"):
            gone.extend(Ref(tid, s.get("id")) for s in task["subtasks"])
            tx.edit(tag, task)["subtasks"] = []
    drop_everywhere(tx, tag, gone)
    return {"message": f"Successfully cleared subtasks from {len(task_ids)} task(s) in tag '{tag}'",
            "tasksCleared": summary, "tag": tag}


def promote(sub: dict, new_id: int, priority: str | None) -> dict:
    """A subtask as a new top-level task: every field kept, Task Master's defaults filled in."""
    task = copy_json(sub)
    task.pop("parentTaskId", None)
    task.pop("parentId", None)
    task.update(id=new_id, description=sub.get("description") or "", details=sub.get("details") or "",
                status=sub.get("status") or "pending", dependencies=list(sub.get("dependencies") or []),
                priority=priority or DEFAULT_PRIORITY, subtasks=[])
    return task


def drop_everywhere(tx: ProjectTx, tag: str, gone: Iterable[Ref]) -> None:
    """Clean references to removed items: in `tag` all of them; in other tags those that do not
    name an item of that tag (there an id means that tag's own task)."""
    gone = list(gone)
    if not gone:
        return
    drop_refs(tx, tag, gone)
    for other in tx.tag_names():
        if other != tag:
            dangling = [r for r in gone if not exists(tx, other, r)]
            if dangling:
                drop_refs(tx, other, dangling)


def delete_subtask(tx: ProjectTx, tag: str, ref: Ref) -> None:
    """Take subtask `ref` out of its parent (references to it are the caller's business)."""
    mine = tx.edit(tag, tx.task(tag, ref.task))
    mine["subtasks"] = [s for s in mine["subtasks"] if s.get("id") != ref.sub]
