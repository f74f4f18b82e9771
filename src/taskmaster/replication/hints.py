"""Hinted handoff: documents this node holds for a replica that could not take them.

A hint names the owner and a document key; the document itself is whatever this node has stored
under that key when the owner is back (CRDT documents only grow, so the newest local copy carries
every write the owner missed). Hints live in RocksDB next to the documents,

    h \\0 <owner> \\0 <document key>

so they survive a restart, and are made durable by the same fsync as the write they belong to.
"""

from __future__ import annotations

from collections.abc import Iterable

from taskmaster.storage import Store

HINT = b"h\x00"


def _key(owner: str, doc_key: bytes) -> bytes:
    return HINT + owner.encode() + b"\x00" + doc_key


class Hints:
    def __init__(self, store: Store):
        self.store = store
        self._pending: dict[str, set[bytes]] = {}
        for key, _ in store.scan(HINT):
            owner, doc_key = key[len(HINT):].split(b"\x00", 1)
            self._pending.setdefault(owner.decode(), set()).add(doc_key)

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._pending.values())

    def pending(self, owner: str) -> int:
        """Documents held here for `owner`."""
        return len(self._pending.get(owner, ()))

    def owners(self) -> list[str]:
        return [owner for owner, keys in self._pending.items() if keys]

    def add(self, owner: str, doc_keys: Iterable[bytes]) -> None:
        """Record hints (written, not yet durable: the caller's `store.durable()` covers them)."""
        keys = self._pending.setdefault(owner, set())
        new = {k for k in doc_keys if k not in keys}
        if new:
            self.store.write({_key(owner, k): b"" for k in new})
            keys |= new

    def batch(self, owner: str, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` hinted documents for `owner`, with their current stored values."""
        out = []
        for doc_key in list(self._pending.get(owner, ()))[:limit]:
            value = self.store.get(doc_key)
            if value is None:  # nothing to hand over any more
                self.done(owner, [doc_key])
            else:
                out.append((doc_key, value))
        return out

    def done(self, owner: str, doc_keys: Iterable[bytes]) -> None:
        """The owner has these documents durably: forget the hints."""
        keys = self._pending.get(owner)
        if not keys:
            return
        gone = [k for k in doc_keys if k in keys]
        if gone:
            self.store.write({_key(owner, k): None for k in gone})
            keys.difference_update(gone)
        if not keys:
            del self._pending[owner]

    def drop(self, owner: str) -> None:
        """The owner left the ring for good: its partitions' new owners are filled by anti-entropy."""
        self.done(owner, list(self._pending.get(owner, ())))
