"""Consistent-hash ring with virtual nodes: which members hold a partition, in preference order.

A partition is one (project, tag): a tag's documents live together, so a call touches one partition.
Each member owns `vnodes` points on a 64-bit circle (hashes of its name); a key's preference list is
the first `n` distinct members met walking clockwise from the key's hash (Dynamo's strategy 1 with
many tokens per member: only the new member's points move on a join, ~1/(n+1) of the keys).

The project's own partition (tag "") holds the current tag and settings that every call reads: it is
tiny and is kept on every member.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable

VNODES = 128
"""Points per member. 128 keeps the max/mean load at 10 members under ~1.15 (tests/unit/test_ring.py)."""

PROJECT_TAG = ""


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def partition_key(project: str, tag: str) -> bytes:
    """The partition id of a (project, tag): the key prefix its documents share in the store."""
    return b"d\x00" + project.encode() + b"\x00" + tag.encode() + b"\x00"


def split_partition(partition: bytes) -> tuple[str, str]:
    _, project, tag, _ = partition.split(b"\x00", 3)
    return project.decode(), tag.decode()


class Ring:
    """An immutable ring over a set of member names (build a new one when the members change)."""

    def __init__(self, members: Iterable[str], vnodes: int = VNODES):
        self.members = tuple(sorted(set(members)))
        self.vnodes = vnodes
        points = sorted((_hash(f"{name}#{i}".encode()), name) for name in self.members for i in range(vnodes))
        self._tokens = [t for t, _ in points]
        self._owners = [name for _, name in points]

    def __len__(self) -> int:
        return len(self.members)

    def walk(self, partition: bytes) -> list[str]:
        """Every member, in this partition's preference order."""
        if not self._tokens:
            return []
        seen: dict[str, None] = {}
        start = bisect_right(self._tokens, _hash(partition))
        size = len(self._tokens)
        for i in range(size):
            name = self._owners[(start + i) % size]
            if name not in seen:
                seen[name] = None
                if len(seen) == len(self.members):
                    break
        return list(seen)

    def preference(self, partition: bytes, n: int) -> list[str]:
        """The `n` members that own `partition` (all of them for the project's own partition)."""
        walk = self.walk(partition)
        if split_partition(partition)[1] == PROJECT_TAG:
            return walk
        return walk[:n]
