"""update, update_task and update_subtask: a model's changes merged into existing tasks.

As the reference: done (and completed) tasks are locked — update skips them, update_task leaves them
unchanged; a rewritten task keeps its id, and its status unless the request mentions "status"; its
subtasks are renumbered 1..n with dependencies only on earlier siblings, and every done subtask
comes back exactly as it was; a rewrite without subtasks keeps the old ones. Append modes add the
model's text to details as a dated `<info added on ...>` block (and mark the description when the
request is short). `metadata` (a JSON object, allowed only with TASK_MASTER_ALLOW_METADATA_UPDATES)
is merged into the item's metadata; every other stored field of a task survives a rewrite.

Deliberate differences: a field the model leaves empty keeps its old text (the reference stored the
empty string); dependencies the model invents are kept only when they exist and make no cycle; a
status the model changes in `update` is restored too (the reference's bulk update let it through);
subtasks that a rewrite drops take the references to them along.
"""

from __future__ import annotations

import json

from .ai_context import append_note, replace_subtasks
from .errors import TaskError
from .ids import Ref, parse_ref
from .model import DONE, PRIORITY_RANK, STATUSES, exists, find_subtask
from .references import express, reaches, sorted_deps
from .remove import drop_everywhere
from .state import ProjectTx, ProjectView, copy_json

METADATA_SWITCH = "TASK_MASTER_ALLOW_METADATA_UPDATES"
_ANSWER_STATUSES = frozenset(STATUSES) | DONE  # a status an answer may set (the reference allows "completed")


# ---- arguments ----------------------------------------------------------------------------------
def parse_metadata(text: str | None, allowed: bool) -> dict | None:
    """The `metadata` argument as an object (None when not given)."""
    if text is None or not str(text).strip():
        return None
    if not allowed:
        raise TaskError(f"Metadata updates are disabled. Set {METADATA_SWITCH}=true in your MCP server "
                        "environment to enable metadata modifications.", "METADATA_DISABLED")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TaskError(f"Invalid metadata JSON: {exc}. Provide a valid JSON object string.",
                        "INVALID_METADATA") from None
    if not isinstance(value, dict):
        raise TaskError("Invalid metadata: must be a JSON object (not null or array)", "INVALID_METADATA")
    return value


def task_to_update(view: ProjectView, tag: str, task_id: int) -> dict:
    task = view.task(tag, task_id)
    if task is None:
        raise TaskError(f"Task with ID {task_id} not found", "TASK_NOT_FOUND")
    return task


def subtask_to_update(view: ProjectView, tag: str, text: str) -> tuple[dict, dict, Ref]:
    """(parent, subtask, ref) for update_subtask's id, which must be "P.S"."""
    try:
        ref = parse_ref(text)
    except ValueError:
        ref = None
    if ref is None or ref.sub is None:
        raise TaskError(f'Invalid subtask ID format: {str(text).strip()}. Subtask ID must be in format '
                        '"parentId.subtaskId" (e.g., "5.2").', "INVALID_SUBTASK_ID")
    parent = view.task(tag, ref.task)
    if parent is None:
        raise TaskError(f"Parent task with ID {ref.task} not found. Please verify the task ID and try again.",
                        "TASK_NOT_FOUND")
    sub = find_subtask(parent, ref.sub)
    if sub is None:
        raise TaskError(f"Subtask with ID {ref} not found. Please verify the subtask ID and try again.",
                        "SUBTASK_NOT_FOUND")
    return parent, sub, ref


def is_done(item: dict) -> bool:
    return (item.get("status") or "pending") in DONE


def update_targets(view: ProjectView, tag: str, from_id: int) -> list[dict]:
    """update's tasks: id >= from_id and not done."""
    return [t for t in view.tasks(tag) if t["id"] >= from_id and not is_done(t)]


# ---- rewrites -----------------------------------------------------------------------------------
def apply_updates(tx: ProjectTx, tag: str, answers: list[dict], prompt: str, selected: set[int]) -> list[dict]:
    """update: merge each answered task that was asked about and is still open; returns them."""
    updated = []
    for answer in answers:
        task = tx.task(tag, answer["id"])
        if answer["id"] in selected and task is not None and not is_done(task):
            updated.append(_rewrite(tx, tag, task, answer, prompt))
    return updated


def apply_task_rewrite(tx: ProjectTx, tag: str, task_id: int, answer: dict, prompt: str,
                       metadata: dict | None = None) -> dict:
    """update_task's full mode; returns the task as stored."""
    _rewrite(tx, tag, _open_task(tx, tag, task_id), answer, prompt)
    mine = tx.find(tag, task_id)
    _merge_metadata(mine, metadata)
    return copy_json(mine)


