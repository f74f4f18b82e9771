"""Dependency tools: add_dependency, remove_dependency, validate_dependencies, fix_dependencies."""

from __future__ import annotations

from ..tasks import dependencies, repair
from . import checks
from .registry import ToolContext, tool


@tool("add_dependency", check=checks.ids("id", "dependsOn"))
async def add_dependency(ctx: ToolContext, args: dict):
    return await ctx.service.write(ctx.root, lambda tx: dependencies.add_dependency(
        tx, tx.resolve_tag(args.get("tag")), args["id"], args["dependsOn"]))


@tool("remove_dependency", check=checks.ids("id", "dependsOn"))
async def remove_dependency(ctx: ToolContext, args: dict):
    return await ctx.service.write(ctx.root, lambda tx: dependencies.remove_dependency(
        tx, tx.resolve_tag(args.get("tag")), args["id"], args["dependsOn"]))


@tool("validate_dependencies")
async def validate_dependencies(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    tag = view.resolve_tag(args.get("tag"))
    # Beside the issues, the repairs made after partitions (recorded in the tasks' metadata).
    return {**dependencies.validate_dependencies(view, tag), "repairs": repair.recorded_repairs(view, tag)}


@tool("fix_dependencies")
async def fix_dependencies(ctx: ToolContext, args: dict):
    return await ctx.service.write(ctx.root, lambda tx: dependencies.fix_dependencies(
        tx, tx.resolve_tag(args.get("tag"))))
