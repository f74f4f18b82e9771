"""scope_up_task and scope_down_task: a model's rescoped task, and its regenerated pending subtasks.

As the reference: every id is checked before any model call; the model rewrites title,
description, details, test strategy and priority (id, status, dependencies and every other field
stay); when the task has pending subtasks they are replaced by a new set whose size follows the
reference's formula (direction, strength, the subtasks kept and the task's complexity score),
numbered after the highest kept subtask; started or finished subtasks stay as they are.

Deliberate difference: every subtask that is not pending is kept (the reference kept a fixed list
of statuses and silently dropped subtasks with any other status); references to the replaced
subtasks are removed with them.
"""

from __future__ import annotations

import math

from .ai_context import replace_subtasks
from .ai_expand import number_subtasks
from .errors import TaskError
from .ids import Ref
from .model import PRIORITY_RANK
from .references import refs_or_error
from .remove import drop_everywhere
from .state import ProjectTx, ProjectView, copy_json

STRENGTHS = ("light", "regular", "heavy")
_FIELDS = ("title", "description", "details", "testStrategy")


def check_strength(strength: str | None) -> str:
    strength = strength or "regular"
    if strength not in STRENGTHS:
        raise TaskError(f"Invalid strength level: {strength}. Must be one of: {', '.join(STRENGTHS)}",
                        "INVALID_STRENGTH")
    return strength


def scope_targets(view: ProjectView, tag: str, ids: str) -> list[dict]:
    """The tasks a comma list names, all checked first: each must be an existing top-level task."""
    tasks = []
    for ref in dict.fromkeys(refs_or_error(ids)):
        if ref.sub is not None:
            raise TaskError(f"Scoping works on tasks, not subtasks: {ref}", "INVALID_TASK_ID")
        task = view.task(tag, ref.task)
        if task is None:
            raise TaskError(f"Task with ID {ref.task} not found", "TASK_NOT_FOUND")
        tasks.append(task)
    return tasks


def pending_subtasks(task: dict) -> list[dict]:
    return [s for s in task.get("subtasks") or () if (s.get("status") or "pending") == "pending"]


def new_subtask_count(direction: str, strength: str, kept: int, pending: int, score: float | None) -> int:
    """How many subtasks to generate in place of `pending` ones (the reference's formula, at least 1)."""
    if direction == "up":
        factor = max(0.5, score / 10) if score else 1.0
        floor, growth, weight = {"light": (5, 1.1, 0.4), "regular": (6, 1.3, 0.4), "heavy": (8, 1.6, 0.6)}[strength]
        target = math.ceil(max(floor, kept + math.ceil(pending * growth)) * (0.8 + weight * factor))
    else:
        score = score or 0
        shrink = 0.7 if score >= 8 else 0.85 if score >= 6 else 1.0
        if strength == "heavy":
            shrink = 0.3 if score >= 9 else 0.5 if score >= 7 else 0.7
            target = max(1, math.ceil(max(2, kept + math.ceil(pending * 0.25)) * shrink))
        else:
            growth = 0.8 if strength == "light" else 0.5
            target = math.ceil(max(3, kept + math.ceil(pending * growth)) * shrink)
    return max(1, target - kept)


def rescoped(task: dict, answer: dict) -> dict:
    """The task with the model's rewrite of its scope fields (blank answers keep the old text)."""
    out = copy_json(task)
    for key in _FIELDS:
        value = answer.get(key)
        if isinstance(value, str) and value.strip():
            out[key] = value
    if answer.get("priority") in PRIORITY_RANK:
        out["priority"] = answer["priority"]
    return out


def apply_scope(tx: ProjectTx, tag: str, task_id: int, answer: dict, raw_subtasks: list[dict] | None) -> dict:
    """Write one task's rescoping; `raw_subtasks` (None: keep the subtasks) replace its pending ones."""
    task = tx.task(tag, task_id)
    if task is None:
        raise TaskError(f"Task with ID {task_id} was removed while it was being rescoped", "TASK_NOT_FOUND")
    mine = tx.find(tag, task_id)
    fields = rescoped(task, answer)
    for key in (*_FIELDS, "priority"):
        if key in fields:
            mine[key] = fields[key]
    if raw_subtasks is not None:
        pending = pending_subtasks(mine)
        kept = [s for s in mine.get("subtasks") or () if (s.get("status") or "pending") != "pending"]
        kept_ids = frozenset(s.get("id") for s in kept)
        start = max(kept_ids, default=0) + 1
        new = number_subtasks(raw_subtasks, parent=task_id, start=start, siblings=kept_ids)
        drop_everywhere(tx, tag, [Ref(task_id, s.get("id")) for s in pending])
        mine = tx.find(tag, task_id)
        replace_subtasks(mine, [*kept, *new])
    return copy_json(mine)