def merged_task(view: ProjectView, tag: str, original: dict, answer: dict, prompt: str) -> dict:
    """`original` with a model's rewrite of it applied (see the module doc for the rules)."""
    task = copy_json(original)
    for key in ("title", "description", "details", "testStrategy"):
        value = answer.get(key)
        if isinstance(value, str) and value.strip():
            task[key] = value
    if answer.get("priority") in PRIORITY_RANK:
        task["priority"] = answer["priority"]
    if "status" in prompt.lower() and answer.get("status") in _ANSWER_STATUSES:
        task["status"] = answer["status"]
    me = Ref(original["id"])
    deps = set()
    for dep in answer.get("dependencies") or ():
        target = _ref(dep)
        if (target is not None and target.task != me.task and exists(view, tag, target)
                and not reaches(view, tag, target, me)):
            deps.add(express(target))
    task["dependencies"] = sorted_deps(deps)
    if answer.get("subtasks") is not None:
        task["subtasks"] = _merged_subtasks(original, answer["subtasks"])
    return task


def _rewrite(tx: ProjectTx, tag: str, task: dict, answer: dict, prompt: str) -> dict:
    merged = merged_task(tx, tag, task, answer, prompt)
    kept = {s.get("id") for s in merged.get("subtasks") or ()}
    gone = [Ref(task["id"], s.get("id")) for s in task.get("subtasks") or () if s.get("id") not in kept]
    mine = tx.find(tag, task["id"])
    subtasks = merged.pop("subtasks", None) or []
    old_subtasks = mine.get("subtasks") or []
    mine.clear()
    mine.update(merged, subtasks=old_subtasks)
    replace_subtasks(mine, subtasks)
    drop_everywhere(tx, tag, gone)  # after the rewrite: restored done subtasks may name a dropped sibling
    return copy_json(tx.task(tag, task["id"]))


def _merged_subtasks(original: dict, answered: list) -> list[dict]:
    """The answer's subtasks renumbered 1..n, with every done original subtask restored as it was.

    A subtask the answer repeats unchanged under its own number stays exactly as stored: answers
    number siblings with bare ids, stored lists do not (an int there is a top-level task), so
    re-reading an unchanged stored list as an answer would turn its task dependencies into siblings."""
    parent = original["id"]
    stored = {s.get("id"): s for s in original.get("subtasks") or ()}
    subtasks: dict[int, dict] = {}
    for item in answered:
        me = len(subtasks) + 1
        sub = copy_json(item) if item == stored.get(me) else _clean_subtask(item, parent, me)
        if sub is not None:
            subtasks[sub["id"]] = sub
    for old in original.get("subtasks") or ():
        if is_done(old):
            subtasks[old.get("id")] = copy_json(old)
    return [subtasks[k] for k in sorted(subtasks)]


def _clean_subtask(item, parent: int, me: int) -> dict | None:
    """A subtask from a rewrite answer (whose subtasks the schema leaves open), or None if unusable."""
    if not isinstance(item, dict) or not isinstance(item.get("title"), str) or not item["title"].strip():
        return None
    deps = set()
    for dep in item.get("dependencies") or ():
        target = _ref(dep)
        if target is None or (target.sub is not None and target.task != parent):
            continue
        sibling = target.task if target.sub is None else target.sub  # a bare n is sibling n, as in Task Master
        if sibling < me:
            deps.add(f"{parent}.{sibling}")
    status = item.get("status")
    return {"id": me, "title": item["title"].strip()[:200], "description": _text(item.get("description")),
            "details": _text(item.get("details")),
            "status": status if status in _ANSWER_STATUSES else "pending",
            "dependencies": sorted_deps(deps), "testStrategy": _text(item.get("testStrategy"))}


# ---- notes and metadata -----------------------------------------------------------------------------
def apply_task_note(tx: ProjectTx, tag: str, task_id: int, text: str | None, prompt: str, timestamp: str,
                    metadata: dict | None = None) -> dict:
    """update_task's append mode (or a metadata-only update when `text` is None)."""
    _open_task(tx, tag, task_id)
    mine = tx.find(tag, task_id)
    if text is not None:
        append_note(mine, text, prompt, timestamp)
    _merge_metadata(mine, metadata)
    return copy_json(mine)


def apply_subtask_note(tx: ProjectTx, tag: str, ref: Ref, text: str | None, prompt: str, timestamp: str,
                       metadata: dict | None = None) -> dict:
    """update_subtask (or a metadata-only update when `text` is None); returns the subtask."""
    subtask_to_update(tx, tag, str(ref))
    sub = find_subtask(tx.find(tag, ref.task), ref.sub)
    if text is not None:
        append_note(sub, text, prompt, timestamp)
    _merge_metadata(sub, metadata)
    return copy_json(sub)


def _open_task(tx: ProjectTx, tag: str, task_id: int) -> dict:
    task = task_to_update(tx, tag, task_id)
    if is_done(task):
        raise TaskError(f"Task {task_id} was marked {task.get('status')} while its update was being "
                        "generated; nothing was changed", "TASK_COMPLETED")
    return task


def _merge_metadata(item: dict, metadata: dict | None) -> None:
    if metadata:
        item["metadata"] = {**(item.get("metadata") or {}), **metadata}


# ---- helpers ------------------------------------------------------------------------------------
def _ref(dep) -> Ref | None:
    if isinstance(dep, bool) or not isinstance(dep, int | str):
        return None
    try:
        return parse_ref(dep)
    except ValueError:
        return None


def _text(value) -> str:
    return value if isinstance(value, str) else ""
