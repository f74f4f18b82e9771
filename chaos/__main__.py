"""`python -m chaos run ...` (one run), `python -m chaos battery ...` (every nemesis alone and
combined, several seeds, a summary table) and `python -m chaos check DIR` (the checker again over a
finished run). Exit status 0 only if every check of every run holds;
1 if a check failed (the seed and the command that replays it are printed); 2 if a run could not be
carried out at all."""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import checker, history, nemesis, report
from .run import HarnessError, Options, run

console = Console()


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
    unknown = set(names) - set(nemesis.CLASSES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown nemesis {', '.join(sorted(unknown))} "
                                         f"(choose from {', '.join(nemesis.CLASSES)})")
    return names


def _common(p: argparse.ArgumentParser, nemesis_flag: str, nemesis_default: str) -> None:
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--seconds", type=float, default=60.0, help="workload duration (the final phase comes after)")
    p.add_argument(nemesis_flag, type=_classes, default=_classes(nemesis_default),
                   help=f"comma list of {', '.join(nemesis.CLASSES)} (or none)")
    p.add_argument("--replicas", help="taskmasterd --replicas (N or all; default: the daemon's)")
    p.add_argument("--write-quorum", type=int, help="taskmasterd --write-quorum")
    p.add_argument("--clients", type=int, help="concurrent MCP clients, spread over the nodes (default 2 per node)")
    p.add_argument("--mode", choices=("auto", "netns", "loopback"), default="auto",
                   help="netns: a network namespace per node (root + iproute2); loopback: /admin/faults")
    p.add_argument("--converge-timeout", type=float, default=60.0)
    p.add_argument("--op-timeout", type=float, default=5.0, help="seconds before a call's outcome is unknown")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="one seeded run against a real cluster")
    _common(one, "--nemesis", "partition,kill,pause,clock")
    one.add_argument("--seed", type=int, help="default: a random seed (printed)")
    one.add_argument("--out", type=Path, help="default: chaos-runs/seed-S-TIME")
    many = sub.add_parser("battery", help="every nemesis alone and all combined, over several seeds")
    _common(many, "--nemeses", "partition,kill,pause,clock,packet")
    many.add_argument("--seeds", type=int, default=3, help="runs per nemesis set")
    many.add_argument("--first-seed", type=int, default=1)
    many.add_argument("--out", type=Path, help="default: chaos-runs/battery-TIME")
    again = sub.add_parser("check", help="run the checker again over a finished run's directory")
    again.add_argument("dir", type=Path)
    return p.parse_args(argv)


def options(a: argparse.Namespace, classes: tuple[str, ...], seed: int, out: Path) -> Options:
    return Options(nodes=a.nodes, seconds=a.seconds, nemesis=classes, seed=seed, replicas=a.replicas,
                   write_quorum=a.write_quorum, clients=a.clients, out=out, mode=a.mode,
                   converge_timeout=a.converge_timeout, op_timeout=a.op_timeout)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # so that finally blocks stop the daemons
    return {"run": run_one, "battery": battery, "check": recheck}[a.command](a)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def recheck(a: argparse.Namespace) -> int:
    """The checks of a finished run, from its history.jsonl, final.json and report.json's schedule."""
    missing = [f for f in ("report.json", "history.jsonl", "final.json") if not (a.dir / f).exists()]
    if missing:
        console.print(f"[red]{a.dir} is not a finished run:[/red] no {', '.join(missing)}")
        return 2
    saved = json.loads((a.dir / "report.json").read_text())
    faults = [nemesis.Fault.from_json(f) for f in saved["schedule"]]
    checks = checker.check(history.load(a.dir / "history.jsonl"), checker.load_final(a.dir / "final.json"), faults)
    console.print(_checks_table(report.checks_json(checks)))
    return 0 if checker.valid(checks) else 1


def _checks_table(checks: list[dict]) -> Table:
    table = Table("check", "result", "summary")
    for c in checks:
        style = {"pass": "green", "fail": "bold red"}.get(c["status"], "yellow")
        table.add_row(c["name"], f"[{style}]{c['status']}[/{style}]", c["summary"])
    return table


def run_one(a: argparse.Namespace) -> int:
    seed = a.seed if a.seed is not None else secrets.randbelow(2**31)
    opts = options(a, a.nemesis, seed, a.out or Path("chaos-runs") / f"seed-{seed}-{_stamp()}")
    console.print(f"chaos run: seed {seed}, {opts.nodes} nodes, {opts.seconds:g} s, "
                  f"nemesis {','.join(opts.nemesis) or 'none'} -> {opts.out}")
    try:
        result = run(opts)
    except HarnessError as exc:
        console.print(f"[red]run not carried out:[/red] {exc}\nreplay: {opts.command()}")
        return 2
    console.print(_checks_table(result["checks"]))
    f = result["figures"]
    console.print(f"{f['operations']} ops, {f['throughput_ok_per_s']} ok/s, mode {result['mode']}; "
                  f"report: {opts.out / 'report.md'}")
    if result["valid"]:
        console.print("[green]every check holds[/green]")
        return 0
    console.print(f"[bold red]FAILED[/bold red] seed {seed}; replay with:\n  {result['command']}")
    return 1


