"""Node-to-node calls: multiplexed requests over one persistent TCP connection per peer.

A frame is a 4-byte big-endian length and a body; the body is a msgpack array, sealed with the
cluster key (AES-GCM, transport/auth.py) when the cluster has one, so RPC is as closed as gossip
(promise 4).

    request  [0, id, sender, method, payload, wants_receipt]
    receipt  [2, id, true, null]          sent on arrival, when the request asked for one
    reply    [1, id, ok, result | error message, seconds the handler took]

Versions (the protocol versions of membership/messages.py): in version 1 the body is the bare array;
from version 2 on it is the version byte and the array (a version 1 array starts with a byte of
0x90 or more, so the two cannot be confused), and a receiver ignores fields after the ones it knows,
as it ignores map keys it does not know in payloads. A request goes in `Rpc.version` (the version
every live member decodes); its receipt and reply go back in the request's. A frame of a version
this node does not decode is dropped and counted (`stats["dropped_version"]`), and the connection
keeps serving the frames after it.

Each caller keeps per peer a moving average of its calls' round trips minus the handlers' time: the
network and queueing distance to that peer (`rtt`), for choosing the nearest of several.

A receipt lets a caller whose request may run long (a forwarded tool call) tell within a short
deadline whether the peer is there at all: a blackholed peer leaves it to wait for nothing.

Failures come in three kinds, because the caller's next step differs:
  Unreachable     nothing was sent: safe to send the same request elsewhere
  Indeterminate   sent, but no answer (timeout, connection lost): it may or may not have run
  RemoteError     the peer ran the handler and it failed
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

from taskmaster.cluster.faults import Faults
from taskmaster.membership.messages import PROTOCOL_MAX, PROTOCOL_MIN
from taskmaster.transport.auth import AuthError, Keyring
from taskmaster.transport.base import Address

log = logging.getLogger("taskmaster.rpc")

Handler = Callable[[str, Any], Awaitable[Any]]
_HEADER = struct.Struct(">I")
_REQUEST, _REPLY, _RECEIPT = 0, 1, 2
_FIELDS = {_REQUEST: (6, 6), _REPLY: (4, 5), _RECEIPT: (4, 4)}  # kind -> (fewest, most) fields known
RTT_WEIGHT = 0.2
"""Weight of the newest sample in the round-trip average (an EWMA: about the last 5-10 calls count)."""


class RpcError(Exception):
    pass


class Unreachable(RpcError):
    """The request was not sent."""


class Indeterminate(RpcError):
    """The request was sent and no answer came."""


class RemoteError(RpcError):
    """The peer's handler failed with this message."""


class BadFrame(ValueError):
    """A frame this node does not take: `reason` is "version" (a protocol it does not decode),
    "auth" (not sealed with a key of ours) or "malformed"."""

    def __init__(self, reason: str):
        super().__init__(f"{reason} rpc frame")
        self.reason = reason


def encode_frame(frame: list, version: int) -> bytes:
    """The plaintext body of `frame` in protocol `version`."""
    body = msgpack.packb(frame, use_bin_type=True)
    return body if version == 1 else bytes((version,)) + body


def decode_frame(data: bytes) -> tuple[int, list]:
    """(version, fields) of a frame's plaintext body, cut to the fields this node knows; BadFrame
    for anything that is not a frame of a version it decodes."""
    first = data[0] if data else 0
    if 0x90 <= first <= 0x9F:  # a bare msgpack array of up to 15 items: version 1
        version, body = 1, data
    elif 2 <= first <= PROTOCOL_MAX:
        version, body = first, memoryview(data)[1:]
    else:
        raise BadFrame("version" if PROTOCOL_MAX < first < 0x80 else "malformed")
    try:
        frame = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:  # the trust boundary: whatever msgpack raises on hostile bytes
        raise BadFrame("malformed") from None
    known = _FIELDS.get(frame[0]) if type(frame) is list and frame and type(frame[0]) is int else None
    if known is None or len(frame) < known[0] or (version == 1 and len(frame) > known[1]):
        raise BadFrame("malformed")
    frame = frame[:known[1]]
    if not _valid(frame):
        raise BadFrame("malformed")
    return version, frame


def _valid(frame: list) -> bool:
    if type(frame[1]) is not int:
        return False
    if frame[0] == _REQUEST:
        return type(frame[2]) is str and type(frame[3]) is str and type(frame[5]) is bool
    return frame[0] != _REPLY or type(frame[2]) is bool


