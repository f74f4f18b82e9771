"""The run's history: every client invocation with its outcome, and every nemesis action, as JSONL.

One line per completed operation (Jepsen keeps invoke and completion as two events; a client here
is sequential, so one record with both times says the same). Times are seconds since the run
started, from the monotonic clock, so they are comparable across clients and the nemesis.

Outcomes: `ok` (acknowledged), `error` (definitely not applied: a tool error, or the connection was
refused before the request was sent), `unknown` (timeout, dropped connection, server error: it may or
may not have been applied).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

OK, ERROR, UNKNOWN = "ok", "error", "unknown"
OUTCOMES = (OK, ERROR, UNKNOWN)
_MARKER = re.compile(r"\[c(-?\d+)\.(\d+)\]")


def marker(client: int, seq: int) -> str:
    """The unique marker of a client's seq-th operation, as it appears in titles: "[c3.17]"."""
    return f"[c{client}.{seq}]"


def marker_in(text: object) -> str | None:
    m = _MARKER.search(text) if isinstance(text, str) else None
    return m.group(0) if m else None


def marker_client(mark: str) -> int:
    return int(_MARKER.fullmatch(mark).group(1))


@dataclass
class Op:
    client: int  # -1 for the harness's own set-up writes
    node: str  # the node the call was sent to
    seq: int  # per client, from 0
    kind: str  # the workload's name for what it meant (add_task, release, move_to_tag, ...)
    tool: str  # the MCP tool called
    args: dict  # the tool arguments, without projectRoot
    invoke: float
    complete: float
    outcome: str
    marker: str = ""  # unique per operation; creating writes put it in the data (title, tag name)
    targets: list[str] = field(default_factory=list)  # markers of the items the call addressed
    value: dict = field(default_factory=dict)  # what the answer said that the checker needs
    error: str = ""

    @property
    def latency(self) -> float:
        return self.complete - self.invoke

    @property
    def maybe_applied(self) -> bool:
        return self.outcome in (OK, UNKNOWN)


@dataclass
class NemesisEvent:
    fault: int  # index into the schedule
    kind: str
    action: str  # "start" or "heal"
    time: float  # when the action finished (the fault is in force from then on)
    ok: bool = True
    error: str = ""


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    events: list[NemesisEvent] = field(default_factory=list)

    def windows(self) -> list[tuple[int, str, float, float | None]]:
        """(fault index, kind, started, healed or None) for every fault that was put in force."""
        started: dict[int, NemesisEvent] = {}
        healed: dict[int, float] = {}
        for e in self.events:
            if e.action == "start" and e.ok:
                started[e.fault] = e
            elif e.action == "heal":
                healed[e.fault] = e.time
        return [(i, e.kind, e.time, healed.get(i)) for i, e in sorted(started.items())]


class HistoryWriter:
    """Appends records as they happen (flushed per line), so a crashed run still leaves its history."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.history = History()
        self._file: IO[str] | None = self.path.open("w")

    def op(self, op: Op) -> None:
        self.history.ops.append(op)
        self._write({"type": "op", **dataclasses.asdict(op)})

    def event(self, event: NemesisEvent) -> None:
        self.history.events.append(event)
        self._write({"type": "nemesis", **dataclasses.asdict(event)})

    def _write(self, record: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def load(path: str | Path) -> History:
    history = History()
    with Path(path).open() as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            kind = record.pop("type")
            if kind == "op":
                history.ops.append(Op(**record))
            elif kind == "nemesis":
                history.events.append(NemesisEvent(**record))
    return history
