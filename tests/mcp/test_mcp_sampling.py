"""MCP sampling: an AI tool asks the calling client's model, with the official `mcp` SDK as the client.

Handshake era: the `sampling/createMessage` request rides the tools/call's SSE stream and the client
POSTs its response. 2026-07-28: the call answers `input_required` (Multi Round-Trip Requests) and the
client retries with `inputResponses`. Both through a real node (api.py), a bare server where a test
needs its timeout or its counters, and the stdio bridge (daemon and embedded node).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client, ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_helpers import HEADERS

from taskmaster.llm.providers.offline import NAME as OFFLINE
from taskmaster.mcp import server as server_module
from taskmaster.mcp.client_requests import ClientCall, settle
from taskmaster.tasks.state import copy_json
from taskmaster.tools import registry
from taskmaster.tools.registry import ToolContext, normalize_root
from tests.fakes.llm_setup import tasks_json

PRD = """# Shop
1. Product catalogue with prices.
2. Shopping cart, after the catalogue.
"""
CLIENT_MODEL = "client-model-7"
STATELESS = "2026-07-28"
STATELESS_HEADERS = {**HEADERS, "MCP-Protocol-Version": STATELESS}
BRIDGE = [sys.executable, "-m", "taskmaster.mcp.stdio"]


# ---- the client's side ----------------------------------------------------------------------------
class ClientModel:
    """A client's sampling callback: scripted answers (the last one repeats), every request recorded.
    An answer is the model's text, or ErrorData for a client that refuses; `delay` makes a slow model."""

    def __init__(self, *answers: str | types.ErrorData, delay: float = 0.0):
        self.answers = list(answers)
        self.delay = delay
        self.requests: list[types.CreateMessageRequestParams] = []

    async def __call__(self, context, params: types.CreateMessageRequestParams):
        self.requests.append(params)
        if self.delay:
            await asyncio.sleep(self.delay)  # a model that takes its time, not a synchronisation
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, types.ErrorData):
            return answer
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=answer),
                                         model=CLIENT_MODEL, stop_reason="endTurn")


@asynccontextmanager
async def handshake_client(url: str, model: ClientModel | None):
    """An SDK ClientSession (handshake era); it declares sampling only when given a model."""
    async with create_mcp_http_client() as http, streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, sampling_callback=model) as s:
        await s.initialize()
        yield s


def project(tmp_path: Path, *, mcp_role: bool = False) -> str:
    """A project with a PRD; `mcp_role`: its config names the client's model (MCP sampling) as main."""
    root = tmp_path / "proj"
    (root / ".taskmaster" / "docs").mkdir(parents=True)
    (root / ".taskmaster" / "docs" / "prd.txt").write_text(PRD, encoding="utf-8")
    if mcp_role:
        (root / ".taskmaster" / "config.json").write_text(json.dumps(
            {"models": {"main": {"provider": "mcp", "modelId": "mcp-sampling"}}}), encoding="utf-8")
    return str(root)


def stored(service, root: str) -> list:
    view = service.view(normalize_root(root))
    return copy_json(view.tasks("master")) if view.has_tag("master") else []


def data(result) -> dict:
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)["data"]


# ---- handshake era ---------------------------------------------------------------------------------
async def test_parse_prd_uses_the_clients_model_over_sse(start_node, tmp_path):
    node = await start_node()
    root = project(tmp_path)
    model = ClientModel(tasks_json("Catalogue from the client", "Cart from the client"))
    async with handshake_client(node.http_url, model) as s:
        answer = data(await s.call_tool("parse_prd", {"projectRoot": root}))
    assert [t["title"] for t in stored(node.service, root)] == ["Catalogue from the client", "Cart from the client"]
    assert answer["taskIds"] == [1, 2]
    assert answer["provider"]["name"] == "mcp-sampling" and answer["provider"]["model"] == CLIENT_MODEL
    (asked,) = model.requests
    assert asked.include_context == "none" and asked.max_tokens > 0
    assert "product requirements document" in asked.system_prompt
    assert asked.messages[0].role == "user" and "Shopping cart" in asked.messages[0].content.text


