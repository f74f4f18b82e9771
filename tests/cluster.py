"""A cluster of real taskmasterd processes for tests: start, wait for membership and convergence.

Nodes run on loopback (partitions through POST /admin/faults) or, given NetnsHosts, one per network
namespace (partitions through blackhole routes).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from taskmaster.ring import Ring, partition_key
from tests.daemon import Daemon
from tests.jsonrpc_client import McpHttp, ToolFailed
from tests.netns import NetnsHosts

TOKEN = "cluster-test-token"  # HTTP on a non-loopback address requires one
BASE_ARGS = ("--profile", "local", "--tools", "all", "--token", TOKEN)


class Node(Daemon):
    """A cluster member; inside host `host` of `hosts` when given, else on loopback."""

    def __init__(self, data_dir: str | Path, name: str, *args: str, hosts: NetnsHosts | None = None,
                 host: int = 0):
        self.hosts, self.host = hosts, host
        addr = []
        if hosts is not None:
            ip = hosts.addr(host)
            addr = ["--bind", f"{ip}:7946", "--http", f"{ip}:7070"]
        super().__init__(data_dir, "--name", name, *BASE_ARGS, *addr, *args)

    def command(self) -> list[str]:
        cmd = super().command()
        return self.hosts.wrap(self.host, cmd) if self.hosts is not None else cmd


class Cluster:
    def __init__(self, tmp: Path, size: int, *args: str, hosts: NetnsHosts | None = None,
                 zones: list[str] | None = None):
        self.tmp, self.args, self.hosts = tmp, args, hosts
        self.zones = zones or []  # node i's --zone (none past the end)
        self.nodes: list[Node] = []
        self.size = size
        self.http: aiohttp.ClientSession | None = None

    def node(self, i: int, *extra: str) -> Node:
        join = [] if i == 0 else ["--join", self.nodes[0].gossip]
        return Node(self.tmp / f"n{i}", f"n{i}", *self.args, *self._zone_args(i), *join, *extra, hosts=self.hosts,
                    host=i)

    def zone(self, i: int) -> str:
        return self.zones[i] if i < len(self.zones) else ""

    def _zone_args(self, i: int) -> list[str]:
        return ["--zone", self.zone(i)] if self.zone(i) else []

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                     headers={"Authorization": f"Bearer {TOKEN}"})

    async def __aenter__(self) -> Cluster:
        self.http = self._session()
        self._retired: list[aiohttp.ClientSession] = []
        try:
            for i in range(self.size):
                self.nodes.append(self.node(i).start())
            await self.wait_members({n.name: "alive" for n in self.nodes})
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        for n in self.nodes:
            n.stop()
        for session in [self.http, *self._retired]:
            if session is not None:
                await session.close()

    def restart(self, i: int, empty: bool = False, join: str | None = None) -> Node:
        """Start node i again (after a kill), with its data dir or, if `empty`, a fresh one; it
        joins through another node, or `join`."""
        old = self.nodes[i]
        old.stop()
        if empty:
            import shutil

            shutil.rmtree(old.data_dir)
        join = ["--join", join or self.nodes[1 if i == 0 else 0].gossip]
        # Same addresses, as a restarted server has: members refuse a live name on a new address.
        same = [] if self.hosts is not None else ["--bind", old.gossip, "--http", old.base.split("//", 1)[1]]
        new = Node(old.data_dir, old.name, *self.args, *self._zone_args(i), *join, *same, hosts=self.hosts, host=i)
        self.nodes[i] = new.start()
        # Kept-alive connections to the old process are dead: new clients get a new pool.
        self._retired.append(self.http)
        self.http = self._session()
        return new

    def client(self, i: int) -> McpHttp:
        return McpHttp(self.nodes[i].url, self.http, TOKEN)

    async def get(self, i: int, path: str) -> dict:
        async with self.http.get(self.nodes[i].base + path) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def isolate(self, i: int, names: list[str]) -> None:
        async with self.http.post(self.nodes[i].base + "/admin/faults", json={"isolate": names}) as r:
            assert r.status == 200 and sorted((await r.json())["isolate"]) == sorted(names)

    async def partition(self, *groups: list[int]) -> None:
        """Cut every link between the groups: blackhole routes in namespaces, else injected faults."""
        if self.hosts is not None:
            self.hosts.partition(*groups)
            return
        for group in groups:
            others = [self.nodes[j].name for g in groups if g is not group for j in g]
            for i in group:
                await self.isolate(i, others)

    async def heal(self) -> None:
        if self.hosts is not None:
            self.hosts.heal()
            return
        for i in range(len(self.nodes)):
            await self.isolate(i, [])

    async def wait_members(self, expected: dict[str, str], among: list[int] | None = None,
                           timeout: float = 30.0) -> float:
        start = time.monotonic()
        while True:
            views = []
            for i in among if among is not None else range(len(self.nodes)):
                body = await self.get(i, "/cluster")
                views.append({m["name"]: m["state"] for m in body["members"]})
            if all(all(v.get(k) == s for k, s in expected.items()) for v in views):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"members never became {expected}: {views}")
            await asyncio.sleep(0.1)

    async def digests(self) -> list[dict[str, str]]:
        return [(await self.get(i, "/admin/digest"))["partitions"] for i in range(len(self.nodes))]

    def owners(self, partition: bytes, replicas: int | None = 3) -> list[str]:
        ring = Ring({n.name: self.zone(i) for i, n in enumerate(self.nodes)})
        return ring.preference(partition, replicas or len(self.nodes))

    async def wait_converged(self, partitions: list[bytes], replicas: int | None = 3,
                             timeout: float = 30.0) -> float:
        """Until every owner of each partition reports the same digest root; returns the seconds."""
        start = time.monotonic()
        names = [n.name for n in self.nodes]
        while True:
            digests = await self.digests()
            roots = {p: {digests[names.index(o)].get(p.hex()) for o in self.owners(p, replicas)}
                     for p in partitions}
            if all(len(r) == 1 and None not in r for r in roots.values()):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"replicas did not converge in {timeout} s: {roots}")
            await asyncio.sleep(0.1)


def master(root: str) -> bytes:
    return partition_key(root, "master")


async def titles(client: McpHttp, root: str, tag: str | None = None) -> list[str]:
    args = {"projectRoot": root, "withSubtasks": False}
    if tag:
        args["tag"] = tag
    body = await client.call("get_tasks", **args)
    return [t["title"] for t in body["data"]["tasks"]]


__all__ = ["Cluster", "Node", "ToolFailed", "master", "titles"]
