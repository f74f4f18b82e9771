"""`Membership`: one node's view of the cluster, and its lifecycle (start, join, leave, stop).

It wires the pieces together: the wire codec (messages.py), the state machine (state.py), the
failure detector and gossip (swim.py), push-pull (pushpull.py), the broadcast queue, Lifeguard's
awareness. It takes its transport, clock and random source as arguments, so the same code runs on
UDP/TCP sockets under asyncio and on the simulator's in-memory network in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine

from taskmaster.membership import messages
from taskmaster.membership.awareness import Awareness
from taskmaster.membership.broadcast import BroadcastQueue
from taskmaster.membership.config import MembershipConfig
from taskmaster.membership.member import ALIVE, STATES, SUSPECT, Member
from taskmaster.membership.messages import MAX_NAME, Codec, Dropped, Negotiation
from taskmaster.membership.pushpull import StateSync
from taskmaster.membership.state import MemberTable
from taskmaster.membership.stats import Stats
from taskmaster.membership.swim import Detector
from taskmaster.transport.auth import Keyring
from taskmaster.transport.base import Address, Clock, Transport

log = logging.getLogger("taskmaster.membership")

DROP_REASONS = ("auth", "unencrypted", "encrypted", "truncated", "oversized", "version", "malformed",
                "unexpected", "misdirected")
_REFUSALS = {
    "auth": "authentication failed: our cluster keys differ",
    "unencrypted": "this cluster requires a cluster key",
    "encrypted": "this node has no cluster key",
}


class Membership:
    """A member of a SWIM + Lifeguard cluster. Public surface: start, join, leave, stop, members,
    local_health, metrics_snapshot (and `keyring`, for key rotation).

    `on_change(member)` is called, synchronously inside the protocol, whenever a member appears,
    changes state or changes metadata: keep it quick (schedule any I/O)."""

    def __init__(self, config: MembershipConfig, transport: Transport, *, name: str, meta: dict,
                 clock: Clock | None = None, rng: random.Random | None = None,
                 on_change: Callable[[Member], None] | None = None):
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise ValueError(f"a member name is 1 to {MAX_NAME} characters")
        try:
            size = messages.encoded_size(meta)
        except (TypeError, ValueError) as e:
            raise ValueError(f"member metadata must be a msgpack-serialisable dict: {e}") from None
        if not isinstance(meta, dict) or size > config.meta_max_bytes:
            raise ValueError(f"member metadata must be a dict of at most {config.meta_max_bytes} bytes "
                             f"encoded (got {size})")
        self.config, self.transport, self.name, self.meta = config, transport, name, dict(meta)
        self.keyring = Keyring(config.keyring) if config.keyring else None
        self._clock, self._on_change = clock, on_change
        self._rng = rng or random.Random()
        self.stats = Stats()
        self.awareness = Awareness(config.awareness_max_multiplier)
        self.codec = Codec(self.keyring, config.packet_size, config.max_frame)
        self.negotiation = Negotiation()  # the protocol version the codec sends
        self.table: MemberTable | None = None
        self.broadcasts: BroadcastQueue | None = None
        self.detector: Detector | None = None
        self.sync: StateSync | None = None
        self._tasks: dict[asyncio.Task, None] = {}
        self._running = False

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, and announce ourselves alive (a one-member cluster until `join`)."""
        if self.table is not None:
            raise RuntimeError("a Membership starts once")
        loop = asyncio.get_running_loop()
        clock = self._clock or loop
        self._loop = loop
        self.broadcasts = BroadcastQueue(self.config.retransmit_mult, lambda: table.num_nodes(),
                                         on_ready=lambda: self.detector.gossip_ready())
        table = self.table = MemberTable(self.config, clock, self._rng, self.name, self.broadcasts,
                                         self.awareness, self.stats, self._changed)
        self.detector = Detector(self.config, table, self.transport, self.codec, clock, self._rng,
                                 self.awareness, self.broadcasts, self.stats, self._spawn)
        self.sync = StateSync(self.config, table, self.transport, self.codec, clock, self._rng,
                              self.stats, self._spawn)
        await self.transport.start(self._on_packet, self._on_stream, self._on_drop)
        self._running = True
        table.alive(1, self.name, self.transport.local_addr, self.meta, bootstrap=True)
        table.local = table.by_name[self.name]
        self.detector.start()
        self.sync.start()

    async def join(self, addrs: list[tuple[str, int]]) -> int:
        """Exchange state with the given members (retrying with backoff until one answers);
        returns how many answered. Raises JoinError when none did."""
        if not self._running:
            raise RuntimeError("start() the Membership before joining")
        return await self.sync.join(addrs)

    async def leave(self, timeout: float) -> bool:
        """Announce that we leave (others mark us "left", not failed) and wait up to `timeout`
        for the news to be sent out. True if it was fully disseminated."""
        table = self.table
        if not self._running or table.leaving:
            return False
        table.leaving = True
        sent = asyncio.Event()
        table.dead(table.local.incarnation, self.name, self.name, notify=sent.set)
        if not any(n.state == ALIVE for n in table.nodes if n is not table.local):
            return True
        try:
            await asyncio.wait_for(sent.wait(), timeout)
            return True
        except TimeoutError:
            log.warning("leave: announcement not fully sent within %.1fs", timeout)
            return False

    async def stop(self) -> None:
        """Stop at once, without announcing it (to the others this node now looks failed)."""
        if not self._running:
            return
        self._running = False
        self.detector.stop()
        self.sync.stop()
        for timer in self.table.timers.values():
            timer.cancel()
        self.table.timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.transport.close()

    # --- reading -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def members(self) -> list[Member]:
        """Every member known, this node included, with members declared dead or that left (kept
        for reconnect_timeout / tombstone_timeout)."""
        return self.table.members() if self.table is not None else []

    @property
    def protocol_version(self) -> int:
        """The wire protocol version this node sends: the highest every live member decodes."""
        return self.codec.version

    def local_health(self) -> int:
        """Lifeguard's local health score: 0 healthy .. awareness_max_multiplier-1 (7 by default)."""
        return self.awareness.score

    def metrics_snapshot(self) -> dict:
        states = Counter(m.state for m in self.members())
        s = self.stats
        return {
            "members": {state: states.get(state, 0) for state in STATES},
            "probes_sent": s.probes_sent,
            "probes_failed": s.probes_failed,
            "suspicions_raised": s.suspicions_raised,
            "suspicions_refuted": s.suspicions_refuted,
            "packets_dropped": {reason: s.dropped.get(reason, 0) for reason in DROP_REASONS},
            "broadcast_queue_depth": len(self.broadcasts) if self.broadcasts is not None else 0,
            "lhm": self.awareness.score,
            "protocol_version": self.codec.version,
            "packets_sent": s.packets_sent,
            "packets_received": s.packets_received,
            "bytes_sent": s.bytes_sent,
            "bytes_received": s.bytes_received,
            "streams_sent": s.streams_sent,
            "streams_received": s.streams_received,
        }

    # --- input ---------------------------------------------------------------------------------------

    def _on_packet(self, data: bytes, sender: Address) -> None:
        stats = self.stats
        stats.packets_received += 1
        stats.bytes_received += len(data)
        try:
            msgs = self.codec.decode_packet(data)
        except Dropped as e:
            stats.dropped[e.reason] += 1
            return
        if not self._running:
            return
        detector, table = self.detector, self.table
        for m in msgs:
            kind = m[0]
            if kind == messages.ACK:
                detector.on_ack(m[1])
            elif kind == messages.PING:
                detector.on_ping(m[1], m[2], sender, msgs.version)
            elif kind == messages.ALIVE:
                table.alive(m[1], m[2], (m[3], m[4]), m[5])
            elif kind == messages.SUSPECT:
                table.suspect(m[1], m[2], m[3])
            elif kind == messages.DEAD:
                table.dead(m[1], m[2], m[3])
            elif kind == messages.PING_REQ:
                detector.on_ping_req(m[1], m[2], (m[3], m[4]), m[5], sender, msgs.version)
            elif kind == messages.NACK:
                detector.on_nack(m[1])
            else:
                stats.dropped["unexpected"] += 1

    def _on_stream(self, data: bytes, sender: Address) -> bytes | None:
        self.stats.streams_received += 1
        self.stats.bytes_received += len(data)
        try:
            msgs = self.codec.decode_frame(data)
        except Dropped as e:
            self.stats.dropped[e.reason] += 1
            return Codec.reject(_REFUSALS.get(e.reason, f"bad request ({e.reason})"))
        if not self._running:
            return None
        m = msgs[0]
        if m[0] == messages.PUSH_PULL:
            reply = self.sync.serve(m[1:], msgs.version)
        elif m[0] == messages.PING:
            if m[2] != self.name:
                self.stats.dropped["misdirected"] += 1
                return None
            reply = self.codec.encode([messages.ack(m[1])], msgs.version)
        else:
            self.stats.dropped["unexpected"] += 1
            return None
        self.stats.bytes_sent += len(reply)
        return reply

    def _changed(self, member: Member) -> None:
        self.negotiation.update(member.name, member.state in (ALIVE, SUSPECT), member.meta)
        self.codec.version = self.negotiation.version
        if self._on_change is not None:
            self._on_change(member)

    def _on_drop(self, reason: str) -> None:
        self.stats.dropped[reason] += 1

    def _spawn(self, coro: Coroutine) -> asyncio.Task | None:
        if not self._running:
            coro.close()
            return None
        task = self._loop.create_task(coro)
        self._tasks[task] = None
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("membership task failed", exc_info=task.exception())
