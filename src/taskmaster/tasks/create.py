"""add_task (manual mode) and add_subtask (a new subtask, or an existing task turned into one).

Deliberate differences from the reference, each because the reference corrupts data silently:
- a parent id like "4.1" is an error (the reference read it as task 4);
- converting a task rewrites every reference to it to its new "P.S" id (the reference left them
  pointing at a task that no longer exists), refuses a task that has subtasks of its own (they would
  be nested two levels deep), and refuses a conversion that would make the parent wait on itself
  (the reference's check could recurse forever);
- a new subtask's dependencies must exist;
- a converted task keeps its dependencies on top-level tasks (they are stored as ints everywhere,
  see references.py), except one on its new parent, which it could never wait for.
"""

from __future__ import annotations

from .errors import TaskError
from .ids import Ref
from .model import DEFAULT_PRIORITY, PRIORITIES, exists
from .references import dep_target, express, reaches, refs_or_error, rewrite_refs, sorted_deps
from .state import ProjectTx, ProjectView, copy_json
from .status import require_status


def next_task_id(view: ProjectView, tag: str) -> int:
    """Task Master's rule: the highest id in the tag plus one (gaps are never filled)."""
    if isinstance(view, ProjectTx) and tag not in view.work:
        view = view.base  # the tag is as committed: its sorted, memoized form answers
    memo = view.memo(tag)
    if memo is not None and "max_id" in memo:
        return memo["max_id"] + 1
    tasks = view.tasks(tag)
    # Committed tags are sorted by id, so the last task has the highest; a transaction's may not be.
    top = tasks[-1]["id"] if memo is not None and tasks else max((t["id"] for t in tasks), default=0)
    if memo is not None:
        memo["max_id"] = top
    return top + 1


def add_task(tx: ProjectTx, tag: str, *, title: str | None = None, description: str | None = None,
             details: str | None = None, test_strategy: str | None = None,
             dependencies: str | None = None, priority: str | None = None) -> dict:
    """Manual mode (title and description); the prompt mode asks a model (tools/ai.py)."""
    if not (title and description):
        raise TaskError("Either the prompt parameter or both title and description parameters are "
                        "required for adding a task", "INPUT_VALIDATION_ERROR")
    new_id = next_task_id(tx, tag)
    deps = [express(r) for r in _dep_refs(dependencies) if exists(tx, tag, r)]  # unknown ids dropped
    wanted = (priority or "").strip().lower()
    task = {
        "id": new_id,
        "title": title,
        "description": description,
        "details": details or "",
        "testStrategy": test_strategy or "",
        "status": "pending",
        "dependencies": sorted_deps(deps),
        "priority": wanted if wanted in PRIORITIES else DEFAULT_PRIORITY,
        "subtasks": [],
    }
    tx.add(tag, task)
    return {"taskId": new_id, "message": f"Successfully added new task #{new_id}",
            "telemetryData": None, "tagInfo": None}


def add_subtask(tx: ProjectTx, tag: str, parent_id: str, *, task_id: str | None = None,
                title: str | None = None, description: str | None = None, details: str | None = None,
                status: str | None = None, dependencies: str | None = None) -> dict:
    """Add a subtask to task `parent_id`, or (with `task_id`) turn that task into one.

    `dependencies` keeps Task Master's input rule: a comma list where "4.1" is that subtask and a
    bare "1" is sibling 1 of the new subtask (stored as "P.1"). A top-level task therefore cannot
    be named here; add_dependency (dependsOn "5") gives a subtask that dependency.
    """
    parent_ref = _single_task_ref(parent_id, "parent task ID")
    task_id = task_id if task_id and str(task_id).strip() else None  # blank means not given
    if not task_id and not title:
        raise TaskError("Either taskId or title must be provided", "INPUT_VALIDATION_ERROR")
    parent = tx.task(tag, parent_ref.task)
    if parent is None:
        raise TaskError(f"Parent task with ID {parent_ref.task} not found", "PARENT_TASK_NOT_FOUND")
    if task_id:
        converted = _single_task_ref(task_id, "task ID to convert").task
        sub = _convert(tx, tag, parent, converted)
        return {"message": f"Task {converted} successfully converted to a subtask of task {parent['id']}",
                "subtask": sub}
    sub = _new_subtask(tx, tag, parent, title, description, details, status, dependencies)
    return {"message": f"New subtask {parent['id']}.{sub['id']} successfully created", "subtask": sub}


