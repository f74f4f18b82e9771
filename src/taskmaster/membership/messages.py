"""The gossip wire format: msgpack messages in versioned, optionally sealed envelopes.

A packet (UDP datagram) or a frame (one TCP request or reply) is

    protocol version (1 byte) | msgpack array of messages

sealed whole by the keyring when the cluster has a key (transport/auth.py). A message is a msgpack
array whose first item is its type. Several messages travel in one packet (compound packets, as
memberlist piggybacks gossip on pings and acks), and a packet never exceeds `packet_size` bytes on
the wire. Broadcast messages are encoded once, when queued, and copied into packets as bytes.

Protocol versions (one number for gossip, RPC frames and the payloads they carry; cluster/rpc.py):
  1  the first release: exact message shapes (a message with one field more is malformed).
  2  the same messages and fields. A receiver ignores fields after the ones it knows and message
     types it does not know, so a later version can add those without a flag day; an RPC frame
     starts with its version byte (a version 1 frame has none).
A node decodes every version from PROTOCOL_MIN to PROTOCOL_MAX; anything newer is dropped and
counted ("version"). It advertises its range in its member metadata (`"proto": [min, max]`; a
member without it is a version 1 node) and sends the highest version every live member decodes
(`Negotiation`); an answer goes back in the version of what it answers. A change that an older
node would misread (a field changing meaning, a message it must not ignore) needs a new version.

Decoding trusts nothing: anything that is not a valid message of a version it decodes raises
`Dropped(reason)`, which the caller counts. It never raises anything else, whatever the bytes.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter

import msgpack

from taskmaster.transport.auth import ENCRYPTED, OVERHEAD, AuthError, Keyring

log = logging.getLogger("taskmaster.membership")

PROTOCOL_MIN = 1
"""The oldest protocol version this node decodes and speaks."""
PROTOCOL_MAX = 2
"""The newest: what it speaks once every live member decodes it."""
PROTO_META = "proto"
"""Member-metadata key of the [min, max] protocol range a node speaks."""
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


# One check per message type of its known fields: types and ranges (`type(x) is int` also refuses
# booleans). `_FIELDS` holds each type's field count, the type included.
def _seq_only(m: list) -> bool:
    return _uint(m[1])


def _ping(m: list) -> bool:
    return _uint(m[1]) and _name(m[2])


def _ping_req(m: list) -> bool:
    return _uint(m[1]) and _name(m[2]) and type(m[3]) is str and _port(m[4]) and type(m[5]) is bool


def _accusation(m: list) -> bool:
    return _uint(m[1]) and _name(m[2]) and _name(m[3])


def _alive(m: list) -> bool:
    return _uint(m[1]) and _name(m[2]) and type(m[3]) is str and _port(m[4]) and type(m[5]) is dict


def _all(values: list, kind: type) -> bool:
    return set(map(type, values)) == {kind}


def _push_pull(m: list) -> bool:
    if any(type(c) is not list for c in m[1:]):
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
_FIELDS = {PING: 3, ACK: 2, NACK: 2, PING_REQ: 6, SUSPECT: 4, ALIVE: 6, DEAD: 4, PUSH_PULL: 7}


def _known(m, version: int) -> list | None:
    """`m` cut to the fields this node knows; None for a later version's message type (skipped).
    Raises Dropped for anything else."""
    if type(m) is not list or not m or type(m[0]) is not int:
        raise Dropped("malformed")
    n = _FIELDS.get(m[0])
    if n is None:
        if version == 1:
            raise Dropped("malformed")
        return None
    if len(m) != n:
        if version == 1 or len(m) < n:
            raise Dropped("malformed")
        m = m[:n]
    if not _CHECKS[m[0]](m):
        raise Dropped("malformed")
    return m


class Packet(list):
    """Decoded messages, and the protocol version they came in (an answer goes back in it)."""

    __slots__ = ("version",)

    def __init__(self, messages: list, version: int):
        super().__init__(messages)
        self.version = version


def advertised(meta: dict) -> tuple[int, int]:
    """The protocol range a member's metadata advertises; (1, 1) without one (a version 1 node)."""
    r = meta.get(PROTO_META)
    if type(r) is list and len(r) >= 2 and type(r[0]) is int and type(r[1]) is int and 1 <= r[0] <= r[1]:
        return r[0], r[1]
    return 1, 1


