"""Deterministic repair of the invariants that concurrent writes on two sides of a partition break.

While a network partition lasts, each side has its own coordinator for a tag, so the node of a
stamp names the side that wrote it. Once the documents have merged, `plan_repairs(docs)` finds what
is broken and returns the deltas that repair it, in this order:

1. A subtask added to a task the other side deleted. A deletion made by `taskdoc.tombstone_task`
   deleted every subtask it saw, so a live child of such a deleted task is one it could not see:
   the task comes back (`~del` false) with just those subtasks; the ones it saw stay deleted. A
   plain `tombstone` (no `~cascade` with the same stamp) proves nothing and is left alone.
2. Two tasks with the same id in the tag, or two subtasks with the same id in one task. Both stay.
   The one whose `id` register was written earlier (stamp, then node, then document id / child
   key) keeps the id; each other one gets the next free id, in (old id, stamp) order: (highest id)
   + 1 and up, deleted tasks (subtasks) counted, so no dangling reference comes to name it.
   References to the old id (for a task, "P.S" references to its subtasks too) follow dot by dot:
   a reference means the item of the group whose `id` the node that wrote its OR-set dot wrote
   last, at or before the dot — on that side of the partition, the item that held the id then (one
   coordinator never gives one id to two items at once). When that node wrote none of the group's
   ids (another coordinator), a reference inside one of the items' own document (its subtasks'
   "P.S" references to each other) means that item, and any other the item that kept the id. A
   dot that means a renumbered item moves (removed, and the new element added), so a dependency
   both sides made on "their" task 3 ends up on both tasks.
3. Dependency cycles closed from both sides: while `dependencies.DependencyGraph` finds a cycle,
   its edge with the latest dot is removed (every dot of that dependency the plan observed).

Every repair is written with one stamp, 1 + the latest stamp in the tag's task documents, and the
node `REPAIR_NODE`, never with a clock: replicas planning on the same documents produce the same
bytes, each repair beats the writes it repairs, and planning again on the repaired documents finds
nothing. Each repair is recorded in `metadata["repairs"]` of the task it changed (a subtask's in
its parent's) with its kind, details and time; `recorded_repairs` lists them for
validate_dependencies.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from ..crdt.doc import DELETED, Doc, Dot, latest, merge
from ..crdt.hlc import physical
from ..crdt.taskdoc import CASCADE, DEPS
from .dependencies import DependencyGraph
from .ids import Ref
from .references import dep_target, express
from .state import ProjectView, TagState, copy_json

REPAIR_NODE = "~repair"  # the node of every repair stamp: the same on every replica
REPAIRS = "repairs"  # the metadata key of a task's repair records
TASK_DOC = "t"  # task documents are named "t" + uid (tasks/service.py)
METADATA = "metadata"

Holder = tuple[str, str | None]  # whose dependency set: (document id, child key or None)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


def plan_repairs(docs: dict[str, Doc]) -> tuple[dict[str, Doc], list[dict]]:
    """docs: every document of one tag (doc id -> merged Doc, tombstones included).

    Returns (deltas by doc id to merge in, repair records), both empty when nothing is broken. A
    pure function of the documents: every replica computing it on the same documents gets
    byte-identical deltas. The records are the ones the deltas add to the tasks' metadata.
    """
    plan = _Plan(docs)
    plan.resurrect_parents()
    plan.renumber_duplicates()
    plan.break_cycles()
    return plan.finish()


def recorded_repairs(view: ProjectView, tag: str) -> list[dict]:
    """The repair records kept in the metadata of a tag's tasks, in task order."""
    out = []
    for task in view.tasks(tag):
        meta = task.get(METADATA)
        records = meta.get(REPAIRS) if isinstance(meta, dict) else None
        if isinstance(records, list):
            out.extend(r for r in records if isinstance(r, dict))
    return out


def iso_at(ts: int) -> str:
    """The physical time of an HLC timestamp, written as `model.iso_now` writes the current time."""
    ms = min(physical(ts), _MAX_MS)
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(eq=False)  # one group is one key: hashed by identity
class _Group:
    """Items that had one id, in `id` stamp order: the first keeps it, each other gets its `new`."""

    written: list[tuple[int, str]] = field(default_factory=list)  # each item's `id` stamp
    owners: list[Holder] = field(default_factory=list)  # each item's own document (key None: a task)
    new: list[int | None] = field(default_factory=list)  # each item's new id (None: kept)

    def join(self, written: tuple[int, str], own: Holder, new: int | None) -> None:
        self.written.append(written)
        self.owners.append(own)
        self.new.append(new)

    def meant(self, holder: Holder, dot: Dot) -> int:
        """Which item (its index) a reference means, as one dot of it tells (module doc, 2.)."""
        wrote = [i for i, (ts, node) in enumerate(self.written) if node == dot[1] and ts <= dot[0]]
        if wrote:
            return wrote[-1]  # in stamp order: the last item that node gave the id to before the dot
        return next((i for i, own in enumerate(self.owners)
                     if holder[0] == own[0] and own[1] in (None, holder[1])), 0)