def battery(a: argparse.Namespace) -> int:
    classes = a.nemeses
    sets = [(c,) for c in classes] + ([classes] if len(classes) > 1 else [])
    out = a.out or Path("chaos-runs") / f"battery-{_stamp()}"
    rows = []
    for names in sets:
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            opts = options(a, names, seed, out / f"{'+'.join(names)}-seed{seed}")
            console.print(f"run {len(rows) + 1}/{len(sets) * a.seeds}: {'+'.join(names)} seed {seed}")
            rows.append(_row(opts))
    summary = summarize(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"runs": rows, "per_nemesis": summary}, indent=2) + "\n")
    console.print(_table(rows, summary))
    with (out / "summary.txt").open("w") as f:
        Console(file=f, width=200).print(_table(rows, summary), _runs_table(rows))
    failed = [r for r in rows if r["result"] != "pass"]
    for r in failed:
        console.print(f"[red]{r['result']}[/red] {r['nemesis']} seed {r['seed']}: {r['command']}")
    return 0 if not failed else 1


def _row(opts: Options) -> dict:
    row = {"nemesis": "+".join(opts.nemesis), "seed": opts.seed, "command": opts.command(), "out": str(opts.out)}
    try:
        r = run(opts)
    except HarnessError as exc:
        return {**row, "result": "harness error", "error": str(exc)}
    f, checks = r["figures"], {c["name"]: c for c in r["checks"]}
    lost = checks["acknowledged_writes_lost"]["figures"].get("lost", {})
    return {**row, "result": "pass" if r["valid"] else "fail", "lost": sum(lost.values()),
            "failed_checks": [c["name"] for c in r["checks"] if c["status"] == "fail"],
            "converge_s": r["final_phase"]["converged_after"], "ok_per_s": f["throughput_ok_per_s"],
            "error_rate": f["during_faults"]["error_rate"], "unknown_rate": f["during_faults"]["unknown_rate"],
            "p99_ms": f["latency_ok_ms"]["p99"]}


def summarize(rows: list[dict]) -> dict:
    """Per nemesis set: runs, passes, lost writes, convergence p99, mean ok/s and error rates."""
    out = {}
    for name in dict.fromkeys(r["nemesis"] for r in rows):
        rs = [r for r in rows if r["nemesis"] == name and r["result"] != "harness error"]
        conv = [r["converge_s"] for r in rs if r["converge_s"] is not None]

        def mean(key: str, rs=rs) -> float | None:
            values = [r[key] for r in rs if r.get(key) is not None]
            return round(sum(values) / len(values), 4) if values else None

        out[name] = {"runs": len([r for r in rows if r["nemesis"] == name]),
                     "passed": sum(r["result"] == "pass" for r in rs), "lost": sum(r["lost"] for r in rs),
                     "converged": f"{len(conv)}/{len(rs)}", "converge_p99_s": report.quantile(conv, 0.99),
                     "ok_per_s": mean("ok_per_s"), "error_rate": mean("error_rate"),
                     "unknown_rate": mean("unknown_rate")}
    return out


def _runs_table(rows: list[dict]) -> Table:
    t = Table("nemesis", "seed", "result", "lost", "failed checks", "converge s", "ok/s", "p99 ms", "dir",
              title="every run")
    for r in rows:
        t.add_row(r["nemesis"], str(r["seed"]), r["result"], str(r.get("lost", "")),
                  ", ".join(r.get("failed_checks", ())) or r.get("error", ""), str(r.get("converge_s", "")),
                  str(r.get("ok_per_s", "")), str(r.get("p99_ms", "")), r["out"])
    return t


def _table(rows: list[dict], summary: dict) -> Table:
    t = Table("nemesis", "runs", "passed", "lost", "converged", "converge p99 s", "ok/s", "error rate (faults)",
              "unknown rate (faults)", title=f"chaos battery: {len(rows)} runs")
    for name, s in summary.items():
        t.add_row(name, str(s["runs"]), str(s["passed"]), str(s["lost"]), s["converged"], str(s["converge_p99_s"]),
                  str(s["ok_per_s"]), str(s["error_rate"]), str(s["unknown_rate"]))
    return t


if __name__ == "__main__":
    sys.exit(main())
