"""`python -m chaos`: the replay command a run prints parses back to the same run, and the battery's
summary adds runs up per nemesis set."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from chaos.__main__ import _runs_table, options, parse, summarize


def test_the_replay_command_names_the_same_run():
    a = parse(["run", "--nodes", "3", "--seconds", "20", "--nemesis", "partition,kill", "--seed", "77",
               "--replicas", "all", "--write-quorum", "2", "--clients", "4", "--mode", "loopback"])
    first = options(a, a.nemesis, a.seed, Path("x"))
    words = shlex.split(first.command())
    assert words[:4] == ["python", "-m", "chaos", "run"]
    b = parse(words[3:])
    again = options(b, b.nemesis, b.seed, Path("x"))
    assert again == first
    assert first.daemon_args() == ("--replicas", "all", "--write-quorum", "2")


def test_defaults_and_bad_nemesis_names():
    a = parse(["run"])
    assert (a.nodes, a.seconds, a.nemesis, a.seed) == (5, 60.0, ("partition", "kill", "pause", "clock"), None)
    assert options(a, a.nemesis, 1, Path("x")).client_count == 10
    assert parse(["run", "--nemesis", "none"]).nemesis == ()
    with pytest.raises(SystemExit):
        parse(["run", "--nemesis", "partition,meteor"])
    b = parse(["battery"])
    assert b.nemeses == ("partition", "kill", "pause", "clock", "packet") and b.seeds == 3


def test_the_battery_summary_adds_up_runs_per_nemesis_set():
    rows = [{"nemesis": "kill", "seed": 1, "result": "pass", "lost": 0, "converge_s": 1.0, "ok_per_s": 100.0,
             "error_rate": 0.1, "unknown_rate": 0.0, "out": "a", "failed_checks": []},
            {"nemesis": "kill", "seed": 2, "result": "fail", "lost": 3, "converge_s": None, "ok_per_s": 50.0,
             "error_rate": 0.3, "unknown_rate": 0.1, "out": "b", "failed_checks": ["convergence"]},
            {"nemesis": "pause", "seed": 1, "result": "harness error", "error": "boom", "out": "c"}]
    s = summarize(rows)
    assert s["kill"] == {"runs": 2, "passed": 1, "lost": 3, "converged": "1/2", "converge_p99_s": 1.0,
                         "ok_per_s": 75.0, "error_rate": 0.2, "unknown_rate": 0.05}
    assert s["pause"]["runs"] == 1 and s["pause"]["passed"] == 0 and s["pause"]["converged"] == "0/0"
    assert _runs_table(rows).row_count == 3
