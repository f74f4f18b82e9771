"""The simulator's world: the virtual-time loop and the faulty in-memory network."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from taskmaster.transport.base import TransportError
from taskmaster.transport.memory import SimNetwork
from taskmaster.transport.virtual_time import Stall, StallingClock, VirtualTimeLoop

A, B, C = ("10.0.0.1", 7946), ("10.0.0.2", 7946), ("10.0.0.3", 7946)


@pytest.fixture
def loop():
    lp = VirtualTimeLoop()
    yield lp
    lp.close()


def test_virtual_time_jumps_and_keeps_order(loop):
    fired = []
    for delay, tag in [(3.0, "c"), (1.0, "a"), (3.0, "d"), (2.0, "b")]:
        loop.call_later(delay, fired.append, tag)
    cancelled = loop.call_later(1.5, fired.append, "x")
    cancelled.cancel()
    started = time.monotonic()
    loop.run_until_complete(asyncio.sleep(3600))
    assert time.monotonic() - started < 1  # an hour of virtual time, at once
    assert fired == ["a", "b", "c", "d"] and loop.time() == 3600


def test_asyncio_timeouts_run_on_virtual_time(loop):
    async def scenario():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.create_future(), 5)
        return loop.time()
    assert loop.run_until_complete(scenario()) == 5


def test_waiting_for_what_can_never_happen_is_reported(loop):
    with pytest.raises(RuntimeError, match="nothing left to run"):
        loop.run_until_complete(loop.create_future())


def test_a_failing_callback_is_reported_and_the_loop_goes_on(loop):
    errors = []
    loop.set_exception_handler(lambda _, context: errors.append(context["exception"]))
    loop.call_later(1, lambda: 1 / 0)
    loop.run_until_complete(asyncio.sleep(2))
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)


def endpoints(net: SimNetwork, *addrs):
    got = {addr: [] for addr in addrs}
    for addr in addrs:
        t = net.transport(addr)
        net.loop.run_until_complete(t.start(lambda data, src, a=addr: got[a].append((data, src)),
                                            lambda data, src: b"re:" + data, lambda reason: None))
    return got


def test_loss_rate_and_delay(loop):
    net = SimNetwork(loop, random.Random(1), loss=0.1, delay=0.001, jitter=0.002)
    got = endpoints(net, A, B)
    for i in range(10_000):
        net.send(A, B, b"%d" % i)
    loop.run_until_complete(asyncio.sleep(0.0009))
    assert got[B] == []  # nothing arrives before the base latency
    loop.run_until_complete(asyncio.sleep(0.0021))  # and everything within latency + jitter
    assert 8_800 < len(got[B]) < 9_200 and net.lost == 10_000 - len(got[B])
    assert [d for d, _ in got[B]] != sorted((d for d, _ in got[B]), key=int)  # jitter reorders


def test_duplication(loop):
    net = SimNetwork(loop, random.Random(2), duplicate=0.5)
    got = endpoints(net, A, B)
    for i in range(1000):
        net.send(A, B, b"%d" % i)
    loop.run_until_complete(asyncio.sleep(1))
    assert 1400 < len(got[B]) < 1600


def test_partition_cuts_between_groups_only_and_heals(loop):
    net = SimNetwork(loop, random.Random(3))
    got = endpoints(net, A, B, C)
    net.partition([A], [B])
    for src, dst in [(A, B), (B, A), (A, C), (C, B)]:
        net.send(src, dst, b"x")
    loop.run_until_complete(asyncio.sleep(1))
    assert (len(got[A]), len(got[B]), len(got[C])) == (0, 1, 1)
    net.heal()
    net.send(A, B, b"y")
    loop.run_until_complete(asyncio.sleep(1))
    assert got[B][-1] == (b"y", A)


def test_streams_answer_or_time_out(loop):
    net = SimNetwork(loop, random.Random(4))
    endpoints(net, A, B)

    async def scenario():
        assert await net.request(A, B, b"hi", timeout=1) == b"re:hi"
        net.partition([A], [B])
        started = loop.time()
        with pytest.raises(TransportError, match="timed out"):
            await net.request(A, B, b"hi", timeout=2)
        assert loop.time() - started == pytest.approx(2)
        with pytest.raises(TransportError):
            await net.request(A, C, b"hi", timeout=1)  # nobody there
    loop.run_until_complete(scenario())


def test_a_stalled_node_gets_its_packets_and_timers_late(loop):
    net = SimNetwork(loop, random.Random(5), delay=0.001, jitter=0.0)
    stall = Stall(random.Random(6), pause=0.5, gap=(1.0, 1.0), start=0.0)  # frozen during [1.0, 1.5)
    got = []
    t = net.transport(B, stall)
    loop.run_until_complete(t.start(lambda data, src: got.append(loop.time()), lambda d, s: None,
                                    lambda r: None))
    clock = StallingClock(loop, stall)
    fired = []
    loop.call_at(1.2, net.send, A, B, b"x")
    clock.call_at(1.3, lambda: fired.append(loop.time()))
    clock.call_at(2.0, lambda: fired.append(loop.time()))
    loop.run_until_complete(asyncio.sleep(3))
    assert got == [pytest.approx(1.5)]
    assert fired == [pytest.approx(1.5), pytest.approx(2.0)]
