"""A rolling upgrade from an older revision to this checkout, on real processes. A check, not a test.

Starts --nodes nodes running the code of --from (a git revision, checked out in a temporary
worktree), writes tasks through each, then upgrades them one at a time as the README says: SIGTERM,
start this checkout's code on the same data dir, name and ports, wait until every member is alive
again, write through the upgraded node, and read every task back from every node. Prints JSON: per
step the protocol version the cluster speaks and whether every node answered every task; exits 1
on any difference.

    python scripts/check_upgrade.py --from 72a5fa5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.daemon import Daemon  # noqa: E402
from tests.jsonrpc_client import McpHttp  # noqa: E402

ROOT = "/check/upgrade"


class Node(Daemon):
    """taskmasterd from the sources in `src` (the old worktree's or this checkout's)."""

    def __init__(self, src: Path, data_dir: Path, *args: str):
        super().__init__(data_dir, *args, env={"PYTHONPATH": str(src)})

    def command(self) -> list[str]:
        return [sys.executable, "-m", "taskmaster.daemon", *super().command()[1:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def titles(http: aiohttp.ClientSession, node: Daemon) -> list[str]:
    tasks = (await McpHttp(node.url, http).call("get_tasks", projectRoot=ROOT))["data"]["tasks"]
    return sorted(t["title"] for t in tasks)


async def cluster(http: aiohttp.ClientSession, node: Daemon) -> dict:
    async with http.get(node.base + "/cluster") as r:
        return await r.json()


async def wait_all_alive(http: aiohttp.ClientSession, nodes: list[Daemon], deadline: float = 30.0) -> None:
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        views = [await cluster(http, n) for n in nodes]
        if all(len(v["members"]) == len(nodes) and all(m["state"] == "alive" for m in v["members"]) for v in views):
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"members not all alive within {deadline:g} s")


async def check(old_src: Path, new_src: Path, size: int, tmp: Path) -> dict:
    ports = [(free_port(), free_port(), free_port()) for _ in range(size)]

    def node(src: Path, i: int) -> Node:
        http, gossip, rpc = ports[i]
        seed = ports[1 if i == 0 else 0][1]  # any other member
        join = [] if i == 0 and src == old_src else ["--join", f"127.0.0.1:{seed}"]  # the very first start alone
        return Node(src, tmp / f"n{i}", "--name", f"n{i}", "--profile", "local", "--tools", "all",
                    "--http", f"127.0.0.1:{http}", "--bind", f"127.0.0.1:{gossip}", "--rpc-port", str(rpc), *join)

    nodes: list[Daemon] = []
    steps, written = [], []
    async with aiohttp.ClientSession() as http:
        try:
            for i in range(size):
                nodes.append(node(old_src, i).start())
            await wait_all_alive(http, nodes)
            for n in nodes:
                written.append(f"written through {n.name} before the upgrade")
                await McpHttp(n.url, http).call("add_task", projectRoot=ROOT, title=written[-1], description="-")
            for i in range(size):
                nodes[i].stop()
                nodes[i] = node(new_src, i).start()
                await wait_all_alive(http, nodes)
                written.append(f"written through {nodes[i].name} after its upgrade")
                await McpHttp(nodes[i].url, http).call("add_task", projectRoot=ROOT, title=written[-1], description="-")
                seen = [await titles(http, n) for n in nodes]
                view = await cluster(http, nodes[i])
                steps.append({"upgraded": nodes[i].name, "speaks": view["protocol"]["speaks"],
                              "protos": {m["name"]: "{}..{}".format(*m["proto"]) for m in view["members"]},
                              "every_node_has_every_task": all(s == sorted(written) for s in seen)})
        finally:
            for n in nodes:
                n.stop()
    return {"steps": steps, "tasks": len(written),
            "ok": all(s["every_node_has_every_task"] for s in steps) and steps[-1]["speaks"] > steps[0]["speaks"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="rev", required=True, help="the git revision to upgrade from")
    ap.add_argument("--nodes", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), a.rev], check=True)
        try:
            result = asyncio.run(check(old / "src", REPO / "src", a.nodes, Path(tmp)))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    print(json.dumps({"from": a.rev, **result}, indent=1))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
