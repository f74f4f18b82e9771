"""Injected network faults: cut this node off from chosen peers, without root.

The chaos harness and tests partition a cluster on loopback by telling each node which peers to
isolate (POST /admin/faults). An isolated peer gets none of our gossip packets, stream requests or
RPC calls, and its gossip packets to us are dropped. A fault is one-directional as far as TCP goes
(inbound streams on loopback cannot be told apart by address), so a partition sets it on both sides,
as blackhole routes on both hosts would. `degrade` adds packet loss and delay where `tc netem` is
not available (lost gossip packets; TCP calls are delayed, as retransmission would delay them).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from taskmaster.transport.base import (
    Address,
    DropHandler,
    PacketHandler,
    StreamHandler,
    Transport,
    TransportError,
)


class Faults:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.isolated: frozenset[str] = frozenset()
        self.loss = 0.0  # fraction of our gossip packets lost on the way out
        self.delay = 0.0  # seconds added to every packet and call we send (plus up to half as jitter)
        self.dropped = 0  # packets and calls refused because of a fault
        self._rng = rng or random.Random()

    def isolate(self, names) -> None:
        self.isolated = frozenset(names)

    def degrade(self, loss: float, delay: float) -> None:
        """Packet loss and delay, as `tc netem` would add them (for machines without it)."""
        if not (0.0 <= loss <= 1.0 and 0.0 <= delay <= 10.0):
            raise ValueError("loss is a fraction from 0 to 1, delay at most 10 s")
        self.loss, self.delay = loss, delay

    def blocks(self, name: str | None) -> bool:
        return name is not None and name in self.isolated

    def lost(self) -> bool:
        if self.loss and self._rng.random() < self.loss:
            self.dropped += 1
            return True
        return False

    def lag(self) -> float:
        return self.delay * (1 + self._rng.random() / 2) if self.delay else 0.0


class FaultyTransport(Transport):
    """Wraps the gossip transport; `name_of(addr)` maps a gossip address to a member name."""

    def __init__(self, inner: Transport, faults: Faults, name_of: Callable[[Address], str | None]):
        self.inner, self.faults, self.name_of = inner, faults, name_of

    @property
    def local_addr(self) -> Address:
        return self.inner.local_addr

    def _blocked(self, addr: Address) -> bool:
        if not self.faults.isolated or not self.faults.blocks(self.name_of(addr)):
            return False
        self.faults.dropped += 1
        return True

    async def start(self, on_packet: PacketHandler, on_stream: StreamHandler, on_drop: DropHandler) -> None:
        def packet(data: bytes, addr: Address) -> None:
            if not self._blocked(addr):
                on_packet(data, addr)

        await self.inner.start(packet, on_stream, on_drop)

    def send_packet(self, addr: Address, data: bytes) -> None:
        if self._blocked(addr) or self.faults.lost():
            return
        lag = self.faults.lag()
        if lag:
            asyncio.get_running_loop().call_later(lag, self.inner.send_packet, addr, data)
        else:
            self.inner.send_packet(addr, data)

    async def request(self, addr: Address, data: bytes, timeout: float) -> bytes:
        if self._blocked(addr):
            raise TransportError(f"{addr[0]}:{addr[1]}: isolated by an injected fault")
        lag = self.faults.lag()
        if lag:
            await asyncio.sleep(lag)
        return await self.inner.request(addr, data, timeout)

    async def close(self) -> None:
        await self.inner.close()
