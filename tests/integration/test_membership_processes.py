"""Real taskmasterd processes forming a cluster with --join, observed through GET /cluster and /metrics:
convergence, a kill, a leave, a frozen process (SIGSTOP), and a node whose event loop keeps stalling
(Lifeguard). The helpers here are shared by test_membership_partition.py and test_membership_security.py.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon import BIN, Daemon

HELP = subprocess.run([str(BIN / "taskmasterd"), "--help"], capture_output=True, text=True).stdout
pytestmark = pytest.mark.skipif("--join" not in HELP,
                                reason="taskmasterd has no --join yet (membership not wired into the daemon)")
PROFILE = ["--profile", "local"]
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
LIFEGUARD_SECONDS = 60.0


# ---- helpers -----------------------------------------------------------------------------------------
async def cluster(http: aiohttp.ClientSession, d: Daemon) -> dict:
    """One node's GET /cluster."""
    async with http.get(d.base + "/cluster") as r:
        assert r.status == 200
        body = await r.json()
    assert body["self"] == d.name and isinstance(body["health"]["lhm"], int)
    return body


async def cluster_view(http: aiohttp.ClientSession, d: Daemon) -> dict[str, str]:
    return {m["name"]: m["state"] for m in (await cluster(http, d))["members"]}


async def wait_views(http, daemons: list[Daemon], expected: dict[str, str], timeout: float) -> float:
    """Poll until every daemon sees every member of `expected` in its state; returns the seconds taken."""
    start = time.monotonic()
    while True:
        views = [await cluster_view(http, d) for d in daemons]
        if all(all(v.get(name) == state for name, state in expected.items()) for v in views):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"views never became {expected}: {views}")
        await asyncio.sleep(0.2)


async def metric(http: aiohttp.ClientSession, d: Daemon, name: str, **labels: str) -> float:
    """One sample of the node's /metrics (counters by their exposed name, e.g. `..._total`)."""
    async with http.get(d.base + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"{d.name}'s /metrics has no {name}{labels}")


class LoggedDaemon(Daemon):
    """A Daemon that can be stopped from any state a test leaves it in (its log is in `log`)."""

    def stop(self) -> None:
        """Stop it whatever a test left it in: frozen (SIGSTOP), killed or running."""
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        super().stop()


@pytest.fixture
def daemons(tmp_path):
    """`start(n, *args, join=...)` starts n more nodes with `args`, joining through the first node
    started (or `join`, a gossip address; "" for none); returns the new ones. All are stopped after."""
    started: list[LoggedDaemon] = []

    def start(n: int, *args: str, join: str | None = None) -> list[LoggedDaemon]:
        new = []
        for _ in range(n):
            seed = join if join is not None else (started[0].gossip if started else "")
            d = LoggedDaemon(tmp_path / f"d{len(started)}", *PROFILE, *(["--join", seed] if seed else []), *args)
            started.append(d.start())
            new.append(d)
        return new
    yield start
    for d in started:
        d.stop()


# ---- tests -------------------------------------------------------------------------------------------
async def test_five_nodes_converge_then_detect_a_kill_and_a_leave(daemons):
    ds = daemons(5)
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        await wait_views(http, ds, {d.name: "alive" for d in ds}, 30)
        for d in ds:  # /metrics counts what /cluster lists
            assert await metric(http, d, "taskmaster_members", state="alive") == 5
            assert await metric(http, d, "taskmaster_members", state="dead") == 0
        killed, leaving, rest = ds[3], ds[4], ds[:3]
        killed.signal(signal.SIGKILL)
        await wait_views(http, rest + [leaving], {killed.name: "dead"}, 60)
        leaving.signal(signal.SIGTERM)
        assert leaving.wait(20) == 0
        took = await wait_views(http, rest, {leaving.name: "left"}, 10)
        assert took < 5
        views = [await cluster_view(http, d) for d in rest]
        assert all(v[killed.name] == "dead" for v in views)
        for d in rest:
            assert [await metric(http, d, "taskmaster_members", state=s) for s in ("alive", "dead", "left")] \
                == [3, 1, 1]


