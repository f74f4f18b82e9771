"""Repairs after a partition: the broken states are made by two real TaskServices (two RocksDB
stores, two HLC node names) doing real tool operations on each side, then merged with `crdt.merge`.

The helpers here (`Sides`, `tag_docs`, `merged`, `applied`, `materialize`, `repaired`, `wire`) are
shared with tests/property/test_repair_props.py.
"""

from __future__ import annotations

import random

import orjson
import pytest

from taskmaster.crdt import HLC, Doc, decode, encode, merge
from taskmaster.crdt.doc import DELETED, latest
from taskmaster.crdt.taskdoc import CASCADE, tombstone, tombstone_task
from taskmaster.storage import Store, doc_key, project_prefix, split_doc_key
from taskmaster.tasks import create, dependencies, moves, remove, status
from taskmaster.tasks.dependencies import find_cycles
from taskmaster.tasks.repair import REPAIR_NODE, iso_at, plan_repairs, recorded_repairs
from taskmaster.tasks.service import TASK_PREFIX, Project, TaskService
from taskmaster.tasks.state import ProjectView
from taskmaster.tools import dependencies as _tools  # noqa: F401  (registers the tools)
from taskmaster.tools.registry import ToolContext, call_tool
from tests.conftest import ROOT

MASTER = "master"
T0 = 1_700_000_000_000  # wall-clock ms of the first write


# ---- two sides of a partition ------------------------------------------------------------------------
class CascadingService(TaskService):
    """TaskService whose task deletions go through `tombstone_task`, as the lead wires it into
    `_tag_deltas` (once wired this override changes nothing: it only swaps plain tombstones)."""

    def _tag_deltas(self, project, tag, w, ts, node, reads):
        for dtag, doc_id, delta in super()._tag_deltas(project, tag, w, ts, node, reads):
            if doc_id.startswith(TASK_PREFIX) and delta.deleted and set(delta.fields) == {DELETED}:
                delta = tombstone_task(self._stored(project, dtag, doc_id, reads), ts, node)
            yield dtag, doc_id, delta


class Clock:
    """The wall clock both sides read, in ms; tests move it to order the sides' writes."""

    def __init__(self, ms: int = T0):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class Sides:
    """Two nodes (HLC node names `names`), each a real TaskService on its own RocksDB store."""

    def __init__(self, path, clock: Clock | None = None, names: tuple[str, str] = ("side-a", "side-b")):
        self.clock = clock or Clock()
        self.stores = [Store(str(path / name)) for name in names]
        self.a, self.b = (CascadingService(store, HLC(name, clock=self.clock))
                          for store, name in zip(self.stores, names, strict=True))

    def replicate(self, root: str = ROOT) -> None:
        """Copy side a's documents of `root` to side b (before side b has read that project)."""
        self.stores[1].write(dict(self.stores[0].scan(project_prefix(root))))

    def merged(self, root: str = ROOT, tag: str = MASTER) -> dict[str, Doc]:
        return merged(tag_docs(self.a, root, tag), tag_docs(self.b, root, tag))

    def close(self) -> None:
        for store in self.stores:
            store.close()


def tag_docs(service: TaskService, root: str = ROOT, tag: str = MASTER) -> dict[str, Doc]:
    """The stored documents of one tag, as replication would ship them."""
    out = {}
    for key, value in service.store.scan(project_prefix(root)):
        _, dtag, doc_id = split_doc_key(key)
        if dtag == tag:
            out[doc_id] = decode(value)
    return out


def merged(one: dict[str, Doc], other: dict[str, Doc]) -> dict[str, Doc]:
    return {k: merge(one.get(k, Doc()), other.get(k, Doc())) for k in sorted({*one, *other})}


def applied(docs: dict[str, Doc], deltas: dict[str, Doc]) -> dict[str, Doc]:
    return {k: merge(docs[k], deltas[k]) if k in deltas else docs[k] for k in docs}


