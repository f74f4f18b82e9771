"""Raw HTTP against /mcp: garbage, limits, auth, origins, sessions, both eras, SSE progress.

After every bad request the server must still answer a normal call (`assert_alive`)."""

from __future__ import annotations

import asyncio
import zlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp_helpers import HEADERS, json_values, stepping_tool

STATELESS = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}}


async def post(http, url, body, headers=None, raw=False):
    """(status, headers, decoded body or None)."""
    data = body if raw else orjson.dumps(body)
    async with http.post(url, data=data, headers={**HEADERS, **(headers or {})}) as r:
        payload = await r.read()
        return r.status, r.headers, orjson.loads(payload) if payload else None


def rpc(method, params=None, id=1):
    message = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


async def assert_alive(http, url, tmp_path):
    status, _, body = await post(http, url, rpc("tools/call", {"name": "get_tasks",
                                                               "arguments": {"projectRoot": str(tmp_path)}}))
    assert status == 200 and "result" in body and not body["result"].get("isError"), body


async def initialize(http, url, version="2025-11-25", headers=None):
    status, h, body = await post(http, url, rpc("initialize", {"protocolVersion": version, "capabilities": {},
                                                              "clientInfo": {"name": "raw", "version": "0"}}),
                                 headers)
    assert status == 200, body
    return h["Mcp-Session-Id"], body["result"]


@pytest.fixture
async def url(start_node):
    return (await start_node()).http_url


# ---- garbage --------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"not json", b"{", b'{"jsonrpc": "2.0", "method": "ping", "id": 1',
                                 b"\xff\xfe\x00", b"[" * 5000 + b"]" * 5000, b"", b'{"id": 1e400}'])
async def test_not_json_is_32700(http, url, tmp_path, raw):
    status, _, body = await post(http, url, raw, raw=True)
    assert status == 400 and body["error"]["code"] == -32700 and body["id"] is None
    await assert_alive(http, url, tmp_path)


