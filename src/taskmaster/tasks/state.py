"""What the domain logic sees: a read-only `ProjectView` and a copy-on-write `ProjectTx`.

Tasks are plain dicts shaped exactly like Task Master's tasks.json (`id` int, `dependencies` list of
ints and "P.S" strings, `subtasks` list of dicts with int `id`). The view hands out the cached dicts
themselves, so never mutate what you read. To change a task, call `tx.edit(tag, task)` and mutate the
copy it returns; `tx.add`, `tx.remove`, `tx.edit_metadata`, `tx.create_tag`, `tx.delete_tag`,
`tx.edit_state` and `tx.set_report` cover the rest. A domain function that raises leaves nothing
behind: the service commits a transaction only when the function returns.

Do not remove from `tx.tasks(tag)` while iterating it; collect, then remove.
"""

from __future__ import annotations

import hashlib
import secrets
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from ..crdt.taskdoc import same
from .errors import TaskError

MASTER = "master"


def _id_key(task: dict) -> int:
    return task.get("id")


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-shaped value (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def new_uid() -> str:
    return secrets.token_hex(8)


def seeded_uid(seed: str, *parts) -> str:
    """A document key derived from a seed (an operation's id) and a position: a transaction that
    applies the same answer again, here or on another replica, writes into the same documents."""
    return hashlib.blake2b("\x00".join(map(str, (seed, *parts))).encode(), digest_size=8).hexdigest()


@dataclass
class TagState:
    """One tag as the cache holds it: tasks sorted by id, with the document key of each."""

    tasks: list[dict] = field(default_factory=list)
    uid: dict[int, str] = field(default_factory=dict)  # id(task dict) -> document uid
    sub_keys: dict[str, list[str]] = field(default_factory=dict)  # task uid -> child keys in order
    metadata: dict = field(default_factory=dict)
    report: dict | None = None
    exists: bool = True
    by_id: dict[int, dict] = field(default_factory=dict)  # task id -> task (first one on a duplicate)
    memo: dict = field(default_factory=dict)  # answers derived from this tag; the service clears it on change

    def index(self) -> None:
        """Rebuild `by_id` from `tasks` (after loading)."""
        self.by_id = {}
        for t in self.tasks:
            self.by_id.setdefault(t.get("id"), t)

    def find(self, task_id: int) -> dict | None:
        return self.by_id.get(task_id)


class ProjectView:
    """Read access to one project's tags, tasks, metadata and state."""

    def __init__(self, root: str, tags: dict[str, TagState], state: dict):
        self.root = root
        self._tags = tags
        self._state = state

    @classmethod
    def from_plain(cls, root: str, tags: dict[str, dict], state: dict | None = None) -> ProjectView:
        """A view over plain data, for tests: `{tag: {"tasks": [...], "metadata": {...}}}`."""
        states = {}
        for name, body in tags.items():
            # Sorted by id, as the service's cache always is (ids that are not numbers go last).
            tasks = sorted((copy_json(t) for t in body.get("tasks", [])),
                           key=lambda t: t.get("id") if isinstance(t.get("id"), int) else 1 << 62)
            for t in tasks:
                t.setdefault("dependencies", [])
                t.setdefault("subtasks", [])
            states[name] = TagState(tasks, {id(t): new_uid() for t in tasks},
                                    {}, copy_json(body.get("metadata", {})), body.get("report"))
            states[name].index()
        return cls(root, states, copy_json(state or {}))

    # ---- tags --------------------------------------------------------------------------------------
    @property
    def state(self) -> dict:
        """Project-level state (Task Master's state.json: currentTag, lastSwitched, ...)."""
        return self._state

    @property
    def current_tag(self) -> str:
        tag = self._state.get("currentTag") or MASTER
        return tag if self.has_tag(tag) else MASTER

    def resolve_tag(self, tag: str | None) -> str:
        """The explicit tag if given, else the current one."""
        return tag if tag else self.current_tag

    def has_tag(self, name: str) -> bool:
        if name == MASTER:
            return True  # master always exists, even before its first task
        t = self._tag_state(name)
        return t is not None and t.exists

    def tag_names(self) -> list[str]:
        names = {n for n in self._tag_names_all() if self.has_tag(n)}
        names.add(MASTER)
        return sorted(names)

    def metadata(self, tag: str) -> dict:
        t = self._tag_state(tag)
        return t.metadata if t is not None and t.exists else {}

    def report(self, tag: str) -> dict | None:
        t = self._tag_state(tag)
        return t.report if t is not None and t.exists else None

    # ---- tasks -------------------------------------------------------------------------------------
    def tasks(self, tag: str) -> list[dict]:
        t = self._tag_state(tag)
        return t.tasks if t is not None and t.exists else []

    def task(self, tag: str, task_id: int) -> dict | None:
        t = self._tag_state(tag)
        return t.find(task_id) if t is not None and t.exists else None

    def find_uid(self, tag: str, uid: str) -> dict | None:
        """The committed task whose document uid is `uid` (a scan: for the rare caller that needs it)."""
        t = self._tags.get(tag)
        if t is None or not t.exists:
            return None
        return next((task for task in t.tasks if t.uid.get(id(task)) == uid), None)

    def subtask_keys(self, tag: str, task: dict) -> list[str]:
        """The child document keys of a committed task's subtasks, in order."""
        t = self._tags.get(tag)
        uid = t.uid.get(id(task)) if t is not None else None
        return list(t.sub_keys.get(uid, ())) if uid is not None else []

    def memo(self, tag: str) -> dict | None:
        """A place to keep answers computed from this tag until it next changes (None: don't cache)."""
        t = self._tags.get(tag)
        return t.memo if t is not None else None

    # ---- internals the transaction overrides -------------------------------------------------------
    def _tag_state(self, name: str) -> TagState | TagWork | None:
        return self._tags.get(name)

    def _tag_names_all(self):
        return self._tags.keys()


@dataclass
class TagWork:
    """A tag's pending changes inside one transaction."""

    base: TagState | None  # what the cache held (None for a tag new in this transaction)
    tasks: list[dict]
    metadata: dict
    exists: bool
    report: dict | None
    uid: dict[int, str] = field(default_factory=dict)  # id(working copy) -> uid, for edited/added
    origin: dict[str, dict] = field(default_factory=dict)  # uid -> the cached dict it was copied from
    sub_keys: dict[int, str] = field(default_factory=dict)  # id(subtask copy) -> child key
    added: list[dict] = field(default_factory=list)  # tasks new in this transaction
    removed: set[str] = field(default_factory=set)  # uids of cached tasks removed
    metadata_changed: bool = False
    report_changed: bool = False
    recreated: bool = False  # deleted (or absent) then created in this transaction
    seed: str | None = None  # the transaction's seed (ProjectTx.seed), given by the commit
    touched: dict[int, dict] = field(default_factory=dict)  # id(obj) -> obj: edited copies and added
    gone: set[int] = field(default_factory=set)  # id() of cached tasks replaced by a copy or removed
    _index: dict[int, int] | None = None  # id(task) -> position in `tasks`, when bisect cannot tell

    def index_of(self, task: dict) -> int:
        if self._index is None:
            # The list starts sorted by id and mostly stays so: try a binary search first.
            task_id = task.get("id")
            if isinstance(task_id, int):
                try:
                    i = bisect_left(self.tasks, task_id, key=_id_key)
                except TypeError:
                    i = len(self.tasks)
                while i < len(self.tasks) and self.tasks[i].get("id") == task_id:
                    if self.tasks[i] is task:
                        return i
                    i += 1
            self._index = {id(t): i for i, t in enumerate(self.tasks)}
        i = self._index.get(id(task))
        if i is None or self.tasks[i] is not task:
            raise ValueError("task is not in this tag")
        return i

    def find(self, task_id: int) -> dict | None:
        if len(self.touched) > 32:  # a bulk edit: the index would go stale anyway
            return next((t for t in self.tasks if t.get("id") == task_id), None)
        for t in self.touched.values():
            if t.get("id") == task_id:
                return t
        if self.base is not None and self.base.exists and not self.recreated:
            t = self.base.by_id.get(task_id)
            if t is not None and id(t) not in self.gone and t.get("id") == task_id:
                return t
        return None

    def replace(self, index: int, old: dict, new: dict) -> None:
        self.tasks[index] = new
        self.gone.add(id(old))
        self.touched[id(new)] = new
        if self._index is not None:
            del self._index[id(old)]
            self._index[id(new)] = index

    def append(self, task: dict) -> None:
        self.tasks.append(task)
        self.touched[id(task)] = task
        if self._index is not None:
            self._index[id(task)] = len(self.tasks) - 1

    def pop(self, index: int) -> None:
        task = self.tasks.pop(index)
        if self.touched.pop(id(task), None) is None:
            self.gone.add(id(task))
        self._index = None  # positions after it shifted


class ProjectTx(ProjectView):
    """A transaction over one project. Mutate only through its methods (see module doc)."""

    def __init__(self, view: ProjectView):
        super().__init__(view.root, view._tags, copy_json(view.state))
        self.base = view  # the committed view this transaction started from
        self._base_state = view.state
        self.work: dict[str, TagWork] = {}
        self.seed: str | None = None
        """Set by a supervised operation: new tasks and subtasks get keys derived from it (`seeded_uid`)
        instead of random ones, so applying its answer twice cannot create anything twice."""
        self._added = 0

    # ---- overrides so reads see this transaction's own changes ------------------------------------
    def _tag_state(self, name: str) -> TagState | TagWork | None:
        w = self.work.get(name)
        return w if w is not None else self._tags.get(name)

    def _tag_names_all(self):
        return set(self._tags) | set(self.work)

    def memo(self, tag: str) -> dict | None:
        return None  # a transaction's tags change under it

    def _work(self, tag: str) -> TagWork:
        w = self.work.get(tag)
        if w is None:
            base = self._tags.get(tag)
            if base is not None and base.exists:
                w = TagWork(base, list(base.tasks), copy_json(base.metadata), True, base.report)
            elif tag == MASTER:
                w = TagWork(base, [], {}, True, None, recreated=base is not None)
                w.metadata_changed = True
            else:
                raise TaskError(f"Tag '{tag}' does not exist", "TAG_NOT_FOUND")
            self.work[tag] = w
        return w

    # ---- tasks -------------------------------------------------------------------------------------
    def edit(self, tag: str, task: dict) -> dict:
        """A mutable copy of `task` that replaces it in the tag; returns the copy."""
        w = self._work(tag)
        if id(task) in w.uid:
            return task  # already a working copy
        uid = w.base.uid[id(task)] if w.base is not None else None
        if uid is None:
            raise ValueError("edit() takes a task read from this transaction")
        index = w.index_of(task)
        mine = copy_json(task)
        keys = w.base.sub_keys.get(uid, [])
        for sub, key in zip(mine.get("subtasks") or [], keys, strict=False):
            w.sub_keys[id(sub)] = key
        w.replace(index, task, mine)
        w.uid[id(mine)] = uid
        w.origin[uid] = task
        return mine

    def find(self, tag: str, task_id: int) -> dict | None:
        """The task with this id, as a working copy ready to mutate (None if absent)."""
        task = self.task(tag, task_id)
        return self.edit(tag, task) if task is not None else None

    def add(self, tag: str, task: dict) -> dict:
        """Add a new task (the dict becomes the transaction's; do not reuse it)."""
        w = self._work(tag)
        task.setdefault("dependencies", [])
        task.setdefault("subtasks", [])
        w.append(task)
        w.uid[id(task)] = seeded_uid(self.seed, "task", self._added) if self.seed else new_uid()
        self._added += 1
        w.added.append(task)
        return task

    def remove(self, tag: str, task: dict) -> None:
        w = self._work(tag)
        w.pop(w.index_of(task))
        uid = w.uid.pop(id(task), None)
        if uid is None and w.base is not None:
            uid = w.base.uid.get(id(task))
            if uid is not None:
                w.origin.setdefault(uid, task)  # the cached object the commit must drop
        if any(t is task for t in w.added):
            w.added = [t for t in w.added if t is not task]
        elif uid is not None:
            w.removed.add(uid)

    # ---- tags, metadata, state ---------------------------------------------------------------------
    def edit_metadata(self, tag: str) -> dict:
        w = self._work(tag)
        w.metadata_changed = True
        return w.metadata

    def set_report(self, tag: str, report: dict | None) -> None:
        w = self._work(tag)
        w.report = report
        w.report_changed = True

    def create_tag(self, name: str, metadata: dict) -> None:
        """Create an empty tag (add its tasks with `add`). The name must not be in use."""
        if self.has_tag(name) and name != MASTER:
            raise TaskError(f"Tag '{name}' already exists", "TAG_EXISTS")
        base = self._tags.get(name)
        w = TagWork(base, [], copy_json(metadata), True, None, metadata_changed=True,
                    recreated=base is not None, report_changed=True)
        deleted = self.work.get(name)
        if deleted is not None:  # deleted earlier in this transaction: its tasks stay removed
            w.removed = deleted.removed
        self.work[name] = w

    def delete_tag(self, name: str) -> None:
        w = self._work(name)
        if w.base is not None:
            w.removed.update(w.base.uid.values())
        w.tasks = []
        w._index = None
        w.touched = {}
        w.added = []
        w.exists = False
        w.report = None

    def edit_state(self) -> dict:
        """Project state (currentTag, lastSwitched, branchTagMapping, ...), mutable."""
        return self._state

    @property
    def state_changed(self) -> bool:
        return not same(self._state, self._base_state)  # not !=: 1 -> 1.0 is a change too

