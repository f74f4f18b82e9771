"""Push-pull: full state exchange over a TCP stream (memberlist pushPullNode / mergeState).

Used to join (swap state with a seed), as periodic anti-entropy with one random member (catches
whatever gossip missed; the interval grows with log N above 32 members), and, as Serf does, to
reconnect to members declared dead, which is how the two sides of a healed partition find each
other again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Coroutine

from taskmaster.membership import messages
from taskmaster.membership.config import MembershipConfig
from taskmaster.membership.member import ALIVE, DEAD
from taskmaster.membership.messages import PROTOCOL_MIN, Codec, Dropped, Rejected
from taskmaster.membership.state import MemberTable
from taskmaster.membership.stats import Stats
from taskmaster.transport.base import Address, Clock, TimerHandle, Transport, TransportError

log = logging.getLogger("taskmaster.membership")


class JoinError(Exception):
    """No seed could be reached (or every one refused us) after all retries."""


def push_pull_scale(interval: float, n: int) -> float:
    """memberlist pushPullScale: unchanged up to 32 members, then x(ceil(log2 n - log2 32) + 1)."""
    if n <= 32:
        return interval
    return (math.ceil(math.log2(n) - math.log2(32)) + 1) * interval


def _where(addr: Address) -> str:
    return f"{addr[0]}:{addr[1]}"


class StateSync:
    def __init__(self, config: MembershipConfig, table: MemberTable, transport: Transport, codec: Codec,
                 clock: Clock, rng: random.Random, stats: Stats, spawn: Callable[[Coroutine], object]):
        self.config, self.table, self.transport, self.codec = config, table, transport, codec
        self.clock, self.rng, self.stats, self.spawn = clock, rng, stats, spawn
        self._timers: list[TimerHandle | None] = [None, None]

    def start(self) -> None:
        """Start the periodic exchanges, each at a random phase of its period (so members started
        together do not sync in lockstep)."""
        period = push_pull_scale(self.config.push_pull_interval, self.table.num_nodes())
        self._timers = [
            self.clock.call_later(self.rng.random() * period, self._push_pull_tick),
            self.clock.call_later(self.rng.random() * self.config.reconnect_interval, self._reconnect_tick),
        ]

    def stop(self) -> None:
        for timer in self._timers:
            if timer is not None:
                timer.cancel()

    async def exchange(self, addr: Address, version: int | None = None) -> None:
        """Send our state to `addr` (in protocol `version`, default the negotiated one) and merge its
        reply. Raises TransportError, Rejected, Dropped."""
        request = self.codec.encode([self.table.state_message()], version)
        self.stats.streams_sent += 1
        self.stats.bytes_sent += len(request)
        reply = await self.transport.request(addr, request, self.config.tcp_timeout)
        self.stats.bytes_received += len(reply)
        try:
            msgs = self.codec.decode_reply(reply)
            if msgs[0][0] != messages.PUSH_PULL:
                raise Dropped("unexpected")
        except Dropped as e:
            self.stats.dropped[e.reason] += 1
            raise
        self.table.merge(msgs[0][1:])

    def serve(self, columns: list[list], version: int) -> bytes:
        """Answer a peer's push-pull (in its protocol `version`): our state (as it was before theirs
        is merged)."""
        reply = self.codec.encode([self.table.state_message()], version)
        self.table.merge(columns)
        return reply

    async def join(self, addrs: list[Address]) -> int:
        """Push-pull with every seed; retry with backoff until at least one answers."""
        seeds = [a for a in dict.fromkeys(tuple(a) for a in addrs) if a != self.transport.local_addr]
        if not seeds:
            return 0
        backoff = self.config.join_backoff
        for attempt in range(self.config.join_retries + 1):
            contacted, errors = 0, []
            for addr in seeds:
                try:
                    await self.exchange(addr, PROTOCOL_MIN)  # whatever version the seed runs decodes it
                    contacted += 1
                except Rejected as e:
                    errors.append(f"{_where(addr)} refused us: {e}")
                except Dropped as e:
                    errors.append(f"{_where(addr)} answered garbage ({e.reason})")
                except TransportError as e:
                    errors.append(f"{_where(addr)}: {e}")
            if contacted:
                return contacted
            log.warning("join attempt %d/%d failed: %s", attempt + 1, self.config.join_retries + 1,
                        "; ".join(errors))
            if attempt < self.config.join_retries:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.join_max_backoff)
        raise JoinError(f"could not join through {', '.join(map(_where, seeds))}: {'; '.join(errors)}")

    def _push_pull_tick(self) -> None:
        interval = push_pull_scale(self.config.push_pull_interval, self.table.num_nodes())
        self._timers[0] = self.clock.call_later(interval, self._push_pull_tick)
        peers = self.table.random_nodes(1, lambda n: n.state == ALIVE)
        if peers:
            self.spawn(self._quiet_exchange(peers[0].addr))

    def _reconnect_tick(self) -> None:
        """Serf's reconnect: try one member declared dead; spread across the cluster so that each
        dead member gets about one attempt per interval, whatever the size."""
        self._timers[1] = self.clock.call_later(self.config.reconnect_interval, self._reconnect_tick)
        failed = [n for n in self.table.departed.values() if n.state == DEAD]
        failed += [n for n in self.table.nodes if n.state == DEAD]
        if not failed:
            return
        alive = sum(1 for n in self.table.nodes if n.state == ALIVE)
        if self.rng.random() > len(failed) / max(alive, 1):
            return
        # The member may have come back with another version than it had: the oldest one reaches it.
        self.spawn(self._quiet_exchange(self.rng.choice(failed).addr, PROTOCOL_MIN))

    async def _quiet_exchange(self, addr: Address, version: int | None = None) -> None:
        try:
            await self.exchange(addr, version)
        except (TransportError, Rejected, Dropped) as e:
            log.debug("push-pull with %s failed: %s", _where(addr), e)