def materialize(docs: dict[str, Doc], tag: str = MASTER) -> ProjectView:
    """What a node loading these documents shows (the service's own loading code)."""
    project = Project(ROOT)
    for doc_id, doc in docs.items():
        project.load_doc(tag, doc_id, doc)
    project.finish_load()
    return project.view()


def wire(deltas: dict[str, Doc]) -> dict[str, bytes]:
    return {k: encode(d) for k, d in deltas.items()}


def repaired(docs: dict[str, Doc]) -> tuple[dict[str, Doc], list[dict]]:
    """Plan, apply, and check the plan is pure and idempotent on the way."""
    before = wire(docs)
    deltas, records = plan_repairs(docs)
    assert wire(docs) == before  # the input is not touched
    fixed = applied(docs, deltas)
    assert plan_repairs(fixed) == ({}, [])
    return fixed, records


@pytest.fixture
def sides(tmp_path):
    s = Sides(tmp_path)
    yield s
    s.close()


async def add_task(svc, title, deps=None):
    return (await svc.write(ROOT, lambda tx: create.add_task(
        tx, MASTER, title=title, description=f"about {title}", dependencies=deps)))["taskId"]


async def add_subtask(svc, parent, title, deps=None):
    return (await svc.write(ROOT, lambda tx: create.add_subtask(
        tx, MASTER, str(parent), title=title, dependencies=deps)))["subtask"]["id"]


async def depend(svc, item, on):
    await svc.write(ROOT, lambda tx: dependencies.add_dependency(tx, MASTER, str(item), str(on)))


async def remove_task(svc, ids):
    await svc.write(ROOT, lambda tx: remove.remove_task(tx, MASTER, str(ids)))


def by_title(view: ProjectView) -> dict[str, dict]:
    return {t["title"]: t for t in view.tasks(MASTER)}


def meta_repairs(task: dict) -> list[dict]:
    return task.get("metadata", {}).get("repairs", [])


# ---- tombstone_task ------------------------------------------------------------------------------------
def test_tombstone_task_deletes_every_live_subtask_and_marks_the_cascade():
    stored = Doc().set("id", 4, 10, "n")
    stored.child("k1").set("id", 1, 10, "n")
    stored.child("k2").set("id", 2, 10, "n")
    stored.child("old").set(DELETED, True, 11, "n")
    delta = tombstone_task(stored, 20, "n")
    assert delta.fields == {DELETED: (20, "n", True, True), CASCADE: (20, "n", True, True)}
    assert sorted(delta.children) == ["k1", "k2"]  # the one already deleted keeps its own tombstone
    assert all(c.fields == {DELETED: (20, "n", True, True)} for c in delta.children.values())
    after = merge(stored, delta)
    assert after.deleted and all(c.deleted for c in after.children.values())
    assert tombstone_task(None, 5, "n").fields == {DELETED: (5, "n", True, True),
                                                   CASCADE: (5, "n", True, True)}


def test_a_plain_tombstone_is_never_undone():
    # Without the cascade mark a live child proves nothing: the deletion may have seen it.
    doc = Doc().set("id", 1, 10, "a")
    doc.child("k").set("id", 1, 10, "a")
    docs = {"tx": merge(doc, tombstone(20, "b"))}
    assert plan_repairs(docs) == ({}, [])
    # A later plain tombstone over a cascaded one wins the register: not the same deletion any more.
    docs = {"tx": merge(merge(doc, tombstone_task(None, 20, "b")), tombstone(30, "c"))}
    assert plan_repairs(docs) == ({}, [])


