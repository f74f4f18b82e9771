"""The views of `task-master cluster` and `task-master ops`: pure functions from an endpoint's JSON to
blocks, printed here as plain text (what a pipe gets)."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmaster.cli.commands import Request, parse
from taskmaster.cli.render import Printer, duration, health_seg, unwell_members, view_cluster, view_ops


def text_of(blocks) -> list[str]:
    out = io.StringIO()
    Printer(out, rich=False).print(blocks)
    return out.getvalue().splitlines()


def member(name, state="alive", zone=None, share=None, reachable=True, hints=0, rtt_ms=None, version="0.1.0"):
    return {"name": name, "gossip": "10.0.0.1:7946", "http": f"http://{name}:7070/mcp", "zone": zone or "",
            "state": state, "incarnation": 1, "meta": {"version": version, "zone": zone or ""}, "share": share,
            "health": {"reachable": reachable, "hints": hints, "rtt_ms": rtt_ms}}


RING = {"replicas": 2, "write_quorum": 2, "vnodes": 128, "hints_pending": 3}
CLUSTER = {"self": "b", "health": {"lhm": 1}, "ring": RING, "members": [
    member("a", zone="eu-1", share=0.6667, rtt_ms=0.42),
    member("b", zone="eu-2", share=0.6667),
    member("c", state="dead", zone="eu-2", share=0.6666, reachable=False, hints=3),
    member("d", state="left", share=None, reachable=False)]}


# ---- cluster ---------------------------------------------------------------------------------------
def test_cluster_header_names_size_states_zones_quorum_and_this_node():
    lines = text_of(view_cluster(CLUSTER, None))
    assert lines[0] == "4 members · 2 alive · 1 dead · 1 left · 2 zones · N=2 W=2 · this node b"


def test_cluster_table_has_one_row_per_member_with_zone_share_and_health():
    lines = text_of(view_cluster(CLUSTER, None))
    assert lines[1].split() == ["Name", "Zone", "State", "Version", "HTTP", "Share", "Health"]
    rows = lines[2:6]
    assert re.fullmatch(r"\s+a\s+eu-1\s+alive\s+0\.1\.0\s+http://a:7070/mcp\s+66\.7%\s+ok \(0\.4 ms\)", rows[0])
    assert re.fullmatch(r"\*\s+b\s+eu-2\s+alive\s+0\.1\.0\s+http://b:7070/mcp\s+66\.7%\s+ok", rows[1])
    assert re.fullmatch(r"\s+c\s+eu-2\s+dead\s+.*66\.7%\s+3 hints pending", rows[2])
    assert re.fullmatch(r"\s+d\s+-\s+left\s+.*\s+-\s+-", rows[3]), "no zone, outside the ring"
    assert len({row.index(state) for row, state in zip(rows, ("alive", "alive", "dead", "left"), strict=True)}) == 1
    assert lines[6] == "local health 1 · hints pending 3 · 128 vnodes per member"
    assert lines[7] == "not alive: c"


def test_cluster_of_one_without_zones():
    one = {"self": "solo", "health": {"lhm": 0}, "ring": dict(RING, replicas=3, hints_pending=0),
           "members": [member("solo", share=1.0)]}
    lines = text_of(view_cluster(one, None))
    assert lines[0] == "1 member · 1 alive · no zones set · N=3 W=2 · this node solo"
    assert lines[2].split()[-2:] == ["100.0%", "ok"]
    assert len(lines) == 4, "nothing is unwell"


@pytest.mark.parametrize("m, expected", [
    (member("a", rtt_ms=1.234), ("ok (1.2 ms)", "green")),
    (member("me", rtt_ms=None), ("ok", "green")),
    (member("a", rtt_ms=None), ("ok", "green")),
    (member("a", reachable=False), ("unreachable", "yellow")),
    (member("a", hints=1), ("1 hint pending", "yellow")),
    (member("a", state="suspect", reachable=False, hints=2), ("unreachable, 2 hints pending", "red")),
    (member("a", state="suspect", rtt_ms=3.0), ("reachable (3.0 ms)", "yellow")),
    (member("a", state="dead", reachable=False), ("down", "red")),
    (member("a", state="left", reachable=False), ("-", "dim")),
    ({"name": "old", "state": "alive"}, ("ok", "green")),  # a daemon from before health was reported
])
def test_health_column(m, expected):
    assert health_seg(m, "me") == expected


def test_unwell_members_are_the_suspect_and_dead_ones():
    assert unwell_members(CLUSTER) == ["c"]
    assert unwell_members({"members": [member("x", state="suspect"), member("y", state="left")]}) == ["x"]
    assert unwell_members({}) == []


# ---- ops -------------------------------------------------------------------------------------------
def operation(op_id, status="in_progress", **fields):
    return {"operationId": op_id, "kind": "parse_prd", "status": status, "progress": {"done": 1, "total": 3},
            "runner": "n1", "attempts": 1, "projectRoot": "/srv/shop", "tag": "master",
            "createdAt": "2025-11-27T16:40:00.000Z", "startedAt": "2025-11-27T16:40:01.500Z",
            "finishedAt": None, **fields}


OPS = {"self": "n0", "now": "2025-11-27T16:43:05.000Z", "all": False, "missing": [], "operations": [
    operation("00000000000000aa"),
    operation("00000000000000bb", status="queued", kind="expand_all", startedAt=None,
              createdAt="2025-11-26T10:00:00.000Z", progress=None, runner=None, tag="feat")]}


def test_ops_table_one_row_per_operation():
    lines = text_of(view_ops(OPS, None))
    assert lines[0].split() == ["ID", "Kind", "Project", "Tag", "State", "Runner", "Started", "Progress", "Age"]
    assert lines[1].split() == ["00000000000000aa", "parse_prd", "/srv/shop", "master", "in_progress", "n1",
                                "16:40:01", "1/3", "3m05s"]
    assert lines[2].split() == ["00000000000000bb", "expand_all", "/srv/shop", "feat", "queued", "-", "-", "-",
                                "1d06h"]
    assert lines[3] == "2 operations running"
    assert len(lines) == 4


def test_ops_started_on_another_day_shows_the_date():
    data = dict(OPS, all=True, operations=[operation("00000000000000cc", status="completed",
                                                     startedAt="2025-11-26T23:59:59Z")])
    lines = text_of(view_ops(data, None))
    assert "2025-11-26 23:59" in lines[1] and "completed" in lines[1]
    assert lines[2] == "1 operation"


@pytest.mark.parametrize("everything, message", [(False, "No operations running."), (True, "No operations kept.")])
def test_ops_none(everything, message):
    assert text_of(view_ops(dict(OPS, all=everything, operations=[]), None)) == [message]


def test_ops_names_the_members_that_did_not_answer():
    lines = text_of(view_ops(dict(OPS, operations=[], missing=["n2", "n3"]), None))
    assert lines == ["No operations running.",
                     "did not answer: n2, n3 (operations only they hold are not listed)"]


def test_ops_tolerates_missing_and_malformed_fields():
    data = {"operations": [{"operationId": "00000000000000dd", "status": "failed", "createdAt": "not a time",
                            "progress": "?"}]}
    row = text_of(view_ops(data, None))[1].split()
    assert row == ["00000000000000dd", "-", "-", "-", "failed", "-", "-", "-", "-"]


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (185, "3m05s"),
                                           (3600, "1h00m"), (3661, "1h01m"), (86400 + 7200, "1d02h"),
                                           (-5, "0s")])
def test_duration_examples(seconds, text):
    assert duration(seconds) == text


@given(st.integers(min_value=0, max_value=10 ** 8))
def test_duration_reads_back_to_the_seconds_within_its_last_unit(seconds):
    parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration(seconds))
    assert parts is not None and parts.group(0)
    d, h, m, s = (int(g) if g else 0 for g in parts.groups())
    units = [g is not None for g in parts.groups()]
    assert units.count(True) in (1, 2), "two units at most"
    last = (86400, 3600, 60, 1)[max(i for i, present in enumerate(units) if present)]
    value = d * 86400 + h * 3600 + m * 60 + s
    assert value <= seconds < value + last


# ---- the command --------------------------------------------------------------------
def test_ops_is_a_get_of_the_operations_endpoint():
    assert parse(["ops"])[0] == Request("/operations", {}, "ops", admin=True, method="GET")
    assert parse(["ops", "--all", "--json"])[0] == Request("/operations", {"all": "1"}, "ops", admin=True,
                                                           method="GET")
