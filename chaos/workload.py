"""The workload: concurrent MCP clients, each pinned to one node, each following its own sequence of
steps drawn from the seed.

A step is a kind of operation and three uniform numbers that choose its parameters; `plan(seed,
client)` is a pure function, so the same seed gives every client the same sequence. What a step
addresses (which task, which tag) is resolved against what the client knows at that moment (its
own acknowledged writes and its last read), so concrete ids follow what the cluster answered.

Every operation gets a unique marker ("[c3.17]"); creating writes carry it in the data (task and
subtask titles, `description` of tags, whose names are unique per operation too), which is how the
checker finds them in the final reads. Id-addressed writes record the markers of what they addressed.

Supervised operations: now and then a client writes a small PRD whose numbered requirements carry
the op's marker (the nodes share this machine's filesystem) and parses it with `async: true` into a
fresh tag of its own; the answer's operationId goes into the history, and after the heal the final
phase waits for every acknowledged operation to finish (`settle_operations`).

Shared data: the `master` tag (everyone adds, nests, sets statuses, links dependencies). Each client
moves only its own tasks, and only into its own `c<N>keep` tag; tag copies, renames and deletions
touch only the client's own tags, whose tasks are copies, so no acknowledged task is deleted by
design. Claims live in the `work` tag, which only claims, releases and new work items touch, so the
claim checker sees every status change a lease depends on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

from taskmaster.tasks.model import PRIORITIES, STATUSES
from tests.jsonrpc_client import McpHttp, ToolFailed

from .history import ERROR, OK, UNKNOWN, Op, marker, marker_in

MASTER = "master"
WORK_TAG = "work"
SETUP_CLIENT = -1
WEIGHTS = {"add_task": 20, "add_subtask": 12, "set_status": 12, "add_dependency": 9, "remove_dependency": 5,
           "move_within": 4, "move_to_tag": 3, "add_tag": 3, "copy_tag": 2, "rename_tag": 2,
           "delete_tag": 2, "claim": 12, "add_work": 5, "read": 5, "parse_prd": 2}  # parse_prd: ~1 in 50
LEASES = (3, 5, 8)  # seconds; short, so that expiries happen within a run
RELEASE_CHANCE = 0.7  # a holder marks its item done; otherwise it renews the claim
REFUSED_BACKOFF = 0.2
REFUSED = "connection refused"
# Tool errors that say the call may have run anyway (a forwarded call whose coordinator went silent, an
# exception past the point of writing): such an outcome is unknown, not a failure.
PRD_PARTS = ("one", "two", "three")  # the requirements of a workload PRD, one task each
OPERATION_WAIT = 30.0  # seconds the final phase waits for acknowledged operations to finish
OPERATION_POLL = 0.5
FINISHED = ("completed", "failed")
INDETERMINATE = ("may or may not have taken effect", "failed the call", "internal error")


@dataclass(frozen=True)
class Step:
    kind: str
    u: tuple[float, float, float]


def plan(seed: int, client: int) -> Iterator[Step]:
    """The client's endless sequence of steps: a pure function of (seed, client)."""
    rng = random.Random(f"chaos-workload:{seed}:{client}")
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    while True:
        yield Step(rng.choices(kinds, weights)[0], (rng.random(), rng.random(), rng.random()))


@dataclass(frozen=True)
class Call:
    kind: str
    tool: str
    args: dict
    marker: str
    targets: tuple[str, ...] = ()


def _pick(items: list, u: float):
    return items[min(int(u * len(items)), len(items) - 1)]