# ---- 2026-07-28 ------------------------------------------------------------------------------------
async def test_parse_prd_uses_the_clients_model_by_multi_round_trip(start_node, tmp_path):
    node = await start_node()
    root = project(tmp_path)
    model = ClientModel(tasks_json("Stateless catalogue"))
    async with Client(node.http_url, sampling_callback=model) as client:
        assert client.session.protocol_version == STATELESS
        answer = data(await client.call_tool("parse_prd", {"projectRoot": root}))
    assert [t["title"] for t in stored(node.service, root)] == ["Stateless catalogue"]
    assert (answer["provider"]["name"], answer["provider"]["model"]) == ("mcp-sampling", CLIENT_MODEL)
    assert len(model.requests) == 1 and "Product catalogue" in model.requests[0].messages[0].content.text


SUBTASKS = json.dumps({"subtasks": [{"id": i, "title": f"Step {i}", "description": f"Do step {i}", "details": f"How {i}",
                                      "dependencies": [], "status": "pending"} for i in (1, 2)]})


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_progress_and_sampling_share_the_call_in_both_eras(start_node, tmp_path, mode):
    """expand_all asks the client once per task and reports progress after each: in the handshake era
    both ride one SSE stream; at 2026-07-28 each answer is a retry whose stream carries the next progress."""
    node = await start_node(tools="all")
    root = project(tmp_path)
    async with Client(node.http_url, mode="legacy") as plain:  # two tasks from the offline planner
        assert data(await plain.call_tool("parse_prd", {"projectRoot": root}))["taskIds"] == [1, 2]
    model = ClientModel(SUBTASKS)
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total))

    async with Client(node.http_url, mode=mode, sampling_callback=model) as client:
        answer = data(await client.call_tool("expand_all", {"projectRoot": root}, progress_callback=on_progress))
    assert answer["details"]["expandedCount"] == 2 and answer["provider"]["name"] == "mcp-sampling"
    assert len(model.requests) == 2 and seen == [(1, 2), (2, 2)]
    assert [[s["title"] for s in t["subtasks"]] for t in stored(node.service, root)] == [["Step 1", "Step 2"]] * 2


# ---- answers that cannot be used ---------------------------------------------------------------
@pytest.mark.parametrize("era", ["handshake", "stateless"])
async def test_garbage_gets_one_repair_then_a_clear_error_and_changes_nothing(start_node, tmp_path, era):
    node = await start_node()
    root = project(tmp_path, mcp_role=True)
    model = ClientModel("Sure! Here are your tasks: 1. build it")
    if era == "handshake":
        async with handshake_client(node.http_url, model) as s:
            result = await s.call_tool("parse_prd", {"projectRoot": root})
    else:
        async with Client(node.http_url, sampling_callback=model) as client:
            result = await client.call_tool("parse_prd", {"projectRoot": root})
    text = result.content[0].text
    assert result.is_error and text.startswith("Error: ") and "unusable answer for parse_prd twice" in text
    assert len(model.requests) == 2, "one repair retry"
    repair = model.requests[1].messages
    assert [m.role for m in repair] == ["user", "assistant", "user"] and "not valid JSON" in repair[-1].content.text
    assert stored(node.service, root) == []


async def test_a_client_that_refuses_is_a_clear_error(start_node, tmp_path):
    node = await start_node()
    root = project(tmp_path, mcp_role=True)
    model = ClientModel(types.ErrorData(code=-1, message="User rejected sampling request"))
    async with handshake_client(node.http_url, model) as s:
        result = await s.call_tool("parse_prd", {"projectRoot": root})
    assert result.is_error and "the client refused: User rejected sampling request" in result.content[0].text
    assert stored(node.service, root) == []


async def test_with_no_model_configured_unusable_sampling_leaves_the_offline_planner(start_node, tmp_path):
    """The router's rule (llm/router.py): with no configured role, the client's model comes before
    the offline planner, and the planner answers when sampling fails; its note says why."""
    node = await start_node()
    root = project(tmp_path)
    model = ClientModel("not json at all")
    async with handshake_client(node.http_url, model) as s:
        answer = data(await s.call_tool("parse_prd", {"projectRoot": root}))
    assert answer["provider"]["name"] == OFFLINE and "MCP sampling failed" in answer["provider"]["note"]
    assert len(model.requests) == 2 and len(stored(node.service, root)) == 2


