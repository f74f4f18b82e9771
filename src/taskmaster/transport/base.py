"""The seams between the gossip protocol and the world: a transport, a clock.

The membership code never opens a socket, reads the wall clock or sleeps on its own: it is handed a
`Transport` (UDP-like packets plus TCP-like request/reply streams) and a `Clock` (the asyncio loop
in production, a virtual-time loop in the simulator), as hashicorp/memberlist takes a Transport
and tests it with a MockTransport. So the simulator runs the very same protocol code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

Address = tuple[str, int]

PacketHandler = Callable[[bytes, Address], None]
"""Called with each datagram that arrives and the address it came from."""
StreamHandler = Callable[[bytes, Address], "bytes | None"]
"""Called with a request frame; returns the reply frame, or None to close without a reply."""
DropHandler = Callable[[str], None]
"""Called with a reason when the transport itself discards input (e.g. an oversized frame)."""


class TransportError(Exception):
    """A stream request failed: no connection, reset, timeout or no reply."""


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the protocol needs of time: the subset of asyncio's loop it uses."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable, *args) -> TimerHandle: ...

    def call_at(self, when: float, callback: Callable, *args) -> TimerHandle: ...


class Transport(ABC):
    """Unreliable packets and reliable one-shot request/reply streams on one address."""

    @property
    @abstractmethod
    def local_addr(self) -> Address:
        """The address peers reach us at (valid after start)."""

    @abstractmethod
    async def start(self, on_packet: PacketHandler, on_stream: StreamHandler, on_drop: DropHandler) -> None:
        """Start receiving; handlers run on the event loop."""

    @abstractmethod
    def send_packet(self, addr: Address, data: bytes) -> None:
        """Best effort, never raises: a packet that cannot be sent is lost, as on a network."""

    @abstractmethod
    async def request(self, addr: Address, data: bytes, timeout: float) -> bytes:
        """Send one frame on a fresh stream and return the one frame the peer answers.

        Raises TransportError (connection refused/reset, timeout, closed without a reply)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving and release the address. Idempotent."""
