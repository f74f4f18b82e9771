"""move_task: renumber or re-parent items inside a tag, or move whole tasks to another tag.

Within a tag, pairs "a,b" -> "x,y" are applied in order, all or nothing. Every dependency on a
moved item, from a task or a subtask, is rewritten to the item's new id (references.rewrite_refs);
the moved item keeps its own dependencies, subtask -> top-level task ones included, except a
dependency on the parent it is put under (a subtask cannot wait for its own parent).

Deliberate differences from the reference:
- different numbers of source and destination ids are an error (the reference crashed with
  "results is not defined", or moved part of the list and reported success);
- moving onto an existing subtask id ("21" -> "4.3" when 4.3 exists) puts the item right after 4.3
  with the next free subtask id, instead of creating a second subtask 4.3;
- a task with subtasks cannot become a subtask (the reference silently dropped its subtasks), and
  an item is not put under a parent that already waits on it;
- a task that becomes a subtask keeps all its fields (the reference kept only six of them);
- a subtask moved onto its own id stays where it is (the reference moved it one place down).
Across tags (ids kept, target tag created when missing), dependencies on tasks staying behind are
conflicts unless `withDependencies` (they move too) or `ignoreDependencies` (they are dropped), and
what stays behind loses its references to what left, as if those tasks had been removed.
"""

from __future__ import annotations

from .create import check_can_nest, drop_parent_dependency, refuse_self_wait
from .errors import TaskError
from .ids import Ref
from .model import find_subtask, iso_now
from .references import dep_target, drop_refs, refs_or_error, rewrite_refs
from .remove import delete_subtask, promote
from .state import ProjectTx, copy_json
from .tags import check_new_name, locale_date, new_tag_metadata

CROSS_TAG_TIPS = [
    'Run "task-master validate-dependencies" to check for dependency issues.',
    'Run "task-master fix-dependencies" to automatically repair dangling dependencies.',
]


def move_task(tx: ProjectTx, tag: str, sources: str, destinations: str | None = None, *,
              from_tag: str | None = None, to_tag: str | None = None, with_dependencies: bool = False,
              ignore_dependencies: bool = False) -> dict:
    if is_cross_tag(from_tag, to_tag):
        return move_between_tags(tx, sources, from_tag, to_tag, with_dependencies, ignore_dependencies)
    if not destinations or not str(destinations).strip():
        raise TaskError("Destination ID is required for within-tag moves", "MISSING_DESTINATION_ID")
    src, dst = refs_or_error(sources), refs_or_error(destinations)
    if len(src) != len(dst):
        raise TaskError(f"Number of source IDs ({len(src)}) must match number of destination IDs "
                        f"({len(dst)})", "ID_COUNT_MISMATCH")
    moves = [_move_one(tx, tag, s, d) for s, d in zip(src, dst, strict=True)]
    message = f"Successfully moved task/subtask {str(sources).strip()} to {str(destinations).strip()}"
    if len(moves) == 1:
        return {**moves[0], "message": message}
    return {"message": message, "moves": moves}


def is_cross_tag(from_tag: str | None, to_tag: str | None) -> bool:
    """Task Master moves across tags only when both tags are given and differ; `tag` is then unused."""
    return bool(from_tag and to_tag and from_tag != to_tag)


def _move_one(tx: ProjectTx, tag: str, src: Ref, dst: Ref) -> dict:
    if src.sub is None and dst.sub is None:
        return _task_to_task(tx, tag, src.task, dst.task)
    if src.sub is None:
        return _task_to_subtask(tx, tag, src.task, dst)
    if dst.sub is None:
        return _subtask_to_task(tx, tag, src, dst.task)
    if src.task == dst.task:
        return _reorder_subtask(tx, tag, src, dst.sub)
    return _subtask_to_other_parent(tx, tag, src, dst)


def _task_to_task(tx: ProjectTx, tag: str, src: int, dst: int) -> dict:
    _source_task(tx, tag, src)
    if tx.task(tag, dst) is not None:
        raise TaskError(f"Task with ID {dst} already exists. Use a different destination ID.",
                        "TASK_ALREADY_EXISTS")
    rewrite_refs(tx, tag, {Ref(src): Ref(dst)})
    mine = tx.edit(tag, tx.task(tag, src))
    mine["id"] = dst
    for sub in mine.get("subtasks") or []:
        if "parentTaskId" in sub:
            sub["parentTaskId"] = dst
    return {"message": f"Moved task {src} to new ID {dst}", "movedItem": copy_json(mine)}


