"""Hostile input never escapes the decoder: it is a valid message or a counted drop."""

from __future__ import annotations

import asyncio
import os
import random

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from taskmaster.membership import Membership, MembershipConfig, messages
from taskmaster.membership.messages import Codec, Dropped
from taskmaster.transport.auth import Keyring
from taskmaster.transport.memory import SimNetwork
from taskmaster.transport.virtual_time import VirtualTimeLoop

KEY = os.urandom(32)
CODECS = [Codec(None, 1400, 1 << 16), Codec(Keyring([KEY]), 1400, 1 << 16)]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 64), (1 << 64) - 1), st.floats(),
                    st.text(max_size=20), st.binary(max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                      max_leaves=20)


def decode_or_drop(codec: Codec, data: bytes) -> None:
    for decode in (codec.decode_packet, codec.decode_frame):
        try:
            msgs = decode(data)
        except Dropped as e:
            assert e.reason in ("auth", "unencrypted", "encrypted", "truncated", "oversized", "version",
                                "malformed")
        else:
            assert isinstance(msgs, list) and msgs and all(isinstance(m, list) for m in msgs)


@given(data=st.binary(max_size=2000))
def test_random_bytes_never_raise(data):
    for codec in CODECS:
        decode_or_drop(codec, data)
        decode_or_drop(codec, bytes([messages.PROTOCOL_MIN]) + data)


@given(value=VALUES)
def test_any_msgpack_value_is_a_valid_message_or_malformed(value):
    try:
        body = msgpack.packb(value)
    except (TypeError, ValueError, OverflowError):
        return
    decode_or_drop(CODECS[0], bytes([messages.PROTOCOL_MIN]) + body)
    decode_or_drop(CODECS[0], bytes([messages.PROTOCOL_MIN]) + msgpack.packb([value]))


@given(position=st.integers(0, 10_000), flip=st.integers(1, 255), cut=st.integers(0, 400))
def test_corrupted_or_cut_real_packets_never_raise(position, flip, cut):
    for codec in CODECS:
        packet = bytearray(codec.encode([messages.alive(3, "n1", ("10.0.0.1", 7946), {"a": [1, 2]}),
                                         messages.ping(9, "n2")]))
        packet[position % len(packet)] ^= flip
        decode_or_drop(codec, bytes(packet))
        decode_or_drop(codec, bytes(packet[:cut]))


@given(packets=st.lists(st.binary(max_size=1500), min_size=1, max_size=20))
def test_a_member_counts_every_garbage_packet_and_keeps_working(packets):
    loop = VirtualTimeLoop()
    net = SimNetwork(loop, random.Random(0))
    m = Membership(MembershipConfig.local(), net.transport(("10.0.0.1", 7946)), name="n0", meta={}, clock=loop)
    try:
        loop.run_until_complete(m.start())
        for data in packets:
            try:
                m.codec.decode_packet(data)
                garbage = False  # (random bytes that happen to be valid messages are handled)
            except Dropped:
                garbage = True
            before = sum(m.stats.dropped.values())
            m._on_packet(data, ("10.6.6.6", 7946))
            reply = m._on_stream(data, ("10.6.6.6", 7946))
            assert sum(m.stats.dropped.values()) >= before + garbage
            assert reply is None or isinstance(reply, bytes)
        loop.run_until_complete(asyncio.sleep(2))
        assert [x.state for x in m.members()] == ["alive"]
    finally:
        loop.run_until_complete(m.stop())
        loop.close()
