"""The report of a synthetic run: report.json with every figure, report.md, timeline.png."""

from __future__ import annotations

import json

import pytest

from chaos import checker, report
from chaos.checker import FinalState
from chaos.history import History, NemesisEvent, Op
from chaos.nemesis import schedule


def synthetic_run() -> tuple[History, list, FinalState]:
    faults = schedule(5, 3, 20, ("partition", "kill"))
    ops = []
    for k in range(400):  # two clients, one op every 0.1 s each; errors while fault 0 is in force
        t = k * 0.05
        failing = faults[0].start <= t < faults[0].end and k % 3 == 0
        ops.append(Op(client=k % 2, node=f"n{k % 2}", seq=k // 2, kind="add_task", tool="add_task", args={},
                      invoke=t, complete=t + 0.002 + (k % 7) * 0.001, outcome="error" if failing else "ok",
                      marker=f"[c{k % 2}.{k // 2}]", value={"replicas": 2}))
    events = [NemesisEvent(i, f.kind, action, at) for i, f in enumerate(faults)
              for action, at in (("start", f.start), ("heal", f.end))]
    tasks = [{"id": i + 1, "title": f"task {op.marker}", "dependencies": [], "subtasks": []}
             for i, op in enumerate(o for o in ops if o.outcome == "ok")]
    nodes = ["n0", "n1", "n2"]
    final = FinalState(nodes=nodes, reads={n: {"master": tasks} for n in nodes},
                       views={n: dict.fromkeys(nodes, "alive") for n in nodes}, converged_after=0.8,
                       convergence_method="reads")
    return History(ops, events), faults, final


def build(history, faults, final) -> dict:
    checks = checker.check(history, final, faults)
    return report.build(seed=5, command="python -m chaos run --seed 5", mode="loopback",
                        options={"nodes": 3, "seconds": 20, "nemesis": ["partition", "kill"], "clients": 2},
                        versions={"taskmasterd": "taskmasterd 0.1.0"}, capabilities={"/admin/faults": True},
                        faults=faults, history=history, checks=checks,
                        final_phase={"heal_actions": [], "converged_after": 0.8, "membership_after": 0.3,
                                     "convergence_method": "reads", "timeout": 60})


def test_a_run_writes_its_json_and_markdown_reports(tmp_path):
    history, faults, final = synthetic_run()
    result = build(history, faults, final)
    report.write(tmp_path, result, history, faults)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["valid"] is True and data["seed"] == 5
    assert data["schedule"] == [f.to_json() for f in faults] and len(data["applied"]) == len(faults)
    f = data["figures"]
    assert f["operations"] == 400 and f["outcomes"]["ok"] + f["outcomes"].get("error", 0) == 400
    assert f["throughput_ok_per_s"] == round(f["outcomes"]["ok"] / 20, 2)
    assert 2.0 <= f["latency_ok_ms"]["p50"] <= f["latency_ok_ms"]["p99"] <= 8.0
    assert f["during_faults"]["error_rate"] > 0 and f["without_faults"]["error_rate"] == 0
    assert f["acks_by_replicas"] == {"2": f["outcomes"]["ok"]}
    assert {c["name"] for c in data["checks"]} >= {"acknowledged_writes_lost", "convergence", "claims_exclusive"}
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Chaos run, seed 5: PASS")
    assert "| acknowledged_writes_lost | pass |" in md and faults[0].label in md


def test_a_failed_run_says_so_and_how_to_replay_it(tmp_path):
    history, faults, final = synthetic_run()
    final.reads["n2"] = {"master": []}
    result = build(history, faults, final)
    report.write(tmp_path, result, history, faults)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Chaos run, seed 5: FAIL") and "## Replay" in md and "--seed 5" in md
    assert "**acknowledged_writes_on_every_node**" in md and '"missing_on": ["n2"]' in md


def test_the_timeline_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    history, faults, final = synthetic_run()
    result = build(history, faults, final)
    report.write(tmp_path, result, history, faults)
    png = (tmp_path / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert json.loads((tmp_path / "report.json").read_text())["timeline"] == "timeline.png"


def test_quantiles_are_nearest_rank():
    assert report.quantile([], 0.5) is None
    assert report.quantile([3, 1, 2], 0.5) == 2
    assert report.quantile(list(range(1, 101)), 0.99) == 99
    assert report.quantile([5], 0.99) == 5
