"""The autopilot: Task Master's TDD workflow for one task, as a state machine over a plain dict.

    PREFLIGHT -> BRANCH_SETUP -> SUBTASK_LOOP -> FINALIZE -> COMPLETE
                                  per subtask: RED -> GREEN -> COMMIT

RED reports the new tests failing (0 failures: the feature is already there and the subtask completes
at once). GREEN must report every test passing; each GREEN report is one of the subtask's
`maxAttempts` attempts, and a subtask that uses them all without passing is marked failed and stops
the loop. COMMIT is taken by a git commit (gitwork.py), which completes the subtask and starts the
next one. Finalizing needs a clean working tree and ends the workflow.

A project has at most one workflow. Its state lives in the project's own state document under
"autopilot", which every member of the cluster keeps, so any node can answer for it; it is written
only through `ProjectTx`, like every other change. It is stored once the branch is set up (a start
whose preflight or branch fails leaves nothing behind) and deleted by finalize or abort.

The tasks follow the workflow: the task and the subtask being worked on are set in-progress, a
completed subtask done, a failed one blocked, and the task done when the workflow is finalized.

Functions on a state dict never change it: each transition returns a new dict (with `revision` one
higher and a history entry), or raises TaskError and returns nothing.
"""

from __future__ import annotations

import re

from .errors import TaskError
from .ids import MAX_ID, parse_ref
from .model import DONE, exists, iso_now
from .state import ProjectTx, ProjectView, copy_json
from .status import set_task_status

KEY = "autopilot"  # where the workflow lives in the project state
PREFLIGHT, BRANCH_SETUP, SUBTASK_LOOP, FINALIZE, COMPLETE = (
    "PREFLIGHT", "BRANCH_SETUP", "SUBTASK_LOOP", "FINALIZE", "COMPLETE")
RED, GREEN, COMMIT = "RED", "GREEN", "COMMIT"
PENDING, IN_PROGRESS, COMPLETED, FAILED = "pending", "in-progress", "completed", "failed"
MAX_ATTEMPTS_LIMIT = 100
HISTORY_KEPT = 100  # events kept in the state (the oldest go first): it is copied to every node
HISTORY_SHOWN = 20  # events autopilot_status shows
_SAME = object()  # "leave it as it is", where None is a value

NO_WORKFLOW = "No active workflow found. Start a workflow with autopilot_start"
TASK_STATUS = {IN_PROGRESS: "in-progress", COMPLETED: "done", FAILED: "blocked"}  # workflow -> task status


# ---- reading ---------------------------------------------------------------------------------------
def current(view: ProjectView) -> dict | None:
    """The project's workflow state, or None."""
    return view.state.get(KEY)


def require(view: ProjectView, message: str = NO_WORKFLOW) -> dict:
    state = current(view)
    if state is None:
        raise TaskError(message, "NO_WORKFLOW")
    return state


def _subtask(state: dict) -> dict | None:
    i = state["currentSubtaskIndex"]
    return state["subtasks"][i] if state["phase"] == SUBTASK_LOOP and i < len(state["subtasks"]) else None


def progress(state: dict) -> dict:
    total = len(state["subtasks"])
    completed = sum(1 for s in state["subtasks"] if s["status"] == COMPLETED)
    return {"completed": completed, "total": total, "current": min(state["currentSubtaskIndex"] + 1, total),
            "percentage": round(completed * 100 / total) if total else 0}


def status(state: dict) -> dict:
    """The workflow as the tools show it."""
    sub = _subtask(state)
    return {"taskId": state["taskId"], "taskTitle": state["taskTitle"], "tag": state["tag"],
            "branchName": state["branchName"],
            "phase": state["phase"], "tddPhase": state["tddPhase"],
            "currentSubtask": None if sub is None else {
                "id": sub["id"], "title": sub["title"], "status": sub["status"], "attempts": sub["attempts"],
                "maxAttempts": state["maxAttempts"]},
            "progress": progress(state), "gitNode": state["gitNode"], "startedAt": state["startedAt"],
            "updatedAt": state["updatedAt"]}


def details(state: dict) -> dict:
    """status() with every subtask, the last test results and the recent history."""
    return {**status(state), "subtasks": state["subtasks"],
            "lastTestResults": state.get("lastTestResults"), "history": state["history"][-HISTORY_SHOWN:]}