async def agreed_view(http, daemons: list[Daemon], timeout: float) -> dict[str, int]:
    """Poll until every daemon lists exactly these daemons, all alive, with the same incarnations;
    returns {name: incarnation}."""
    names = {d.name for d in daemons}
    deadline = time.monotonic() + timeout
    while True:
        views = [{m["name"]: (m["state"], m["incarnation"]) for m in (await cluster(http, d))["members"]}
                 for d in daemons]
        if set(views[0]) == names and all(state == "alive" for state, _ in views[0].values()) \
                and all(v == views[0] for v in views):
            return {name: inc for name, (_, inc) in views[0].items()}
        if time.monotonic() > deadline:
            raise AssertionError(f"the nodes never agreed that all {len(names)} are alive: {views}")
        await asyncio.sleep(0.2)


async def test_a_frozen_node_is_suspected_then_everyone_agrees_it_is_alive(daemons):
    ds = daemons(4)
    frozen, watchers = ds[-1], ds[:-1]
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        before = await agreed_view(http, ds, 30)
        frozen.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        seen: set[str] = set()
        try:
            # Frozen for 3 s, and at least until someone noticed (so the refute/rejoin path is taken).
            while time.monotonic() - stopped < 3 or not seen:
                assert time.monotonic() - stopped < 20, "nobody noticed a node frozen for 20 s"
                seen |= {v[frozen.name] for v in [await cluster_view(http, d) for d in watchers]} - {"alive"}
                await asyncio.sleep(0.1)
        finally:
            frozen.signal(signal.SIGCONT)
        assert seen <= {"suspect", "dead"}, seen
        continued = time.monotonic()
        after = await agreed_view(http, ds, 30)
    # It refuted the suspicion, or came back from the dead, by raising its incarnation.
    assert after[frozen.name] > before[frozen.name], (before, after, seen)
    print(f"\nfrozen node shown as {sorted(seen)}; incarnation {before[frozen.name]} -> {after[frozen.name]}; "
          f"frozen {continued - stopped:.1f} s, agreement {time.monotonic() - continued:.1f} s after SIGCONT")


async def test_lifeguard_a_stalling_node_is_never_declared_dead_and_declares_no_one_dead(daemons):
    # At 0.3 s probes a 0.5 s stall outlasts a probe round, so the node is suspected over and over
    # (~30 times a minute) and must refute every time; a peer that missed a refutation keeps
    # accusing the older incarnation, which makes the node gossip its alive again.
    fast = ("--probe-interval", "0.3")
    healthy = daemons(3, *fast)
    stalling = daemons(1, *fast, "--test-stall-loop", "0.5,1.0")[0]
    ds = healthy + [stalling]
    slowest_answer = 0.0  # of the stalling node: proves its loop really stalls
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        await agreed_view(http, ds, 30)
        end = time.monotonic() + LIFEGUARD_SECONDS
        while time.monotonic() < end:
            for d in ds:
                asked = time.monotonic()
                body = await cluster(http, d)
                if d is stalling:
                    slowest_answer = max(slowest_answer, time.monotonic() - asked)
                shown = {m["name"]: m["state"] for m in body["members"]}
                assert not {"dead", "left"} & set(shown.values()), \
                    f"{d.name}{' (stalling)' if d is stalling else ''} shows {shown}"
            await asyncio.sleep(0.2)
        suspicions = {d.name: await metric(http, d, "taskmaster_gossip_suspicions_raised_total") for d in ds}
        refuted = {d.name: await metric(http, d, "taskmaster_gossip_suspicions_refuted_total") for d in ds}
        await agreed_view(http, ds, 15)
    print(f"\nsuspicions raised: {suspicions}, refuted: {refuted}; "
          f"slowest answer of the stalling node: {slowest_answer:.2f} s")
    assert slowest_answer >= 0.3, f"the stalls are not real: every answer came within {slowest_answer:.2f} s"
