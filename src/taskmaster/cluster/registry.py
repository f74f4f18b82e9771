"""A registry of named services kept on every member: Horde's Registry without the races its users met.

Entries live in the project-level partition of the root "~cluster" (tag "", which the ring keeps on
every member), one CRDT document per name, `n/<name>`: owner, node, boot (the node's process), meta;
a removal is a tombstone.

- Register, unregister and lookup run on the partition's coordinator (its first reachable member),
  which first catches up with the other replicas; a registration is acknowledged once W copies are
  durable. So a lookup right after a register sees it from any node, with no sync window (Horde #247,
  #223), and a member that joins cannot make entries vanish: it catches up before it answers (#116,
  #258). `entries` reads this node's copy, for decisions that may be a moment stale.
- The coordinator refuses a name that another owner holds (NameTaken): two registrations racing on one
  node (#250), or anywhere in a connected cluster, have exactly one winner. On two sides of a partition
  both succeed; after the merge the later stamp (then the node) wins on every replica, and the node
  whose registration lost is told when the winner reaches it: `on_conflict` callbacks, a counter, a log.
- An entry lives as long as its node's process: the coordinator removes the entries of a member that
  is dead or gone and of one that restarted (another boot id in its member metadata), so no zombie
  outlives its owner (#186, #172, #262); a name held only by a zombie can be registered anew. A node
  that finds one of its registrations removed while it holds it (the other side of a partition took
  it for dead) registers it again, and one that finds an entry of its own it does not hold removes it.
- Bounded: tombstones are deleted on every replica once `tombstone_ttl` has passed since their stamp
  (#200); an entry anti-entropy brings back from a replica that missed its removal is removed again by
  the rules above.

`ProviderRoutes` is the registry's first user: every node registers the LLM providers it can run as
`llm@<node>` (at start and whenever its models.json changes), and a node with none of its own has its
model calls answered by one that has (RPC "llm.generate"), the least loaded by the calls it has in
flight there and, among those, the nearest by round-trip time. Only when no node has a provider does
the call fall back to this node's own router (the client's model, or the offline planner).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from taskmaster.background import Background, woken_or_after
from taskmaster.cluster.rpc import RpcError
from taskmaster.crdt import Doc, decode
from taskmaster.crdt.doc import DELETED
from taskmaster.crdt.hlc import physical
from taskmaster.llm import GenerateRequest, GenerateResult, LlmError, LlmRouter, load_llm_config
from taskmaster.membership.member import DEAD, LEFT
from taskmaster.ring import partition_key
from taskmaster.storage import doc_key, split_doc_key

log = logging.getLogger("taskmaster.registry")

ROOT = "~cluster"
PARTITION = partition_key(ROOT, "")
ENTRY = "n/"  # document id prefix of a name
MAX_NAME = 256


@dataclass
class RegistryConfig:
    tombstone_ttl: float = 600.0
    """Seconds a removed name's tombstone is kept (anti-entropy spreads it meanwhile), then deleted."""
    scan_interval: float = 1.0
    """How often the coordinator checks for entries of dead or restarted nodes (membership changes and
    documents from peers trigger a check at once)."""


@dataclass(frozen=True)
class Entry:
    name: str
    owner: str
    node: str
    boot: str
    meta: dict

    def to_dict(self) -> dict:
        return asdict(self)


class NameTaken(Exception):
    def __init__(self, holder: Entry):
        super().__init__(f"{holder.name!r} is registered to {holder.owner} on {holder.node}")
        self.holder = holder


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or "\x00" in name:
        raise ValueError(f"a registry name is 1 to {MAX_NAME} characters without NUL, not {name!r}")
    return name


def _entry(name: str, doc: Doc | None) -> Entry | None:
    if doc is None or doc.deleted:
        return None
    meta = doc.get("meta")
    return Entry(name, doc.get("owner") or "", doc.get("node") or "", doc.get("boot") or "",
                 meta if isinstance(meta, dict) else {})