def next_action(state: dict) -> dict:
    """What the agent should do next: {action, actionDescription, nextSteps, phase, tddPhase, subtask}."""
    phase, sub = state["phase"], _subtask(state)
    if phase == COMPLETE:
        return _action("workflow_complete", "All subtasks completed", "The workflow is complete. Review the "
                       f"branch {state['branchName']} and merge it when ready.", state)
    if phase == FINALIZE:
        return _action("finalize_workflow", "Finalize and complete the workflow", "Every subtask is committed. "
                       "Call autopilot_finalize: it checks that nothing is left uncommitted and completes the "
                       "workflow.", state)
    if sub is None:
        return _action("unknown", "Workflow is not in active state", "Use autopilot_status to check the "
                       "workflow state.", state)
    ref = f'subtask {sub["id"]} ("{sub["title"]}")'
    if sub["status"] == FAILED:
        return _action("subtask_failed", "The subtask used all its attempts",
                       f"{ref} did not pass its tests in {sub['attempts']} attempts. Fix it by hand, then start "
                       "the workflow again with autopilot_start (force: true) to go on from this subtask, or "
                       "stop with autopilot_abort.", state)
    if state["tddPhase"] == RED:
        return _action("generate_test", "Generate failing test for current subtask",
                       f"Write tests for {ref} that fail until it is implemented, run them, and report the "
                       "results with autopilot_complete_phase. If they all pass (0 failures) the subtask is "
                       "already implemented and completes at once.", state)
    if state["tddPhase"] == GREEN:
        return _action("implement_code", "Implement feature to make tests pass",
                       f"Implement {ref} so that every test passes (attempt {sub['attempts'] + 1} of "
                       f"{state['maxAttempts']}), run the tests, and report the results with "
                       "autopilot_complete_phase.", state)
    return _action("commit_changes", "Commit RED-GREEN cycle changes",
                   f"Commit the work on {ref} with autopilot_commit (it stages every change unless given "
                   "files); the workflow then moves to the next subtask.", state)


def _action(action: str, description: str, steps: str, state: dict) -> dict:
    sub = _subtask(state)
    return {"action": action, "actionDescription": description, "nextSteps": steps, "phase": state["phase"],
            "tddPhase": state["tddPhase"], "subtask": None if sub is None else {"id": sub["id"], "title": sub["title"]}}


# ---- starting ---------------------------------------------------------------------------------------
def plan_start(view: ProjectView, task_id: str, max_attempts: float, force: bool) -> dict:
    """PREFLIGHT over the tasks: a new workflow for `task_id` in the current tag, in BRANCH_SETUP
    with the branch it wants. Its git half (clean tree, the branch) comes next (gitwork.py)."""
    ref = _main_task_ref(task_id)
    attempts = _whole(max_attempts, "maxAttempts", 1, MAX_ATTEMPTS_LIMIT)
    _check_replaceable(view, force)
    tag = view.current_tag
    task = view.task(tag, ref.task)
    if task is None:
        raise TaskError(f"Task {ref.task} not found", "TASK_NOT_FOUND")
    subtasks = task.get("subtasks") or []
    if not subtasks:
        raise TaskError(f'Task {ref.task} has no subtasks. Please use expand_task (with id="{ref.task}") to create '
                        "subtasks first. For improved results, consider running analyze_complexity before "
                        "expanding the task.", "NO_SUBTASKS")
    steps = [{"id": f"{ref.task}.{s['id']}", "title": s.get("title") or "",
              "status": COMPLETED if s.get("status") in DONE else PENDING, "attempts": 0} for s in subtasks]
    first = next((i for i, s in enumerate(steps) if s["status"] != COMPLETED), None)
    if first is None:
        raise TaskError(f"All subtasks for task {ref.task} are already completed. Nothing to do.", "NOTHING_TO_DO")
    now = iso_now()
    state = {"taskId": ref.task, "taskTitle": task.get("title") or "", "tag": tag,
             "branchName": branch_name(tag, ref.task, task.get("title") or ""), "phase": PREFLIGHT,
             "tddPhase": None, "subtasks": steps, "currentSubtaskIndex": first, "maxAttempts": attempts,
             "gitNode": None, "lastTestResults": None, "startedAt": now, "updatedAt": now, "revision": 0,
             "history": []}
    return _event(state, "preflight_complete", phase=BRANCH_SETUP)


def _main_task_ref(task_id: str):
    try:
        ref = parse_ref(task_id)
    except ValueError:
        raise TaskError(f'taskId: "{task_id}" is not one task id (e.g. "1")', "INVALID_TASK_ID") from None
    if ref.is_subtask:
        raise TaskError(f'Task ID "{task_id}" is a subtask. Autopilot workflows can only be started for main tasks '
                        f'(e.g., "1", "2"). Please provide the parent task ID instead.', "SUBTASK_NOT_ALLOWED")
    return ref


