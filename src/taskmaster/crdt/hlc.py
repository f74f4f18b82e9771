"""Hybrid logical clock: 48-bit physical milliseconds + 16-bit counter in one int.

A timestamp orders causally related events even when wall clocks disagree slightly; the node id is
the tie-break between nodes (see `Stamp`). Remote timestamps more than `max_offset_ms` ahead of our
wall clock are clamped, so one node with a runaway clock cannot drag every register into the future.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def physical(ts: int) -> int:
    """The milliseconds part of a timestamp."""
    return ts >> COUNTER_BITS


class Stamp(NamedTuple):
    """A totally ordered event id: HLC timestamp, then node id."""

    ts: int
    node: str


class HLC:
    def __init__(self, node: str, clock: Callable[[], int] = wall_ms, max_offset_ms: int = 500):
        self.node = node
        self._clock = clock
        self.max_offset_ms = max_offset_ms
        self._last = 0
        self.clamped = 0  # remote timestamps clamped for being too far ahead (exported as a metric)

    def now(self) -> int:
        """A timestamp greater than every one issued or observed before."""
        pt = self._clock() << COUNTER_BITS
        self._last = pt if pt > self._last else self._last + 1
        return self._last

    def stamp(self) -> Stamp:
        return Stamp(self.now(), self.node)

    def advance(self, ts: int) -> None:
        """Move past a timestamp of our own durable history. Never clamped: after a restart with the
        wall clock stepped back, new writes must still be stamped after what we already stored, or
        they would lose to older values."""
        if ts > self._last:
            self._last = ts

    def observe(self, remote: int) -> int:
        """Fold in a timestamp seen on a message; returns it, clamped if it was too far ahead."""
        limit = (self._clock() + self.max_offset_ms) << COUNTER_BITS | COUNTER_MASK
        if remote > limit:
            self.clamped += 1
            remote = limit
        if remote > self._last:
            self._last = remote
        return remote
