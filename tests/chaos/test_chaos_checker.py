"""The checker on synthetic histories and final reads, including ones that must fail."""

from __future__ import annotations

from chaos import checker
from chaos.checker import FAIL, INFO, NA, PASS, FinalState, find_cycle, tag_problems
from chaos.history import History, HistoryWriter, NemesisEvent, Op, load
from chaos.nemesis import Fault

NODES = ["n0", "n1", "n2"]


def op(kind: str, marker: str, outcome: str = "ok", *, client: int = 0, seq: int = 0, t: float = 1.0,
       latency: float = 0.01, node: str = "n0", tool: str | None = None, args: dict | None = None,
       targets: tuple = (), value: dict | None = None) -> Op:
    tools = {"add_subtask": "add_subtask", "add_dependency": "add_dependency", "claim": "next_task",
             "release": "set_task_status", "set_status": "set_task_status"}
    return Op(client=client, node=node, seq=seq, kind=kind, tool=tool or tools.get(kind, kind), args=args or {},
              invoke=t, complete=t + latency, outcome=outcome, marker=marker, targets=list(targets),
              value=value or {})


def task(tid: int, marker: str, deps=(), subtasks=(), **extra) -> dict:
    return {"id": tid, "title": f"task {marker}", "status": "pending", "dependencies": list(deps),
            "subtasks": list(subtasks), **extra}


def state(tags: dict, *, nodes=NODES, views=None, digests=None, converged=1.5, **kw) -> FinalState:
    """Every node reads `tags` (or per-node reads when tags maps node names)."""
    reads = tags if set(tags) <= set(nodes) and tags else {n: tags for n in nodes}
    views = views or {n: {m: "alive" for m in nodes} for n in nodes}
    return FinalState(nodes=list(nodes), reads=reads, views=views, digests=digests, converged_after=converged,
                      convergence_method="digests" if digests else "reads", **kw)


def run(history: History, final: FinalState, faults=()) -> dict[str, checker.Check]:
    return {c.name: c for c in checker.check(history, final, list(faults))}


def test_a_clean_run_passes_every_check():
    h = History([op("add_task", "[c0.0]"), op("add_task", "[c1.0]", client=1, node="n1"),
                 op("add_subtask", "[c0.1]", args={"id": "1"}, targets=("[c0.0]",)),
                 op("add_tag", "[c0.2]", args={"name": "c0t2"})])
    final = state({"master": [task(1, "[c0.0]", subtasks=[{"id": 1, "title": "sub [c0.1]", "dependencies": []}]),
                              task(2, "[c1.0]")], "c0t2": []})
    checks = run(h, final)
    assert checker.valid(checks.values())
    assert checks["acknowledged_writes_lost"].figures["acknowledged"] == {"tasks": 2, "subtasks": 1, "tags": 1,
                                                                          "dependencies": 0}
    assert checks["claims_exclusive"].status == NA
    assert checks["supervised_operations_exactly_once"].status == NA
    assert checks["nemesis_applied"].status == NA


def test_an_acknowledged_task_missing_from_every_node_is_lost():
    h = History([op("add_task", "[c0.0]", value={"replicas": 1}), op("add_task", "[c0.1]", seq=1)])
    checks = run(h, state({"master": [task(1, "[c0.1]")]}))
    lost = checks["acknowledged_writes_lost"]
    assert lost.status == FAIL and lost.figures["lost"]["tasks"] == 1
    assert lost.details[0]["marker"] == "[c0.0]" and lost.details[0]["replicas"] == 1
    assert not checker.valid(checks.values())


def test_a_write_missing_on_one_node_is_not_lost_but_fails_visibility():
    h = History([op("add_task", "[c0.0]")])
    reads = {"n0": {"master": [task(1, "[c0.0]")]}, "n1": {"master": [task(1, "[c0.0]")]}, "n2": {"master": []}}
    checks = run(h, state(reads))
    assert checks["acknowledged_writes_lost"].status == PASS
    every = checks["acknowledged_writes_on_every_node"]
    assert every.status == FAIL and every.details[0]["missing_on"] == ["n2"]
    assert checks["replicas_identical"].status == FAIL  # no digests: whole reads compared


