"""MCP servers on real sockets for the protocol tests.

`start_node(...)` starts a real Node (RocksDB, api.py, every tool) on 127.0.0.1:0: the default server.
`mcp_app(...)` serves a bare `McpServer` in an aiohttp app of its own, wired to the real tool registry
and a real TaskService the way api.py wires it, for tests that need what a node does not expose: a
custom call_tool (progress, crashes) or the server's session table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from mcp_helpers import INFO

from taskmaster.config import Config
from taskmaster.mcp.server import McpServer
from taskmaster.node import Node
from taskmaster.tools import registry
from taskmaster.tools.registry import ToolContext


@dataclass
class Served:
    url: str
    server: McpServer
    runner: web.AppRunner

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])


def registry_call_tool(service, tools: str | None) -> tuple[Callable, Callable]:
    """(call_tool, list_tools) bound to the registry and `service`, as api.py binds them."""
    loaded = registry.load_all()
    enabled = registry.select(tools)

    async def call_tool(name, arguments, session):
        def make_ctx(root: str) -> ToolContext:
            return ToolContext(service, root, "test-node", None, session["progress"], session["client"])

        return await registry.call_tool(name, arguments, frozenset(enabled), make_ctx)

    def list_tools():
        return [loaded[name].listing() for name in enabled]

    return call_tool, list_tools


@pytest.fixture
async def start_node(tmp_path):
    """Factory: `await start_node(data_dir=..., http_port=..., **config)` -> a started Node."""
    nodes: list[Node] = []

    async def start(**config) -> Node:
        config.setdefault("data_dir", str(tmp_path / f"node{len(nodes)}"))
        node = Node(Config(**{"name": "test-node", "http_port": 0, "gossip_port": 0, **config}))
        await node.start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        await node.stop()


@pytest.fixture
async def mcp_app(service):
    """Factory: `await mcp_app(tools=..., token=..., call_tool=..., port=...)` -> Served."""
    runners: list[web.AppRunner] = []

    async def start(tools: str | None = None, call_tool=None, port: int = 0, **options) -> Served:
        bound_call, list_tools = registry_call_tool(service, tools)
        server = McpServer(call_tool or bound_call, list_tools, INFO, **options)
        app = web.Application()
        server.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Served(f"http://127.0.0.1:{runner.addresses[0][1]}/mcp", server, runner)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session