@pytest.mark.parametrize("message", [42, "ping", None, True, {}, {"foo": 1},
                                     {"jsonrpc": "1.0", "id": 1, "method": "ping"},
                                     {"jsonrpc": "2.0", "id": 1}, {"jsonrpc": "2.0", "id": 1, "method": 7},
                                     {"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"},
                                     {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
                                     {"jsonrpc": "2.0", "id": True, "method": "ping"},
                                     {"jsonrpc": "2.0", "id": None, "method": "ping"}])
async def test_json_that_is_not_json_rpc_is_32600(http, url, tmp_path, message):
    status, _, body = await post(http, url, message)
    assert status == 400 and body["error"]["code"] == -32600, body
    await assert_alive(http, url, tmp_path)


async def test_invalid_request_keeps_a_usable_id(http, url):
    _, _, body = await post(http, url, {"jsonrpc": "1.0", "id": "abc", "method": "ping"})
    assert body["id"] == "abc" and body["error"]["code"] == -32600


async def test_params_that_are_not_an_object_are_32602(http, url, tmp_path):
    status, _, body = await post(http, url, rpc("tools/list", [1, 2]))
    assert status == 200 and body["error"]["code"] == -32602 and body["id"] == 1
    await assert_alive(http, url, tmp_path)


async def test_batch_of_junk_answers_one_error_per_element(http, url, tmp_path):
    status, _, body = await post(http, url, [1, {"foo": 1}, "x", None, [], {"jsonrpc": "2.0", "id": 9}])
    assert status == 200 and len(body) == 6
    assert all(a["error"]["code"] == -32600 and a["id"] is None for a in body[:5])
    assert body[5]["error"]["code"] == -32600 and body[5]["id"] == 9
    await assert_alive(http, url, tmp_path)


async def test_empty_batch_is_one_32600(http, url, tmp_path):
    status, _, body = await post(http, url, [])
    assert status == 400 and body["error"]["code"] == -32600 and "empty batch" in body["error"]["message"]
    await assert_alive(http, url, tmp_path)


async def test_mixed_batch_answers_requests_in_order_and_skips_notifications(http, url, tmp_path):
    batch = [rpc("ping", id="a"), {"jsonrpc": "2.0", "method": "notifications/initialized"}, 17,
             rpc("tools/call", {"name": "get_tasks", "arguments": {"projectRoot": str(tmp_path)}}, id="b"),
             rpc("nope", id="c"), rpc("initialize", {"protocolVersion": "2025-03-26"}, id="d")]
    status, _, body = await post(http, url, batch)
    assert status == 200
    assert [a["id"] for a in body] == ["a", None, "b", "c", "d"]
    assert body[0]["result"] == {} and "content" in body[2]["result"]
    assert [body[i]["error"]["code"] for i in (1, 3, 4)] == [-32600, -32601, -32600]


async def test_batch_of_notifications_only_is_202(http, url):
    status, _, body = await post(http, url, [{"jsonrpc": "2.0", "method": "notifications/initialized"}])
    assert status == 202 and body is None


async def test_body_over_the_limit_is_413_naming_it(http, start_node, tmp_path):
    node = await start_node(max_body_bytes=4096)
    big = rpc("tools/call", {"name": "add_task", "arguments": {"title": "x" * 5000}})
    status, _, body = await post(http, node.http_url, big)
    assert status == 413 and body["error"]["code"] == -32600 and "4096 bytes" in body["error"]["message"]
    await assert_alive(http, node.http_url, tmp_path)


async def test_default_limit_is_1_mib_even_without_content_length(http, url, tmp_path):
    async def chunks():  # chunked transfer: no Content-Length to refuse early
        for _ in range(17):
            yield b" " * 65536

    async with http.post(url, data=chunks(), headers=HEADERS) as r:
        body = orjson.loads(await r.read())
    assert r.status == 413 and "1048576 bytes (1 MiB)" in body["error"]["message"]
    await assert_alive(http, url, tmp_path)


async def test_compressed_bomb_is_413(http, url, tmp_path):
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    zeros = b"0" * (1 << 20)
    body = b"".join([packer.compress(b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "'),
                     *(packer.compress(zeros) for _ in range(64)), packer.compress(b'"}}'), packer.flush()])
    assert len(body) < 100_000
    async with http.post(url, data=body, headers={**HEADERS, "Content-Encoding": "gzip"}) as r:
        answer = orjson.loads(await r.read())
    assert r.status == 413 and "1048576 bytes" in answer["error"]["message"]
    await assert_alive(http, url, tmp_path)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(http, url, tmp_path, content_type):
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    async with http.post(url, data=orjson.dumps(rpc("ping")), headers=headers,
                         skip_auto_headers=["Content-Type"]) as r:
        body = orjson.loads(await r.read())
    assert r.status == 415 and "application/json" in body["error"]["message"]
    await assert_alive(http, url, tmp_path)


async def test_accept_is_lenient(http, url):
    status, h, body = await post(http, url, rpc("ping"), {"Accept": "text/html"})
    assert status == 200 and h["Content-Type"] == "application/json" and body["result"] == {}


# ---- auth and origins -----------------------------------------------------------------------------

@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic czNjcmV0", "Bearer", "s3cret", "Bearer s3cret2"])
async def test_token_required_when_set(http, start_node, auth):
    url = (await start_node(token="s3cret")).http_url
    status, h, body = await post(http, url, rpc("ping"), {"Authorization": auth} if auth else None)
    assert status == 401 and h["WWW-Authenticate"].startswith("Bearer")
    assert ("invalid_token" in h["WWW-Authenticate"]) == (auth is not None)
    assert "Authorization: Bearer" in body["error"]["message"]
    async with http.get(url) as r:  # every method on /mcp, not just POST
        assert r.status == 401
    status, _, body = await post(http, url, rpc("ping"), {"Authorization": "bearer s3cret"})
    assert status == 200 and body["result"] == {}


@pytest.mark.parametrize("origin", ["http://evil.example", "https://127.0.0.1.evil.example", "null",
                                    "http://10.0.0.1:7070", "not a url at all", "http://[::ffff:8.8.8.8]"])
async def test_foreign_origin_is_403(http, url, tmp_path, origin):
    status, _, body = await post(http, url, rpc("ping"), {"Origin": origin})
    assert status == 403 and "Origin" in body["error"]["message"]
    await assert_alive(http, url, tmp_path)


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1", "http://127.8.9.10:1",
                                    "http://[::1]:6274", "HTTP://LOCALHOST"])
async def test_loopback_origins_pass(http, url, origin):
    status, _, _ = await post(http, url, rpc("ping"), {"Origin": origin})
    assert status == 200


async def test_allowed_origins_pass(http, start_node):
    url = (await start_node(allowed_origins=("https://app.example/",))).http_url
    assert (await post(http, url, rpc("ping"), {"Origin": "https://app.example"}))[0] == 200
    assert (await post(http, url, rpc("ping"), {"Origin": "https://other.example"}))[0] == 403


# ---- sessions and the handshake era ---------------------------------------------------------------

