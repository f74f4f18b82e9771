"""expand_task and expand_all: a model's subtasks written under a task.

As the reference: a done (or completed) task cannot be expanded; a task with subtasks is skipped
unless `force`, which replaces them; the subtask count is `num`, else the complexity report's
recommendation for the task, else the project's default; new subtasks are numbered from 1 after
the old ones are cleared, start pending, and keep only dependencies on earlier new siblings.
expand_all takes the pending and in-progress tasks without subtasks (all of them with `force`) in
id order.

Deliberate differences: replaced subtasks take every reference to them along (the reference left
them pointing at whichever new subtask got the same number), and a subtask id like "4.1" is an
error (the reference read it as task 4).
"""

from __future__ import annotations

from .complexity import complexity_of
from .errors import TaskError
from .ids import Ref, renumbered
from .model import DONE
from .references import refs_or_error, sorted_deps
from .remove import drop_everywhere
from .state import ProjectTx, ProjectView, copy_json

MAX_SUBTASKS = 50
EXPANDABLE = frozenset({"pending", "in-progress"})


def task_ref(text: str, field: str = "id") -> int:
    """A single top-level task id from an argument ("4"); subtasks and lists are errors."""
    refs = refs_or_error(text)
    if len(refs) != 1 or refs[0].sub is not None:
        raise TaskError(f"Invalid {field}: {str(text).strip()}. Expected a single task ID such as '4' "
                        "(subtasks cannot have subtasks)", "INVALID_TASK_ID")
    return refs[0].task


def expandable_task(view: ProjectView, tag: str, task_id: int) -> dict:
    """The task to expand; TaskError when it is missing or already done."""
    task = view.task(tag, task_id)
    if task is None:
        raise TaskError(f"Task with ID {task_id} not found", "TASK_NOT_FOUND")
    status = task.get("status") or "pending"
    if status in DONE:
        raise TaskError(f"Task {task_id} is already marked as {status} and cannot be expanded", "TASK_COMPLETED")
    return task


def subtask_count(num: int | None, report: dict | None, task_id: int, default: int) -> int:
    """How many subtasks to ask for: `num`, else the report's recommendation, else `default` (0: the model
    decides)."""
    if num is not None:
        return num
    recommended = complexity_of(report, task_id).get("recommendedSubtasks")
    if isinstance(recommended, int) and not isinstance(recommended, bool) and 0 <= recommended <= MAX_SUBTASKS:
        return recommended
    return default


def expansion_prompt(report: dict | None, task_id: int) -> str | None:
    return complexity_of(report, task_id).get("expansionPrompt") or None


def expand_all_candidates(view: ProjectView, tag: str, force: bool) -> list[dict]:
    return [t for t in view.tasks(tag)
            if (t.get("status") or "pending") in EXPANDABLE and (force or not t.get("subtasks"))]


def number_subtasks(raw: list[dict], *, parent: int, start: int, limit: int = 0,
                    siblings: frozenset[int] = frozenset()) -> list[dict]:
    """The model's subtasks as stored subtasks numbered start, start+1, ... (at most `limit` when it is
    positive). A dependency maps through the model's ids and stays only when it names an earlier new
    subtask, or one of `siblings` (subtasks the parent keeps); stored as "P.S"."""
    kept = raw[:limit] if limit > 0 else raw
    new_id = renumbered(kept, start)
    subtasks = []
    for index, item in enumerate(kept):
        me = start + index
        deps = set()
        for dep in item.get("dependencies") or ():
            target = new_id.get(dep)
            if target is not None and target < me:
                deps.add(f"{parent}.{target}")
            elif target is None and dep in siblings:
                deps.add(f"{parent}.{dep}")
        subtasks.append({
            "id": me,
            "title": item["title"].strip(),
            "description": item["description"].strip(),
            "details": item.get("details") or "",
            "status": "pending",
            "dependencies": sorted_deps(deps),
            "testStrategy": item.get("testStrategy") or "",
        })
    return subtasks


def apply_expansion(tx: ProjectTx, tag: str, task_id: int, raw: list[dict], *, force: bool,
                    limit: int = 0) -> tuple[dict, int]:
    """Write an expansion under task `task_id`; returns (the task, subtasks added). Everything is
    checked before anything changes, so a caller may catch the TaskError and go on."""
    task = expandable_task(tx, tag, task_id)
    old = task.get("subtasks") or []
    if old and not force:
        raise TaskError(f"Task {task_id} got subtasks while its expansion was being generated; expand it "
                        "again with force to replace them", "TASK_HAS_SUBTASKS")
    subtasks = number_subtasks(raw, parent=task_id, start=1, limit=limit)
    if old:
        drop_everywhere(tx, tag, [Ref(task_id, s.get("id")) for s in old])
    mine = tx.find(tag, task_id)
    mine["subtasks"] = subtasks
    return copy_json(mine), len(subtasks)


def apply_expansions(tx: ProjectTx, tag: str, planned: list[tuple[int, list[dict], int]], *,
                     force: bool) -> dict:
    """expand_all's write: each (task id, answer, count) applied on its own terms; a task that was
    removed or finished meanwhile fails, one that got subtasks meanwhile is skipped, the rest go on."""
    expanded, failed, skipped = [], [], []
    for task_id, raw, limit in planned:
        try:
            _, added = apply_expansion(tx, tag, task_id, raw, force=force, limit=limit)
        except TaskError as exc:
            (skipped if exc.code == "TASK_HAS_SUBTASKS" else failed).append({"taskId": task_id, "error": exc.message})
        else:
            expanded.append({"taskId": task_id, "subtasksAdded": added})
    return {"expanded": expanded, "failed": failed, "skipped": skipped}