class Negotiation:
    """The version to send: the highest that every live member decodes (the least of their maxima),
    kept up to date one member change at a time (this node's own changes included). With no other
    live member, PROTOCOL_MIN: a join request or a reconnect then reaches whatever the other side runs."""

    def __init__(self) -> None:
        self._max: dict[str, int] = {}
        self._count: Counter[int] = Counter()
        self.version = PROTOCOL_MIN

    def update(self, name: str, live: bool, meta: dict) -> None:
        """Member `name` is now live (alive or suspect) or not, with metadata `meta`."""
        old = self._max.pop(name, None)
        if old is not None:
            self._count[old] -= 1
            if not self._count[old]:
                del self._count[old]
        if live:
            low, high = advertised(meta)
            if high < PROTOCOL_MIN or low > PROTOCOL_MAX:
                log.warning("member %s speaks protocol %d..%d and this node %d..%d: they cannot talk",
                            name, low, high, PROTOCOL_MIN, PROTOCOL_MAX)
            self._max[name] = high
            self._count[high] += 1
        lowest = min(self._count) if len(self._max) > 1 else PROTOCOL_MIN
        self.version = max(PROTOCOL_MIN, min(PROTOCOL_MAX, lowest))


class Codec:
    """Packs messages into envelopes and unpacks them, sealing with the keyring if there is one."""

    def __init__(self, keyring: Keyring | None, packet_size: int, max_frame: int, version: int = PROTOCOL_MIN):
        self.keyring = keyring
        self.packet_size = packet_size
        self.max_frame = max_frame
        self.version = version
        """What `encode` writes unless told otherwise (Membership keeps it at the negotiated version)."""
        self.overhead = 1 + _ARRAY_HEADER_MAX + (OVERHEAD if keyring else 0)
        """Envelope bytes around the messages of a packet: what is left is for messages."""

    def encode(self, parts: list[bytes], version: int | None = None) -> bytes:
        """One envelope holding the already-encoded messages `parts` (every version lays them out
        alike, so only the version byte differs)."""
        plain = bytes((version or self.version,)) + _array_header(len(parts)) + b"".join(parts)
        return self.keyring.seal(plain) if self.keyring else plain

    def decode_packet(self, data: bytes) -> Packet:
        if len(data) > self.packet_size:
            raise Dropped("oversized")
        return self._decode(data)

    def decode_frame(self, data: bytes) -> Packet:
        if len(data) > self.max_frame:
            raise Dropped("oversized")
        return self._decode(data)

    def decode_reply(self, data: bytes) -> Packet:
        """A stream reply: like a frame, but the peer may have refused us in plaintext."""
        if data[:1] == bytes((REJECTED,)):
            raise Rejected(data[1:200].decode("utf-8", "replace"))
        return self.decode_frame(data)

    @staticmethod
    def reject(reason: str) -> bytes:
        return bytes((REJECTED,)) + reason.encode()

    def _decode(self, data: bytes) -> Packet:
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
        version = data[0]
        if not PROTOCOL_MIN <= version <= PROTOCOL_MAX:
            raise Dropped("version")
        try:
            msgs = msgpack.unpackb(memoryview(data)[1:], raw=False)
        except ValueError as e:
            raise Dropped("truncated" if "incomplete" in str(e) else "malformed") from None
        except Exception:  # the trust boundary: whatever msgpack raises on hostile bytes is a drop
            raise Dropped("malformed") from None
        if type(msgs) is not list or not msgs:
            raise Dropped("malformed")
        known = [m for m in (_known(m, version) for m in msgs) if m is not None]
        if not known:
            raise Dropped("version")  # nothing but message types of a later version
        return Packet(known, version)