@pytest.mark.parametrize(("asked", "answered"), [("2024-11-05", "2024-11-05"), ("2025-03-26", "2025-03-26"),
                                                 ("2025-06-18", "2025-06-18"), ("2025-11-25", "2025-11-25"),
                                                 ("2099-01-01", "2025-11-25"), ("2026-07-28", "2025-11-25")])
async def test_initialize_echoes_supported_versions(http, url, asked, answered):
    session, result = await initialize(http, url, asked)
    assert result["protocolVersion"] == answered and len(session) >= 32
    assert result["serverInfo"]["name"] == "taskmaster"
    assert result["capabilities"] == {"tools": {"listChanged": False}, "logging": {}}


async def test_session_lifecycle(http, url, tmp_path):
    session, _ = await initialize(http, url)
    headers = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    status, _, body = await post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
    assert status == 202 and body is None
    status, _, body = await post(http, url, rpc("logging/setLevel", {"level": "warning"}), headers)
    assert status == 200 and body["result"] == {}
    status, _, body = await post(http, url, rpc("logging/setLevel", {"level": "loud"}), headers)
    assert body["error"]["code"] == -32602
    async with http.get(url, headers=headers) as r:
        assert r.status == 405 and "POST" in r.headers["Allow"]
    async with http.delete(url, headers=headers) as r:
        assert r.status == 204
    status, _, body = await post(http, url, rpc("ping"), headers)
    assert status == 404 and "initialize" in body["error"]["message"]
    async with http.delete(url, headers=headers) as r:
        assert r.status == 404
    await assert_alive(http, url, tmp_path)


async def test_unknown_session_is_404_but_initialize_opens_a_new_one(http, url, tmp_path):
    stale = {"Mcp-Session-Id": "no-such-session"}
    status, _, body = await post(http, url, rpc("tools/list"), stale)
    assert status == 404 and body["error"]["code"] == -32600
    status, _, _ = await post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, stale)
    assert status == 404
    session, _ = await initialize(http, url, headers=stale)
    assert session != "no-such-session"
    await assert_alive(http, url, tmp_path)


async def test_delete_without_session_is_400(http, url):
    async with http.delete(url) as r:
        assert r.status == 400


async def test_sessionless_requests_are_served(http, url):
    status, _, body = await post(http, url, rpc("tools/list"))
    assert status == 200 and [t["name"] for t in body["result"]["tools"]][0] == "get_tasks"


async def test_sessions_are_bounded(http, mcp_app, monkeypatch):
    from taskmaster.mcp import server as server_module

    monkeypatch.setattr(server_module, "MAX_SESSIONS", 3)
    served = await mcp_app()
    first, _ = await initialize(http, served.url)
    for _ in range(3):
        await initialize(http, served.url)
    assert len(served.server._sessions) == 3
    assert (await post(http, served.url, rpc("ping"), {"Mcp-Session-Id": first}))[0] == 404


async def test_unsupported_protocol_header_is_400(http, url, tmp_path):
    status, _, body = await post(http, url, rpc("ping"), {"MCP-Protocol-Version": "1999-01-01"})
    assert status == 400 and body["error"]["code"] == -32022
    assert body["error"]["data"]["requested"] == "1999-01-01" and STATELESS in body["error"]["data"]["supported"]
    await assert_alive(http, url, tmp_path)


async def test_unknown_method_is_32601_with_200_in_the_handshake_era(http, url):
    status, _, body = await post(http, url, rpc("resources/list"))
    assert status == 200 and body["error"] == {"code": -32601, "message": "Method not found: resources/list"}


@pytest.mark.parametrize("params", [{}, {"name": 5}, {"name": ""}])
async def test_tools_call_without_a_name_is_32602(http, url, params):
    _, _, body = await post(http, url, rpc("tools/call", params))
    assert body["error"]["code"] == -32602 and "name" in body["error"]["message"]


@pytest.mark.parametrize("arguments", [None, [], "x", 5])
async def test_tools_call_with_non_object_arguments_is_32602(http, url, arguments):
    _, _, body = await post(http, url, rpc("tools/call", {"name": "get_tasks", "arguments": arguments}))
    assert body["error"]["code"] == -32602


async def test_a_crashing_tool_is_32603_and_the_server_lives(http, mcp_app, tmp_path):
    async def crash(name, arguments, session):
        raise RuntimeError("boom")

    served = await mcp_app(call_tool=crash)
    status, _, body = await post(http, served.url, rpc("tools/call", {"name": "x"}))
    assert status == 200 and body["error"]["code"] == -32603 and "boom" not in body["error"]["message"]
    status, _, body = await post(http, served.url, rpc("ping"))
    assert body["result"] == {}


