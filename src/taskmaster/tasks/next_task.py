"""next_task: what to work on now, exactly as Task Master picks it.

1. Subtasks of `in-progress` tasks come first: a subtask that is pending or in progress and whose
   dependencies are all done.
2. Otherwise top-level tasks that are pending or in progress with every dependency done.
Either way the best is the highest priority (missing = medium), then the fewest dependencies,
then the lowest id. Only `done`/`completed` satisfy a dependency: a cancelled one does not.
"""

from __future__ import annotations

from collections.abc import Callable

from .complexity import complexity_of
from .model import DEFAULT_PRIORITY, DONE, PRIORITY_RANK, find_subtask
from .references import dep_target
from .state import ProjectView

NO_NEXT_TASK = ("No eligible next task found. All tasks are either completed or have unsatisfied "
                "dependencies")
_ACTIONABLE = ("pending", "in-progress")
_SUBTASK_STEPS = ("Next: set this subtask to in-progress with set_task_status, read its parent with "
                  "get_task for context, record what you learn with update_subtask, and mark it done "
                  "when its work is verified; then call next_task again.")
_TASK_STEPS = ("Next: set this task to in-progress with set_task_status and read it with get_task. "
               "If it is large, break it into subtasks (expand_task or add_subtask) and work through "
               "them; mark it done when verified, then call next_task again.")


def next_task(view: ProjectView, tag: str, report: dict | None = None) -> dict:
    """`{nextTask, isSubtask, nextSteps}`, or `{message, nextTask: None}` when nothing is eligible.

    `complexityScore` comes from `report` if given, else from the tag's report (a subtask gets
    its parent's score).
    """
    return describe(view, tag, _find_next_cached(view, tag), report)


def describe(view: ProjectView, tag: str, choice: tuple[dict, dict | None] | None,
             report: dict | None = None) -> dict:
    """next_task's answer for `choice` ((task, None), (parent, subtask), or None: nothing eligible)."""
    if choice is None:
        return {"message": NO_NEXT_TASK, "nextTask": None}
    task, sub = choice
    score = complexity_of(report or view.report(tag), task["id"]).get("complexityScore")
    if sub is None:
        item = dict(task)
        if score is not None:
            item["complexityScore"] = score
        return {"nextTask": item, "isSubtask": False, "nextSteps": _TASK_STEPS}
    item = {"id": f"{task['id']}.{sub['id']}", "title": sub.get("title"),
            "status": sub.get("status") or "pending",
            "priority": sub.get("priority") or task.get("priority") or DEFAULT_PRIORITY,
            "dependencies": list(sub.get("dependencies") or ()),
            "parentId": task["id"]}
    if score is not None:
        item["complexityScore"] = score
    return {"nextTask": item, "isSubtask": True, "nextSteps": _SUBTASK_STEPS}


def _find_next_cached(view: ProjectView, tag: str) -> tuple[dict, dict | None] | None:
    # Agents call next_task far more often than they write: between writes the answer is a lookup.
    memo = view.memo(tag)
    if memo is None:
        return find_next(view.tasks(tag))
    if "next" not in memo:
        memo["next"] = find_next(view.tasks(tag))
    return memo["next"]


def find_next(tasks: list[dict], skip: Callable[[dict, dict | None], bool] | None = None,
              ) -> tuple[dict, dict | None] | None:
    """(task, None) or (parent, subtask) to work on next; None when nothing is eligible.

    `skip(task, sub)` (sub None for the task itself) leaves out items that are otherwise eligible:
    claims pass the ones another agent holds.

    One pass over the tag plus a lookup per dependency: no set of every done id is built, so the
    cost is the tasks, not the tasks and all their subtasks.
    """
    by_id = {t["id"]: t for t in tasks}
    best_sub, best_sub_key = None, None
    for task in tasks:
        if task.get("status") != "in-progress":
            continue
        for sub in task.get("subtasks") or ():
            if (sub.get("status") or "pending").lower() not in _ACTIONABLE:
                continue
            deps = sub.get("dependencies") or ()
            if all(_is_done(by_id, d) for d in deps) and (skip is None or not skip(task, sub)):
                key = (-rank(sub.get("priority") or task.get("priority")), len(deps), task["id"], sub["id"])
                if best_sub_key is None or key < best_sub_key:
                    best_sub, best_sub_key = (task, sub), key
    if best_sub is not None:
        return best_sub
    best, best_key = None, None
    for task in tasks:
        if (task.get("status") or "pending").lower() not in _ACTIONABLE:
            continue
        deps = task.get("dependencies") or ()
        if all(_is_done(by_id, d) for d in deps) and (skip is None or not skip(task, None)):
            key = (-rank(task.get("priority")), len(deps), task["id"])
            if best_key is None or key < best_key:
                best, best_key = task, key
    return (best, None) if best is not None else None


def _is_done(by_id: dict[int, dict], dep: int | str) -> bool:
    """Is this dependency (int: a task, "P.S": a subtask) done? Junk is never done."""
    target = dep_target(dep)
    if target is None:
        return False
    task = by_id.get(target.task)
    if task is None:
        return False
    if target.sub is None:
        return task.get("status") in DONE
    sub = find_subtask(task, target.sub)
    return sub is not None and sub.get("status") in DONE


def rank(priority: str | None) -> int:
    """Priority weight: critical 4, high 3, medium 2, low 1; missing or unknown count as medium."""
    return PRIORITY_RANK.get(priority or DEFAULT_PRIORITY, PRIORITY_RANK[DEFAULT_PRIORITY])
