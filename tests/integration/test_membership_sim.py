"""The seeded SWIM simulation (the production protocol code on a simulated network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from taskmaster.membership.simulation import SimParams, evaluate, run

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sim_swim.py"


def test_three_hundred_nodes_for_a_minute_detect_every_crash_without_false_positives():
    result = run(SimParams(nodes=300, loss=0.01, seconds=60, seed=11))
    detection = result["detection"]
    assert detection["crashed"] == 6 and detection["undetected"] == 0
    assert detection["full_detection_s"]["count"] == 6
    assert result["false_positives"]["deaths"] == 0
    assert result["join"]["count"] == 3 and result["join"]["unreached"] == 0
    assert all(evaluate(result, None).values()), evaluate(result, None)


def test_same_seed_same_result_and_another_seed_another():
    params = SimParams(nodes=100, loss=0.02, seconds=40, seed=5)
    first = json.dumps(run(params), sort_keys=True)
    assert json.dumps(run(params), sort_keys=True) == first
    assert json.dumps(run(SimParams(nodes=100, loss=0.02, seconds=40, seed=6)), sort_keys=True) != first


def test_duplication_reordering_and_slow_members_cause_no_false_deaths():
    result = run(SimParams(nodes=60, loss=0.02, seconds=90, seed=3, duplicate=0.05, jitter=0.02, slow=3,
                           stall=1.0))
    assert result["false_positives"]["deaths"] == 0
    assert result["detection"]["undetected"] == 0


def test_script_prints_the_same_report_in_any_process():
    def script(hash_seed: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(SCRIPT), "--nodes", "20", "--seconds", "40", "--seed", "2",
                               "--baseline", "5"], capture_output=True, text=True, timeout=120, check=True,
                              env={**os.environ, "PYTHONHASHSEED": hash_seed})
    out = script("1")
    assert script("2").stdout == out.stdout  # no dependence on str hashing or set order
    report = json.loads(out.stdout)
    assert report["params"]["nodes"] == 20 and report["baseline"]["nodes"] == 5
    assert set(report["targets"]) >= {"detection_p99_within_2x_estimate", "zero_false_positive_deaths",
                                      "message_rate_within_20pct_of_baseline", "join_known_to_all_within_3s"}
    assert "simulated 20 nodes" in out.stderr
