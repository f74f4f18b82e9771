"""Task dependencies: the dependency graph of a tag and the four dependency tools.

A node of the graph is a full id: "3" for a task, "3.2" for a subtask. Stored dependencies are
read as `references.dep_target` reads them, the same in every list: an int is a top-level task, a
"P.S" string a subtask (siblings included). So any item can depend on any other item of the tag,
subtask -> top-level task included (Task Master's bug #542), and cycles are found across the
task/subtask boundary (5 -> 2.1 -> 5).

A subtask may not depend on its own parent task: the parent is done when its subtasks are, so that
dependency could never be met. add_dependency refuses it, and validate/fix treat it as a
self-dependency.

Deliberate corrections of the reference (documented in the README): an invalid add_dependency is a
tool error instead of a process exit, validate_dependencies returns its issues, fix_dependencies
also breaks task cycles and self-dependencies and returns its counts, and both honour `tag`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from typing import Any

from .errors import TaskError
from .ids import ID_FORMAT_ERROR, Ref, parse_ref
from .model import find_subtask, resolve
from .references import dep_target, express, sorted_deps
from .state import ProjectTx, ProjectView

_GRAY, _BLACK = 1, 2  # DFS colours (unvisited nodes are absent)


# ---- the graph -------------------------------------------------------------------------------------
def _split(node: str) -> tuple[int, int | None]:
    task, _, sub = node.partition(".")
    return int(task), int(sub) if sub else None


def _node_key(node: str) -> tuple[int, int]:
    """Id order: a task, then its subtasks."""
    task, sub = _split(node)
    return task, sub or 0


def _parent(node: str) -> str | None:
    """The task node a subtask node belongs to (None for a task)."""
    task, dot, _ = node.partition(".")
    return task if dot else None


def _target(dep: Any) -> str | None:
    """The full id a stored dependency names (None when it is not an id at all)."""
    ref = dep_target(dep)
    return str(ref) if ref is not None else None


def _wire(node: str) -> int | str:
    return node if "." in node else int(node)


def _kind(node: str | Ref) -> str:
    return "Subtask" if "." in str(node) else "Task"


class DependencyGraph:
    """Who depends on whom in one tag, over full ids. Reads the tag once; do not keep it across edits."""

    def __init__(self, view: ProjectView, tag: str):
        self._tasks = {t.get("id"): t for t in view.tasks(tag)}

    def item(self, node: str | None) -> dict | None:
        """The task or subtask dict of a full id (None if absent)."""
        if node is None:
            return None
        task_id, sub_id = _split(node)
        task = self._tasks.get(task_id)
        if task is None or sub_id is None:
            return task
        return find_subtask(task, sub_id)

    def exists(self, node: str | None) -> bool:
        return self.item(node) is not None

    def nodes(self) -> Iterator[str]:
        """Every task and subtask, in id order (a task before its subtasks)."""
        for task_id in sorted(k for k in self._tasks if isinstance(k, int)):
            yield str(task_id)
            subs = self._tasks[task_id].get("subtasks") or []
            for sub_id in sorted({s.get("id") for s in subs if isinstance(s.get("id"), int)}):
                yield f"{task_id}.{sub_id}"

    def edges(self, node: str) -> list[str]:
        """The distinct existing nodes `node` depends on, in id order. Self-dependencies (a subtask
        on its own parent included) are left out: they are problems of their own, not cycles."""
        parent = _parent(node)
        out = set()
        for dep in self.item(node).get("dependencies") or []:
            target = _target(dep)
            if target != node and target != parent and self.exists(target):
                out.add(target)
        return sorted(out, key=_node_key)

    def path(self, start: str, goal: str) -> list[str] | None:
        """A shortest dependency path [start, ..., goal], or None when goal is not reachable."""
        came_from: dict[str, str | None] = {start: None}
        todo = deque([start])
        while todo:
            node = todo.popleft()
            if node == goal:
                path = []
                step: str | None = node
                while step is not None:
                    path.append(step)
                    step = came_from[step]
                return path[::-1]
            for nxt in self.edges(node):
                if nxt not in came_from:
                    came_from[nxt] = node
                    todo.append(nxt)
        return None

    def cycle_if_added(self, frm: str, to: str) -> list[str] | None:
        """The cycle the dependency frm -> to would close, as [frm, to, ..., frm]; None if none."""
        path = self.path(to, frm)
        return [frm, *path] if path is not None else None

    def cycles(self) -> list[list[str]]:
        """One cycle per back edge of a depth-first search in id order.

        Each cycle is [a, b, ..., a], every node depending on the next; its last step is the back
        edge. Removing every back edge leaves the graph acyclic. Iterative: chains can be long.
        """
        colour: dict[str, int] = {}
        found = []
        for root in self.nodes():
            if root in colour:
                continue
            colour[root] = _GRAY
            path, index, pending = [root], {root: 0}, [iter(self.edges(root))]
            while pending:
                nxt = next(pending[-1], None)
                if nxt is None:
                    done = path.pop()
                    del index[done]
                    colour[done] = _BLACK
                    pending.pop()
                elif nxt not in colour:
                    colour[nxt] = _GRAY
                    index[nxt] = len(path)
                    path.append(nxt)
                    pending.append(iter(self.edges(nxt)))
                elif colour[nxt] == _GRAY:
                    found.append([*path[index[nxt]:], nxt])
        return found

    def classify(self, node: str) -> list[tuple[Any, str | None]]:
        """Each stored dependency of `node` with its problem: "self" (itself, or a subtask's own
        parent), "missing", "duplicate" or None."""
        parent = _parent(node)
        seen = set()
        out = []
        for dep in self.item(node).get("dependencies") or []:
            target = _target(dep)
            if target == node or (parent is not None and target == parent):
                problem = "self"
            elif not self.exists(target):
                problem = "missing"
            elif target in seen:
                problem = "duplicate"
            else:
                problem = None
                seen.add(target)
            out.append((dep, problem))
        return out


def would_create_cycle(view: ProjectView, tag: str, frm: str, to: str) -> list[str] | None:
    """The cycle that making `frm` depend on `to` would create ([frm, to, ..., frm]), or None."""
    return DependencyGraph(view, tag).cycle_if_added(str(frm), str(to))


def find_cycles(view: ProjectView, tag: str) -> list[list[str]]:
    """The cycles of a tag's dependency graph, one per back edge (see DependencyGraph.cycles)."""
    return DependencyGraph(view, tag).cycles()


