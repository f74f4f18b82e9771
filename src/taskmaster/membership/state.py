"""The membership state machine: alive / suspect / dead / left with incarnation numbers.

Every rule is memberlist's (state.go aliveNode / suspectNode / deadNode / refute / mergeState):
- newer incarnation wins; for the same incarnation suspect beats alive and dead beats suspect;
- only the member itself raises its incarnation, to refute an accusation (SWIM's suspicion
  sub-protocol), and each refutation also costs it a point of local health (Lifeguard);
- a dead message sent by the member about itself means it left; nobody refutes for it;
- every accepted change is re-broadcast, replacing older queued news about that member.

Members that are dead or left stay in the probe list (and get gossip) for gossip_to_the_dead_time,
then move to `departed`, where they are still listed and, if dead, tried by reconnect (Serf's
addition, so partitions heal) until their timeouts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from taskmaster.membership import messages
from taskmaster.membership.awareness import Awareness
from taskmaster.membership.broadcast import BroadcastQueue
from taskmaster.membership.config import MembershipConfig
from taskmaster.membership.member import ALIVE, DEAD, LEFT, STATES, SUSPECT, Member, NodeState
from taskmaster.membership.stats import Stats
from taskmaster.membership.suspicion import Suspicion, suspicion_timeouts
from taskmaster.transport.base import Address, Clock

log = logging.getLogger("taskmaster.membership")
STATE_CODE = {state: code for code, state in enumerate(STATES)}


class MemberTable:
    def __init__(self, config: MembershipConfig, clock: Clock, rng: random.Random, name: str,
                 broadcasts: BroadcastQueue, awareness: Awareness, stats: Stats,
                 on_change: Callable[[Member], None] | None):
        self.config, self.clock, self.rng, self.name = config, clock, rng, name
        self.broadcasts, self.awareness, self.stats = broadcasts, awareness, stats
        self.on_change = on_change
        self.nodes: list[NodeState] = []
        """The probe and gossip list, in shuffled round-robin order."""
        self.by_name: dict[str, NodeState] = {}
        self.departed: dict[str, NodeState] = {}
        self.timers: dict[str, Suspicion] = {}
        self.probe_index = 0
        self.leaving = False
        self.local: NodeState | None = None
        self._state_message: bytes | None = None

    def num_nodes(self) -> int:
        """N for every timer formula (members in the probe list, this node included)."""
        return len(self.nodes)

    # --- the four messages -------------------------------------------------------------------

    def alive(self, incarnation: int, name: str, addr: Address, meta: dict,
              notify: Callable[[], None] | None = None, bootstrap: bool = False) -> None:
        is_local = name == self.name
        if is_local and self.leaving:
            return  # a queued alive about us must not undo our leave
        node = self.by_name.get(name)
        old_state = None if node is None else node.state
        old_meta = None if node is None else node.meta
        if node is None:
            node = NodeState(name, addr, meta, incarnation, DEAD, self.clock.time())
            self._insert(node)
        else:
            moved = node.addr != addr
            if moved and node.state != LEFT:  # only a member that left may come back elsewhere
                log.warning("conflicting address for %s: known %s, claimed %s", name, node.addr, addr)
                return
            if not moved and (incarnation < node.incarnation
                              or (incarnation == node.incarnation and not is_local)):
                return
        self._cancel_timer(name)
        if is_local and not bootstrap:
            if incarnation == node.incarnation and meta == node.meta:
                return
            self.refute(node, incarnation)  # someone claims to be us with other data
            return
        self.broadcasts.queue(name, messages.alive(incarnation, name, addr, meta), notify)
        self._state_message = None
        node.incarnation, node.meta, node.addr = incarnation, meta, addr
        if node.state != ALIVE:
            node.state, node.state_change = ALIVE, self.clock.time()
        if old_state != ALIVE or old_meta != meta:
            self._changed(node)

    def _accused(self, name: str, incarnation: int) -> NodeState | None:
        """The member an accusation names, or None when the accusation is stale or about a stranger.
        A stale accusation of us means our refutation missed its sender: gossip our alive again."""
        node = self.by_name.get(name)
        if node is not None and incarnation < node.incarnation:
            if node is self.local:
                self._reannounce(node)
            return None
        return node

    def suspect(self, incarnation: int, name: str, accuser: str) -> None:
        node = self._accused(name, incarnation)
        if node is None:
            return
        timer = self.timers.get(name)
        if timer is not None:
            # Another member's accusation: an independent confirmation shortens the timer, and
            # is worth passing on so others get it too.
            if timer.confirm(accuser):
                self.broadcasts.queue(name, messages.suspect(incarnation, name, accuser))
            return
        if node.state != ALIVE:
            return
        if node is self.local:
            self.refute(node, incarnation)
            return
        self.broadcasts.queue(name, messages.suspect(incarnation, name, accuser))
        self._state_message = None
        now = self.clock.time()
        node.incarnation, node.state, node.state_change = incarnation, SUSPECT, now
        # k confirmations are expected; fewer other members than that means none will come.
        k = self.config.suspicion_mult - 2
        n = self.num_nodes()
        if n - 2 < k:
            k = 0
        low, high = suspicion_timeouts(self.config.suspicion_mult, self.config.suspicion_max_timeout_mult,
                                       n, self.config.probe_interval)
        self.timers[name] = Suspicion(self.clock, accuser, k, low, high,
                                      lambda: self._suspicion_expired(node, now))
        self._changed(node)

    def dead(self, incarnation: int, name: str, accuser: str,
             notify: Callable[[], None] | None = None) -> None:
        node = self._accused(name, incarnation)
        if node is None:
            return
        self._cancel_timer(name)
        if node.state in (DEAD, LEFT):
            return
        if node is self.local and not self.leaving:
            self.refute(node, incarnation)
            return
        self.broadcasts.queue(name, messages.dead(incarnation, name, accuser), notify)
        self._state_message = None
        node.incarnation = incarnation
        node.state = LEFT if accuser == name else DEAD
        node.state_change = self.clock.time()
        self._changed(node)

    def _reannounce(self, node: NodeState) -> None:
        """Gossip our current alive again, same incarnation (memberlist would stay silent, and the
        stale accuser would declare us dead)."""
        self.broadcasts.queue(node.name, messages.alive(node.incarnation, node.name, node.addr, node.meta))

    def refute(self, node: NodeState, accused_incarnation: int) -> None:
        """We are accused (or impersonated): outbid the accusation with a higher incarnation."""
        node.incarnation = max(node.incarnation, accused_incarnation) + 1
        self._state_message = None
        self.awareness.apply(1)
        self.stats.suspicions_refuted += 1
        self.broadcasts.queue(node.name, messages.alive(node.incarnation, node.name, node.addr, node.meta))
        log.debug("%s refutes an accusation with incarnation %d", node.name, node.incarnation)

    def merge(self, columns: list[list]) -> None:
        """Fold a peer's full state (push-pull columns) in. Its dead are only suspects to us: we
        let them refute rather than trust one peer's verdict."""
        by_name, local = self.by_name, self.local
        for name, host, port, meta, incarnation, code in zip(*columns, strict=True):
            node = by_name.get(name)
            if (code == 0 and node is not None and incarnation <= node.incarnation and node is not local
                    and node.addr[1] == port and node.addr[0] == host):
                continue  # nothing new (most entries): alive() would ignore it too
            state = STATES[code]
            if state == ALIVE:
                self.alive(incarnation, name, (host, port), meta)
            elif state == LEFT:
                self.dead(incarnation, name, name)
            else:
                self.suspect(incarnation, name, self.name)

    def state_message(self) -> bytes:
        """Our full state as an encoded push-pull message, cached until anything changes (in a
        steady cluster nothing does, and a thousand-member state is costly to rebuild)."""
        if self._state_message is None:
            nodes = self.nodes
            self._state_message = messages.push_pull((
                [n.name for n in nodes], [n.addr[0] for n in nodes], [n.addr[1] for n in nodes],
                [n.meta for n in nodes], [n.incarnation for n in nodes],
                [STATE_CODE[n.state] for n in nodes]))
        return self._state_message

    # --- choosing members ----------------------------------------------------------------------

    def next_probe_target(self) -> NodeState | None:
        """Round robin over the shuffled list (bounds the worst-case detection time), skipping
        ourselves and the dead; reshuffles, and forgets the long dead, at each wrap."""
        checked = 0
        while checked < len(self.nodes):
            if self.probe_index >= len(self.nodes):
                self._reset_nodes()
                self.probe_index = 0
                checked += 1
                continue
            node = self.nodes[self.probe_index]
            self.probe_index += 1
            if node is self.local or node.state in (DEAD, LEFT):
                checked += 1
                continue
            return node
        return None

    def random_nodes(self, k: int, accept: Callable[[NodeState], bool]) -> list[NodeState]:
        """Up to k distinct random members passing `accept` (3n tries, memberlist kRandomNodes)."""
        nodes, n, random = self.nodes, len(self.nodes), self.rng.random
        chosen: list[NodeState] = []
        for _ in range(3 * n):
            if len(chosen) >= k:
                break
            node = nodes[int(random() * n)]
            if node is not self.local and accept(node) and node not in chosen:
                chosen.append(node)
        return chosen

    def members(self) -> list[Member]:
        listed = [n.member() for n in self.nodes]
        listed += [n.member() for name, n in self.departed.items() if name not in self.by_name]
        return listed

    # --- internals -------------------------------------------------------------------------------

    def _insert(self, node: NodeState) -> None:
        """Add at a random position, so a newcomer is probed as soon as anyone else on average."""
        self.by_name[node.name] = node
        self.departed.pop(node.name, None)
        self._state_message = None
        nodes = self.nodes
        nodes.append(node)
        i = int(self.rng.random() * len(nodes))
        nodes[i], nodes[-1] = nodes[-1], nodes[i]

    def _reset_nodes(self) -> None:
        now = self.clock.time()
        expiry = self.config.gossip_to_the_dead_time
        kept = []
        for node in self.nodes:
            if node.state in (DEAD, LEFT) and node is not self.local and now - node.state_change > expiry:
                del self.by_name[node.name]
                self.departed[node.name] = node
            else:
                kept.append(node)
        if len(kept) < len(self.nodes):
            self._state_message = None
        self.nodes = kept
        self.rng.shuffle(kept)
        for name, node in list(self.departed.items()):
            keep_for = self.config.tombstone_timeout if node.state == LEFT else self.config.reconnect_timeout
            if now - node.state_change > keep_for:
                del self.departed[name]

    def _suspicion_expired(self, node: NodeState, since: float) -> None:
        self.timers.pop(node.name, None)
        if node.state == SUSPECT and node.state_change == since:
            log.debug("%s declares %s dead", self.name, node.name)
            self.dead(node.incarnation, node.name, self.name)

    def _cancel_timer(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _changed(self, node: NodeState) -> None:
        if self.on_change is not None:
            try:
                self.on_change(node.member())
            except Exception:
                log.exception("on_change callback failed for %s", node.name)