def _task_to_subtask(tx: ProjectTx, tag: str, src: int, dst: Ref) -> dict:
    task = _source_task(tx, tag, src)
    parent = _parent(tx, tag, dst.task, "Destination")
    if src == dst.task:
        raise TaskError("Cannot make a task a subtask of itself", "INVALID_PARENT")
    check_can_nest(tx, tag, task, dst.task)
    new_id, index = _slot(parent, dst.sub)
    rewrite_refs(tx, tag, {Ref(src): Ref(dst.task, new_id)})
    task = tx.task(tag, src)
    sub = copy_json(task)
    sub.pop("subtasks", None)
    sub["id"] = new_id
    drop_parent_dependency(sub, dst.task)
    tx.remove(tag, task)
    tx.edit(tag, tx.task(tag, dst.task))["subtasks"].insert(index, sub)
    return {"message": f"Converted task {src} to subtask {dst.task}.{new_id}", "movedItem": copy_json(sub)}


def _subtask_to_task(tx: ProjectTx, tag: str, src: Ref, dst: int) -> dict:
    parent = _parent(tx, tag, src.task, "Source")
    _source_subtask(parent, src)
    if tx.task(tag, dst) is not None:
        raise TaskError(f"Cannot move to existing task ID {dst}. Choose a different ID or use subtask "
                        "destination.", "TASK_ALREADY_EXISTS")
    rewrite_refs(tx, tag, {src: Ref(dst)})
    sub = find_subtask(tx.task(tag, src.task), src.sub)
    task = promote(sub, dst, sub.get("priority"))
    delete_subtask(tx, tag, src)
    tx.add(tag, task)
    return {"message": f"Converted subtask {src} to task {dst}", "movedItem": copy_json(task)}


def _reorder_subtask(tx: ProjectTx, tag: str, src: Ref, dst_sub: int) -> dict:
    parent = _parent(tx, tag, src.task, "Source")
    sub = _source_subtask(parent, src)
    if src.sub != dst_sub:
        subs = tx.edit(tag, parent)["subtasks"]
        sub = subs.pop(_index(subs, src.sub))
        after = _index(subs, dst_sub)
        subs.insert(len(subs) if after is None else after + 1, sub)
    return {"message": f"Moved subtask {src} to {src.task}.{dst_sub}", "movedItem": copy_json(sub)}


def _subtask_to_other_parent(tx: ProjectTx, tag: str, src: Ref, dst: Ref) -> dict:
    source_parent = _parent(tx, tag, src.task, "Source")
    target_parent = _parent(tx, tag, dst.task, "Destination")
    _source_subtask(source_parent, src)
    refuse_self_wait(tx, tag, dst.task, src)
    new_id, index = _slot(target_parent, dst.sub)
    rewrite_refs(tx, tag, {src: Ref(dst.task, new_id)})
    sub = copy_json(find_subtask(tx.task(tag, src.task), src.sub))
    sub["id"] = new_id
    if "parentTaskId" in sub:
        sub["parentTaskId"] = dst.task
    drop_parent_dependency(sub, dst.task)
    delete_subtask(tx, tag, src)
    tx.edit(tag, tx.task(tag, dst.task))["subtasks"].insert(index, sub)
    return {"message": f"Moved subtask {src} to {dst.task}.{new_id}", "movedItem": copy_json(sub)}


def _slot(parent: dict, wanted: int) -> tuple[int, int]:
    """(subtask id, list position) for an item moved to "parent.wanted": that id at the end when it
    is free, else the next free id right after the existing "parent.wanted"."""
    subs = parent.get("subtasks") or []
    at = _index(subs, wanted)
    if at is None:
        return wanted, len(subs)
    return max(s.get("id", 0) for s in subs) + 1, at + 1


def _index(subs: list[dict], sub_id: int) -> int | None:
    return next((i for i, s in enumerate(subs) if s.get("id") == sub_id), None)


def _source_task(tx: ProjectTx, tag: str, task_id: int) -> dict:
    task = tx.task(tag, task_id)
    if task is None:
        raise TaskError(f"Source task with ID {task_id} not found", "TASK_NOT_FOUND")
    return task


def _parent(tx: ProjectTx, tag: str, task_id: int, side: str) -> dict:
    task = tx.task(tag, task_id)
    if task is None:
        raise TaskError(f"{side} parent task with ID {task_id} not found", "PARENT_TASK_NOT_FOUND")
    return task


def _source_subtask(parent: dict, ref: Ref) -> dict:
    sub = find_subtask(parent, ref.sub)
    if sub is None:
        raise TaskError(f"Source subtask {ref} not found", "SUBTASK_NOT_FOUND")
    return sub


