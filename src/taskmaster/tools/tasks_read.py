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
        now = time.time()
        return await ctx.service.write(ctx.root, lambda tx: claims.claim_next(
            tx, tx.resolve_tag(args.get("tag")), args.get("agent"), now, args["leaseSeconds"], report,
            ctx.quorum))
    view = ctx.service.view(ctx.root)
    return next_task_mod.next_task(view, view.resolve_tag(args.get("tag")), report)


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
