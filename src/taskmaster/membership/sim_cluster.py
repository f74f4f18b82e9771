"""A handful of members on one seeded simulated network in virtual time: scenarios for tests.

    cluster = SimCluster(MembershipConfig.local(), seed=7)
    cluster.run(scenario(cluster))   # an `async def scenario(cluster)` that adds, crashes, waits

Everything is the production protocol code; time is virtual, so a minute of gossip takes
milliseconds and a run replays exactly from its seed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine

from taskmaster.membership.config import MembershipConfig
from taskmaster.membership.member import ALIVE, Member
from taskmaster.membership.membership import Membership
from taskmaster.transport.base import Address
from taskmaster.transport.memory import SimNetwork
from taskmaster.transport.virtual_time import Stall, StallingClock, VirtualTimeLoop


class SimCluster:
    def __init__(self, config: MembershipConfig, *, seed: int = 0, loss: float = 0.0,
                 delay: float = 0.0005, jitter: float = 0.0015, duplicate: float = 0.0,
                 link_delay: Callable[[Address, Address], float] | None = None):
        self.config = config
        self.loop = VirtualTimeLoop()
        self.errors: list[dict] = []
        self.loop.set_exception_handler(lambda loop, context: self.errors.append(context))
        self.rng = random.Random(seed)
        self.net = SimNetwork(self.loop, random.Random(self.rng.getrandbits(64)), loss=loss, delay=delay,
                              jitter=jitter, duplicate=duplicate, link_delay=link_delay)
        self.nodes: dict[str, Membership] = {}
        self.changes: list[tuple[float, str, Member]] = []
        """Every on_change of every node: (virtual time, observer, member)."""
        self._count = 0

    def run(self, scenario: Coroutine):
        """Run `scenario` to completion in virtual time; callback errors fail the run."""
        try:
            return self.loop.run_until_complete(scenario)
        finally:
            if self.errors:
                raise AssertionError(f"callbacks raised: {self.errors}")

    def close(self) -> None:
        self.loop.close()

    def addr(self, i: int) -> tuple[str, int]:
        return (f"10.0.{i >> 8 & 255}.{i & 255}", 7946)

    async def add(self, name: str | None = None, *, config: MembershipConfig | None = None,
                  meta: dict | None = None, stall: Stall | None = None, join: bool = True) -> Membership:
        """Start a member (and join it through the first one, unless join=False)."""
        i = self._count
        self._count += 1
        name = name or f"n{i}"

        def record(member: Member) -> None:
            self.changes.append((self.loop.time(), name, member))

        clock = StallingClock(self.loop, stall) if stall else self.loop
        m = Membership(config or self.config, self.net.transport(self.addr(i), stall), name=name,
                       meta=meta or {}, clock=clock, rng=random.Random(self.rng.getrandbits(64)),
                       on_change=record)
        await m.start()
        if join and self.nodes:
            await m.join([next(iter(self.nodes.values())).transport.local_addr])
        self.nodes[name] = m
        return m

    def states(self, observer: str) -> dict[str, str]:
        return {m.name: m.state for m in self.nodes[observer].members()}

    def converged(self, names: list[str] | None = None) -> bool:
        """Every member in `names` (default: all running) sees every one of them alive."""
        names = names or [n for n, m in self.nodes.items() if m.running]
        return all(all(self.states(o).get(t) == ALIVE for t in names) for o in names)

    async def wait_for(self, condition: Callable[[], bool], timeout: float, step: float = 0.01) -> float:
        """Virtual seconds until `condition()` holds; TimeoutError after `timeout`."""
        start = self.loop.time()
        while not condition():
            if self.loop.time() - start > timeout:
                raise TimeoutError(f"condition not met within {timeout} virtual seconds")
            await asyncio.sleep(step)
        return self.loop.time() - start
