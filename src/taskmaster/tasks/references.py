"""Dependency references inside a tag: what they point at, and rewriting them when items move or go.

One stored form per item, the same in every dependency list, tasks' and subtasks' alike: an int n
is top-level task n, a "P.S" string is subtask S of task P (a sibling too: subtask 4.2 depending on
4.1 stores "4.1"). Anything else is not a reference; rewrites leave it alone and
validate_dependencies reports it. Task Master's own files (where a bare n inside subtask P means
"P.n") are translated when they are imported (tasks/files.py).

`rewrite_refs(tx, tag, mapping)` applies a mapping {old Ref: new Ref or None (gone)} to every
dependency list in the tag. A stored dependency does not depend on where its holder is, so a holder
that moves keeps its list as it is, apart from references to what moves. A task-level key also
covers that task's subtasks: {Ref(5): Ref(9)} turns "5.2" into "9.2".
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import TaskError
from .ids import MAX_ID, Ref, parse_ref, parse_refs
from .state import ProjectTx, ProjectView

Mapping = dict[Ref, Ref | None]


def refs_or_error(text: str | int) -> list[Ref]:
    """A comma list of ids, or a TaskError with the id format message."""
    try:
        return parse_refs(str(text))
    except ValueError as exc:
        raise TaskError(str(exc), "INVALID_ID") from None


def dep_target(dep: object) -> Ref | None:
    """What a stored dependency points at (None: it is not a reference in the stored form)."""
    if dep.__class__ is int:  # not bool
        return Ref(dep) if 1 <= dep <= MAX_ID else None
    if isinstance(dep, str) and "." in dep:
        try:
            ref = parse_ref(dep)
        except ValueError:
            return None
        return ref if str(ref) == dep else None  # " 2.1" or "02.1" are not the stored form
    return None


def express(target: Ref) -> int | str:
    """How every dependency list stores a reference to `target`."""
    return target.wire


def _dep_order(dep: int | str) -> tuple:
    """Sort key of stored dependencies: numbers ascending, then "P.S" strings (as they are stored)."""
    return (0, dep, "") if isinstance(dep, int) else (1, 0, str(dep))


def sorted_deps(deps: Iterable[int | str]) -> list[int | str]:
    return sorted(set(deps), key=_dep_order)


def _apply(mapping: Mapping, ref: Ref) -> Ref | None:
    """Where `ref` is after the mapping: itself, its new Ref, or None when it is gone."""
    if ref in mapping:
        return mapping[ref]
    if ref.sub is not None:
        parent = Ref(ref.task)
        if parent in mapping:
            new = mapping[parent]
            return Ref(new.task, ref.sub) if new is not None and new.sub is None else None
    return ref


def rewrite_refs(tx: ProjectTx, tag: str, mapping: Mapping) -> None:
    """Apply `mapping` to every dependency in `tag`; edits only the tasks whose lists change."""
    if not mapping:
        return
    touched = {ref.task for ref in mapping}
    for task in list(tx.tasks(tag)):
        mine: dict | None = None
        new = _rewritten(task.get("dependencies"), mapping, touched)
        if new is not None:
            mine = tx.edit(tag, task)
            mine["dependencies"] = new
        for index, sub in enumerate(task.get("subtasks") or ()):
            new = _rewritten(sub.get("dependencies"), mapping, touched)
            if new is not None:
                mine = mine or tx.edit(tag, task)
                mine["subtasks"][index]["dependencies"] = new


def drop_refs(tx: ProjectTx, tag: str, gone: Iterable[Ref]) -> None:
    """Remove every reference to the given items (a task Ref covers its subtasks) from `tag`."""
    rewrite_refs(tx, tag, dict.fromkeys(gone))


def reaches(view: ProjectView, tag: str, start: Ref, goal: Ref) -> bool:
    """Does `start` depend, directly or through others, on `goal`? A task waits on its subtasks'
    dependencies too, so they are followed as well; reaching a subtask of a `goal` task counts."""
    by_id = {t["id"]: t for t in view.tasks(tag)}
    seen: set[Ref] = set()
    stack = [start]
    while stack:
        ref = stack.pop()
        if ref in seen:
            continue
        seen.add(ref)
        task = by_id.get(ref.task)
        if task is None:
            continue
        holders = [task.get("dependencies") or []] if ref.sub is None else []
        holders += [sub.get("dependencies") or [] for sub in task.get("subtasks") or []
                    if ref.sub is None or sub.get("id") == ref.sub]
        for deps in holders:
            for dep in deps:
                target = dep_target(dep)
                if target is None:
                    continue
                if target == goal or (goal.sub is None and target.task == goal.task):
                    return True
                stack.append(target)
    return False


def _rewritten(deps: list | None, mapping: Mapping, touched: set[int]) -> list | None:
    """The new dependency list after `mapping`, or None when it stays as it is."""
    if not deps or not any(_lands_in(dep, touched) for dep in deps):
        return None  # the common case: nothing here points into a task that moves or goes
    out: list = []
    for dep in deps:
        target = dep_target(dep)
        if target is None or target.task not in touched:
            out.append(dep)
            continue
        new = _apply(mapping, target)
        if new is not None:
            out.append(express(new))
    out = sorted_deps(out)
    return None if out == sorted_deps(deps) else out


def _lands_in(dep: object, touched: set[int]) -> bool:
    """Might this dependency point into a touched task? (A cheap filter before the full parse.)"""
    if dep.__class__ is int:
        return dep in touched
    if isinstance(dep, str):
        head = dep.partition(".")[0]
        return head.isdigit() and int(head) in touched
    return False
