"""The eight autopilot tools: Task Master's TDD workflow (tasks/autopilot.py) and its git steps.

Every write goes through `ctx.service.write`, like any other tool's, so the workflow is replicated
with the project. A git step runs on a node that sees projectRoot (cluster/gitproxy.py), before the
write that records it; on one node the steps of one project take turns, so nothing moves between a
step and its record (and the record checks that nothing did).
"""

from __future__ import annotations

import asyncio
import weakref

from ..cluster.gitproxy import GitProxy
from ..tasks import autopilot, gitwork
from ..tasks.errors import TaskError
from . import checks
from .registry import ToolContext, tool

_turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _turn(root: str) -> asyncio.Lock:
    """One lock per project while anyone holds or waits for it."""
    lock = _turns.get(root)
    if lock is None:
        lock = _turns[root] = asyncio.Lock()
    return lock


def _git(ctx: ToolContext) -> GitProxy:
    return getattr(ctx.cluster, "git", None) or GitProxy(ctx.node or "this node")


@tool("autopilot_start", check=checks.ids("taskId"))
async def autopilot_start(ctx: ToolContext, args: dict):
    async with _turn(ctx.root):
        view = ctx.service.view(ctx.root)
        planned = autopilot.plan_start(view, args["taskId"], args["maxAttempts"], args["force"])
        previous = autopilot.current(view)
        node, branch = await _git(ctx).run(ctx.root, "branch", {"branch": planned["branchName"]},
                                           prefer=previous and previous["gitNode"])
        return await ctx.service.write(ctx.root, lambda tx: autopilot.begin(tx, planned, args["force"], node, branch))


@tool("autopilot_resume")
async def autopilot_resume(ctx: ToolContext, args: dict):
    state = autopilot.require(ctx.service.view(ctx.root),
                              "No workflow state found. Start a new workflow with autopilot_start")
    action = autopilot.next_action(state)
    return {"message": "Workflow resumed", **autopilot.status(state), "nextAction": action["action"],
            "actionDescription": action["actionDescription"], "nextSteps": action["nextSteps"]}


@tool("autopilot_next")
async def autopilot_next(ctx: ToolContext, args: dict):
    state = autopilot.require(ctx.service.view(ctx.root))
    action = autopilot.next_action(state)
    return {"action": action["action"], "actionDescription": action["actionDescription"],
            **autopilot.status(state), "nextSteps": action["nextSteps"]}


@tool("autopilot_status")
async def autopilot_status(ctx: ToolContext, args: dict):
    return autopilot.details(autopilot.require(ctx.service.view(ctx.root)))


@tool("autopilot_complete_phase")
async def autopilot_complete_phase(ctx: ToolContext, args: dict):
    answer, rejection = await ctx.service.write(ctx.root, lambda tx: autopilot.record_phase(tx, args["testResults"]))
    if rejection is not None:  # the failed attempt is recorded; the call still fails
        raise TaskError(rejection, "TESTS_FAILING")
    return answer


@tool("autopilot_commit")
async def autopilot_commit(ctx: ToolContext, args: dict):
    files = gitwork.check_files(args.get("files"))
    async with _turn(ctx.root):
        state = autopilot.require(ctx.service.view(ctx.root))
        autopilot.check_commit(state)
        custom = args.get("customMessage") or ""
        message = custom if custom.strip() else autopilot.commit_message(state)
        node, commit = await _git(ctx).run(ctx.root, "commit", {"branch": state["branchName"], "files": files,
                                                                "message": message}, prefer=state["gitNode"])
        return await ctx.service.write(ctx.root, lambda tx: autopilot.record_commit(
            tx, state["revision"], commit, message, node))


@tool("autopilot_finalize")
async def autopilot_finalize(ctx: ToolContext, args: dict):
    async with _turn(ctx.root):
        state = autopilot.require(ctx.service.view(ctx.root))
        autopilot.check_finalize(state)
        node, tree = await _git(ctx).run(ctx.root, "status", {}, prefer=state["gitNode"])
        if not tree["clean"]:
            raise TaskError(f"Cannot finalize workflow: working tree has uncommitted changes.\n"
                            f"{gitwork.describe(tree)}\nPlease commit all changes before finalizing the workflow.",
                            "DIRTY_TREE")
        return await ctx.service.write(ctx.root, lambda tx: autopilot.record_finalize(tx, state["revision"], node))


@tool("autopilot_abort")
async def autopilot_abort(ctx: ToolContext, args: dict):
    return await ctx.service.write(ctx.root, autopilot.abort)
