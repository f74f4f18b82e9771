"""The workload: plans are pure functions of (seed, client); a client's calls follow from its plan and
the answers it got; every call it can make passes the tool's schema with all its arguments kept."""

from __future__ import annotations

import itertools

import pytest

from chaos.history import marker_in
from chaos.workload import (
    MASTER,
    PRD_PARTS,
    WEIGHTS,
    WORK_TAG,
    Call,
    ClientState,
    Step,
    plan,
    prd_titles,
    setup_calls,
    summarize,
    write_prd,
)
from taskmaster.llm.providers.offline_prd import plan_tasks
from taskmaster.tools import registry


def steps(seed: int, client: int, n: int = 300) -> list[Step]:
    return list(itertools.islice(plan(seed, client), n))


def test_the_same_seed_gives_each_client_the_same_steps():
    assert steps(7, 0) == steps(7, 0)
    assert steps(7, 0) != steps(8, 0)
    assert steps(7, 0) != steps(7, 1)
    assert {s.kind for s in steps(7, 0, 2000)} == set(WEIGHTS)


class FakeCluster:
    """Answers a client's calls the way a single healthy node would, just enough for ids to flow."""

    def __init__(self):
        self.next_id = 1
        self.subs: dict[int, int] = {}

    def answer(self, call: Call) -> dict:
        if call.tool == "add_task":
            self.next_id += 1
            return {"taskId": self.next_id - 1}
        if call.kind == "add_subtask":
            parent = int(call.args["id"])
            self.subs[parent] = self.subs.get(parent, 0) + 1
            return {"subtask": {"id": self.subs[parent]}}
        if call.kind == "claim":
            return {"claimed": True, "nextTask": {"id": 1, "title": "work [c-1.1]"}}
        return {}


def drive(seed: int, client: int, n: int) -> list[Call]:
    state, cluster, calls = ClientState(client), FakeCluster(), []
    for step in steps(seed, client, n):
        call = state.next_call(step)
        calls.append(call)
        state.learn(call, "ok", cluster.answer(call))
    return calls


def test_the_same_seed_and_answers_give_the_same_calls():
    a = drive(11, 2, 400)
    assert a == drive(11, 2, 400)
    assert a != drive(12, 2, 400)
    markers = [c.marker for c in a]
    assert len(set(markers)) == len(markers) == 400
    assert all(m.startswith("[c2.") for m in markers)
    kinds = {c.kind for c in a}
    assert {"add_task", "add_subtask", "set_status", "add_dependency", "remove_dependency", "move_within",
            "move_to_tag", "add_tag", "copy_tag", "rename_tag", "delete_tag", "claim", "release", "read"} <= kinds


def test_creating_writes_carry_their_marker_in_the_data():
    for call in drive(5, 1, 500):
        if call.tool == "add_task" or call.kind == "add_subtask":
            assert marker_in(call.args["title"]) == call.marker
        if call.kind in ("add_tag", "copy_tag", "rename_tag"):
            name = call.args.get("name") or call.args.get("targetName") or call.args.get("newName")
            assert name == f"c1t{call.marker[4:-1]}"


def test_clients_only_move_their_own_tasks_and_only_touch_their_own_tags():
    for call in drive(9, 3, 800):
        if call.kind in ("move_within", "move_to_tag"):
            assert call.targets[0].startswith("[c3.")
        if call.kind == "move_to_tag":
            assert call.args["toTag"] == "c3keep" and call.args["fromTag"] == MASTER
        for key in ("name", "sourceName", "targetName", "oldName", "newName"):
            if key in call.args and call.tool != "add_task":
                assert call.args[key].startswith("c3")
        if call.kind in ("rename_tag", "delete_tag"):
            assert (call.args.get("oldName") or call.args["name"]) != "c3keep", "the keep tag is never renamed or deleted"
        if call.kind in ("claim", "release", "add_work"):
            assert call.args["tag"] == WORK_TAG


@pytest.fixture(scope="module")
def tools():
    return registry.load_all()


