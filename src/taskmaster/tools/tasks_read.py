"""The read-only task tools: get_tasks, get_task, next_task, complexity_report (next_task with
`claim` is the one write: it takes the task for an agent)."""

from __future__ import annotations

import time

from ..tasks import claims, complexity, files, queries
from ..tasks import next_task as next_task_mod
from ..tasks.errors import TaskError
from . import checks
from .registry import ToolContext, tool


@tool("get_tasks")
async def get_tasks(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    return queries.get_tasks(view, view.resolve_tag(args.get("tag")), args.get("status"),
                             args.get("withSubtasks"), args.get("fields"), args.get("limit"),
                             args.get("offset"))


@tool("get_task", check=checks.ids("id"))
async def get_task(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    return queries.get_task(view, view.resolve_tag(args.get("tag")), args["id"], args.get("status"))


@tool("next_task")
async def next_task(ctx: ToolContext, args: dict):
    report = _report_file(ctx.root, args["complexityReport"])[1] if args.get("complexityReport") else None
    if args.get("claim"):
        return await _claim(ctx, args, report)
    view = ctx.service.view(ctx.root)
    return next_task_mod.next_task(view, view.resolve_tag(args.get("tag")), report)


async def _claim(ctx: ToolContext, args: dict, report: dict | None) -> dict:
    """In a cluster the chosen item is first granted by a majority of the tag's replicas; an item
    they refuse is held by an agent this coordinator has not heard of, so the next one is tried."""
    agent, seconds, now = args.get("agent"), args["leaseSeconds"], time.time()
    if ctx.grant is None:
        return await _claim_write(ctx, args, report, now)
    exclude: frozenset[str] = frozenset()
    for _ in range(CLAIM_ATTEMPTS):
        view = ctx.service.view(ctx.root)
        tag = view.resolve_tag(args.get("tag"))
        claims.check_claim(view, tag, agent, seconds)
        claims.require_quorum(ctx.quorum)
        pick = claims.choose_claim(view, tag, agent, now, exclude)
        if pick is None:
            break
        item, seen = pick
        if await ctx.grant(item, agent, claims.lease_until(agent, now, seconds)["expiresAt"], seen) is None:
            try:
                return await _claim_write(ctx, args, report, now, item)
            except claims.ClaimMoved:
                continue
        exclude |= {item}
    return claims.nothing_claimed(view, tag)


def _claim_write(ctx: ToolContext, args: dict, report: dict | None, now: float, only: str | None = None):
    return ctx.service.write(ctx.root, lambda tx: claims.claim_next(
        tx, tx.resolve_tag(args.get("tag")), args.get("agent"), now, args["leaseSeconds"], report, ctx.quorum,
        only))


CLAIM_ATTEMPTS = 5  # items tried before answering that nothing can be claimed


@tool("complexity_report")
async def complexity_report(ctx: ToolContext, args: dict):
    if args.get("file"):
        path, report = _report_file(ctx.root, args["file"])
        return {"report": report, "reportPath": path}
    view = ctx.service.view(ctx.root)
    return complexity.get_complexity_report(view, view.current_tag)


def _report_file(root: str, name: str) -> tuple[str, dict]:
    """An explicit report file on this node's disk (relative to the project root)."""
    path = files.resolve_path(root, name)
    report = files.read_json(path)
    if report is None:
        raise TaskError(complexity.NO_REPORT, "FILE_NOT_FOUND")
    if not isinstance(report, dict):
        raise TaskError(f"{path} must hold a JSON object", "INVALID_REPORT_FILE")
    return path, report
