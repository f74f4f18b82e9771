"""Supervised operations: long AI jobs as replicated records that outlive the node running them.

An operation's documents live under the root "~operations" in one of BUCKETS partitions, chosen by
the operation id (so the ring spreads operations over the members and the coordinator's tables per
partition stay bounded however many operations come and go):

    <id>          the record: kind, root, tag, status, runner, attempts, progress, result | error
    <id>/plan     what to do, written once: the model requests and the arguments of the final write
    <id>/<i>      the answer of model request i, saved before it is used (a checkpoint)

- Start. `submit` goes to the bucket's coordinator (the first reachable member of its preference
  list). It writes the record and the plan durably on W replicas, answers, and runs the operation:
  it is the runner.
- Run. The kind's runner (registered by the tools layer) asks the model for every request not yet
  answered, saving each answer and the progress, then has the tag's coordinator apply them in one
  write keyed by the operation id (`apply`, idempotent) and build the tool's answer: the result.
- Takeover. Every node scans the unfinished records it holds, on a timer and on every membership
  change. One whose runner is unreachable is taken over by the bucket's first reachable member; one
  whose runner is this node but that does not run here (after a restart) is resumed. The checkpoints
  spare the new runner the model calls already answered; the idempotent write spares the tag a
  second copy of anything. Under a partition both sides may run it: they write the same documents.
- Outcome. `result` and `error` are set only by a runner that finished, so a late write of a
  runner that lost the race never makes a finished operation look unfinished again.
- Listing. `gather` (GET /operations, `task-master ops`) asks every member for the records it holds
  and keeps the newest copy of each: a finished one over any unfinished one.
- Bounded. A finished operation's documents are deleted on every replica once `retention` has passed
  since the stamp of its outcome (the same moment on every replica); documents that anti-entropy
  brings back later are deleted again on arrival, and documents left without a record by a partial
  copy are deleted once they are that old themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskmaster.background import Background, woken_or_after
from taskmaster.cluster.rpc import RpcError
from taskmaster.crdt import Doc, decode
from taskmaster.crdt.doc import latest
from taskmaster.crdt.hlc import physical
from taskmaster.ring import partition_key
from taskmaster.storage import doc_key, split_doc_key
from taskmaster.tasks.errors import TaskError

log = logging.getLogger("taskmaster.operations")

ROOT = "~operations"
BUCKETS = 64
PREFIX = partition_key(ROOT, "")[:-1]  # every operation document starts with it
PLAN = "plan"
QUEUED, IN_PROGRESS, COMPLETED, FAILED = "queued", "in_progress", "completed", "failed"
_ID = re.compile(r"[0-9a-f]{16}")

Runner = Callable[["Run"], Awaitable[dict]]
"""Runs one operation of a kind; returns the tool's answer (raises TaskError to fail it)."""
Applier = Callable[[str, str, str, str, dict], Awaitable[dict]]
"""(operation id, kind, root, tag, payload) -> the tool's answer: the final write, on the tag's coordinator."""


@dataclass
class OperationsConfig:
    retention: float = 3600.0
    """Seconds a finished operation stays readable (get_operation_status) before it is deleted."""
    scan_interval: float = 0.5
    """How often unfinished records are checked for a runner that is gone (membership changes also
    trigger a check at once)."""
    gc_interval: float = 30.0
    """How often expired operations are looked for (never less often than a quarter of retention)."""
    apply_timeout: float = 120.0
    """How long the tag's coordinator may take for the final write before another candidate is asked."""


def is_operation_id(value: Any) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def bucket(op_id: str) -> str:
    return f"{zlib.crc32(op_id.encode()) % BUCKETS:02d}"


def outcome(record: Doc) -> str:
    """The status a record shows: finished once a result or an error is in it."""
    if record.get("result") is not None:
        return COMPLETED
    if record.get("error") is not None:
        return FAILED
    return record.get("status") or QUEUED


def finished_ms(record: Doc) -> int | None:
    """When the operation finished (the physical time of its outcome's stamp), or None."""
    for field in ("result", "error"):
        reg = record.fields.get(field)
        if reg is not None and reg[2] and reg[3] is not None:
            return physical(reg[0])
    return None