async def test_errors_are_counted_in_metrics(http, start_node):
    node = await start_node()
    await post(http, node.http_url, b"nope", raw=True)
    await post(http, node.http_url, rpc("nope"))
    await post(http, node.http_url, rpc("nope"))
    metrics = node.metrics
    assert metrics.registry.get_sample_value("taskmaster_jsonrpc_errors_total", {"code": "-32700"}) == 1
    assert metrics.registry.get_sample_value("taskmaster_jsonrpc_errors_total", {"code": "-32601"}) == 2
    async with http.get(node.http_url.removesuffix("/mcp") + "/metrics") as r:
        assert 'taskmaster_jsonrpc_errors_total{code="-32700"} 1.0' in await r.text()


# ---- the stateless 2026-07-28 era -----------------------------------------------------------------

def modern(method, params=None, id=1, headers=None):
    params = {**(params or {}), "_meta": META}
    return rpc(method, params, id), {"MCP-Protocol-Version": STATELESS, "Mcp-Method": method, **(headers or {})}


async def test_discover(http, url):
    status, h, body = await post(http, url, *modern("server/discover"))
    result = body["result"]
    assert status == 200 and "Mcp-Session-Id" not in h
    assert STATELESS in result["supportedVersions"] and "2025-11-25" in result["supportedVersions"]
    assert result["resultType"] == "complete" and result["ttlMs"] == 0 and result["cacheScope"] == "private"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "taskmaster"
    assert result["capabilities"]["tools"] == {"listChanged": False}


async def test_stateless_tools_list_and_call(http, url, tmp_path):
    _, _, listed = await post(http, url, *modern("tools/list"))
    assert listed["result"]["tools"][0]["name"] == "get_tasks" and listed["result"]["resultType"] == "complete"
    message, headers = modern("tools/call", {"name": "get_tasks", "arguments": {"projectRoot": str(tmp_path)}},
                              headers={"Mcp-Name": "get_tasks"})
    status, _, body = await post(http, url, message, headers)
    assert status == 200 and body["result"]["resultType"] == "complete" and "content" in body["result"]
    message, headers = modern("tools/call", {"name": "get_tasks", "arguments": {"projectRoot": str(tmp_path)}},
                              headers={"Mcp-Name": "=?base64?Z2V0X3Rhc2tz?="})  # "get_tasks", encoded
    assert (await post(http, url, message, headers))[0] == 200


@pytest.mark.parametrize(("change", "code", "status"), [
    ({"Mcp-Method": "tools/list"}, -32020, 400),
    ({"Mcp-Name": "get_task"}, -32020, 400),
    ({"meta": {"io.modelcontextprotocol/protocolVersion": "2025-11-25",
               "io.modelcontextprotocol/clientCapabilities": {}}}, -32020, 400),
    ({"meta": {"io.modelcontextprotocol/protocolVersion": STATELESS}}, -32602, 400),
    ({"meta": None}, -32602, 400),
])
async def test_stateless_envelope_is_checked(http, url, tmp_path, change, code, status):
    message, headers = modern("tools/call", {"name": "get_tasks", "arguments": {"projectRoot": str(tmp_path)}})
    if "meta" in change:
        if change["meta"] is None:
            del message["params"]["_meta"]
        else:
            message["params"]["_meta"] = change["meta"]
    else:
        headers.update(change)
    got, _, body = await post(http, url, message, headers)
    assert (got, body["error"]["code"]) == (status, code)
    await assert_alive(http, url, tmp_path)


async def test_stateless_unknown_method_and_initialize_are_404(http, url):
    for method in ("resources/list", "initialize", "logging/setLevel"):
        status, _, body = await post(http, url, *modern(method))
        assert status == 404 and body["error"]["code"] == -32601, method


async def test_stateless_batch_and_notification(http, url):
    message, headers = modern("tools/list")
    status, _, body = await post(http, url, [message], headers)
    assert status == 400 and body["error"]["code"] == -32600
    status, _, body = await post(http, url, {"jsonrpc": "2.0", "method": "notifications/cancelled"}, headers)
    assert status == 202 and body is None


async def test_stateless_ignores_session_ids(http, url):
    message, headers = modern("tools/list", headers={"Mcp-Session-Id": "whatever"})
    assert (await post(http, url, message, headers))[0] == 200


# ---- SSE progress ---------------------------------------------------------------------------------

