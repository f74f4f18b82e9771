"""Task Master's vocabulary: statuses, priorities, timestamps, and finding tasks and subtasks."""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import TaskError
from .ids import Ref
from .state import ProjectView

STATUSES = ("pending", "in-progress", "done", "deferred", "cancelled", "blocked", "review")
DONE = frozenset({"done", "completed"})  # what satisfies a dependency (Task Master: cancelled does not)
PRIORITIES = ("high", "medium", "low")
PRIORITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
DEFAULT_PRIORITY = "medium"
TAG_NAME_RULE = r"^[A-Za-z0-9_-]+$"
RESERVED_TAGS = frozenset({"master", "main", "default"})


def iso_now() -> str:
    """UTC time as JavaScript's toISOString writes it: 2026-11-27T11:08:00.000Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def find_subtask(task: dict, sub_id: int) -> dict | None:
    for sub in task.get("subtasks") or []:
        if sub.get("id") == sub_id:
            return sub
    return None


def resolve(view: ProjectView, tag: str, ref: Ref) -> tuple[dict, dict | None]:
    """(task, subtask or None) for a reference; TaskError when either is missing."""
    task = view.task(tag, ref.task)
    if task is None:
        raise TaskError(f"Task with ID {ref.task} not found", "TASK_NOT_FOUND")
    if ref.sub is None:
        return task, None
    sub = find_subtask(task, ref.sub)
    if sub is None:
        raise TaskError(f"Subtask {ref} not found", "SUBTASK_NOT_FOUND")
    return task, sub


def exists(view: ProjectView, tag: str, ref: Ref) -> bool:
    task = view.task(tag, ref.task)
    return task is not None and (ref.sub is None or find_subtask(task, ref.sub) is not None)
