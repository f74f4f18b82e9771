"""`task-master-mcp` (the stdio bridge) as editors run it: a subprocess driven by the official SDK's
stdio client, bridging to a server on a real socket."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import orjson
import pytest
from aiohttp import web
from mcp import Client, ClientSession, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_helpers import REFERENCE, stepping_tool

from taskmaster.tools.registry import normalize_root

BRIDGE = [sys.executable, "-m", "taskmaster.mcp.stdio"]


def params(*args: str, env: dict | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=BRIDGE[0], args=[*BRIDGE[1:], *args], env=env)


async def test_bridge_serves_the_sdk(start_node, tmp_path):
    node = await start_node()
    async with stdio_client(params("--server", node.http_url)) as (read, write), ClientSession(read, write) as s:
        init = await s.initialize()
        tools = (await s.list_tools()).tools
        ok = await s.call_tool("get_tasks", {"projectRoot": str(tmp_path)})
        failed = await s.call_tool("get_task", {"projectRoot": str(tmp_path), "id": "999"})
        with pytest.raises(MCPError) as invalid:
            await s.call_tool("get_task", {"projectRoot": str(tmp_path), "id": "abc"})
        with pytest.raises(MCPError) as unknown:
            await s.call_tool("no_such_tool", {})
    assert init.protocol_version == "2025-11-25" and init.server_info.name == "taskmaster"
    assert tools[0].name == "get_tasks"
    assert json.loads(ok.content[0].text)["tag"] == "master"
    assert failed.is_error
    assert invalid.value.code == -32602 and "id:" in invalid.value.message
    assert unknown.value.code == -32601


async def test_bridge_carries_the_stateless_era_and_progress(mcp_app):
    served = await mcp_app(call_tool=stepping_tool)
    seen = []

    async def on_progress(progress, total, message):
        seen.append(progress)

    async with Client(params("--server", served.url)) as client:
        version = client.session.protocol_version
        result = await client.call_tool("t", {"steps": 4}, progress_callback=on_progress)
    assert version == "2026-07-28"
    assert result.content[0].text == "4 steps, progress True" and seen == [1, 2, 3, 4]


async def test_bridge_reopens_a_session_the_server_forgot(mcp_app, tmp_path):
    served = await mcp_app()
    async with stdio_client(params("--server", served.url)) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        served.server._sessions.clear()  # as after a daemon restart
        result = await s.call_tool("get_tasks", {"projectRoot": str(tmp_path)})
        assert not result.is_error
        assert len(served.server._sessions) == 1
    assert served.server._sessions == {}  # the bridge ended its session when stdin closed


async def test_bridge_survives_a_daemon_restart(start_node, tmp_path):
    node = await start_node()
    root = str(tmp_path / "project")
    async with stdio_client(params("--server", node.http_url)) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        await node.stop()
        with pytest.raises(MCPError) as down:
            await s.call_tool("get_tasks", {"projectRoot": root})
        assert "cannot reach the taskmaster daemon" in down.value.message
        again = await start_node(data_dir=node.config.data_dir, http_port=node.http_port, tools="all")
        added = await s.call_tool("add_task", {"projectRoot": root, "title": "after", "description": "restart"})
        assert not added.is_error
    assert [t["title"] for t in again.service.view(normalize_root(root)).tasks("master")] == ["after"]


async def test_bridge_passes_the_token(start_node, tmp_path):
    url = (await start_node(token="s3cret")).http_url
    env = {**os.environ, "TASKMASTER_TOKEN": "s3cret"}
    async with stdio_client(params("--server", url, env=env)) as (read, write), \
            ClientSession(read, write) as s:
        await s.initialize()
        assert not (await s.call_tool("get_tasks", {"projectRoot": str(tmp_path)})).is_error
    env.pop("TASKMASTER_TOKEN")
    async with stdio_client(params("--server", url, env=env)) as (read, write), \
            ClientSession(read, write) as s:
        with pytest.raises(MCPError) as refused:
            await s.initialize()
    assert "Authorization: Bearer" in refused.value.message


class RawBridge:
    """The bridge as a bare subprocess: exact lines in, exact lines out."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc

    async def send(self, line: bytes) -> None:
        self.proc.stdin.write(line + b"\n")
        await self.proc.stdin.drain()

    async def answer(self) -> dict:
        line = await asyncio.wait_for(self.proc.stdout.readline(), 10)
        return orjson.loads(line)


@pytest.fixture
async def raw_bridge(start_node):
    node = await start_node()
    proc = await asyncio.create_subprocess_exec(*BRIDGE, "--server", node.http_url, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, limit=1 << 22)
    yield RawBridge(proc)
    if proc.returncode is None:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)


