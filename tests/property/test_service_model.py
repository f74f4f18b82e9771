"""The real TaskService (RocksDB, CRDT commit path, cache) against a plain-dict model.

Random transactions (each a few operations: tasks added, edited and removed, subtasks added,
removed, moved, replaced and renumbered, dependencies changed, tags created and deleted, metadata,
reports and project state edited) run through `TaskService.write` and, identically, on the model;
after every step `service.view(root)` must equal the model. Closing and reopening the store must
change nothing, and a transaction function that raises must leave no trace.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from strategies import (
    INDEX,
    SUBTASK_FIELDS,
    TASK_FIELDS,
    FakeClock,
    normalized,
    plain_subtasks,
    plain_tasks,
    scaled,
    settings,
    strict,
    subtask_deps,
    task_deps,
    values,
)

from taskmaster.crdt import HLC
from taskmaster.storage import Store
from taskmaster.tasks.service import TaskService
from taskmaster.tasks.state import MASTER, ProjectTx, copy_json

ROOT = "/tmp/model-project"
TAG_NAMES = (MASTER, "a", "ab", "feature-x", "b")
STATE_KEYS = ("currentTag", "lastSwitched", "branchTagMapping")
METADATA_KEYS = ("created", "updated", "description", "copiedFrom")


# ---- two targets, one set of operations -----------------------------------------------------------
class ModelTarget:
    """The specification: tags of tasks keyed by id, in plain dicts."""

    def __init__(self, tags: dict | None = None, state: dict | None = None):
        self.tags = tags if tags is not None else {MASTER: {"tasks": {}, "metadata": {}, "report": None}}
        self.state = state if state is not None else {}

    def copy(self) -> ModelTarget:
        return ModelTarget(copy_json(self.tags), copy_json(self.state))

    def tag_names(self) -> list[str]:
        return sorted(self.tags)

    def task_ids(self, tag: str) -> list[int]:
        return sorted(self.tags[tag]["tasks"])

    def task(self, tag: str, task_id: int) -> dict:
        return self.tags[tag]["tasks"][task_id]

    def untouched(self, tag: str, task_id: int) -> None:
        pass

    def add(self, tag: str, task: dict) -> None:
        self.tags[tag]["tasks"][task["id"]] = task

    def remove(self, tag: str, task_id: int) -> None:
        del self.tags[tag]["tasks"][task_id]

    def create_tag(self, name: str, metadata: dict) -> None:
        self.tags[name] = {"tasks": {}, "metadata": metadata, "report": None}

    def delete_tag(self, name: str) -> None:
        del self.tags[name]

    def metadata(self, tag: str) -> dict:
        return self.tags[tag]["metadata"]

    def set_report(self, tag: str, report: dict | None) -> None:
        self.tags[tag]["report"] = report

    def edit_state(self) -> dict:
        return self.state


class TxTarget:
    """The same operations through a ProjectTx, as domain code would do them."""

    def __init__(self, tx: ProjectTx):
        self.tx = tx

    def tag_names(self) -> list[str]:
        return self.tx.tag_names()

    def task_ids(self, tag: str) -> list[int]:
        return sorted(t["id"] for t in self.tx.tasks(tag))

    def task(self, tag: str, task_id: int) -> dict:
        return self.tx.find(tag, task_id)

    def untouched(self, tag: str, task_id: int) -> None:
        self.tx.find(tag, task_id)  # a working copy that is never changed

    def add(self, tag: str, task: dict) -> None:
        self.tx.add(tag, task)

    def remove(self, tag: str, task_id: int) -> None:
        self.tx.remove(tag, self.tx.task(tag, task_id))

    def create_tag(self, name: str, metadata: dict) -> None:
        self.tx.create_tag(name, metadata)

    def delete_tag(self, name: str) -> None:
        self.tx.delete_tag(name)

    def metadata(self, tag: str) -> dict:
        return self.tx.edit_metadata(tag)

    def set_report(self, tag: str, report: dict | None) -> None:
        self.tx.set_report(tag, report)

    def edit_state(self) -> dict:
        return self.tx.edit_state()


def _nth(seq, n):
    return seq[n % len(seq)] if seq else None


def apply(op: tuple, target) -> None:
    """Run one operation on either target. Indices are taken modulo what exists, so an operation
    means the same thing on both as long as they agree (and does nothing if there is nothing)."""
    kind, args = op[0], op[1:]
    tag = _nth(target.tag_names(), args[0]) if kind not in ("create_tag", "set_state") else None
    if kind == "add_task":
        ids = target.task_ids(tag)
        target.add(tag, dict(copy_json(args[1]), id=(ids[-1] if ids else 0) + 1 + args[2]))
        return
    if kind == "create_tag":
        free = [n for n in TAG_NAMES if n not in target.tag_names()]
        if free:
            target.create_tag(_nth(free, args[0]), copy_json(args[1]))
        return
    if kind == "delete_tag":
        if tag != MASTER:
            target.delete_tag(tag)
        return
    if kind == "recreate_tag":  # deleted and created again in one transaction
        if tag != MASTER:
            target.delete_tag(tag)
            target.create_tag(tag, copy_json(args[1]))
        return
    if kind == "set_metadata":
        target.metadata(tag)[args[1]] = copy_json(args[2])
        return
    if kind == "del_metadata":
        target.metadata(tag).pop(args[1], None)
        return
    if kind == "set_report":
        target.set_report(tag, copy_json(args[1]))
        return
    if kind == "set_state":
        state = target.edit_state()
        if args[1] is None:
            state.pop(args[0], None)
        else:
            state[args[0]] = copy_json(args[1])
        return
    task_id = _nth(target.task_ids(tag), args[1])
    if task_id is None:
        return
    if kind == "untouched":
        target.untouched(tag, task_id)
    elif kind == "remove_task":
        target.remove(tag, task_id)
    else:
        _edit_task(kind, args[2:], target.task(tag, task_id))


def _edit_task(kind: str, args: tuple, task: dict) -> None:
    subs = task["subtasks"]
    if kind == "set_field":
        task[args[0]] = copy_json(args[1])
    elif kind == "del_field":
        task.pop(args[0], None)
    elif kind == "set_deps":
        task["dependencies"] = list(args[0])
    elif kind == "add_subtask":
        subs.insert(args[0] % (len(subs) + 1), dict(copy_json(args[1]), id=max([0, *(s["id"] for s in subs
                                                                                  if isinstance(s["id"], int))]) + 1))
    elif kind == "renumber":
        for i, sub in enumerate(subs):
            sub["id"] = i + 1
    elif subs:
        i = args[0] % len(subs)
        if kind == "remove_subtask":
            del subs[i]
        elif kind == "move_subtask":
            subs.insert(args[1] % len(subs), subs.pop(i))
        elif kind == "edit_subtask":
            subs[i][args[1]] = copy_json(args[2])
        elif kind == "subtask_deps":
            subs[i]["dependencies"] = list(args[1])
        elif kind == "replace_subtask":  # a new dict object in the same place
            subs[i] = dict(copy_json(args[1]), id=subs[i]["id"])


# ---- operations ----------------------------------------------------------------------------------
_task_field = st.sampled_from(TASK_FIELDS)
_sub_field = st.sampled_from(SUBTASK_FIELDS[1:])
_report = st.none() | st.fixed_dictionaries({"meta": st.fixed_dictionaries({"tasksAnalyzed": st.integers(0, 9)}),
                                             "complexityAnalysis": st.lists(values, max_size=2)})
_metadata = st.dictionaries(st.sampled_from(METADATA_KEYS), values, max_size=4)
_add_task = st.tuples(st.just("add_task"), INDEX, plain_tasks, st.integers(0, 2))
_create_tag = st.tuples(st.just("create_tag"), INDEX, _metadata)
task_ops = st.one_of(
    _add_task,
    _add_task,
    st.tuples(st.just("set_field"), INDEX, INDEX, _task_field, values),
    st.tuples(st.just("del_field"), INDEX, INDEX, _task_field),
    st.tuples(st.just("set_deps"), INDEX, INDEX, task_deps),
    st.tuples(st.just("add_subtask"), INDEX, INDEX, INDEX, plain_subtasks),
    st.tuples(st.just("remove_subtask"), INDEX, INDEX, INDEX),
    st.tuples(st.just("move_subtask"), INDEX, INDEX, INDEX, INDEX),
    st.tuples(st.just("edit_subtask"), INDEX, INDEX, INDEX, _sub_field, values),
    st.tuples(st.just("subtask_deps"), INDEX, INDEX, INDEX, subtask_deps),
    st.tuples(st.just("replace_subtask"), INDEX, INDEX, INDEX, plain_subtasks),
    st.tuples(st.just("renumber"), INDEX, INDEX),
    st.tuples(st.just("untouched"), INDEX, INDEX),
    st.tuples(st.just("remove_task"), INDEX, INDEX),
)
tag_ops = st.one_of(  # as likely as all task operations together, so tags churn
    _create_tag,
    _create_tag,
    st.tuples(st.just("delete_tag"), INDEX),
    st.tuples(st.just("recreate_tag"), INDEX, _metadata),
    st.tuples(st.just("set_metadata"), INDEX, st.sampled_from(METADATA_KEYS), values),
    st.tuples(st.just("del_metadata"), INDEX, st.sampled_from(METADATA_KEYS)),
    st.tuples(st.just("set_report"), INDEX, _report),
    st.tuples(st.just("set_state"), st.sampled_from(STATE_KEYS), st.none() | st.sampled_from(TAG_NAMES) | values),
)
transactions = st.lists(task_ops | tag_ops, min_size=1, max_size=4)
# A project to start from: tags holding tasks, so that every operation has something to act on.
seeds = st.tuples(st.lists(_create_tag, min_size=1, max_size=3), st.lists(_add_task, min_size=1, max_size=6))


class Boom(Exception):
    pass


def _snapshot(view) -> str:
    return strict({"tags": {name: [view.tasks(name), view.metadata(name), view.report(name)]
                            for name in view.tag_names()}, "state": view.state})


class ServiceMatchesModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="tm-model-")
        self.loop = asyncio.new_event_loop()
        self.model = ModelTarget()
        self._open()

    def _open(self) -> None:
        self.store = Store(f"{self.dir}/db")
        self.service = TaskService(self.store, HLC("model-node"))

    def teardown(self) -> None:
        self.store.close()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(seed=seeds)
    def seed_project(self, seed):
        """Tags holding tasks, made through the same checked path as every later step."""
        creates, adds = seed
        self.transaction(creates)
        self.transaction(adds)

    def _write(self, fn):
        return self.loop.run_until_complete(self.service.write(ROOT, fn))

    @rule(tx_ops=transactions)
    def transaction(self, tx_ops):
        expected = self.model.copy()
        for op in tx_ops:
            apply(op, expected)

        def fn(tx):
            target = TxTarget(tx)
            for op in tx_ops:
                apply(op, target)
            return "done"

        assert self._write(fn) == "done"
        self.model = expected

    @rule(tx_ops=transactions)
    def failing_transaction(self, tx_ops):
        def fn(tx):
            target = TxTarget(tx)
            for op in tx_ops:
                apply(op, target)
            raise Boom

        with pytest.raises(Boom):
            self._write(fn)

    @rule()
    def reopen(self):
        before = _snapshot(self.service.view(ROOT))
        self.store.close()
        self._open()
        assert _snapshot(self.service.view(ROOT)) == before

    @invariant()
    def view_equals_model(self):
        view = self.service.view(ROOT)
        assert view.tag_names() == self.model.tag_names()
        for name in TAG_NAMES:
            tag = self.model.tags.get(name)
            if tag is None:
                assert not view.has_tag(name) and view.tasks(name) == [] and view.metadata(name) == {}
                continue
            expected = [normalized(tag["tasks"][i]) for i in sorted(tag["tasks"])]
            assert strict(view.tasks(name)) == strict(expected), name
            assert [view.task(name, t["id"]) for t in expected] == view.tasks(name)
            assert strict(view.metadata(name)) == strict(tag["metadata"]), name
            assert strict(view.report(name)) == strict(tag["report"]), name
        assert strict(view.state) == strict(self.model.state)


ServiceMatchesModel.TestCase.settings = settings(max_examples=scaled(0.05), stateful_step_count=15)
test_service_matches_model = ServiceMatchesModel.TestCase


# ---- restarts --------------------------------------------------------------------------------------
@settings(max_examples=scaled(0.02))
@given(st.integers(0, 160), st.lists(st.text(max_size=3), min_size=2, max_size=4, unique=True))
def test_a_write_after_a_restart_wins_even_if_the_clock_went_back(behind, titles):
    """A node restarted with its wall clock behind its last write (NTP step, same millisecond) must
    still stamp new writes after the stored ones, or its own older values would beat them. This
    holds up to the HLC's max offset (500 ms) in all: further back, observing the stored stamps is
    clamped like any remote one, and writes lose until the wall clock catches up."""
    clock = FakeClock()
    loop = asyncio.new_event_loop()
    path = tempfile.mkdtemp(prefix="tm-restart-")
    try:
        for i, title in enumerate(titles):
            store = Store(f"{path}/db")
            service = TaskService(store, HLC("model-node", clock=clock))

            def fn(tx, i=i, title=title):
                if i == 0:
                    tx.add(MASTER, {"id": 1, "title": title})
                else:
                    tx.find(MASTER, 1)["title"] = title

            loop.run_until_complete(service.write(ROOT, fn))
            assert service.view(ROOT).task(MASTER, 1)["title"] == title
            store.close()
            clock.ms -= behind
        store = Store(f"{path}/db")
        assert TaskService(store, HLC("model-node", clock=clock)).view(ROOT).task(MASTER, 1)["title"] == titles[-1]
        store.close()
    finally:
        loop.close()
        shutil.rmtree(path, ignore_errors=True)


# ---- what a write stores -----------------------------------------------------------------------------
async def test_a_transaction_that_changes_nothing_writes_nothing(service):
    await service.write(ROOT, lambda tx: tx.add(MASTER, {"id": 1, "title": "t", "subtasks": [
        {"id": 1, "title": "s", "dependencies": [2]}, {"id": 2, "title": "u", "dependencies": []}]}))
    written = service.store._written

    def same_again(tx):
        task = tx.find(MASTER, 1)
        task["title"] = "t"  # the same value again
        task["subtasks"][1]["dependencies"] = []
        tx.edit_metadata(MASTER)  # opened, left as it was
        tx.edit_state()
        return "ok"

    assert await service.write(ROOT, same_again) == "ok"
    assert service.store._written == written


async def test_a_transaction_that_raises_writes_nothing_and_changes_nothing(service):
    await service.write(ROOT, lambda tx: tx.add(MASTER, {"id": 1, "title": "t"}))
    before, written = _snapshot(service.view(ROOT)), service.store._written

    def half_done(tx):
        tx.find(MASTER, 1)["title"] = "changed"
        tx.add(MASTER, {"id": 2, "title": "new"})
        tx.create_tag("other", {"description": "x"})
        tx.edit_state()["currentTag"] = "other"
        raise Boom

    with pytest.raises(Boom):
        await service.write(ROOT, half_done)
    assert _snapshot(service.view(ROOT)) == before and service.store._written == written


async def test_project_state_changes_of_json_type_only_are_stored(service):
    for value in (1, 1.0, True, 1):
        await service.write(ROOT, lambda tx, value=value: tx.edit_state().__setitem__("x", value))
        assert strict(service.view(ROOT).state) == strict({"x": value})


async def test_a_write_after_a_restart_with_the_clock_stepped_back_still_wins(tmp_path):
    """Own history is not clamped like a remote clock: a node whose wall clock jumped back 10 minutes
    across a restart still stamps new writes after what it stored."""
    now = [10_000_000]
    store = Store(str(tmp_path / "db"))
    svc = TaskService(store, HLC("n", clock=lambda: now[0]))
    await svc.write("/p", lambda tx: tx.add("master", {"id": 1, "title": "before"}))
    store.close()
    now[0] -= 600_000
    store = Store(str(tmp_path / "db"))
    svc = TaskService(store, HLC("n", clock=lambda: now[0]))

    def rename(tx):
        tx.find("master", 1)["title"] = "after"

    await svc.write("/p", rename)
    store.close()
    store = Store(str(tmp_path / "db"))
    assert TaskService(store, HLC("n", clock=lambda: now[0])).view("/p").task("master", 1)["title"] == "after"
    store.close()