# ---- across tags --------------------------------------------------------------------------------
def move_between_tags(tx: ProjectTx, sources: str, from_tag: str, to_tag: str,
                      with_dependencies: bool = False, ignore_dependencies: bool = False) -> dict:
    refs = list(dict.fromkeys(refs_or_error(sources)))
    for ref in refs:
        if ref.sub is not None:
            raise TaskError(f"Cannot move subtask {ref} directly between tags.\n\nFirst promote it to a "
                            f"full task using:\n  task-master remove-subtask --id={ref} --convert",
                            "CANNOT_MOVE_SUBTASK")
    if not tx.has_tag(from_tag):
        raise TaskError(f'Source tag "{from_tag}" not found or invalid', "INVALID_SOURCE_TAG")
    if not tx.has_tag(to_tag):
        check_new_name(tx, to_tag, "toTag")
    by_id = {t["id"]: t for t in tx.tasks(from_tag)}
    for ref in refs:
        if ref.task not in by_id:
            raise TaskError(f'Task {ref.task} not found in source tag "{from_tag}"', "TASK_NOT_FOUND")
    moving = [r.task for r in refs]
    if with_dependencies:
        moving += sorted(_dependency_closure(by_id, moving) - set(moving))
    conflicts = [(tid, dep) for tid in moving for dep in _outside_deps(by_id, tid, set(moving))]
    if conflicts and not ignore_dependencies:
        listed = "; ".join(f"task {tid} depends on {dep}" for tid, dep in conflicts)
        raise TaskError(f"Cannot move tasks: {len(conflicts)} cross-tag dependency conflicts found "
                        f"({listed}). Use withDependencies to move them too, or ignoreDependencies to "
                        "drop them", "CROSS_TAG_DEPENDENCY_CONFLICTS")
    staying = {dep for _, dep in conflicts}
    taken = [tid for tid in moving if tx.task(to_tag, tid) is not None]
    if taken:
        raise TaskError(f'Task {", ".join(map(str, taken))} already exists in target tag "{to_tag}"',
                        "TASK_ALREADY_EXISTS")
    if not tx.has_tag(to_tag):
        tx.create_tag(to_tag, new_tag_metadata(f"Tag created on {locale_date()}"))
    now = iso_now()
    for tid in moving:
        task = copy_json(by_id[tid])
        if staying:
            _drop_deps_on(task, staying)
        if not isinstance(task.get("metadata"), dict):
            task["metadata"] = {}
        history = task["metadata"].setdefault("moveHistory", [])
        history.append({"fromTag": from_tag, "toTag": to_tag, "timestamp": now})
        tx.remove(from_tag, by_id[tid])
        tx.add(to_tag, task)
    drop_refs(tx, from_tag, [Ref(tid) for tid in moving])  # what stays behind loses what left
    result = {"message": f'Successfully moved {len(moving)} task(s) from "{from_tag}" to "{to_tag}"',
              "movedTasks": [{"id": tid, "fromTag": from_tag, "toTag": to_tag} for tid in moving],
              "moveOptions": {"withDependencies": with_dependencies,
                              "ignoreDependencies": ignore_dependencies},
              "sourceTag": from_tag, "targetTag": to_tag}
    if staying:
        result["tips"] = CROSS_TAG_TIPS
    return result


def _targets(task: dict):
    """What the dependencies of a task and of its subtasks point at."""
    for holder in (task, *(task.get("subtasks") or ())):
        for dep in holder.get("dependencies") or []:
            yield dep_target(dep)


def _dependency_closure(by_id: dict[int, dict], start: list[int]) -> set[int]:
    """Every task of the tag that `start` depends on, directly or not."""
    seen, stack = set(start), list(start)
    while stack:
        for target in _targets(by_id[stack.pop()]):
            if target is not None and target.task in by_id and target.task not in seen:
                seen.add(target.task)
                stack.append(target.task)
    return seen


def _outside_deps(by_id: dict[int, dict], tid: int, moving: set[int]) -> list[Ref]:
    """The items of the source tag that task `tid` depends on and that do not move with it."""
    found = {target for target in _targets(by_id[tid])
             if target is not None and target.task in by_id and target.task not in moving}
    return sorted(found, key=lambda r: (r.task, r.sub or 0))


def _drop_deps_on(task: dict, staying: set[Ref]) -> None:
    """Remove, in a moving task copy, the dependencies on items that stay behind."""
    for holder in (task, *(task.get("subtasks") or ())):
        holder["dependencies"] = [d for d in holder.get("dependencies") or [] if dep_target(d) not in staying]
