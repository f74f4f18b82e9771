"""Tag tools: list_tags, add_tag, delete_tag, use_tag, rename_tag, copy_tag."""

from __future__ import annotations

import asyncio

from ..tasks import tags
from .registry import ToolContext, tool


@tool("list_tags")
async def list_tags(ctx: ToolContext, args: dict):
    return tags.list_tags(ctx.service.view(ctx.root), bool(args.get("showMetadata")))


@tool("add_tag")
async def add_tag(ctx: ToolContext, args: dict):
    options = {"copy_from_current": bool(args.get("copyFromCurrent")),
               "copy_from_tag": args.get("copyFromTag") or None,
               "description": args.get("description") or None}
    if args.get("fromBranch"):
        branch = await asyncio.to_thread(tags.current_branch, ctx.root)  # git runs off the event loop
        return await ctx.service.write(ctx.root, lambda tx: tags.add_tag_from_branch(tx, branch, **options))
    return await ctx.service.write(ctx.root, lambda tx: tags.add_tag(tx, args["name"], **options))


@tool("delete_tag")
async def delete_tag(ctx: ToolContext, args: dict):
    return await ctx.service.write(ctx.root, lambda tx: tags.delete_tag(tx, args["name"]))


@tool("use_tag")
async def use_tag(ctx: ToolContext, args: dict):
    return await ctx.service.write(ctx.root, lambda tx: tags.use_tag(tx, args["name"]))


@tool("rename_tag")
async def rename_tag(ctx: ToolContext, args: dict):
    return await ctx.service.write(ctx.root, lambda tx: tags.rename_tag(tx, args["oldName"], args["newName"]))


@tool("copy_tag")
async def copy_tag(ctx: ToolContext, args: dict):
    return await ctx.service.write(ctx.root, lambda tx: tags.copy_tag(
        tx, args["sourceName"], args["targetName"], args.get("description") or None))
