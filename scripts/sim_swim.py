"""Seeded SWIM + Lifeguard simulation: the production membership code on a simulated network.

    python scripts/sim_swim.py --nodes 1000 --loss 0.01 --seconds 600 --seed 1
    python scripts/sim_swim.py --profile wan --nodes 9 --zones 3 --inter-zone-rtt 50-150 --zone-outage

Prints one JSON document: crash detection times (first suspicion, first and full detection:
p50/p99/max, against memberlist's estimate for the size), false-positive deaths, messages and bytes
per node per second (steady, fault-free window and whole run), join propagation times, and the
issue's targets checked, with a fault-free 10-node run of the same parameters as the load baseline.
Same seed, same output. Wall and CPU time, and a one-line summary (detection by all p50/p99, how long
membership took to converge after each crash and join, false positives), go to stderr. With
--zones, node i lives in zone i % zones: ~1 ms round trips inside a zone, fixed 50-150 ms ones
between zones (--inter-zone-rtt), and --zone-outage also crashes a whole zone at once. Measured on the 2-core dev VM: 1,000 nodes
x 600 s takes 100-120 s of CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace

from taskmaster.membership.simulation import SimParams, evaluate, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--loss", type=float, default=0.01, help="UDP packet loss probability")
    ap.add_argument("--seconds", type=float, default=600.0, help="virtual seconds to simulate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", choices=("lan", "local", "wan"), default="lan")
    ap.add_argument("--crashes", type=int, default=-1, help="default: min(20, max(1, nodes/50))")
    ap.add_argument("--joins", type=int, default=-1, help="default: min(10, max(1, nodes/100))")
    ap.add_argument("--slow", type=int, default=0, help="nodes whose event loop keeps stalling")
    ap.add_argument("--stall", type=float, default=0.5, help="seconds each stall of a slow node lasts")
    ap.add_argument("--duplicate", type=float, default=0.0, help="packet duplication probability")
    ap.add_argument("--delay-ms", type=float, default=0.5, help="base one-way latency")
    ap.add_argument("--jitter-ms", type=float, default=1.5, help="uniform extra latency (reorders)")
    ap.add_argument("--zones", type=int, default=1, help="node i lives in zone i %% zones")
    ap.add_argument("--inter-zone-rtt", default="50-150", metavar="MIN-MAX",
                    help="round trip between zones in ms, spread evenly over the zone pairs")
    ap.add_argument("--zone-outage", action="store_true", help="also crash every node of one zone at once")
    ap.add_argument("--baseline", type=int, default=10,
                    help="nodes of the load-baseline run (0: none)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    try:
        low, high = (float(v) / 1000 for v in args.inter_zone_rtt.split("-"))
    except ValueError:
        ap.error(f"--inter-zone-rtt takes MIN-MAX in ms, e.g. 50-150, not {args.inter_zone_rtt!r}")

    params = SimParams(nodes=args.nodes, loss=args.loss, seconds=args.seconds, seed=args.seed,
                       profile=args.profile, crashes=args.crashes, joins=args.joins, slow=args.slow, stall=args.stall,
                       duplicate=args.duplicate, delay=args.delay_ms / 1000, jitter=args.jitter_ms / 1000,
                       zones=args.zones, inter_zone_rtt=(low, high), zone_outage=args.zone_outage)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run(params)
    print(f"simulated {args.nodes} nodes x {args.seconds:g}s in {time.perf_counter() - wall:.1f}s wall, "
          f"{time.process_time() - cpu:.1f}s CPU", file=sys.stderr)
    print(summary(result), file=sys.stderr)
    baseline = None
    if args.baseline:
        # Fault-free for the whole run, so its load is measured over all of it.
        baseline = run(replace(params, nodes=args.baseline, crashes=0, joins=0, slow=0, zone_outage=False))
        result["baseline"] = {"nodes": args.baseline, "fault_free": True, "load": baseline["load"]}
    result["targets"] = evaluate(result, baseline)
    json.dump(result, sys.stdout, indent=2)
    print()


def summary(result: dict) -> str:
    """One line for people: the figures the zone experiments quote."""
    d, fp, join = result["detection"], result["false_positives"], result["join"]
    full = d["full_detection_s"]
    zones = result.get("zones")
    where = (f"{zones['count']} zones (RTT {', '.join(f'{v:g}' for v in zones['pair_rtt_ms'].values())} ms), "
             if zones else "")
    return (f"{where}{result['params']['profile']}: {d['crashed']} crashes, detected by all: p50 {full['p50']} s, "
            f"p99 {full['p99']} s (memberlist estimate {d['memberlist_estimate_s']} s, {d['undetected']} undetected); "
            f"converged after a crash within {full['max']} s, after a join within {join['max']} s "
            f"({join['unreached']} unreached); false positives: {fp['deaths']} deaths, "
            f"{fp['suspect_transitions']} suspicions")


if __name__ == "__main__":
    main()