# ---- 1. duplicate ids ------------------------------------------------------------------------------------
async def test_duplicate_task_ids_renumber_the_later_one_and_its_side_references(sides):
    await add_task(sides.a, "base 1")
    await add_task(sides.a, "base 2")
    sides.replicate()
    # Side a, earlier: creates task 3, and base 1 depends on it.
    assert await add_task(sides.a, "a3") == 3
    await depend(sides.a, 1, 3)
    # Side b, later: its own task 3 with subtasks referring to each other, and references to 3 and
    # 3.1 from base 2, from its own new task 4, and from base 1 (which side a also made depend on 3).
    sides.clock.ms += 1000
    assert await add_task(sides.b, "b3") == 3
    assert await add_subtask(sides.b, 3, "b3 first") == 1
    assert await add_subtask(sides.b, 3, "b3 second", deps="1") == 2  # stored as "3.1"
    await depend(sides.b, 2, 3)
    assert await add_task(sides.b, "b4", deps="3,3.1") == 4
    await depend(sides.b, 1, 3)
    docs = sides.merged()
    assert sorted(t["id"] for t in materialize(docs).tasks(MASTER)) == [1, 2, 3, 3, 4]

    fixed, records = repaired(docs)
    view = materialize(fixed)
    tasks = by_title(view)
    assert sorted(t["id"] for t in view.tasks(MASTER)) == [1, 2, 3, 4, 5]
    assert tasks["a3"]["id"] == 3 and tasks["b3"]["id"] == 5  # b wrote its id later
    assert tasks["base 1"]["dependencies"] == [3, 5]  # both sides' intentions kept
    assert tasks["base 2"]["dependencies"] == [5]
    assert tasks["b4"]["dependencies"] == [5, "5.1"]
    subs = tasks["b3"]["subtasks"]
    assert [(s["id"], s["dependencies"], s["parentTaskId"]) for s in subs] == [(1, [], 5), (2, ["5.1"], 5)]
    assert [r["kind"] for r in records] == ["duplicate-id"]
    record = records[0]
    assert record == {"kind": "duplicate-id", "taskId": 5, "previousId": 3, "references": [1, 2, 4, "5.2"],
                      "at": record["at"]}
    assert meta_repairs(tasks["b3"]) == records
    assert meta_repairs(tasks["a3"]) == []
    assert record["at"].startswith("2023-11-14T22:1")  # the time of the stamp, not of the test run


async def test_the_earlier_id_wins_whichever_side_wrote_it(sides):
    await add_task(sides.a, "base")
    sides.replicate()
    sides.clock.ms += 500
    await add_task(sides.a, "a2")
    sides.clock.ms -= 300  # side b writes first this time
    await add_task(sides.b, "b2")
    await depend(sides.b, 1, 2)
    fixed, _ = repaired(sides.merged())
    tasks = by_title(materialize(fixed))
    assert (tasks["b2"]["id"], tasks["a2"]["id"]) == (2, 3)
    assert tasks["base"]["dependencies"] == [2]  # side b's reference stays with side b's task


async def test_several_duplicates_get_consecutive_ids_in_a_fixed_order(tmp_path):
    # Three sides: a and b each add two tasks, c one, all after the same base.
    clock = Clock()
    ab = Sides(tmp_path / "ab", clock)
    c = Sides(tmp_path / "c", clock, ("side-c", "side-d"))
    try:
        await add_task(ab.a, "base")
        ab.replicate()
        c.stores[0].write(dict(ab.stores[0].scan(project_prefix(ROOT))))
        for n in range(2):
            clock.ms += 10
            await add_task(ab.a, f"a{n}")
            await add_task(ab.b, f"b{n}")
        clock.ms += 10
        await add_task(c.a, "c0")
        docs = merged(ab.merged(), tag_docs(c.a))
        fixed, records = repaired(docs)
        tasks = by_title(materialize(fixed))
        # Id 2: a0 (side-a) < b0 (side-b); c0 is later still. Id 3: a1 < b1. Renumbered in (old id,
        # stamp) order from 4 on.
        assert {k: t["id"] for k, t in tasks.items()} == {"base": 1, "a0": 2, "a1": 3, "b0": 4, "c0": 5,
                                                          "b1": 6}
        assert [(r["previousId"], r["taskId"]) for r in records] == [(2, 4), (2, 5), (3, 6)]
    finally:
        ab.close()
        c.close()


