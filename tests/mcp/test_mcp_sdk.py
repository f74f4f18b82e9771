"""The official `mcp` SDK as the client: handshake era (ClientSession), the stateless 2026-07-28 era
(`Client(url)` in its default auto mode), tool results, tool errors and JSON-RPC errors."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import pytest
from mcp import Client, ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_helpers import INFO, REFERENCE, stepping_tool

from taskmaster.tasks.state import copy_json
from taskmaster.tools.registry import normalize_root

ROOT = "/tmp/taskmaster-mcp-sdk-project"


@asynccontextmanager
async def session(url: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with create_mcp_http_client(headers=headers) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as s:
        yield s, await s.initialize()


def reference_tool(name: str) -> dict:
    return next(t for t in REFERENCE["tools"] if t["name"] == name)


async def test_initialize_negotiates_and_names_the_server(start_node):
    node = await start_node()
    async with session(node.http_url) as (_, init):
        assert init.protocol_version == "2025-11-25"
        assert init.server_info.name == INFO["name"] and init.server_info.version == INFO["version"]
        assert init.capabilities.tools is not None and init.capabilities.tools.list_changed is False
        assert init.capabilities.logging is not None


@pytest.mark.parametrize("tier", [None, "standard", "all"])
async def test_tools_list_is_the_tier_with_the_reference_schemas(start_node, tier):
    node = await start_node(tools=tier)
    async with session(node.http_url) as (s, _):
        listed = (await s.list_tools()).tools
    ours_too = ["get_operation_status"] if tier else []  # ours: follows async operations (standard, all)
    assert [t.name for t in listed] == REFERENCE["modes"][tier or "core"] + ours_too
    for tool in listed:
        if tool.name in ours_too:
            continue
        ref = reference_tool(tool.name)
        schema = tool.input_schema
        assert tool.description == ref["description"]
        assert schema.get("required") == ref["inputSchema"].get("required")
        extra = set(schema["properties"]) - set(ref["inputSchema"]["properties"])
        # Deliberate additions: get_tasks' fields/limit/offset (reference issue #1137), next_task's claims
        ours = {"get_tasks": {"fields", "limit", "offset"}, "next_task": {"claim", "agent", "leaseSeconds"},
                **dict.fromkeys(("parse_prd", "expand_all", "analyze_project_complexity"), {"async"})}
        assert extra == ours.get(tool.name, set())
        for prop, spec in ref["inputSchema"]["properties"].items():
            assert schema["properties"][prop] == spec, (tool.name, prop)
        assert tool.annotations.model_dump(by_alias=True, exclude_none=True) == ref["annotations"]


async def test_tools_call_success_envelope(start_node, tmp_path):
    node = await start_node()
    async with session(node.http_url) as (s, _):
        result = await s.call_tool("get_tasks", {"projectRoot": str(tmp_path)})
    assert not result.is_error
    body = json.loads(result.content[0].text)
    assert set(body) == {"data", "version", "tag"}
    assert body["tag"] == "master" and body["version"]["name"] == "taskmaster"


async def test_tool_error_is_an_is_error_result(start_node, tmp_path):
    node = await start_node()
    async with session(node.http_url) as (s, _):
        result = await s.call_tool("get_task", {"projectRoot": str(tmp_path), "id": "999"})
    assert result.is_error
    assert result.content[0].text.startswith("Error: ")


async def test_schema_violation_is_32602_naming_the_field(start_node, tmp_path):
    node = await start_node()
    async with session(node.http_url) as (s, _):
        with pytest.raises(MCPError) as bad_status:
            await s.call_tool("set_task_status", {"projectRoot": str(tmp_path), "id": "1", "status": "bogus"})
        with pytest.raises(MCPError) as missing:
            await s.call_tool("get_task", {"projectRoot": str(tmp_path)})
        with pytest.raises(MCPError) as malformed:
            await s.call_tool("get_task", {"projectRoot": str(tmp_path), "id": "1..2"})
    assert bad_status.value.code == -32602
    assert bad_status.value.message.startswith("Tool 'set_task_status' parameter validation failed: status:")
    assert missing.value.code == -32602 and "id: Invalid input" in missing.value.message
    assert malformed.value.code == -32602 and "id: Invalid task ID format" in malformed.value.message


async def test_writes_through_the_sdk_and_bad_input_changes_nothing(start_node, tmp_path):
    node = await start_node(tools="all")
    root = str(tmp_path)

    def stored():
        return copy_json(node.service.view(normalize_root(root)).tasks("master"))

    async with session(node.http_url) as (s, _):
        added = await s.call_tool("add_task", {"projectRoot": root, "title": "T", "description": "D"})
        assert not added.is_error
        before = stored()
        for bad in ({"id": "1", "status": "bogus"}, {"id": "1..2", "status": "done"}, {"status": "done"},
                    {"id": 1, "status": "done"}):
            with pytest.raises(MCPError) as err:
                await s.call_tool("set_task_status", {"projectRoot": root, **bad})
            assert err.value.code == -32602
        missing = await s.call_tool("set_task_status", {"projectRoot": root, "id": "99", "status": "done"})
        assert missing.is_error
        assert stored() == before
        done = await s.call_tool("set_task_status", {"projectRoot": root, "id": "1", "status": "done"})
        assert not done.is_error and stored()[0]["status"] == "done"


async def test_unknown_tool_and_tool_outside_the_tier_are_32601(start_node, tmp_path):
    node = await start_node()  # core tier: add_tag is not offered
    async with session(node.http_url) as (s, _):
        for name in ("no_such_tool", "add_tag"):
            with pytest.raises(MCPError) as err:
                await s.call_tool(name, {"projectRoot": str(tmp_path)})
            assert err.value.code == -32601 and err.value.message == f"Unknown tool: {name}"
        assert (await s.send_ping()) is not None  # the session survives its errors


async def test_token_is_sent_and_required(start_node, tmp_path):
    node = await start_node(token="s3cret")
    async with session(node.http_url, token="s3cret") as (s, _):
        assert not (await s.call_tool("get_tasks", {"projectRoot": str(tmp_path)})).is_error
    with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the 401 differently per version
        async with session(node.http_url, token="wrong"):
            pass


async def test_default_client_speaks_2026_stateless_without_fallback(start_node, tmp_path):
    node = await start_node()
    async with Client(node.http_url) as client:
        assert client.session.protocol_version == "2026-07-28"
        assert client.session.discover_result is not None  # discovered, not an initialize fallback
        assert client.session.server_info.name == "taskmaster"
        names = [t.name for t in (await client.list_tools()).tools]
        ok = await client.call_tool("get_tasks", {"projectRoot": str(tmp_path)})
        failed = await client.call_tool("get_task", {"projectRoot": str(tmp_path), "id": "999"})
        with pytest.raises(MCPError) as invalid:
            await client.call_tool("get_task", {"projectRoot": str(tmp_path)})
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("no_such_tool", {})
    assert names == REFERENCE["modes"]["core"]
    assert json.loads(ok.content[0].text)["tag"] == "master" and not ok.is_error
    assert failed.is_error and failed.content[0].text.startswith("Error: ")
    assert invalid.value.code == -32602 and "id:" in invalid.value.message
    assert unknown.value.code == -32601 and unknown.value.message == "Unknown tool: no_such_tool"


async def test_legacy_mode_client_gets_a_session(start_node, tmp_path):
    node = await start_node()
    async with Client(node.http_url, mode="legacy") as client:
        assert client.session.protocol_version == "2025-11-25"
        assert not (await client.call_tool("get_tasks", {"projectRoot": str(tmp_path)})).is_error


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_progress_reaches_the_sdk_callback(mcp_app, mode):
    served = await mcp_app(call_tool=stepping_tool)
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with Client(served.url, mode=mode) as client:
        result = await client.call_tool("anything", {"steps": 3}, progress_callback=on_progress)
    assert result.content[0].text == "3 steps, progress True"
    assert seen == [(1, 3, "starting"), (2, 3, None), (3, 3, None)]