def sse_messages(payload: bytes) -> list[dict]:
    events = [e for e in payload.decode().split("\n\n") if e.strip()]
    out = []
    for event in events:
        lines = event.split("\n")
        if lines[0].startswith(":"):
            continue
        assert lines[0] == "event: message"
        out.append(orjson.loads(lines[1].removeprefix("data: ")))
    return out


async def test_progress_streams_as_sse(http, mcp_app):
    served = await mcp_app(call_tool=stepping_tool)
    message = rpc("tools/call", {"name": "t", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}}, id=7)
    async with http.post(served.url, data=orjson.dumps(message), headers=HEADERS) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
        messages = sse_messages(await r.read())
    assert [m.get("method") for m in messages] == ["notifications/progress"] * 3 + [None]
    assert messages[0]["params"] == {"progressToken": "tok", "progress": 1, "total": 3, "message": "starting"}
    assert messages[2]["params"] == {"progressToken": "tok", "progress": 3, "total": 3}
    assert messages[3]["id"] == 7 and messages[3]["result"]["content"][0]["text"] == "3 steps, progress True"


async def test_silent_call_with_a_progress_token_answers_json(http, mcp_app):
    served = await mcp_app(call_tool=stepping_tool)
    message = rpc("tools/call", {"name": "t", "arguments": {"steps": 0}, "_meta": {"progressToken": 1}})
    status, h, body = await post(http, served.url, message)
    assert status == 200 and h["Content-Type"] == "application/json" and "result" in body


async def test_no_sse_without_accept_or_token(http, mcp_app):
    served = await mcp_app(call_tool=stepping_tool)
    message = rpc("tools/call", {"name": "t", "arguments": {"steps": 2}, "_meta": {"progressToken": 1}})
    status, h, body = await post(http, served.url, message, {"Accept": "application/json"})
    assert h["Content-Type"] == "application/json"
    assert body["result"]["content"][0]["text"] == "2 steps, progress False"
    message = rpc("tools/call", {"name": "t", "arguments": {"steps": 2}})
    status, h, body = await post(http, served.url, message)
    assert body["result"]["content"][0]["text"] == "2 steps, progress False"


async def test_keepalive_while_a_long_call_is_silent(http, mcp_app, monkeypatch):
    from taskmaster.mcp import server as server_module

    monkeypatch.setattr(server_module, "SSE_KEEPALIVE", 0.05)
    release = asyncio.Event()

    async def slow(name, arguments, session):
        await release.wait()
        return {"content": [{"type": "text", "text": "done"}]}

    served = await mcp_app(call_tool=slow)
    message = rpc("tools/call", {"name": "t", "_meta": {"progressToken": "k"}})
    async with http.post(served.url, data=orjson.dumps(message), headers=HEADERS) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        first = await r.content.readuntil(b"\n\n")
        release.set()
        rest = await r.read()
    assert first == b": keepalive\n\n"
    assert sse_messages(rest)[-1]["result"]["content"][0]["text"] == "done"


async def test_client_leaving_a_stream_does_not_stop_the_call(http, mcp_app):
    finished = asyncio.Event()
    gate = asyncio.Event()

    async def tool(name, arguments, session):
        await session["progress"](1, None, None)
        await gate.wait()
        finished.set()
        return {"content": []}

    served = await mcp_app(call_tool=tool)
    message = rpc("tools/call", {"name": "t", "_meta": {"progressToken": "k"}})
    async with http.post(served.url, data=orjson.dumps(message), headers=HEADERS) as r:
        await r.content.readuntil(b"\n\n")
    gate.set()
    await asyncio.wait_for(finished.wait(), 5)


# ---- anything at all ------------------------------------------------------------------------------

messages = st.one_of(
    json_values,
    st.fixed_dictionaries({"jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
                           "method": st.sampled_from(["ping", "tools/list", "tools/call", "initialize",
                                                      "server/discover", "x"]) | json_values},
                          optional={"id": json_values, "params": json_values}),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=messages | st.lists(messages, max_size=4),
       version=st.sampled_from([None, "2025-06-18", STATELESS]))
async def test_any_json_gets_a_json_rpc_answer(http, url, body, version):
    headers = {"MCP-Protocol-Version": version} if version else None
    status, _, answer = await post(http, url, body, headers)
    assert status in (200, 202, 400, 404)
    if status == 202:
        assert answer is None
    else:
        for one in answer if isinstance(answer, list) else [answer]:
            assert one["jsonrpc"] == "2.0" and ("result" in one) != ("error" in one)
    assert (await post(http, url, rpc("ping")))[2]["result"] == {}
