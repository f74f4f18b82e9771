"""LLM layer benchmark: offline parse_prd speed, and the router's overhead over a provider's latency.

    python scripts/bench_llm.py [--requirements 50] [--runs 200] [--latency-ms 50] [--calls 40]

1. Offline parse_prd of a PRD with N requirements (headings, numbered items, bullets with nested
   points, "after N" / "depends on ..." mentions), end to end in process: prompt building, the
   router, the offline planner, schema validation. Target: <= 100 ms for 50 requirements. The
   baseline in the same process is json.loads of the same PRD text (as a JSON string) x100, so
   the ratio is comparable across machines.
2. A routed call to a local fake OpenAI-compatible server that answers after a fixed latency,
   against a bare aiohttp POST of the same request to the same server: the difference is what the
   router, the provider and the schema check add.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from taskmaster.llm import LlmConfig, LlmRouter, prompts  # noqa: E402
from tests.fakes.llm_servers import FakeLlmServer, Reply  # noqa: E402
from tests.fakes.llm_setup import config, entry, tasks_json  # noqa: E402

AREAS = ("Accounts", "Projects", "Tasks", "Comments", "Notifications", "Search", "Reports", "Billing",
         "Admin", "Integrations")
BASELINE_REPEAT = 100
"""The baseline is json.loads of the PRD text this many times: long enough to time reliably."""
NOUNS = ("Invoice", "Customer", "Ticket", "Document", "Milestone", "Label", "Webhook")


def make_prd(requirements: int) -> str:
    """A PRD of `requirements` top-level requirements in sections of five, as people write them."""
    lines = ["# Team tracker: product requirements", "", "## Overview",
             "A task tracker for small teams. This section gives context only.", ""]
    for i in range(requirements):
        if i % 5 == 0:
            lines += ["", f"## {AREAS[(i // 5) % len(AREAS)]} (part {i // 5 + 1})", ""]
        n = i + 1
        text = f"{n}. **{_name(n)}**: users can create, edit and archive them, with validation and audit logging."
        if n % 4 == 0:
            text += f" Depends on {n - 2}."
        elif n % 7 == 0:
            text += f" Requires the {_name(n - 3).lower()}."
        lines.append(text)
        if n % 3 == 0:
            lines += [f"   - point {n}.a: store it durably", f"   - point {n}.b: expose it in the API"]
    return "\n".join(lines) + "\n"


def _name(n: int) -> str:
    return f"{NOUNS[n % len(NOUNS)]} screens {n}"


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def p99_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 3)


async def offline_parse(requirements: int, runs: int) -> dict:
    prd = make_prd(requirements)
    router = LlmRouter(LlmConfig())
    samples = []
    tasks = 0
    for _ in range(runs + 5):  # five warm-up runs
        started = time.perf_counter()
        result = await router.generate("main", prompts.parse_prd(prd, num_tasks=0, next_id=1))
        samples.append(time.perf_counter() - started)
        tasks = len(result.data["tasks"])
    await router.close()
    samples = samples[5:]
    encoded = json.dumps(prd)
    baseline = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(BASELINE_REPEAT):
            json.loads(encoded)
        baseline.append(time.perf_counter() - started)
    return {"requirements": requirements, "tasks": tasks, "prd_bytes": len(prd.encode()),
            "median_ms": median_ms(samples), "p99_ms": p99_ms(samples), "target_ms": 100,
            f"baseline_json_loads_x{BASELINE_REPEAT}_median_ms": median_ms(baseline),
            "ratio_to_baseline": round(statistics.median(samples) / statistics.median(baseline), 2)}


async def router_overhead(latency_ms: float, calls: int) -> dict:
    server = await FakeLlmServer("openai", default=Reply(tasks_json("A", "B", "C")),
                                 latency=latency_ms / 1000).start()
    request = prompts.parse_prd(make_prd(10), num_tasks=3, next_id=1)
    async with aiohttp.ClientSession() as http:
        router = LlmRouter(config(entry("main", server)), http=http)
        body = {"model": "m-1", "messages": [{"role": "system", "content": request.system}, *request.messages],
                "response_format": {"type": "json_object"}}
        routed, raw = [], []
        for i in range(calls + 3):
            started = time.perf_counter()
            await router.generate("main", request)
            if i >= 3:
                routed.append(time.perf_counter() - started)
            started = time.perf_counter()
            async with http.post(server.base_url + "/chat/completions", json=body) as response:
                json.loads(await response.read())
            if i >= 3:
                raw.append(time.perf_counter() - started)
    await server.close()
    return {"provider_latency_ms": latency_ms, "routed_median_ms": median_ms(routed),
            "raw_post_median_ms": median_ms(raw),
            "overhead_ms": round(median_ms(routed) - median_ms(raw), 3)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requirements", type=int, default=50)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args()
    report = {"offline_parse_prd": await offline_parse(args.requirements, args.runs),
              "router_overhead": await router_overhead(args.latency_ms, args.calls)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
