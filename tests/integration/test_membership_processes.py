"""Real taskmasterd processes forming a cluster with --join, observed through GET /cluster."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import aiohttp
import pytest

from tests.daemon import BIN, Daemon

HELP = subprocess.run([str(BIN / "taskmasterd"), "--help"], capture_output=True, text=True).stdout
pytestmark = pytest.mark.skipif("--join" not in HELP,
                                reason="taskmasterd has no --join yet (membership not wired into the daemon)")
PROFILE = ["--profile", "local"] if "--profile" in HELP else []


async def cluster_view(http: aiohttp.ClientSession, d: Daemon) -> dict[str, str]:
    async with http.get(d.base + "/cluster") as r:
        assert r.status == 200
        body = await r.json()
    assert body["self"] == d.name and isinstance(body["health"]["lhm"], int)
    return {m["name"]: m["state"] for m in body["members"]}


async def wait_views(http, daemons: list[Daemon], expected: dict[str, str], timeout: float) -> float:
    start = time.monotonic()
    while True:
        views = [await cluster_view(http, d) for d in daemons]
        if all(all(v.get(name) == state for name, state in expected.items()) for v in views):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"views never became {expected}: {views}")
        await asyncio.sleep(0.2)


@pytest.fixture
def daemons(tmp_path):
    started: list[Daemon] = []

    def start(n: int) -> list[Daemon]:
        for _ in range(n):
            join = ["--join", started[0].gossip] if started else []
            started.append(Daemon(tmp_path / f"d{len(started)}", *PROFILE, *join).start())
        return started
    yield start
    for d in started:
        d.stop()


async def test_five_nodes_converge_then_detect_a_kill_and_a_leave(daemons):
    ds = daemons(5)
    async with aiohttp.ClientSession() as http:
        await wait_views(http, ds, {d.name: "alive" for d in ds}, 30)
        killed, leaving, rest = ds[3], ds[4], ds[:3]
        killed.signal(signal.SIGKILL)
        await wait_views(http, rest + [leaving], {killed.name: "dead"}, 60)
        leaving.signal(signal.SIGTERM)
        assert leaving.wait(20) == 0
        took = await wait_views(http, rest, {leaving.name: "left"}, 10)
        assert took < 5
        views = [await cluster_view(http, d) for d in rest]
        assert all(v[killed.name] == "dead" for v in views)
