"""What a run leaves behind: DIR/report.json (every figure), DIR/report.md (for people) and
DIR/timeline.png (throughput, latency and errors over time, with the nemesis windows shaded)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

from .checker import Check, valid
from .history import History
from .nemesis import Fault
from .workload import REFUSED

MD_EXAMPLES = 5
COLORS = {"partition": "tab:red", "kill": "tab:purple", "pause": "tab:orange", "clock": "tab:blue",
          "packet": "tab:green"}


# Failed calls, by why: the node was down (connection refused), the tool said no, or no answer came.
FAILURES = {"node down": "tab:purple", "tool error": "tab:red", "unknown": "tab:gray"}


def failure_kind(op) -> str:
    if op.outcome == "unknown":
        return "unknown"
    return "node down" if op.error.startswith(REFUSED) else "tool error"


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def figures(history: History, faults: list[Fault], seconds: float) -> dict:
    """Counts, throughput and latency of the workload, overall and inside/outside the fault windows."""
    ops = [op for op in history.ops if op.client >= 0]
    outcomes = Counter(op.outcome for op in ops)
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for op in ops:
        by_kind[op.kind][op.outcome] += 1
    ok_latency = [op.latency for op in ops if op.outcome == "ok"]
    windows = [(start, healed if healed is not None else seconds, kind)
               for _, kind, start, healed in history.windows()]

    def in_fault(t: float) -> bool:
        return any(a <= t < b for a, b, _ in windows)

    inside = [op for op in ops if in_fault(op.invoke)]
    outside = [op for op in ops if not in_fault(op.invoke)]
    per_class = {}
    for cls in sorted({f.cls for f in faults}):
        spans = [(a, b) for a, b, kind in windows if kind.split("-")[0] == cls]
        hit = [op for op in ops if any(a <= op.invoke < b for a, b in spans)]
        per_class[cls] = _rates(hit, covered(spans))
    fault_time = covered([(a, min(b, seconds)) for a, b, _ in windows])
    return {
        "operations": len(ops), "outcomes": dict(outcomes),
        "failures": dict(Counter(failure_kind(op) for op in ops if op.outcome != "ok")),
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "throughput_ok_per_s": round(outcomes["ok"] / seconds, 2) if seconds else None,
        "latency_ok_ms": {"p50": _ms(quantile(ok_latency, 0.5)), "p95": _ms(quantile(ok_latency, 0.95)),
                          "p99": _ms(quantile(ok_latency, 0.99)), "max": _ms(max(ok_latency, default=None))},
        "during_faults": _rates(inside, fault_time),
        "without_faults": _rates(outside, max(0.0, seconds - fault_time)),
        "per_nemesis": per_class,
        "acks_by_replicas": dict(Counter(str(op.value.get("replicas")) for op in ops
                                         if op.outcome == "ok" and "replicas" in op.value)),
    }


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of the spans."""
    total, reach = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def _rates(ops: list, seconds: float) -> dict:
    n = len(ops)
    count = Counter(op.outcome for op in ops)
    lat = [op.latency for op in ops if op.outcome == "ok"]
    down = sum(failure_kind(op) == "node down" for op in ops if op.outcome == "error")
    return {"operations": n, "ok_per_s": round(count["ok"] / seconds, 2) if seconds > 0 else None,
            "error_rate": round(count["error"] / n, 4) if n else None,
            "node_down_rate": round(down / n, 4) if n else None,
            "unknown_rate": round(count["unknown"] / n, 4) if n else None,
            "latency_ok_p99_ms": _ms(quantile(lat, 0.99))}


def build(*, seed: int, command: str, options: dict, mode: str, versions: dict, capabilities: dict,
          faults: list[Fault], history: History, final_phase: dict, checks: list[Check]) -> dict:
    """The whole report as one JSON-able dict."""
    return {
        "seed": seed, "valid": valid(checks), "command": command, "options": options,
        "mode": mode, "versions": versions, "capabilities": capabilities,
        "schedule": [f.to_json() for f in faults],
        "applied": [{"fault": i, "kind": k, "start": round(s, 3), "healed": None if h is None else round(h, 3)}
                    for i, k, s, h in history.windows()],
        "nemesis_events": [dataclasses.asdict(e) for e in history.events],
        "final_phase": final_phase,
        "figures": figures(history, faults, options["seconds"]),
        "checks": checks_json(checks),
    }