# ---- the tools ---------------------------------------------------------------------------------------
def _require_tag(view: ProjectView, tag: str) -> None:
    if not view.has_tag(tag):
        raise TaskError(f"Tag '{tag}' does not exist", "TAG_NOT_FOUND")


def _one_ref(value: str | int, field: str) -> Ref:
    if isinstance(value, str) and "," in value:
        raise TaskError(f"{field}: expected a single task or subtask id, got '{value}'", "INVALID_ID")
    try:
        return parse_ref(value)
    except ValueError:
        raise TaskError(f"{field}: {ID_FORMAT_ERROR}", "INVALID_ID") from None


def add_dependency(tx: ProjectTx, tag: str, task_id: str | int, depends_on: str | int) -> dict:
    """Make `task_id` depend on `depends_on`: explicit ids, "5" is task 5 and "4.1" subtask 4.1, for
    tasks and subtasks alike (so subtask 2.1 can depend on task 5). Every invalid request is a
    TaskError and changes nothing."""
    _require_tag(tx, tag)
    ref, dep = _one_ref(task_id, "id"), _one_ref(depends_on, "dependsOn")
    if ref == dep:
        raise TaskError(f"{_kind(ref)} {ref} cannot depend on itself", "SELF_DEPENDENCY")
    task, sub = resolve(tx, tag, ref)
    graph = DependencyGraph(tx, tag)
    node, want = str(ref), str(dep)
    if not graph.exists(want):
        raise TaskError(f"Dependency target {dep} does not exist in tag '{tag}'", "DEPENDENCY_NOT_FOUND")
    if want == _parent(node):
        raise TaskError(f"Subtask {ref} cannot depend on its own parent task {dep}: a task is done when "
                        "its subtasks are, so this dependency could never be met", "PARENT_DEPENDENCY")
    result = {"message": f"Successfully added dependency: Task {ref} now depends on {dep}",
              "taskId": ref.wire, "dependencyId": dep.wire}
    item = sub if sub is not None else task
    if any(dep_target(d) == dep for d in item.get("dependencies") or []):
        return result  # already there: nothing to write
    cycle = graph.cycle_if_added(node, want)
    if cycle is not None:
        raise TaskError(f"Cannot add dependency {dep} to {_kind(ref).lower()} {ref}: it would create a "
                        f"circular dependency ({' -> '.join(cycle)})", "CIRCULAR_DEPENDENCY")
    mine = tx.edit(tag, task)
    item = find_subtask(mine, ref.sub) if ref.is_subtask else mine
    item["dependencies"] = sorted_deps([*(item.get("dependencies") or []), express(dep)])
    return result


