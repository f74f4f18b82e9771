"""The transmit-limited broadcast queue (memberlist's TransmitLimitedQueue).

Updates wait here to be piggybacked on pings, acks and gossip packets. Each is sent at most
retransmit_mult * ceil(log10(N+1)) times (λ·log N: enough for an epidemic to reach everyone with
high probability), least-sent first and, among equals, newest first. An update about a member
replaces any queued update about the same member, so a superseded update is never sent after its
successor is queued.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heapify, heappop, heappush

_SMALLEST = 8
"""No message is smaller than this; a packet with less room left is full."""
_MAX_SKIPS = 32
"""Updates too big for the room left are skipped; stop looking after this many."""


def retransmit_limit(mult: int, n: int) -> int:
    return mult * math.ceil(math.log10(n + 1))


class _Update:
    __slots__ = ("name", "data", "id", "transmits", "notify", "live")

    def __init__(self, name: str, data: bytes, uid: int, notify: Callable[[], None] | None):
        self.name, self.data, self.id, self.notify = name, data, uid, notify
        self.transmits = 0
        self.live = True


class BroadcastQueue:
    def __init__(self, retransmit_mult: int, num_nodes: Callable[[], int],
                 on_ready: Callable[[], None] | None = None):
        self._mult = retransmit_mult
        self._num_nodes = num_nodes
        self._on_ready = on_ready
        self._heap: list[tuple[int, int, _Update]] = []  # (transmits, -id, update); stale ones lazily
        self._by_name: dict[str, _Update] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._by_name)

    def queue(self, name: str, data: bytes, notify: Callable[[], None] | None = None) -> None:
        """Queue `data` (an encoded message about member `name`), replacing any update about it.
        `notify` is called once the update is fully sent or replaced."""
        old = self._by_name.get(name)
        if old is not None:
            self._retire(old)
        self._next_id += 1
        update = _Update(name, data, self._next_id, notify)
        self._by_name[name] = update
        heappush(self._heap, (0, -update.id, update))
        if len(self._heap) > 64 and len(self._heap) > 3 * len(self._by_name):
            self._compact()
        if len(self._by_name) == 1 and self._on_ready is not None:
            self._on_ready()

    def take(self, budget: int) -> list[bytes]:
        """Updates to piggyback in `budget` bytes, each counted as sent once more."""
        heap = self._heap
        taken: list[_Update] = []
        skipped = []
        out: list[bytes] = []
        while heap and budget >= _SMALLEST:
            entry = heappop(heap)
            update = entry[2]
            if not update.live:
                continue
            size = len(update.data)
            if size > budget:
                skipped.append(entry)
                if len(skipped) >= _MAX_SKIPS:
                    break
                continue
            out.append(update.data)
            budget -= size
            taken.append(update)
        for entry in skipped:
            heappush(heap, entry)
        if taken:
            limit = retransmit_limit(self._mult, self._num_nodes())
            for update in taken:
                update.transmits += 1
                if update.transmits >= limit:
                    self._retire(update)
                else:
                    heappush(heap, (update.transmits, -update.id, update))
        return out

    def reset(self) -> None:
        """Forget every queued update (no notifications)."""
        self._heap.clear()
        self._by_name.clear()

    def _retire(self, update: _Update) -> None:
        update.live = False
        del self._by_name[update.name]
        if update.notify is not None:
            update.notify()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[2].live]
        heapify(self._heap)
