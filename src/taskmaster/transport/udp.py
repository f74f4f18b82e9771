"""UDP datagrams on the asyncio loop: the gossip packets."""

from __future__ import annotations

import asyncio
import logging

from taskmaster.transport.base import Address, PacketHandler

log = logging.getLogger("taskmaster.transport")


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_packet: PacketHandler):
        self.on_packet = on_packet

    def datagram_received(self, data: bytes, addr) -> None:
        self.on_packet(data, (addr[0], addr[1]))  # IPv6 addresses come with flow info and scope

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable from an earlier send: the probe will simply get no ack.
        log.debug("udp error: %s", exc)


class UdpEndpoint:
    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self, host: str, port: int, on_packet: PacketHandler) -> int:
        """Bind; returns the port (useful when `port` is 0)."""
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(on_packet),
                                                                 local_addr=(host, port))
        return self._transport.get_extra_info("sockname")[1]

    def send(self, addr: Address, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        try:
            self._transport.sendto(data, addr)
        except (OSError, ValueError, TypeError) as e:  # a packet we cannot send is a lost packet
            log.debug("udp send to %s failed: %s", addr, e)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