def remove_dependency(tx: ProjectTx, tag: str, task_id: str | int, depends_on: str | int) -> dict:
    """Remove a dependency; succeeds (writing nothing) when it was not there.

    Ids are explicit as in add_dependency, with one leniency kept from Task Master (where a bare
    number in a subtask's list is a sibling): when subtask P.S does not depend on task n, dependsOn
    "n" removes its dependency on the sibling "P.n" instead, if it has one. The answer then names the
    sibling, which is what was removed.
    """
    _require_tag(tx, tag)
    ref, dep = _one_ref(task_id, "id"), _one_ref(depends_on, "dependsOn")
    task, sub = resolve(tx, tag, ref)
    item = sub if sub is not None else task
    stored = {dep_target(d) for d in item.get("dependencies") or []}
    if dep not in stored and ref.is_subtask and not dep.is_subtask and Ref(ref.task, dep.task) in stored:
        dep = Ref(ref.task, dep.task)
    if dep in stored:
        mine = tx.edit(tag, task)
        item = find_subtask(mine, ref.sub) if ref.is_subtask else mine
        item["dependencies"] = [d for d in item["dependencies"] if dep_target(d) != dep]
    return {"message": f"Successfully removed dependency: Task {ref} no longer depends on {dep}",
            "taskId": ref.wire, "dependencyId": dep.wire}


def _problem_text(node: str, dep: Any, problem: str) -> str:
    if problem == "self":
        if _target(dep) != node:
            return f"Subtask {node} depends on its own parent task {dep}"
        return f"{_kind(node)} {node} depends on itself"
    if problem == "missing":
        target = _target(dep)
        if target is None:
            return f"{_kind(node)} {node} has a dependency that is not a task or subtask id: {json.dumps(dep)}"
        return f"{_kind(node)} {node} depends on non-existent {_kind(target).lower()} {target}"
    return f"{_kind(node)} {node} lists dependency {dep} more than once"


def validate_dependencies(view: ProjectView, tag: str) -> dict:
    """The self, missing, duplicate and circular dependencies of a tag. Writes nothing."""
    _require_tag(view, tag)
    graph = DependencyGraph(view, tag)
    issues = []
    for node in graph.nodes():
        for dep, problem in graph.classify(node):
            if problem is not None:
                issues.append({"type": problem, "taskId": _wire(node), "dependencyId": dep,
                               "message": _problem_text(node, dep, problem)})
    for cycle in graph.cycles():
        node, target = cycle[-2], cycle[-1]
        chain = [node, *cycle[:-1]]  # the same cycle, told from the node holding the back edge
        issues.append({"type": "circular", "taskId": _wire(node), "dependencyId": _wire(target),
                       "message": f"{_kind(node)} {node} is part of a circular dependency: "
                                  f"{' -> '.join(chain)}"})
    if not issues:
        return {"message": "Dependencies validated successfully", "valid": True, "issues": []}
    return {"message": f"Found {len(issues)} dependency issue(s) in tag '{tag}'", "valid": False,
            "issues": issues}


def fix_dependencies(tx: ProjectTx, tag: str) -> dict:
    """Remove duplicate, missing and self dependencies, then break every cycle, in one tag.

    A cycle is broken by removing the back edges of a depth-first search in id order, so every
    replica repairs the same data the same way.
    """
    _require_tag(tx, tag)
    graph = DependencyGraph(tx, tag)
    copies: dict[int, dict] = {}  # task id -> working copy (tx.find would rescan the tag each time)

    def editable(node: str) -> dict:
        task_id, sub_id = _split(node)
        if task_id not in copies:
            copies[task_id] = tx.edit(tag, graph.item(str(task_id)))
        return copies[task_id] if sub_id is None else find_subtask(copies[task_id], sub_id)

    counts = {"self": 0, "missing": 0, "duplicate": 0}
    fixed: set[str] = set()
    for node in list(graph.nodes()):
        verdicts = graph.classify(node)
        if all(problem is None for _, problem in verdicts):
            continue
        for _, problem in verdicts:
            if problem is not None:
                counts[problem] += 1
        editable(node)["dependencies"] = [d for d, problem in verdicts if problem is None]
        fixed.add(node)
    cycles = DependencyGraph(tx, tag).cycles()  # over the cleaned lists
    for cycle in cycles:
        node, target = cycle[-2], cycle[-1]
        item = editable(node)
        item["dependencies"] = [d for d in item["dependencies"] if _target(d) != target]
        fixed.add(node)
    stats = {
        "duplicateDependenciesRemoved": counts["duplicate"],
        "nonExistentDependenciesRemoved": counts["missing"],
        "selfDependenciesRemoved": counts["self"],
        "circularDependenciesFixed": len(cycles),
        "tasksFixed": sum(1 for n in fixed if "." not in n),
        "subtasksFixed": sum(1 for n in fixed if "." in n),
    }
    message = "Dependencies fixed successfully" if fixed else "No dependency issues found"
    return {"message": message, "tag": tag, "stats": stats}