async def test_duplicate_subtask_ids_in_one_task(sides):
    await add_task(sides.a, "parent")
    await add_task(sides.a, "other")
    sides.replicate()
    assert await add_subtask(sides.a, 1, "from a") == 1
    await depend(sides.a, 2, "1.1")
    sides.clock.ms += 50
    assert await add_subtask(sides.b, 1, "from b") == 1
    assert await add_subtask(sides.b, 1, "b's second", deps="1") == 2  # on its sibling "1.1"
    await depend(sides.b, 2, "1.1")
    fixed, records = repaired(sides.merged())
    tasks = by_title(materialize(fixed))
    subs = {s["title"]: s for s in tasks["parent"]["subtasks"]}
    assert {k: s["id"] for k, s in subs.items()} == {"from a": 1, "from b": 3, "b's second": 2}
    assert subs["b's second"]["dependencies"] == ["1.3"]
    assert tasks["other"]["dependencies"] == ["1.1", "1.3"]
    assert records == [{"kind": "duplicate-id", "taskId": "1.3", "previousId": "1.1",
                        "references": ["1.2", 2], "at": records[0]["at"]}]
    assert meta_repairs(tasks["parent"]) == records


def test_a_new_id_is_past_deleted_ones_so_dangling_references_stay_dangling():
    # Task 3 was deleted on one side while the other made task 1 depend on it (add wins): that
    # reference dangles. Renumbering a duplicate 2 to 3 would make it name the wrong task.
    docs = {"t1": Doc().set("id", 1, 10, "a").add("dependencies", 3, 20, "b"),
            "t3": merge(Doc().set("id", 3, 10, "a"), tombstone_task(None, 21, "a")),
            "ta": Doc().set("id", 2, 22, "a"),
            "tb": Doc().set("id", 2, 23, "b")}
    fixed, records = repaired(docs)
    assert [(r["previousId"], r["taskId"]) for r in records] == [(2, 4)]
    assert fixed["t1"].members("dependencies") == [3]


async def test_a_task_moved_onto_an_id_the_other_side_created(sides):
    for title in ("one", "two"):
        await add_task(sides.a, title)
    sides.replicate()
    await add_task(sides.a, "a3")
    sides.clock.ms += 100
    # Side b moves task 2 to 3 (rewriting 1's reference to it) after side a created its own 3.
    await depend(sides.b, 1, 2)
    await sides.b.write(ROOT, lambda tx: moves.move_task(tx, MASTER, "2", "3"))
    fixed, _ = repaired(sides.merged())
    tasks = by_title(materialize(fixed))
    assert (tasks["a3"]["id"], tasks["two"]["id"]) == (3, 4)
    assert tasks["one"]["dependencies"] == [4]


async def test_a_reference_inside_a_renumbered_document_keeps_the_meaning_its_side_gave_it(sides):
    # Found by the property test: task 3 is known to both sides; side a makes it depend on its new
    # task 4 while side b moves task 3 to id 4. Task 3's document is renumbered, but the reference
    # in it was side a's, to side a's task 4: it must not turn into a self-dependency.
    for n in (1, 2, 3):
        await add_task(sides.a, f"t{n}")
    sides.replicate()
    await add_task(sides.a, "a4")
    await depend(sides.a, 3, 4)
    sides.clock.ms += 10
    await sides.b.write(ROOT, lambda tx: moves.move_task(tx, MASTER, "3", "4"))
    fixed, _ = repaired(sides.merged())
    tasks = by_title(materialize(fixed))
    assert (tasks["a4"]["id"], tasks["t3"]["id"]) == (4, 5)
    assert tasks["t3"]["dependencies"] == [4]