def _check_replaceable(view: ProjectView, force: bool) -> None:
    if current(view) is not None and not force:
        raise TaskError("Workflow already in progress. Use force=true to override or resume the existing workflow. "
                        "Suggestion: Use autopilot_resume to continue the existing workflow", "WORKFLOW_EXISTS")


def branch_name(tag: str, task_id: int, title: str) -> str:
    """The reference's branch: tm/<tag>/task-<id>-<title as a slug of at most 50 characters>."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:50].rstrip("-")
    return f"tm/{tag}/task-{task_id}" + (f"-{slug}" if slug else "")


def branch_ready(state: dict, node: str, created: bool) -> dict:
    """BRANCH_SETUP done on `node`: the loop starts at the first subtask not yet completed."""
    _require_phase(state, BRANCH_SETUP, "set up the branch")
    new = _event(state, "branch_created" if created else "branch_checked_out", phase=SUBTASK_LOOP, tdd=RED,
                 branchName=state["branchName"], node=node)
    new["gitNode"] = node
    new["subtasks"][new["currentSubtaskIndex"]]["status"] = IN_PROGRESS
    return new


# ---- the loop -----------------------------------------------------------------------------------------
def check_results(results: dict, phase: str) -> dict:
    """Test results as counts that add up; TaskError naming the field otherwise."""
    if not isinstance(results, dict):
        raise TaskError("testResults must be an object {total, passed, failed, skipped?}", "INVALID_TEST_RESULTS")
    for name in ("total", "passed", "failed"):
        if results.get(name) is None:
            raise TaskError(f"testResults.{name} is required (a number of tests)", "INVALID_TEST_RESULTS")
    counts = {name: _whole(0 if results.get(name) is None else results[name], f"testResults.{name}", 0, MAX_ID)
              for name in ("total", "passed", "failed", "skipped")}
    parts = counts["passed"] + counts["failed"] + counts["skipped"]
    if counts["total"] != parts:
        raise TaskError(f"testResults.total ({counts['total']}) must equal passed + failed + skipped ({parts})",
                        "INVALID_TEST_RESULTS")
    if counts["total"] == 0:
        raise TaskError(f"testResults.total is 0: the {phase} phase needs the subtask's tests to have run",
                        "INVALID_TEST_RESULTS")
    return counts


def complete_phase(state: dict, results: dict) -> tuple[dict, str | None]:
    """RED or GREEN done with `results`: (new state, None), or (new state, why GREEN was not reached)
    when GREEN reports failures: the failed attempt is recorded, and is the error the caller shows."""
    if state["phase"] != SUBTASK_LOOP:
        raise TaskError(f"Cannot complete phase: not in a TDD phase (current phase: {state['phase']})",
                        "NOT_IN_TDD_PHASE")
    tdd = state["tddPhase"]
    if tdd == COMMIT:
        raise TaskError("Cannot complete COMMIT phase with this tool. Use autopilot_commit instead", "WRONG_PHASE")
    sub = _subtask(state)
    if sub["status"] == FAILED:
        raise TaskError(f"Subtask {sub['id']} failed after {sub['attempts']} attempts and the workflow is stopped: "
                        "fix it by hand, then call autopilot_start with force: true to go on from it, or "
                        "autopilot_abort.", "SUBTASK_FAILED")
    counts = check_results(results, tdd)
    tally = {**counts, "phase": tdd}
    if tdd == RED:
        if counts["failed"] == 0:  # nothing fails: the subtask is already implemented
            new = _event(state, "subtask_already_implemented", subtaskId=sub["id"], tests=tally)
            new["lastTestResults"] = tally
            return _finish_subtask(new), None
        new = _event(state, "red_complete", tdd=GREEN, subtaskId=sub["id"], tests=tally)
        new["lastTestResults"] = tally
        return new, None
    attempt = sub["attempts"] + 1
    if counts["failed"] == 0:
        new = _event(state, "green_complete", tdd=COMMIT, subtaskId=sub["id"], attempt=attempt, tests=tally)
        rejection = None
    else:
        new = _event(state, "green_failed", subtaskId=sub["id"], attempt=attempt, tests=tally)
        rejection = (f"GREEN phase must have zero failures ({counts['failed']} of {counts['total']} failed). "
                     f"Attempt {attempt} of {state['maxAttempts']} for subtask {sub['id']}")
        if attempt >= state["maxAttempts"]:
            new = _event(new, "subtask_failed", subtaskId=sub["id"], attempts=attempt)
            new["subtasks"][new["currentSubtaskIndex"]]["status"] = FAILED
            rejection += (": it has used every attempt and is marked failed (its task is blocked). Fix it by hand, "
                          "then call autopilot_start with force: true to go on from it, or autopilot_abort.")
        else:
            rejection += ": fix the implementation, run the tests again and report them with autopilot_complete_phase."
    new["subtasks"][new["currentSubtaskIndex"]]["attempts"] = attempt
    new["lastTestResults"] = tally
    return new, rejection


def check_commit(state: dict) -> dict:
    """The subtask a commit now would complete; TaskError when the workflow is not in COMMIT."""
    if state["phase"] != SUBTASK_LOOP:
        raise TaskError(f"Cannot commit: workflow is in {state['phase']} phase", "WRONG_PHASE")
    if state["tddPhase"] != COMMIT:
        raise TaskError(f"Cannot commit: currently in {state['tddPhase']} phase. Complete the {state['tddPhase']} "
                        "phase first using autopilot_complete_phase", "WRONG_PHASE")
    return _subtask(state)


def commit_message(state: dict) -> str:
    """A conventional commit for the current subtask, with the workflow's metadata as trailers."""
    sub = check_commit(state)
    lines = [f"feat(task-{state['taskId']}): {sub['title'] or 'subtask ' + sub['id']}", "",
             f"Task: {state['taskId']}", f"Subtask: {sub['id']}", f"Phase: {COMMIT}"]
    tests = state.get("lastTestResults")
    if tests:
        lines.append(f"Tests: {tests['passed']} passing, {tests['failed']} failing")
    return "\n".join(lines) + "\n"


