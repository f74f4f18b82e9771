"""The HTTP face of a node: /mcp (MCP Streamable HTTP), /health and /metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import __version__
from .mcp.server import McpServer
from .tasks import files
from .tasks.errors import TaskError
from .tools import registry
from .tools.registry import ToolContext

if TYPE_CHECKING:
    from .node import Node


def build_app(node: Node) -> web.Application:
    cfg = node.config
    tools = registry.load_all()
    enabled = registry.select(cfg.tools)
    enabled_set = frozenset(enabled)

    async def call_tool(name: str, arguments, session: dict) -> dict:
        def make_ctx(root: str) -> ToolContext:
            return ToolContext(node.service, root, node.name, cfg, session.get("progress"),
                               session.get("client") or {})

        return await registry.call_tool(name, arguments, enabled_set, make_ctx, node.metrics)

    def list_tools() -> list[dict]:
        return [tools[name].listing() for name in enabled]

    # The MCP server answers oversized bodies itself (413 with a JSON-RPC error), so aiohttp's own
    # limit sits just above it.
    app = web.Application(client_max_size=cfg.max_body_bytes + 64 * 1024)
    mcp = McpServer(call_tool, list_tools, {"name": "taskmaster", "version": __version__}, token=cfg.token,
                    allowed_origins=cfg.allowed_origins, max_body=cfg.max_body_bytes, metrics=node.metrics)
    mcp.add_routes(app)

    async def export(request: web.Request) -> web.Response:
        """POST {"projectRoot", "output"?}: write the project's tasks.json (Task Master's format)."""
        async def run(root: str, body: dict) -> dict:
            path = files.resolve_path(root, body.get("output") or files.TASKS_FILE)
            return files.write_tasks_json(node.service.view(root), path)

        return await _admin(request, mcp, run)

    async def import_(request: web.Request) -> web.Response:
        """POST {"projectRoot", "input"?}: load a tasks.json into the project (its tags replace ours)."""
        async def run(root: str, body: dict) -> dict:
            path = files.resolve_path(root, body["input"]) if body.get("input") else None
            found = await node.service.write(root, lambda tx: files.import_project(tx, path))
            if not found:
                raise TaskError(f"No tasks.json in {root}", "FILE_NOT_FOUND")
            view = node.service.view(root)
            return {"tags": len(view.tag_names()), "tasks": sum(len(view.tasks(t)) for t in view.tag_names())}

        return await _admin(request, mcp, run)

    async def health(_: web.Request) -> web.Response:
        return web.json_response(node.health())

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=node.metrics.render(), content_type="text/plain", charset="utf-8")

    async def cluster(request: web.Request) -> web.Response:
        # Membership is the cluster's to read (promise 4): same origin and token rules as /mcp.
        return mcp.guard(request) or web.json_response(node.cluster())

    app.router.add_get("/health", health)
    app.router.add_get("/cluster", cluster)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/admin/export", export)
    app.router.add_post("/admin/import", import_)
    return app


async def _admin(request: web.Request, mcp: McpServer, run) -> web.Response:
    """An admin call: same origin and token rules as /mcp, JSON in, JSON out, 400 with the reason."""
    refusal = mcp.guard(request)
    if refusal is not None:
        return refusal
    try:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("projectRoot"), str) or not body["projectRoot"]:
            raise TaskError("the body must be a JSON object with projectRoot (a string)")
        return web.json_response(await run(registry.normalize_root(body["projectRoot"]), body))
    except TaskError as exc:
        return web.json_response({"error": exc.message}, status=400)
    except ValueError as exc:  # not JSON
        return web.json_response({"error": f"the body must be JSON: {exc}"}, status=400)