def test_unknown_and_failed_writes_may_be_absent_and_are_reported_when_present():
    h = History([op("add_task", "[c0.0]", "unknown"), op("add_task", "[c0.1]", "unknown", seq=1),
                 op("add_task", "[c0.2]", "error", seq=2)])
    checks = run(h, state({"master": [task(1, "[c0.1]"), task(2, "[c0.2]")]}))
    assert checks["acknowledged_writes_lost"].status == PASS
    present = checks["failed_but_present"]
    assert present.status == INFO
    assert present.figures == {"error_present": 1, "error_absent": 0, "unknown_present": 1, "unknown_absent": 1}


def test_tags_replayed_per_client_rename_and_delete_are_not_losses_but_a_vanished_tag_is():
    h = History([op("add_tag", "m0", args={"name": "c0t0"}, seq=0),
                 op("rename_tag", "m1", args={"oldName": "c0t0", "newName": "c0t1"}, seq=1),
                 op("add_tag", "m2", args={"name": "c0t2"}, seq=2),
                 op("delete_tag", "m3", "unknown", args={"name": "c0t2"}, seq=3),
                 op("add_tag", "m4", args={"name": "c0t4"}, seq=4)])
    checks = run(h, state({"master": [], "c0t1": []}))
    lost = checks["acknowledged_writes_lost"]
    assert lost.figures["lost"]["tags"] == 1 and lost.details[0]["tag"] == "c0t4"


def test_a_dependency_is_lost_only_where_it_can_be_attributed_and_nothing_excuses_it():
    add = op("add_dependency", "[c0.9]", args={"id": "1", "dependsOn": "2"}, targets=("[c0.0]", "[c0.1]"), t=5)
    creates = [op("add_task", "[c0.0]"), op("add_task", "[c0.1]", seq=1)]
    without = {"master": [task(1, "[c0.0]"), task(2, "[c0.1]")]}
    checks = run(History([*creates, add]), state(without))
    assert checks["acknowledged_writes_lost"].figures["lost"]["dependencies"] == 1
    # present: fine
    assert run(History([*creates, add]), state({"master": [task(1, "[c0.0]", deps=[2]), task(2, "[c0.1]")]})
               )["acknowledged_writes_lost"].status == PASS
    # removed by a later (even unacknowledged) removal: excused
    remove = op("remove_dependency", "[c1.3]", "unknown", client=1, args={"id": "1", "dependsOn": "2"},
                targets=("[c0.0]", "[c0.1]"), t=6)
    excused = run(History([*creates, add, remove]), state(without))["acknowledged_writes_lost"]
    assert excused.status == PASS and excused.figures["dependencies_excused"] == 1
    # a removal that finished before the add began cannot have removed it
    early = op("remove_dependency", "[c1.3]", client=1, args={"id": "1", "dependsOn": "2"},
               targets=("[c0.0]", "[c0.1]"), t=1)
    assert run(History([*creates, early, add]), state(without))["acknowledged_writes_lost"].status == FAIL
    # a removal by the same ids, whoever it meant, may have removed it
    by_ids = op("remove_dependency", "[c1.3]", client=1, args={"id": "1", "dependsOn": "2"},
                targets=("[c9.0]", "[c9.1]"), t=6)
    assert run(History([*creates, add, by_ids]), state(without))["acknowledged_writes_lost"].status == PASS
    # a task with the dependency's id moved later: references follow it, or leave with it
    moved_later = op("move_to_tag", "[c1.4]", "unknown", client=1, tool="move_task",
                     args={"from": "2", "fromTag": "master", "toTag": "c1keep"}, targets=("[c1.0]",), t=6)
    assert run(History([*creates, add, moved_later]), state(without))["acknowledged_writes_lost"].status == PASS
    failed_move = op("move_within", "[c1.4]", "error", client=1, tool="move_task", args={"from": "2", "to": "9"},
                     targets=("[c1.0]",), t=6)
    assert run(History([*creates, add, failed_move]), state(without))["acknowledged_writes_lost"].status == FAIL
    # the dependent was renumbered: the write cannot be attributed
    moved = {"master": [task(7, "[c0.0]"), task(2, "[c0.1]")]}
    unverified = run(History([*creates, add]), state(moved))["acknowledged_writes_lost"]
    assert unverified.status == PASS and unverified.figures["dependencies_unverifiable"] == 1
    # the dependent shares its id with another task (a duplicate a partition left): either may hold it
    twin = {"master": [task(1, "[c0.0]"), task(1, "[c9.9]", deps=[2]), task(2, "[c0.1]")]}
    assert run(History([*creates, add]), state(twin))["acknowledged_writes_lost"].status == PASS
    twin_without = {"master": [task(1, "[c0.0]"), task(1, "[c9.9]"), task(2, "[c0.1]")]}
    assert run(History([*creates, add]), state(twin_without))["acknowledged_writes_lost"].status == FAIL
    # a visible repair (a cycle broken after a partition) excuses it
    repaired = {"master": [task(1, "[c0.0]", metadata={"repairs": [{"kind": "cycle"}]}), task(2, "[c0.1]")]}
    assert run(History([*creates, add]), state(repaired))["acknowledged_writes_lost"].status == PASS


