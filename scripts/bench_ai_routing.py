"""AI routing benchmark: what forwarding a model call to another node adds to an AI tool call.

    python scripts/bench_ai_routing.py [--calls 200] [--latency-ms 50]

Two real taskmasterd processes on loopback. Only n0 has a model: a local fake OpenAI-compatible server
that answers after a fixed latency. The same `research` call is made, alternately, on
- n0 for a project n0 coordinates: n0 calls the provider itself (the baseline, same run), and
- n1 for a project n1 coordinates: n1 has no provider, so it forwards the model call to n0 (RPC
  "llm.generate") and n0 calls the provider.
Both calls run their tool where they land, so the difference of the two is the forwarding: the RPC round
trip, the request and answer on the wire, and n0 building its router for the forwarded call.
Target: overhead <= 5 ms over the provider's own latency. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from taskmaster.ring import partition_key  # noqa: E402
from tests.cluster import Cluster  # noqa: E402
from tests.fakes.llm_servers import FakeLlmServer, Reply  # noqa: E402

TARGET_MS = 5.0


def project_of(c: Cluster, tmp: Path, node: str) -> str:
    """A project whose master tag `node` coordinates."""
    for i in range(1000):
        root = str(tmp / f"project-{i}")
        if c.owners(partition_key(root, "master"))[0] == node:
            return root
    raise RuntimeError(f"no project coordinated by {node}")


async def timed(c: Cluster, i: int, root: str, expect_node: str) -> float:
    started = time.perf_counter()
    body = await c.client(i).call("research", projectRoot=root, query="Which queue should the importer use?")
    took = time.perf_counter() - started
    provider = body["data"]["provider"]
    if provider["node"] != expect_node or provider["name"] != "openai-compatible":
        raise RuntimeError(f"answered by {provider}, expected the provider on {expect_node}")
    return took


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


async def run(calls: int, latency: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        async with FakeLlmServer("openai", default=Reply("Use a durable queue."), latency=latency) as server:
            (tmp / "n0").mkdir()
            (tmp / "n0" / "models.json").write_text(json.dumps({"models": {"research": {
                "provider": "openai-compatible", "modelId": "fake-1", "baseURL": server.base_url}},
                "retry": {"maxAttempts": 1}}))
            async with Cluster(tmp, 2) as c:
                deadline = time.monotonic() + 15
                while not any(s["name"] == "llm@n0" for s in (await c.get(1, "/cluster"))["services"]):
                    if time.monotonic() > deadline:
                        raise RuntimeError("n1 never learned of n0's provider")
                    await asyncio.sleep(0.1)
                local, routed = project_of(c, tmp, "n0"), project_of(c, tmp, "n1")
                for _ in range(10):  # warm up: connections, caches, both code paths
                    await timed(c, 0, local, "n0")
                    await timed(c, 1, routed, "n0")
                baseline, forwarded = [], []
                for _ in range(calls):  # alternated, so drift on the machine affects both alike
                    baseline.append(await timed(c, 0, local, "n0"))
                    forwarded.append(await timed(c, 1, routed, "n0"))
    base, fwd = summary(baseline), summary(forwarded)
    overhead = round(fwd["p50_ms"] - base["p50_ms"], 2)
    return {"provider_latency_ms": latency * 1000, "calls_each": calls, "baseline_on_provider_node": base,
            "forwarded_from_node_without_provider": fwd, "forwarding_overhead_p50_ms": overhead,
            "forwarding_overhead_p90_ms": round(fwd["p90_ms"] - base["p90_ms"], 2),
            "ratio_p50": round(fwd["p50_ms"] / base["p50_ms"], 3), "target_overhead_ms": TARGET_MS,
            "meets_target": overhead <= TARGET_MS}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--latency-ms", type=float, default=50.0)
    a = p.parse_args()
    print(json.dumps(await run(a.calls, a.latency_ms / 1000), indent=2))


if __name__ == "__main__":
    asyncio.run(main())