def write(out: Path, report: dict, history: History, faults: list[Fault]) -> None:
    """report.json, report.md and timeline.png (when matplotlib is there) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        timeline(out / "timeline.png", history, faults, report["options"]["seconds"], report["seed"])
        report["timeline"] = "timeline.png"
    except ImportError as exc:
        report["timeline"] = f"not drawn: {exc}"
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown(report))


def checks_json(checks: list[Check]) -> list[dict]:
    return [{"name": c.name, "status": c.status, "summary": c.summary, "figures": c.figures,
             "details": c.details} for c in checks]


def markdown(report: dict) -> str:
    f = report["figures"]
    lines = [f"# Chaos run, seed {report['seed']}: {'PASS' if report['valid'] else 'FAIL'}", "",
             f"`{report['command']}`", "",
             f"{report['options']['nodes']} nodes ({report['mode']} mode), {report['options']['clients']} clients, "
             f"{report['options']['seconds']} s of workload, nemesis: {', '.join(report['options']['nemesis']) or 'none'}; "
             f"{report['versions'].get('taskmasterd', '?')}."
             + (f" Packet faults: {report['capabilities']['packet faults']}."
                if "packet faults" in report["capabilities"] else ""), "",
             "## Checks", "", "| check | result | summary |", "|---|---|---|"]
    lines += [f"| {c['name']} | {c['status']} | {_cell(c['summary'])} |" for c in report["checks"]]
    failing = [c for c in report["checks"] if c["status"] == "fail" and c["details"]]
    if failing:
        lines += ["", "## What failed (first examples; all of them in report.json)"]
        for c in failing:
            lines += ["", f"**{c['name']}**: {c['summary']}", ""]
            lines += [f"- `{json.dumps(d, default=str)}`" for d in c["details"][:MD_EXAMPLES]]
    lat = f["latency_ok_ms"]
    lines += ["", "## Workload", "",
              f"{f['operations']} operations: {f['outcomes'].get('ok', 0)} ok, {f['outcomes'].get('error', 0)} error, "
              f"{f['outcomes'].get('unknown', 0)} unknown; {f['throughput_ok_per_s']} ok/s; latency of ok calls "
              f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms.", "",
              "| when | operations | ok/s | error rate | unknown rate | p99 ms |", "|---|---|---|---|---|---|"]
    rows = [("without faults", f["without_faults"]), ("during faults", f["during_faults"]),
            *((f"during {k}", v) for k, v in f["per_nemesis"].items())]
    lines += [f"| {name} | {r['operations']} | {r['ok_per_s']} | {r['error_rate']} | {r['unknown_rate']} | "
              f"{r['latency_ok_p99_ms']} |" for name, r in rows]
    lines += ["", "## Nemesis schedule", "", "| # | fault | planned | applied | healed |", "|---|---|---|---|---|"]
    applied = {w["fault"]: w for w in report["applied"]}
    for i, fault in enumerate(report["schedule"]):
        w = applied.get(i, {})
        lines.append(f"| {i} | {fault['kind']}: {_cell(fault.get('label', ''))} | {fault['start']:.1f}–{fault['end']:.1f} s | "
                     f"{_t(w.get('start'))} | {_t(w.get('healed'))} |")
    final = report["final_phase"]
    lines += ["", "## Final phase", "",
              f"The workload stopped at {_t(final.get('began_at'))} (the last fault was healed at "
              f"{_t(final.get('last_heal_at'))}); heal actions then: {', '.join(final['heal_actions']) or 'none needed'}. "
              f"Replicas converged {_t(final['converged_after'])} after that ({final['convergence_method']}); "
              f"membership agreed after {_t(final['membership_after'])}.", "",
              f"Timeline: {report.get('timeline')}", ""]
    if not report["valid"]:
        lines += ["## Replay", "", f"`{report['command']}`", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _t(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f} s"


def timeline(path: Path, history: History, faults: list[Fault], seconds: float, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = [op for op in history.ops if op.client >= 0]
    end = max([seconds] + [op.complete for op in ops])
    bins = max(1, math.ceil(end))
    ok = [0] * bins
    failed = {kind: [0] * bins for kind in FAILURES}
    lat: list[list[float]] = [[] for _ in range(bins)]
    for op in ops:
        b = min(bins - 1, int(op.complete))
        if op.outcome == "ok":
            ok[b] += 1
            lat[b].append(op.latency * 1000)
        else:
            failed[failure_kind(op)][b] += 1
    xs = [b + 0.5 for b in range(bins)]
    fig, (top, mid, low) = plt.subplots(3, 1, sharex=True, figsize=(12, 8))
    top.plot(xs, ok, color="black", lw=1.2, label="ok ops/s")
    top.set_ylabel("ok ops/s")
    for q, style in ((0.5, "-"), (0.99, "--")):
        mid.plot([x for x, v in zip(xs, lat, strict=True) if v], [quantile(v, q) for v in lat if v], style,
                 color="black", lw=1, label=f"p{int(q * 100)}")
    mid.set_ylim(bottom=0)
    mid.set_ylabel("latency of ok calls (ms)")
    mid.legend(loc="upper right", fontsize=8)
    bottom = [0] * bins
    for kind, color in FAILURES.items():
        low.bar(xs, failed[kind], width=1.0, bottom=bottom, color=color, label=kind)
        bottom = [a + b for a, b in zip(bottom, failed[kind], strict=True)]
    low.set_ylabel("failed calls/s")
    low.set_xlabel("seconds since start")
    low.legend(loc="upper right", fontsize=8)
    shown = set()
    for i, kind, start, healed in history.windows():
        cls = kind.split("-")[0]
        for ax in (top, mid, low):
            ax.axvspan(start, healed if healed is not None else end, color=COLORS.get(cls, "gray"), alpha=0.15,
                       label=None if ax is not top or cls in shown else cls)
        shown.add(cls)
        top.annotate(faults[i].label or kind, (start, 1.0), xycoords=("data", "axes fraction"), fontsize=6,
                     rotation=90, va="top", ha="right", color=COLORS.get(cls, "gray"))
    top.legend(loc="upper right", fontsize=8)
    top.set_title(f"chaos run, seed {seed}: nemesis windows shaded")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