class _Plan:
    """One planning: the documents, the repairs so far (`deltas`, and `work`: the documents with
    them merged in, which the next step reads) and their records."""

    def __init__(self, docs: dict[str, Doc]):
        self.docs = {k: docs[k] for k in sorted(docs) if k.startswith(TASK_DOC)}
        self.work = dict(self.docs)  # the documents with the repairs planned so far
        self.deltas: dict[str, Doc] = {}
        self.notes: dict[str, list[dict]] = defaultdict(list)  # doc id -> records for its metadata
        self.records: list[dict] = []

    @cached_property
    def ts(self) -> int:
        """The stamp of every repair (computed only when there is one to make)."""
        return 1 + max((latest(d) for d in self.docs.values()), default=0)

    # ---- bookkeeping ------------------------------------------------------------------------------
    def _delta(self, doc_id: str, key: str | None = None) -> Doc:
        delta = self.deltas.setdefault(doc_id, Doc())
        return delta if key is None else delta.child(key)

    def _sync(self, doc_id: str) -> None:
        self.work[doc_id] = merge(self.docs[doc_id], self.deltas[doc_id])

    def _note(self, doc_id: str, record: dict) -> None:
        record["at"] = iso_at(self.ts)
        self.notes[doc_id].append(record)
        self.records.append(record)

    def _live_tasks(self) -> list[tuple[str, Doc]]:
        return [(k, d) for k, d in self.work.items() if not d.deleted and _is_id(d.get("id"))]

    def _holders(self) -> list[tuple[Holder, Doc]]:
        """Every live task and subtask with its dependency set, in document order."""
        out = []
        for doc_id, doc in self._live_tasks():
            out.append(((doc_id, None), doc))
            out.extend(((doc_id, key), c) for key, c in sorted(doc.children.items()) if not c.deleted)
        return out

    def _wire(self, holder: Holder) -> int | str:
        """The id of a holder as the wire writes it (4, or "4.2")."""
        doc = self.work[holder[0]]
        task_id = doc.get("id")
        return task_id if holder[1] is None else f"{task_id}.{doc.children[holder[1]].get('id')}"

    # ---- 1. subtasks added to a task deleted on the other side ---------------------------------
    def resurrect_parents(self) -> None:
        for doc_id, doc in list(self.work.items()):
            if not _deleted_with_subtasks(doc):
                continue
            unseen = [c for c in doc.children.values() if not c.deleted]
            if not unseen:
                continue
            self._delta(doc_id).set(DELETED, False, self.ts, REPAIR_NODE)
            self._sync(doc_id)
            task_id = doc.get("id")
            self._note(doc_id, {"kind": "deleted-parent", "taskId": task_id,
                                "subtasks": [f"{task_id}.{i}" for i in sorted(c.get("id") for c in unseen
                                                                              if _is_id(c.get("id")))],
                                "deletedAt": iso_at(doc.fields[DELETED][0])})

    # ---- 2. duplicate ids -----------------------------------------------------------------------
    def renumber_duplicates(self) -> None:
        old_ids = {doc_id: doc.get("id") for doc_id, doc in self._live_tasks()}  # what references name
        tasks = self._renumber_tasks()
        subtasks = self._renumber_subtasks()
        if not tasks and not subtasks:
            return
        followed = self._follow(old_ids, tasks, subtasks)
        for old, group in tasks.items():
            for i, new in enumerate(group.new):
                if new is not None:
                    self._note_renumbering(group.owners[i][0], new, old, followed[(group, i)])
        for (doc_id, old), group in subtasks.items():
            task_id = self.work[doc_id].get("id")
            for i, new in enumerate(group.new):
                if new is not None:
                    self._note_renumbering(doc_id, f"{task_id}.{new}", f"{task_id}.{old}",
                                           followed[(group, i)])

    def _renumber_tasks(self) -> dict[int, _Group]:
        by_id: dict[int, list[tuple[tuple, str]]] = defaultdict(list)
        for doc_id, doc in self._live_tasks():
            by_id[doc.get("id")].append((_written(doc), doc_id))
        # Past every id a document of the tag ever had: a reference left dangling to a deleted
        # task (add wins over a concurrent removal) must not come to name the renumbered one.
        next_id = max((d.get("id") for d in self.work.values() if _is_id(d.get("id"))), default=0) + 1
        groups: dict[int, _Group] = {}
        for old in sorted(by_id):
            if len(by_id[old]) == 1:
                continue
            group = groups[old] = _Group()
            for i, (stamp, doc_id) in enumerate(sorted(by_id[old])):
                group.join(stamp, (doc_id, None), next_id if i else None)
                if i:
                    self._renumber_task(doc_id, old, next_id)
                    next_id += 1
        return groups

    def _renumber_task(self, doc_id: str, old: int, new: int) -> None:
        delta = self._delta(doc_id)
        delta.set("id", new, self.ts, REPAIR_NODE)
        for key, child in sorted(self.work[doc_id].children.items()):
            parent = child.get("parentTaskId")
            if not child.deleted and parent.__class__ is int and parent == old:
                delta.child(key).set("parentTaskId", new, self.ts, REPAIR_NODE)
        self._sync(doc_id)

    def _renumber_subtasks(self) -> dict[tuple[str, int], _Group]:
        groups: dict[tuple[str, int], _Group] = {}
        for doc_id, doc in self._live_tasks():
            live = [(c.get("id"), key, c) for key, c in doc.children.items() if not c.deleted]
            if len({i for i, _, _ in live}) == len(live):
                continue  # the usual case, checked cheaply
            by_id: dict[int, list[tuple[tuple, str]]] = defaultdict(list)
            for sub_id, key, child in live:
                if _is_id(sub_id):
                    by_id[sub_id].append((_written(child), key))
            # Past every subtask id the task ever had, as for tasks.
            next_id = 1 + max(c.get("id") for c in doc.children.values() if _is_id(c.get("id")))
            for old in sorted(by_id):
                if len(by_id[old]) == 1:
                    continue
                group = groups[(doc_id, old)] = _Group()
                for i, (stamp, key) in enumerate(sorted(by_id[old])):
                    group.join(stamp, (doc_id, key), next_id if i else None)
                    if i:
                        self._delta(doc_id, key).set("id", next_id, self.ts, REPAIR_NODE)
                        next_id += 1
            self._sync(doc_id)
        return groups

    def _follow(self, old_ids: dict[str, int], tasks: dict[int, _Group],
                subtasks: dict[tuple[str, int], _Group]) -> dict[tuple[_Group, int], set[Holder]]:
        """Move every dot of a reference to what it means now: the task it meant (which document,
        under which id), then, for "P.S", the subtask it meant in that document. Returns the
        holders whose references followed each renumbered item, by (its group, its index there)."""
        unique = {old: doc_id for doc_id, old in old_ids.items() if old not in tasks}
        followed: dict[tuple[_Group, int], set[Holder]] = defaultdict(set)
        changed: set[str] = set()
        for holder, item in self._holders():
            for elem in item.members(DEPS):
                ref = dep_target(elem)
                if ref is None or (ref.task not in tasks and (unique.get(ref.task), ref.sub) not in subtasks):
                    continue
                moved: dict[Ref, set[Dot]] = defaultdict(set)
                for dot in sorted(item.dots(DEPS, elem)):
                    task_id, doc_id = ref.task, unique.get(ref.task)
                    group = tasks.get(ref.task)
                    if group is not None:
                        i = group.meant(holder, dot)
                        doc_id, task_id = group.owners[i][0], group.new[i] or ref.task
                        if group.new[i] is not None:
                            followed[(group, i)].add(holder)
                    sub_id = ref.sub
                    group = subtasks.get((doc_id, ref.sub))
                    if group is not None:
                        i = group.meant(holder, dot)
                        sub_id = group.new[i] or ref.sub
                        if group.new[i] is not None:
                            followed[(group, i)].add(holder)
                    if Ref(task_id, sub_id) != ref:
                        moved[Ref(task_id, sub_id)].add(dot)
                for target, dots in moved.items():
                    delta = self._delta(*holder)
                    delta.remove(DEPS, elem, frozenset(dots))
                    delta.add(DEPS, express(target), self.ts, REPAIR_NODE)
                    changed.add(holder[0])
        for doc_id in sorted(changed):
            self._sync(doc_id)
        return followed

    def _note_renumbering(self, doc_id: str, new: int | str, old: int | str, holders: set[Holder]) -> None:
        refs = sorted({self._wire(h) for h in holders}, key=_wire_order)
        self._note(doc_id, {"kind": "duplicate-id", "taskId": new, "previousId": old, "references": refs})

    # ---- 3. cycles ------------------------------------------------------------------------------
    def break_cycles(self) -> None:
        tasks, where = self._dependency_items()
        graph = DependencyGraph(ProjectView("", {"": TagState(tasks)}, {}), "")
        while cycles := graph.cycles():
            broken: set[tuple[str, str]] = set()
            for cycle in cycles:
                edges = list(zip(cycle, cycle[1:], strict=False))
                if broken.intersection(edges):
                    continue  # an edge of it went earlier in this round
                holder, target = max(edges, key=lambda e: (self._edge_dot(where[e[0]][0], e[1]),
                                                           _node_order(e[0]), _node_order(e[1])))
                (doc_id, key), plain = where[holder]
                elem = _wire_of(target)
                self._delta(doc_id, key).remove(DEPS, elem, self._item((doc_id, key)).dots(DEPS, elem))
                self._sync(doc_id)
                plain[DEPS].remove(elem)  # what the graph reads
                broken.add((holder, target))
                start = cycle.index(holder)
                chain = [*cycle[start:-1], *cycle[:start], holder]
                self._note(doc_id, {"kind": "cycle", "taskId": _wire_of(holder), "dependencyId": elem,
                                    "cycle": [_wire_of(n) for n in chain]})

    def _dependency_items(self) -> tuple[list[dict], dict[str, tuple[Holder, dict]]]:
        """The tag as DependencyGraph reads it (ids and dependencies only), and for each node its
        holder and its item in that plain form. Only what a cycle could pass through: items with
        dependencies, items depended on, and the tasks holding them."""
        live = [(doc_id, doc, _live_elements(doc), [(key, c, _live_elements(c)) for key, c in
                                                    sorted(doc.children.items()) if not c.deleted])
                for doc_id, doc in self._live_tasks()]
        wanted = {e for _, _, deps, subs in live for e in (*deps, *(e for _, _, d in subs for e in d))}
        tasks, where = [], {}
        for doc_id, doc, deps, children in live:
            task_id = doc.get("id")
            task = {"id": task_id, DEPS: deps, "subtasks": []}
            for key, child, sub_deps in children:
                sub_id = child.get("id")
                if _is_id(sub_id) and (sub_deps or f"{task_id}.{sub_id}" in wanted):
                    sub = {"id": sub_id, DEPS: sub_deps}
                    task["subtasks"].append(sub)
                    where[f"{task_id}.{sub_id}"] = ((doc_id, key), sub)
            if deps or task["subtasks"] or task_id in wanted:
                tasks.append(task)
                where[str(task_id)] = ((doc_id, None), task)
        return tasks, where

    def _item(self, holder: Holder) -> Doc:
        doc = self.work[holder[0]]
        return doc if holder[1] is None else doc.children[holder[1]]

    def _edge_dot(self, holder: Holder, target: str) -> Dot:
        return max(self._item(holder).dots(DEPS, _wire_of(target)))

    # ---- the records ----------------------------------------------------------------------------
    def finish(self) -> tuple[dict[str, Doc], list[dict]]:
        for doc_id, notes in sorted(self.notes.items()):
            before = self.work[doc_id].get(METADATA)
            meta = copy_json(before) if isinstance(before, dict) else {}
            if before is not None and not isinstance(before, dict):
                meta["previousValue"] = before  # not an object: kept beside the records
            prior = meta.get(REPAIRS)
            prior = prior if isinstance(prior, list) else [] if prior is None else [prior]
            meta[REPAIRS] = [*prior, *copy_json(notes)]
            self._delta(doc_id).set(METADATA, meta, self.ts, REPAIR_NODE)
        return {k: self.deltas[k] for k in sorted(self.deltas)}, self.records


def _live_elements(doc: Doc) -> list:
    """The dependencies in the set, unsorted (`Doc.members` sorts; the graph does not need it)."""
    return [e for e, (adds, rems) in doc.sets.get(DEPS, {}).items() if adds - rems]


def _is_id(value: object) -> bool:
    return value.__class__ is int and value >= 1


def _written(doc: Doc) -> tuple[int, str]:
    """When and by which node the `id` register was written."""
    reg = doc.fields["id"]
    return reg[0], reg[1]


def _deleted_with_subtasks(doc: Doc) -> bool:
    """Deleted by `tombstone_task` (the cascade mark carries the stamp of the deletion)."""
    mark, gone = doc.fields.get(CASCADE), doc.fields.get(DELETED)
    return doc.deleted and mark is not None and mark[2] and mark[3] is True and mark[:2] == gone[:2]


def _wire_of(node: str) -> int | str:
    return node if "." in node else int(node)


def _node_order(node: str) -> tuple[int, int]:
    task, _, sub = node.partition(".")
    return int(task), int(sub or 0)


def _wire_order(wire: int | str) -> tuple[int, int]:
    return _node_order(str(wire))
