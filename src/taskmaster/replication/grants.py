"""Claim grants: a replica's promise that, for a while, no other agent gets the same task.

A claim is taken only after a majority of the tag's replicas granted it (replication/coordinator.py),
and any two majorities share a replica: so two coordinators that disagree about who is primary (a
bridge or ring partition) cannot both hand out one task. A replica refuses while another agent's
grant is live, unless the asker has seen exactly that agent's lease in the task (it knows that claim
and that it ended: the task was finished or released). Grants are durable (RocksDB), so a replica
that restarts keeps its promises.

    g \\0 <partition> \\0 <item id>   ->   msgpack [agent, expiresAt]
"""

from __future__ import annotations

import time
from datetime import datetime

import msgpack

from taskmaster.storage import Store

GRANT = b"g\x00"


def _expiry(expires_at: str) -> float:
    try:
        return datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return 0.0


def _is(seen: dict | None, held: tuple[str, str]) -> bool:
    """Whether the lease the asker saw on the item is this grant (so it knows that claim ended)."""
    return isinstance(seen, dict) and seen.get("agent") == held[0] and seen.get("expiresAt") == held[1]


class Grants:
    def __init__(self, store: Store, clock=time.time):
        self.store, self._clock = store, clock
        self._held: dict[bytes, tuple[str, str]] = {}
        self._replaced: dict[tuple[bytes, str], tuple[str, str]] = {}  # renewals' predecessors (in memory)
        self._granted = 0
        for key, value in store.scan(GRANT):
            agent, expires_at = msgpack.unpackb(value)
            if _expiry(expires_at) > clock():
                self._held[key] = (agent, expires_at)

    def __len__(self) -> int:
        return len(self._held)

    def grant(self, partition: bytes, item: str, agent: str, expires_at: str, seen: dict | None) -> bool:
        """Promise `item` to `agent` until `expires_at`, unless another agent's live grant stands
        and `seen` (the lease the asker found on the item) is not that grant. Not yet durable: the
        caller makes it so before answering."""
        key = GRANT + partition + b"\x00" + item.encode()
        held = self._held.get(key)
        if held is not None and held[0] != agent and _expiry(held[1]) > self._clock() and not _is(seen, held):
            return False
        if held is not None and held[0] == agent:
            self._replaced[(key, expires_at)] = held  # a renewal: what a failed one must give back
        self._held[key] = (agent, expires_at)
        self.store.write({key: msgpack.packb([agent, expires_at])})
        self._forget_expired()
        return True

    def release(self, partition: bytes, item: str, agent: str, expires_at: str) -> None:
        """Withdraw the grant made for `agent` until `expires_at` (its claim did not reach a
        majority). A renewal that fails gives the agent back the grant it had: its claim stands."""
        key = GRANT + partition + b"\x00" + item.encode()
        if self._held.get(key) != (agent, expires_at):
            return
        previous = self._replaced.pop((key, expires_at), None)
        if previous is not None and _expiry(previous[1]) > self._clock():
            self._held[key] = previous
            self.store.write({key: msgpack.packb(list(previous))})
        else:
            del self._held[key]
            self.store.write({key: None})

    def _forget_expired(self) -> None:
        self._granted += 1
        if self._granted % 256:  # now and then: the table holds only live grants, roughly
            return
        now = self._clock()
        gone = [k for k, (_, expires_at) in self._held.items() if _expiry(expires_at) <= now]
        for key in gone:
            del self._held[key]
        self._replaced = {k: v for k, v in self._replaced.items() if _expiry(k[1]) > now}
        if gone:
            self.store.write(dict.fromkeys(gone))