class Registry:
    def __init__(self, rep, boot: str, config: RegistryConfig | None = None, clock: Callable[[], float] = time.time):
        self.rep, self.boot, self.config, self._clock = rep, boot, config or RegistryConfig(), clock
        self.name, self.store = rep.name, rep.service.store
        self.on_conflict: list[Callable[[Entry, Entry], None]] = []  # (our entry that lost, the winner)
        self.stats = {"registered": 0, "refused": 0, "conflicts_lost": 0, "reaped": 0, "tombstones_deleted": 0}
        self.mine: dict[str, dict[str, Entry]] = {}  # name -> owner -> what this node registered and holds
        self._pending: set[tuple[str, str]] = set()  # (name, owner) whose registration is on its way
        self._boots: dict[str, str] = {}  # member -> boot id in its metadata
        self._gone: set[str] = set()  # members membership holds dead or departed
        self._wake = asyncio.Event()
        self._background = Background()
        self._next_gc = 0.0
        for method, handler in (("reg.register", self._on_register), ("reg.unregister", self._on_unregister),
                                ("reg.lookup", self._on_lookup)):
            rep.rpc.register(method, handler)
        rep.doc_listeners.append(self._on_docs)
        rep.member_listeners.append(self._on_members)

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._background.spawn(self._maintain())

    async def stop(self) -> None:
        await self._background.stop()

    # ---- the API -------------------------------------------------------------------------------------
    async def register(self, name: str, owner: str | None = None, meta: dict | None = None) -> Entry:
        """Register `name` for `owner` (default: this node) on this node; NameTaken if another owner holds it."""
        entry = Entry(check_name(name), owner or self.name, self.name, self.boot, dict(meta or {}))
        key = (name, entry.owner)
        self.mine.setdefault(name, {})[entry.owner] = entry  # first: the entry may reach us before the answer
        self._pending.add(key)
        try:
            reply = await self.rep.route(PARTITION, "reg.register", entry.to_dict(),
                                         lambda: self._on_register(self.name, entry.to_dict()))
            if "taken" in reply:
                raise NameTaken(Entry(**reply["taken"]))
        except BaseException:
            self._forget(name, entry.owner, entry)
            raise
        finally:
            self._pending.discard(key)
        return entry

    async def unregister(self, name: str, owner: str | None = None) -> bool:
        """Remove `owner`'s registration of `name`; False when it did not hold it."""
        request = {"name": check_name(name), "owner": owner or self.name}
        self._forget(name, request["owner"])
        return await self.rep.route(PARTITION, "reg.unregister", request,
                                    lambda: self._on_unregister(self.name, request))

    async def lookup(self, name: str) -> Entry | None:
        """The live entry of `name`, as the coordinator knows it (so a register that returned is seen)."""
        reply = await self.rep.route(PARTITION, "reg.lookup", check_name(name),
                                     lambda: self._on_lookup(self.name, name))
        return Entry(**reply) if reply is not None else None

    def entries(self, prefix: str = "") -> list[Entry]:
        """The live entries whose names start with `prefix`, as this node's copy has them."""
        out = []
        for key, value in self.store.scan(doc_key(ROOT, "", ENTRY + prefix)):
            entry = _entry(split_doc_key(key)[2][len(ENTRY):], decode(value))
            if entry is not None:
                out.append(entry)
        return out

    def __len__(self) -> int:
        """Documents held here, tombstones included (what the ttl keeps bounded)."""
        return sum(1 for _ in self.store.scan(doc_key(ROOT, "", ENTRY)))

    # ---- the coordinator's side --------------------------------------------------------------------
    async def _on_register(self, peer: str, request: Any) -> dict:
        if not isinstance(request, dict):
            raise ValueError("reg.register takes an entry")
        meta = request.get("meta")
        entry = Entry(check_name(request.get("name")), _text(request, "owner"), _text(request, "node"),
                      _text(request, "boot"), meta if isinstance(meta, dict) else {})
        await self.rep.catch_up_partition(PARTITION)
        holder = self._live(entry.name)  # read and written with no await between: one winner per name
        if holder is not None and holder.owner != entry.owner and self._valid(holder):
            self.stats["refused"] += 1
            return {"taken": holder.to_dict()}
        self.stats["registered"] += 1
        await self._write(entry.name, {"owner": entry.owner, "node": entry.node, "boot": entry.boot,
                                       "meta": entry.meta, DELETED: False})
        return {"entry": entry.to_dict()}

    async def _on_unregister(self, peer: str, request: Any) -> bool:
        if not isinstance(request, dict):
            raise ValueError("reg.unregister takes {name, owner}")
        name, owner = check_name(request.get("name")), _text(request, "owner")
        await self.rep.catch_up_partition(PARTITION)
        holder = self._live(name)
        if holder is None or holder.owner != owner:
            return False
        await self._write(name, {DELETED: True})
        return True

    async def _on_lookup(self, peer: str, name: Any) -> dict | None:
        check_name(name)
        await self.rep.catch_up_partition(PARTITION)
        holder = self._live(name)
        return holder.to_dict() if holder is not None and self._valid(holder) else None

    def _valid(self, entry: Entry) -> bool:
        """Whether the entry's process may still run: not when membership holds its node dead or gone,
        or its node runs another process now. A node not heard of yet (this one just started) is given
        the benefit of the doubt, or a restart would make it sweep away everyone's entries."""
        if entry.node == self.name:
            return entry.boot == self.boot
        if entry.node in self._gone:
            return False
        known = self._boots.get(entry.node)
        return known is None or known == entry.boot

    # ---- keeping it clean -----------------------------------------------------------------------------
    async def _maintain(self) -> None:
        while True:
            await woken_or_after(self._wake, self.config.scan_interval)
            try:
                await self._tidy()
            except Exception:  # a peer down mid-way: the next round tries again
                log.exception("registry upkeep failed")
            if self._clock() >= self._next_gc:
                self.gc()

    async def _tidy(self) -> None:
        """Remove zombies (on the coordinator) and put right this node's own entries (everywhere)."""
        coordinator = self.rep.candidates(PARTITION)[:1] == [self.name]
        live = {e.name: e for e in self.entries()}
        for entry in live.values():
            held = entry.owner in self.mine.get(entry.name, {})
            if entry.node == self.name and entry.boot == self.boot and not held:
                await self.unregister(entry.name, entry.owner)  # ours, but no longer held here
            elif coordinator and not self._valid(entry):
                self.stats["reaped"] += 1
                log.info("removing %r: its node %s is gone or restarted", entry.name, entry.node)
                await self._write(entry.name, {DELETED: True})
        for name, held in list(self.mine.items()):
            for owner, entry in list(held.items()):
                if name in live or (name, owner) in self._pending:
                    continue
                log.warning("registering %r again: it was removed while this node holds it", name)
                try:
                    await self.register(name, owner, entry.meta)
                except NameTaken as exc:
                    self._lost(entry, exc.holder)

    def _check_mine(self, name: str) -> None:
        """A document of a name we hold changed: did another registration win it?"""
        holder = self._live(name)
        if holder is None:
            return  # removed: `_tidy` registers it again
        for owner, ours in list(self.mine.get(name, {}).items()):
            if (name, owner) not in self._pending and (holder.owner, holder.node, holder.boot) != (
                    ours.owner, ours.node, ours.boot):
                self._forget(name, owner)
                self._lost(ours, holder)

    def _forget(self, name: str, owner: str, entry: Entry | None = None) -> None:
        """Drop (name, owner) from what this node holds (only `entry`, when given)."""
        held = self.mine.get(name, {})
        if owner in held and (entry is None or held[owner] == entry):
            del held[owner]
            if not held:
                del self.mine[name]

    def _lost(self, ours: Entry, winner: Entry) -> None:
        self.stats["conflicts_lost"] += 1
        log.warning("registration of %r by %s lost to %s on %s", ours.name, ours.owner, winner.owner, winner.node)
        for callback in self.on_conflict:
            callback(ours, winner)

    def gc(self) -> int:
        """Delete tombstones older than the ttl; returns how many."""
        self._next_gc = self._clock() + min(30.0, max(self.config.tombstone_ttl / 4, 0.01))
        horizon = (self._clock() - self.config.tombstone_ttl) * 1000
        old = [key for key, value in self.store.scan(doc_key(ROOT, "", ENTRY)) if _dead_since(decode(value), horizon)]
        if old:
            self.store.write(dict.fromkeys(old))
            self.stats["tombstones_deleted"] += len(old)
        return len(old)

    def _on_docs(self, keys: list[bytes]) -> None:
        mine = [k for k in keys if k.startswith(PARTITION)]
        if not mine:
            return
        horizon = (self._clock() - self.config.tombstone_ttl) * 1000
        expired = []
        for key in mine:
            raw = self.store.get(key)
            if raw is not None and _dead_since(decode(raw), horizon):
                expired.append(key)  # a tombstone anti-entropy brought back after its time
            self._check_mine(split_doc_key(key)[2][len(ENTRY):])
        if expired:
            self.store.write(dict.fromkeys(expired))
        self._wake.set()

    def _on_members(self, members: list) -> None:
        self._boots = {m.name: m.meta.get("boot") for m in members if isinstance(m.meta.get("boot"), str)}
        self._gone = {m.name for m in members if m.state in (DEAD, LEFT)}
        self._wake.set()

    # ---- storage -----------------------------------------------------------------------------------
    def _doc(self, name: str) -> Doc | None:
        raw = self.store.get(doc_key(ROOT, "", ENTRY + name))
        return decode(raw) if raw is not None else None

    def _live(self, name: str) -> Entry | None:
        return _entry(name, self._doc(name))

    async def _write(self, name: str, fields: dict) -> int:
        settled = self.rep.write_fields({doc_key(ROOT, "", ENTRY + name): fields})
        self._check_mine(name)
        return await settled


