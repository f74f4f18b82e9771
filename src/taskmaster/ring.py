"""Consistent-hash ring with virtual nodes: which members hold a partition, in preference order.

A partition is one (project, tag): a tag's documents live together, so a call touches one partition.
Each member owns `vnodes` points on a 64-bit circle (hashes of its name); walking clockwise from the
key's hash meets the members in the key's ring order (Dynamo's strategy 1 with many tokens per
member: only the new member's points move on a join, ~1/(n+1) of the keys).

Members belong to zones (datacenters, availability zones; "" when not told). The preference order
spreads a key over zones before it doubles up in one (the idea of Cassandra's
NetworkTopologyStrategy and Riak's target_n_val): it takes, in ring order, the first member met of
each zone, then the second of each, and so on; with one zone, that is the plain ring order. The
first `n` lie in `min(n, zones)` distinct zones: with n <= zones, one copy per zone, so losing a
whole zone leaves every key n - 1 copies. A join into a known zone only moves keys to the newcomer.
Points are hashes of names only: a member's zone moves no point.

The project's own partition (tag "") holds the current tag and settings that every call reads: it is
tiny and is kept on every member.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping

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
    """An immutable ring over members: a map name -> zone, or plain names (all in zone "").
    Build a new one when the members (or their zones) change."""

    def __init__(self, members: Mapping[str, str] | Iterable[str], vnodes: int = VNODES):
        zone_of = dict(members) if isinstance(members, Mapping) else dict.fromkeys(members, "")
        self.members = tuple(sorted(zone_of))
        self.zones: dict[str, str] = {name: zone_of[name] for name in self.members}
        """Each member's zone, members sorted by name."""
        self.vnodes = vnodes
        points = sorted((_hash(f"{name}#{i}".encode()), name) for name in self.members for i in range(vnodes))
        self._tokens = [t for t, _ in points]
        self._owners = [name for _, name in points]
        self._zone_sizes = Counter(self.zones.values())
        self._shares: dict[int, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self.members)

    def walk(self, partition: bytes) -> list[str]:
        """Every member, in this partition's preference order."""
        return self._order(bisect_right(self._tokens, _hash(partition)), len(self.members))

    def preference(self, partition: bytes, n: int) -> list[str]:
        """The `n` members that own `partition` (all of them for the project's own partition)."""
        if split_partition(partition)[1] == PROJECT_TAG:
            return self.walk(partition)
        return self._order(bisect_right(self._tokens, _hash(partition)), n)

    def _order(self, start: int, n: int) -> list[str]:
        """The first `n` members of the preference order of a key whose walk starts at token index
        `start`: walk only as far as needed to know them.

        Each member met gets a rank, the number of members of its zone met before it; the order
        sorts by (rank, position in the walk). Members not yet met will rank at least as low as the
        smallest count of a zone not yet exhausted (`floor`), and come later in the walk: so the
        met members of rank <= floor are a settled prefix of the order."""
        tokens, owners, sizes, zones = self._tokens, self._owners, self._zone_sizes, self.zones
        n = min(n, len(self.members))
        if n <= 0:
            return []
        if len(sizes) == 1:  # one zone: the plain walk, first n distinct members
            seen: dict[str, None] = {}
            for i in range(len(tokens)):
                name = owners[(start + i) % len(tokens)]
                if name not in seen:
                    seen[name] = None
                    if len(seen) == n:
                        break
            return list(seen)
        met: dict[str, int] = {}  # name -> rank, in walk order
        counts = dict.fromkeys(sizes, 0)
        for i in range(len(tokens)):
            name = owners[(start + i) % len(tokens)]
            if name in met:
                continue
            met[name] = counts[zones[name]]
            counts[zones[name]] += 1
            if len(met) == len(self.members):
                break
            if n < len(self.members):
                floor = min(c for z, c in counts.items() if c < sizes[z])
                if sum(1 for rank in met.values() if rank <= floor) >= n:
                    break
        return sorted(met, key=met.__getitem__)[:n]  # stable: walk order within a rank

    def share(self, n: int) -> dict[str, float]:
        """Per member, the fraction of the key space whose `n` replicas include it (the shares add
        up to min(n, members)). Exact: the preference list is constant between two points."""
        n = min(n, len(self.members))
        cached = self._shares.get(n)
        if cached is None:
            total = dict.fromkeys(self.members, 0)
            tokens, size = self._tokens, 1 << 64
            for i, token in enumerate(tokens):
                # Keys in [previous point, this point) start their walk at this point.
                arc = (token - tokens[i - 1]) % size if len(tokens) > 1 else size
                for name in self._order(i, n):
                    total[name] += arc
            cached = self._shares[n] = {name: round(v / size, 4) for name, v in total.items()}
        return cached
