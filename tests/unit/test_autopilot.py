"""The autopilot: the pure TDD state machine (tasks/autopilot.py), its git steps (tasks/gitwork.py) in
real repositories, and the eight tools through the registry on a real RocksDB service, where bad
input gets a clear error and changes nothing (tasks, workflow state, nor the git checkout)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmaster.tasks import autopilot, gitwork
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.ids import ID_FORMAT_ERROR
from taskmaster.tasks.state import ProjectView, copy_json
from taskmaster.tools import registry
from taskmaster.tools.registry import ParamError, ToolContext
from tests.conftest import ROOT
from tests.gitrepo import git, make_repo

registry.load_all()


def sub(i: int, status: str = "pending", title: str | None = None) -> dict:
    return {"id": i, "title": title or f"Part {i}", "description": "", "status": status, "dependencies": []}


TASKS = [
    {"id": 1, "title": "Add the login page!", "description": "", "status": "pending", "dependencies": [],
     "subtasks": [sub(1, "done"), sub(2), sub(3, "done"), sub(4)]},
    {"id": 2, "title": "Bare", "description": "", "status": "pending", "dependencies": [], "subtasks": []},
    {"id": 3, "title": "Finished", "description": "", "status": "pending", "dependencies": [],
     "subtasks": [sub(1, "done"), sub(2, "done")]},
]


def view(state: dict | None = None) -> ProjectView:
    return ProjectView.from_plain(ROOT, {"master": {"tasks": TASKS}}, state)


def started(max_attempts: int = 3) -> dict:
    return autopilot.branch_ready(autopilot.plan_start(view(), "1", max_attempts, False), "n0", True)


def results(total: int, failed: int, skipped: int = 0) -> dict:
    return {"total": total, "passed": total - failed - skipped, "failed": failed, "skipped": skipped}


def complete(state: dict, total: int, failed: int) -> dict:
    new, rejection = autopilot.complete_phase(state, results(total, failed))
    assert rejection is None, rejection
    return new


# ---- the pure state machine --------------------------------------------------------------------------
def test_start_plans_the_branch_and_begins_at_the_first_open_subtask():
    planned = autopilot.plan_start(view(), " 1 ", 3.0, False)
    assert planned["phase"] == autopilot.BRANCH_SETUP and planned["tddPhase"] is None
    assert planned["branchName"] == "tm/master/task-1-add-the-login-page"
    assert [h["event"] for h in planned["history"]] == ["preflight_complete"]
    state = autopilot.branch_ready(planned, "n0", True)
    assert (state["phase"], state["tddPhase"], state["gitNode"], state["maxAttempts"]) == ("SUBTASK_LOOP", "RED",
                                                                                            "n0", 3)
    assert [(s["id"], s["status"]) for s in state["subtasks"]] == [
        ("1.1", "completed"), ("1.2", "in-progress"), ("1.3", "completed"), ("1.4", "pending")]
    status = autopilot.status(state)
    assert status["currentSubtask"] == {"id": "1.2", "title": "Part 2", "status": "in-progress", "attempts": 0,
                                        "maxAttempts": 3}
    assert status["progress"] == {"completed": 2, "total": 4, "current": 2, "percentage": 50}
    assert planned["phase"] == autopilot.BRANCH_SETUP, "a transition never changes the state it is given"


def test_branch_names():
    assert autopilot.branch_name("master", 7, "  Fix: the (big) bug!! ") == "tm/master/task-7-fix-the-big-bug"
    assert autopilot.branch_name("feature-x", 7, "???") == "tm/feature-x/task-7"
    long = autopilot.branch_name("master", 1, "word " * 30)
    assert len(long.split("task-1-")[1]) <= 50 and not long.endswith("-")
    for name in (long, autopilot.branch_name("a_b", 2, "Ünïcode ok")):
        assert gitwork.check_branch(name) == name


@pytest.mark.parametrize("task_id, attempts, state, needle", [
    ("1.2", 3, None, 'Task ID "1.2" is a subtask'),
    ("99", 3, None, "Task 99 not found"),
    ("2", 3, None, 'Task 2 has no subtasks. Please use expand_task (with id="2")'),
    ("3", 3, None, "All subtasks for task 3 are already completed"),
    ("1,2", 3, None, "is not one task id"),
    ("1", 0, None, "maxAttempts must be a whole number from 1 to 100 (got 0)"),
    ("1", 101, None, "maxAttempts must be a whole number"),
    ("1", 2.5, None, "maxAttempts must be a whole number"),
    ("1", True, None, "maxAttempts must be a whole number"),
    ("1", 3, {"autopilot": {"taskId": 3}}, "Workflow already in progress. Use force=true"),
])
def test_start_refuses(task_id, attempts, state, needle):
    with pytest.raises(TaskError) as err:
        autopilot.plan_start(view(state), task_id, attempts, False)
    assert needle in err.value.message


def test_force_replaces_an_existing_workflow():
    planned = autopilot.plan_start(view({"autopilot": started()}), "1", 5, True)
    assert planned["maxAttempts"] == 5 and planned["revision"] == 1


def test_one_subtask_through_red_green_commit():
    state = complete(started(), 5, 2)
    assert (state["tddPhase"], state["lastTestResults"]) == ("GREEN", {**results(5, 2), "phase": "RED"})
    assert state["subtasks"][1]["attempts"] == 0, "RED is not an attempt"
    state = complete(state, 5, 0)
    assert state["tddPhase"] == "COMMIT" and state["subtasks"][1]["attempts"] == 1
    assert autopilot.commit_message(state) == (
        "feat(task-1): Part 2\n\nTask: 1\nSubtask: 1.2\nPhase: COMMIT\nTests: 5 passing, 0 failing\n")
    after = autopilot.after_commit(state, "abc123", "n1")
    assert after["subtasks"][1] == {"id": "1.2", "title": "Part 2", "status": "completed", "attempts": 1,
                                    "commitSha": "abc123"}
    assert (after["tddPhase"], after["gitNode"], autopilot.status(after)["currentSubtask"]["id"]) == ("RED", "n1", "1.4")
    assert autopilot.progress(after)["completed"] == 3, "1.3 was done already: skipped"
    assert [h["event"] for h in after["history"]][-4:] == ["red_complete", "green_complete", "committed",
                                                           "subtask_started"]


def test_last_subtask_leads_to_finalize_then_complete():
    state = autopilot.after_commit(complete(complete(started(), 1, 1), 1, 0), "a", "n0")
    state = autopilot.after_commit(complete(complete(state, 2, 1), 2, 0), "b", "n0")
    assert (state["phase"], state["tddPhase"], autopilot.status(state)["currentSubtask"]) == ("FINALIZE", None, None)
    assert autopilot.progress(state) == {"completed": 4, "total": 4, "current": 4, "percentage": 100}
    assert autopilot.next_action(state)["action"] == "finalize_workflow"
    done = autopilot.finalized(state, "n2")
    assert (done["phase"], done["gitNode"]) == ("COMPLETE", "n2")
    assert autopilot.next_action(done)["action"] == "workflow_complete"


def test_red_without_failures_completes_the_subtask_at_once():
    state = complete(started(), 4, 0)
    assert state["subtasks"][1]["status"] == "completed" and "commitSha" not in state["subtasks"][1]
    assert (state["tddPhase"], autopilot.status(state)["currentSubtask"]["id"]) == ("RED", "1.4")
    assert state["history"][-2]["event"] == "subtask_already_implemented"
    assert complete(state, 4, 0)["phase"] == "FINALIZE"


def test_green_failures_use_the_attempts_then_the_subtask_fails():
    state = complete(started(max_attempts=2), 3, 3)
    state, why = autopilot.complete_phase(state, results(3, 1))
    assert "GREEN phase must have zero failures (1 of 3 failed). Attempt 1 of 2 for subtask 1.2" in why
    assert (state["tddPhase"], state["subtasks"][1]["attempts"], state["subtasks"][1]["status"]) == (
        "GREEN", 1, "in-progress")
    assert autopilot.next_action(state)["action"] == "implement_code"
    state, why = autopilot.complete_phase(state, results(3, 2, skipped=1))
    assert "Attempt 2 of 2" in why and "marked failed" in why
    assert (state["subtasks"][1]["attempts"], state["subtasks"][1]["status"]) == (2, "failed")
    assert autopilot.next_action(state)["action"] == "subtask_failed"
    frozen = copy_json(state)
    with pytest.raises(TaskError, match="Subtask 1.2 failed after 2 attempts"):
        autopilot.complete_phase(state, results(3, 0))
    assert state == frozen


BAD_RESULTS = [
    ({"total": 3, "passed": 3}, "testResults.failed is required"),
    ({"total": 3, "passed": -1, "failed": 4}, "testResults.passed must be a whole number from 0"),
    ({"total": 3, "passed": 2.5, "failed": 0.5}, "testResults.passed must be a whole number"),
    ({"total": "3", "passed": 3, "failed": 0}, "testResults.total must be a whole number"),
    ({"total": 3, "passed": True, "failed": 2}, "testResults.passed must be a whole number"),
    ({"total": 10, "passed": 3, "failed": 3, "skipped": 3}, "testResults.total (10) must equal passed + failed + "
                                                            "skipped (9)"),
    ({"total": 0, "passed": 0, "failed": 0}, "testResults.total is 0"),
    ({"total": 2**60, "passed": 2**60, "failed": 0}, "testResults.total must be a whole number"),
    ([3, 3, 0], "testResults must be an object"),
]


@pytest.mark.parametrize("bad, needle", BAD_RESULTS)
def test_bad_test_results_are_refused_and_change_nothing(bad, needle):
    for state in (started(), complete(started(), 2, 1)):  # in RED and in GREEN
        frozen = copy_json(state)
        with pytest.raises(TaskError) as err:
            autopilot.complete_phase(state, bad)
        assert needle in err.value.message
        assert state == frozen


def test_each_step_only_in_its_phase():
    committing = complete(complete(started(), 2, 1), 2, 0)
    with pytest.raises(TaskError, match="Cannot complete COMMIT phase with this tool. Use autopilot_commit"):
        autopilot.complete_phase(committing, results(2, 0))
    with pytest.raises(TaskError, match="Cannot commit: currently in RED phase. Complete the RED phase first"):
        autopilot.commit_message(started())
    with pytest.raises(TaskError, match="Cannot commit: currently in GREEN phase"):
        autopilot.after_commit(complete(started(), 2, 1), "sha", "n0")
    with pytest.raises(TaskError, match="Cannot finalize: workflow is in SUBTASK_LOOP phase"):
        autopilot.finalized(committing, "n0")
    with pytest.raises(TaskError, match="Cannot set up the branch: workflow is in SUBTASK_LOOP"):
        autopilot.branch_ready(started(), "n0", True)
    finishing = {**committing, "phase": "FINALIZE", "tddPhase": None}
    with pytest.raises(TaskError, match=r"not in a TDD phase \(current phase: FINALIZE\)"):
        autopilot.complete_phase(finishing, results(2, 0))
    with pytest.raises(TaskError, match="Cannot commit: workflow is in FINALIZE phase"):
        autopilot.check_commit(finishing)


def test_next_action_says_what_to_do():
    red = started()
    green = complete(red, 2, 1)
    commit = complete(green, 2, 0)
    assert [autopilot.next_action(s)["action"] for s in (red, green, commit)] == [
        "generate_test", "implement_code", "commit_changes"]
    action = autopilot.next_action(green)
    assert action["subtask"] == {"id": "1.2", "title": "Part 2"} and "attempt 1 of 3" in action["nextSteps"]
    assert "autopilot_commit" in autopilot.next_action(commit)["nextSteps"]


STEPS = st.sampled_from(["fail", "pass", "commit", "bad", "finalize"])
MOVES = {(("SUBTASK_LOOP", "RED"), ("SUBTASK_LOOP", "GREEN")), (("SUBTASK_LOOP", "RED"), ("SUBTASK_LOOP", "RED")),
         (("SUBTASK_LOOP", "RED"), ("FINALIZE", None)), (("SUBTASK_LOOP", "GREEN"), ("SUBTASK_LOOP", "COMMIT")),
         (("SUBTASK_LOOP", "GREEN"), ("SUBTASK_LOOP", "GREEN")), (("SUBTASK_LOOP", "COMMIT"), ("SUBTASK_LOOP", "RED")),
         (("SUBTASK_LOOP", "COMMIT"), ("FINALIZE", None)), (("FINALIZE", None), ("COMPLETE", None))}


@settings(max_examples=300)
@given(attempts=st.integers(1, 4), steps=st.lists(STEPS, max_size=40))
def test_random_runs_never_skip_a_phase_nor_exceed_the_attempts(attempts, steps):
    state = started(attempts)
    for step in steps:
        before = copy_json(state)
        try:
            if step == "commit":
                state = autopilot.after_commit(state, "sha", "n0")
            elif step == "finalize":
                state = autopilot.finalized(state, "n0")
            elif step == "bad":
                autopilot.complete_phase(state, {"total": 1, "passed": 1, "failed": 1})
                raise AssertionError("results that do not add up are accepted")
            else:
                state, _ = autopilot.complete_phase(state, results(3, 3 if step == "fail" else 0))
        except TaskError:
            assert state == before, "a refused step changes nothing"
            continue
        move = ((before["phase"], before["tddPhase"]), (state["phase"], state["tddPhase"]))
        assert move in MOVES, (step, move)
        if move[0] == move[1] == ("SUBTASK_LOOP", "RED"):
            assert state["currentSubtaskIndex"] > before["currentSubtaskIndex"], "RED to RED: the next subtask"
        assert state["revision"] > before["revision"]
        assert autopilot.progress(state)["completed"] >= autopilot.progress(before)["completed"]
        assert state["currentSubtaskIndex"] >= before["currentSubtaskIndex"]
        for s in state["subtasks"]:
            assert s["attempts"] <= attempts
            assert s["status"] != "failed" or s["attempts"] == attempts
        if state["phase"] in ("FINALIZE", "COMPLETE"):
            assert all(s["status"] == "completed" for s in state["subtasks"])


# ---- git steps in real repositories ------------------------------------------------------------------
async def test_tree_status_counts_each_kind_of_change(tmp_path):
    root = make_repo(tmp_path / "repo")
    assert await gitwork.sees(root) and not await gitwork.sees(str(tmp_path))
    assert not await gitwork.sees(str(tmp_path / "missing"))
    assert (await gitwork.tree_status(root))["clean"] is True
    (tmp_path / "repo" / "a.txt").write_text("a")
    (tmp_path / "repo" / "b.txt").write_text("b")
    git(root, "add", "a.txt", "b.txt")
    git(root, "commit", "-qm", "two")
    (tmp_path / "repo" / "a.txt").write_text("changed")  # modified
    os.remove(tmp_path / "repo" / "b.txt")  # deleted
    git(root, "mv", "README", "README.md")  # staged (a rename: two paths, one entry)
    (tmp_path / "repo" / "new dir").mkdir()
    (tmp_path / "repo" / "new dir" / "c.txt").write_text("c")  # untracked
    assert await gitwork.tree_status(root) == {"clean": False, "staged": 1, "modified": 1, "deleted": 1,
                                               "untracked": 1}


def test_files_to_stage_stay_inside_the_project():
    assert gitwork.check_files(None) is None and gitwork.check_files([]) is None
    assert gitwork.check_files(["src/a.py", "./b", "c/../d"]) == ["src/a.py", "./b", "c/../d"]
    for bad in ("../x", "/etc/passwd", "a/../../x", "", "  ", "C:/x", ".."):
        with pytest.raises(TaskError, match="is not a path inside the project root"):
            gitwork.check_files(["ok", bad])


async def test_commit_only_on_the_workflows_branch(tmp_path):
    root = make_repo(tmp_path / "repo")
    assert (await gitwork.prepare_branch(root, "tm/master/task-1")) == {
        "branchName": "tm/master/task-1", "created": True, "previousBranch": "main"}
    with pytest.raises(TaskError, match="No staged changes to commit"):
        await gitwork.commit(root, "tm/master/task-1", None, "feat: x\n")
    git(root, "checkout", "-q", "main")
    (tmp_path / "repo" / "x.py").write_text("x")
    with pytest.raises(TaskError, match="is on branch main, not on the workflow's branch tm/master/task-1"):
        await gitwork.commit(root, "tm/master/task-1", None, "feat: x\n")
    assert git(root, "status", "--porcelain") == "?? x.py\n", "nothing was staged"
    with pytest.raises(TaskError, match="Working tree has uncommitted changes .*Untracked: 1"):
        await gitwork.prepare_branch(root, "tm/master/task-1")
    os.remove(tmp_path / "repo" / "x.py")
    assert (await gitwork.prepare_branch(root, "tm/master/task-1"))["created"] is False, "checked out again"


# ---- the tools, on a real service and a real repository --------------------------------------------
@pytest.fixture
async def project(service, tmp_path):
    root = make_repo(tmp_path / "project")

    def seed(tx):
        for task in TASKS:
            tx.add("master", copy_json(task))

    await service.write(root, seed)
    return service, root


async def call(service, root, name, **args) -> dict:
    return await registry.call_tool(name, {"projectRoot": root, **args}, None,
                                    lambda r: ToolContext(service=service, root=r, node="n0"))


async def data(service, root, name, **args) -> dict:
    result = await call(service, root, name, **args)
    assert not result.get("isError"), result["content"][0]["text"]
    import orjson

    return orjson.loads(result["content"][0]["text"])["data"]


def snapshot(service, root) -> tuple:
    v = service.view(root)
    checkout = () if not os.path.isdir(os.path.join(root, ".git")) else (
        git(root, "branch", "--show-current"), git(root, "rev-parse", "HEAD"), git(root, "status", "--porcelain"),
        git(root, "branch", "--list"))
    return copy_json(v.tasks("master")), copy_json(v.state), checkout


async def assert_param_error(service, root, name, args, needle):
    before = snapshot(service, root)
    with pytest.raises(ParamError) as err:
        await call(service, root, name, **args)
    assert needle in str(err.value)
    assert snapshot(service, root) == before


async def assert_tool_error(service, root, name, args, needle):
    before = snapshot(service, root)
    result = await call(service, root, name, **args)
    text = result["content"][0]["text"]
    assert result.get("isError") is True and text.startswith("Error: ") and needle in text, text
    assert snapshot(service, root) == before


async def test_bad_input_without_a_workflow_changes_nothing(project):
    service, root = project
    for bad in ("1..2", "-3", "abc", "1.2.3", "HAM-1", ""):
        await assert_param_error(service, root, "autopilot_start", {"taskId": bad}, f"taskId: {ID_FORMAT_ERROR}")
    await assert_param_error(service, root, "autopilot_start", {"taskId": 1},
                             "taskId: Invalid input: expected string, received number")
    await assert_param_error(service, root, "autopilot_start", {}, "taskId: Invalid input: expected string")
    await assert_param_error(service, root, "autopilot_start", {"taskId": "1", "maxAttempts": "3"},
                             "maxAttempts: Invalid input: expected number, received string")
    await assert_param_error(service, root, "autopilot_start", {"taskId": "1", "force": "yes"},
                             "force: Invalid input: expected boolean")
    await assert_param_error(service, root, "autopilot_complete_phase", {"testResults": {"total": 1, "passed": 1}},
                             "testResults.failed: Invalid input: expected number, received undefined")
    await assert_param_error(service, root, "autopilot_complete_phase", {}, "testResults: Invalid input")
    await assert_param_error(service, root, "autopilot_commit", {"files": "a.py"}, "files: Invalid input")
    await assert_param_error(service, root, "autopilot_status", {"projectRoot": None}, "projectRoot")
    for task_id, needle in (("1.2", "is a subtask"), ("99", "Task 99 not found"), ("2", "has no subtasks"),
                            ("3", "already completed"), ("1,3", "is not one task id")):
        await assert_tool_error(service, root, "autopilot_start", {"taskId": task_id}, needle)
    await assert_tool_error(service, root, "autopilot_start", {"taskId": "1", "maxAttempts": -1}, "maxAttempts")
    for name, args in (("autopilot_status", {}), ("autopilot_next", {}), ("autopilot_finalize", {}),
                       ("autopilot_commit", {}), ("autopilot_complete_phase", {"testResults": results(1, 1)})):
        await assert_tool_error(service, root, name, args, autopilot.NO_WORKFLOW)
    await assert_tool_error(service, root, "autopilot_resume", {}, "No workflow state found")
    assert await data(service, root, "autopilot_abort") == {"message": "No active workflow to abort",
                                                            "hadWorkflow": False}


async def test_start_needs_a_clean_git_checkout(project, tmp_path):
    service, root = project
    (tmp_path / "project" / "stray.txt").write_text("x")
    await assert_tool_error(service, root, "autopilot_start", {"taskId": "1"}, "Working tree has uncommitted changes")
    os.remove(tmp_path / "project" / "stray.txt")
    plain = str(tmp_path / "plain")
    os.makedirs(plain)
    await service.write(plain, lambda tx: tx.add("master", copy_json(TASKS[0])))
    await assert_tool_error(service, plain, "autopilot_start", {"taskId": "1"},
                            f"No node in the cluster can see projectRoot {plain} as a git repository (asked n0)")


async def test_the_tasks_follow_the_workflow(project):
    service, root = project
    started_ = await data(service, root, "autopilot_start", taskId="1", maxAttempts=2)
    assert (started_["branchName"], started_["branchCreated"], started_["ranOn"]) == (
        "tm/master/task-1-add-the-login-page", True, "n0")
    assert git(root, "branch", "--show-current").strip() == "tm/master/task-1-add-the-login-page"
    task = service.view(root).task("master", 1)
    assert [task["status"]] + [s["status"] for s in task["subtasks"]] == [
        "in-progress", "done", "in-progress", "done", "pending"]

    # With a workflow in RED: every bad call is refused and changes nothing.
    for bad, needle in (BAD_RESULTS[i] for i in (1, 2, 5, 6, 7)):  # the rest the schema refuses
        await assert_tool_error(service, root, "autopilot_complete_phase", {"testResults": bad}, needle)
    await assert_tool_error(service, root, "autopilot_commit", {}, "Cannot commit: currently in RED phase")
    await assert_tool_error(service, root, "autopilot_finalize", {}, "Cannot finalize: workflow is in SUBTASK_LOOP")
    await assert_tool_error(service, root, "autopilot_start", {"taskId": "1"}, "Workflow already in progress")

    await data(service, root, "autopilot_complete_phase", testResults=results(2, 2))
    await assert_tool_error(service, root, "autopilot_commit", {"files": ["../outside.py"]},
                            "is not a path inside the project root")
    failed = await call(service, root, "autopilot_complete_phase", testResults=results(2, 1))
    assert failed["isError"] and "Attempt 1 of 2" in failed["content"][0]["text"]
    assert (await data(service, root, "autopilot_status"))["currentSubtask"]["attempts"] == 1, "the attempt counts"
    await call(service, root, "autopilot_complete_phase", testResults=results(2, 1))
    task = service.view(root).task("master", 1)
    assert task["subtasks"][1]["status"] == "blocked"
    assert (await data(service, root, "autopilot_next"))["action"] == "subtask_failed"

    # Restarting with force goes on from the failed subtask, with fresh attempts.
    again = await data(service, root, "autopilot_start", taskId="1", force=True)
    assert again["currentSubtask"] == {"id": "1.2", "title": "Part 2", "status": "in-progress", "attempts": 0,
                                       "maxAttempts": 3}
    assert again["branchCreated"] is False
    assert service.view(root).task("master", 1)["subtasks"][1]["status"] == "in-progress"
    aborted = await data(service, root, "autopilot_abort")
    assert aborted["hadWorkflow"] is True and aborted["branchName"] == "tm/master/task-1-add-the-login-page"
    assert "autopilot" not in service.view(root).state
    assert "tm/master/task-1-add-the-login-page" in git(root, "branch", "--list"), "abort keeps the branch"


async def test_a_peer_can_ask_only_for_known_git_steps(tmp_path):
    from taskmaster.cluster.gitproxy import GitProxy

    root = make_repo(tmp_path / "repo")
    proxy = GitProxy("n0")
    for bad in (None, {"root": root, "step": "push", "args": {}}, {"root": 1, "step": "status", "args": {}},
                {"root": root, "step": "status", "args": []}):
        with pytest.raises(ValueError, match="autopilot.git needs"):
            await proxy._on_step("n1", bad)
    assert await proxy._on_step("n1", {"root": str(tmp_path / "nope"), "step": "status", "args": {}}) == {"sees": False}
    answer = await proxy._on_step("n1", {"root": root, "step": "status", "args": {}})
    assert answer == {"sees": True, "value": {"clean": True, "staged": 0, "modified": 0, "deleted": 0, "untracked": 0}}
    answer = await proxy._on_step("n1", {"root": root, "step": "commit",
                                         "args": {"branch": "main", "files": None, "message": "x\n"}})
    assert answer == {"sees": True, "error": "No staged changes to commit. Make code changes before committing",
                      "code": "NOTHING_TO_COMMIT"}
