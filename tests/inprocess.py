"""Cluster members in one process for the registry and operations tests: real RocksDB stores, real RPC on
loopback sockets, the real Replicator; membership is told by the test (`connect`, `kill`, `partition`), so
a test decides exactly who is alive and who can reach whom.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

from taskmaster.cluster.registry import ProviderRoutes, Registry, RegistryConfig, RoutingConfig
from taskmaster.cluster.rpc import Rpc
from taskmaster.config import Config
from taskmaster.crdt import HLC
from taskmaster.membership.member import ALIVE, DEAD, Member
from taskmaster.replication.antientropy import AntiEntropy
from taskmaster.replication.coordinator import ReplicationConfig, Replicator
from taskmaster.replication.grants import Grants
from taskmaster.replication.hints import Hints
from taskmaster.replication.operations import Operations, OperationsConfig
from taskmaster.storage import Store
from taskmaster.storage.digest import DigestIndex
from taskmaster.tasks.service import TaskService
from taskmaster.tools import operations as tool_operations
from taskmaster.tools.registry import ToolContext


class Peer:
    """One member: store, task service, RPC, replicator, registry, model routing and operation supervisor."""

    def __init__(self, data_dir: Path, name: str, ops: OperationsConfig, reg: RegistryConfig, tools: str):
        self.name, self.data_dir = name, data_dir
        self.boot = secrets.token_hex(4)
        self.config = Config(name=name, data_dir=str(data_dir), tools=tools)
        self.store = Store(str(data_dir / "db"))
        self.store.digest = DigestIndex()
        self.store.digest.rebuild(self.store.documents())
        self.service = TaskService(self.store, HLC(name))
        self.rpc = Rpc(name)
        rep = self.rep = Replicator(
            name, ReplicationConfig(antientropy_interval=0.2, catch_up_timeout=1.0, put_timeout=0.5), self.service,
            self.rpc, Hints(self.store), Grants(self.store),
            AntiEntropy(self.store.digest, read=lambda keys: [self.store.get(k) for k in keys],
                        apply=lambda docs: rep.apply(docs),
                        call=lambda peer, method, payload: rep.call_peer(peer, method, payload)))
        self.ops = Operations(rep, ops)
        self.registry = Registry(rep, self.boot, reg)
        self.models = ProviderRoutes(self.registry, str(data_dir), RoutingConfig(poll_interval=0.05))
        self.port = 0
        self.running = False

    @property
    def operations(self) -> Operations:  # what a ToolContext's `cluster` offers the tools
        return self.ops

    def ctx(self, root: str) -> ToolContext:
        return ToolContext(self.service, root, self.name, self.config, cluster=self)

    def member(self, state: str = ALIVE) -> Member:
        return Member(self.name, ("127.0.0.1", 0), state, 1, {"rpc": f"127.0.0.1:{self.port}", "boot": self.boot})

    async def start(self) -> Peer:
        tool_operations.install(self.ops, self.ctx)
        self.port = await self.rpc.start("127.0.0.1", 0)
        self.rep.start()
        self.ops.start()
        self.registry.start()
        self.models.start()
        self.running = True
        return self

    async def stop(self) -> None:
        """Stop abruptly, as a kill would: nothing announced, running operations left unfinished."""
        if not self.running:
            return
        self.running = False
        await self.models.stop()
        await self.registry.stop()
        await self.ops.stop()
        await self.rep.stop()
        await self.rpc.close()
        if self.store._flushing is not None:  # an fsync thread still running would keep the db borrowed
            await asyncio.gather(self.store._flushing, return_exceptions=True)
        self.store.close()


class Cluster:
    def __init__(self, tmp: Path, size: int, ops: OperationsConfig | None = None,
                 reg: RegistryConfig | None = None, tools: str = "all"):
        self.tmp, self.size, self.tools = tmp, size, tools
        self.ops_config = ops or OperationsConfig(scan_interval=0.05)
        self.reg_config = reg or RegistryConfig()
        self.peers: list[Peer] = []
        self._made = 0

    async def __aenter__(self) -> Cluster:
        for _ in range(self.size):
            await self.add(connect=False)
        self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        for p in self.peers:
            await p.stop()

    async def add(self, connect: bool = True, name: str | None = None) -> Peer:
        name = name or f"p{self._made}"
        self._made += 1
        peer = await Peer(self.tmp / name, name, self.ops_config, self.reg_config, self.tools).start()
        self.peers.append(peer)
        if connect:
            self.connect()
        return peer

    def connect(self) -> None:
        """Every running peer sees every running peer alive (and every stopped one dead)."""
        for p in self.live:
            p.rep.set_members([q.member(ALIVE if q.running else DEAD) for q in self.peers if q is not p])

    @property
    def live(self) -> list[Peer]:
        return [p for p in self.peers if p.running]

    async def kill(self, peer: Peer) -> None:
        await peer.stop()
        self.connect()

    async def restart(self, peer: Peer) -> Peer:
        """The same name and data dir in a new process (new boot id)."""
        await peer.stop()
        new = await Peer(peer.data_dir, peer.name, self.ops_config, self.reg_config, self.tools).start()
        self.peers[self.peers.index(peer)] = new
        self.connect()
        return new

    def partition(self, *groups: list[Peer]) -> None:
        """Cut the groups apart: each side sees the other dead and cannot call it."""
        for group in groups:
            others = [q for g in groups if g is not group for q in g]
            for p in group:
                p.rpc.faults.isolate([q.name for q in others])
                p.rep.set_members([q.member(DEAD if q in others else ALIVE) for q in self.peers
                                   if q is not p and q.running])

    def heal(self) -> None:
        for p in self.live:
            p.rpc.faults.isolate([])
        self.connect()


async def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Wait until `check()` (sync or async) returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)