def after_commit(state: dict, sha: str, node: str) -> dict:
    """COMMIT done by commit `sha` on `node`: the subtask is completed, the next one starts (or FINALIZE)."""
    sub = check_commit(state)
    new = _event(state, "committed", subtaskId=sub["id"], commitSha=sha, node=node)
    new["subtasks"][new["currentSubtaskIndex"]]["commitSha"] = sha
    new["gitNode"] = node
    return _finish_subtask(new)


def _finish_subtask(state: dict) -> dict:
    """Mark the current subtask completed (in `state`, a new dict) and move to the next open one."""
    subs = state["subtasks"]
    subs[state["currentSubtaskIndex"]]["status"] = COMPLETED
    following = (i for i in range(state["currentSubtaskIndex"] + 1, len(subs)) if subs[i]["status"] != COMPLETED)
    nxt = next(following, None)
    if nxt is None:
        state["currentSubtaskIndex"] = len(subs)
        return _event(state, "all_subtasks_complete", phase=FINALIZE, tdd=None, copy=False)
    state["currentSubtaskIndex"] = nxt
    subs[nxt]["status"] = IN_PROGRESS
    return _event(state, "subtask_started", tdd=RED, subtaskId=subs[nxt]["id"], copy=False)


def check_finalize(state: dict) -> None:
    if state["phase"] != FINALIZE:
        raise TaskError(f"Cannot finalize: workflow is in {state['phase']} phase. Complete all subtasks first.",
                        "WRONG_PHASE")


def finalized(state: dict, node: str) -> dict:
    check_finalize(state)
    new = _event(state, "finalized", phase=COMPLETE, node=node)
    new["gitNode"] = node
    return new


# ---- state helpers ------------------------------------------------------------------------------------
def _event(state: dict, event: str, phase: str | None = None, tdd: str | None | object = _SAME,
           copy: bool = True, **data) -> dict:
    """`state` (copied unless told not to) after `event`, which may change the phases: one revision
    later, with the event in its history."""
    new = copy_json(state) if copy else state
    if phase is not None:
        new["phase"] = phase
    if tdd is not _SAME:
        new["tddPhase"] = tdd
    now = iso_now()
    new["history"] = [*new["history"][-(HISTORY_KEPT - 1):],
                      {"at": now, "event": event, "phase": new["phase"], "tddPhase": new["tddPhase"], **data}]
    new["revision"] += 1
    new["updatedAt"] = now
    return new


def _require_phase(state: dict, phase: str, doing: str) -> None:
    if state["phase"] != phase:
        raise TaskError(f"Cannot {doing}: workflow is in {state['phase']} phase", "WRONG_PHASE")


