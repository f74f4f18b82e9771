"""Anti-entropy: two replicas compare digest trees and ship each other only the documents that differ.

One round between the initiator A and the responder B is three calls:

    "ae.roots"  A→B {partition: root}
                B→A {partition: [segment hash, ...]} for the partitions whose root differs at B
    "ae.keys"   A→B {partition: {segment: {key: doc hash}}}: A's entries in the differing segments
                B→A {"docs": [[key, value], ...], "want": [key, ...]}: B's values for the keys A lacks
                    or holds differently there, and the keys of A's that B lacks or holds differently
    "ae.push"   A→B {"docs": [[key, value], ...]}: A's values for the wanted keys, read after A merged
                    B's docs, so B ends with the merge of both versions
                B→A how many documents changed at B

After a round both sides hold the merge of both versions of every key that moved, so once every
differing key has moved the roots are equal. A round moves at most `max_docs` documents each way and
lists at most LISTED_PER_DOC × max_docs keys (whole segments); `exchange` repeats rounds until the
roots match or a round moves no key in a direction it has not moved it before. So neither a peer that
does not keep what it is sent nor writes racing the exchange can make it spin (at most two rounds per
differing key); the next exchange takes up whatever is left.

Everything from a peer is checked before use: a malformed payload or reply raises ValueError and
nothing is applied. Document values are opaque here; `apply` decodes them and must reject a batch
holding a value that is not a document (ValueError) before writing any of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from taskmaster.storage.digest import DigestIndex, partition_of

# Keys an "ae.keys" listing may hold per document the round may move. A listing entry (key and hash)
# is a small fraction of a document, so the listing stays well below the documents it finds.
LISTED_PER_DOC = 8
HASH_LIMIT = 1 << 64

Read = Callable[[list[bytes]], list[bytes | None]]
Apply = Callable[[list[tuple[bytes, bytes]]], Awaitable[int]]
Call = Callable[[str, str, Any], Awaitable[Any]]
Listing = dict[bytes, dict[int, dict[bytes, int]]]  # partition -> segment -> key -> doc hash


@dataclass
class Exchange:
    """What one `exchange` did, as seen from the initiator."""

    partitions_compared: int = 0
    partitions_differing: int = 0
    docs_received: int = 0
    docs_sent: int = 0
    docs_changed_here: int = 0


class AntiEntropy:
    def __init__(self, digest: DigestIndex, read: Read, apply: Apply, call: Call, max_docs: int = 2000):
        if max_docs < 1:
            raise ValueError("max_docs must be at least 1")
        self.digest = digest
        self.max_docs = max_docs
        self._read = read
        self._apply = apply
        self._call = call
        # Registered on the node's RPC server by the caller: handler(peer_name, payload) -> reply.
        self.handlers: dict[str, Callable[[str, Any], Awaitable[Any]]] = {
            "ae.roots": self._on_roots,
            "ae.keys": self._on_keys,
            "ae.push": self._on_push,
        }

    # ---- initiator -------------------------------------------------------------------------------
    async def exchange(self, peer: str, partitions: list[bytes]) -> Exchange:
        """Bring `partitions` to the same contents here and at `peer`. Errors of `call` propagate."""
        pending = list(dict.fromkeys(partitions))
        result = Exchange(partitions_compared=len(pending))
        differing: set[bytes] = set()
        received: set[bytes] = set()  # keys moved so far, per direction
        sent: set[bytes] = set()
        while pending:
            roots = {p: self.digest.root(p) for p in pending}
            theirs = self._check_segments(await self._call(peer, "ae.roots", roots), roots)
            differing.update(theirs)
            listing = self._listing(theirs)
            if not listing:
                break
            docs, want = self._check_found(await self._call(peer, "ae.keys", listing), listing)
            if docs:
                result.docs_changed_here += await self._apply(docs)
                result.docs_received += len(docs)
            push = self._push(docs, want)
            if push:
                await self._call(peer, "ae.push", {"docs": push})
                result.docs_sent += len(push)
            new_in = {key for key, _ in docs} - received
            new_out = {key for key, _ in push} - sent
            if not (new_in or new_out):
                break
            received |= new_in
            sent |= new_out
            pending = list(theirs)
        result.partitions_differing = len(differing)
        return result

    def _listing(self, theirs: dict[bytes, list[int]]) -> Listing:
        """My entries in the segments that differ from the peer's, whole segments up to the limit."""
        segment_of = self.digest.segment_of
        limit = LISTED_PER_DOC * self.max_docs
        listing: Listing = {}
        listed = 0
        for partition, their_segments in theirs.items():
            mine = self.digest.segment_hashes(partition)
            diff = [i for i, (a, b) in enumerate(zip(mine, their_segments, strict=True)) if a != b]
            by_segment: dict[int, dict[bytes, int]] = {i: {} for i in diff}
            for key, h in self.digest.entries(partition, diff).items():
                by_segment[segment_of(key)][key] = h
            for i in diff:
                if listing and listed + len(by_segment[i]) > limit:
                    return listing
                listing.setdefault(partition, {})[i] = by_segment[i]
                listed += len(by_segment[i])
        return listing

    def _push(self, received: list[tuple[bytes, bytes]], want: list[bytes]) -> list[tuple[bytes, bytes]]:
        """My values (after merging what I received) for the keys the peer wants, unless the peer
        already holds exactly that value."""
        keys = want[: self.max_docs]
        theirs = dict(received)
        return [(key, value) for key, value in zip(keys, self._read(keys), strict=True)
                if value is not None and theirs.get(key) != value]

    def _check_segments(self, reply: Any, roots: dict[bytes, bytes]) -> dict[bytes, list[int]]:
        _require(isinstance(reply, dict), "ae.roots reply must be a map")
        for partition, segments in reply.items():
            _require(partition in roots, "ae.roots reply names a partition that was not asked about")
            _require(isinstance(segments, list) and len(segments) == self.digest.segments
                     and all(_is_hash(h) for h in segments),
                     f"ae.roots reply needs {self.digest.segments} segment hashes per partition")
        return reply

    def _check_found(self, reply: Any, listing: Listing) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        _require(isinstance(reply, dict), "ae.keys reply must be a map")
        docs = _doc_pairs(reply.get("docs"))
        for key, _ in docs:
            segments = listing.get(partition_of(key))
            _require(segments is not None and self.digest.segment_of(key) in segments,
                     "ae.keys reply holds a document from outside the listed segments")
        want = reply.get("want")
        _require(isinstance(want, list), "ae.keys reply needs a 'want' list")
        listed = {key for segments in listing.values() for entries in segments.values() for key in entries}
        _require(all(isinstance(key, bytes) and key in listed for key in want),
                 "ae.keys reply wants a key that was not listed")
        return docs, list(dict.fromkeys(want))

    # ---- responder -------------------------------------------------------------------------------
    async def _on_roots(self, peer: str, payload: Any) -> dict[bytes, list[int]]:
        _require(isinstance(payload, dict), "ae.roots payload must be a map of partition to root")
        for partition, root in payload.items():
            _check_partition(partition)
            _require(isinstance(root, bytes), "a root must be bytes")
        return {p: self.digest.segment_hashes(p) for p, root in payload.items() if self.digest.root(p) != root}

    async def _on_keys(self, peer: str, payload: Any) -> dict[str, list]:
        listing = self._check_listing(payload)
        both: list[bytes] = []  # held differently on each side: moves both ways
        only_mine: list[bytes] = []
        only_theirs: list[bytes] = []
        for partition, segments in listing.items():
            mine = self.digest.entries(partition, segments)
            theirs = {key: h for entries in segments.values() for key, h in entries.items()}
            for key, h in theirs.items():
                if key not in mine:
                    only_theirs.append(key)
                elif mine[key] != h:
                    both.append(key)
            only_mine += [key for key in mine if key not in theirs]
        # Keys that move both ways lead both lists, so when the lists are cut at max_docs such a key
        # is settled in one round rather than sent now and fetched back in a later one.
        send = (both + only_mine)[: self.max_docs]
        docs = [[key, value] for key, value in zip(send, self._read(send), strict=True) if value is not None]
        return {"docs": docs, "want": (both + only_theirs)[: self.max_docs]}

    async def _on_push(self, peer: str, payload: Any) -> int:
        _require(isinstance(payload, dict), "ae.push payload must be a map")
        docs = _doc_pairs(payload.get("docs"))
        _require(len(docs) <= self.max_docs, f"ae.push holds more than {self.max_docs} documents")
        return await self._apply(docs) if docs else 0

    def _check_listing(self, payload: Any) -> Listing:
        _require(isinstance(payload, dict), "ae.keys payload must be a map of partition to segments")
        for partition, segments in payload.items():
            _check_partition(partition)
            _require(isinstance(segments, dict), "ae.keys: segments must be a map")
            for segment, entries in segments.items():
                _require(_is_int(segment) and 0 <= segment < self.digest.segments,
                         f"ae.keys: segment must be an int below {self.digest.segments}")
                _require(isinstance(entries, dict), "ae.keys: entries must be a map of key to hash")
                for key, h in entries.items():
                    _require(isinstance(key, bytes) and partition_of(key) == partition
                             and self.digest.segment_of(key) == segment,
                             "ae.keys: a key is not in the partition and segment it is listed under")
                    _require(_is_hash(h), "ae.keys: a doc hash must be an unsigned 64-bit int")
        return payload


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hash(value: Any) -> bool:
    return _is_int(value) and 0 <= value < HASH_LIMIT


def _check_partition(partition: Any) -> None:
    _require(isinstance(partition, bytes) and partition_of(partition) == partition,
             "a partition must be a document key prefix b'd\\0<project>\\0<tag>\\0'")


def _doc_pairs(raw: Any) -> list[tuple[bytes, bytes]]:
    """[[key, value], ...] from a peer: document keys, byte values, each key once."""
    _require(isinstance(raw, list), "'docs' must be a list of [key, value] pairs")
    pairs: dict[bytes, bytes] = {}
    for item in raw:
        _require(isinstance(item, list | tuple) and len(item) == 2, "'docs' items must be [key, value]")
        key, value = item
        _require(isinstance(key, bytes) and isinstance(value, bytes), "a document key and value must be bytes")
        partition_of(key)  # raises ValueError for a key that is not a document key
        _require(key not in pairs, "'docs' names a key twice")
        pairs[key] = value
    return list(pairs.items())
