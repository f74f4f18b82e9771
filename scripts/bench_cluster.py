"""Replication figures of a 3-node cluster (N=3, W=2) on this machine, against one node (N=1).

    python scripts/bench_cluster.py [--clients 50] [--seconds 5] [--kills 10] [--tasks 10000]
                                    [--partition-seconds 10]

1. Throughput: `clients` concurrent MCP clients doing add_task, spread over the three nodes, as a
   ratio to the same clients on one node with --replicas 1, measured in the same run (the machine
   is noisy: the ratio is the figure). Latency p50/p99 of both.
2. Failover: a client writes through one node while the coordinator of its tag is SIGKILLed; the
   time from the kill to the first successful write started after it. Repeated `kills` times.
3. Convergence: a 2|1 partition (injected faults) held for `partition-seconds` or until `tasks`
   tasks are written, half on each side; the time from the heal until every replica's digest is
   equal and no hint is pending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from taskmaster.ring import partition_key  # noqa: E402
from tests.cluster import Cluster, ToolFailed  # noqa: E402


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))] if s else float("nan")


async def write_load(c: Cluster, root: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        client = c.client(w % len(c.nodes))
        i = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await client.call("add_task", projectRoot=root, title=f"w{w}-{i}", description="bench")
            latencies.append((time.perf_counter() - started) * 1000)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    return {"writes_per_s": round(len(latencies) / (time.perf_counter() - started)),
            "p50_ms": round(pct(latencies, 0.5), 2), "p99_ms": round(pct(latencies, 0.99), 2)}


async def throughput(work: Path, clients: int, seconds: float) -> dict:
    async with Cluster(work / "single", 1, "--replicas", "1") as one:
        single = await write_load(one, str(work / "p1"), clients, seconds)
    async with Cluster(work / "three", 3) as three:
        replicated = await write_load(three, str(work / "p3"), clients, seconds)
    return {"single_node_n1": single, "three_nodes_n3_w2": replicated,
            "ratio": round(replicated["writes_per_s"] / single["writes_per_s"], 3)}


async def failover(work: Path, kills: int) -> dict:
    root = str(work / "pf")
    samples = []
    async with Cluster(work / "failover", 3) as c:
        await c.client(0).call("add_task", projectRoot=root, title="warm", description="x")
        for k in range(kills):
            victim = [n.name for n in c.nodes].index(c.owners(partition_key(root, "master"))[0])
            via = c.client((victim + 1) % 3)
            await via.call("add_task", projectRoot=root, title=f"before-{k}", description="x")
            killed = time.perf_counter()
            c.nodes[victim].signal(signal.SIGKILL)
            c.nodes[victim].wait()
            while True:
                try:
                    await via.call("add_task", projectRoot=root, title=f"after-{k}", description="x")
                    break
                except ToolFailed:
                    continue
            samples.append((time.perf_counter() - killed) * 1000)
            c.restart(victim)
            await c.wait_members({n.name: "alive" for n in c.nodes})
            await c.wait_converged([partition_key(root, "master")])
    return {"kills": kills, "p50_ms": round(pct(samples, 0.5), 1), "p99_ms": round(pct(samples, 0.99), 1),
            "max_ms": round(max(samples), 1), "target_p99_ms": 1000}


async def convergence(work: Path, tasks: int, hold: float, clients: int) -> dict:
    root = str(work / "pc")
    async with Cluster(work / "converge", 3) as c:
        await c.client(0).call("add_task", projectRoot=root, title="before", description="x")
        await c.partition([0, 1], [2])
        partitioned = time.perf_counter()
        written = 0

        async def side_writer(node: int, count: int, w: int) -> None:
            nonlocal written
            client = c.client(node)
            for i in range(count):
                await client.call("add_task", projectRoot=root, title=f"n{node}-{w}-{i}", description="x")
                written += 1

        per_side = tasks // 2
        per_client = max(1, per_side // (clients // 2))
        await asyncio.gather(*(side_writer(node, per_client, w) for node in (0, 2) for w in range(clients // 2)))
        await asyncio.sleep(max(0.0, hold - (time.perf_counter() - partitioned)))
        held = time.perf_counter() - partitioned
        await c.heal()
        healed = time.perf_counter()
        await c.wait_converged([partition_key(root, "master")], timeout=120)
        while sum([(await c.get(i, "/cluster"))["ring"]["hints_pending"] for i in range(3)]) > 0:
            await asyncio.sleep(0.05)
        took = time.perf_counter() - healed
        docs = (await c.get(0, "/admin/digest"))["documents"]
    return {"tasks_written": written, "partition_held_s": round(held, 1), "documents": docs,
            "heal_to_convergence_s": round(took, 2), "target_s": 5}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--partition-seconds", type=float, default=10.0)
    p.add_argument("--only", choices=("throughput", "failover", "convergence"))
    a = p.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if a.only in (None, "throughput"):
            out["throughput"] = await throughput(work, a.clients, a.seconds)
        if a.only in (None, "failover"):
            out["failover"] = await failover(work, a.kills)
        if a.only in (None, "convergence"):
            out["convergence"] = await convergence(work, a.tasks, a.partition_seconds, a.clients)
    print(json.dumps(out, indent=2))
    if "throughput" in out:
        t = out["throughput"]
        print(f"replicated write throughput: {t['ratio']}x one node (target >= 0.5); "
              f"p50 {t['three_nodes_n3_w2']['p50_ms']} ms, p99 {t['three_nodes_n3_w2']['p99_ms']} ms")
    if "failover" in out:
        f = out["failover"]
        print(f"kill to first successful write: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms (target < 1000)")
    if "convergence" in out:
        print(f"heal to convergence: {out['convergence']['heal_to_convergence_s']} s (target <= 5)")


if __name__ == "__main__":
    asyncio.run(main())