def next_subtask_id(task: dict) -> int:
    return max((s.get("id", 0) for s in task.get("subtasks") or []), default=0) + 1


def _new_subtask(tx: ProjectTx, tag: str, parent: dict, title, description, details, status,
                 dependencies) -> dict:
    status = require_status(status or "pending")
    pid = parent["id"]
    new_id = next_subtask_id(parent)
    deps = []
    for ref in _dep_refs(dependencies):
        target = ref if ref.is_subtask else Ref(pid, ref.task)  # a bare number is a sibling
        if target == Ref(pid, new_id) or not exists(tx, tag, target):
            hint = "" if ref.is_subtask else (f" (a bare number names a sibling subtask here; to depend on "
                                              f"task {ref} use add_dependency)")
            raise TaskError(f"Dependency {target} of the new subtask {pid}.{new_id} does not exist{hint}",
                            "DEPENDENCY_NOT_FOUND")
        deps.append(express(target))
    sub = {"id": new_id, "title": title, "description": description or "", "details": details or "",
           "status": status, "dependencies": sorted_deps(deps), "parentTaskId": pid}
    tx.edit(tag, parent)["subtasks"].append(sub)
    return copy_json(sub)


def _convert(tx: ProjectTx, tag: str, parent: dict, task_id: int) -> dict:
    pid = parent["id"]
    task = tx.task(tag, task_id)
    if task is None:
        raise TaskError(f"Task with ID {task_id} not found", "TASK_NOT_FOUND")
    if task_id == pid:
        raise TaskError("Cannot make a task a subtask of itself", "INVALID_PARENT")
    check_can_nest(tx, tag, task, pid)
    new_ref = Ref(pid, next_subtask_id(parent))
    rewrite_refs(tx, tag, {Ref(task_id): new_ref})
    task = tx.task(tag, task_id)  # the rewrite may have replaced it with a working copy
    sub = copy_json(task)
    sub.pop("subtasks", None)
    sub.update(id=new_ref.sub, parentTaskId=pid)
    drop_parent_dependency(sub, pid)
    tx.remove(tag, task)
    tx.edit(tag, tx.task(tag, pid))["subtasks"].append(sub)
    return copy_json(sub)


def check_can_nest(view: ProjectView, tag: str, task: dict, parent: int) -> None:
    """A top-level task may become a subtask only without subtasks of its own (no nesting)."""
    if task.get("subtasks"):
        raise TaskError(f"Task {task['id']} has subtasks of its own; subtasks cannot be nested. Remove "
                        "or move its subtasks first", "TASK_HAS_SUBTASKS")
    refuse_self_wait(view, tag, parent, Ref(task["id"]))


def drop_parent_dependency(sub: dict, parent: int) -> None:
    """Drop the dependency of an item nested under `parent` on that parent: the parent is done when
    its subtasks are, so a subtask could never wait for it (add_dependency refuses it too)."""
    if any(dep_target(d) == Ref(parent) for d in sub.get("dependencies") or []):
        sub["dependencies"] = [d for d in sub["dependencies"] if dep_target(d) != Ref(parent)]


def refuse_self_wait(view: ProjectView, tag: str, parent: int, item: Ref) -> None:
    """Refuse to put `item` under `parent` when the parent already waits on it: the parent would
    then wait on its own subtask forever."""
    if reaches(view, tag, Ref(parent), item):
        raise TaskError(f"Cannot create circular dependency: task {parent} is already a subtask or "
                        f"dependent of task {item}", "CIRCULAR_DEPENDENCY")


def _single_task_ref(text: str, what: str) -> Ref:
    refs = refs_or_error(text)
    if len(refs) != 1 or refs[0].sub is not None:
        raise TaskError(f"Invalid {what}: {str(text).strip()}. Expected a single task ID such as "
                        "'4' (subtasks cannot have subtasks)", "INVALID_ID")
    return refs[0]


def _dep_refs(text: str | None) -> list[Ref]:
    """The ids of a comma list of dependencies; blank means none."""
    return refs_or_error(text) if text and str(text).strip() else []