async def test_a_reference_into_a_renumbered_task_whose_subtasks_collide_too(sides):
    # Found by the property test. Task 1 is known to both sides; each adds a subtask 1.1 to it,
    # side a makes task 1 depend on its own 1.1 and moves task 1 to 4, side b moves task 2 to 4.
    # Task 1 is renumbered (5) and side a's subtask too (5.2): side a's reference, decided from its
    # own dot, must end on side a's subtask — not on side b's, which kept the id 1.
    for n in (1, 2, 3):
        await add_task(sides.a, f"t{n}")
    sides.replicate()
    await add_subtask(sides.b, 1, "b's")
    sides.clock.ms += 10
    await add_subtask(sides.a, 1, "a's")
    await depend(sides.a, 1, "1.1")
    sides.clock.ms += 10
    await sides.b.write(ROOT, lambda tx: moves.move_task(tx, MASTER, "2", "4"))
    sides.clock.ms += 10
    await sides.a.write(ROOT, lambda tx: moves.move_task(tx, MASTER, "1", "4"))
    fixed, records = repaired(sides.merged())
    tasks = by_title(materialize(fixed))
    assert (tasks["t2"]["id"], tasks["t1"]["id"]) == (4, 5)
    assert {s["title"]: s["id"] for s in tasks["t1"]["subtasks"]} == {"b's": 1, "a's": 2}
    assert tasks["t1"]["dependencies"] == ["5.2"]
    assert [(r["previousId"], r["taskId"], r["references"]) for r in records] == [
        (4, 5, [5]), ("5.1", "5.2", [5])]


# ---- 2. cycles -----------------------------------------------------------------------------------------
async def test_a_cycle_closed_from_both_sides_loses_its_latest_edge(sides):
    for n in range(3):
        await add_task(sides.a, f"t{n + 1}")
    sides.replicate()
    await depend(sides.a, 1, 2)
    sides.clock.ms += 10
    await depend(sides.b, 3, 1)
    sides.clock.ms += 10
    await depend(sides.a, 2, 3)  # the latest edge of the cycle
    docs = sides.merged()
    assert find_cycles(materialize(docs), MASTER)
    fixed, records = repaired(docs)
    view = materialize(fixed)
    assert find_cycles(view, MASTER) == []
    assert [view.task(MASTER, n)["dependencies"] for n in (1, 2, 3)] == [[2], [], [1]]
    assert records == [{"kind": "cycle", "taskId": 2, "dependencyId": 3, "cycle": [2, 3, 1, 2],
                        "at": records[0]["at"]}]
    assert meta_repairs(view.task(MASTER, 2)) == records


async def test_a_cycle_through_a_subtask(sides):
    await add_task(sides.a, "t1")
    await add_task(sides.a, "t2")
    await add_subtask(sides.a, 2, "s")
    sides.replicate()
    await depend(sides.a, "2.1", 1)
    sides.clock.ms += 10
    await depend(sides.b, 1, "2.1")
    fixed, records = repaired(sides.merged())
    view = materialize(fixed)
    assert view.task(MASTER, 1)["dependencies"] == []
    assert view.task(MASTER, 2)["subtasks"][0]["dependencies"] == [1]
    assert [(r["taskId"], r["dependencyId"], r["cycle"]) for r in records] == [(1, "2.1", [1, "2.1", 1])]


def test_an_edge_added_on_several_sides_goes_with_all_its_dots():
    one = Doc().set("id", 1, 10, "a").add("dependencies", 2, 10, "a").add("dependencies", 2, 12, "b")
    two = Doc().set("id", 2, 10, "a").add("dependencies", 1, 11, "c")
    deltas, records = plan_repairs({"t1": one, "t2": two})
    assert merge(one, deltas["t1"]).members("dependencies") == [] and "t2" not in deltas
    assert [(r["taskId"], r["dependencyId"]) for r in records] == [(1, 2)]


