"""--cluster-key with real processes: keyed nodes form a cluster; a node with another key, or none,
cannot join, is told why in its log, and the refused frames are counted in /metrics; a malformed key
stops taskmasterd at once with a clear message."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time

import aiohttp
import pytest

from tests.daemon import READY, Daemon
from tests.integration.test_membership_processes import (
    HELP,
    HTTP_TIMEOUT,
    cluster_view,
    daemons,  # noqa: F401 (fixture)
    metric,
    wait_views,
)

pytestmark = pytest.mark.skipif("--cluster-key" not in HELP, reason="taskmasterd has no --cluster-key yet")
DROPPED = "taskmaster_gossip_packets_dropped_total"
REFUSAL_DEADLINE = 30.0  # the join gives up (and node.py logs it) after ~16 s of retries


def new_key(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


async def test_only_nodes_with_the_cluster_key_can_join(daemons):  # noqa: F811
    key = new_key()
    members = daemons(3, "--cluster-key", key)
    seed = members[0]
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        await wait_views(http, members, {d.name: "alive" for d in members}, 30)
        before = {r: await metric(http, seed, DROPPED, reason=r) for r in ("auth", "unencrypted")}
        other_key = daemons(1, "--cluster-key", new_key())[0]
        no_key = daemons(1)[0]
        # A keyed node knocking at a keyless node is refused too ("this node has no cluster key").
        keyed_at_keyless = daemons(1, "--cluster-key", key, join=no_key.gossip)[0]
        outsiders = {other_key: "authentication failed: our cluster keys differ",
                     no_key: "this cluster requires a cluster key",
                     keyed_at_keyless: "this node has no cluster key"}
        names = {d.name for d in outsiders}
        deadline = time.monotonic() + REFUSAL_DEADLINE
        while True:
            views = [await cluster_view(http, d) for d in members]
            assert not names & {n for v in views for n in v}, f"an outsider got in: {views}"
            told = {d: reason in d.log_text and "cannot join the cluster yet" in d.log_text
                    for d, reason in outsiders.items()}
            if all(told.values()):
                break
            assert time.monotonic() < deadline, \
                "outsiders not told why: " + "\n".join(f"{d.name}: {d.log_text}" for d in outsiders)
            await asyncio.sleep(0.25)
        after = {r: await metric(http, seed, DROPPED, reason=r) for r in ("auth", "unencrypted")}
        assert after["auth"] > before["auth"] and after["unencrypted"] > before["unencrypted"], (before, after)
        assert await metric(http, no_key, DROPPED, reason="encrypted") >= 1
        for d in outsiders:  # each is still a cluster of one
            assert await cluster_view(http, d) == {d.name: "alive"}
            assert "Traceback" not in d.log_text
        assert [await cluster_view(http, d) for d in members] == [{m.name: "alive" for m in members}] * 3


@pytest.mark.parametrize("keys, env, message", [
    (["not base64!"], {}, "a cluster key is base64"),
    ([new_key(16)], {}, "a cluster key decodes to 32 bytes, this one to 16"),
    ([new_key(), new_key(31)], {}, "a cluster key decodes to 32 bytes, this one to 31"),  # each one is checked
    ([], {"TASKMASTER_CLUSTER_KEY": "%%%"}, "a cluster key is base64"),
])
def test_a_malformed_cluster_key_stops_the_daemon_at_once(tmp_path, keys, env, message):
    d = Daemon(tmp_path / "d", "--profile", "local", *(a for k in keys for a in ("--cluster-key", k)))
    started = time.monotonic()
    p = subprocess.run(d.command(), capture_output=True, text=True, timeout=30, env={**d.env, **env})
    took = time.monotonic() - started
    assert p.returncode != 0
    assert not any(READY.match(line) for line in p.stdout.splitlines()), p.stdout
    assert f"taskmasterd: {message}" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert took < 10, f"took {took:.1f} s to refuse"
