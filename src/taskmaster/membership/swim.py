"""SWIM's failure detector and gossip rounds (memberlist state.go probe/gossip, with Lifeguard).

Each probe interval this node pings one member, round robin. No ack within probe_timeout: it asks
k helpers to ping the target for it (ping-req; each helper answers with a nack if the target does
not answer it either) and tries the target over TCP as well. Still nothing by the end of the round
(probe_interval stretched by the local health multiplier): the target becomes suspect. Every
packet sent carries as many queued updates as fit; gossip rounds send the rest to a few random
members while any are queued.

Lifeguard: a successful probe lowers the local health score, each helper that fails to send the
expected nack raises it (the prober, not the target, is then likely the sick one), and a suspect
is told it is suspected in the very ping that probes it (the buddy system), so its refutation rides
back on the ack.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Coroutine

from taskmaster.membership import messages
from taskmaster.membership.awareness import Awareness
from taskmaster.membership.broadcast import BroadcastQueue
from taskmaster.membership.config import MembershipConfig
from taskmaster.membership.member import ALIVE, DEAD, SUSPECT, NodeState
from taskmaster.membership.messages import Codec, Dropped, Rejected
from taskmaster.membership.state import MemberTable
from taskmaster.membership.stats import Stats
from taskmaster.transport.base import Address, Clock, TimerHandle, Transport, TransportError

log = logging.getLogger("taskmaster.membership")
Spawn = Callable[[Coroutine], object]


class _ProbeRound:
    """One probe of one target, from the ping to the end of its (stretched) interval."""

    __slots__ = ("name", "addr", "incarnation", "seq", "deadline", "timer", "helpers", "nacks", "tcp_ok")

    def __init__(self, node: NodeState, seq: int, deadline: float):
        self.name, self.addr, self.incarnation = node.name, node.addr, node.incarnation
        self.seq, self.deadline = seq, deadline
        self.timer: TimerHandle | None = None
        self.helpers = self.nacks = 0
        self.tcp_ok = False


class _Relay:
    """A ping we send on behalf of a prober (ping-req): its ack is forwarded, its silence nacked."""

    __slots__ = ("seq", "requester", "want_nack", "version", "timer")

    def __init__(self, seq: int, requester: Address, want_nack: bool, version: int):
        self.seq, self.requester, self.want_nack, self.version = seq, requester, want_nack, version
        self.timer: TimerHandle | None = None


class Detector:
    def __init__(self, config: MembershipConfig, table: MemberTable, transport: Transport, codec: Codec,
                 clock: Clock, rng: random.Random, awareness: Awareness, broadcasts: BroadcastQueue,
                 stats: Stats, spawn: Spawn):
        self.config, self.table, self.transport, self.codec = config, table, transport, codec
        self.clock, self.rng, self.awareness, self.broadcasts = clock, rng, awareness, broadcasts
        self.stats, self.spawn = stats, spawn
        self._seq = 0
        self._pending: dict[int, _ProbeRound | _Relay] = {}
        self._round: _ProbeRound | None = None
        self._tick_missed = False
        self._probe_timer: TimerHandle | None = None
        self._gossip_timer: TimerHandle | None = None
        self._gossip_phase = self._gossip_at = 0.0
        self._running = False

    def start(self) -> None:
        self._running = True
        # Random phases, so that members started together do not probe and gossip in lockstep.
        self._probe_timer = self.clock.call_later(self.rng.random() * self.config.probe_interval,
                                                  self._probe_tick)
        self._gossip_phase = self.clock.time() + self.rng.random() * self.config.gossip_interval
        self._gossip_at = self._gossip_phase - self.config.gossip_interval
        if len(self.broadcasts):
            self.gossip_ready()

    def stop(self) -> None:
        self._running = False
        for timer in (self._probe_timer, self._gossip_timer):
            if timer is not None:
                timer.cancel()
        for pending in self._pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()
        self._round = None

    # --- sending -----------------------------------------------------------------------------------

    def send(self, addr: Address, parts: list[bytes], version: int | None = None) -> None:
        """One packet with `parts` and as many queued updates as still fit (in protocol `version`:
        an answer goes in the version of what it answers)."""
        room = self.codec.packet_size - self.codec.overhead - sum(map(len, parts))
        self._transmit(addr, parts + self.broadcasts.take(room), version)

    def _transmit(self, addr: Address, parts: list[bytes], version: int | None = None) -> None:
        data = self.codec.encode(parts, version)
        self.stats.packets_sent += 1
        self.stats.bytes_sent += len(data)
        self.transport.send_packet(addr, data)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # --- probing -----------------------------------------------------------------------------------

    def _probe_tick(self) -> None:
        self._probe_timer = self.clock.call_later(self.config.probe_interval, self._probe_tick)
        if self._round is not None:
            self._tick_missed = True  # like a Go ticker's buffered tick: probe right after this round
            return
        self._probe()

    def _probe(self) -> None:
        if self.table.leaving:
            return
        node = self.table.next_probe_target()
        if node is None:
            return
        now = self.clock.time()
        probe = _ProbeRound(node, self._next_seq(), now + self.awareness.scale(self.config.probe_interval))
        self._pending[probe.seq] = self._round = probe
        probe.timer = self.clock.call_later(self.config.probe_timeout, self._probe_timeout, probe)
        self.stats.probes_sent += 1
        parts = [messages.ping(probe.seq, node.name)]
        if node.state == SUSPECT:  # buddy system: the accusation first, so the refutation rides the ack
            parts.insert(0, messages.suspect(node.incarnation, node.name, self.table.name))
        self.send(node.addr, parts)

    def _probe_timeout(self, probe: _ProbeRound) -> None:
        """No direct ack in time: ask helpers, and try TCP, until the round's deadline."""
        helpers = self.table.random_nodes(self.config.indirect_checks,
                                          lambda n: n.state == ALIVE and n.name != probe.name)
        request = messages.ping_req(probe.seq, probe.name, probe.addr, True)
        for helper in helpers:
            self.send(helper.addr, [request])
        probe.helpers = len(helpers)
        if not self.config.disable_tcp_pings:
            self.spawn(self._tcp_ping(probe))
        probe.timer = self.clock.call_at(probe.deadline, self._probe_deadline, probe)

    async def _tcp_ping(self, probe: _ProbeRound) -> None:
        try:
            reply = await self.transport.request(
                probe.addr, self.codec.encode([messages.ping(probe.seq, probe.name)]),
                max(probe.deadline - self.clock.time(), 0.001))
            msgs = self.codec.decode_reply(reply)
        except (TransportError, Rejected):
            return
        except Dropped as e:
            self.stats.dropped[e.reason] += 1
            return
        if any(m[0] == messages.ACK and m[1] == probe.seq for m in msgs):
            probe.tcp_ok = True

    def _probe_deadline(self, probe: _ProbeRound) -> None:
        self._pending.pop(probe.seq, None)
        if probe.tcp_ok:
            log.warning("%s answered over TCP but not UDP: is UDP blocked?", probe.name)
            self.awareness.apply(-1)
        else:
            # Lifeguard: every nack we did not get hints that we, not the target, are in trouble.
            self.awareness.apply(probe.helpers - probe.nacks if probe.helpers else 1)
            self.stats.probes_failed += 1
            self.stats.suspicions_raised += 1
            log.debug("%s suspects %s: no ack", self.table.name, probe.name)
            self.table.suspect(probe.incarnation, probe.name, self.table.name)
        self._end_round()

    def _end_round(self) -> None:
        self._round = None
        if self._tick_missed and self._running:
            self._tick_missed = False
            self._probe()

    # --- incoming ----------------------------------------------------------------------------------

    def on_ping(self, seq: int, target: str, sender: Address, version: int) -> None:
        if target != self.table.name:
            self.stats.dropped["misdirected"] += 1  # meant for a member that used to live here
            return
        self.send(sender, [messages.ack(seq)], version)

    def on_ack(self, seq: int) -> None:
        pending = self._pending.pop(seq, None)
        if pending is None:
            return  # late: the round is over
        pending.timer.cancel()
        if type(pending) is _Relay:
            self.send(pending.requester, [messages.ack(pending.seq)], pending.version)
        else:
            self.awareness.apply(-1)
            self._end_round()

    def on_nack(self, seq: int) -> None:
        pending = self._pending.get(seq)
        if type(pending) is _ProbeRound:
            pending.nacks += 1

    def on_ping_req(self, seq: int, target: str, addr: Address, want_nack: bool, requester: Address,
                    version: int) -> None:
        relay = _Relay(seq, requester, want_nack, version)
        own_seq = self._next_seq()
        self._pending[own_seq] = relay
        relay.timer = self.clock.call_later(self.config.probe_timeout, self._relay_timeout, own_seq, relay)
        self.send(addr, [messages.ping(own_seq, target)])

    def _relay_timeout(self, own_seq: int, relay: _Relay) -> None:
        self._pending.pop(own_seq, None)
        if relay.want_nack:
            self.send(relay.requester, [messages.nack(relay.seq)], relay.version)

    # --- gossip ------------------------------------------------------------------------------------

    def gossip_ready(self) -> None:
        """Updates were queued: gossip at the next tick of this node's gossip phase. Idle, the
        ticker does not run (memberlist's ticker runs but sends nothing: the same traffic)."""
        if self._gossip_timer is None and self._running:
            interval = self.config.gossip_interval
            when = self._gossip_phase + ((self.clock.time() - self._gossip_phase) // interval + 1) * interval
            self._arm_gossip(max(when, self._gossip_at + interval))

    def _arm_gossip(self, when: float) -> None:
        self._gossip_at = when
        self._gossip_timer = self.clock.call_at(when, self._gossip)

    def _gossip(self) -> None:
        now = self.clock.time()
        dead_for = self.config.gossip_to_the_dead_time

        def reachable(n: NodeState) -> bool:  # the dead still hear news for a while, to refute it
            return n.state in (ALIVE, SUSPECT) or (n.state == DEAD and now - n.state_change <= dead_for)

        room = self.codec.packet_size - self.codec.overhead
        for node in self.table.random_nodes(self.config.gossip_nodes, reachable):
            parts = self.broadcasts.take(room)
            if not parts:
                break
            self._transmit(node.addr, parts)
        self._gossip_timer = None
        if len(self.broadcasts) and self._running:
            self._arm_gossip(self._gossip_at + self.config.gossip_interval)
