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

import secrets
from dataclasses import dataclass, field
from typing import Any

from .errors import TaskError

MASTER = "master"


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-shaped value (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def new_uid() -> str:
    return secrets.token_hex(8)


@dataclass
class TagState:
    """One tag as the cache holds it: tasks sorted by id, with the document key of each."""

    tasks: list[dict] = field(default_factory=list)
    uid: dict[int, str] = field(default_factory=dict)  # id(task dict) -> document uid
    sub_keys: dict[str, list[str]] = field(default_factory=dict)  # task uid -> child keys in order
    metadata: dict = field(default_factory=dict)
    report: dict | None = None
    exists: bool = True


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
            tasks = [copy_json(t) for t in body.get("tasks", [])]
            for t in tasks:
                t.setdefault("dependencies", [])
                t.setdefault("subtasks", [])
            states[name] = TagState(tasks, {id(t): new_uid() for t in tasks},
                                    {}, copy_json(body.get("metadata", {})), body.get("report"))
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
        for task in self.tasks(tag):
            if task.get("id") == task_id:
                return task
        return None

    # ---- internals the transaction overrides -------------------------------------------------------
    def _tag_state(self, name: str) -> TagState | None:
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

    @property
    def state(self) -> TagState:
        return TagState(self.tasks, {}, {}, self.metadata, self.report, self.exists)


class ProjectTx(ProjectView):
    """A transaction over one project. Mutate only through its methods (see module doc)."""

    def __init__(self, view: ProjectView):
        super().__init__(view.root, view._tags, copy_json(view.state))
        self._base_state = view.state
        self.work: dict[str, TagWork] = {}

    # ---- overrides so reads see this transaction's own changes ------------------------------------
    def _tag_state(self, name: str) -> TagState | None:
        w = self.work.get(name)
        return w.state if w is not None else self._tags.get(name)

    def _tag_names_all(self):
        return set(self._tags) | set(self.work)

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
        index = _index_of(w.tasks, task)
        mine = copy_json(task)
        keys = w.base.sub_keys.get(uid, [])
        for sub, key in zip(mine.get("subtasks") or [], keys, strict=False):
            w.sub_keys[id(sub)] = key
        w.tasks[index] = mine
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
        w.tasks.append(task)
        w.uid[id(task)] = new_uid()
        w.added.append(task)
        return task

    def remove(self, tag: str, task: dict) -> None:
        w = self._work(tag)
        index = _index_of(w.tasks, task)
        del w.tasks[index]
        uid = w.uid.pop(id(task), None)
        if uid is None and w.base is not None:
            uid = w.base.uid.get(id(task))
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
        self.work[name] = TagWork(base, [], copy_json(metadata), True, None, metadata_changed=True,
                                  recreated=base is not None, report_changed=True)

    def delete_tag(self, name: str) -> None:
        w = self._work(name)
        if w.base is not None:
            w.removed.update(w.base.uid.values())
        w.tasks = []
        w.added = []
        w.exists = False
        w.report = None

    def edit_state(self) -> dict:
        """Project state (currentTag, lastSwitched, branchTagMapping, ...), mutable."""
        return self._state

    @property
    def state_changed(self) -> bool:
        return self._state != self._base_state


def _index_of(tasks: list[dict], task: dict) -> int:
    for i, t in enumerate(tasks):
        if t is task:
            return i
    raise ValueError("task is not in this tag")