class ClientState:
    """What one client knows, and how it turns steps into calls (pure: no I/O)."""

    def __init__(self, client: int):
        self.client = client
        self.seq = 0
        self.tasks: dict[str, int] = {}  # master: marker -> task id
        self.subtasks: dict[str, str] = {}  # master: marker -> "P.S"
        self.edges: list[tuple[str, str]] = []  # dependencies this client added: (task, depends on)
        self.tags: set[str] = set()  # own tags known to exist
        self.held: tuple[str, str] | None = None  # claimed item in WORK_TAG: (id, marker)

    @property
    def agent(self) -> str:
        return f"agent{self.client}"

    @property
    def keep(self) -> str:
        return f"c{self.client}keep"

    def own(self, mark: str) -> bool:
        return mark.startswith(f"[c{self.client}.")

    # ---- steps to calls --------------------------------------------------------------------------
    def next_call(self, step: Step) -> Call:
        m = marker(self.client, self.seq)
        self.seq += 1
        call = getattr(self, "_" + step.kind)(m, *step.u)
        return call or self._add_task(m, *step.u)

    def _add_task(self, m: str, u0: float, u1: float, u2: float) -> Call:
        return Call("add_task", "add_task", {"title": f"task {m}", "description": f"chaos workload {m}",
                                             "details": m, "priority": _pick(list(PRIORITIES), u0)}, m)

    def _add_work(self, m: str, u0: float, u1: float, u2: float) -> Call:
        return Call("add_work", "add_task", {"tag": WORK_TAG, "title": f"work {m}",
                                             "description": f"chaos work item {m}"}, m)

    def _add_subtask(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        if not self.tasks:
            return None
        parent = _pick(sorted(self.tasks), u0)
        return Call("add_subtask", "add_subtask", {"id": str(self.tasks[parent]), "title": f"sub {m}",
                                                   "description": f"chaos subtask {m}"}, m, (parent,))

    def _set_status(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        items = sorted([*self.tasks, *self.subtasks])
        if not items:
            return None
        target = _pick(items, u0)
        ref = str(self.tasks[target]) if target in self.tasks else self.subtasks[target]
        return Call("set_status", "set_task_status", {"id": ref, "status": _pick(list(STATUSES), u1)}, m, (target,))

    def _add_dependency(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        items = sorted(self.tasks)
        if len(items) < 2:
            return None
        a, b = _pick(items, u0), _pick(items, u1)
        if a == b:
            b = items[(items.index(a) + 1) % len(items)]
        return Call("add_dependency", "add_dependency",
                    {"id": str(self.tasks[a]), "dependsOn": str(self.tasks[b])}, m, (a, b))

    def _remove_dependency(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        edges = [e for e in self.edges if e[0] in self.tasks and e[1] in self.tasks]
        if not edges:
            return self._add_dependency(m, u0, u1, u2)
        a, b = _pick(edges, u0)
        return Call("remove_dependency", "remove_dependency",
                    {"id": str(self.tasks[a]), "dependsOn": str(self.tasks[b])}, m, (a, b))

    def _move_within(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        mine = sorted(x for x in self.tasks if self.own(x))
        if not mine:
            return None
        target = _pick(mine, u0)
        to = max(self.tasks.values()) + 1 + int(u1 * 5)  # a fresh id: renumber, do not nest
        return Call("move_within", "move_task", {"from": str(self.tasks[target]), "to": str(to)}, m, (target,))

    def _move_to_tag(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        mine = sorted(x for x in self.tasks if self.own(x))
        if not mine:
            return None
        target = _pick(mine, u0)
        return Call("move_to_tag", "move_task", {"from": str(self.tasks[target]), "fromTag": MASTER,
                                                 "toTag": self.keep, "ignoreDependencies": True}, m, (target,))

    def _new_tag_name(self) -> str:
        return f"c{self.client}t{self.seq - 1}"

    def _add_tag(self, m: str, u0: float, u1: float, u2: float) -> Call:
        return Call("add_tag", "add_tag", {"name": self._new_tag_name(), "description": f"chaos tag {m}"}, m)

    def _copy_tag(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        if not self.tags:
            return self._add_tag(m, u0, u1, u2)
        return Call("copy_tag", "copy_tag", {"sourceName": _pick(sorted(self.tags), u0),
                                             "targetName": self._new_tag_name(), "description": f"chaos copy {m}"}, m)

    def _scratch_tags(self) -> list[str]:
        return sorted(self.tags - {self.keep})

    def _rename_tag(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        scratch = self._scratch_tags()
        if not scratch:
            return self._add_tag(m, u0, u1, u2)
        return Call("rename_tag", "rename_tag", {"oldName": _pick(scratch, u0), "newName": self._new_tag_name()}, m)

    def _delete_tag(self, m: str, u0: float, u1: float, u2: float) -> Call | None:
        scratch = self._scratch_tags()
        if not scratch:
            return self._add_tag(m, u0, u1, u2)
        return Call("delete_tag", "delete_tag", {"name": _pick(scratch, u0), "yes": True}, m)

    def _claim(self, m: str, u0: float, u1: float, u2: float) -> Call:
        if self.held is not None and u0 < RELEASE_CHANCE:
            item, item_marker = self.held
            return Call("release", "set_task_status", {"tag": WORK_TAG, "id": item, "status": "done"}, m,
                        (item_marker,))
        return Call("claim", "next_task", {"tag": WORK_TAG, "claim": True, "agent": self.agent,
                                           "leaseSeconds": _pick(list(LEASES), u1)}, m)

    def _parse_prd(self, m: str, u0: float, u1: float, u2: float) -> Call:
        return Call("parse_prd", "parse_prd", {"input": prd_path(m), "tag": f"c{self.client}p{self.seq - 1}",
                                               "numTasks": str(len(PRD_PARTS)), "async": True}, m)

    def _read(self, m: str, u0: float, u1: float, u2: float) -> Call:
        return Call("read", "get_tasks", {"tag": MASTER, "withSubtasks": True, "fields": "id,title,subtasks"}, m)

    # ---- what the answers teach ------------------------------------------------------------------
    def learn(self, call: Call, outcome: str, data: dict) -> None:
        if call.kind in ("claim", "release") and outcome != OK:
            self.held = None  # a claim that may have happened is given back by the next claim
        if outcome != OK:
            if call.kind in ("move_within", "move_to_tag"):
                self._forget(call.targets[0])  # where it is now: the next read will say
            elif call.kind in ("rename_tag", "delete_tag"):
                self.tags.discard(call.args.get("oldName") or call.args.get("name"))
            return
        learn = getattr(self, "_learn_" + call.kind, None)
        if learn is not None:
            learn(call, data)

    def _forget(self, task: str) -> None:
        ref = self.tasks.pop(task, None)
        if ref is not None:
            self.subtasks = {k: v for k, v in self.subtasks.items() if not v.startswith(f"{ref}.")}

    def _learn_add_task(self, call: Call, data: dict) -> None:
        if isinstance(data.get("taskId"), int):
            self.tasks[call.marker] = data["taskId"]

    def _learn_add_subtask(self, call: Call, data: dict) -> None:
        sub = data.get("subtask") or {}
        if isinstance(sub.get("id"), int):
            self.subtasks[call.marker] = f"{call.args['id']}.{sub['id']}"

    def _learn_add_dependency(self, call: Call, data: dict) -> None:
        if call.targets not in self.edges:
            self.edges.append(call.targets)

    def _learn_remove_dependency(self, call: Call, data: dict) -> None:
        if call.targets in self.edges:
            self.edges.remove(call.targets)

    def _learn_move_within(self, call: Call, data: dict) -> None:
        old, new = call.args["from"], call.args["to"]
        self.tasks[call.targets[0]] = int(new)
        self.subtasks = {k: (f"{new}.{v.split('.')[1]}" if v.split(".")[0] == old else v)
                         for k, v in self.subtasks.items()}

    def _learn_move_to_tag(self, call: Call, data: dict) -> None:
        self._forget(call.targets[0])
        self.tags.add(self.keep)

    def _learn_add_tag(self, call: Call, data: dict) -> None:
        self.tags.add(call.args["name"])

    def _learn_copy_tag(self, call: Call, data: dict) -> None:
        self.tags.add(call.args["targetName"])

    def _learn_rename_tag(self, call: Call, data: dict) -> None:
        self.tags.discard(call.args["oldName"])
        self.tags.add(call.args["newName"])

    def _learn_delete_tag(self, call: Call, data: dict) -> None:
        self.tags.discard(call.args["name"])

    def _learn_claim(self, call: Call, data: dict) -> None:
        item = data.get("nextTask") or {}
        claimed = data.get("claimed") and item.get("id") is not None
        self.held = (str(item["id"]), marker_in(item.get("title"))) if claimed else None

    def _learn_release(self, call: Call, data: dict) -> None:
        self.held = None

    def _learn_read(self, call: Call, data: dict) -> None:
        """Replace what the client knows of master with what the node just showed it."""
        self.tasks, self.subtasks = {}, {}
        for task in data.get("tasks") or ():
            mark = marker_in(task.get("title"))
            if mark:
                self.tasks[mark] = task["id"]
            for sub in task.get("subtasks") or ():
                mark = marker_in(sub.get("title"))
                if mark:
                    self.subtasks[mark] = f"{task['id']}.{sub['id']}"


def summarize(call: Call, envelope: dict) -> dict:
    """What the history keeps of an answer: ids created, claims, and the durable copies at ack."""
    data = envelope.get("data") or {}
    value = {"replicas": envelope["replicas"]} if "replicas" in envelope else {}
    if call.tool == "add_task":
        value["taskId"] = data.get("taskId")
    elif call.kind == "add_subtask":
        value["id"] = f"{call.args['id']}.{(data.get('subtask') or {}).get('id')}"
    elif call.kind == "claim":
        item = data.get("nextTask") or {}
        value.update(claimed=bool(data.get("claimed")), item=str(item.get("id")) if item else None,
                     item_marker=marker_in(item.get("title")), lease=data.get("lease"))
    elif call.kind == "read":
        value["tasks"] = len(data.get("tasks") or ())
    elif call.kind == "parse_prd":
        value["operationId"] = data.get("operationId")
    return value


# ---- supervised operations ----------------------------------------------------------------------
def prd_path(mark: str) -> str:
    """Where the op's PRD lives, relative to the project root ("[c3.17]" -> prd-c3-17.md)."""
    return f".taskmaster/docs/prd-{mark[1:-1].replace('.', '-')}.md"


def prd_titles(mark: str) -> list[str]:
    """The titles the offline planner gives the PRD's requirements: one task each."""
    return [f"Build {mark} part {part}" for part in PRD_PARTS]


def prd_text(mark: str) -> str:
    items = "\n".join(f"{i}. {title}: requirement {i} of chaos operation {mark}."
                      for i, title in enumerate(prd_titles(mark), 1))
    return f"# Chaos PRD {mark}\n\n## Requirements\n\n{items}\n"


def write_prd(root: str, mark: str) -> None:
    path = Path(root) / prd_path(mark)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prd_text(mark))


async def operation_status(mcps: list[McpHttp], root: str, op_id: str) -> dict | None:
    """The operation's status from the first node that answers; None if none does."""
    for mcp in mcps:
        try:
            return (await mcp.call("get_operation_status", projectRoot=root, operationId=op_id))["data"]
        except (ToolFailed, TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, KeyError):
            continue
    return None


async def settle_operations(mcps: list[McpHttp], root: str, ops: list[Op],
                            wait: float = OPERATION_WAIT) -> dict[str, dict | None]:
    """operationId -> last status seen (None: no node answered) of every acknowledged operation,
    polled until all have finished or `wait` seconds have passed."""
    ids = [op.value["operationId"] for op in ops if op.outcome == OK and op.value.get("operationId")]
    statuses: dict[str, dict | None] = dict.fromkeys(ids)
    deadline = time.monotonic() + wait
    while True:
        pending = [i for i in ids if (statuses[i] or {}).get("status") not in FINISHED]
        for op_id in pending:
            statuses[op_id] = await operation_status(mcps, root, op_id) or statuses[op_id]
        if all((s or {}).get("status") in FINISHED for s in statuses.values()) or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(OPERATION_POLL)  # pacing between polls of running operations


# ---- running ------------------------------------------------------------------------------------
async def invoke(mcp: McpHttp, call: Call, root: str) -> tuple[str, dict, str]:
    """(outcome, envelope, error) of one tool call."""
    try:
        return OK, await mcp.call(call.tool, projectRoot=root, **call.args), ""
    except ToolFailed as exc:
        message = str(exc).split("\n")[0][:300]
        return (UNKNOWN if any(p in message.lower() for p in INDETERMINATE) else ERROR), {}, message
    except aiohttp.ClientConnectorError as exc:  # never sent: definitely not applied
        return ERROR, {}, f"{REFUSED}: {exc}"[:300]
    except aiohttp.ClientResponseError as exc:
        return (UNKNOWN if exc.status >= 500 else ERROR), {}, f"HTTP {exc.status}: {exc.message}"[:300]
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        return UNKNOWN, {}, f"{type(exc).__name__}: {exc}"[:300]


async def run_call(mcp: McpHttp, call: Call, root: str, client: int, seq: int, node: str, started: float,
                   record: Callable[[Op], None]) -> tuple[Op, dict]:
    """Call, record the operation, and return it with the answer's envelope ({} unless ok)."""
    invoked = time.monotonic()
    outcome, envelope, error = await invoke(mcp, call, root)
    completed = time.monotonic()
    op = Op(client=client, node=node, seq=seq, kind=call.kind, tool=call.tool, args=call.args,
            invoke=round(invoked - started, 6), complete=round(completed - started, 6), outcome=outcome,
            marker=call.marker, targets=list(call.targets), value=summarize(call, envelope) if envelope else {},
            error=error)
    record(op)
    return op, envelope


async def run_client(state: ClientState, seed: int, node: str, url: str, token: str, root: str,
                     started: float, until: float, record: Callable[[Op], None], timeout: float) -> None:
    """Follow the client's plan against `url` until the monotonic time `until`."""
    steps = plan(seed, state.client)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        mcp = McpHttp(url, http, token)
        while time.monotonic() < until:
            seq = state.seq
            call = state.next_call(next(steps))
            if call.kind == "parse_prd":
                write_prd(root, call.marker)
            op, envelope = await run_call(mcp, call, root, state.client, seq, node, started, record)
            state.learn(call, op.outcome, envelope.get("data") or {})
            if op.error.startswith(REFUSED):
                await asyncio.sleep(REFUSED_BACKOFF)  # the node is down: do not spin


def setup_calls(items: int) -> list[Call]:
    """The harness's own writes before the clients start: the claims tag and its first work items."""
    calls = [Call("add_tag", "add_tag", {"name": WORK_TAG, "description": f"chaos claims {marker(SETUP_CLIENT, 0)}"},
                  marker(SETUP_CLIENT, 0))]
    for k in range(1, items + 1):
        m = marker(SETUP_CLIENT, k)
        calls.append(Call("add_work", "add_task", {"tag": WORK_TAG, "title": f"work {m}",
                                                   "description": f"chaos work item {m}"}, m))
    return calls
