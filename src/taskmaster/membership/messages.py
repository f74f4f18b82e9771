"""The gossip wire format: msgpack messages in versioned, optionally sealed envelopes.

A packet (UDP datagram) or a frame (one TCP request or reply) is

    PROTOCOL_VERSION (1 byte) | msgpack array of messages

sealed whole by the keyring when the cluster has a key (transport/auth.py). A message is a msgpack
array whose first item is its type. Several messages travel in one packet (compound packets, as
memberlist piggybacks gossip on pings and acks), and a packet never exceeds `packet_size` bytes on
the wire. Broadcast messages are encoded once, when queued, and copied into packets as bytes.

Decoding trusts nothing: anything that is not exactly a known message raises `Dropped(reason)`,
which the caller counts. It never raises anything else, whatever the bytes.
"""

from __future__ import annotations

import struct

import msgpack

from taskmaster.transport.auth import ENCRYPTED, OVERHEAD, AuthError, Keyring

PROTOCOL_VERSION = 1
REJECTED = 0xEE
"""First byte of a plaintext stream reply saying why a request was refused (e.g. wrong key); it is
unauthenticated on purpose, since the peer could not read a sealed one."""

# Message types. Field order is the wire order.
PING = 0        # seq, target name
ACK = 1         # seq
NACK = 2        # seq (Lifeguard: "I asked, the target did not answer")
PING_REQ = 3    # seq, target name, target host, target port, want nack
SUSPECT = 4     # incarnation, node, from
ALIVE = 5       # incarnation, node, host, port, meta
DEAD = 6        # incarnation, node, from (from == node: a graceful leave)
PUSH_PULL = 7   # names, hosts, ports, metas, incarnations, state codes: one list per column

STATE_CODES = ("alive", "suspect", "dead", "left")
MAX_NAME = 128
_U64 = 1 << 64
_ARRAY_HEADER_MAX = 5
_pack = msgpack.Packer(use_bin_type=True).pack