def test_every_call_passes_the_tool_schema_and_keeps_all_its_arguments(tools):
    calls = drive(3, 0, 600) + setup_calls(4)
    for call in calls:
        _, args = registry.check_call(call.tool, {**call.args, "projectRoot": "/tmp/chaos"}, None)
        assert set(call.args) <= set(args), f"{call.tool} dropped {set(call.args) - set(args)}"


def test_an_unknown_move_forgets_where_the_task_is_and_a_read_relearns_it():
    state = ClientState(0)
    state.learn(Call("add_task", "add_task", {}, "[c0.0]"), "ok", {"taskId": 4})
    state.learn(Call("add_subtask", "add_subtask", {"id": "4"}, "[c0.1]", ("[c0.0]",)), "ok", {"subtask": {"id": 1}})
    assert state.subtasks == {"[c0.1]": "4.1"}
    move = Call("move_within", "move_task", {"from": "4", "to": "9"}, "[c0.2]", ("[c0.0]",))
    state.learn(move, "ok", {})
    assert state.tasks == {"[c0.0]": 9} and state.subtasks == {"[c0.1]": "9.1"}
    state.learn(Call("move_to_tag", "move_task", {}, "[c0.3]", ("[c0.0]",)), "unknown", {})
    assert state.tasks == {} and state.subtasks == {}
    read = {"tasks": [{"id": 12, "title": "task [c0.0]", "subtasks": [{"id": 2, "title": "sub [c5.1]"}]},
                      {"id": 13, "title": "no marker"}]}
    state.learn(Call("read", "get_tasks", {}, "[c0.4]"), "ok", read)
    assert state.tasks == {"[c0.0]": 12} and state.subtasks == {"[c5.1]": "12.2"}


def test_a_holder_releases_what_it_claimed():
    state = ClientState(1)
    state.learn(Call("claim", "next_task", {}, "[c1.0]"), "ok", {"claimed": True, "nextTask": {"id": 3, "title": "work [c-1.2]"}})
    assert state.held == ("3", "[c-1.2]")
    release = state.next_call(Step("claim", (0.1, 0.5, 0.5)))
    assert (release.kind, release.args, release.targets) == \
        ("release", {"tag": WORK_TAG, "id": "3", "status": "done"}, ("[c-1.2]",))
    state.learn(release, "ok", {})
    assert state.next_call(Step("claim", (0.1, 0.5, 0.5))).kind == "claim"


def test_summaries_keep_ids_claims_and_replicas():
    call = Call("claim", "next_task", {}, "[c1.0]")
    env = {"data": {"claimed": True, "nextTask": {"id": 3, "title": "work [c-1.2]"}, "lease": {"agent": "a"}},
           "replicas": 2}
    assert summarize(call, env) == {"replicas": 2, "claimed": True, "item": "3", "item_marker": "[c-1.2]",
                                    "lease": {"agent": "a"}}
    assert summarize(Call("add_task", "add_task", {}, "m"), {"data": {"taskId": 5}}) == {"taskId": 5}


def test_a_parse_prd_writes_a_prd_whose_requirements_carry_the_marker_into_a_fresh_tag(tmp_path):
    parses = [c for c in drive(4, 2, 600) if c.kind == "parse_prd"]
    assert parses, "the plan starts supervised operations"
    tags = [c.args["tag"] for c in parses]
    assert len(set(tags)) == len(tags) and all(t.startswith("c2p") for t in tags)
    call = parses[0]
    assert call.args["async"] is True and call.args["numTasks"] == str(len(PRD_PARTS))
    write_prd(str(tmp_path), call.marker)
    prd = (tmp_path / call.args["input"]).read_text()
    planned = plan_tasks(prd, len(PRD_PARTS), 1)  # what the offline planner makes of it
    assert [t["title"] for t in planned] == prd_titles(call.marker)
    assert summarize(call, {"data": {"operationId": "ab" * 8, "status": "queued"}}) == {"operationId": "ab" * 8}
