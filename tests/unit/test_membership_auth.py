"""Cluster keys: AES-GCM on every packet and frame, keyring rotation, wrong keys kept out."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import replace

import pytest

from taskmaster.membership import JoinError, MembershipConfig, messages
from taskmaster.membership.sim_cluster import SimCluster
from taskmaster.transport.auth import AuthError, Keyring, decode_key

K1, K2, K3 = os.urandom(32), os.urandom(32), os.urandom(32)
FAST_FAIL = dict(join_retries=1, join_backoff=0.1)


def test_seal_and_open_with_any_installed_key():
    sender, receiver = Keyring([K2, K1]), Keyring([K1, K2])
    assert receiver.open(sender.seal(b"hello")) == b"hello"
    assert sender.seal(b"hello") != sender.seal(b"hello")  # a fresh nonce every time
    with pytest.raises(AuthError) as e:
        Keyring([K3]).open(sender.seal(b"hello"))
    assert e.value.reason == "auth"
    with pytest.raises(AuthError) as e:
        receiver.open(sender.seal(b"hello")[:10])
    assert e.value.reason == "truncated"


def test_rotation_api():
    ring = Keyring([K1])
    ring.install(K2)
    assert ring.keys == [K1, K2]
    ring.use(K2)
    assert ring.keys == [K2, K1]
    with pytest.raises(ValueError, match="primary"):
        ring.remove(K2)
    ring.remove(K1)
    assert ring.keys == [K2]
    with pytest.raises(ValueError, match="32 bytes"):
        ring.install(b"short")
    with pytest.raises(ValueError):
        ring.use(K3)  # not installed
    with pytest.raises(ValueError, match="32 bytes"):
        MembershipConfig.lan(keyring=[b"x" * 16])


def test_cluster_keys_are_base64_of_32_bytes():
    assert decode_key(base64.b64encode(K1).decode() + "\n") == K1
    with pytest.raises(ValueError, match="base64"):
        decode_key("not base64!")
    with pytest.raises(ValueError, match="to 16"):
        decode_key(base64.b64encode(K1[:16]).decode())


@pytest.fixture
def cluster():
    c = SimCluster(MembershipConfig.local(keyring=[K1], **FAST_FAIL), seed=1)
    yield c
    c.close()


def test_wrong_key_cannot_join_and_is_told_why(cluster):
    c = cluster

    async def scenario():
        for _ in range(3):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        outsider = await c.add("outsider", config=replace(c.config, keyring=(K2,)), join=False)
        with pytest.raises(JoinError, match="cluster keys differ"):
            await outsider.join([c.addr(0)])
        plain = await c.add("plain", config=replace(c.config, keyring=()), join=False)
        with pytest.raises(JoinError, match="requires a cluster key"):
            await plain.join([c.addr(0)])
        await asyncio.sleep(5)
        assert sorted(c.states("n0")) == ["n0", "n1", "n2"]
        dropped = c.nodes["n0"].metrics_snapshot()["packets_dropped"]
        assert dropped["auth"] >= 2 and dropped["unencrypted"] >= 2
        assert outsider.members()[0].name == "outsider" and len(outsider.members()) == 1
    c.run(scenario())


def test_keyed_member_cannot_join_a_cluster_without_a_key():
    c = SimCluster(MembershipConfig.local(**FAST_FAIL), seed=2)

    async def scenario():
        await c.add()
        keyed = await c.add("keyed", config=replace(c.config, keyring=(K1,)), join=False)
        with pytest.raises(JoinError, match="has no cluster key"):
            await keyed.join([c.addr(0)])
        assert c.nodes["n0"].metrics_snapshot()["packets_dropped"]["encrypted"] >= 2
    try:
        c.run(scenario())
    finally:
        c.close()


def test_forged_packets_are_dropped_and_counted(cluster):
    c = cluster

    async def scenario():
        n0 = await c.add()
        forged = Keyring([K2]).seal(bytes([messages.PROTOCOL_MIN]) + b"\x91\x92\x01\x05")
        n0._on_packet(forged, ("10.6.6.6", 7946))
        n0._on_packet(b"\x01\x91\x92\x01\x05", ("10.6.6.6", 7946))
        dropped = n0.metrics_snapshot()["packets_dropped"]
        assert (dropped["auth"], dropped["unencrypted"]) == (1, 1)
    c.run(scenario())


def test_keyring_rotation_on_a_live_cluster_drops_nothing(cluster):
    c = cluster

    async def scenario():
        for _ in range(4):
            await c.add()
        await c.wait_for(c.converged, timeout=20)
        steps = [lambda m: m.keyring.install(K2), lambda m: m.keyring.use(K2), lambda m: m.keyring.remove(K1)]
        for step in steps:
            for m in c.nodes.values():  # one member at a time, some time apart
                step(m)
                await asyncio.sleep(2)
        await asyncio.sleep(10)
        assert c.converged()
        assert all(m.keyring.keys == [K2] for m in c.nodes.values())
        assert sum(m.metrics_snapshot()["packets_dropped"]["auth"] for m in c.nodes.values()) == 0
        assert not [m for _, _, m in c.changes if m.state in ("suspect", "dead")]
        old = await c.add("old-key", config=replace(c.config, keyring=(K1,)), join=False)
        with pytest.raises(JoinError, match="cluster keys differ"):
            await old.join([c.addr(0)])
    c.run(scenario())
