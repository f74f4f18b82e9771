"""Node: builds the layers of one taskmasterd in order, and takes them down in reverse.

This is the only module that wires layers together; `daemon.py` only turns flags into a Config.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket

from aiohttp import web

from . import __version__
from .api import build_app
from .cluster.faults import Faults, FaultyTransport
from .cluster.gitproxy import GitProxy
from .cluster.registry import ProviderRoutes, Registry, RegistryConfig
from .cluster.rpc import Rpc
from .config import Config
from .crdt import HLC
from .crdt.hlc import wall_ms
from .membership import JoinError, Member, Membership, MembershipConfig
from .membership.messages import PROTO_META, PROTOCOL_MAX, PROTOCOL_MIN, advertised
from .metrics import Metrics
from .replication.antientropy import AntiEntropy
from .replication.coordinator import ReplicationConfig, Replicator
from .replication.grants import Grants
from .replication.hints import Hints
from .replication.operations import Operations, OperationsConfig
from .storage import Store
from .storage.digest import DigestIndex
from .tasks.service import TaskService
from .tools import operations as tool_operations
from .tools.registry import ToolContext
from .transport.auth import Keyring, decode_key
from .transport.net import NetTransport

log = logging.getLogger(__name__)

ANTIENTROPY_INTERVAL = {"lan": 2.0, "local": 0.5, "wan": 10.0}  # seconds, by membership profile
MEMBER_EVENTS = {"suspect": "suspect", "dead": "dead", "left": "leave"}  # state -> logged event


def _write_json(path: str, value) -> None:
    """Replace `path` atomically (a crash leaves the old file or the new one, never half of one)."""
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)


def _node_name(config: Config) -> str:
    """The configured name, else one generated once and kept in the data dir (stable across restarts)."""
    if config.name:
        return config.name
    path = os.path.join(config.data_dir, "node.json")
    try:
        with open(path) as f:
            return json.load(f)["name"]
    except (OSError, ValueError, KeyError):
        name = f"{socket.gethostname()}-{secrets.token_hex(3)}"
        _write_json(path, {"name": name})
        return name


class Node:
    def __init__(self, config: Config):
        self.config = config
        self.name = ""
        self.metrics = Metrics()
        self.store: Store | None = None
        self.service: TaskService | None = None
        self.faults = Faults()
        self.rpc: Rpc | None = None
        self.replicator: Replicator | None = None
        self.operations: Operations | None = None  # supervised operations (async AI tools)
        self.registry: Registry | None = None  # named services, kept on every member
        self.models: ProviderRoutes | None = None  # this node's LLM providers, and other nodes'
        self.git: GitProxy | None = None  # runs autopilot git steps where the checkout is
        self.boot = secrets.token_hex(4)  # this process: registry entries die with it
        self._runner: web.AppRunner | None = None
        self.membership: Membership | None = None
        self._join_task: asyncio.Task | None = None
        self._services: asyncio.Task | None = None
        self.http_port = 0
        self.gossip_port = 0
        self.rpc_port = 0
        self._stopped = asyncio.Event()
        self.joined = asyncio.Event()  # set once the cluster has answered (at once without --join)
        self._member_states: dict[str, str] = {}  # last logged state of each member

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        if not cfg.http_is_loopback and not cfg.token:
            raise ValueError(f"HTTP on non-loopback address {cfg.http_host} requires --token "
                             "(or TASKMASTER_TOKEN): nobody outside may call tools unauthenticated")
        os.makedirs(cfg.data_dir, exist_ok=True)
        self.name = _node_name(cfg)
        self.store = Store(os.path.join(cfg.data_dir, "db"), self.metrics)
        try:
            self.store.digest = DigestIndex()
            self.store.digest.rebuild(self.store.documents())
            offset_ms = int(cfg.clock_offset * 1000)
            hlc = HLC(self.name, clock=(lambda: wall_ms() + offset_ms) if offset_ms else wall_ms,
                      max_offset_ms=cfg.hlc_max_offset_ms)
            from .tasks.files import import_project

            self.service = TaskService(self.store, hlc, self.metrics, importer=import_project)
            await self._start_replication()
            self._runner = web.AppRunner(build_app(self), access_log=None,
                                         shutdown_timeout=cfg.drain_seconds)
            await self._runner.setup()
            site = web.TCPSite(self._runner, cfg.http_host, cfg.http_port)
            await site.start()
            self.http_port = self._runner.addresses[0][1]
            await self._start_membership()
        except BaseException:
            await self._close()
            raise

    async def _start_replication(self) -> None:
        cfg, store, service = self.config, self.store, self.service
        keys = [decode_key(k) for k in cfg.cluster_keys]
        self.rpc = Rpc(self.name, Keyring(keys) if keys else None, self.faults)

        antientropy = AntiEntropy(store.digest, read=lambda keys: [store.get(k) for k in keys],
                                  apply=lambda docs: replicator.apply(docs),
                                  call=lambda peer, method, payload: replicator.call_peer(peer, method, payload))
        rcfg = ReplicationConfig(replicas=cfg.replicas, zone=cfg.zone, write_quorum=cfg.write_quorum,
                                 put_timeout=cfg.put_timeout,
                                 antientropy_interval=cfg.antientropy_interval or ANTIENTROPY_INTERVAL[cfg.profile])
        replicator = self.replicator = Replicator(self.name, rcfg, service, self.rpc, Hints(store), Grants(store),
                                                  antientropy, self.metrics)
        self.rpc_port = await self.rpc.start(cfg.gossip_host, cfg.rpc_port)
        self.metrics.watch_replication(replicator)
        ring_file = os.path.join(cfg.data_dir, "ring.json")
        try:
            with open(ring_file) as f:
                remembered = json.load(f)
            replicator.remember(remembered.get("zones") or remembered["members"])  # no zones: an older file
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # first start: the ring is what membership finds
        replicator.on_ring_change = lambda zones: _write_json(ring_file, {"members": list(zones), "zones": zones})
        self.git = GitProxy(self.name, replicator)
        self.operations = Operations(replicator, OperationsConfig(retention=cfg.operation_retention))
        tool_operations.install(self.operations, self.tool_context)
        self.registry = Registry(replicator, self.boot, RegistryConfig(tombstone_ttl=cfg.registry_tombstone_ttl))
        self.models = ProviderRoutes(self.registry, cfg.data_dir)
        self.metrics.watch_cluster_services(self.operations, self.registry, self.models)

    def tool_context(self, root: str) -> ToolContext:
        """The context of tool work this node does on its own: an operation's run and its final write."""
        return ToolContext(self.service, root, self.name, self.config, cluster=self)

    async def _start_membership(self) -> None:
        cfg = self.config
        overrides = {"probe_interval": cfg.probe_interval} if cfg.probe_interval else {}
        keys = [decode_key(k) for k in cfg.cluster_keys]
        mcfg = MembershipConfig.profile(cfg.profile, keyring=keys, **overrides)
        net = NetTransport(cfg.gossip_host, cfg.gossip_port, advertise=cfg.advertise,
                           max_frame=mcfg.max_frame, read_timeout=mcfg.tcp_timeout)
        transport = FaultyTransport(net, self.faults, self._name_of)
        rpc_host = cfg.advertise[0] if cfg.advertise else cfg.gossip_host
        meta = {"http": self.http_url, "version": __version__, "rpc": f"{rpc_host}:{self.rpc_port}",
                "boot": self.boot, "zone": cfg.zone, PROTO_META: [PROTOCOL_MIN, PROTOCOL_MAX]}
        self.membership = Membership(mcfg, transport, name=self.name, meta=meta, on_change=self._member_changed)
        await self.membership.start()
        self.gossip_port = transport.local_addr[1]
        self.metrics.watch_membership(self.membership)
        self.replicator.start()
        self._services = asyncio.create_task(self._start_services())
        if cfg.join:
            self._join_task = asyncio.create_task(self._join(list(cfg.join)))
        else:
            self.replicator.synced()
            self.joined.set()

    async def _start_services(self) -> None:
        """Supervising operations and tidying the registry begin once the cluster has answered: before
        that every other member looks gone, and their operations and entries would be taken from them."""
        await self.joined.wait()
        for service in (self.operations, self.registry, self.models):
            service.start()

    async def _join(self, seeds: list[tuple[str, int]]) -> None:
        """Join through any seed; keep trying (with backoff) until one answers, saying why not."""
        delay = 1.0
        while True:
            try:
                contacted = await self.membership.join(seeds)
                log.info("joined the cluster through %d of %d seeds", contacted, len(seeds),
                         extra={"event": "join", "node": self.name, "seeds": contacted})
                self.replicator.synced()
                self.replicator.set_members(self.membership.members())
                self.joined.set()
                return
            except JoinError as exc:
                log.error("cannot join the cluster yet: %s (retrying in %.0f s)", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _name_of(self, addr) -> str | None:
        m = self.membership
        return next((x.name for x in m.members() if x.addr == addr), None) if m is not None else None

    def _member_changed(self, member: Member) -> None:
        if self.rpc is not None and self.membership is not None:  # RPC speaks what gossip negotiated
            self.rpc.version = self.membership.protocol_version
        if self.replicator is not None and self.membership is not None and self.membership.table is not None:
            self.replicator.set_members(self.membership.members())
        if member.name != self.name:
            before, self._member_states[member.name] = self._member_states.get(member.name), member.state
            event = MEMBER_EVENTS.get(member.state) or {"suspect": "alive", "alive": "update"}.get(before, "join")
            log.log(logging.WARNING if member.state in ("suspect", "dead") else logging.INFO,
                    "member %s %s:%d is %s (incarnation %d)", member.name, *member.addr, member.state,
                    member.incarnation, extra={"event": event, "node": member.name,
                                               "addr": f"{member.addr[0]}:{member.addr[1]}",
                                               "incarnation": member.incarnation})

    async def stop(self) -> None:
        """Announce our leave, finish in-flight calls (up to drain_seconds), flush, close."""
        if self.membership is not None and self.membership.running:
            try:
                await self.membership.leave(timeout=min(5.0, self.config.drain_seconds))
            except Exception:  # leaving is a courtesy: the others detect us gone anyway
                log.exception("announcing our leave failed")
        await self._close()
        self._stopped.set()

    async def _close(self) -> None:
        if self._join_task is not None:
            self._join_task.cancel()
            self._join_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.membership is not None:
            await self.membership.stop()
            self.membership = None
        if self._services is not None:
            self._services.cancel()
        for service in (self.models, self.registry, self.operations):
            if service is not None:
                await service.stop()
        self.models = self.registry = self.operations = None
        if self.replicator is not None:
            await self.replicator.stop()
            self.replicator = None
        if self.rpc is not None:
            await self.rpc.close()
            self.rpc = None
        if self.store is not None:
            self.store.close()
            self.store = None

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # ---- addresses -------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        host = self.config.http_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.http_port}/mcp"

    @property
    def gossip_addr(self) -> str:
        return f"{self.config.gossip_host}:{self.gossip_port}"

    def ready_line(self) -> str:
        return f"taskmasterd ready name={self.name} http={self.http_url} gossip={self.gossip_addr}"

    def cluster(self) -> dict:
        """GET /cluster: this node's view of the membership, each member with its ring share and its
        health as seen from here."""
        m = self.membership
        members = [] if m is None else [
            {"name": x.name, "gossip": f"{x.addr[0]}:{x.addr[1]}", "http": x.meta.get("http"),
             "zone": x.meta.get("zone", ""), "version": x.meta.get("version"), "proto": list(advertised(x.meta)),
             "state": x.state, "incarnation": x.incarnation, "meta": x.meta,
             **self._standing(x.name)}
            for x in sorted(m.members(), key=lambda x: x.name)]
        ring = self.replicator.ownership() if self.replicator is not None else {}
        services = [e.to_dict() for e in self.registry.entries()] if self.registry is not None else []
        return {"self": self.name, "members": members, "health": {"lhm": m.local_health() if m else 0},
                "protocol": {"speaks": m.protocol_version if m else PROTOCOL_MIN,
                             "supports": [PROTOCOL_MIN, PROTOCOL_MAX]},
                "ring": ring, "services": services}

    def _standing(self, name: str) -> dict:
        """A member's ring share (the fraction of keys it holds a replica of; None outside the ring)
        and what this node knows of it without asking it: reachable for calls, round trip, and
        writes waiting here for it (hints)."""
        rep = self.replicator
        if rep is None:
            return {"share": None, "health": None}
        rtt = rep.rpc.rtt(name)
        return {"share": rep.ring.share(rep.config.replicas or len(rep.ring)).get(name),
                "health": {"reachable": rep.reachable(name), "hints": rep.hints.pending(name),
                           "rtt_ms": None if rtt is None else round(rtt * 1000, 2)}}

    def health(self) -> dict:
        return {"status": "ok", "name": self.name, "version": __version__, "http": self.http_url,
                "gossip": self.gossip_addr}