def claim(client: int, t: float, marker: str = "[c-1.1]", lease: int = 5, node: str = "n0", seq: int = 0) -> Op:
    return op("claim", f"[c{client}.{seq}]", client=client, t=t, node=node, args={"leaseSeconds": lease},
              value={"claimed": True, "item": "1", "item_marker": marker})


def test_two_agents_holding_one_task_at_once_fail_the_claims_check():
    h = History([claim(0, 1.0), claim(1, 3.0, node="n1")])
    check = run(h, state({"work": []}))["claims_exclusive"]
    assert check.status == FAIL and check.figures["double_claims_with_majority"] == 1


def test_a_claim_after_release_or_lease_expiry_is_fine():
    released = History([claim(0, 1.0), op("release", "[c0.1]", client=0, t=2.0, targets=("[c-1.1]",), seq=1),
                        claim(1, 3.0, node="n1")])
    assert run(released, state({"work": []}))["claims_exclusive"].status == PASS
    expired = History([claim(0, 1.0, lease=3), claim(1, 4.0, node="n1")])
    assert run(expired, state({"work": []}))["claims_exclusive"].status == PASS
    renewed = History([claim(0, 1.0, lease=3), claim(0, 2.5, lease=3, seq=1), claim(1, 4.0, node="n1")])
    assert run(renewed, state({"work": []}))["claims_exclusive"].status == FAIL
    shortened = History([claim(0, 1.0, lease=8), claim(0, 2.0, lease=1, seq=1), claim(1, 4.0, node="n1")])
    assert run(shortened, state({"work": []}))["claims_exclusive"].status == PASS, "a renewal sets a new length"
    other_items = History([claim(0, 1.0), claim(1, 2.0, "[c-1.2]", node="n1")])
    assert run(other_items, state({"work": []}))["claims_exclusive"].status == PASS


def test_double_claims_on_a_minority_side_are_reported_not_failed():
    cut = Fault("partition-one", 0.5, 10.0, cut=((0, 1), (0, 2)), label="n0 | n1 n2")
    h = History([claim(0, 1.0), claim(1, 3.0, node="n1")],
                [NemesisEvent(0, "partition-one", "start", 0.5), NemesisEvent(0, "partition-one", "heal", 10.0)])
    check = run(h, state({"work": []}), [cut])["claims_exclusive"]
    assert check.status == PASS
    assert check.figures["double_claims_involving_minority"] == 1
    assert check.figures["claims_granted_without_majority"] == 1


def test_invariants_catch_duplicate_ids_and_cycles():
    assert tag_problems("t", [task(1, "a", deps=[2]), task(2, "b", deps=[3]), task(3, "c")]) == []
    assert tag_problems("t", [task(1, "a", deps=[2]), task(2, "b", deps=[1])]) == ["t: dependency cycle 1 -> 2 -> 1"]
    assert tag_problems("t", [task(1, "a"), task(1, "b")]) == ["t: duplicate task id 1"]
    subs = [{"id": 1, "dependencies": [2]}, {"id": 2, "dependencies": ["1.1"]}, {"id": 2, "dependencies": []}]
    problems = tag_problems("t", [task(1, "a", subtasks=subs)])
    assert "t: duplicate subtask id 1.2" in problems and any("cycle" in p for p in problems)
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b", "zz"], "b": []}) is None
    checks = run(History(), state({"master": [task(1, "a", deps=[1])]}))
    assert checks["invariants"].status == FAIL


