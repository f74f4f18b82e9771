"""The seeded SWIM simulation: many `Membership` nodes on a simulated network in virtual time.

The protocol code is the production code; only the transport (transport/memory.py) and the clock
(transport/virtual_time.py) differ. A run starts from a converged cluster (every node knows every
other, as after a long uptime: a cold join of 1,000 nodes at once is a different experiment),
keeps a fault-free warm-up window to measure steady load, then crashes nodes and joins new ones at
seeded random times, and ends with a fault-free tail so every crash can be detected. It returns
plain data (JSON-ready) that depends only on the parameters: same seed, same result.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
from dataclasses import asdict, dataclass

from taskmaster.membership.config import MembershipConfig
from taskmaster.membership.member import ALIVE, DEAD, SUSPECT, Member
from taskmaster.membership.membership import Membership
from taskmaster.membership.suspicion import suspicion_timeouts
from taskmaster.transport.memory import SimNetwork
from taskmaster.transport.virtual_time import Stall, StallingClock, VirtualTimeLoop

PORT = 7946


@dataclass(frozen=True)
class SimParams:
    nodes: int = 1000
    loss: float = 0.01
    seconds: float = 600.0
    seed: int = 1
    profile: str = "lan"
    crashes: int = -1
    """Nodes crashed during the run; -1: min(20, max(1, nodes // 50))."""
    joins: int = -1
    """New nodes joined during the run; -1: min(10, max(1, nodes // 100))."""
    slow: int = 0
    """Nodes whose event loop stalls throughout (Lifeguard's case), `stall` seconds at a time with
    0.2-1 s of work in between."""
    stall: float = 0.5
    duplicate: float = 0.0
    delay: float = 0.0005
    jitter: float = 0.0015
    warmup: float = 30.0
    """Fault-free start; steady load is measured over its second half."""
    zones: int = 1
    """Node i lives in zone i % zones. Inside a zone every link has `delay`; between two zones a
    fixed round trip from `inter_zone_rtt`."""
    inter_zone_rtt: tuple[float, float] = (0.05, 0.15)
    """(shortest, longest) round trip between zones in seconds; the zone pairs get RTTs spread
    evenly over it (3 zones at 50-150 ms: 50, 100 and 150 ms), so both ends are exercised."""
    zone_outage: bool = False
    """Also crash every node of the last zone at once, at a seeded time (a datacenter lost)."""


def _addr(i: int) -> tuple[str, int]:
    return (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", PORT)


def _name(i: int) -> str:
    return f"n{i:05d}"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def zone_rtts(zones: int, rtt: tuple[float, float]) -> dict[tuple[int, int], float]:
    """The round trip between each pair of zones (a < b), spread evenly over `rtt`."""
    pairs = [(a, b) for a in range(zones) for b in range(a + 1, zones)]
    step = (rtt[1] - rtt[0]) / (len(pairs) - 1) if len(pairs) > 1 else 0.0
    return {pair: rtt[0] + k * step for k, pair in enumerate(pairs)}


def _summary(values: list[float]) -> dict:
    def r(v):
        return None if v is None else round(v, 3)
    return {"p50": r(percentile(values, 50)), "p99": r(percentile(values, 99)),
            "max": r(max(values) if values else None), "count": len(values)}


def memberlist_detection_estimate(config: MembershipConfig, n: int, loss: float) -> float:
    """Expected time until every member marks a crashed member dead, by memberlist's model
    (anchors §1.3): first probe of it ~e/(e-1) intervals, one probe round, the suspicion min
    (confirmations arrive in time), then dissemination to 99.9% (Serf's convergence formula)."""
    first_probe = math.e / (math.e - 1) * config.probe_interval
    low, _ = suspicion_timeouts(config.suspicion_mult, config.suspicion_max_timeout_mult, n,
                                config.probe_interval)
    rounds = math.log(999 * (n + 1)) / (0.5 * config.gossip_nodes * (1 - loss))
    return first_probe + config.probe_interval + low + rounds * config.gossip_interval


class _Observer:
    """Collects what every node reports through on_change."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.recording = False
        self.crashed_at: dict[str, float] = {}
        self.first_suspect: dict[str, float] = {}
        self.dead_at: dict[str, dict[str, float]] = {}
        self.alive_at: dict[str, dict[str, float]] = {}
        self.false_deaths: list[tuple[float, str, str]] = []
        self.false_suspicions = 0

    def callback(self, observer: str):
        def on_change(member: Member) -> None:
            if not self.recording:
                return
            now, target, state = self.loop.time(), member.name, member.state
            crashed = target in self.crashed_at
            if state == ALIVE:
                self.alive_at.setdefault(target, {}).setdefault(observer, now)
            elif state == SUSPECT:
                if crashed:
                    self.first_suspect.setdefault(target, now)
                else:
                    self.false_suspicions += 1
            elif state == DEAD:
                if crashed:
                    self.dead_at.setdefault(target, {}).setdefault(observer, now)
                else:
                    self.false_deaths.append((round(now, 3), observer, target))
        return on_change


class Simulation:
    def __init__(self, params: SimParams):
        self.p = params
        self.config = MembershipConfig.profile(params.profile)
        self.loop = VirtualTimeLoop()
        self.errors: list[dict] = []
        self.loop.set_exception_handler(lambda loop, context: self.errors.append(context))
        self.master = random.Random(params.seed)
        self.zone_of: dict[tuple[str, int], int] = {}
        self.rtts = zone_rtts(params.zones, params.inter_zone_rtt)
        self.net = SimNetwork(self.loop, random.Random(self.master.getrandbits(64)), loss=params.loss,
                              delay=params.delay, jitter=params.jitter, duplicate=params.duplicate,
                              link_delay=self._link_delay if params.zones > 1 else None)
        self.obs = _Observer(self.loop)
        self.nodes: dict[str, Membership] = {}
        self.down: set[str] = set()
        self.joined_at: dict[str, float] = {}
        self.slow: list[str] = []

    def run(self) -> dict:
        try:
            return self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()
            gc.enable()
            gc.unfreeze()  # the tables may be collected again once dropped

    def _link_delay(self, src: tuple[str, int], dst: tuple[str, int]) -> float:
        a, b = self.zone_of[src], self.zone_of[dst]
        return self.p.delay if a == b else self.rtts[min(a, b), max(a, b)] / 2

    def _make(self, i: int, stall: Stall | None = None) -> Membership:
        addr = _addr(i)
        self.zone_of[addr] = i % self.p.zones
        clock = StallingClock(self.loop, stall) if stall else self.loop
        m = Membership(self.config, self.net.transport(addr, stall), name=_name(i),
                       meta={"http": f"{addr[0]}:8080"}, clock=clock,
                       rng=random.Random(self.master.getrandbits(64)),
                       on_change=self.obs.callback(_name(i)))
        self.nodes[m.name] = m
        return m

    async def _main(self) -> dict:
        p = self.p
        n_crash = p.crashes if p.crashes >= 0 else min(20, max(1, p.nodes // 50))
        n_join = p.joins if p.joins >= 0 else min(10, max(1, p.nodes // 100))
        slow_ids = set(self.master.sample(range(p.nodes), min(p.slow, p.nodes)))
        # The member tables are a million long-lived objects: keep the cycle collector from scanning
        # them over and over (it would dominate the run time).
        gc.disable()
        for i in range(p.nodes):
            stall = Stall(random.Random(self.master.getrandbits(64)), p.stall) if i in slow_ids else None
            m = self._make(i, stall)
            if stall:
                self.slow.append(m.name)
            await m.start()
        self._converge()
        self.obs.recording = True
        gc.freeze()
        gc.enable()

        # Faults happen between the warm-up and a tail long enough for a lone accuser's max timeout.
        _, high = suspicion_timeouts(self.config.suspicion_mult, self.config.suspicion_max_timeout_mult,
                                     p.nodes, self.config.probe_interval)
        tail = min(high + 10.0, p.seconds / 2)
        start, end = min(p.warmup, p.seconds / 4), p.seconds - tail
        events = sorted([(self.master.uniform(start, end), "crash") for _ in range(n_crash)]
                        + [(self.master.uniform(start, end), "join") for _ in range(n_join)]
                        + ([(self.master.uniform(start, end), "zone")] if p.zone_outage else []))
        healthy = [_name(i) for i in range(p.nodes) if i not in slow_ids]

        await asyncio.sleep(start / 2)
        steady_from = self._sent()
        await asyncio.sleep(start / 2)
        steady_to = self._sent()
        next_id = p.nodes
        for when, kind in events:
            await asyncio.sleep(max(0.0, when - self.loop.time()))
            if kind == "crash":
                candidates = [name for name in healthy if name not in self.down]
                await self._crash(self.master.choice(candidates))
            elif kind == "zone":
                for name, m in list(self.nodes.items()):
                    if name not in self.down and self.zone_of[m.transport.local_addr] == p.zones - 1:
                        await self._crash(name)
            else:
                seed = self.master.choice([name for name in self.nodes if name not in self.down])
                self._spawn_join(next_id, self.nodes[seed].transport.local_addr)
                next_id += 1
        await asyncio.sleep(max(0.0, p.seconds - self.loop.time()))
        total = self._sent()
        result = self._report(steady_from, steady_to, total)
        for name, m in self.nodes.items():
            if name not in self.down:
                await m.stop()
        if self.errors:
            raise RuntimeError(f"simulation callbacks raised: {self.errors[:3]}")
        return result

    def _converge(self) -> None:
        """Every node learns every other through the push-pull merge, with nothing left queued:
        the state of a cluster that has been up for a while."""
        nodes = list(self.nodes.values())
        entries = ([m.name for m in nodes], [m.transport.local_addr[0] for m in nodes],
                   [m.transport.local_addr[1] for m in nodes], [m.meta for m in nodes], [1] * len(nodes),
                   [0] * len(nodes))
        for m in nodes:
            on_change, m.table.on_change = m.table.on_change, None
            m.table.merge(entries)
            m.table.on_change = on_change
            m.broadcasts.reset()
            m.sync.stop()
            m.sync.start()  # re-phase the periodic push-pull over the period for this cluster size

    async def _crash(self, name: str) -> None:
        self.obs.crashed_at[name] = self.loop.time()
        self.down.add(name)
        await self.nodes[name].stop()

    def _spawn_join(self, i: int, seed: tuple[str, int]) -> None:
        m = self._make(i)
        self.joined_at[m.name] = self.loop.time()

        async def join() -> None:
            await m.start()
            await m.join([seed])
        self.loop.create_task(join())

    def _sent(self) -> tuple[int, int, float]:
        """(messages, bytes) sent so far by everyone, and the time."""
        msgs = sum(m.stats.packets_sent + m.stats.streams_sent for m in self.nodes.values())
        size = sum(m.stats.bytes_sent for m in self.nodes.values())
        return msgs, size, self.loop.time()

    def _report(self, steady_from: tuple, steady_to: tuple, total: tuple) -> dict:
        p, obs, now = self.p, self.obs, self.loop.time()
        live = [name for name in self.nodes if name not in self.down]
        first_suspect, first_dead, all_dead, undetected = [], [], [], 0
        for target, t0 in obs.crashed_at.items():
            dead = obs.dead_at.get(target, {})
            # Everyone that was up when it crashed and still is must have declared it dead.
            witnesses = [w for w in live if self.joined_at.get(w, 0.0) <= t0]
            if target in obs.first_suspect:
                first_suspect.append(obs.first_suspect[target] - t0)
            if dead:
                first_dead.append(min(dead.values()) - t0)
            if all(w in dead for w in witnesses):
                all_dead.append(max(dead[w] for w in witnesses) - t0)
            else:
                undetected += 1
        join_times, unreached = [], 0
        for name, t0 in self.joined_at.items():
            seen = obs.alive_at.get(name, {})
            witnesses = [w for w in live if w != name and self.joined_at.get(w, 0.0) <= t0]
            if all(w in seen for w in witnesses):
                join_times.append(max((seen[w] for w in witnesses), default=t0) - t0)
            else:
                unreached += 1
        estimate = memberlist_detection_estimate(self.config, p.nodes, p.loss)
        node_seconds = sum(now - self.joined_at.get(name, 0.0) for name in live)
        node_seconds += sum(obs.crashed_at[name] for name in self.down)
        steady_span = (steady_to[2] - steady_from[2]) * p.nodes
        p99 = percentile(all_dead, 99)
        lhm = [self.nodes[name].local_health() for name in live]
        zones = {} if p.zones == 1 else {"zones": {
            "count": p.zones, "pair_rtt_ms": {f"{a}-{b}": round(rtt * 1000, 1) for (a, b), rtt in self.rtts.items()}}}
        return {
            "params": asdict(p),
            "detection": {
                "crashed": len(obs.crashed_at),
                "undetected": undetected,
                "first_suspect_s": _summary(first_suspect),
                "first_detection_s": _summary(first_dead),
                "full_detection_s": _summary(all_dead),
                "memberlist_estimate_s": round(estimate, 3),
                "full_p99_over_estimate": None if p99 is None else round(p99 / estimate, 3),
            },
            "false_positives": {
                "deaths": len(obs.false_deaths),
                "members_declared_dead": len({t for _, _, t in obs.false_deaths}),
                "suspect_transitions": obs.false_suspicions,
                "first": obs.false_deaths[:5],
            },
            "load": {
                "steady_messages_per_node_s": round((steady_to[0] - steady_from[0]) / steady_span, 3),
                "steady_bytes_per_node_s": round((steady_to[1] - steady_from[1]) / steady_span, 1),
                "messages_per_node_s": round(total[0] / node_seconds, 3),
                "bytes_per_node_s": round(total[1] / node_seconds, 1),
            },
            "join": {**_summary(join_times), "unreached": unreached},
            "health": {"max_lhm": max(lhm, default=0),
                       "max_lhm_slow": max((self.nodes[s].local_health() for s in self.slow), default=0)},
            "network": {"packets": self.net.packets, "lost": self.net.lost, "blocked": self.net.blocked},
            "virtual_seconds": round(now, 3),
            **zones,
        }


def run(params: SimParams) -> dict:
    return Simulation(params).run()


def evaluate(result: dict, baseline: dict | None) -> dict:
    """The issue's targets, checked: detection p99 within 2x memberlist's estimate, no false
    deaths, every crash seen by everyone, steady per-node message rate within ±20% of a small
    fault-free cluster's (`baseline`: SWIM's constant load), a join known to all within 3 s."""
    detection, join = result["detection"], result["join"]
    targets = {
        "detection_p99_within_2x_estimate": detection["full_p99_over_estimate"] is not None
        and detection["full_p99_over_estimate"] <= 2.0,
        "all_crashes_detected_by_all": detection["undetected"] == 0,
        "zero_false_positive_deaths": result["false_positives"]["deaths"] == 0,
        "join_known_to_all_within_3s": join["unreached"] == 0 and (join["max"] or 0.0) <= 3.0,
    }
    if baseline is not None:  # a fault-free run: its whole-run rate is its steady rate
        ratio = result["load"]["steady_messages_per_node_s"] / baseline["load"]["messages_per_node_s"]
        targets["message_rate_ratio_to_baseline"] = round(ratio, 3)
        targets["message_rate_within_20pct_of_baseline"] = abs(ratio - 1) <= 0.2
    return targets
