"""The coordinator: where a call runs, how its writes reach N replicas, and how replicas catch up.

- Routing. A call works on one partition (project, tag). It runs on the partition's coordinator:
  the first reachable member of the partition's preference list. Any node takes any call and
  forwards it there; a peer that cannot be reached is skipped, and with nobody reachable the call
  runs here (available under partition: CRDT documents merge when the sides meet again).
- Writes. The coordinator commits locally and, while its own fsync runs, sends the changed
  documents to the other members of the preference list. It answers once W copies are durable (its
  own included), or once every attempt has ended, saying how many copies there are.
- Sloppy quorum and hinted handoff. A document a preferred replica cannot take goes to the next
  reachable member beyond the list with a hint naming the owner (or, with no such member, the hint
  stays here). Hints are durable and replayed as soon as the owner is reachable.
- Catch-up. A node that starts coordinating a partition (after a failover, a restart or a heal)
  first compares digests with the partition's other reachable replicas, so it never answers from a
  stale copy; anti-entropy does the same for every shared partition on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from taskmaster.background import Background, woken_or_after
from taskmaster.cluster.rpc import Indeterminate, RemoteError, Rpc, RpcError, Unreachable
from taskmaster.config import split_hostport
from taskmaster.crdt import Doc, decode, encode, merge
from taskmaster.membership.member import ALIVE, LEFT, SUSPECT, Member
from taskmaster.replication.antientropy import AntiEntropy
from taskmaster.replication.grants import Grants
from taskmaster.replication.hints import Hints
from taskmaster.ring import PROJECT_TAG, Ring, partition_key, split_partition
from taskmaster.storage.digest import partition_of

log = logging.getLogger("taskmaster.replication")

SYSTEM_ROOTS = b"d\x00~"
"""Documents of the cluster's own (registry entries, operation records: roots "~..."), not tasks: no
task invariants to repair there."""

def _has_tasks(partition: bytes) -> bool:
    """A tag of a project (not the project's own partition, not the cluster's system documents)."""
    return not partition.startswith(SYSTEM_ROOTS) and split_partition(partition)[1] != PROJECT_TAG


LocalCall = Callable[[str, Any, Callable[[], str | None], bytes], Awaitable[dict]]
"""Runs a forwarded tool call here: (name, arguments, quorum problem of its partition, partition)."""


@dataclass
class ReplicationConfig:
    replicas: int | None = 3
    """N: copies of each partition. None keeps a full copy on every member."""
    zone: str = ""
    """This node's zone; the other members' zones come with their metadata (the ring spreads a
    partition's replicas over zones)."""
    write_quorum: int = 2
    """W: durable copies before a write is acknowledged (clamped to N)."""
    put_timeout: float = 1.0
    """How long a replica may take to make a write durable before it counts as unreachable."""
    call_timeout: float = 30.0
    """How long a forwarded tool call may run on its coordinator."""
    catch_up_timeout: float = 2.0
    """A new coordinator's digest comparison with each replica, at most."""
    handoff_interval: float = 0.2
    """How often hints are offered to owners that are reachable again."""
    handoff_batch: int = 500
    antientropy_interval: float = 2.0
    """Mean time between digest exchanges with a random peer (jittered)."""
    repair_delay: float = 0.05
    """After documents from a peer change a tag: wait this long (the rest of a burst arrives), then
    check the tag's invariants once."""
    repair_interval: float = 2.0
    """And every this often, each tag this node coordinates now whose documents a peer changed
    since its last check (it may not have coordinated the tag when they arrived)."""


@dataclass
class _Flight:
    docs: dict[bytes, bytes]
    done: asyncio.Future


class CallFailed(Exception):
    """A forwarded call was sent and its outcome is unknown, or its coordinator failed it."""


class Replicator:
    def __init__(self, name: str, config: ReplicationConfig, service, rpc: Rpc, hints: Hints, grants: Grants,
                 antientropy: AntiEntropy, metrics=None, rng: random.Random | None = None):
        self.name, self.config, self.service, self.rpc = name, config, service, rpc
        self.hints, self.grants, self.antientropy, self.metrics = hints, grants, antientropy, metrics
        self.local_call: LocalCall | None = None  # runs a tool call here (set by the API layer)
        self.on_ring_change: Callable[[dict[str, str]], None] | None = None  # e.g. to persist members -> zones
        self.member_listeners: list[Callable[[list[Member]], None]] = []  # told of every membership change
        self.doc_listeners: list[Callable[[list[bytes]], None]] = []  # told of the keys peers' documents changed
        self.ring = Ring({name: config.zone})
        self._remembered: dict[str, str] = {}  # name -> zone
        self.alive: frozenset[str] = frozenset([name])
        self.addrs: dict[str, tuple[str, int]] = {}
        self.stats = {"writes": 0, "quorum_failures": 0, "hinted": 0, "handed_off": 0, "forwarded": 0,
                      "antientropy_rounds": 0, "docs_repaired": 0, "invariant_repairs": 0}
        self._rng = rng or random.Random()
        self._prefs: dict[bytes, list[str]] = {}
        self._fresh: set[bytes] = set()
        self._catching_up: dict[bytes, asyncio.Future] = {}
        self._background = Background()
        self._outbox: dict[bytes, _Flight] = {}  # per partition: the batch gathering for the next flight
        self._flying: set[bytes] = set()  # partitions with a batch on its way
        self._repairing: set[bytes] = set()  # partitions with an invariant check scheduled
        self._unchecked: set[bytes] = set()  # task partitions peers changed since their last check here
        self._silent: dict[str, tuple[float, float]] = {}  # peer -> (skipped until, backoff): see _went_silent
        self._wake_handoff = asyncio.Event()
        rpc.register("rep.put", self._on_put)
        rpc.register("tool.call", self._on_call)
        rpc.register("rep.partitions", self._on_partitions)
        rpc.register("claim.grant", self._on_grant)
        rpc.register("claim.release", self._on_release)
        for method, handler in antientropy.handlers.items():
            rpc.register(method, handler)

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        # What the last run stored was perhaps never checked: every tag once, as it becomes ours.
        self._unchecked.update(p for p in self.service.store.digest.partitions() if _has_tasks(p))
        self._background.spawn(self._handoff_loop())
        self._background.spawn(self._antientropy_loop())
        self._background.spawn(self._repair_loop())

    async def stop(self) -> None:
        await self._background.stop()

    # ---- members and the ring ------------------------------------------------------------------------
    def remember(self, members: Mapping[str, str] | Iterable[str]) -> None:
        """The members of the ring this node last knew (from its data dir; name -> zone, or plain
        names of zone ""), kept in the ring until `synced`: a node restarting keeps the same
        preference lists, so what it writes before it has rejoined goes to the right owners (as
        hints) instead of making it a cluster of one."""
        zones = dict(members) if isinstance(members, Mapping) else dict.fromkeys(members, "")
        self._remembered = {name: str(zone) for name, zone in zones.items() if name != self.name}
        self._set_ring({**self._remembered, self.name: self.config.zone})

    def synced(self) -> None:
        """Membership has heard from the cluster: from now on it alone says who is in the ring."""
        self._remembered = {}

    def _set_ring(self, zones: dict[str, str]) -> None:
        if self.ring.zones == zones:
            return
        for gone in set(self.ring.members) - set(zones):
            self.hints.drop(gone)  # its partitions have new owners, filled by anti-entropy
        self.ring = Ring(zones)
        self._prefs.clear()
        self._fresh.clear()
        self.service.replicate = self.replicate if len(self.ring) > 1 else None
        if self.on_ring_change is not None:
            self.on_ring_change(self.ring.zones)

    def set_members(self, members: Iterable[Member]) -> None:
        """Called on every membership change: rebuild the ring, note who is reachable."""
        members = list(members)
        ring, alive = {**self._remembered, self.name: self.config.zone}, {self.name}
        for m in members:
            if m.state == LEFT or m.name == self.name:
                continue
            zone = m.meta.get("zone")
            ring[m.name] = zone if isinstance(zone, str) else ""  # a node without one: zone ""
            if m.state in (ALIVE, SUSPECT):
                alive.add(m.name)
            rpc = m.meta.get("rpc")
            if isinstance(rpc, str):
                try:
                    self.addrs[m.name] = split_hostport(rpc)
                except ValueError:
                    log.warning("member %s advertises a bad rpc address %r", m.name, rpc)
        self._set_ring(ring)
        alive_now = frozenset(alive)
        if alive_now != self.alive:
            for name in self.alive - alive_now:  # calls in flight to it fail now, not at their timeout
                if name in self.addrs:
                    self.rpc.disconnect(self.addrs[name])
            back = alive_now - self.alive
            self.alive = alive_now
            for name in back:
                self._answered(name)
            self._fresh.clear()
            if back:
                self._wake_handoff.set()
                for name in back:
                    self._background.spawn(self._exchange(name))
        for listener in self.member_listeners:
            listener(members)

    def reachable(self, name: str) -> bool:
        return name == self.name or (name in self.alive and name in self.addrs
                                     and not self.rpc.faults.blocks(name)
                                     and self._silent.get(name, (0.0, 0.0))[0] <= time.monotonic())

    def _went_silent(self, name: str) -> None:
        """A peer that let a call time out is skipped for a while, twice as long each time in a row
        (up to 10 s): membership may still hold it alive (a partition hidden by a node that sees both
        sides), and every write would otherwise wait out the timeout again. Its hints wait meanwhile."""
        backoff = min(10.0, max(self.config.put_timeout, 2 * self._silent.get(name, (0.0, 0.0))[1]))
        self._silent[name] = (time.monotonic() + backoff, backoff)
        if name in self.addrs:
            self.rpc.disconnect(self.addrs[name])

    def _answered(self, name: str) -> None:
        self._silent.pop(name, None)

    def preference(self, partition: bytes) -> list[str]:
        pref = self._prefs.get(partition)
        if pref is None:
            n = self.config.replicas or len(self.ring)
            pref = self._prefs[partition] = self.ring.preference(partition, n)
        return pref

    def candidates(self, partition: bytes) -> list[str]:
        """Reachable members in the order they should coordinate `partition`."""
        pref = self.preference(partition)
        rest = [m for m in self.ring.walk(partition) if m not in pref]
        return [m for m in pref + rest if self.reachable(m)]

    def write_quorum(self, partition: bytes) -> int:
        return max(1, min(self.config.write_quorum, len(self.preference(partition))))

    def quorum_problem(self, partition: bytes) -> str | None:
        """None when a majority of the partition's replicas is reachable, else why not."""
        pref = self.preference(partition)
        up = sum(1 for m in pref if self.reachable(m))
        need = len(pref) // 2 + 1
        if up >= need:
            return None
        return f"only {up} of the {len(pref)} replicas of this tag are reachable from {self.name} (need {need})"

    # ---- routing -------------------------------------------------------------------------------------
    def primary(self, partition: bytes) -> str | None:
        """The first member of the preference list that membership does not hold dead: the only
        one that may take a decision that must not be taken twice (a claim)."""
        return next((m for m in self.preference(partition) if m in self.alive), None)

    def strict_problem(self, partition: bytes) -> str | None:
        primary = self.primary(partition)
        if primary != self.name:
            return f"this tag's claims are decided by {primary or 'its first live replica'}, not {self.name}"
        if partition not in self._fresh:
            return f"{self.name} has not yet caught up with the tag's other replicas"
        return self.quorum_problem(partition)

    async def call(self, root: str, tag: str, name: str, arguments: Any,
                   run_here: Callable[[], Awaitable[dict]], strict: bool = False) -> dict:
        """Run a tool call on the coordinator of (root, tag): forwarded, or `run_here`. Tag "" is
        the project's own partition, for calls that work across tags. A `strict` call (a claim) runs
        only on the partition's primary: it is refused rather than sent to a stand-in."""
        partition = partition_key(root, tag)
        if strict:
            primary = self.primary(partition)
            if primary is None or (primary != self.name and not self.reachable(primary)):
                raise CallFailed(f"a claim is decided only by this tag's primary replica "
                                 f"({primary or 'none is alive'}), which {self.name} cannot reach")
        for peer in [self.primary(partition)] if strict else self.candidates(partition):
            if peer == self.name:
                break
            try:
                self.stats["forwarded"] += 1
                return await self.rpc.call(peer, self.addrs[peer], "tool.call",
                                           {"name": name, "arguments": arguments, "root": root, "tag": tag,
                                            "strict": strict}, self.config.call_timeout,
                                           receipt_within=self.config.put_timeout)
            except Unreachable as e:
                if strict:
                    raise CallFailed(f"a claim is decided only by this tag's primary replica {peer}: {e}") from None
                continue  # not sent: the next candidate may run it
            except Indeterminate as e:
                self._went_silent(peer)
                raise CallFailed(f"the coordinator {peer} did not answer; the call may or may not have "
                                 f"taken effect ({e})") from None
            except RemoteError as e:
                raise CallFailed(f"the coordinator {peer} failed the call: {e}") from None
        await self.catch_up(root, tag)
        return await run_here()

    async def route(self, partition: bytes, method: str, payload: Any, run_here: Callable[[], Awaitable[Any]],
                    timeout: float | None = None) -> Any:
        """Run an idempotent request on the coordinator of `partition`: `method` on the first reachable
        candidate, or `run_here` (after catching up) when that is this node. A candidate that cannot be
        reached or does not answer is passed over, so the request may run twice: it must be idempotent."""
        for peer in self.candidates(partition):
            if peer == self.name:
                break
            try:
                return await self.rpc.call(peer, self.addrs[peer], method, payload, timeout or self.config.call_timeout)
            except (Unreachable, Indeterminate) as e:
                log.debug("%s on %s failed, trying the next candidate: %s", method, peer, e)
        await self.catch_up_partition(partition)
        return await run_here()

    async def _on_call(self, peer: str, payload: Any) -> dict:
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            raise ValueError("tool.call needs {name, arguments}")
        root, tag = payload.get("root"), payload.get("tag")
        if not isinstance(root, str) or not isinstance(tag, str):
            raise ValueError("tool.call needs the root and tag it was routed by")
        await self.catch_up(root, tag)
        partition = partition_key(root, tag)
        check = self.strict_problem if payload.get("strict") else self.quorum_problem
        return await self.local_call(payload["name"], payload.get("arguments"), lambda: check(partition), partition)

    async def catch_up(self, root: str, tag: str) -> None:
        """Before coordinating a partition for the first time since the members changed, merge in
        what its other reachable replicas have (so a failover never answers from a stale copy).
        A call across tags first gathers every tag of the project that is not kept here."""
        partition = partition_key(root, tag)
        if tag == PROJECT_TAG and self.config.replicas and len(self.ring) > self.config.replicas:
            await self._gather_project(root)
        await self.catch_up_partition(partition)

    async def catch_up_partition(self, partition: bytes) -> None:
        """Merge in what the partition's other reachable replicas have, once per membership change."""
        if partition in self._fresh:
            return
        running = self._catching_up.get(partition)
        if running is None:
            running = self._catching_up[partition] = asyncio.ensure_future(self._catch_up(partition))
            running.add_done_callback(lambda _: self._catching_up.pop(partition, None))
        await asyncio.shield(running)

    async def _catch_up(self, partition: bytes) -> None:
        peers = [m for m in self.preference(partition) if m != self.name and self.reachable(m)]
        done = await asyncio.gather(*(self._exchange(p, [partition], self.config.catch_up_timeout) for p in peers))
        if all(done):  # else the next call tries again (and a claim is refused meanwhile)
            self._fresh.add(partition)

    async def _gather_project(self, root: str) -> None:
        async def from_peer(peer: str) -> None:
            try:
                parts = await self.rpc.call(peer, self.addrs[peer], "rep.partitions", root,
                                            self.config.catch_up_timeout)
            except RpcError:
                return
            if isinstance(parts, list) and all(isinstance(p, bytes) for p in parts):
                await self._exchange(peer, parts, self.config.catch_up_timeout)

        await asyncio.gather(*(from_peer(m) for m in self.ring.members if m != self.name and self.reachable(m)))

    async def _on_partitions(self, peer: str, root: Any) -> list[bytes]:
        if not isinstance(root, str):
            raise ValueError("rep.partitions takes a project root")
        prefix = partition_key(root, PROJECT_TAG)[:-1]
        return [p for p in self.service.store.digest.partitions() if p.startswith(prefix)]

    # ---- claims ----------------------------------------------------------------------------------------
    async def grant(self, partition: bytes, item: str, agent: str, expires_at: str, seen: dict | None) -> str | None:
        """Ask the partition's replicas to grant `item` to `agent`; None once a majority has, else
        why not (the grants obtained are withdrawn)."""
        pref = self.preference(partition)
        need = len(pref) // 2 + 1
        payload = {"partition": partition, "item": item, "agent": agent, "expiresAt": expires_at, "seen": seen}

        async def ask(member: str) -> bool:
            if member == self.name:
                return await self._on_grant(self.name, payload)
            try:
                return await self.rpc.call(member, self.addrs[member], "claim.grant", payload,
                                           self.config.put_timeout) is True
            except RpcError:
                return False

        answers = await asyncio.gather(*(ask(m) for m in pref if self.reachable(m)))
        granted = sum(answers)
        if granted >= need:
            return None
        for member in pref:
            if self.reachable(member) and member != self.name:
                self._background.spawn(self._release(member, payload))
        self.grants.release(partition, item, agent, expires_at)
        return f"only {granted} of the {len(pref)} replicas granted it (need {need})"

    async def _release(self, member: str, payload: dict) -> None:
        try:
            await self.rpc.call(member, self.addrs[member], "claim.release", payload, self.config.put_timeout)
        except RpcError:
            pass  # the grant expires with the lease anyway

    async def _on_grant(self, peer: str, payload: Any) -> bool:
        partition, item, agent, expires_at, seen = _grant_request(payload)
        if not self.grants.grant(partition, item, agent, expires_at, seen):
            return False
        await self.service.store.durable()
        return True

    async def _on_release(self, peer: str, payload: Any) -> None:
        partition, item, agent, expires_at, _ = _grant_request(payload)
        self.grants.release(partition, item, agent, expires_at)

    # ---- writes --------------------------------------------------------------------------------------
    async def replicate(self, changes: dict[bytes, bytes]) -> int:
        """Ship a committed batch to the other replicas; returns the durable copies it reached
        besides ours (the fewest over the partitions the batch touched)."""
        groups: dict[bytes, dict[bytes, bytes]] = {}
        for key, value in changes.items():
            groups.setdefault(partition_of(key), {})[key] = value
        self.stats["writes"] += 1
        counts = await asyncio.gather(*(self._board(p, docs) for p, docs in groups.items()))
        return min(counts)

    def write_fields(self, changes: dict[bytes, dict[str, Any]]) -> asyncio.Future[int]:
        """Set fields of documents that belong to no project (a registry entry, an operation record):
        each merged into the stored document with one stamp and written at once (a caller's check and
        its write happen together); the future ends once the batch is durable here and sent to the
        partitions' replicas, with the durable copies it has (ours included)."""
        hlc = self.service.hlc
        ts, node = hlc.now(), hlc.node
        store = self.service.store
        batch = {}
        for key, values in changes.items():
            delta = Doc()
            for name, value in values.items():
                delta.set(name, value, ts, node)
            raw = store.get(key)
            batch[key] = encode(delta if raw is None else merge(decode(raw), delta))
        store.write(batch)

        async def settle() -> int:
            replicating = asyncio.ensure_future(self.replicate(batch))
            await store.durable()
            return 1 + await replicating

        return asyncio.ensure_future(settle())

    async def _board(self, partition: bytes, docs: dict[bytes, bytes]) -> int:
        """Ride the partition's next flight: while one batch is on its way to the replicas, the
        writes committed meanwhile gather into the next (group commit, as for the local fsync).
        A later copy of a document replaces an earlier one: it is the earlier merged with more."""
        flight = self._outbox.get(partition)
        if flight is None:
            flight = self._outbox[partition] = _Flight({}, asyncio.get_running_loop().create_future())
            if partition not in self._flying:
                asyncio.get_running_loop().call_soon(self._take_off, partition)
        flight.docs.update(docs)
        return await asyncio.shield(flight.done)

    def _take_off(self, partition: bytes) -> None:
        flight = self._outbox.pop(partition, None)
        if flight is None:
            return
        self._flying.add(partition)

        async def fly() -> None:
            try:
                flight.done.set_result(await self._replicate(partition, [[k, v] for k, v in flight.docs.items()]))
            except BaseException as e:
                flight.done.set_exception(e)
                raise
            finally:
                self._flying.discard(partition)
                if partition in self._outbox:
                    self._take_off(partition)

        self._background.spawn(fly())

    async def _replicate(self, partition: bytes, docs: list[list[bytes]]) -> int:
        pref = self.preference(partition)
        need = self.write_quorum(partition) - 1
        spare = iter([m for m in self.ring.walk(partition) if m not in pref and m != self.name])
        acked = 0
        enough = asyncio.Event()
        started = time.perf_counter()

        async def ship(owner: str) -> None:
            nonlocal acked
            if await self._put(owner, docs, None, started):
                acked += 1
            else:
                for fallback in spare:  # shared: each fallback stands in for one owner
                    if self.reachable(fallback) and await self._put(fallback, docs, owner, started):
                        acked += 1
                        break
                else:
                    self.hints.add(owner, [k for k, _ in docs])
                    await self.service.store.durable()
                self.stats["hinted"] += 1
            if acked >= need:
                enough.set()

        owners = [m for m in pref if m != self.name]
        if not owners or need <= 0:
            for owner in owners:
                self._background.spawn(ship(owner))
            return 0
        shipping = [self._background.spawn(ship(owner)) for owner in owners]
        waiting = asyncio.ensure_future(enough.wait())
        await asyncio.wait([waiting, *shipping], return_when=asyncio.FIRST_COMPLETED)
        while not enough.is_set() and not all(t.done() for t in shipping):
            await asyncio.wait([waiting, *(t for t in shipping if not t.done())],
                               return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if acked < need:
            self.stats["quorum_failures"] += 1
        return acked

    async def _put(self, peer: str, docs: list, hint: str | None, started: float) -> bool:
        if not self.reachable(peer):
            return False
        try:
            await self.rpc.call(peer, self.addrs[peer], "rep.put", {"docs": docs, "hint": hint},
                                self.config.put_timeout)
        except RpcError as e:
            log.debug("put to %s failed: %s", peer, e)
            if isinstance(e, Indeterminate):
                self._went_silent(peer)
            return False
        self._answered(peer)
        if self.metrics is not None:
            self.metrics.replication_lag.observe(time.perf_counter() - started)
        return True

    async def _on_put(self, peer: str, payload: Any) -> int:
        docs = _documents(payload.get("docs") if isinstance(payload, dict) else None)
        hint = payload.get("hint")
        if hint is not None and not isinstance(hint, str):
            raise ValueError("hint must be a member name")
        if hint is not None and hint != self.name:
            self.hints.add(hint, [k for k, _ in docs])  # made durable with the documents
        return await self.apply(docs)

    async def apply(self, docs: list[tuple[bytes, bytes]]) -> int:
        """Merge documents from a peer. Where they changed a tag this node coordinates, they may come
        from the other side of a partition: check the tag's invariants soon (once for a burst)."""
        changed = await self.service.apply_remote(docs)
        if changed:
            for listener in self.doc_listeners:
                listener(changed)
        for partition in {partition_of(k) for k in changed}:
            if not _has_tasks(partition):
                continue
            self._unchecked.add(partition)
            if partition not in self._repairing and self.candidates(partition)[:1] == [self.name]:
                self._repairing.add(partition)
                self._background.spawn(self._repair(partition))
        return len(changed)

    async def _repair(self, partition: bytes) -> None:
        try:
            await asyncio.sleep(self.config.repair_delay)
            self._unchecked.discard(partition)
            self.stats["invariant_repairs"] += len(await self.service.repair(*split_partition(partition)))
        finally:
            self._repairing.discard(partition)

    async def _repair_loop(self) -> None:
        """Tags peers changed while this node did not coordinate them are checked once it does: a
        stale write by a coordinator resumed after a pause arrives as a plain put while that
        coordinator is first in line again, and the tag may come back to us. Only peers' documents
        can break an invariant (this node's own writes keep them), so a tag written only here is
        never re-checked. After each check it waits ten times what the check cost."""
        while True:
            await asyncio.sleep(self.config.repair_interval)
            for partition in list(self._unchecked):
                if partition in self._repairing or self.candidates(partition)[:1] != [self.name]:
                    continue
                self._unchecked.discard(partition)
                started = time.perf_counter()
                self.stats["invariant_repairs"] += len(await self.service.repair(*split_partition(partition)))
                await asyncio.sleep(10 * (time.perf_counter() - started))

    # ---- hinted handoff --------------------------------------------------------------------------------
    async def _handoff_loop(self) -> None:
        while True:
            await woken_or_after(self._wake_handoff, self.config.handoff_interval)
            for owner in self.hints.owners():
                if self.reachable(owner):
                    await self._hand_off(owner)

    async def _hand_off(self, owner: str) -> None:
        sent = 0
        while True:
            batch = self.hints.batch(owner, self.config.handoff_batch)
            if not batch:
                if sent:  # one line per handoff, not per batch
                    log.info("handed off %d hinted documents to %s", sent, owner,
                             extra={"event": "handoff", "node": owner, "docs": sent})
                return
            try:
                await self.rpc.call(owner, self.addrs[owner], "rep.put",
                                    {"docs": [list(d) for d in batch], "hint": None}, self.config.put_timeout * 5)
            except RpcError as e:
                log.debug("handoff to %s failed: %s", owner, e)
                return
            self.hints.done(owner, [k for k, _ in batch])
            self.stats["handed_off"] += len(batch)
            sent += len(batch)

    # ---- anti-entropy ----------------------------------------------------------------------------------
    async def _antientropy_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.antientropy_interval * (0.5 + self._rng.random()))
            peers = [m for m in self.alive if m != self.name and self.reachable(m)]
            if peers:
                await self._exchange(self._rng.choice(peers))

    def shared_partitions(self, peer: str) -> list[bytes]:
        """Partitions we hold that `peer` should hold too."""
        return [p for p in self.service.store.digest.partitions() if peer in self.preference(p)]

    async def _exchange(self, peer: str, partitions: list[bytes] | None = None,
                        timeout: float | None = None) -> bool:
        """Compare and repair the partitions shared with `peer`; False if the exchange failed."""
        parts = self.shared_partitions(peer) if partitions is None else partitions
        if not parts:
            return True
        if not self.reachable(peer):
            return False
        try:
            async with asyncio.timeout(timeout or self.config.call_timeout):
                result = await self.antientropy.exchange(peer, parts)
        except (RpcError, TimeoutError, ValueError) as e:
            log.debug("anti-entropy with %s failed: %s", peer, e)
            return False
        self.stats["antientropy_rounds"] += 1
        self.stats["docs_repaired"] += result.docs_changed_here + result.docs_sent
        return True

    async def call_peer(self, peer: str, method: str, payload: Any) -> Any:
        """What anti-entropy calls a peer with."""
        if not self.reachable(peer):
            raise Unreachable(f"{peer} is not reachable")
        return await self.rpc.call(peer, self.addrs[peer], method, payload, self.config.call_timeout)

    # ---- reading ---------------------------------------------------------------------------------------
    def ownership(self) -> dict:
        """For /cluster: the ring, and which partitions each member holds among those stored here."""
        parts = self.service.store.digest.partitions()
        owned: dict[str, int] = {m: 0 for m in self.ring.members}
        for p in parts:
            for m in self.preference(p):
                owned[m] = owned.get(m, 0) + 1
        return {"replicas": self.config.replicas or "all", "write_quorum": self.config.write_quorum,
                "vnodes": self.ring.vnodes, "members": list(self.ring.members),
                "reachable": sorted(m for m in self.ring.members if self.reachable(m)),
                "partitions_owned": owned, "hints_pending": len(self.hints)}


def _documents(raw: Any) -> list[tuple[bytes, bytes]]:
    """Validate a list of [key, value] document pairs from a peer."""
    if not isinstance(raw, list):
        raise ValueError("docs must be a list of [key, value]")
    out = []
    for item in raw:
        if (not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], bytes)
                or not isinstance(item[1], bytes) or not item[0].startswith(b"d\x00")):
            raise ValueError("each document is [key bytes, value bytes] with a document key")
        out.append((item[0], item[1]))
    return out


def _grant_request(payload: Any) -> tuple[bytes, str, str, str, dict | None]:
    if not isinstance(payload, dict):
        raise ValueError("a grant request is a map")
    partition, item, agent = payload.get("partition"), payload.get("item"), payload.get("agent")
    expires_at, seen = payload.get("expiresAt"), payload.get("seen")
    if not (isinstance(partition, bytes) and isinstance(item, str) and isinstance(agent, str)
            and isinstance(expires_at, str) and (seen is None or isinstance(seen, dict))):
        raise ValueError("a grant request needs partition, item, agent, expiresAt and seen")
    return partition, item, agent, expires_at, seen