def summary(op_id: str, record: Doc) -> dict:
    """What get_operation_status shows of an operation, but its result (which may be large)."""
    status = outcome(record)
    view = {"operationId": op_id, "kind": record.get("kind"), "status": status,
            "progress": record.get("progress"), "runner": record.get("runner"),
            "attempts": record.get("attempts"), "projectRoot": record.get("root"), "tag": record.get("tag"),
            "createdAt": record.get("createdAt"), "startedAt": record.get("startedAt"),
            "finishedAt": record.get("finishedAt") if status in (COMPLETED, FAILED) else None}
    if status == FAILED:
        view["error"] = record.get("error")
    return view


def newest_copies(held: list[list[tuple[int, dict]]], include_finished: bool) -> list[dict]:
    """One summary per operation out of several replicas' (stamp, summary) copies: a finished copy
    over an unfinished one (an outcome is never undone), else the newest stamp (then the greater
    text: the answer does not depend on who answered first); the unfinished ones only unless
    `include_finished`, oldest first."""
    newest: dict[str, tuple[tuple[bool, int, str], dict]] = {}
    for copies in held:
        for stamp, view in copies:
            rank = (view["status"] in (COMPLETED, FAILED), stamp, json.dumps(view, sort_keys=True, default=str))
            kept = newest.get(view["operationId"])
            if kept is None or rank > kept[0]:
                newest[view["operationId"]] = (rank, view)
    views = [v for (done, _, _), v in newest.values() if include_finished or not done]
    return sorted(views, key=lambda v: (v.get("createdAt") or "", v["operationId"]))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Run:
    """What a kind's runner works with: the operation, its saved answers, and the two writes it makes."""

    def __init__(self, ops: Operations, op_id: str, record: Doc, plan: dict, saved: dict[int, Any]):
        self._ops = ops
        self.id, self.plan, self.saved = op_id, plan, saved
        self.kind, self.root, self.tag = record.get("kind"), record.get("root"), record.get("tag")

    async def save(self, index: int, answer: Any, done: int, total: int) -> None:
        """Keep the answer of request `index` (durably, on W replicas) and the progress with it."""
        self.saved[index] = answer
        await self._ops._write(self.id, {f"{self.id}/{index}": {"answer": answer},
                                         self.id: {"progress": {"done": done, "total": total}}})

    async def apply(self, payload: dict) -> dict:
        """Have the tag's coordinator make the final write; its answer, or TaskError with its refusal."""
        request = {"opId": self.id, "kind": self.kind, "root": self.root, "tag": self.tag, "payload": payload}
        reply = await self._ops.rep.route(partition_key(self.root, self.tag), "op.apply", request,
                                          lambda: self._ops._apply_here(request), self._ops.config.apply_timeout)
        if "error" in reply:
            raise TaskError(reply["error"], reply.get("code") or "OPERATION_FAILED")
        return reply["answer"]