@pytest.mark.parametrize("era", ["handshake", "stateless"])
async def test_a_client_without_sampling_gets_the_offline_planner(start_node, tmp_path, era):
    node = await start_node()
    root = project(tmp_path)
    if era == "handshake":
        async with handshake_client(node.http_url, None) as s:
            answer = data(await s.call_tool("parse_prd", {"projectRoot": root}))
    else:
        async with Client(node.http_url) as client:
            answer = data(await client.call_tool("parse_prd", {"projectRoot": root}))
    assert answer["provider"]["name"] == OFFLINE and "sampling" not in (answer["provider"]["note"] or "")
    assert [t["id"] for t in stored(node.service, root)] == [1, 2]


# ---- timeouts, late and stray answers, sessions that end (a bare server: its clock and counters) ----
def sampling_call_tool(service):
    """call_tool for a bare McpServer that hands the session's sampler to tools, as api.py does."""
    enabled = frozenset(registry.select(None))

    async def call_tool(name, arguments, session):
        def make_ctx(root: str) -> ToolContext:
            return ToolContext(service, root, "test-node", None, session["progress"], session["client"],
                               sampler=session["sampler"])

        return await registry.call_tool(name, arguments, enabled, make_ctx)

    return call_tool


async def until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_client_that_answers_too_late_times_out_and_its_answer_is_counted(mcp_app, service, tmp_path):
    served = await mcp_app(call_tool=sampling_call_tool(service), client_timeout=0.3)
    root = project(tmp_path, mcp_role=True)
    model = ClientModel(tasks_json("Too late"), delay=1.0)
    async with handshake_client(served.url, model) as s:
        started = time.monotonic()
        result = await s.call_tool("parse_prd", {"projectRoot": root})
        assert time.monotonic() - started < 1.0
        assert result.is_error and "did not answer sampling/createMessage within 0.3 s" in result.content[0].text
        await until(lambda: served.server.stray_replies == 1)  # the late answer arrived and was ignored
    assert stored(service, root) == []


def initialize(capabilities: dict) -> dict:
    return {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities,
                       "clientInfo": {"name": "raw", "version": "0"}}}


async def sse_messages(response: aiohttp.ClientResponse):
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if line.startswith(b"data: "):
                    yield json.loads(line[6:])


@pytest.mark.parametrize("ending", ["deleted", "evicted"])
async def test_a_session_that_ends_fails_its_pending_request_and_stray_answers_are_counted(
        mcp_app, service, http, tmp_path, monkeypatch, ending):
    monkeypatch.setattr(server_module, "MAX_SESSIONS", 1)  # a second session evicts the first
    served = await mcp_app(call_tool=sampling_call_tool(service))
    root = project(tmp_path, mcp_role=True)
    async with http.post(served.url, json=initialize({"sampling": {}}), headers=HEADERS) as r:
        session = {**HEADERS, "Mcp-Session-Id": r.headers["Mcp-Session-Id"]}
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "parse_prd", "arguments": {"projectRoot": root}}}
    async with http.post(served.url, json=call, headers=session) as stream:
        assert stream.content_type == "text/event-stream"
        messages = sse_messages(stream)
        asked = await anext(messages)
        assert asked["method"] == "sampling/createMessage" and isinstance(asked["id"], str)
        params = asked["params"]
        assert params["includeContext"] == "none" and params["maxTokens"] > 0 and params["systemPrompt"]
        assert params["messages"][0]["role"] == "user" and params["messages"][0]["content"]["type"] == "text"
        stray = {"jsonrpc": "2.0", "id": "nobody-asked", "result": {"role": "assistant", "model": "m",
                                                                     "content": {"type": "text", "text": "{}"}}}
        async with http.post(served.url, json=stray, headers=session) as r:
            assert r.status == 202
        assert served.server.stray_replies == 1
        if ending == "deleted":
            async with http.delete(served.url, headers=session) as r:
                assert r.status == 204
        else:
            async with http.post(served.url, json=initialize({}), headers=HEADERS) as r:
                assert r.status == 200
        answer = await anext(messages)
    assert answer["id"] == 7 and answer["result"]["isError"]
    assert "the MCP session ended before the client answered" in answer["result"]["content"][0]["text"]
    assert stored(service, root) == []


