"""New tasks from a model: parse_prd's task list and add_task's prompt mode, written into a tag.

parse_prd follows the reference: a tag that already has tasks is refused unless `force` (its tasks
are replaced) or `append` (they are kept; append wins when both are given, as in the reference's
core); the new tasks are numbered from the tag's highest id + 1 in the order the model gave them;
a dependency is kept only when it names an earlier task of the same answer, so the result is
always a valid, acyclic plan whatever ids the model used. A tag that does not exist is created.

Deliberate differences: the reference refuses an answer whose ids are not exactly start..start+n-1
(the model has to guess the start); here any distinct ids are renumbered by position. add_task keeps
the dependencies the caller named next to the ones the model proposes (the reference let the
model's list replace them), both filtered to items that exist.
"""

from __future__ import annotations

from .create import next_task_id
from .errors import TaskError
from .ids import Ref, renumbered
from .model import DEFAULT_PRIORITY, PRIORITIES, STATUSES, exists
from .references import express, sorted_deps
from .state import ProjectTx, ProjectView, copy_json
from .tags import check_new_name, new_tag_metadata


def check_prd_target(view: ProjectView, tag: str, *, append: bool, force: bool) -> None:
    """Refuse a parse into a tag that has tasks without force/append, or into an invalid new tag."""
    if not view.has_tag(tag):
        check_new_name(view, tag, "tag")
        return
    count = len(view.tasks(tag))
    if count and not append and not force:
        raise TaskError(f"Tag '{tag}' already contains {count} tasks. Use --force to overwrite or --append to "
                        "add to existing tasks.", "TASKS_EXIST")


def number_prd_tasks(raw: list[dict], start: int, default_priority: str) -> list[dict]:
    """The model's tasks as stored tasks with ids start, start+1, ... in answer order; dependencies
    mapped through the model's ids and kept only when they name an earlier task of the answer."""
    new_id = renumbered(raw, start)
    tasks = []
    for index, item in enumerate(raw):
        me = start + index
        deps = {new_id[d] for d in item.get("dependencies") or () if d in new_id and new_id[d] < me}
        status = item.get("status")
        tasks.append({
            "id": me,
            "title": item["title"].strip(),
            "description": item["description"].strip(),
            "details": item.get("details") or "",
            "testStrategy": item.get("testStrategy") or "",
            "status": status if status in STATUSES else "pending",
            "dependencies": sorted(deps),
            "priority": item.get("priority") or default_priority,
            "subtasks": [],
        })
    return tasks


def apply_prd(tx: ProjectTx, tag: str, raw: list[dict], *, append: bool, force: bool,
              default_priority: str = DEFAULT_PRIORITY) -> list[dict]:
    """Write parse_prd's answer into `tag`; returns the new tasks."""
    check_prd_target(tx, tag, append=append, force=force)
    if not tx.has_tag(tag):
        tx.create_tag(tag, new_tag_metadata(f"Tasks for {tag} context"))
    start = next_task_id(tx, tag)  # from the old highest id even when replacing, as the reference
    if not append:
        for old in list(tx.tasks(tag)):
            tx.remove(tag, old)
    tasks = number_prd_tasks(raw, start, default_priority)
    for task in tasks:
        tx.add(tag, copy_json(task))
    return tasks


def apply_new_task(tx: ProjectTx, tag: str, answer: dict, *, requested: list[Ref], priority: str | None) -> dict:
    """Add add_task's model-written task; returns the stored task."""
    new_id = next_task_id(tx, tag)
    proposed = [Ref(d) for d in answer.get("dependencies") or ()]
    deps = {express(r) for r in [*requested, *proposed] if r.task != new_id and exists(tx, tag, r)}
    wanted = (priority or "").strip().lower()
    task = {
        "id": new_id,
        "title": answer["title"].strip(),
        "description": answer["description"].strip(),
        "details": answer.get("details") or "",
        "testStrategy": answer.get("testStrategy") or "",
        "status": "pending",
        "dependencies": sorted_deps(deps),
        "priority": wanted if wanted in PRIORITIES else DEFAULT_PRIORITY,
        "subtasks": [],
    }
    tx.add(tag, task)
    return copy_json(task)
