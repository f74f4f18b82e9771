"""Tool latency and durable-write throughput of one node, against an aiohttp echo ceiling.

    python scripts/bench_tools.py [--sizes 100,2000] [--calls 400] [--clients 50] [--seconds 5]

A real taskmasterd process serves a project seeded from a tasks.json (imported on first call);
calls go over a warm MCP HTTP session. The ceiling is a bare aiohttp JSON echo server, also a
separate process, driven by the same client code in the same run: the machine is noisy, so the
ratio is the figure to compare, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.daemon import Daemon, read_line  # noqa: E402
from tests.jsonrpc_client import McpHttp  # noqa: E402

ECHO_SERVER = """
import sys
from aiohttp import web
async def echo(request):
    return web.Response(body=await request.read(), content_type="application/json")
app = web.Application()
app.router.add_post("/echo", echo)
async def main():
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    import asyncio
    await asyncio.Event().wait()
import uvloop
uvloop.run(main())
"""


def seed_project(root: Path, n: int) -> None:
    tasks = []
    for i in range(1, n + 1):
        subs = [{"id": s, "title": f"sub {s}", "description": "", "details": "", "status": "pending",
                 "dependencies": [s - 1] if s > 1 else []} for s in range(1, 4)]
        tasks.append({"id": i, "title": f"Task {i}", "description": f"Do thing {i}",
                      "details": "x" * 200, "testStrategy": "unit tests", "status": "pending",
                      "priority": ["high", "medium", "low"][i % 3],
                      "dependencies": [i - 1] if i > 1 and i % 5 else [], "subtasks": subs})
    (root / ".taskmaster" / "tasks").mkdir(parents=True, exist_ok=True)
    (root / ".taskmaster" / "tasks" / "tasks.json").write_text(json.dumps(
        {"master": {"tasks": tasks, "metadata": {"created": "2026-01-01T00:00:00.000Z"}}}))


CYCLE = ("review", "done", "in-progress")  # never "pending", what the seeded tasks start as


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


async def latency(client: McpHttp, calls: int, tool: str, args_for) -> dict:
    samples = []
    for i in range(calls):
        args = args_for(i)
        started = time.perf_counter()
        await client.call(tool, **args)
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 3), "p99_ms": round(pct(samples, 0.99), 3)}


async def throughput(url: str, clients: int, seconds: float, request) -> float:
    """Requests/s with `clients` concurrent workers, each with its own warm session."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        done = 0
        stop_at = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal done
            ctx = await request.setup(http, url, w)
            i = 0
            while time.perf_counter() < stop_at:
                await request.send(ctx, w, i)
                done += 1
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        return done / (time.perf_counter() - started)


class EchoRequest:
    async def setup(self, http, url, w):
        return http, url

    async def send(self, ctx, w, i):
        http, url = ctx
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                           "params": {"name": "set_task_status", "arguments": {"id": str(w), "status": "done"}}})
        async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            await r.read()


class StatusRequest:
    def __init__(self, root: str, n: int, workers: int):
        self.root, self.n, self.workers = root, n, workers

    async def setup(self, http, url, w):
        client = McpHttp(url, http)
        await client.initialize()
        return client

    async def send(self, client, w, i):
        # Worker w owns the tasks congruent to w, and moves each one on every visit: every call writes.
        task = w + 1 + (i * self.workers) % (self.n - self.workers)
        await client.call("set_task_status", projectRoot=self.root, id=str(task),
                          status=CYCLE[(i * self.workers // (self.n - self.workers)) % 3])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def bench_size(n: int, calls: int, work: Path) -> dict:
    root = work / f"project-{n}"
    seed_project(root, n)
    d = Daemon(work / f"data-{n}", "--tools", "all").start()
    try:
        async with aiohttp.ClientSession() as http:
            c = McpHttp(d.url, http)
            await c.initialize()
            r = str(root)
            await c.call("get_tasks", projectRoot=r)  # import + warm
            out = {
                "get_tasks": await latency(c, max(20, calls // 10), "get_tasks", lambda i: {"projectRoot": r}),
                "get_task": await latency(c, calls, "get_task", lambda i: {"projectRoot": r, "id": str(1 + i % n)}),
                "next_task": await latency(c, calls, "next_task", lambda i: {"projectRoot": r}),
                # Each pass over the tag sets a status different from the last pass's: every call writes.
                "set_task_status(task)": await latency(c, calls, "set_task_status", lambda i: {
                    "projectRoot": r, "id": str(1 + i % n), "status": CYCLE[(i // n) % 3]}),
                "set_task_status(subtask)": await latency(c, calls, "set_task_status", lambda i: {
                    "projectRoot": r, "id": f"{1 + i % n}.{1 + (i // n) % 3}", "status": CYCLE[(i // (3 * n)) % 3]}),
                "add_subtask": await latency(c, calls, "add_subtask", lambda i: {
                    "projectRoot": r, "id": str(1 + i % n), "title": f"bench {i}"}),
            }
        out["rss_mb"] = round(rss_mb(d.proc.pid), 1)
        out["start_to_ready_s"] = round(d.ready_seconds, 3)  # process start to the ready line
    finally:
        d.stop()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,2000")
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rss-tasks", type=int, default=10_000)
    a = ap.parse_args()
    report: dict = {"latency": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in (int(s) for s in a.sizes.split(",")):
            report["latency"][n] = await bench_size(n, a.calls, work)

        echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
        try:
            port = int(read_line(echo, 10))
            echo_rps = await throughput(f"http://127.0.0.1:{port}/echo", a.clients, a.seconds, EchoRequest())
        finally:
            echo.kill()
            echo.wait()

        root = work / "project-tp"
        seed_project(root, 2000)
        d = Daemon(work / "data-tp", "--tools", "all").start()
        try:
            write_rps = await throughput(d.url, a.clients, a.seconds, StatusRequest(str(root), 2000, a.clients))
        finally:
            d.stop()

        root = work / "project-rss"
        seed_project(root, a.rss_tasks)
        d = Daemon(work / "data-rss", "--tools", "all").start()
        try:
            async with aiohttp.ClientSession() as http:
                c = McpHttp(d.url, http)
                await c.initialize()
                await c.call("get_tasks", projectRoot=str(root), fields="id,status")
                for i in range(200):
                    await c.call("set_task_status", projectRoot=str(root), id=str(1 + i), status="done")
            rss = rss_mb(d.proc.pid)
        finally:
            d.stop()

    report["throughput"] = {
        "clients": a.clients,
        "echo_ceiling_rps": round(echo_rps),
        "durable_set_task_status_rps": round(write_rps),
        "ratio_to_echo": round(write_rps / echo_rps, 3),
        "target_ratio": 0.5,
    }
    report["rss"] = {"tasks": a.rss_tasks, "rss_mb": round(rss, 1), "target_mb": 150}
    big = report["latency"].get(2000)
    if big:
        single = {k: v["median_ms"] for k, v in big.items() if isinstance(v, dict) and k != "get_tasks"}
        report["targets_2000"] = {"single_task_median_max_ms": max(single.values()), "target_ms": 1.5,
                                  "reference_ms": {"next_task": 19.8, "set_task_status": 30.5, "add_subtask": 28.0}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