async def test_a_client_that_leaves_the_stream_fails_the_request_before_its_timeout(mcp_app, service, http,
                                                                                   tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "SSE_KEEPALIVE", 0.05)  # find out soon that the stream is gone
    served = await mcp_app(call_tool=sampling_call_tool(service), client_timeout=30.0)
    root = project(tmp_path, mcp_role=True)
    async with http.post(served.url, json=initialize({"sampling": {}}), headers=HEADERS) as r:
        session_id = r.headers["Mcp-Session-Id"]
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "parse_prd", "arguments": {"projectRoot": root}}}
    pending = served.server._sessions[session_id]["pending"]
    async with http.post(served.url, json=call, headers={**HEADERS, "Mcp-Session-Id": session_id}) as stream:
        assert (await anext(sse_messages(stream)))["method"] == "sampling/createMessage"
        assert len(pending) == 1
        stream.close()  # the client goes away without answering
    await until(lambda: not pending)  # failed when a keepalive found the stream closed, not after 30 s
    assert stored(service, root) == []


# ---- 2026-07-28 on the wire: retries, their mistakes, and expiry -----------------------------------
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}}


async def stateless_call(http, url: str, request_id: int, root: str, **retry) -> tuple[int, dict]:
    params = {"name": "parse_prd", "arguments": {"projectRoot": root}, "_meta": ENVELOPE, **retry}
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    async with http.post(url, json=message, headers=STATELESS_HEADERS) as r:
        assert r.content_type == "application/json"
        return r.status, await r.json()


def sampled(text: str) -> dict:
    return {"role": "assistant", "content": {"type": "text", "text": text}, "model": "raw-model", "stopReason": "endTurn"}


async def test_stateless_retries_are_checked_and_a_missing_answer_is_asked_again(mcp_app, service, http, tmp_path):
    served = await mcp_app(call_tool=sampling_call_tool(service))
    root = project(tmp_path, mcp_role=True)
    status, first = await stateless_call(http, served.url, 1, root)
    result = first["result"]
    assert status == 200 and result["resultType"] == "input_required"
    ((key, asked),) = result["inputRequests"].items()
    assert asked["method"] == "sampling/createMessage" and asked["params"]["messages"][0]["content"]["type"] == "text"
    state = result["requestState"]

    other = {"name": "parse_prd", "arguments": {"projectRoot": root, "numTasks": "3"}, "_meta": ENVELOPE,
             "requestState": state, "inputResponses": {key: sampled(tasks_json("X"))}}
    async with http.post(served.url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": other},
                         headers=STATELESS_HEADERS) as r:
        assert r.status == 400 and "belongs to another tool call" in (await r.json())["error"]["message"]
    status, bad = await stateless_call(http, served.url, 3, root, requestState=state, inputResponses=["x"])
    assert status == 400 and bad["error"]["code"] == -32602 and "inputResponses must be an object" in bad["error"]["message"]
    assert stored(service, root) == []

    status, again = await stateless_call(http, served.url, 4, root, requestState=state, inputResponses={})
    assert again["id"] == 4 and again["result"]["resultType"] == "input_required"
    assert list(again["result"]["inputRequests"]) == [key], "the unanswered request is asked again"
    state2 = again["result"]["requestState"]

    status, done = await stateless_call(http, served.url, 5, root, requestState=state2,
                                        inputResponses={key: sampled(tasks_json("Raw one", "Raw two"))})
    assert status == 200 and done["id"] == 5 and done["result"]["resultType"] == "complete"
    body = json.loads(done["result"]["content"][0]["text"])
    assert body["data"]["provider"]["name"] == "mcp-sampling" and body["data"]["provider"]["model"] == "raw-model"
    assert [t["title"] for t in stored(service, root)] == ["Raw one", "Raw two"]

    status, spent = await stateless_call(http, served.url, 6, root, requestState=state2, inputResponses={})
    assert status == 400 and "requestState is unknown or expired" in spent["error"]["message"]