async def test_two_independent_cycles_are_both_broken(sides):
    for n in range(4):
        await add_task(sides.a, f"t{n + 1}")
    sides.replicate()
    await depend(sides.a, 1, 2)
    await depend(sides.a, 3, 4)
    sides.clock.ms += 5
    await depend(sides.b, 2, 1)
    await depend(sides.b, 4, 3)
    fixed, records = repaired(sides.merged())
    view = materialize(fixed)
    assert find_cycles(view, MASTER) == []
    assert sorted((r["taskId"], r["dependencyId"]) for r in records) == [(2, 1), (4, 3)]


# ---- 3. a subtask added to a task deleted on the other side -------------------------------------------
async def test_a_deleted_task_comes_back_with_only_the_subtask_its_deletion_missed(sides):
    await add_task(sides.a, "keep")
    await add_task(sides.a, "parent")
    await add_subtask(sides.a, 2, "seen 1")
    await add_subtask(sides.a, 2, "seen 2")
    sides.replicate()
    await remove_task(sides.a, 2)
    sides.clock.ms += 10
    assert await add_subtask(sides.b, 2, "added on b") == 3
    docs = sides.merged()
    assert [t["id"] for t in materialize(docs).tasks(MASTER)] == [1]  # hidden by the deletion
    fixed, records = repaired(docs)
    parent = materialize(fixed).task(MASTER, 2)
    assert parent["title"] == "parent"
    assert [(s["id"], s["title"]) for s in parent["subtasks"]] == [(3, "added on b")]
    assert records == [{"kind": "deleted-parent", "taskId": 2, "subtasks": ["2.3"],
                        "deletedAt": records[0]["deletedAt"], "at": records[0]["at"]}]
    assert meta_repairs(parent) == records


async def test_a_deletion_that_saw_every_subtask_stays_whatever_the_other_side_edited(sides):
    await add_task(sides.a, "parent")
    await add_subtask(sides.a, 1, "s1")
    await add_subtask(sides.a, 1, "s2")
    sides.replicate()
    await remove_task(sides.a, 1)
    sides.clock.ms += 10
    await sides.b.write(ROOT, lambda tx: status.set_task_status(tx, MASTER, "1.1", "done"))
    await sides.b.write(ROOT, lambda tx: remove.remove_subtask(tx, MASTER, "1.2"))
    fixed, records = repaired(sides.merged())
    assert records == [] and materialize(fixed).tasks(MASTER) == []


async def test_a_resurrected_task_whose_id_was_reused_is_kept_and_the_new_one_renumbered(sides):
    await add_task(sides.a, "one")
    await add_task(sides.a, "two")
    await add_task(sides.a, "three")
    sides.replicate()
    await remove_task(sides.a, 3)
    assert await add_task(sides.a, "new three") == 3  # the id is free again on side a
    await depend(sides.a, 1, 3)
    sides.clock.ms += 10
    await add_subtask(sides.b, 3, "added on b")
    await depend(sides.b, 2, 3)
    fixed, records = repaired(sides.merged())
    tasks = by_title(materialize(fixed))
    assert (tasks["three"]["id"], tasks["new three"]["id"]) == (3, 4)
    assert [s["title"] for s in tasks["three"]["subtasks"]] == ["added on b"]
    assert tasks["one"]["dependencies"] == [4] and tasks["two"]["dependencies"] == [3]
    assert [r["kind"] for r in records] == ["deleted-parent", "duplicate-id"]


