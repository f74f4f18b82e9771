"""Node-to-node RPC on real loopback sockets (replies, the three kinds of failure, keys, garbage), and
the durable tables replication keeps beside the documents: hints and claim grants."""

from __future__ import annotations

import asyncio
import os
import random
import socket

import pytest

from taskmaster.cluster.faults import Faults
from taskmaster.cluster.rpc import Indeterminate, RemoteError, Rpc, Unreachable
from taskmaster.replication.grants import Grants
from taskmaster.replication.hints import Hints
from taskmaster.storage import Store
from taskmaster.transport.auth import Keyring


async def serving(name: str = "server", keyring: Keyring | None = None) -> tuple[Rpc, tuple[str, int]]:
    rpc = Rpc(name, keyring)

    async def echo(peer, payload):
        return {"peer": peer, "payload": payload}

    async def slow(peer, payload):
        await asyncio.sleep(payload)
        return "late"

    async def broken(peer, payload):
        raise ValueError("no such task")

    async def crash(peer, payload):
        raise RuntimeError("bug")

    for method, handler in (("echo", echo), ("slow", slow), ("broken", broken), ("crash", crash)):
        rpc.register(method, handler)
    port = await rpc.start("127.0.0.1", 0)
    return rpc, ("127.0.0.1", port)


async def test_calls_are_answered_and_multiplexed_on_one_connection():
    server, addr = await serving()
    client = Rpc("client")
    try:
        replies = await asyncio.gather(*(client.call("server", addr, "echo", [i, b"\x00bytes"], 5) for i in range(50)))
        assert [r["payload"] for r in replies] == [[i, b"\x00bytes"] for i in range(50)]
        assert {r["peer"] for r in replies} == {"client"}
        assert len(client._conns) == 1 and server.stats["served"] == 50
    finally:
        await client.close()
        await server.close()


async def test_failures_say_whether_the_request_was_sent():
    server, addr = await serving()
    client = Rpc("client")
    try:
        with pytest.raises(RemoteError, match="no such task"):
            await client.call("server", addr, "broken", None, 5)
        with pytest.raises(RemoteError, match="internal error: RuntimeError"):
            await client.call("server", addr, "crash", None, 5)
        with pytest.raises(RemoteError, match="unknown method"):
            await client.call("server", addr, "nope", None, 5)
        with pytest.raises(Indeterminate, match="no answer"):
            await client.call("server", addr, "slow", 1.0, 0.1)
        assert await client.call("server", addr, "echo", 1, 5), "the connection survives all of that"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()
        with pytest.raises(Unreachable):
            await client.call("ghost", closed, "echo", 1, 5)
        client.faults.isolate(["server"])
        with pytest.raises(Unreachable, match="injected fault"):
            await client.call("server", addr, "echo", 1, 5)
        assert client.faults.dropped == 1
    finally:
        await client.close()
        await server.close()


async def test_a_peer_dying_mid_call_makes_the_call_indeterminate():
    server, addr = await serving()
    client = Rpc("client")
    try:
        pending = asyncio.ensure_future(client.call("server", addr, "slow", 5.0, 10))
        while server.stats["served"] == 0:
            await asyncio.sleep(0.01)
        await server.close()
        with pytest.raises(Indeterminate):
            await pending
    finally:
        await client.close()


async def test_only_holders_of_the_cluster_key_are_served():
    key = Keyring([os.urandom(32)])
    server, addr = await serving(keyring=key)
    try:
        ok = Rpc("member", key)
        assert (await ok.call("server", addr, "echo", "hi", 5))["payload"] == "hi"
        for outsider in (Rpc("outsider"), Rpc("outsider", Keyring([os.urandom(32)]))):
            with pytest.raises(Indeterminate):
                await outsider.call("server", addr, "echo", "hi", 1)
            await outsider.close()
        await ok.close()
        assert server.stats["dropped"] == 2
    finally:
        await server.close()


async def test_garbage_on_the_rpc_port_is_dropped_and_the_server_keeps_serving():
    server, addr = await serving()
    try:
        for junk in (b"\x00\x00\x00\x05hello", b"\xff\xff\xff\xff", b"\x00\x00\x00\x03\x93\x00\x01", b"x"):
            reader, writer = await asyncio.open_connection(*addr)
            writer.write(junk)
            await writer.drain()
            writer.close()
        client = Rpc("client")
        assert (await client.call("server", addr, "echo", 1, 5))["payload"] == 1
        await client.close()
    finally:
        await server.close()


async def test_an_isolated_sender_is_not_served():
    server, addr = await serving()
    server.faults.isolate(["client"])
    client = Rpc("client")
    try:
        with pytest.raises(Indeterminate):
            await client.call("server", addr, "echo", 1, 0.3)
        assert server.stats["dropped"] == 1
    finally:
        await client.close()
        await server.close()