class Dropped(Exception):
    """Input that is not a valid message; `reason` is the metric label."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Rejected(Exception):
    """The peer refused our stream request and said why."""


def ping(seq: int, target: str) -> bytes:
    return _pack((PING, seq, target))


def ack(seq: int) -> bytes:
    return _pack((ACK, seq))


def nack(seq: int) -> bytes:
    return _pack((NACK, seq))


def ping_req(seq: int, target: str, addr: tuple[str, int], want_nack: bool) -> bytes:
    return _pack((PING_REQ, seq, target, addr[0], addr[1], want_nack))


def suspect(incarnation: int, node: str, sender: str) -> bytes:
    return _pack((SUSPECT, incarnation, node, sender))


def alive(incarnation: int, node: str, addr: tuple[str, int], meta: dict) -> bytes:
    return _pack((ALIVE, incarnation, node, addr[0], addr[1], meta))


def dead(incarnation: int, node: str, sender: str) -> bytes:
    return _pack((DEAD, incarnation, node, sender))


def push_pull(columns: tuple[list, list, list, list, list, list]) -> bytes:
    """Every member, column by column (compact, and checked at C speed when received)."""
    return _pack((PUSH_PULL, *columns))


def encoded_size(meta: dict) -> int:
    return len(_pack(meta))


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def _name(v) -> bool:
    return type(v) is str and 0 < len(v) <= MAX_NAME


def _uint(v) -> bool:
    return type(v) is int and 0 <= v < _U64


def _port(v) -> bool:
    return type(v) is int and 0 < v < 65536


# One exact-shape check per message type: field count, types, ranges (`type(x) is int` also
# refuses booleans).
def _seq_only(m: list) -> bool:
    return len(m) == 2 and _uint(m[1])


def _ping(m: list) -> bool:
    return len(m) == 3 and _uint(m[1]) and _name(m[2])


def _ping_req(m: list) -> bool:
    return (len(m) == 6 and _uint(m[1]) and _name(m[2]) and type(m[3]) is str and _port(m[4])
            and type(m[5]) is bool)


def _accusation(m: list) -> bool:
    return len(m) == 4 and _uint(m[1]) and _name(m[2]) and _name(m[3])


def _alive(m: list) -> bool:
    return (len(m) == 6 and _uint(m[1]) and _name(m[2]) and type(m[3]) is str and _port(m[4])
            and type(m[5]) is dict)


def _all(values: list, kind: type) -> bool:
    return set(map(type, values)) == {kind}


def _push_pull(m: list) -> bool:
    if len(m) != 7 or any(type(c) is not list for c in m[1:]):
        return False
    _, names, hosts, ports, metas, incarnations, codes = m
    n = len(names)
    if any(len(c) != n for c in m[2:]):
        return False
    return n == 0 or (
        _all(names, str) and _all(hosts, str) and _all(ports, int) and _all(metas, dict)
        and _all(incarnations, int) and _all(codes, int)
        and min(map(len, names)) > 0 and max(map(len, names)) <= MAX_NAME
        and min(ports) > 0 and max(ports) < 65536 and min(incarnations) >= 0 and max(incarnations) < _U64
        and min(codes) >= 0 and max(codes) < len(STATE_CODES))


_CHECKS = {PING: _ping, ACK: _seq_only, NACK: _seq_only, PING_REQ: _ping_req, SUSPECT: _accusation,
           ALIVE: _alive, DEAD: _accusation, PUSH_PULL: _push_pull}


def _valid(m) -> bool:
    if type(m) is not list or not m or type(m[0]) is not int:
        return False
    check = _CHECKS.get(m[0])
    return check is not None and check(m)


class Codec:
    """Packs messages into envelopes and unpacks them, sealing with the keyring if there is one."""

    def __init__(self, keyring: Keyring | None, packet_size: int, max_frame: int):
        self.keyring = keyring
        self.packet_size = packet_size
        self.max_frame = max_frame
        self.overhead = 1 + _ARRAY_HEADER_MAX + (OVERHEAD if keyring else 0)
        """Envelope bytes around the messages of a packet: what is left is for messages."""

    def encode(self, parts: list[bytes]) -> bytes:
        """One envelope holding the already-encoded messages `parts`."""
        plain = bytes((PROTOCOL_VERSION,)) + _array_header(len(parts)) + b"".join(parts)
        return self.keyring.seal(plain) if self.keyring else plain

    def decode_packet(self, data: bytes) -> list[list]:
        if len(data) > self.packet_size:
            raise Dropped("oversized")
        return self._decode(data)

    def decode_frame(self, data: bytes) -> list[list]:
        if len(data) > self.max_frame:
            raise Dropped("oversized")
        return self._decode(data)

    def decode_reply(self, data: bytes) -> list[list]:
        """A stream reply: like a frame, but the peer may have refused us in plaintext."""
        if data[:1] == bytes((REJECTED,)):
            raise Rejected(data[1:200].decode("utf-8", "replace"))
        return self.decode_frame(data)

    @staticmethod
    def reject(reason: str) -> bytes:
        return bytes((REJECTED,)) + reason.encode()

    def _decode(self, data: bytes) -> list[list]:
        if not data:
            raise Dropped("truncated")
        if self.keyring is not None:
            if data[0] != ENCRYPTED:
                raise Dropped("unencrypted")
            try:
                data = self.keyring.open(data)
            except AuthError as e:
                raise Dropped(e.reason) from None
        elif data[0] == ENCRYPTED:
            raise Dropped("encrypted")
        if len(data) < 2:
            raise Dropped("truncated")
        if data[0] != PROTOCOL_VERSION:
            raise Dropped("version")
        try:
            msgs = msgpack.unpackb(memoryview(data)[1:], raw=False)
        except ValueError as e:
            raise Dropped("truncated" if "incomplete" in str(e) else "malformed") from None
        except Exception:  # the trust boundary: whatever msgpack raises on hostile bytes is a drop
            raise Dropped("malformed") from None
        if type(msgs) is not list or not msgs or not all(_valid(m) for m in msgs):
            raise Dropped("malformed")
        return msgs
