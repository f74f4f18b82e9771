"""A member as the rest of the node sees it, and as the protocol keeps it."""

from __future__ import annotations

from dataclasses import dataclass

from taskmaster.transport.base import Address

ALIVE, SUSPECT, DEAD, LEFT = "alive", "suspect", "dead", "left"
STATES = (ALIVE, SUSPECT, DEAD, LEFT)


@dataclass(frozen=True, slots=True)
class Member:
    """A snapshot of one member (what `Membership.members()` and `on_change` hand out)."""

    name: str
    addr: Address
    state: str
    """"alive", "suspect", "dead" (declared failed) or "left" (announced its departure)."""
    incarnation: int
    meta: dict


class NodeState:
    """The protocol's mutable record of one member."""

    __slots__ = ("name", "addr", "meta", "incarnation", "state", "state_change")

    def __init__(self, name: str, addr: Address, meta: dict, incarnation: int, state: str, now: float):
        self.name, self.addr, self.meta = name, addr, meta
        self.incarnation, self.state, self.state_change = incarnation, state, now

    def member(self) -> Member:
        return Member(self.name, self.addr, self.state, self.incarnation, dict(self.meta))

    def __repr__(self) -> str:
        return f"<{self.name} {self.state} inc={self.incarnation}>"
