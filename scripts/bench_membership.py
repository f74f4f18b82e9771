"""Real-process membership benchmark: N members on loopback, SIGKILL one at a time.

    python scripts/bench_membership.py [--nodes 10] [--profile local] [--probe-interval S] [--kills 10]

Each member is its own Python process running `Membership` over UDP + TCP on 127.0.0.1 (the
production transport), reporting every state change it sees as a JSON line with a wall-clock
time. Measures the time from start to full convergence, from SIGKILL to "dead" on the first and on
every survivor, and for a replacement's join to reach everyone, against memberlist's estimate for
the profile. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time

from taskmaster.membership import Membership, MembershipConfig
from taskmaster.membership.simulation import memberlist_detection_estimate, percentile
from taskmaster.transport import NetTransport


def config_for(profile: str, probe_interval: float | None) -> MembershipConfig:
    if probe_interval is None:
        return MembershipConfig.profile(profile)
    base = MembershipConfig.profile(profile)
    # Keep the profile's timeout-to-interval ratio.
    return MembershipConfig.profile(profile, probe_interval=probe_interval,
                                    probe_timeout=base.probe_timeout * probe_interval / base.probe_interval)


async def run_member(name: str, config: MembershipConfig, join: str | None) -> None:
    """Child mode: one member that prints what it sees until it is killed."""
    def report(member) -> None:
        print(json.dumps({"t": time.time(), "member": member.name, "state": member.state}), flush=True)

    m = Membership(config, NetTransport("127.0.0.1", 0), name=name, meta={},
                   on_change=report)
    await m.start()
    print(json.dumps({"ready": list(m.transport.local_addr)}), flush=True)
    if join:
        host, port = join.rsplit(":", 1)
        await m.join([(host, int(port))])
    await asyncio.Event().wait()


class Child:
    def __init__(self, name: str):
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.addr = ""
        self.view: dict[str, tuple[str, float]] = {}

    async def start(self, options: list[str], join: str | None) -> None:
        args = [sys.executable, __file__, "--member", self.name, *options]
        if join:
            args += ["--join", join]
        self.proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        while not self.addr:
            self._record(json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 10)))
        asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while line := await self.proc.stdout.readline():
            self._record(json.loads(line))

    def _record(self, event: dict) -> None:
        if "ready" in event:
            self.addr = "{}:{}".format(*event["ready"])
        else:
            self.view[event["member"]] = (event["state"], event["t"])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)


def all_see(children: list[Child], member: str, state: str) -> bool:
    return all(c.view.get(member, ("", 0))[0] == state for c in children)


async def wait_all_see(children: list[Child], members: list[str], state: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(all_see(children, member, state) for member in members):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every member saw {members} {state} within {timeout}s")
        await asyncio.sleep(0.01)


def summary(values: list[float]) -> dict:
    return {"p50": round(percentile(values, 50), 3), "p99": round(percentile(values, 99), 3),
            "max": round(max(values), 3), "samples": len(values)}


async def bench(nodes: int, profile: str, probe_interval: float | None, kills: int, seed: int) -> dict:
    rng = random.Random(seed)
    profile_args = ["--profile", profile]
    if probe_interval is not None:
        profile_args += ["--probe-interval", str(probe_interval)]
    started = time.time()
    seed_child = Child("m0")
    await seed_child.start(profile_args, None)
    children = [seed_child]
    for i in range(1, nodes):
        children.append(Child(f"m{i}"))
    await asyncio.gather(*(c.start(profile_args, seed_child.addr) for c in children[1:]))
    await wait_all_see(children, [c.name for c in children], "alive", 60)
    convergence = max(c.view[o.name][1] for c in children for o in children) - started
    detect_first, detect_all, joins = [], [], []
    try:
        for k in range(kills):
            victim = rng.choice(children[1:])
            survivors = [c for c in children if c is not victim]
            killed = time.time()
            victim.kill()
            await wait_all_see(survivors, [victim.name], "dead", 120)
            times = [c.view[victim.name][1] - killed for c in survivors]
            detect_first.append(min(times))
            detect_all.append(max(times))
            await victim.proc.wait()
            newcomer = Child(f"r{k}")
            joined = time.time()
            await newcomer.start(profile_args, seed_child.addr)
            children = survivors + [newcomer]
            await wait_all_see(children, [newcomer.name], "alive", 60)
            joins.append(max(c.view[newcomer.name][1] for c in children) - joined)
    finally:
        for c in children:
            c.kill()
        for c in children:  # reap them while the loop is alive
            await c.proc.wait()
    config = config_for(profile, probe_interval)
    return {
        "nodes": nodes, "profile": profile, "probe_interval": config.probe_interval, "kills": kills,
        "start_to_convergence_s": round(convergence, 3),
        "kill_to_dead_first_s": summary(detect_first),
        "kill_to_dead_all_s": summary(detect_all),
        "join_to_all_s": summary(joins),
        "memberlist_estimate_s": round(memberlist_detection_estimate(config, nodes, 0.0), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--profile", choices=("lan", "local", "wan"), default="local")
    ap.add_argument("--probe-interval", type=float, help="override the profile's (timeout scaled too)")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--member", help=argparse.SUPPRESS)
    ap.add_argument("--join", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.member:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        asyncio.run(run_member(args.member, config_for(args.profile, args.probe_interval), args.join))
        return
    result = asyncio.run(bench(args.nodes, args.profile, args.probe_interval, args.kills, args.seed))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