async def test_bridge_answers_garbage_and_keeps_going(raw_bridge):
    await raw_bridge.send(b"not json")
    assert (await raw_bridge.answer())["error"]["code"] == -32700
    await raw_bridge.send(b"[]")
    assert (await raw_bridge.answer())["error"]["code"] == -32600
    await raw_bridge.send(b'[1, {"jsonrpc": "2.0", "id": 4, "method": "ping"}]')
    batch = await raw_bridge.answer()
    assert batch[0]["error"]["code"] == -32600 and batch[1] == {"jsonrpc": "2.0", "id": 4, "result": {}}
    huge = orjson.dumps({"jsonrpc": "2.0", "id": "big", "method": "tools/call",
                         "params": {"name": "get_tasks", "arguments": {"x": "y" * (2 << 20)}}})
    await raw_bridge.send(huge)
    answer = await raw_bridge.answer()
    assert answer["id"] == "big" and "1048576 bytes" in answer["error"]["message"]
    await raw_bridge.send(b"")  # blank lines are skipped, not answered
    await raw_bridge.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    await raw_bridge.send(b'{"jsonrpc": "2.0", "id": 5, "method": "ping"}')
    assert await raw_bridge.answer() == {"jsonrpc": "2.0", "id": 5, "result": {}}


async def test_bridge_exits_cleanly_at_eof(raw_bridge):
    await raw_bridge.send(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}')
    raw_bridge.proc.stdin.close()
    assert (await raw_bridge.answer())["id"] == 1  # in-flight answers are written before exit
    assert await asyncio.wait_for(raw_bridge.proc.wait(), 10) == 0
    assert await raw_bridge.proc.stdout.read() == b""


async def test_bridge_reports_an_unreachable_daemon(tmp_path):
    async with stdio_client(params("--server", "http://127.0.0.1:9/mcp")) as (read, write), \
            ClientSession(read, write) as s:
        with pytest.raises(MCPError) as err:
            await s.initialize()
    assert "cannot reach the taskmaster daemon at http://127.0.0.1:9/mcp" in err.value.message


async def test_bridge_logs_json_lines_without_its_token():
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    proc = await asyncio.create_subprocess_exec(
        *BRIDGE, "--server", "http://127.0.0.1:9/mcp", "--token", "bridge-secret-token", "--log-format", "json",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(orjson.dumps(init) + b"\n"), 30)
    lines = [json.loads(line) for line in err.decode().splitlines()]
    assert any("unreachable" in line["msg"] and line["level"] == "warning" for line in lines)
    assert b"bridge-secret-token" not in err


async def test_embedded_node_without_server(tmp_path):
    data = str(tmp_path / "data")
    root = str(tmp_path / "project")
    env = {**os.environ, "TASK_MASTER_TOOLS": "standard"}
    env.pop("TASKMASTER_SERVER", None)
    async with stdio_client(params("--data-dir", data, env=env)) as (read, write), ClientSession(read, write) as s:
        init = await s.initialize()
        tools = [t.name for t in (await s.list_tools()).tools]
        added = await s.call_tool("add_task", {"projectRoot": root, "title": "kept", "description": "on disk"})
        assert not added.is_error
        # A second embedded node on the same data dir cannot start: it says why instead of hanging.
        second = await asyncio.create_subprocess_exec(*BRIDGE, "--data-dir", data, stdin=asyncio.subprocess.PIPE,
                                                      stderr=asyncio.subprocess.PIPE, env=env)
        _, err = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 1 and b"--server" in err
    assert init.server_info.name == "taskmaster"
    assert tools == REFERENCE["modes"]["standard"] + ["get_operation_status"]  # ours: follows async operations
    async with stdio_client(params("--data-dir", data, env=env)) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        listed = await s.call_tool("get_tasks", {"projectRoot": root})
    assert [t["title"] for t in json.loads(listed.content[0].text)["data"]["tasks"]] == ["kept"]


async def test_bridge_relays_big_progress_answers(mcp_app):
    async def big(name, arguments, session):
        await session["progress"](1, 2, "half")
        return {"content": [{"type": "text", "text": "z" * 300_000}]}  # one SSE line > aiohttp's 128 KiB

    served = await mcp_app(call_tool=big)
    proc = await asyncio.create_subprocess_exec(*BRIDGE, "--server", served.url, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, limit=1 << 22)
    bridge = RawBridge(proc)
    await bridge.send(b'{"jsonrpc": "2.0", "id": 3, "method": "tools/call", '
                      b'"params": {"name": "t", "_meta": {"progressToken": "p"}}}')
    progress, answer = await bridge.answer(), await bridge.answer()
    proc.stdin.close()
    assert progress["params"] == {"progressToken": "p", "progress": 1, "total": 2, "message": "half"}
    assert answer["id"] == 3 and len(answer["result"]["content"][0]["text"]) == 300_000
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_bridge_answers_when_a_stream_ends_without_a_result():
    async def truncated(request):  # a broken server: progress, then the stream just ends
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress",'
                             b'"params":{"progressToken":1,"progress":1}}\n\n')
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/mcp", truncated)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/mcp"
        proc = await asyncio.create_subprocess_exec(*BRIDGE, "--server", url, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE)
        bridge = RawBridge(proc)
        await bridge.send(b'{"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "t"}}')
        assert (await bridge.answer())["method"] == "notifications/progress"
        answer = await bridge.answer()
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        await runner.cleanup()
    assert answer["id"] == 8 and "ended the progress stream before answering" in answer["error"]["message"]


async def test_bridge_stops_on_sigterm(raw_bridge):
    await raw_bridge.send(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}')
    assert (await raw_bridge.answer())["id"] == 1
    raw_bridge.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(raw_bridge.proc.wait(), 10) == 0