# ---- the plan as a whole --------------------------------------------------------------------------------
async def test_the_plan_is_the_same_bytes_in_any_order_and_stamped_from_the_documents(sides):
    await add_task(sides.a, "base")
    await add_task(sides.a, "two")
    sides.replicate()
    await depend(sides.a, 1, 2)
    await add_task(sides.a, "a3")
    sides.clock.ms += 10
    await depend(sides.b, 2, 1)
    await add_task(sides.b, "b3")
    docs = sides.merged()
    deltas, records = plan_repairs(docs)
    assert deltas and records
    shuffled = list(docs.items())
    random.Random(7).shuffle(shuffled)
    again = plan_repairs({k: decode(encode(d)) for k, d in shuffled})
    assert wire(again[0]) == wire(deltas) and again[1] == records
    flipped = merged(tag_docs(sides.b), tag_docs(sides.a))
    assert wire(plan_repairs(flipped)[0]) == wire(deltas)
    newest = max(latest(d) for d in docs.values())
    stamps = {reg[:2] for d in deltas.values() for reg in d.fields.values()}
    assert stamps == {(newest + 1, REPAIR_NODE)}
    assert {r["at"] for r in records} == {iso_at(newest + 1)}


def test_nothing_broken_plans_nothing():
    assert plan_repairs({}) == ({}, [])
    doc = Doc().set("id", 1, 5, "a")
    assert plan_repairs({"meta": Doc().set("created", "x", 3, "a"), "t1": doc}) == ({}, [])


def test_existing_metadata_is_kept_and_records_append():
    older = {"kind": "cycle", "taskId": 1, "dependencyId": 2, "cycle": [1, 2, 1], "at": "x"}
    one = Doc().set("id", 1, 10, "a").set("metadata", {"owner": "me", "repairs": [older]}, 10, "a")
    one.add("dependencies", 2, 11, "a")
    two = Doc().set("id", 2, 10, "a").add("dependencies", 1, 12, "b")
    deltas, records = plan_repairs({"t1": one, "t2": two})
    meta = merge(two, deltas["t2"]).get("metadata")
    assert meta == {"repairs": records}
    one = one.add("dependencies", 2, 13, "c")  # now task 1's edge is the latest
    deltas, records = plan_repairs({"t1": one, "t2": two})
    meta = merge(one, deltas["t1"]).get("metadata")
    assert meta["owner"] == "me" and meta["repairs"] == [older, *records]


def test_iso_at_reads_the_physical_part():
    assert iso_at(T0 << 16 | 5) == "2023-11-14T22:13:20.000Z"
    assert iso_at((1 << 64) - 1) == "9999-12-31T23:59:59.999Z"  # no crash on a runaway stamp


# ---- validate_dependencies lists the repairs --------------------------------------------------------------
async def test_validate_dependencies_reports_the_recorded_repairs(sides, tmp_path):
    for n in range(2):
        await add_task(sides.a, f"t{n + 1}")
    sides.replicate()
    await depend(sides.a, 1, 2)
    sides.clock.ms += 10
    await depend(sides.b, 2, 1)
    await add_task(sides.b, "b3")
    sides.clock.ms += 10
    await add_task(sides.a, "a3")
    fixed, records = repaired(sides.merged())
    store = Store(str(tmp_path / "c"))
    try:
        store.write({doc_key(ROOT, MASTER, k): encode(d) for k, d in fixed.items()})
        node_c = TaskService(store, HLC("side-c"))
        result = await call_tool("validate_dependencies", {"projectRoot": ROOT}, None,
                                 lambda root: ToolContext(node_c, root))
        data = orjson.loads(result["content"][0]["text"])["data"]
        assert data["valid"] is True and data["issues"] == []
        assert sorted(data["repairs"], key=lambda r: r["kind"]) == sorted(records, key=lambda r: r["kind"])
        assert data["repairs"] == recorded_repairs(node_c.view(ROOT), MASTER)
        clean = await call_tool("validate_dependencies", {"projectRoot": "/tmp/elsewhere"}, None,
                                lambda root: ToolContext(node_c, root))
        assert orjson.loads(clean["content"][0]["text"])["data"] == {
            "message": "Dependencies validated successfully", "valid": True, "issues": [], "repairs": []}
    finally:
        store.close()
