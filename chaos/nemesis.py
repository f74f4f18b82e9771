"""The nemesis: a fault schedule generated from the seed alone, and the runner that applies it.

Fault classes (Jepsen's `combined` nemesis, anchors §6.1): partitions (random halves, isolate one
node, a bridge node that sees both sides, majorities ring), kill -9 then restart with the data dir
kept or emptied, SIGSTOP/SIGCONT pause, clock skew (restart with `--test-clock-offset`), and packet
loss and delay (`tc netem` in namespaces where it works, else the daemons' own injected loss and
delay). Each class has its own on/off stream over
the fault window, so classes overlap and combine; within a class faults never overlap. Every fault
ends before the quiet tail of the run, and the final phase heals everything again regardless.

Rules that keep a run meaningful rather than trivially lost:
- at most (n-1)//2 nodes are down (killed or paused) at once, so a majority stays up;
- one node has at most one process fault (kill, pause, clock restart) at a time;
- a restart with an empty data dir happens at most once per run (in half the runs with kill that
  are long enough), with no other node down, and never during a partition or in the SETTLE seconds
  after one: a write acknowledged on one side may have its only copies on the node being wiped
  until anti-entropy spreads it, and losing it then is the W-copies durability assumption at work,
  not a bug. Kills, pauses, clock and packet faults elsewhere destroy no copies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from .history import NemesisEvent

CLASSES = ("partition", "kill", "pause", "clock", "packet")
PROCESS_KINDS = frozenset({"kill", "kill-empty", "pause", "clock"})
DOWN_KINDS = frozenset({"kill", "kill-empty", "pause"})
# Generation order: kill last, so it sees every other fault when it checks the rules above.
_ORDER = ("partition", "packet", "clock", "pause", "kill")
DURATION = {"partition": (3.0, 10.0), "packet": (3.0, 10.0), "clock": (3.0, 10.0), "pause": (1.0, 5.0),
            "kill": (2.0, 8.0)}
GAP = (1.0, 5.0)  # off time between two faults of one class
SETTLE = 5.0
WIPE_CHANCE = 0.5  # runs with the kill nemesis that also restart one node with an empty data dir
WIPE_MIN_WINDOW = 30.0  # in shorter runs the window it keeps clear would crowd out every other fault
_KEPT_FROM_WIPE = frozenset({"partition", "pause", "kill"})
MAX_SKEW = 2.0

Pair = tuple[int, int]


@dataclass(frozen=True)
class Fault:
    kind: str  # partition-halves|partition-one|partition-bridge|partition-ring|kill|kill-empty|pause|clock|packet
    start: float
    end: float
    nodes: tuple[int, ...] = ()  # process and packet faults: the node acted on
    cut: tuple[Pair, ...] = ()  # partitions: the links cut, (a, b) with a < b
    label: str = ""  # how a person reads it: "n0 n3 | n1 n2 n4"
    offset: float = 0.0  # clock: seconds the node's clock runs off
    loss: float = 0.0  # packet: fraction of packets dropped
    delay_ms: int = 0  # packet: added delay (and half of it as jitter)

    @property
    def cls(self) -> str:
        return self.kind.split("-")[0]

    def overlaps(self, start: float, end: float) -> bool:
        return self.start < end and start < self.end

    @classmethod
    def from_json(cls, data: dict) -> Fault:
        return cls(**{**data, "nodes": tuple(data.get("nodes", ())), "cut": tuple(map(tuple, data.get("cut", ())))})

    def to_json(self) -> dict:
        """The fault as JSON data (lists, not tuples), without the fields its kind does not use."""
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        return {k: v for k, v in data.items() if v not in ([], 0.0, 0, "") or k in ("start", "end")}


def fault_window(seconds: float) -> tuple[float, float]:
    """When faults may be in force: after a warm-up, and healed before the quiet tail of the run."""
    return min(5.0, max(1.0, 0.1 * seconds)), seconds - max(3.0, 0.2 * seconds)


def schedule(seed: int, nodes: int, seconds: float, classes: Iterable[str]) -> list[Fault]:
    """The faults of a run: a pure function of its arguments."""
    wanted = set(classes)
    unknown = wanted - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown nemesis {', '.join(sorted(unknown))}; choose from {', '.join(CLASSES)}")
    rng = random.Random(f"chaos-nemesis:{seed}")
    first, last = fault_window(seconds)
    wipe = _wipe_window(rng, first, last) if "kill" in wanted else None
    faults: list[Fault] = []
    for cls in _ORDER:
        if cls not in wanted:
            continue
        shortest, longest = DURATION[cls]
        longest = max(shortest, min(longest, (last - first) / 2))
        t = first + rng.uniform(0.0, GAP[0])
        while True:
            end = t + rng.uniform(shortest, longest)
            if end > last:
                break
            fault = _make(cls, rng, t, end, nodes, faults)
            if fault is not None and not (wipe and cls in _KEPT_FROM_WIPE and fault.overlaps(wipe[0] - SETTLE, wipe[1])):
                faults.append(fault)
            t = end + rng.uniform(*GAP)
    if wipe is not None:
        free = [i for i in range(nodes) if not any(f.kind in PROCESS_KINDS and i in f.nodes and f.overlaps(*wipe)
                                                   for f in faults)]
        if free and (nodes - 1) // 2 >= 1:
            node = rng.choice(free)
            faults.append(Fault("kill-empty", *wipe, (node,), label=f"n{node} killed, restarted empty"))
    # Millisecond times: what the report shows is exactly the schedule that ran.
    faults = [dataclasses.replace(f, start=round(f.start, 3), end=round(f.end, 3)) for f in faults]
    return sorted(faults, key=lambda f: (f.start, f.kind))


def _wipe_window(rng: random.Random, first: float, last: float) -> tuple[float, float] | None:
    """When the run's one restart-with-an-empty-data-dir happens, if it has one: a window kept free
    of partitions (and SETTLE seconds before it) and of other nodes going down."""
    if rng.random() >= WIPE_CHANCE or last - first < WIPE_MIN_WINDOW:
        return None
    duration = rng.uniform(*DURATION["kill"])
    if last - duration <= first + SETTLE:
        return None
    start = rng.uniform(first + SETTLE, last - duration)
    return start, start + duration


def _make(cls: str, rng: random.Random, start: float, end: float, n: int, faults: list[Fault]) -> Fault | None:
    if cls == "partition":
        return _partition(rng, start, end, n)
    node = rng.randrange(n)
    if cls == "packet":
        busy = any(f.kind == "packet" and node in f.nodes and f.overlaps(start, end) for f in faults)
        loss, delay = round(rng.uniform(0.1, 0.4), 2), rng.randint(20, 200)
        return None if busy else Fault("packet", start, end, (node,), label=f"n{node} loss {loss:.0%} "
                                       f"delay {delay} ms", loss=loss, delay_ms=delay)
    if any(f.kind in PROCESS_KINDS and node in f.nodes and f.overlaps(start, end) for f in faults):
        return None
    if cls == "clock":
        offset = round(rng.choice((-1, 1)) * rng.uniform(0.5, MAX_SKEW), 3)
        return Fault("clock", start, end, (node,), label=f"n{node} clock {offset:+.2f} s", offset=offset)
    down = {m for f in faults if f.kind in DOWN_KINDS and f.overlaps(start, end) for m in f.nodes}
    if len(down | {node}) > (n - 1) // 2:
        return None
    if cls == "pause":
        return Fault("pause", start, end, (node,), label=f"n{node} paused")
    return Fault("kill", start, end, (node,), label=f"n{node} killed")


# ---- partitions ("grudges") ----------------------------------------------------------------------
def _partition(rng: random.Random, start: float, end: float, n: int) -> Fault | None:
    shapes = [s for s, least in (("halves", 2), ("one", 2), ("bridge", 3), ("ring", 4)) if n >= least]
    if not shapes:
        return None
    shape = rng.choice(shapes)
    order = list(range(n))
    rng.shuffle(order)
    cut, label = GRUDGES[shape](order)
    return Fault(f"partition-{shape}", start, end, cut=tuple(sorted(cut)), label=label)


def _names(group: Iterable[int]) -> str:
    return " ".join(f"n{i}" for i in sorted(group))


def cut_between(*groups: Iterable[int]) -> set[Pair]:
    groups = [list(g) for g in groups]
    return {tuple(sorted((a, b))) for gi, g in enumerate(groups) for other in groups[gi + 1:] for a in g for b in other}


def halves(order: list[int]) -> tuple[set[Pair], str]:
    a, b = order[:len(order) // 2], order[len(order) // 2:]
    return cut_between(a, b), f"{_names(a)} | {_names(b)}"


def isolate_one(order: list[int]) -> tuple[set[Pair], str]:
    return cut_between(order[:1], order[1:]), f"{_names(order[:1])} | {_names(order[1:])}"


def bridge(order: list[int]) -> tuple[set[Pair], str]:
    """Two halves that cannot talk, and one node that talks to both."""
    hub, rest = order[0], order[1:]
    a, b = rest[:len(rest) // 2], rest[len(rest) // 2:]
    return cut_between(a, b), f"{_names(a)} | {_names(b)}, n{hub} bridges"


def majorities_ring(order: list[int]) -> tuple[set[Pair], str]:
    """Nodes on a ring, each linked to the nearest d on both sides: each sees a majority (itself and
    2d others), and no two see the same one."""
    n = len(order)
    d = math.ceil((n // 2) / 2)
    cut = {tuple(sorted((order[i], order[j]))) for i in range(n) for j in range(i + 1, n)
           if min(j - i, n - (j - i)) > d}
    return cut, "ring " + " ".join(f"n{i}" for i in order)


GRUDGES = {"halves": halves, "one": isolate_one, "bridge": bridge, "ring": majorities_ring}


def reachable(node: int, n: int, cut: Iterable[Pair], down: Iterable[int]) -> set[int]:
    """The nodes `node` talks to directly (itself included) with these links cut and nodes down."""
    cut, down = set(cut), set(down)
    if node in down:
        return set()
    return {m for m in range(n) if m not in down and (m == node or tuple(sorted((node, m))) not in cut)}


# ---- applying a schedule ---------------------------------------------------------------------------
class Target(Protocol):
    """What the runner needs from a cluster (chaos.cluster.Cluster implements it)."""

    async def partition(self, cut: set[Pair]) -> None: ...
    async def heal_partition(self) -> None: ...
    async def kill(self, i: int) -> None: ...
    async def restart(self, i: int, *, empty: bool = False) -> None: ...
    async def pause(self, i: int) -> None: ...
    async def resume(self, i: int) -> None: ...
    async def set_clock(self, i: int, offset: float) -> None: ...
    async def netem(self, i: int, loss: float, delay_ms: int) -> None: ...
    async def clear_netem(self, i: int) -> None: ...


def actions(fault: Fault, target: Target) -> tuple[Callable[[], Awaitable], Callable[[], Awaitable]]:
    """(start, heal) coroutines for a fault."""
    i = fault.nodes[0] if fault.nodes else -1
    if fault.cls == "partition":
        return (lambda: target.partition(set(fault.cut))), target.heal_partition
    if fault.cls == "kill":
        return (lambda: target.kill(i)), (lambda: target.restart(i, empty=fault.kind == "kill-empty"))
    if fault.kind == "pause":
        return (lambda: target.pause(i)), (lambda: target.resume(i))
    if fault.kind == "clock":
        return (lambda: target.set_clock(i, fault.offset)), (lambda: target.set_clock(i, 0.0))
    if fault.kind == "packet":
        return (lambda: target.netem(i, fault.loss, fault.delay_ms)), (lambda: target.clear_netem(i))
    raise ValueError(f"no actions for {fault.kind}")


async def run_schedule(faults: list[Fault], target: Target, started: float, record) -> None:
    """Apply each fault at its time (seconds after `started`, a time.monotonic value) and heal it at
    its end; `record(NemesisEvent)` gets every action. Faults run side by side, so a slow action (a
    restart waits for the node to be ready) delays only its own fault."""
    await asyncio.gather(*(_run_fault(i, f, target, started, record) for i, f in enumerate(faults)))


async def _run_fault(i: int, fault: Fault, target: Target, started: float, record) -> None:
    start, heal = actions(fault, target)
    for action, at, act in (("start", fault.start, start), ("heal", fault.end, heal)):
        delay = started + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing to the schedule, not synchronisation
        ok, error = True, ""
        try:
            await act()
        except Exception as exc:  # noqa: BLE001 -- a failed action is a finding, recorded, not a crash
            ok, error = False, f"{type(exc).__name__}: {exc}"
        record(NemesisEvent(i, fault.kind, action, time.monotonic() - started, ok, error))
        if not ok and action == "start":
            return  # nothing to heal
