"""Repairs after a partition, over random concurrent histories.

Two real TaskServices (RocksDB stores, HLC nodes "side-a" and "side-b") share a base history, then
each side runs random tool operations (add_task, add_subtask, add_dependency, remove_task,
remove_subtask, move_task) while the clock ticks, and their documents merge. For every history:
after `plan_repairs` and merging its deltas, task ids are unique in the tag and subtask ids in each
task, there is no dependency cycle, no task or subtask live on either side is gone unless the other
side saw it and deleted it, and every repair record is in the metadata. The plan itself is pure,
the same bytes for the documents in any order and merged in either order, and idempotent. And a
dependency a side made on an item it created names that item after repair, renumbered or not.

One pair of stores serves every example (each example is a new project), so the cost of an
example is its writes, not opening RocksDB.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import orjson
import pytest
from hypothesis import Phase, event, given
from hypothesis import strategies as st
from strategies import INDEX, scaled, settings

from taskmaster.crdt import Doc, decode, encode
from taskmaster.tasks import create, dependencies, moves, remove
from taskmaster.tasks.dependencies import find_cycles
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.repair import plan_repairs, recorded_repairs
from tests.unit.test_repair import MASTER, Sides, applied, materialize, merged, repaired, tag_docs, wire

KINDS = ("task", "task", "subtask", "subtask", "subtask", "depend", "depend", "cross", "cross", "cross",
         "remove", "remove_subtask", "move")
ops = st.tuples(st.sampled_from(KINDS), INDEX, INDEX)
BASE = [("task", 0, 2)] * 3  # every history starts from three unrelated tasks both sides know
histories = st.tuples(
    st.lists(ops, max_size=5).map(lambda more: BASE + more),  # the base, on side a before the partition
    st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 3), ops), min_size=4, max_size=12),
)
_roots = itertools.count()


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    s = Sides(tmp_path_factory.mktemp("repair-props"))
    yield s
    s.close()


def _items(view) -> list[str]:
    out = []
    for task in view.tasks(MASTER):
        out.append(str(task["id"]))
        out.extend(f"{task['id']}.{s['id']}" for s in task["subtasks"])
    return out


def _pick(seq: list, i: int):
    return seq[i % len(seq)] if seq else None


def _early(seq: list, i: int, few: int = 3):
    """One of the first few: items of the base, which both sides can touch (so they collide)."""
    return seq[i % min(len(seq), few)] if seq else None


def _late(seq: list, i: int):
    """One of the last few: most likely new on this side."""
    return seq[-1 - i % min(len(seq), 3)] if seq else None


def _operation(kind: str, i: int, j: int, view, side: str):
    """The write for one drawn operation on what `side` shows now (None: nothing to do)."""
    tasks = [t["id"] for t in view.tasks(MASTER)]
    items = _items(view)
    subs = [n for n in items if "." in n]
    if kind == "task":
        deps = _pick(tasks, j) if j % 3 == 0 else None

        def add_task(tx):
            return create.add_task(tx, MASTER, title=f"t{i}", description="d",
                                   dependencies=str(deps) if deps else None)["taskId"]
        return _and_depended_on(add_task, _early(tasks, i), j % 3 == 1)
    if kind == "subtask" and tasks:
        parent = _early(tasks, i)

        def add_subtask(tx):
            return f"{parent}.{create.add_subtask(tx, MASTER, str(parent), title=f's{j}')['subtask']['id']}"
        return _and_depended_on(add_subtask, _late(tasks, i), j % 3 == 1)
    if kind == "depend" and items:  # on one of the first few, or on something new (to follow)
        frm, to = _early(items, i), _late(items, j) if j % 2 else _early(items, j // 2)
        return lambda tx: dependencies.add_dependency(tx, MASTER, str(frm), str(to))
    if kind == "cross":
        # Side a chains the base tasks 1, 2, 3 forwards, side b links them backwards: cycles of two
        # and three that only the merge closes.
        frm, to = (1 + i % 2, 2 + i % 2) if side == "a" else (2 + j % 2, 1 + i % 2)
        return lambda tx: dependencies.add_dependency(tx, MASTER, str(frm), str(to))
    if kind == "remove" and tasks:
        return lambda tx: remove.remove_task(tx, MASTER, str(_early(tasks, i)))
    if kind == "remove_subtask" and subs:
        return lambda tx: remove.remove_subtask(tx, MASTER, _pick(subs, i))
    if kind == "move" and tasks:
        return lambda tx: moves.move_task(tx, MASTER, str(_pick(tasks, i)), str(max(tasks) + 1 + j % 2))
    return None


def _and_depended_on(add, holder, wanted: bool):
    """The write `add` (returning the new item's id), and in the same write, when `wanted`, a
    dependency of `holder` on the new item: the references a renumbering must carry along."""
    if not wanted or holder is None:
        return add
    return lambda tx: dependencies.add_dependency(tx, MASTER, str(holder), str(add(tx)))


async def _run(sides: Sides, side: str, root: str, op) -> None:
    service = sides.a if side == "a" else sides.b
    write = _operation(*op, service.view(root), side)
    if write is not None:
        try:
            await service.write(root, write)
        except TaskError:
            pass  # refused (a cycle, a self-dependency...): nothing was written


async def _history(sides: Sides, root: str, base, partition) -> dict[str, Doc]:
    """Run the history; returns the documents of the base both sides started from."""
    for op in base:
        sides.clock.ms += 1
        await _run(sides, "a", root, op)
    sides.replicate(root)
    base_docs = tag_docs(sides.a, root)
    for side, tick, op in partition:
        sides.clock.ms += tick
        await _run(sides, side, root, op)
    return base_docs


def _live(docs: dict[str, Doc]) -> set[tuple]:
    """Live tasks (doc id,) and their live subtasks (doc id, child key)."""
    out = set()
    for doc_id, doc in docs.items():
        if doc_id.startswith("t") and not doc.deleted:
            out.add((doc_id,))
            out.update((doc_id, key) for key, child in doc.children.items() if not child.deleted)
    return out


def _present(docs: dict[str, Doc]) -> set[tuple]:
    return {(k,) for k in docs} | {(k, key) for k, d in docs.items() for key in d.children}


def _index(docs: dict[str, Doc]) -> dict:
    """What each dependency element names in these documents: 3 -> (doc id,), "3.1" -> (doc id, key).
    (Ids are unique on one side, and after repair.)"""
    out: dict = {}
    for doc_id, doc in docs.items():
        if doc_id.startswith("t") and not doc.deleted:
            out[doc.get("id")] = (doc_id,)
            for key, child in doc.children.items():
                if not child.deleted:
                    out[f"{doc.get('id')}.{child.get('id')}"] = (doc_id, key)
    return out


def _deps(docs: dict[str, Doc], item: tuple) -> list:
    doc = docs[item[0]]
    return (doc if len(item) == 1 else doc.children[item[1]]).members("dependencies")


def _check_references_follow(mine, base, docs, fixed, records) -> None:
    """A dependency one side made on an item it created itself names that same item after repair
    (renumbered or not), unless the cycle repair removed it or the other side deleted its holder.

    Not when the other side moved the task the item is in (a subtask of a base task): a reference
    made concurrently with a move_task names the old id, which is no repair's business."""
    here, after = _index(mine), _index(fixed)
    seen_before = _present(base)
    live_after = _live(fixed)
    cut = {(after[r["taskId"]], after[r["dependencyId"]]) for r in records if r["kind"] == "cycle"}
    for holder in _live(mine):
        for elem in _deps(mine, holder):
            target = here.get(elem)
            if target is None or target in seen_before or holder not in live_after or (holder, target) in cut:
                continue
            if docs[target[0]].fields["id"] != mine[target[0]].fields["id"]:
                continue  # moved by the other side
            assert target in {after.get(e) for e in _deps(fixed, holder)}, (holder, elem)
            if elem not in after or after[elem] != target:
                event("a reference followed its renumbered item")


def _canon(records: list[dict]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


@settings(max_examples=scaled(1.0), phases=[p for p in Phase if p is not Phase.explain])  # minutes otherwise
@given(histories, st.randoms(use_true_random=False))
def test_repairs_restore_the_invariants_and_lose_nothing(sides, history, rnd):
    root = f"/tmp/repair-props/{next(_roots)}"
    sides.clock.ms += 10_000
    base = asyncio.run(_history(sides, root, *history))
    side_a, side_b = tag_docs(sides.a, root), tag_docs(sides.b, root)
    docs = merged(side_a, side_b)
    fixed, records = repaired(docs)  # also: the input is untouched and planning again finds nothing
    for record in records:
        event(record["kind"])

    view = materialize(fixed)
    ids = [t["id"] for t in view.tasks(MASTER)]
    assert len(ids) == len(set(ids))
    for task in view.tasks(MASTER):
        sub_ids = [s["id"] for s in task["subtasks"]]
        assert len(sub_ids) == len(set(sub_ids)), task
    assert find_cycles(view, MASTER) == []
    after = _live(fixed)
    for mine, other in ((side_a, side_b), (side_b, side_a)):
        for item in _live(mine) - after:  # gone: only if the other side saw it and deleted it
            assert item in _present(other) and item not in _live(other), item
        _check_references_follow(mine, base, docs, fixed, records)
    assert _canon(recorded_repairs(view, MASTER)) == _canon(records)

    deltas, _ = plan_repairs(docs)
    shuffled = [(k, decode(encode(d))) for k, d in docs.items()]
    rnd.shuffle(shuffled)
    assert wire(plan_repairs(dict(shuffled))[0]) == wire(deltas)
    assert wire(plan_repairs(merged(side_b, side_a))[0]) == wire(deltas)
    assert wire(applied(docs, deltas)) == wire(fixed)


def test_the_histories_do_break_every_invariant(sides):
    """The strategy is worth its time: histories of its kind soon make every kind of repair."""
    kinds: set[str] = set()
    rnd = random.Random(4)
    for _ in range(100):
        base = BASE + [(rnd.choice(KINDS), rnd.randrange(64), rnd.randrange(64)) for _ in range(3)]
        partition = [(rnd.choice("ab"), rnd.randrange(4), (rnd.choice(KINDS), rnd.randrange(64),
                                                           rnd.randrange(64))) for _ in range(8)]
        root = f"/tmp/repair-props/{next(_roots)}"
        asyncio.run(_history(sides, root, base, partition))
        docs = merged(tag_docs(sides.a, root), tag_docs(sides.b, root))
        kinds.update(r["kind"] for r in plan_repairs(docs)[1])
        if len(kinds) == 3:
            break
    assert kinds == {"duplicate-id", "cycle", "deleted-parent"}