def _dead_since(doc: Doc, horizon: float) -> bool:
    reg = doc.fields.get(DELETED)
    return doc.deleted and reg is not None and physical(reg[0]) <= horizon


def _text(request: dict, field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string")
    return value


# ---- LLM providers -------------------------------------------------------------------------------------
PROVIDERS = "llm@"  # registry name prefix: llm@<node>, meta {"models": [{provider, modelId, roles}]}


@dataclass
class RoutingConfig:
    poll_interval: float = 2.0
    """How often this node checks its models.json for a change of the providers it advertises."""
    forward_timeout: float = 600.0
    """A forwarded model call's limit: the answering node's own retries and timeouts come first."""


class ProviderRoutes:
    def __init__(self, registry: Registry, data_dir: str | None, config: RoutingConfig | None = None):
        self.registry, self.rep, self.data_dir = registry, registry.rep, data_dir
        self.config = config or RoutingConfig()
        self.inflight: dict[str, int] = {}  # peer -> model calls this node has in flight there
        self.stats = {"forwarded": 0, "served": 0, "forward_failures": 0}
        self.advertised: list[dict] | None = None
        self._task: asyncio.Task | None = None
        self.rep.rpc.register("llm.generate", self._on_generate)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._advertise_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # ---- advertising -----------------------------------------------------------------------------------
    def own_models(self) -> list[dict]:
        """The models this node can run by itself (the offline planner aside), from its models.json."""
        try:
            return LlmRouter(load_llm_config(self.data_dir, None)).available()[:-1]
        except ValueError as exc:  # a broken models.json: nothing to offer until it is fixed
            log.warning("not advertising any model: %s", exc)
            return []

    async def advertise(self) -> None:
        """Register (or update, or withdraw) this node's providers when they changed."""
        models = self.own_models()
        if models == self.advertised:
            return
        name = PROVIDERS + self.rep.name
        if models:
            await self.registry.register(name, meta={"models": models})
        elif self.advertised:
            await self.registry.unregister(name)
        self.advertised = models

    async def _advertise_loop(self) -> None:
        while True:
            try:
                await self.advertise()
            except (RpcError, NameTaken, OSError) as exc:  # tried again next round
                log.warning("advertising this node's models failed: %s", exc)
            await asyncio.sleep(self.config.poll_interval)

    # ---- forwarding ----------------------------------------------------------------------------------
    def candidates(self) -> list[str]:
        """Reachable nodes that advertise a model, best first: fewest calls in flight, then nearest."""
        rpc = self.rep.rpc
        nodes = {e.node for e in self.registry.entries(PROVIDERS) if e.meta.get("models")
                 and e.node != self.rep.name and self.rep.reachable(e.node)}
        return sorted(nodes, key=lambda n: (self.inflight.get(n, 0), rpc.rtt(n) if rpc.rtt(n) is not None
                                            else float("inf"), n))

    async def generate(self, role: str, request: GenerateRequest, root: str | None
                       ) -> tuple[GenerateResult, str] | None:
        """The answer of the best node with a provider, and that node; None when no node could answer
        (the caller uses its own router). LlmError when the node's providers all failed."""
        payload = {"role": role, "request": request.to_dict(), "root": root}
        for node in self.candidates():
            self.inflight[node] = self.inflight.get(node, 0) + 1
            try:
                reply = await self.rep.rpc.call(node, self.rep.addrs[node], "llm.generate", payload,
                                                self.config.forward_timeout)
            except RpcError as exc:
                self.stats["forward_failures"] += 1
                log.warning("forwarding a model call to %s failed: %s", node, exc)
                continue
            finally:
                self.inflight[node] -= 1
                if not self.inflight[node]:
                    del self.inflight[node]
            if "result" in reply:
                self.stats["forwarded"] += 1
                return GenerateResult.from_dict(reply["result"]), node
            if "error" in reply:
                raise LlmError(f"{reply['error']} (answered by {node})", reply.get("code") or "AI_SERVICE_ERROR")
        return None

    async def _on_generate(self, peer: str, payload: Any) -> dict:
        """A model call from a node without a provider: run it with this node's models."""
        if not isinstance(payload, dict) or not isinstance(payload.get("request"), dict) or payload.get(
                "role") not in ("main", "research", "fallback"):
            raise ValueError("llm.generate needs {role, request}")
        root = payload.get("root")
        request = GenerateRequest.from_dict(payload["request"])
        try:
            config = load_llm_config(self.data_dir, root if isinstance(root, str) and os.path.isdir(root) else None)
        except ValueError as exc:
            return {"error": str(exc), "code": "INVALID_MODEL_CONFIG"}
        router = LlmRouter(config)
        try:
            if not router.available()[:-1]:
                return {"unavailable": True}  # its models went away since it advertised them
            self.stats["served"] += 1
            return {"result": (await router.generate(payload["role"], request)).to_dict()}
        except LlmError as exc:
            return {"error": exc.message, "code": exc.code}
        finally:
            await router.close()