def test_convergence_membership_and_digests():
    digests = {"n0": {"p1": "r1", "p2": "r2"}, "n1": {"p1": "r1", "p2": "r2"}, "n2": {"p1": "r1", "p2": "r2"}}
    good = run(History(), state({}, digests=digests))
    assert good["replicas_identical"].status == PASS and good["convergence"].status == PASS
    split = {**digests, "n2": {"p1": "r1", "p2": "stale"}}
    assert run(History(), state({}, digests=split))["replicas_identical"].status == FAIL
    short = {"n0": {"p1": "r1"}, "n1": {}, "n2": {}}
    assert run(History(), state({}, digests=short, replicas=3))["replicas_identical"].status == FAIL
    assert run(History(), state({}, converged=None))["convergence"].status == FAIL
    views = {"n0": {"n0": "alive", "n1": "alive", "n2": "dead"}, "n1": None,
             "n2": {"n0": "alive", "n1": "alive", "n2": "alive"}}
    member = run(History(), state({}, views=views))["membership_agreed"]
    assert member.status == FAIL and member.figures["disagreeing"] == ["n0", "n1"]
    silent = run(History([op("add_task", "[c0.0]")]), state({"n0": None, "n1": {"master": [task(1, "[c0.0]")]},
                                                             "n2": {"master": [task(1, "[c0.0]")]}}))
    assert silent["final_reads"].status == FAIL and silent["acknowledged_writes_lost"].status == PASS


def test_a_node_that_exited_on_its_own_fails_the_run():
    crashed = run(History(), state({}, crashed={"n1": -11}, log_errors={"n1": 3}))["nodes_stayed_up"]
    assert crashed.status == FAIL and crashed.figures["crashed"] == {"n1": -11}
    assert "3 error lines" in crashed.summary
    assert run(History(), state({}, log_errors={"n1": 3}))["nodes_stayed_up"].status == PASS


def test_faults_that_could_not_be_applied_or_healed_fail_the_run():
    faults = [Fault("pause", 1, 2, (0,)), Fault("kill", 3, 4, (1,))]
    events = [NemesisEvent(0, "pause", "start", 1), NemesisEvent(0, "pause", "heal", 2),
              NemesisEvent(1, "kill", "start", 3), NemesisEvent(1, "kill", "heal", 4, ok=False, error="boom")]
    check = run(History([], events), state({}), faults)["nemesis_applied"]
    assert check.status == FAIL and check.details[0]["error"] == "boom"
    events[-1] = NemesisEvent(1, "kill", "heal", 4)
    assert run(History([], events), state({}), faults)["nemesis_applied"].status == PASS


def test_supervised_operations_the_checker_cannot_verify_are_not_silently_passed():
    h = History([op("expand_all", "[c0.0]", tool="expand_all")])
    assert run(h, state({}))["supervised_operations_exactly_once"].status == FAIL


def test_status_inversions_are_information():
    writes = [op("set_status", "[c0.5]", args={"id": "1", "status": "done"}, targets=("[c0.0]",), t=1),
              op("set_status", "[c1.5]", client=1, args={"id": "1", "status": "review"}, targets=("[c0.0]",), t=2)]
    check = run(History(writes), state({"master": [task(1, "[c0.0]", status="done")]}))["status_last_writer"]
    assert check.status == INFO and check.figures == {"checked": 1, "inversions": 1}
    nested = op("add_subtask", "[c2.1]", client=2, args={"id": "1"}, targets=("[c0.0]",), t=3)
    check = run(History([*writes, nested]), state({"master": [task(1, "[c0.0]", status="done")]}))["status_last_writer"]
    assert check.figures == {"checked": 0, "inversions": 0}, "a subtask added later may move the parent's status"


def test_final_state_round_trips_through_json(tmp_path):
    final = state({"master": [task(1, "[c0.0]")]}, digests={"n0": {"p": "r"}})
    checker.save_final(final, tmp_path / "final.json")
    assert checker.load_final(tmp_path / "final.json") == final


