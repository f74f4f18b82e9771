"""The HTTP face of a node: /mcp (MCP Streamable HTTP), /health and /metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import __version__
from .mcp.server import McpServer
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
    McpServer(call_tool, list_tools, {"name": "taskmaster", "version": __version__}, token=cfg.token,
              allowed_origins=cfg.allowed_origins, max_body=cfg.max_body_bytes,
              metrics=node.metrics).add_routes(app)

    async def health(_: web.Request) -> web.Response:
        return web.json_response(node.health())

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=node.metrics.render(), content_type="text/plain", charset="utf-8")

    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app