@pytest.mark.parametrize(("answer", "says"), [
    ("not an object", "is not an object"),
    ({"role": "assistant", "model": "m", "content": {"type": "image", "data": "AA==", "mimeType": "image/png"}},
     "holds no text content"),
    ({"role": "assistant", "model": "m"}, "holds no text content"),
])
async def test_a_malformed_sampling_answer_is_a_clear_error(mcp_app, service, http, tmp_path, answer, says):
    served = await mcp_app(call_tool=sampling_call_tool(service))
    root = project(tmp_path, mcp_role=True)
    _, first = await stateless_call(http, served.url, 1, root)
    ((key, _),) = first["result"]["inputRequests"].items()
    status, done = await stateless_call(http, served.url, 2, root, requestState=first["result"]["requestState"],
                                        inputResponses={key: answer})
    result = done["result"]
    assert status == 200 and result["isError"] and says in result["content"][0]["text"]
    assert stored(service, root) == []


async def test_a_stateless_call_nobody_retries_expires(mcp_app, service, http, tmp_path):
    served = await mcp_app(call_tool=sampling_call_tool(service), client_timeout=0.2)
    root = project(tmp_path, mcp_role=True)
    _, first = await stateless_call(http, served.url, 1, root)
    state = first["result"]["requestState"]
    ((key, _),) = first["result"]["inputRequests"].items()
    await until(lambda: not served.server._parked)  # the call gave up waiting and ended
    status, late = await stateless_call(http, served.url, 2, root, requestState=state,
                                        inputResponses={key: sampled(tasks_json("Late"))})
    assert status == 400 and late["error"]["code"] == -32602 and "unknown or expired" in late["error"]["message"]
    assert stored(service, root) == []


@settings(deadline=None, max_examples=40)
@given(noise=st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=8))
def test_a_reply_matches_its_request_by_id_exactly_once(noise):
    async def run():
        pending: dict = {}
        call = ClientCall("parse_prd", {}, mrtr=False, pending=pending, timeout=5.0)
        asked = asyncio.ensure_future(call.ask("sampling/createMessage", {}))
        await until(lambda: call.outbox)
        request_id = call.outbox[0]["id"]
        assert not any(settle(pending.get(i), {"id": i, "result": {}}) for i in noise)  # others' ids
        assert settle(pending.get(request_id), {"id": request_id, "result": {"model": "m"}})
        assert await asked == {"model": "m"}
        assert not settle(pending.get(request_id), {"id": request_id, "result": {}})  # a second answer
        assert pending == {}

    asyncio.run(run())


# ---- the stdio bridge --------------------------------------------------------------------------
def bridge(*args: str) -> StdioServerParameters:
    return StdioServerParameters(command=BRIDGE[0], args=[*BRIDGE[1:], *args])


async def test_bridge_to_a_daemon_carries_sampling_requests_and_answers(start_node, tmp_path):
    node = await start_node()
    root = project(tmp_path)
    model = ClientModel(tasks_json("Bridged"))
    async with stdio_client(bridge("--server", node.http_url)) as (read, write), \
            ClientSession(read, write, sampling_callback=model) as s:
        await s.initialize()
        answer = data(await s.call_tool("parse_prd", {"projectRoot": root}))
    assert answer["provider"]["name"] == "mcp-sampling" and len(model.requests) == 1
    assert [t["title"] for t in stored(node.service, root)] == ["Bridged"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_bridge_with_an_embedded_node_carries_sampling_in_both_eras(tmp_path, mode):
    root = project(tmp_path)
    model = ClientModel(tasks_json(f"Embedded {mode}"))
    async with Client(bridge("--data-dir", str(tmp_path / "data")), mode=mode, sampling_callback=model) as client:
        answer = data(await client.call_tool("parse_prd", {"projectRoot": root}))
        listed = data(await client.call_tool("get_tasks", {"projectRoot": root}))
    assert (answer["provider"]["name"], answer["provider"]["model"]) == ("mcp-sampling", CLIENT_MODEL)
    assert [t["title"] for t in listed["tasks"]] == [f"Embedded {mode}"]