class _Connection:
    """Our side of one connection to a peer: writes requests, matches replies to their futures."""

    def __init__(self, rpc: Rpc, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.rpc, self.writer = rpc, writer
        self.pending: dict[int, asyncio.Future] = {}
        self.receipts: dict[int, asyncio.Future] = {}
        self.closed = False
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                opened = self.rpc._open(await _read_frame(reader, self.rpc.max_frame))
                if opened is None:
                    continue
                frame = opened[1]
                kind, rid = frame[0], frame[1]
                if kind == _RECEIPT:
                    receipt = self.receipts.pop(rid, None)
                    if receipt is not None and not receipt.done():
                        receipt.set_result(None)
                    continue
                fut = self.pending.pop(rid, None)
                if kind == _REPLY and fut is not None and not fut.done():
                    ok, value, took = frame[2], frame[3], frame[4] if len(frame) > 4 else 0.0
                    if ok:
                        fut.set_result((value, took if type(took) in (int, float) else 0.0))
                    else:
                        fut.set_exception(RemoteError(value))
        except (asyncio.IncompleteReadError, OSError, ValueError):
            pass
        finally:
            self.close()

    def send(self, frame: bytes) -> None:
        self.writer.write(frame)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.writer.close()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(Indeterminate("connection lost before the reply"))
        self.pending.clear()


async def _read_frame(reader: asyncio.StreamReader, max_frame: int) -> bytes:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > max_frame:
        raise ValueError(f"frame of {size} bytes is over the limit")
    return await reader.readexactly(size)


class Rpc:
    """Both ends: `register` handlers, `start` listening, `call` peers. `stats` counts traffic."""

    def __init__(self, name: str, keyring: Keyring | None = None, faults: Faults | None = None,
                 max_frame: int = 64 << 20):
        self.name, self.keyring, self.max_frame = name, keyring, max_frame
        self.faults = faults or Faults()
        self.handlers: dict[str, Handler] = {}
        self.version = PROTOCOL_MIN
        """The protocol version requests go in (the node keeps it at the one membership negotiated)."""
        self.stats = {"calls": 0, "failed": 0, "served": 0, "dropped": 0, "dropped_version": 0}
        """Frames dropped, all reasons (garbage, foreign key, isolated sender) and, of those, the ones
        of a protocol version this node does not decode."""
        self._rtt: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._conns: dict[Address, _Connection] = {}
        self._connecting: dict[Address, asyncio.Future] = {}
        self._server: asyncio.Server | None = None
        self._serving: set[asyncio.Task] = set()
        self._server_writers: set[asyncio.StreamWriter] = set()

    def register(self, method: str, handler: Handler) -> None:
        self.handlers[method] = handler

    # ---- wire ------------------------------------------------------------------------------------
    def _seal(self, frame: list, version: int) -> bytes:
        """`frame` as it goes on the stream: length, then the (sealed) body."""
        data = encode_frame(frame, version)
        body = self.keyring.seal(data) if self.keyring else data
        return _HEADER.pack(len(body)) + body

    def _open(self, body: bytes) -> tuple[int, list] | None:
        """(version, frame) of `body`; None for a frame of a later protocol version (dropped: the
        stream goes on). Raises BadFrame for anything else that is not a frame of ours."""
        try:
            if self.keyring is not None:
                body = self.keyring.open(body)
            return decode_frame(body)
        except AuthError:
            self.stats["dropped"] += 1
            raise BadFrame("auth") from None
        except BadFrame as e:
            self.stats["dropped"] += 1
            if e.reason != "version":
                raise
            self.stats["dropped_version"] += 1
            return None

    # ---- client ----------------------------------------------------------------------------------
    async def call(self, peer: str, addr: Address, method: str, payload: Any, timeout: float,
                   receipt_within: float | None = None) -> Any:
        """Call `method` on `peer` at `addr`; raises Unreachable, Indeterminate or RemoteError.
        With `receipt_within`, a peer that does not confirm the request's arrival by then makes it
        Indeterminate at once, whatever `timeout` allows the call itself."""
        self.stats["calls"] += 1
        if self.faults.blocks(peer):
            self.faults.dropped += 1
            self.stats["failed"] += 1
            raise Unreachable(f"{peer}: isolated by an injected fault")
        try:
            async with asyncio.timeout(timeout):
                lag = self.faults.lag()
                if lag:
                    await asyncio.sleep(lag)
                conn = await self._connection(peer, addr)
                rid = next(self._ids)
                fut = asyncio.get_running_loop().create_future()
                conn.pending[rid] = fut
                try:
                    sent = time.perf_counter()
                    conn.send(self._seal([_REQUEST, rid, self.name, method, payload, receipt_within is not None],
                                         self.version))
                    if receipt_within is not None:
                        arrived = conn.receipts[rid] = asyncio.get_running_loop().create_future()
                        try:
                            await asyncio.wait_for(asyncio.shield(arrived), receipt_within)
                        except TimeoutError:
                            raise Indeterminate(f"{peer}: no receipt for {method} within "
                                                f"{receipt_within:g}s") from None
                    value, took = await fut
                    self._observe(peer, time.perf_counter() - sent - took)
                    return value
                finally:
                    conn.pending.pop(rid, None)
                    conn.receipts.pop(rid, None)
        except TimeoutError:
            self.stats["failed"] += 1
            raise Indeterminate(f"{peer}: no answer to {method} within {timeout:g}s") from None
        except RpcError:
            self.stats["failed"] += 1
            raise

    def rtt(self, peer: str) -> float | None:
        """The moving average of round trips to `peer` in seconds, its handlers' time left out (None:
        no call to it answered yet)."""
        return self._rtt.get(peer)

    def _observe(self, peer: str, seconds: float) -> None:
        seconds = max(0.0, seconds)
        old = self._rtt.get(peer)
        self._rtt[peer] = seconds if old is None else old + RTT_WEIGHT * (seconds - old)

    async def _connection(self, peer: str, addr: Address) -> _Connection:
        conn = self._conns.get(addr)
        if conn is not None and not conn.closed:
            return conn
        waiting = self._connecting.get(addr)
        if waiting is None:  # one connect per peer, however many calls wait for it
            waiting = self._connecting[addr] = asyncio.ensure_future(self._connect(peer, addr))
            waiting.add_done_callback(lambda _: self._connecting.pop(addr, None))
        return await asyncio.shield(waiting)

    async def _connect(self, peer: str, addr: Address) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(addr[0], addr[1])
        except OSError as e:
            raise Unreachable(f"{peer} at {addr[0]}:{addr[1]}: {e.strerror or e}") from None
        conn = self._conns[addr] = _Connection(self, reader, writer)
        return conn

    def disconnect(self, addr: Address) -> None:
        """Drop our connection to `addr` (its pending calls become Indeterminate)."""
        conn = self._conns.pop(addr, None)
        if conn is not None:
            conn.close()

    # ---- server ----------------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._server_writers.add(writer)
        try:
            while True:
                try:
                    opened = self._open(await _read_frame(reader, self.max_frame))
                except BadFrame:
                    return  # not one of us (or garbage): hang up
                if opened is None:
                    continue
                version, frame = opened
                if frame[0] != _REQUEST or self.faults.blocks(frame[2]):
                    self.stats["dropped"] += 1
                    continue
                _, rid, sender, method, payload, wants_receipt = frame
                if wants_receipt:
                    writer.write(self._seal([_RECEIPT, rid, True, None], version))
                task = asyncio.get_running_loop().create_task(
                    self._answer(writer, version, rid, sender, method, payload))
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)
        except (asyncio.IncompleteReadError, OSError, ValueError):
            pass
        finally:
            self._server_writers.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, version: int, rid: int, sender: str, method: str,
                      payload: Any) -> None:
        """Run the handler and reply, in the request's protocol `version`."""
        handler = self.handlers.get(method)
        self.stats["served"] += 1
        started = time.perf_counter()
        try:
            if handler is None:
                raise RemoteError(f"unknown method {method!r}")
            reply = [_REPLY, rid, True, await handler(sender, payload), time.perf_counter() - started]
        except asyncio.CancelledError:
            raise
        except (RemoteError, ValueError, KeyError, TypeError) as e:
            reply = [_REPLY, rid, False, f"{type(e).__name__}: {e}"]
        except Exception as e:  # a request never takes the daemon down
            log.exception("rpc %s from %s failed", method, sender)
            reply = [_REPLY, rid, False, f"internal error: {type(e).__name__}"]
        if not writer.is_closing():
            writer.write(self._seal(reply, version))

    async def close(self) -> None:
        for conn in list(self._conns.values()):
            conn.close()
        self._conns.clear()
        if self._server is not None:
            self._server.close()
            for writer in list(self._server_writers):
                writer.close()
            for task in list(self._serving):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
