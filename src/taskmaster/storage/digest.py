"""Digest (Merkle) summary of the stored documents, per partition, kept up to date on every write.

A partition is one (project, tag): the key prefix `d\\0<project>\\0<tag>\\0`, so the replicas of a
tag compare one summary. The tree has two levels:

    root              hash of the segment hashes (16 bytes)
    segment hashes    `segments` 64-bit ints; a key's segment is crc32(key) mod segments
    doc hashes        64-bit blake2b of (key, value)

A segment hash is the XOR of its doc hashes, so a write changes it in O(1) (XOR the old doc hash
out, the new one in) and an empty segment is 0. Equal roots mean, with overwhelming probability,
equal contents; unequal segment hashes say where to look.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from hashlib import blake2b

from .rocks import DOC_PREFIX, SEP

SEGMENTS = 64


def partition_of(key: bytes) -> bytes:
    """The `d\\0<project>\\0<tag>\\0` prefix of a document key; ValueError for any other key."""
    project_end = key.find(SEP, len(DOC_PREFIX)) if key.startswith(DOC_PREFIX) else -1
    tag_end = key.find(SEP, project_end + 1) if project_end >= 0 else -1
    if tag_end < 0:
        raise ValueError(f"not a document key: {key[:80]!r}")
    return key[: tag_end + 1]


def doc_hash(key: bytes, value: bytes) -> int:
    # The key's length goes first so that no two (key, value) pairs hash the same bytes.
    data = len(key).to_bytes(4, "big") + key + value
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


class _Partition:
    __slots__ = ("docs", "root", "segments")

    def __init__(self, segments: int):
        # key -> doc_hash * segments + segment: one int per document (a 64-bit hash is already a
        # three-digit int, so the segment rides along for free and `entries` needs no rehashing).
        self.docs: dict[bytes, int] = {}
        self.segments = [0] * segments
        self.root: bytes | None = None  # cached until the next change


class DigestIndex:
    """In-memory Merkle summary of every stored document, kept incrementally (O(1) per write)."""

    def __init__(self, segments: int = SEGMENTS):
        if segments < 1:
            raise ValueError("segments must be at least 1")
        self.segments = segments
        self.empty_root = _root([0] * segments)
        self._parts: dict[bytes, _Partition] = {}
        self._count = 0

    def segment_of(self, key: bytes) -> int:
        return zlib.crc32(key) % self.segments

    # ---- writes ----------------------------------------------------------------------------------
    def rebuild(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Start over from `items` (a scan of every stored document)."""
        self._parts.clear()
        self._count = 0
        for key, value in items:
            self.update(key, value)

    def update(self, key: bytes, value: bytes | None) -> None:
        """Record that `key` now holds `value` (None: deleted). Keys that are not document keys are
        ignored, so a whole write batch can be passed through."""
        try:
            pid = partition_of(key)
        except ValueError:
            return
        part = self._parts.get(pid)
        old = part.docs.get(key) if part is not None else None
        if value is None:
            if old is None:
                return
            part.segments[old % self.segments] ^= old // self.segments
            del part.docs[key]
            self._count -= 1
            part.root = None
            if not part.docs:
                del self._parts[pid]
            return
        segment = old % self.segments if old is not None else self.segment_of(key)
        new = doc_hash(key, value) * self.segments + segment
        if new == old:
            return
        if part is None:
            part = self._parts[pid] = _Partition(self.segments)
        if old is None:
            self._count += 1
        else:
            part.segments[segment] ^= old // self.segments
        part.segments[segment] ^= new // self.segments
        part.docs[key] = new
        part.root = None

    # ---- reads -----------------------------------------------------------------------------------
    def partitions(self) -> list[bytes]:
        """Partitions holding at least one document, in key order."""
        return sorted(self._parts)

    def root(self, partition: bytes) -> bytes:
        part = self._parts.get(partition)
        if part is None:
            return self.empty_root
        if part.root is None:
            part.root = _root(part.segments)
        return part.root

    def segment_hashes(self, partition: bytes) -> list[int]:
        part = self._parts.get(partition)
        return list(part.segments) if part is not None else [0] * self.segments

    def entries(self, partition: bytes, segments: Iterable[int]) -> dict[bytes, int]:
        """Doc key -> doc hash for the documents of `partition` in `segments`."""
        part = self._parts.get(partition)
        wanted = set(segments)
        if part is None or not wanted:
            return {}
        n = self.segments
        if wanted.issuperset(range(n)):  # the whole partition: skip the per-key test
            return {key: v // n for key, v in part.docs.items()}
        return {key: v // n for key, v in part.docs.items() if v % n in wanted}

    def __len__(self) -> int:
        return self._count


def _root(segments: list[int]) -> bytes:
    return blake2b(b"".join(h.to_bytes(8, "big") for h in segments), digest_size=16).digest()