class Operations:
    def __init__(self, rep, config: OperationsConfig | None = None, clock: Callable[[], float] = time.time):
        self.rep, self.config, self._clock = rep, config or OperationsConfig(), clock
        self.name, self.store, self.hlc = rep.name, rep.service.store, rep.service.hlc
        self.runners: dict[str, Runner] = {}
        self.appliers: dict[str, Applier] = {}
        self.stats = {"started": 0, "completed": 0, "failed": 0, "taken_over": 0, "expired": 0}
        self._unfinished: dict[str, str] = {}  # operation id -> its runner, for records held here
        self._running: dict[str, asyncio.Task] = {}
        self._background = Background()
        self._wake = asyncio.Event()
        self._next_gc = 0.0
        for key, value in self.store.scan(PREFIX):
            self._index(key, value)
        for method, handler in (("op.submit", self._on_submit), ("op.status", self._on_status),
                                ("op.apply", self._on_apply), ("op.list", self._on_list)):
            rep.rpc.register(method, handler)
        rep.doc_listeners.append(self._on_docs)
        rep.member_listeners.append(lambda _: self._wake.set())

    def register(self, kind: str, runner: Runner, applier: Applier) -> None:
        self.runners[kind], self.appliers[kind] = runner, applier

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._background.spawn(self._supervise())

    async def stop(self) -> None:
        """Stop supervising; operations running here stay unfinished for a restart or another node."""
        await self._background.stop(*self._running.values())

    # ---- the API -------------------------------------------------------------------------------------
    async def submit(self, kind: str, root: str, tag: str, plan: dict, total: int) -> dict:
        """Start an operation; returns its status once its record is durable on W replicas."""
        op_id = secrets.token_hex(8)
        request = {"opId": op_id, "kind": kind, "root": root, "tag": tag, "plan": plan, "total": total}
        return await self.rep.route(self._partition(op_id), "op.submit", request,
                                    lambda: self._on_submit(self.name, request))

    async def status(self, op_id: str) -> dict | None:
        """The operation's status as its bucket's coordinator knows it; None when there is no such one."""
        if not is_operation_id(op_id):
            raise ValueError(f"not an operation id: {op_id!r}")
        return await self.rep.route(self._partition(op_id), "op.status", op_id, lambda: self._on_status(self.name, op_id))

    def held(self) -> list[tuple[int, dict]]:
        """Every operation record held here: (the stamp of its newest field, its summary)."""
        out = []
        for key, value in self.store.scan(PREFIX):
            op_id = split_doc_key(key)[2]
            if is_operation_id(op_id):  # plans and saved answers are not listed
                record = decode(value)
                out.append((latest(record), summary(op_id, record)))
        return out

    async def gather(self, include_finished: bool = False) -> dict:
        """The operations of the whole cluster (the unfinished ones unless `include_finished`), oldest
        first: every member is asked for the records it holds (each holds the buckets it replicates)
        and the newest copy of each operation is kept, a finished one over any unfinished one. Members
        that did not answer are named in "missing": operations only they hold are absent."""
        peers = [m for m in self.rep.ring.members if m != self.name]
        answers = await asyncio.gather(*(self._held_by(p) for p in peers))
        held = [self.held(), *(a for a in answers if a is not None)]
        return {"self": self.name, "now": _iso(self._wall_ms()), "all": include_finished,
                "operations": newest_copies(held, include_finished),
                "missing": [p for p, a in zip(peers, answers, strict=True) if a is None]}

    async def _held_by(self, peer: str) -> list[tuple[int, dict]] | None:
        """The records `peer` holds, or None when it cannot be asked or does not answer in time."""
        if not self.rep.reachable(peer):
            return None
        try:
            raw = await self.rep.rpc.call(peer, self.rep.addrs[peer], "op.list", None,
                                          self.rep.config.catch_up_timeout)
        except RpcError as exc:  # an older version without op.list answers RemoteError
            log.debug("op.list on %s failed: %s", peer, exc)
            return None
        return _copies(raw)

    def __len__(self) -> int:
        """Documents of operations held here (what retention keeps bounded)."""
        return sum(1 for _ in self.store.scan(PREFIX))

    # ---- handlers (peers' requests) ------------------------------------------------------------------
    async def _on_submit(self, peer: str, request: Any) -> dict:
        op_id, kind, root, tag = _fields(request, "opId", "kind", "root", "tag")
        plan, total = request.get("plan"), request.get("total")
        if not is_operation_id(op_id) or not isinstance(plan, dict) or not _count(total):
            raise ValueError("op.submit needs opId, kind, root, tag, a plan and its total")
        if kind not in self.runners:
            raise ValueError(f"no runner for operations of kind {kind!r} here")
        if self._doc(op_id) is None:  # a retried submit finds its record
            now = _iso(self._wall_ms())
            await self._write(op_id, {
                op_id: {"kind": kind, "root": root, "tag": tag, "status": QUEUED, "runner": self.name,
                        "attempts": 0, "progress": {"done": 0, "total": total}, "createdAt": now},
                f"{op_id}/{PLAN}": {PLAN: plan}})
            self._start(op_id)
        return self._view(op_id)

    async def _on_status(self, peer: str, op_id: Any) -> dict | None:
        if not is_operation_id(op_id):
            raise ValueError("op.status takes an operation id")
        await self.rep.catch_up_partition(self._partition(op_id))
        return self._view(op_id)

    async def _on_list(self, peer: str, _: Any) -> list[tuple[int, dict]]:
        return self.held()

    async def _on_apply(self, peer: str, request: Any) -> dict:
        _fields(request, "opId", "kind", "root", "tag")
        if not is_operation_id(request["opId"]) or not isinstance(request.get("payload"), dict):
            raise ValueError("op.apply needs an operation id and a payload")
        await self.rep.catch_up(request["root"], request["tag"])
        return await self._apply_here(request)

    async def _apply_here(self, request: dict) -> dict:
        applier = self.appliers.get(request["kind"])
        if applier is None:
            raise ValueError(f"no applier for operations of kind {request['kind']!r} here")
        try:
            answer = await applier(request["opId"], request["kind"], request["root"], request["tag"],
                                   request["payload"])
        except TaskError as exc:  # a refusal (the tag changed meanwhile): the operation fails with it
            return {"error": exc.message, "code": exc.code}
        return {"answer": answer}

    # ---- running -------------------------------------------------------------------------------------
    def _start(self, op_id: str) -> None:
        if op_id in self._running:
            return
        task = asyncio.get_running_loop().create_task(self._run(op_id))
        self._running[op_id] = task
        task.add_done_callback(lambda _: self._running.pop(op_id, None))

    async def _run(self, op_id: str) -> None:
        await self.rep.catch_up_partition(self._partition(op_id))
        record, plan = self._doc(op_id), self._doc(f"{op_id}/{PLAN}")
        if record is None or plan is None or outcome(record) in (COMPLETED, FAILED):
            return  # gone, not all here yet (anti-entropy brings the rest), or done meanwhile
        runner = record.get("runner") or ""
        if runner != self.name and self.rep.reachable(runner):
            return  # its runner is alive after all
        kind = record.get("kind")
        attempts = (record.get("attempts") or 0) + 1
        if runner != self.name:
            self.stats["taken_over"] += 1
            log.warning("taking over operation %s (%s) from %s, attempt %d", op_id, kind, runner or "nobody",
                        attempts)
        self.stats["started"] += 1
        await self._write(op_id, {op_id: {"status": IN_PROGRESS, "runner": self.name, "attempts": attempts,
                                          "startedAt": _iso(self._wall_ms())}})
        saved = {}
        for key, value in self.store.scan(doc_key(ROOT, bucket(op_id), f"{op_id}/")):
            name = split_doc_key(key)[2].split("/", 1)[1]
            if name.isdigit():
                saved[int(name)] = decode(value).get("answer")
        try:
            runner_fn = self.runners.get(kind)
            if runner_fn is None:
                raise TaskError(f"this node cannot run operations of kind {kind!r}", "OPERATION_FAILED")
            result = await runner_fn(Run(self, op_id, record, plan.get(PLAN) or {}, saved))
        except TaskError as exc:
            await self._finish(op_id, "error", exc.message)
        except Exception as exc:  # a bug fails the operation, not the node (nor every later attempt)
            log.exception("operation %s (%s) failed", op_id, kind)
            await self._finish(op_id, "error", f"internal error in {kind}: {exc}")
        else:
            await self._finish(op_id, "result", result)

    async def _finish(self, op_id: str, field: str, value: Any) -> None:
        self.stats[COMPLETED if field == "result" else FAILED] += 1
        status = COMPLETED if field == "result" else FAILED
        await self._write(op_id, {op_id: {field: value, "status": status, "finishedAt": _iso(self._wall_ms())}})

    async def _supervise(self) -> None:
        while True:
            await woken_or_after(self._wake, self.config.scan_interval)
            for op_id, runner in list(self._unfinished.items()):
                if op_id in self._running:
                    continue
                if runner == self.name or (not self.rep.reachable(runner)
                                           and self.rep.candidates(self._partition(op_id))[:1] == [self.name]):
                    self._start(op_id)
            if self._clock() >= self._next_gc:
                self.gc()

    # ---- storage -----------------------------------------------------------------------------------
    def _partition(self, op_id: str) -> bytes:
        return partition_key(ROOT, bucket(op_id))

    def _doc(self, name: str) -> Doc | None:
        raw = self.store.get(doc_key(ROOT, bucket(name.split("/", 1)[0]), name))
        return decode(raw) if raw is not None else None

    def _view(self, op_id: str) -> dict | None:
        record = self._doc(op_id)
        if record is None:
            return None
        view = summary(op_id, record)
        if view["status"] == COMPLETED:
            view["result"] = record.get("result")
        return view

    async def _write(self, op_id: str, changes: dict[str, dict]) -> int:
        """Merge field values into the operation's documents, durably here and on W replicas."""
        keys = {doc_key(ROOT, bucket(op_id), name): values for name, values in changes.items()}
        settled = self.rep.write_fields(keys)
        for key in keys:
            self._index(key, self.store.get(key))
        return await settled

    def _index(self, key: bytes, value: bytes) -> None:
        """Note a stored operation document: unfinished records are what the supervisor watches."""
        op_id = split_doc_key(key)[2]
        if not is_operation_id(op_id):
            return
        record = decode(value)
        if outcome(record) in (COMPLETED, FAILED):
            self._unfinished.pop(op_id, None)
        else:
            self._unfinished[op_id] = record.get("runner") or ""

    def _on_docs(self, keys: list[bytes]) -> None:
        """Operation documents a peer sent: index them; an expired operation is deleted again at once."""
        expired, mine = set(), False
        for key in keys:
            if not key.startswith(PREFIX):
                continue
            mine = True
            raw = self.store.get(key)
            if raw is None:
                continue
            self._index(key, raw)
            op_id = split_doc_key(key)[2].split("/", 1)[0]
            record = self._doc(op_id)
            done = finished_ms(record) if record is not None else None
            if done is not None and done + self.config.retention * 1000 <= self._wall_ms():
                expired.add(op_id)
        for op_id in expired:
            self._delete(op_id)
        if mine:
            self._wake.set()

    def gc(self) -> int:
        """Delete the documents of operations that finished more than `retention` ago, and documents
        left without their record for that long; returns how many documents went."""
        self._next_gc = self._clock() + min(self.config.gc_interval, max(self.config.retention / 4, 0.01))
        horizon = self._wall_ms() - self.config.retention * 1000
        gone: set[str] = set()
        records: set[str] = set()
        orphans: dict[str, int] = {}  # operation id -> newest stamp of its documents without a record
        for key, value in self.store.scan(PREFIX):  # a record sorts just before its other documents
            name = split_doc_key(key)[2]
            if is_operation_id(name):
                records.add(name)
                done = finished_ms(decode(value))
                if done is not None and done <= horizon:
                    gone.add(name)
                continue
            op_id = name.split("/", 1)[0]
            if op_id in records:
                continue
            orphans[op_id] = max(orphans.get(op_id, 0), physical(latest(decode(value))))
        gone.update(op_id for op_id, newest in orphans.items() if newest <= horizon)
        return sum(self._delete(op_id) for op_id in gone)

    def _delete(self, op_id: str) -> int:
        keys = [key for key, _ in self.store.scan(doc_key(ROOT, bucket(op_id), op_id))]
        if keys:
            self.store.write(dict.fromkeys(keys))
            self.stats["expired"] += 1
        self._unfinished.pop(op_id, None)
        return len(keys)

    def _wall_ms(self) -> int:
        return int(self._clock() * 1000)


def _fields(request: Any, *names: str) -> tuple[str, ...]:
    if not isinstance(request, dict) or not all(isinstance(request.get(n), str) for n in names):
        raise ValueError(f"the request needs {', '.join(names)} as strings")
    return tuple(request[n] for n in names)


def _copies(raw: Any) -> list[tuple[int, dict]] | None:
    """A peer's op.list answer, its malformed items left out (None when it is not a list at all)."""
    if not isinstance(raw, list):
        return None
    return [(item[0], item[1]) for item in raw
            if isinstance(item, list | tuple) and len(item) == 2 and _count(item[0]) and isinstance(item[1], dict)
            and is_operation_id(item[1].get("operationId")) and isinstance(item[1].get("status"), str)]


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
