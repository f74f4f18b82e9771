"""The simulated network: in-memory transports on a seeded, faulty network in virtual time.

Every packet is independently lost (probability `loss`), delayed (the link's base delay: `delay`,
or `link_delay(src, dst)` where links differ, as between zones; plus uniform `jitter`, which also
reorders), sometimes duplicated, and dropped between partitioned groups or to a
crashed (closed) endpoint. Streams are reliable but slower (a handshake, and a retransmission
timeout when a segment is "lost"); unreachable peers time out. A node given a `Stall` also
receives everything late while it is frozen. All randomness comes from one `random.Random`, so a
run replays from its seed.
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
from taskmaster.transport.virtual_time import Stall

_RTO = 0.2
"""Extra delay of a stream whose segment was lost (Linux's minimum TCP retransmission timeout)."""


class SimNetwork:
    def __init__(self, loop: asyncio.AbstractEventLoop, rng: random.Random, *, loss: float = 0.0,
                 delay: float = 0.0005, jitter: float = 0.0015, duplicate: float = 0.0,
                 link_delay: Callable[[Address, Address], float] | None = None):
        self.loop, self.rng = loop, rng
        self.loss, self.delay, self.jitter, self.duplicate = loss, delay, jitter, duplicate
        self.link_delay = link_delay
        """The base one-way delay of the link src -> dst; None: `delay` for every link."""
        self.endpoints: dict[Address, MemoryTransport] = {}
        self._group: dict[Address, int] = {}
        self.packets = self.lost = self.blocked = 0

    def transport(self, addr: Address, stall: Stall | None = None) -> MemoryTransport:
        return MemoryTransport(self, addr, stall)

    def partition(self, *groups) -> None:
        """Cut the network between the given groups of addresses (others reach everyone)."""
        self._group = {addr: i for i, group in enumerate(groups) for addr in group}

    def heal(self) -> None:
        self._group = {}

    def connected(self, a: Address, b: Address) -> bool:
        group = self._group
        return not group or group.get(a, -1) == group.get(b, -1) or a not in group or b not in group

    def _latency(self, src: Address, dst: Address) -> float:
        base = self.delay if self.link_delay is None else self.link_delay(src, dst)
        return base + self.rng.random() * self.jitter

    def _reachable(self, src: Address, dst: Address) -> MemoryTransport | None:
        endpoint = self.endpoints.get(dst)
        if endpoint is None or not self.connected(src, dst):
            return None
        return endpoint

    # --- packets -----------------------------------------------------------------------------------

    def send(self, src: Address, dst: Address, data: bytes) -> None:
        self.packets += 1
        rng = self.rng
        if rng.random() < self.loss:
            self.lost += 1
            return
        self.loop.call_later(self._latency(src, dst), self._deliver, src, dst, data)
        if self.duplicate and rng.random() < self.duplicate:
            self.loop.call_later(self._latency(src, dst), self._deliver, src, dst, data)

    def _deliver(self, src: Address, dst: Address, data: bytes) -> None:
        endpoint = self._reachable(src, dst)
        if endpoint is None:
            self.blocked += 1
            return
        if endpoint.stall is not None:
            now = self.loop.time()
            resume = endpoint.stall.resume_time(now)
            if resume > now:
                self.loop.call_at(resume, self._deliver, src, dst, data)
                return
        endpoint.on_packet(data, src)

    # --- streams -----------------------------------------------------------------------------------

    def _stream_latency(self, src: Address, dst: Address) -> float:
        """Handshake plus data one way; a lost segment costs a retransmission timeout."""
        lost = self.rng.random() < self.loss
        return 1.5 * self._latency(src, dst) + (_RTO if lost else 0.0)

    async def request(self, src: Address, dst: Address, data: bytes, timeout: float) -> bytes:
        reply = self.loop.create_future()
        self.loop.call_later(self._stream_latency(src, dst), self._serve, src, dst, data, reply)
        try:
            return await asyncio.wait_for(reply, timeout)
        except TimeoutError:
            raise TransportError(f"{dst[0]}:{dst[1]}: timed out") from None

    def _serve(self, src: Address, dst: Address, data: bytes, reply: asyncio.Future) -> None:
        endpoint = self._reachable(src, dst)
        if endpoint is None or reply.done():
            return  # no answer at all: the requester times out, as with a dead host
        if endpoint.stall is not None:
            now = self.loop.time()
            resume = endpoint.stall.resume_time(now)
            if resume > now:
                self.loop.call_at(resume, self._serve, src, dst, data, reply)
                return
        answer = endpoint.on_stream(data, src)
        self.loop.call_later(self._stream_latency(dst, src), self._answer, src, dst, answer, reply)

    def _answer(self, src: Address, dst: Address, answer: bytes | None, reply: asyncio.Future) -> None:
        if reply.done() or not self.connected(src, dst):
            return
        if answer is None:
            reply.set_exception(TransportError(f"{dst[0]}:{dst[1]}: closed without a reply"))
        else:
            reply.set_result(answer)


class MemoryTransport(Transport):
    def __init__(self, network: SimNetwork, addr: Address, stall: Stall | None):
        self.network, self.addr, self.stall = network, addr, stall
        self.on_packet: PacketHandler | None = None
        self.on_stream: StreamHandler | None = None
        self.on_drop: DropHandler | None = None

    @property
    def local_addr(self) -> Address:
        return self.addr

    async def start(self, on_packet: PacketHandler, on_stream: StreamHandler, on_drop: DropHandler) -> None:
        if self.addr in self.network.endpoints:
            raise OSError(f"address {self.addr} already in use")
        self.on_packet, self.on_stream, self.on_drop = on_packet, on_stream, on_drop
        self.network.endpoints[self.addr] = self

    def send_packet(self, addr: Address, data: bytes) -> None:
        if self.network.endpoints.get(self.addr) is self:
            self.network.send(self.addr, addr, data)

    async def request(self, addr: Address, data: bytes, timeout: float) -> bytes:
        if self.network.endpoints.get(self.addr) is not self:
            raise TransportError("transport closed")
        return await self.network.request(self.addr, addr, data, timeout)

    async def close(self) -> None:
        if self.network.endpoints.get(self.addr) is self:
            del self.network.endpoints[self.addr]
