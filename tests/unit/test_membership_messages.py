"""The wire format: every message round-trips; anything else is dropped with a reason."""

from __future__ import annotations

import os

import msgpack
import pytest

from taskmaster.membership import messages
from taskmaster.membership.messages import Codec, Dropped, Rejected
from taskmaster.transport.auth import Keyring

PLAIN = Codec(None, 1400, 1 << 20)
KEY = os.urandom(32)
SEALED = Codec(Keyring([KEY]), 1400, 1 << 20)
ADDR = ("10.0.0.7", 7946)


def reason(codec: Codec, data: bytes) -> str:
    with pytest.raises(Dropped) as e:
        codec.decode_packet(data)
    return e.value.reason


@pytest.mark.parametrize("codec", [PLAIN, SEALED], ids=["plain", "sealed"])
def test_every_message_round_trips_in_one_compound_packet(codec):
    parts = [messages.ping(1, "n1"), messages.ack(2), messages.nack(3),
             messages.ping_req(4, "n2", ADDR, True), messages.suspect(5, "n3", "n1"),
             messages.alive(6, "n4", ADDR, {"http": "10.0.0.7:8080", "caps": ["llm"]}),
             messages.dead(7, "n5", "n5")]
    assert codec.decode_packet(codec.encode(parts)) == [
        [messages.PING, 1, "n1"], [messages.ACK, 2], [messages.NACK, 3],
        [messages.PING_REQ, 4, "n2", "10.0.0.7", 7946, True], [messages.SUSPECT, 5, "n3", "n1"],
        [messages.ALIVE, 6, "n4", "10.0.0.7", 7946, {"http": "10.0.0.7:8080", "caps": ["llm"]}],
        [messages.DEAD, 7, "n5", "n5"]]


def test_push_pull_columns_round_trip_in_a_frame():
    columns = (["a", "b"], ["10.0.0.1", "10.0.0.2"], [7946, 7947], [{}, {"x": 1}], [1, 9], [0, 3])
    frame = PLAIN.encode([messages.push_pull(columns)])
    assert PLAIN.decode_frame(frame) == [[messages.PUSH_PULL, *map(list, columns)]]
    assert PLAIN.decode_frame(PLAIN.encode([messages.push_pull(([], [], [], [], [], []))]))


def test_a_full_packet_stays_within_the_size_limit():
    codec = SEALED
    part = messages.alive(1, "n" * 100, ADDR, {"pad": "x" * 400})
    room = codec.packet_size - codec.overhead
    parts = [part] * (room // len(part))
    packet = codec.encode(parts)
    assert len(packet) <= 1400
    assert len(codec.decode_packet(packet)) == len(parts)


def test_drop_reasons():
    ping = [messages.ping(1, "n1")]
    assert reason(PLAIN, b"") == "truncated"
    assert reason(PLAIN, b"\x01") == "truncated"
    assert reason(PLAIN, PLAIN.encode(ping)[:-2]) == "truncated"
    assert reason(PLAIN, bytes([messages.PROTOCOL_MAX + 1]) + PLAIN.encode(ping)[1:]) == "version"
    assert reason(PLAIN, b"\x01" + b"\xc1") == "malformed"  # a byte msgpack never uses
    assert reason(PLAIN, PLAIN.encode(ping) + b"\x00") == "malformed"  # trailing bytes
    assert reason(PLAIN, PLAIN.encode(ping * 300)) == "oversized"
    assert reason(PLAIN, SEALED.encode(ping)) == "encrypted"
    assert reason(SEALED, PLAIN.encode(ping)) == "unencrypted"
    assert reason(SEALED, Codec(Keyring([os.urandom(32)]), 1400, 1400).encode(ping)) == "auth"
    assert reason(SEALED, SEALED.encode(ping)[:20]) == "truncated"
    tampered = bytearray(SEALED.encode(ping))
    tampered[-1] ^= 1
    assert reason(SEALED, bytes(tampered)) == "auth"


@pytest.mark.parametrize("message", [
    [], [99, 1], ["0", 1, "n1"], [messages.PING, True, "n1"], [messages.PING, 1], [messages.PING, 1, ""],
    [messages.PING, 1, "n" * 129], [messages.PING, -1, "n1"], [messages.PING, 1.0, "n1"],
    [messages.ACK, 1, 2], [messages.PING_REQ, 1, "n", "h", 0, True], [messages.PING_REQ, 1, "n", "h", 80, 1],
    [messages.ALIVE, 1, "n", "h", 70000, {}], [messages.ALIVE, 1, "n", "h", 80, []],
    [messages.SUSPECT, 1, "n", 5], [messages.DEAD, 1, "n"],
    [messages.PUSH_PULL, ["a"], ["h"], [80], [{}], [1]],
    [messages.PUSH_PULL, ["a", "b"], ["h"], [80], [{}], [1], [0]],
    [messages.PUSH_PULL, ["a"], ["h"], [80], [{}], [1], [4]],
    [messages.PUSH_PULL, ["a"], ["h"], [True], [{}], [1], [0]],
    [messages.PUSH_PULL, [""], ["h"], [80], [{}], [1], [0]],
], ids=str)
def test_wrong_shapes_are_malformed(message):
    packet = bytes([messages.PROTOCOL_MIN]) + msgpack.packb([message])
    assert reason(Codec(None, 1 << 20, 1 << 20), packet) == "malformed"


def test_a_refusal_is_readable_by_the_requester():
    with pytest.raises(Rejected, match="keys differ"):
        PLAIN.decode_reply(Codec.reject("authentication failed: our cluster keys differ"))
    assert PLAIN.decode_reply(PLAIN.encode([messages.ack(3)])) == [[messages.ACK, 3]]
