"""Model calls on a cluster where only some nodes have a provider: a node without one has a node that has
one answer (the response says which provider and node), load spreads over the nodes that have one, and
only when none has one does the offline planner answer."""

from __future__ import annotations

import asyncio
import json
import signal
import time

from prometheus_client.parser import text_string_to_metric_families

from taskmaster.ring import partition_key
from tests.cluster import Cluster
from tests.fakes.llm_servers import FakeLlmServer, Reply

PROVIDER = "openai-compatible"


def give_model(data_dir, server: FakeLlmServer) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "models.json").write_text(json.dumps({
        "models": {"main": {"provider": PROVIDER, "modelId": "fake-1", "baseURL": server.base_url},
                   "research": {"provider": PROVIDER, "modelId": "fake-1", "baseURL": server.base_url}},
        "retry": {"maxAttempts": 1}, "timeout": 30}))


def root_coordinated_by(c: Cluster, tmp_path, name: str) -> str:
    """A project whose master tag is coordinated by `name` (so the tool runs there, not forwarded)."""
    for i in range(1000):
        root = str(tmp_path / f"project-{i}")
        if c.owners(partition_key(root, "master"))[0] == name:
            return root
    raise AssertionError(f"no project coordinated by {name}")


async def advertised(c: Cluster, providers: set[str], timeout: float = 15.0) -> None:
    """Until every running node's registry lists exactly these nodes' models."""
    deadline = time.monotonic() + timeout
    while True:
        views = []
        for i, n in enumerate(c.nodes):
            if n.proc.poll() is None:
                services = (await c.get(i, "/cluster"))["services"]
                views.append({s["node"] for s in services if s["name"].startswith("llm@")})
        if all(v == providers for v in views):
            return
        assert time.monotonic() < deadline, f"providers never advertised as {providers}: {views}"
        await asyncio.sleep(0.1)


async def ask(c: Cluster, i: int, root: str) -> dict:
    body = await c.client(i).call("research", projectRoot=root, query="Which database fits this project?")
    return body["data"]


async def test_nodes_without_a_provider_are_answered_by_the_one_that_has_it(tmp_path):
    async with FakeLlmServer("openai", default=Reply("Use PostgreSQL."), latency=0.05) as server:
        give_model(tmp_path / "n0", server)
        async with Cluster(tmp_path, 3) as c:
            await advertised(c, {"n0"})
            for name in ("n1", "n2", "n0"):
                i = int(name[1])
                data = await ask(c, i, root_coordinated_by(c, tmp_path, name))
                assert data["result"] == "Use PostgreSQL."
                assert data["provider"]["name"] == PROVIDER and data["provider"]["node"] == "n0", (name, data)
                assert data["telemetryData"]["providerName"] == PROVIDER
            assert len(server.requests) == 3
            assert await metric(c, 1, "taskmaster_llm_forwarded_total") == 1
            assert await metric(c, 0, "taskmaster_llm_served_total") == 2
            # Usage is summed in /metrics where the tool ran, as its telemetryData says.
            assert await usage(c, 1) == (data_tokens := await usage(c, 2)) and data_tokens[0] > 0


async def usage(c: Cluster, i: int) -> tuple[float, float]:
    """(tokens, cost) summed over every provider and model in node i's /metrics."""
    async with c.http.get(c.nodes[i].base + "/metrics") as r:
        families = list(text_string_to_metric_families(await r.text()))
    tokens = sum(s.value for f in families for s in f.samples if s.name == "taskmaster_llm_tokens_total")
    cost = sum(s.value for f in families for s in f.samples if s.name == "taskmaster_llm_cost_usd_total")
    return tokens, cost


async def metric(c: Cluster, i: int, name: str) -> float:
    async with c.http.get(c.nodes[i].base + "/metrics") as r:
        samples = {s.name: s.value for f in text_string_to_metric_families(await r.text()) for s in f.samples}
    return samples[name]


async def test_load_spreads_over_providers_and_a_dead_one_is_passed_over(tmp_path):
    async with FakeLlmServer("openai", default=Reply("Answer."), latency=0.4) as server:
        give_model(tmp_path / "n0", server)
        async with Cluster(tmp_path, 3) as c:
            await advertised(c, {"n0"})
            give_model(tmp_path / "n2", server)  # a node gets a model while running: it advertises it
            await advertised(c, {"n0", "n2"})
            root = root_coordinated_by(c, tmp_path, "n1")
            answers = await asyncio.gather(*(ask(c, 1, root) for _ in range(6)))
            used = [a["provider"]["node"] for a in answers]
            assert set(used) == {"n0", "n2"} and 2 <= used.count("n0") <= 4, used
            c.nodes[0].signal(signal.SIGKILL)
            c.nodes[0].wait()
            await c.wait_members({"n0": "dead"}, among=[1, 2])
            await advertised(c, {"n2"})
            root = root_coordinated_by(c, tmp_path, "n1")
            assert (await ask(c, 1, root))["provider"]["node"] == "n2"


async def test_with_no_provider_anywhere_the_offline_planner_answers_where_the_call_runs(tmp_path):
    async with Cluster(tmp_path, 3) as c:
        await advertised(c, set())
        root = root_coordinated_by(c, tmp_path, "n2")
        data = await ask(c, 0, root)  # forwarded to n2 as a tool call, answered there
        assert data["provider"]["name"] == "offline-planner" and data["provider"]["node"] == "n2"
