"""TCP streams on the asyncio loop: one length-prefixed request frame, one reply frame, close.

A frame is a 4-byte big-endian length followed by that many bytes. Push-pull and the fallback
ping use one fresh connection each, as memberlist does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

from taskmaster.transport.base import Address, DropHandler, StreamHandler, TransportError

log = logging.getLogger("taskmaster.transport")
_HEADER = struct.Struct(">I")


class FrameTooLarge(Exception):
    pass


def frame(data: bytes) -> bytes:
    return _HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader, max_frame: int) -> bytes:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > max_frame:
        raise FrameTooLarge(size)
    return await reader.readexactly(size)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await writer.wait_closed()


async def request(addr: Address, data: bytes, timeout: float, max_frame: int) -> bytes:
    where = f"{addr[0]}:{addr[1]}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(addr[0], addr[1])
            try:
                writer.write(frame(data))
                await writer.drain()
                return await read_frame(reader, max_frame)
            finally:
                await _close(writer)
    except TimeoutError:
        raise TransportError(f"{where}: timed out after {timeout:g}s") from None
    except asyncio.IncompleteReadError:
        raise TransportError(f"{where}: closed the connection without a reply") from None
    except FrameTooLarge as e:
        raise TransportError(f"{where}: reply of {e} bytes is over the frame limit") from None
    except OSError as e:
        raise TransportError(f"{where}: {e.strerror or e}") from None


class TcpServer:
    def __init__(self, max_frame: int, read_timeout: float):
        self.max_frame, self.read_timeout = max_frame, read_timeout
        self._server: asyncio.Server | None = None
        self._on_stream: StreamHandler | None = None
        self._on_drop: DropHandler | None = None

    async def open(self, host: str, port: int, on_stream: StreamHandler, on_drop: DropHandler) -> int:
        """Listen; returns the port (useful when `port` is 0)."""
        self._on_stream, self._on_drop = on_stream, on_drop
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            async with asyncio.timeout(self.read_timeout):
                data = await read_frame(reader, self.max_frame)
            reply = self._on_stream(data, (peer[0], peer[1]))
            if reply is not None:
                writer.write(frame(reply))
                await writer.drain()
        except FrameTooLarge:
            self._on_drop("oversized")
        except (asyncio.IncompleteReadError, TimeoutError):
            self._on_drop("truncated")
        except OSError as e:
            log.debug("stream from %s failed: %s", peer, e)
        finally:
            await _close(writer)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