def test_history_round_trips_through_jsonl(tmp_path):
    w = HistoryWriter(tmp_path / "h.jsonl")
    w.op(claim(0, 1.0))
    w.event(NemesisEvent(0, "pause", "start", 1.5))
    w.close()
    loaded = load(tmp_path / "h.jsonl")
    assert loaded.ops == [claim(0, 1.0)] and loaded.events == [NemesisEvent(0, "pause", "start", 1.5)]
    assert loaded.windows() == [(0, "pause", 1.5, None)]


# ---- supervised operations (parse_prd async) ------------------------------------------------------
def prd_op(marker: str = "[c0.5]", outcome: str = "ok", op_id: str = "0123456789abcdef", tag: str = "c0p5") -> Op:
    return op("parse_prd", marker, outcome, tool="parse_prd", args={"input": "x.md", "tag": tag, "async": True},
              value={"operationId": op_id} if outcome == "ok" else {})


def prd_tasks(marker: str = "[c0.5]", parts=("one", "two", "three")) -> list[dict]:
    return [{**task(i, marker), "title": f"Build {marker} part {p}"} for i, p in enumerate(parts, 1)]


def operations(status: str, op_id: str = "0123456789abcdef") -> dict:
    return {op_id: {"operationId": op_id, "status": status}}


def supervised(h: History, tags: dict, polled: dict | None) -> checker.Check:
    return run(h, state(tags, operations=polled))["supervised_operations_exactly_once"]


def test_a_completed_parse_with_each_requirement_once_on_every_node_passes():
    c = supervised(History([prd_op()]), {"master": [], "c0p5": prd_tasks()}, operations("completed"))
    assert c.status == PASS
    assert c.figures["acknowledged"] == c.figures["completed"] == 1 and c.figures["duplicated"] == 0


def test_a_requirement_written_twice_fails_even_if_the_operation_is_still_running():
    doubled = prd_tasks() + [{**task(4, "[c0.5]"), "title": "Build [c0.5] part two"}]
    reads = {"n0": {"c0p5": prd_tasks()}, "n1": {"c0p5": doubled}, "n2": {"c0p5": prd_tasks()}}
    for polled in (operations("completed"), operations("in_progress")):
        c = supervised(History([prd_op()]), reads, polled)
        assert c.status == FAIL and c.figures["duplicated"] == 1
        assert c.details[0]["duplicated"] == {"n1": ["Build [c0.5] part two"]}


def test_a_missing_requirement_of_a_completed_operation_fails():
    reads = {"n0": {"c0p5": prd_tasks()}, "n1": {"c0p5": prd_tasks(parts=("one", "three"))},
             "n2": {"c0p5": prd_tasks()}}
    c = supervised(History([prd_op()]), reads, operations("completed"))
    assert c.status == FAIL and c.figures["missing"] == 1
    assert c.details[0]["missing"] == {"n1": ["Build [c0.5] part two"]}


def test_missing_tasks_of_failed_or_running_operations_are_reported_not_failed():
    assert supervised(History([prd_op()]), {"master": []}, operations("failed")).status == PASS
    running = supervised(History([prd_op()]), {"master": []}, operations("queued"))
    assert running.status == PASS and running.figures["running"] == 1 and running.details[0]["still_running"]
    never_polled = supervised(History([prd_op()]), {"master": []}, None)
    assert never_polled.figures["running"] == 1


def test_an_unacknowledged_parse_may_be_absent_but_not_doubled():
    assert supervised(History([prd_op(outcome="unknown")]), {"master": []}, {}).status == PASS
    doubled = {"c0p5": prd_tasks() + prd_tasks()}
    c = supervised(History([prd_op(outcome="unknown")]), doubled, {})
    assert c.status == FAIL and c.figures["unacknowledged"] == 1
    assert supervised(History([prd_op(outcome="error")]), {"master": []}, {}).status == NA


def test_no_supervised_operations_is_not_applicable():
    c = supervised(History([op("add_task", "[c0.0]")]), {"master": [task(1, "[c0.0]")]}, {})
    assert c.status == NA
