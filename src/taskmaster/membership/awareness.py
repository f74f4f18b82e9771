"""Lifeguard self-awareness: the local health multiplier (LHM).

A node that misses acks it should have had, or has to refute accusations about itself, is more
likely slow or cut off than its peers are dead. It counts this in a score 0..max-1 and stretches its
probe rounds by score+1, so a sick node accuses others more slowly (memberlist awareness.go).
"""

from __future__ import annotations


class Awareness:
    __slots__ = ("limit", "score")

    def __init__(self, max_multiplier: int):
        self.limit = max_multiplier - 1
        self.score = 0

    def apply(self, delta: int) -> None:
        """+n for n missed nacks or a refutation, -1 for a successful probe; clamped to 0..max-1."""
        self.score = min(max(self.score + delta, 0), self.limit)

    def scale(self, seconds: float) -> float:
        return seconds * (self.score + 1)