def test_hints_survive_a_reopen_and_clear_when_handed_off(tmp_path):
    store = Store(str(tmp_path / "db"))
    keys = [b"d\x00/p\x00master\x00t" + bytes([i]) for i in range(3)]
    store.write({k: b"doc" for k in keys})
    hints = Hints(store)
    hints.add("n2", keys)
    hints.add("n2", keys[:1])  # already hinted: counted once
    hints.add("n3", keys[1:2])
    assert len(hints) == 4 and sorted(hints.owners()) == ["n2", "n3"]
    store.close()
    store = Store(str(tmp_path / "db"))
    hints = Hints(store)
    assert len(hints) == 4
    batch = hints.batch("n2", 10)
    assert sorted(batch) == [(k, b"doc") for k in keys]
    hints.done("n2", [k for k, _ in batch])
    hints.drop("n3")
    assert len(hints) == 0 and hints.owners() == []
    store.close()
    store = Store(str(tmp_path / "db"))
    assert len(Hints(store)) == 0
    store.close()


def test_faults_name_the_isolated_peers():
    faults = Faults()
    assert not faults.blocks("a")
    faults.isolate(["a", "b"])
    assert faults.blocks("a") and not faults.blocks("c") and not faults.blocks(None)


def test_a_grant_stands_against_other_agents_until_it_expires_is_known_to_have_ended_or_is_released(tmp_path):
    now = [1_000_000.0]
    store = Store(str(tmp_path / "db"))
    grants = Grants(store, clock=lambda: now[0])
    p, until = b"d\x00/p\x00work\x00", "1970-01-12T13:47:00.000Z"  # 1,000,020 s: 20 s from now
    assert grants.grant(p, "5", "alice", until, None)
    assert not grants.grant(p, "5", "bob", "1970-01-12T13:48:00.000Z", None), "alice holds it"
    assert not grants.grant(p, "5", "bob", until, {"agent": "alice", "expiresAt": "1970-01-12T13:46:50.000Z"})
    assert grants.grant(p, "5", "alice", until, None), "the holder renews"
    assert grants.grant(p, "6", "bob", until, None), "other items are free"
    store.close()
    store = Store(str(tmp_path / "db"))  # promises survive a restart
    grants = Grants(store, clock=lambda: now[0])
    assert len(grants) == 2 and not grants.grant(p, "5", "bob", until, None)
    assert grants.grant(p, "5", "bob", until, {"agent": "alice", "expiresAt": until}), \
        "the asker saw alice's lease on the task, and that it ended"
    grants.release(p, "5", "alice", until)  # not alice's any more: nothing happens
    assert not grants.grant(p, "5", "carol", until, None)
    grants.release(p, "5", "bob", until)
    assert grants.grant(p, "5", "carol", until, None)
    later = "1970-01-12T13:47:10.000Z"
    assert grants.grant(p, "5", "carol", later, None)  # a renewal that will not reach a majority...
    grants.release(p, "5", "carol", later)
    assert not grants.grant(p, "5", "erin", until, {"agent": "carol", "expiresAt": later}), \
        "...gives carol back the grant she had: her claim stands"
    assert grants.grant(p, "5", "erin", until, {"agent": "carol", "expiresAt": until})
    now[0] += 21
    assert grants.grant(p, "6", "dave", "1970-01-12T13:48:00.000Z", None), "bob's grant expired"
    store.close()


async def test_a_receipt_tells_a_silent_peer_from_a_slow_handler():
    server, addr = await serving()
    client = Rpc("client")

    async def silent(reader, writer):  # accepts and reads, never answers: a blackholed peer
        await reader.read()

    hole = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        assert await client.call("server", addr, "slow", 0.5, 5, receipt_within=0.2) == "late"
        started = asyncio.get_running_loop().time()
        with pytest.raises(Indeterminate, match="no receipt"):
            await client.call("hole", hole.sockets[0].getsockname(), "echo", 1, 30, receipt_within=0.2)
        assert asyncio.get_running_loop().time() - started < 2, "not the call's own 30 s"
    finally:
        hole.close()
        await client.close()
        await server.close()


def test_injected_loss_and_delay_are_bounded_and_seeded():
    faults = Faults(random.Random(7))
    assert not faults.lost() and faults.lag() == 0.0
    faults.degrade(0.25, 0.1)
    lost = sum(faults.lost() for _ in range(4000))
    assert 800 < lost < 1200 and faults.dropped == lost
    assert all(0.1 <= faults.lag() <= 0.15 for _ in range(100))
    for loss, delay in ((-0.1, 0), (1.5, 0), (0.1, 11)):
        with pytest.raises(ValueError):
            faults.degrade(loss, delay)
    assert (faults.loss, faults.delay) == (0.25, 0.1), "a refused change changes nothing"


async def test_a_delayed_node_delays_its_calls():
    server, addr = await serving()
    client = Rpc("client")
    client.faults.degrade(0.0, 0.2)
    try:
        started = asyncio.get_running_loop().time()
        await client.call("server", addr, "echo", 1, 5)
        assert asyncio.get_running_loop().time() - started >= 0.2
    finally:
        await client.close()
        await server.close()
