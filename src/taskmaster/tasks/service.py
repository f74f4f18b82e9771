"""The task store of one node: a cache of materialized projects over CRDT documents in RocksDB.

`view(root)` gives the domain logic a read-only `ProjectView`; `write(root, fn)` runs `fn` on a
`ProjectTx`, turns what it changed into CRDT deltas, merges them, writes the changed documents in
one batch, and returns only after that batch is durable.

No lock is needed for a read-modify-write: loading, `fn` and the commit are synchronous, so on the
event loop nothing can interleave with them. Only the wait for durability yields, and that happens
after the cache already holds the new state (a later write that reads it is made durable by the same
or a later fsync of the same WAL, so it can never be acknowledged ahead of what it read).

In a cluster, `replicate` ships every committed batch to the other replicas while the local fsync
runs; the write returns once both are done, and records in `WRITE_COPIES` how many durable copies
it has. Documents other replicas send arrive through `apply_remote`, which merges them and marks the
tags they belong to for reloading.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left, insort
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import TypeVar

from ..crdt import HLC, Doc, decode, encode, merge
from ..crdt.doc import DELETED, latest
from ..crdt.taskdoc import fields_delta, fields_view, task_delta, tombstone, tombstone_task, view
from ..storage import Store, doc_key, project_prefix, split_doc_key
from .repair import plan_repairs
from .state import MASTER, ProjectTx, ProjectView, TagState, TagWork, new_uid, seeded_uid

log = logging.getLogger(__name__)
T = TypeVar("T")

DOC_CACHE_SIZE = 2048  # decoded documents kept for writes (a few MB)
STATE_TAG = ""  # the project's own documents live under the empty tag
STATE_DOC = "state"
META_DOC = "meta"
REPORT_DOC = "report"
TASK_PREFIX = "t"

WRITE_COPIES: ContextVar[list[int] | None] = ContextVar("write_copies", default=None)
"""Set by a caller to a list to learn the durable copies of each write made on its behalf."""


class Project:
    """Cache of one project: its documents and their materialized tags."""

    def __init__(self, root: str):
        self.root = root
        self.loaded_docs = 0  # documents found in the store when the project was loaded
        self.tags: dict[str, TagState] = {}
        self.state: dict = {}
        self.stale: set[str] = set()  # tags changed by other replicas: reloaded from the store on next use

    def view(self) -> ProjectView:
        return ProjectView(self.root, self.tags, self.state)

    def tag(self, name: str) -> TagState:
        t = self.tags.get(name)
        if t is None:
            t = self.tags[name] = TagState(exists=name == MASTER)
        return t

    def load_doc(self, tag: str, doc_id: str, doc: Doc) -> None:
        """Put a stored document into the cache (used while loading)."""
        self.loaded_docs += 1
        if tag == STATE_TAG:
            if doc_id == STATE_DOC:
                self.state = fields_view(doc) or {}
            return
        t = self.tag(tag)
        if doc_id == META_DOC:
            t.exists = not doc.deleted or tag == MASTER
            t.metadata = fields_view(doc) or {}
        elif doc_id == REPORT_DOC:
            t.report = doc.get("report")
        elif doc_id.startswith(TASK_PREFIX):
            task, keys = view(doc)
            if task is not None:
                uid = doc_id[len(TASK_PREFIX):]
                t.tasks.append(task)
                t.uid[id(task)] = uid
                t.sub_keys[uid] = keys

    def finish_load(self) -> None:
        for t in self.tags.values():
            t.tasks.sort(key=_order)
            t.index()


def _order(task: dict) -> int:
    task_id = task.get("id")
    return task_id if isinstance(task_id, int) else 1 << 62


class TaskService:
    def __init__(self, store: Store, hlc: HLC, metrics=None,
                 importer: Callable[[ProjectTx], bool] | None = None):
        self.store = store
        self.hlc = hlc
        self.metrics = metrics
        self.importer = importer  # fills an unknown project from its files (tasks.json) if any
        # In a cluster: ships a committed batch {key: encoded doc} to the other replicas and returns
        # how many durable copies besides ours it reached.
        self.replicate: Callable[[dict[bytes, bytes]], Awaitable[int]] | None = None
        self._projects: dict[str, Project] = {}
        self._writing = 0  # writes between commit and acknowledgement
        # Recently written documents, decoded: every write goes through _commit, so this never goes
        # stale, and a task written again skips RocksDB's get and the msgpack decode.
        self._docs: OrderedDict[bytes, Doc | None] = OrderedDict()

    # ---- reading -----------------------------------------------------------------------------------
    def project(self, root: str) -> Project:
        project = self._projects.get(root)
        if project is None:
            project = self._load(root)
        elif project.stale:
            self._reload(project)
        return project

    def current_tag(self, root: str) -> str:
        """The project's current tag as stored, without loading the project (for routing a call)."""
        project = self._projects.get(root)
        if project is not None and STATE_TAG not in project.stale:
            state = project.state
        else:
            raw = self.store.get(doc_key(root, STATE_TAG, STATE_DOC))
            state = (fields_view(decode(raw)) if raw is not None else None) or {}
        return state.get("currentTag") or MASTER

    def view(self, root: str) -> ProjectView:
        return self.project(root).view()

    def _load(self, root: str, may_import: bool = True) -> Project:
        project = Project(root)
        for key, value in self.store.scan(project_prefix(root)):
            _, tag, doc_id = split_doc_key(key)
            doc = decode(value)
            # Restarted with the wall clock at or behind the last write, the clock must still stamp
            # new writes after the stored ones, or they would lose to older values (lost updates).
            self.hlc.advance(latest(doc))
            project.load_doc(tag, doc_id, doc)
        project.finish_load()
        self._projects[root] = project
        if may_import and not project.loaded_docs and self.importer is not None and self._import(project):
            # An import is one large batch whose temporaries would stay interleaved with the cache
            # (RSS 166 MB instead of 106 MB for 10,000 tasks): drop it all and load it as a restart would.
            del self._projects[root], project
            self._docs.clear()  # the import's documents are not what will be written next
            self.store.compact_memory()
            return self._load(root, may_import=False)
        return project

    def _reload(self, project: Project) -> None:
        """Load again the tags other replicas changed (the rest of the cache stays)."""
        stale, project.stale = project.stale, set()
        for tag in stale:
            if tag != STATE_TAG:
                project.tags.pop(tag, None)
            for key, value in self.store.scan(doc_key(project.root, tag, "")):
                project.load_doc(tag, split_doc_key(key)[2], decode(value))
            t = project.tags.get(tag)
            if t is not None:
                t.tasks.sort(key=_order)
                t.index()

    def _import(self, project: Project) -> bool:
        tx = ProjectTx(project.view())
        try:
            imported = self.importer(tx)
        except Exception:  # a broken tasks.json must not make the project unusable
            log.exception("importing the files of %s failed; starting it empty", project.root)
            return False
        if imported:
            self._commit(project, tx)
        return bool(imported)

    # ---- writing -----------------------------------------------------------------------------------
    async def write(self, root: str, fn: Callable[[ProjectTx], T]) -> T:
        """Run `fn` on a transaction, commit what it changed, return its result once durable."""
        project = self.project(root)
        tx = ProjectTx(project.view())
        result = fn(tx)
        changes = self._commit(project, tx)
        if changes:
            replicating = asyncio.ensure_future(self.replicate(changes)) if self.replicate else None
            self._writing += 1
            try:
                if self._writing == 1 and replicating is None:
                    await asyncio.sleep(0)  # writes already on their way commit first and share the fsync
                await self.store.durable(alone=self._writing == 1 and replicating is None)
            finally:
                self._writing -= 1
            if replicating is not None:
                copies = 1 + await replicating
                receipt = WRITE_COPIES.get()
                if receipt is not None:
                    receipt.append(copies)
        return result

    async def apply_remote(self, docs: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
        """Merge documents from another replica into ours, durably; returns the keys that changed."""
        changed: dict[bytes, tuple[Doc, bytes]] = {}
        newest = 0
        for key, value in docs:  # all decoded and merged before anything is touched
            try:
                split_doc_key(key)
                current = self.store.get(key)
                if current == value:
                    continue
                incoming = decode(value)
                doc = incoming if current is None else merge(decode(current), incoming)
                data = encode(doc)
            except Exception as exc:  # whatever a peer sent, it is refused whole
                raise ValueError(f"not a document: {key[:80]!r}: {exc}") from None
            newest = max(newest, latest(incoming))
            if data != current:
                changed[key] = (doc, data)
        self.hlc.observe(newest)
        if changed:
            self.store.write({key: data for key, (_, data) in changed.items()})
            for key, (doc, _) in changed.items():
                if key in self._docs:
                    self._docs[key] = doc
            for key in changed:
                root, tag, _ = split_doc_key(key)
                project = self._projects.get(root)
                if project is not None:
                    project.stale.add(tag)
                    if tag in project.tags:
                        project.tags[tag].memo.clear()
        # Even with nothing new: what we hold may still await the fsync of an earlier batch.
        await self.store.durable()
        return list(changed)

    async def repair(self, root: str, tag: str) -> list[dict]:
        """Repair what concurrent writes on two sides of a partition broke in a tag (duplicate ids,
        cycles, a subtask under a deleted task); returns the repair records. The repairs are a pure
        function of the documents, stamped alike everywhere, so replicas doing it agree byte for byte."""
        docs = {split_doc_key(k)[2]: decode(v) for k, v in self.store.scan(doc_key(root, tag, ""))}
        deltas, records = plan_repairs(docs)
        if deltas:
            changed = await self.apply_remote([(doc_key(root, tag, d), encode(x)) for d, x in deltas.items()])
            if changed and self.replicate is not None:
                await self.replicate({k: self.store.get(k) for k in changed})
            kinds = Counter(r["kind"] for r in records)
            log.warning("repaired %s tag %r after a merge: %s (recorded in the tasks' metadata.repairs)",
                        root, tag, ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())),
                        extra={"event": "repair", "project": root, "tag": tag, "repairs": dict(kinds)})
        return records

    def _commit(self, project: Project, tx: ProjectTx) -> dict[bytes, bytes]:
        """Write what `tx` changed (not yet durable); returns the written documents, encoded."""
        ts, node = self.hlc.now(), self.hlc.node
        reads: dict[tuple[str, str], Doc | None] = {}  # documents read from the store, once each
        deltas: list[tuple[str, str, Doc]] = []
        if tx.state_changed:
            d = Doc()
            fields_delta(d, project.state, tx.state, ts, node)
            deltas.append((STATE_TAG, STATE_DOC, d))
        for tag, w in tx.work.items():
            w.seed = tx.seed
            deltas.extend(self._tag_deltas(project, tag, w, ts, node, reads))
        if not deltas:
            return {}
        merged = {}
        for tag, doc_id, delta in deltas:
            cur = self._stored(project, tag, doc_id, reads)
            merged[(tag, doc_id)] = delta if cur is None else merge(cur, delta)
        encoded = {doc_key(project.root, t, d): (doc, encode(doc)) for (t, d), doc in merged.items()}
        self.store.write({key: data for key, (_, data) in encoded.items()})
        for key, (doc, _) in encoded.items():
            self._remember(key, doc)
        if self.metrics:
            self.metrics.docs_written.inc(len(merged))
        # The batch is written: now the cache may show it.
        if tx.state_changed:
            project.state = fields_view(merged[(STATE_TAG, STATE_DOC)]) or {}
        for tag, w in tx.work.items():
            self._refresh_tag(project, tag, w, merged)
        return {key: data for key, (_, data) in encoded.items()}

    def _stored(self, project: Project, tag: str, doc_id: str, reads: dict) -> Doc | None:
        """The stored document, read from RocksDB: the cache keeps only materialized tasks, so memory
        holds one copy of a project, not two."""
        if (tag, doc_id) not in reads:
            key = doc_key(project.root, tag, doc_id)
            doc = self._docs.get(key)
            if doc is None:
                raw = self.store.get(key)
                doc = decode(raw) if raw is not None else None
            else:
                self._docs.move_to_end(key)
            reads[(tag, doc_id)] = doc
        return reads[(tag, doc_id)]

    def _remember(self, key: bytes, doc: Doc) -> None:
        self._docs[key] = doc
        self._docs.move_to_end(key)
        if len(self._docs) > DOC_CACHE_SIZE:
            self._docs.popitem(last=False)

    def _tag_deltas(self, project: Project, tag: str, w: TagWork, ts: int, node: str, reads: dict):
        if not w.exists:
            yield tag, META_DOC, tombstone(ts, node)
            for uid in w.removed:
                yield tag, TASK_PREFIX + uid, tombstone(ts, node)
            return
        if w.metadata_changed:
            d = Doc()
            meta = self._stored(project, tag, META_DOC, reads)
            if w.base is not None and not w.recreated:
                old = w.base.metadata
            else:  # a tombstone keeps its fields: clear them, or the old tag's metadata shows through
                old = {k: r[3] for k, r in meta.fields.items() if r[2] and k[0] != "~"} if meta else {}
            fields_delta(d, old, w.metadata, ts, node)
            if meta is None or meta.deleted:
                d.set(DELETED, False, ts, node)
            if not d.is_empty():  # metadata opened for editing but left as it was: nothing to write
                yield tag, META_DOC, d
        if w.report_changed:
            d = Doc()
            if w.report is None:
                d.unset("report", ts, node)
            else:
                d.set("report", w.report, ts, node)
            yield tag, REPORT_DOC, d
        for uid in w.removed:  # with the subtasks it has, so one added concurrently shows up (repair.py)
            yield tag, TASK_PREFIX + uid, tombstone_task(self._stored(project, tag, TASK_PREFIX + uid, reads), ts, node)
        added = {id(t) for t in w.added}
        for task in w.touched.values():
            uid = w.uid[id(task)]
            if uid in w.removed:
                continue
            doc = self._stored(project, tag, TASK_PREFIX + uid, reads)
            old = None if id(task) in added else w.origin.get(uid)
            keys = [w.sub_keys.get(id(s)) or (seeded_uid(w.seed, "sub", task.get("id"), i) if w.seed else new_uid())
                    for i, s in enumerate(task.get("subtasks") or [])]
            delta = task_delta(doc, old, task, keys, ts, node)
            if not delta.is_empty():
                yield tag, TASK_PREFIX + uid, delta

    def _refresh_tag(self, project: Project, tag: str, w: TagWork, merged: dict) -> None:
        t = project.tag(tag)
        t.memo.clear()
        meta = merged.get((tag, META_DOC))
        if meta is not None:
            t.exists = not meta.deleted or tag == MASTER
            t.metadata = fields_view(meta) or {}
        report = merged.get((tag, REPORT_DOC))
        if report is not None:
            t.report = report.get("report")
        changed: dict[str, dict | None] = {}
        for (dtag, doc_id), doc in merged.items():
            if dtag == tag and doc_id.startswith(TASK_PREFIX):
                uid = doc_id[len(TASK_PREFIX):]
                task, keys = view(doc)
                changed[uid] = task
                if task is None:
                    t.sub_keys.pop(uid, None)
                else:
                    t.sub_keys[uid] = keys
        if not changed:
            return
        # A new list each time (readers may key caches on the list object); only the changed tasks
        # move, each found by binary search on the id order.
        tasks = list(t.tasks)
        new_uids = {w.uid[id(task)] for task in w.added}
        old_by_uid = {uid: w.origin[uid] for uid in changed if uid in w.origin}
        if len(old_by_uid) + len(new_uids & changed.keys()) < len(changed):  # e.g. a deleted tag
            old_by_uid = {t.uid[id(task)]: task for task in tasks if t.uid[id(task)] in changed}
        by_id = t.by_id
        for old in old_by_uid.values():
            i = _position(tasks, old)
            if i is not None:
                del tasks[i]
            t.uid.pop(id(old), None)
            if by_id.get(old.get("id")) is old:
                del by_id[old.get("id")]
                twin = _position_of_id(tasks, old.get("id"))  # a duplicate id (until repaired)
                if twin is not None:
                    by_id[old.get("id")] = tasks[twin]
        for uid, task in changed.items():
            if task is not None:
                insort(tasks, task, key=_order)
                t.uid[id(task)] = uid
                by_id.setdefault(task.get("id"), task)
        t.tasks = tasks

def _position_of_id(tasks: list[dict], task_id) -> int | None:
    if not isinstance(task_id, int):
        return next((j for j, t in enumerate(tasks) if t.get("id") == task_id), None)
    i = bisect_left(tasks, task_id, key=_order)
    return i if i < len(tasks) and tasks[i].get("id") == task_id else None


def _position(tasks: list[dict], task: dict) -> int | None:
    i = bisect_left(tasks, _order(task), key=_order)
    while i < len(tasks) and _order(tasks[i]) == _order(task):
        if tasks[i] is task:
            return i
        i += 1
    return next((j for j, t in enumerate(tasks) if t is task), None)
