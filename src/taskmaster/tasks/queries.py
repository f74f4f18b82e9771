"""Reading tasks: get_tasks (a filtered list with statistics) and get_task (one or several by id).

Answers share the cached task dicts wherever nothing about a task changes (they are only
serialised); a task is copied (shallowly) only when its answer differs from what is stored.
"""

from __future__ import annotations

from collections import Counter

from .complexity import complexity_of
from .errors import TaskError
from .ids import parse_refs
from .model import DEFAULT_PRIORITY, find_subtask
from .state import ProjectView

# Statistics keys and the status each counts (Task Master's get_tasks answer).
_TASK_COUNTS = (("completed", "done"), ("inProgress", "in-progress"), ("pending", "pending"),
                ("blocked", "blocked"), ("deferred", "deferred"), ("cancelled", "cancelled"),
                ("review", "review"))
_SUBTASK_COUNTS = _TASK_COUNTS[:-1]


def get_tasks(view: ProjectView, tag: str, status: str | None = None, with_subtasks: bool | None = None,
              fields: str | None = None, limit: int | None = None, offset: int | None = None) -> dict:
    """`{tasks, filter, stats}` (+ `page` when `limit` or `offset` is given).

    `status` is a comma list ("all" or nothing: no filter). `stats.total` counts every task of the
    tag; the per-status counts, `completionPercentage` and `stats.subtasks` cover the filtered
    tasks. `fields`, `limit` and `offset` shape only the returned list, never the statistics.
    """
    every = view.tasks(tag)
    wanted = status_filter(status)
    chosen = every if wanted is None else [t for t in every if str(t.get("status")).lower() in wanted]
    start = offset or 0
    page = chosen[start:start + limit] if limit is not None else chosen[start:]
    keep = _field_filter(fields)
    report = view.report(tag)
    if keep is None and with_subtasks is not False and not report:
        tasks = list(page)  # nothing to change: the stored tasks are the answer
    else:
        tasks = [_listed(t, with_subtasks is not False, keep, report) for t in page]
    data = {"tasks": tasks, "filter": status or "all", "stats": _stats(len(every), chosen)}
    if limit is not None or offset is not None:
        data["page"] = {"offset": start, "limit": limit, "matched": len(chosen), "returned": len(tasks)}
    return data


def get_task(view: ProjectView, tag: str, ids: str, status: str | None = None) -> dict | list[dict]:
    """One id -> that task (or subtask); a comma list -> the found ones in the order asked.

    Missing ids in a list are left out; when none is found: TaskError. A subtask ("2.2") comes
    back with its full id, `parentTask` and `isSubtask: true`; `status` filters a task's subtasks.
    """
    try:
        refs = parse_refs(ids)
    except ValueError as exc:
        raise TaskError(str(exc), "INVALID_ID") from exc
    wanted = status_filter(status)
    report = view.report(tag)
    found = []
    for ref in refs:
        task = view.task(tag, ref.task)
        if task is None:
            continue
        if ref.sub is None:
            found.append(_detailed(task, wanted, report))
            continue
        sub = find_subtask(task, ref.sub)
        if sub is not None:
            found.append(_subtask_answer(task, sub))
    if not found:
        raise TaskError(f"No tasks found for ID(s): {ids}", "TASK_NOT_FOUND")
    return found[0] if len(refs) == 1 else found


def status_filter(status: str | None) -> frozenset[str] | None:
    """The statuses a comma list names (lower case); None means no filter ("all" or nothing)."""
    if not status or status.strip().lower() == "all":
        return None
    parts = frozenset(p.strip().lower() for p in status.split(",") if p.strip())
    return parts or None


def _field_filter(fields: str | None) -> frozenset[str] | None:
    if not fields:
        return None
    names = frozenset(f.strip() for f in fields.split(",") if f.strip())
    return names | {"id"} if names else None


def _listed(task: dict, with_subtasks: bool, keep: frozenset[str] | None, report: dict | None) -> dict:
    extra = complexity_of(report, task["id"])
    if keep is None:
        if with_subtasks and not extra:
            return task
        out = dict(task)
    else:
        out = {k: v for k, v in task.items() if k in keep}
        extra = {k: v for k, v in extra.items() if k in keep}
    out.update(extra)
    if not with_subtasks and "subtasks" in out:
        out["subtasks"] = []
    return out


def _detailed(task: dict, wanted: frozenset[str] | None, report: dict | None) -> dict:
    extra = complexity_of(report, task["id"])
    if wanted is None and not extra:
        return task
    out = dict(task)
    out.update(extra)
    if wanted is not None:
        out["subtasks"] = [s for s in task.get("subtasks") or [] if str(s.get("status")).lower() in wanted]
    return out


def _subtask_answer(task: dict, sub: dict) -> dict:
    out = dict(sub)
    out["id"] = f"{task['id']}.{sub['id']}"
    out["priority"] = sub.get("priority") or task.get("priority") or DEFAULT_PRIORITY
    out["parentTask"] = {"id": task["id"], "title": task.get("title"), "status": task.get("status")}
    out["isSubtask"] = True
    return out


def _stats(total: int, chosen: list[dict]) -> dict:
    counts = Counter([t.get("status") for t in chosen])
    sub_counts = Counter([s.get("status") for t in chosen for s in t.get("subtasks") or ()])
    sub_total = sub_counts.total()
    stats: dict = {"total": total}
    stats.update((key, counts[status]) for key, status in _TASK_COUNTS)
    stats["completionPercentage"] = _percent(counts["done"], total)
    subtasks: dict = {"total": sub_total}
    subtasks.update((key, sub_counts[status]) for key, status in _SUBTASK_COUNTS)
    subtasks["completionPercentage"] = _percent(sub_counts["done"], sub_total)
    stats["subtasks"] = subtasks
    return stats


def _percent(part: int, whole: int) -> int | float:
    if whole == 0:
        return 0
    value = part / whole * 100
    return int(value) if value.is_integer() else value  # 50, not 50.0, as JavaScript writes it
