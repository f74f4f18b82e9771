"""A bare MCP-over-HTTP client (aiohttp) for tests that need control the SDK hides:
requests in flight while a process is killed, exact status codes, raw bodies."""

from __future__ import annotations

import itertools

import aiohttp
import orjson

_ids = itertools.count(1)
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class McpHttp:
    def __init__(self, url: str, session: aiohttp.ClientSession, token: str | None = None):
        self.url = url
        self.http = session
        self.headers = dict(HEADERS)
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    async def initialize(self) -> dict:
        body = await self.rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                             "clientInfo": {"name": "tests", "version": "0"}})
        await self.notify("notifications/initialized")
        return body

    async def rpc(self, method: str, params: dict | None = None) -> dict:
        payload = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}}
        async with self.http.post(self.url, data=orjson.dumps(payload), headers=self.headers) as r:
            if "Mcp-Session-Id" in r.headers:
                self.headers["Mcp-Session-Id"] = r.headers["Mcp-Session-Id"]
            r.raise_for_status()
            return orjson.loads(await r.read())

    async def notify(self, method: str) -> None:
        payload = {"jsonrpc": "2.0", "method": method}
        async with self.http.post(self.url, data=orjson.dumps(payload), headers=self.headers) as r:
            await r.read()

    async def call(self, tool: str, **arguments) -> dict:
        """The tool's result: {"data", "tag", ...} on success; raises ToolFailed on isError."""
        body = await self.rpc("tools/call", {"name": tool, "arguments": arguments})
        if "error" in body:
            raise ToolFailed(body["error"]["message"])
        result = body["result"]
        text = result["content"][0]["text"]
        if result.get("isError"):
            raise ToolFailed(text)
        return orjson.loads(text)


class ToolFailed(Exception):
    pass