def _whole(value, field: str, low: int, high: int) -> int:
    """A whole number in [low, high] (3.0 counts as 3); TaskError naming `field` otherwise."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise TaskError(f"{field} must be a whole number from {low} to {high} (got {value!r})", "INVALID_NUMBER")
    return value


# ---- transactions: the workflow and the tasks change together ------------------------------------------
def _save(tx: ProjectTx, old: dict | None, new: dict | None) -> None:
    """Store `new` (None: delete the workflow) and bring the tasks in line with it."""
    state = tx.edit_state()
    if new is None:
        state.pop(KEY, None)
        return
    state[KEY] = new
    before = {s["id"]: s["status"] for s in old["subtasks"]} if old is not None else {}
    changes = [(s["id"], TASK_STATUS[s["status"]]) for s in new["subtasks"]
               if s["status"] in TASK_STATUS and before.get(s["id"]) != s["status"]]
    if old is None:
        changes.insert(0, (str(new["taskId"]), "in-progress"))
    if new["phase"] == COMPLETE:
        changes.append((str(new["taskId"]), "done"))
    tag = new["tag"]
    for ref, task_status in changes:
        # A task or subtask deleted while the workflow ran no longer follows it; the workflow goes on.
        if tx.has_tag(tag) and exists(tx, tag, parse_ref(ref)):
            set_task_status(tx, tag, ref, task_status)


def _expect(tx: ProjectTx, revision: int, done: str) -> dict:
    """The workflow as a call read it before its git step (which did `done`): it must not have moved
    meanwhile, or the step's record would be wrong."""
    state = current(tx)
    if state is None or state["revision"] != revision:
        raise TaskError(f"The workflow was {'ended' if state is None else 'advanced by another call'} while this "
                        f"call ran ({done}, not recorded): check autopilot_status", "WORKFLOW_CHANGED")
    return state


def begin(tx: ProjectTx, planned: dict, force: bool, node: str, branch: dict) -> dict:
    """Store a planned workflow whose branch is ready on `node`; the answer of autopilot_start."""
    _check_replaceable(tx, force)  # again: another start may have finished while the branch was set up
    state = branch_ready(planned, node, branch["created"])
    _save(tx, None, state)
    action = next_action(state)
    return {"message": f"Workflow started for task {state['taskId']}", **status(state),
            "nextAction": action["action"], "nextSteps": action["nextSteps"], "branchCreated": branch["created"],
            "ranOn": node}


def record_phase(tx: ProjectTx, results: dict) -> tuple[dict | None, str | None]:
    """autopilot_complete_phase: (its answer, or None with the reason GREEN failed, recorded)."""
    old = require(tx)
    new, rejection = complete_phase(old, results)
    _save(tx, old, new)
    if rejection is not None:
        return None, rejection
    action = next_action(new)
    moved = f"Transitioned to {new['tddPhase'] or new['phase']}"
    if old["tddPhase"] == RED and new["lastTestResults"]["failed"] == 0:
        sub = old["subtasks"][old["currentSubtaskIndex"]]["id"]
        moved = f"No test fails: subtask {sub} is already implemented and was completed. {moved}"
    return {"message": f"Phase completed. {moved}", **status(new),
            "lastTestResults": new["lastTestResults"], "nextAction": action["action"],
            "actionDescription": action["actionDescription"], "nextSteps": action["nextSteps"]}, None


def record_commit(tx: ProjectTx, revision: int, commit: dict, message: str, node: str) -> dict:
    """autopilot_commit after its git commit: the subtask is completed; the answer."""
    old = _expect(tx, revision, f"commit {commit['sha']} was made")
    new = after_commit(old, commit["sha"], node)
    _save(tx, old, new)
    action = next_action(new)
    done = new["phase"] == FINALIZE
    return {"message": "All subtasks committed: finalize with autopilot_finalize" if done
            else "Commit created and workflow advanced", "commitSha": commit["sha"], "commitMessage": message,
            "files": commit["files"], **status(new), "isComplete": done, "nextAction": action["action"],
            "nextSteps": action["nextSteps"], "ranOn": node}


def record_finalize(tx: ProjectTx, revision: int, node: str) -> dict:
    """autopilot_finalize after the clean-tree check: the task is done and the workflow ends."""
    old = _expect(tx, revision, "the working tree was clean")
    new = finalized(old, node)
    _save(tx, old, new)  # the task is marked done...
    _save(tx, new, None)  # ...and the workflow is over: a new one may start without force
    action = next_action(new)
    return {"message": "Workflow completed successfully", **status(new), "nextAction": action["action"],
            "nextSteps": action["nextSteps"], "ranOn": node}


def abort(tx: ProjectTx) -> dict:
    """Delete the workflow; the branch, the commits and the tasks' statuses stay."""
    state = current(tx)
    if state is None:
        return {"message": "No active workflow to abort", "hadWorkflow": False}
    _save(tx, state, None)
    return {"message": "Workflow aborted", "hadWorkflow": True, "taskId": state["taskId"],
            "branchName": state["branchName"],
            "note": "Git branch and code changes were preserved. You can manually clean them up if needed."}
