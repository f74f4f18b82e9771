"""The production transport: UDP and TCP on the same port (memberlist's NetTransport)."""

from __future__ import annotations

import errno

from taskmaster.transport import tcp
from taskmaster.transport.base import (
    Address,
    DropHandler,
    PacketHandler,
    StreamHandler,
    Transport,
)
from taskmaster.transport.tcp import TcpServer
from taskmaster.transport.udp import UdpEndpoint

_UNSPECIFIED = ("", "0.0.0.0", "::")
_BIND_ATTEMPTS = 10


class NetTransport(Transport):
    """Binds `host:port` for both UDP and TCP (port 0: a free port both share). Peers are told
    `advertise` (default: the bound address; an advertised port 0 means the bound port), which
    must be given when binding a wildcard."""

    def __init__(self, host: str, port: int = 0, *, advertise: Address | None = None,
                 max_frame: int = 32 << 20, read_timeout: float = 10.0):
        if advertise is None and host in _UNSPECIFIED:
            raise ValueError(f"binding {host or 'all interfaces'} needs an address to advertise")
        self.host, self.port, self.advertise = host, port, advertise
        self._udp = UdpEndpoint()
        self._tcp = TcpServer(max_frame, read_timeout)
        self._bound: int | None = None

    @property
    def local_addr(self) -> Address:
        if self._bound is None:
            raise RuntimeError("transport not started")
        if self.advertise is None:
            return (self.host, self._bound)
        return (self.advertise[0], self.advertise[1] or self._bound)

    async def start(self, on_packet: PacketHandler, on_stream: StreamHandler, on_drop: DropHandler) -> None:
        # TCP first; with port 0 the UDP side of the chosen port may be taken, so try again.
        for attempt in range(_BIND_ATTEMPTS):
            port = await self._tcp.open(self.host, self.port, on_stream, on_drop)
            try:
                await self._udp.open(self.host, port, on_packet)
            except OSError as e:
                await self._tcp.close()
                if self.port != 0 or e.errno != errno.EADDRINUSE or attempt == _BIND_ATTEMPTS - 1:
                    raise
                continue
            self._bound = port
            return

    def send_packet(self, addr: Address, data: bytes) -> None:
        self._udp.send(addr, data)

    async def request(self, addr: Address, data: bytes, timeout: float) -> bytes:
        return await tcp.request(addr, data, timeout, self._tcp.max_frame)

    async def close(self) -> None:
        self._udp.close()
        await self._tcp.close()
