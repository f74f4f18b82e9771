"""Handlers of the deterministic task-writing tools: status, add, remove, clear and move."""

from __future__ import annotations

from ..tasks import create, moves, remove, status
from ..tasks.errors import TaskError
from . import checks
from .registry import Check, ToolContext, tool


def ids_or_blank(strict: tuple[str, ...], blank_ok: tuple[str, ...] = ()) -> Check:
    """checks.ids over `strict + blank_ok`, where a blank `blank_ok` field counts as not given
    (Task Master treats an empty string there as absent)."""
    inner = checks.ids(*strict, *blank_ok)

    def check(args: dict) -> list[str]:
        return inner({k: v for k, v in args.items()
                      if not (k in blank_ok and isinstance(v, str) and not v.strip())})

    return check


_id_list_or_blank = ids_or_blank((), ("id",))


def clear_subtasks_check(args: dict) -> list[str]:
    """clear_subtasks needs `id` or `all` (a zod refine in the reference)."""
    if not (args.get("id") or "").strip() and not args.get("all"):
        return ["id.all: Either 'id' or 'all' parameter must be provided"]
    return _id_list_or_blank(args)


def _write(ctx: ToolContext, args: dict, fn, uses_tag: bool = True):
    """Run `fn(tx, tag)` as one durable transaction on the tag the call names (or the current one),
    which must exist (an unknown tag is an error for every tool, never an empty success)."""

    def run(tx):
        tag = tx.resolve_tag(args.get("tag"))
        if uses_tag and not tx.has_tag(tag):
            raise TaskError(f"Tag '{tag}' does not exist", "TAG_NOT_FOUND")
        return fn(tx, tag)

    return ctx.service.write(ctx.root, run)


@tool("set_task_status", check=checks.ids("id"))
async def set_task_status(ctx: ToolContext, args: dict):
    return await _write(ctx, args, lambda tx, tag: status.set_task_status(tx, tag, args["id"], args["status"]))


@tool("add_task", check=ids_or_blank((), ("dependencies",)))
async def add_task(ctx: ToolContext, args: dict):
    if (args.get("prompt") or "").strip() and not (args.get("title") and args.get("description")):
        from .ai import add_task_from_prompt  # prompt mode asks a model; ai.py imports this module

        return await add_task_from_prompt(ctx, args)
    return await _write(ctx, args, lambda tx, tag: create.add_task(
        tx, tag, title=args.get("title"), description=args.get("description"), details=args.get("details"),
        test_strategy=args.get("testStrategy"), dependencies=args.get("dependencies"),
        priority=args.get("priority")))


@tool("add_subtask", check=ids_or_blank(("id",), ("taskId", "dependencies")))
async def add_subtask(ctx: ToolContext, args: dict):
    return await _write(ctx, args, lambda tx, tag: create.add_subtask(
        tx, tag, args["id"], task_id=args.get("taskId"), title=args.get("title"),
        description=args.get("description"), details=args.get("details"), status=args.get("status"),
        dependencies=args.get("dependencies")))


@tool("remove_task", check=checks.ids("id"))
async def remove_task(ctx: ToolContext, args: dict):
    return await _write(ctx, args, lambda tx, tag: remove.remove_task(tx, tag, args["id"]))


@tool("remove_subtask", check=checks.ids("id"))
async def remove_subtask(ctx: ToolContext, args: dict):
    return await _write(ctx, args, lambda tx, tag: remove.remove_subtask(
        tx, tag, args["id"], convert=bool(args.get("convert"))))


@tool("clear_subtasks", check=clear_subtasks_check)
async def clear_subtasks(ctx: ToolContext, args: dict):
    return await _write(ctx, args, lambda tx, tag: remove.clear_subtasks(
        tx, tag, args.get("id"), all_tasks=bool(args.get("all"))))


@tool("move_task", check=ids_or_blank(("from",), ("to",)))
async def move_task(ctx: ToolContext, args: dict):
    from_tag, to_tag = args.get("fromTag"), args.get("toTag")
    return await _write(ctx, args, lambda tx, tag: moves.move_task(
        tx, tag, args["from"], args.get("to"), from_tag=from_tag, to_tag=to_tag,
        with_dependencies=bool(args.get("withDependencies")),
        ignore_dependencies=bool(args.get("ignoreDependencies"))),
        uses_tag=not moves.is_cross_tag(from_tag, to_tag))
