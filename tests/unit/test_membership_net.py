"""Real sockets: Membership over UDP + TCP on loopback, in one process."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

import pytest

from taskmaster.membership import JoinError, Membership, MembershipConfig
from taskmaster.transport import NetTransport

KEY = os.urandom(32)
FAST = MembershipConfig.local(probe_interval=0.2, probe_timeout=0.05, gossip_interval=0.05,
                              push_pull_interval=2.0, reconnect_interval=1.0, tcp_timeout=1.0,
                              join_retries=1, join_backoff=0.1, keyring=[KEY])


async def wait_until(condition, timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def states(m: Membership) -> dict[str, str]:
    return {x.name: x.state for x in m.members()}


@pytest.fixture
async def nodes():
    started: list[Membership] = []

    async def make(n: int, config: MembershipConfig = FAST) -> list[Membership]:
        for i in range(n):
            m = Membership(config, NetTransport("127.0.0.1", 0), name=f"node{len(started)}",
                           meta={"http": f"127.0.0.1:{7000 + i}"})
            await m.start()
            if started:
                assert await m.join([started[0].transport.local_addr]) == 1
            started.append(m)
        return started
    yield make
    for m in started:
        await m.stop()


async def test_converge_detect_a_crash_and_a_leave(nodes):
    ms = await nodes(5)
    names = {m.name for m in ms}
    await wait_until(lambda: all(states(m) == dict.fromkeys(names, "alive") for m in ms), 10)
    assert {x.name: x.meta for x in ms[4].members()}["node0"] == {"http": "127.0.0.1:7000"}
    assert all(m.transport.local_addr[1] > 0 for m in ms)

    await ms[3].stop()  # abrupt: sockets closed, nothing announced
    took = await wait_until(lambda: all(states(m)["node3"] == "dead" for m in ms[:3] + ms[4:]), 15)
    assert took < 10

    assert await ms[4].leave(timeout=2) is True
    await ms[4].stop()
    await wait_until(lambda: all(states(m)["node4"] == "left" for m in ms[:3]), 5)
    snap = ms[0].metrics_snapshot()
    assert snap["members"] == {"alive": 3, "suspect": 0, "dead": 1, "left": 1}
    assert snap["packets_sent"] > 0 and snap["bytes_received"] > 0 and snap["probes_sent"] > 0
    assert sum(snap["packets_dropped"].values()) == 0


async def test_wrong_key_is_refused_with_a_reason(nodes):
    ms = await nodes(2)
    outsider = Membership(MembershipConfig.local(keyring=[os.urandom(32)], join_retries=1, join_backoff=0.1),
                          NetTransport("127.0.0.1", 0), name="outsider", meta={})
    await outsider.start()
    try:
        with pytest.raises(JoinError, match="cluster keys differ"):
            await outsider.join([ms[0].transport.local_addr])
    finally:
        await outsider.stop()
    assert ms[0].metrics_snapshot()["packets_dropped"]["auth"] >= 2
    assert "outsider" not in states(ms[0])


async def test_garbage_on_both_sockets_is_counted_and_harmless(nodes):
    (m,) = await nodes(1)
    host, port = m.transport.local_addr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"\x01garbage", (host, port))
        udp.sendto(b"x" * 2000, (host, port))
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(struct.pack(">I", 1 << 30))  # a frame far over the limit
    await writer.drain()
    assert await reader.read() == b""  # closed on us
    writer.close()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(struct.pack(">I", 100) + b"abc")  # then hang up mid-frame
    writer.close()
    dropped = lambda: m.metrics_snapshot()["packets_dropped"]  # noqa: E731
    await wait_until(lambda: dropped()["unencrypted"] >= 1 and dropped()["oversized"] >= 2
                     and dropped()["truncated"] >= 1, 5)
    assert states(m) == {"node0": "alive"}


async def test_binding_every_interface_needs_an_advertised_address():
    with pytest.raises(ValueError, match="advertise"):
        NetTransport("0.0.0.0", 0)
    t = NetTransport("0.0.0.0", 0, advertise=("127.0.0.1", 1))
    assert t.advertise == ("127.0.0.1", 1)
