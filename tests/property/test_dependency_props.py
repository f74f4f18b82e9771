"""Dependency rules under random data: add never makes a cycle, fix always ends clean, validate is exact."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from taskmaster.tasks.dependencies import (
    DependencyGraph,
    add_dependency,
    find_cycles,
    fix_dependencies,
    validate_dependencies,
)
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.state import copy_json
from tests.conftest import make_tx

# A project shape: task id -> number of subtasks (ids with gaps, subtasks 1..n).
shapes = st.dictionaries(st.integers(1, 12), st.integers(0, 3), min_size=1, max_size=8)


def nodes_of(shape: dict[int, int]) -> list[str]:
    return [n for tid in sorted(shape) for n in [str(tid), *(f"{tid}.{s}" for s in range(1, shape[tid] + 1))]]


def build(shape: dict[int, int], deps: dict[str, list] | None = None, other: bool = True):
    deps = deps or {}
    tasks = [{"id": tid, "title": "t", "status": "pending", "dependencies": deps.get(str(tid), []),
              "subtasks": [{"id": s, "title": "s", "status": "pending",
                            "dependencies": deps.get(f"{tid}.{s}", [])} for s in range(1, n + 1)]}
             for tid, n in sorted(shape.items())]
    tags = {"master": {"tasks": tasks}}
    if other:
        tags["other"] = {"tasks": [{"id": 1, "title": "o", "dependencies": [1, 2, 1]}]}
    return make_tx(tags)


def stored(tx, node: str) -> list:
    task_id, _, sub_id = node.partition(".")
    task = tx.task("master", int(task_id))
    if not sub_id:
        return task["dependencies"]
    return next(s for s in task["subtasks"] if s["id"] == int(sub_id))["dependencies"]


def pick(items: list, index: int):
    return items[index % len(items)]


# Indices into per-example lists keep the strategies fixed (building strategies per example is slow).
indices = st.integers(0, 63)


def model_reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return False


@settings(deadline=None)
@given(shapes, st.lists(st.tuples(indices, indices), max_size=30))
def test_add_dependency_refuses_exactly_the_invalid_and_never_creates_a_cycle(shape, attempts):
    """Any item on any other (task -> subtask, subtask -> task, across parents): accepted unless a
    side is missing, it is itself or the subtask's own parent, or the reverse path already exists."""
    tx = build(shape)
    nodes = nodes_of(shape)
    edges: dict[str, set[str]] = {n: set() for n in nodes}  # the model's graph
    pool = [*nodes, "99", "1.9", "13"]
    for i, j in attempts:
        frm, to = pick(pool, i), pick(pool, j)
        valid = (frm in edges and to in edges and frm != to and to != frm.partition(".")[0]
                 and not model_reaches(edges, to, frm))
        try:
            add_dependency(tx, "master", frm, to)
        except TaskError:
            assert not valid
            continue
        assert valid
        edges[frm].add(to)
        assert to in DependencyGraph(tx, "master").edges(frm)  # a success really holds
    for node in nodes:
        assert set(DependencyGraph(tx, "master").edges(node)) == edges[node]
        assert all(isinstance(d, int) == ("." not in str(d)) for d in stored(tx, node))  # one form
    assert find_cycles(tx, "master") == []
    assert validate_dependencies(tx, "master")["valid"] is True


SUB_REFS = [f"{t}.{s}" for t in range(1, 13) for s in range(1, 4)] + ["7.7"]
junk = st.one_of(st.integers(0, 14), st.sampled_from(SUB_REFS), st.sampled_from(["abc", "1.0", "0.1", "2", " 3 "]))


@settings(deadline=None)
@given(shapes, st.lists(st.tuples(indices, junk), max_size=40))
def test_fix_always_validates_clean_and_is_idempotent(shape, placed):
    nodes = nodes_of(shape)
    deps: dict[str, list] = {}
    for i, entry in placed:
        deps.setdefault(pick(nodes, i), []).append(entry)
    tx = build(shape, deps)
    other_before = copy_json(tx.tasks("other"))
    entries_before = sum(len(stored(tx, n)) for n in nodes)
    result = fix_dependencies(tx, "master")
    stats = result["stats"]
    removed = (stats["duplicateDependenciesRemoved"] + stats["nonExistentDependenciesRemoved"]
               + stats["selfDependenciesRemoved"] + stats["circularDependenciesFixed"])
    assert entries_before - sum(len(stored(tx, n)) for n in nodes) == removed  # removes only what it counts
    assert validate_dependencies(tx, "master")["valid"] is True
    after = copy_json(tx.tasks("master"))
    again = fix_dependencies(tx, "master")
    assert set(again["stats"].values()) == {0}
    assert tx.tasks("master") == after
    assert tx.tasks("other") == other_before and "other" not in tx.work


def valid_targets(shape: dict[int, int], node: str) -> list:
    """Stored dependencies of `node` that exist and point strictly lower in (task, subtask) order,
    so the graph stays acyclic: lower tasks and their subtasks, and for a subtask lower siblings."""
    task_id, _, sub = node.partition(".")
    lower = [t for t in sorted(shape) if t < int(task_id)]
    lower += [n for n in nodes_of(shape) if "." in n and int(n.partition(".")[0]) < int(task_id)]
    if sub:
        lower += [f"{task_id}.{s}" for s in range(1, int(sub))]
    return lower


FAULTS = ["self", "parent", "missing", "duplicate"]


@settings(deadline=None)
@given(shapes, st.lists(st.tuples(indices, indices), max_size=30),
       st.lists(st.tuples(indices, st.sampled_from(FAULTS), indices), max_size=6))
def test_validate_finds_exactly_the_injected_issues(shape, edges, faults):
    nodes = nodes_of(shape)
    deps: dict[str, list] = {n: [] for n in nodes}
    for i, j in edges:
        node = pick(nodes, i)
        targets = valid_targets(shape, node)
        if targets and pick(targets, j) not in deps[node]:
            deps[node].append(pick(targets, j))
    base = copy_json(deps)
    expected = Counter()
    for k, (i, kind, j) in enumerate(faults):
        node = pick(nodes, i)
        task_id, _, sub = node.partition(".")
        if kind == "self":
            value = node if sub else int(node)
        elif kind == "parent":  # a subtask on its own parent counts as a self-dependency
            if not sub:
                continue
            value, kind = int(task_id), "self"
        elif kind == "missing":
            value = pick([f"{task_id}.{50 + k}", 100 + k, f"{100 + k}.1"], j)
        elif base[node]:
            value = pick(base[node], j)
        else:
            continue  # nothing to duplicate
        deps[node].append(value)
        expected[(kind, node if sub else int(node), value)] += 1
    tx = build(shape, deps)
    result = validate_dependencies(tx, "master")
    found = Counter((i["type"], i["taskId"], i["dependencyId"]) for i in result["issues"])
    assert found == expected
    assert result["valid"] is (not expected)
    assert tx.work == {}
