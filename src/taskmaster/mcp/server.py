"""MCP over Streamable HTTP at /mcp (aiohttp).

Two eras share the endpoint, told apart by the `MCP-Protocol-Version` header:
- handshake era (2024-11-05 .. 2025-11-25, or no header): `initialize` opens a session named by the
  `Mcp-Session-Id` header we issue; requests without a session id are served too (sessionless).
- stateless era (2026-07-28, what `mcp` 2.x probes first with `server/discover`): no session; each
  request carries its protocol version, client info and capabilities in `params._meta`.

Answers are compact `application/json`, except a tools/call that asks for progress (`_meta.progressToken`)
from a client that accepts `text/event-stream`: once the tool reports progress (or stays silent for
SSE_KEEPALIVE seconds) the answer becomes an SSE stream of `notifications/progress` then the result.

MCP sampling (client_requests.py): a tools/call from a client that declares `capabilities.sampling` may
ask the client's model. In the handshake era the `sampling/createMessage` request goes out on the
call's SSE stream and the client POSTs the response (matched by id within its session). At 2026-07-28,
which has no server-initiated requests, the call answers `input_required` (Multi Round-Trip Requests)
and waits, named by its `requestState`, for the client's retry carrying `inputResponses`.

The daemon never dies of a request: every failure becomes a JSON-RPC error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from ..tools.registry import ParamError, UnknownTool
from . import jsonrpc
from .client_requests import ClientCall, Sampler, abandon, sampler, settle
from .jsonrpc import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    Reply,
    Request,
    RpcError,
)

log = logging.getLogger(__name__)

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE = HANDSHAKE_VERSIONS[-1]
STATELESS_VERSIONS = ("2026-07-28",)
SUPPORTED_VERSIONS = HANDSHAKE_VERSIONS + STATELESS_VERSIONS
CAPABILITIES = {"tools": {"listChanged": False}, "logging": {}}
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

# 2026-07-28 per-request envelope keys (in params._meta) and the result stamp
META_PROTOCOL = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
CACHEABLE = ("server/discover", "tools/list")  # results that must carry ttlMs/cacheScope at 2026-07-28

MAX_SESSIONS = 4096  # least recently used sessions are dropped beyond this; their clients get 404
SSE_KEEPALIVE = 15.0  # seconds of silence before a progress-enabled call commits to SSE / sends a ping
CLIENT_TIMEOUT = 60.0  # seconds the client has to answer a request we send it (sampling)

# HTTP status of a single answer whose error code says the request itself was bad. The stateless era
# maps method errors too (the official SDK's table); the handshake era answers those with 200.
_STATELESS_STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
                     UNSUPPORTED_PROTOCOL_VERSION: 400, METHOD_NOT_FOUND: 404}
_HANDSHAKE_STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400}

CallTool = Callable[[str, Any, dict], Awaitable[dict]]
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass
class _Exchange:
    """One HTTP POST: its era, its session and what the client accepts."""

    stateless: bool
    headers: Any  # the request's case-insensitive headers
    accepts_sse: bool
    session_id: str | None = None
    session: dict | None = None
    issued_session: str | None = None  # set by initialize: sent back as Mcp-Session-Id


class McpServer:
    """Serves MCP at /mcp. `call_tool(name, arguments, session)` runs a tool; `session` is a dict with
    `id` (session id or None), `client` (the client's initialize params, or the 2026 envelope in the
    same shape), `protocol_version`, `progress` (async fn(progress, total, message), or None when
    the client cannot receive progress) and `sampler` (async fn(messages, system, max_tokens) ->
    (text, model) asking the client's model, or None when the client cannot sample). It may raise
    UnknownTool (-32601) or ParamError (-32602). `client_timeout`: seconds the client has to answer
    a request we send it."""

    def __init__(self, call_tool: CallTool, list_tools: Callable[[], list[dict]], info: dict,
                 token: str | None = None, allowed_origins: Iterable[str] = (), max_body: int = 1 << 20,
                 metrics: Any = None, client_timeout: float = CLIENT_TIMEOUT) -> None:
        self._call_tool = call_tool
        self._list_tools = list_tools
        self._info = info  # serverInfo: {"name", "version"}
        self._token = token.encode() if token else None
        self._allowed_origins = {o.strip().rstrip("/").lower() for o in allowed_origins}
        self._max_body = max_body
        self._metrics = metrics
        self._sessions: OrderedDict[str, dict] = OrderedDict()
        self._streams: set[asyncio.Task] = set()  # tool calls feeding SSE answers (kept referenced)
        self._client_timeout = client_timeout
        self._parked: dict[str, ClientCall] = {}  # 2026-07-28 calls awaiting their retry, by requestState
        self.stray_replies = 0  # client answers nobody waited for (unknown id, late, session gone)
        self._handshake_methods = {"initialize": self._initialize, "ping": self._ping,
                                   "tools/list": self._tools_list, "tools/call": self._tools_call,
                                   "logging/setLevel": self._set_level}
        self._stateless_methods = {"server/discover": self._discover, "ping": self._ping,
                                   "tools/list": self._tools_list, "tools/call": self._tools_call}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/mcp", self._handle)

    # HTTP layer -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve(request)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("MCP request failed")
            return self._reject(500, INTERNAL_ERROR, "Internal error")

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        refusal = self.guard(request)
        if refusal is not None:
            return refusal
        if request.method == "POST":
            return await self._post(request)
        if request.method == "DELETE":
            return self._delete(request)
        # GET would open a server-push stream; we push nothing yet.
        return self._reject(405, INVALID_REQUEST, f"Method Not Allowed: {request.method} /mcp (use POST)",
                            headers={"Allow": "POST, DELETE"})

    def guard(self, request: web.Request) -> web.Response | None:
        """The origin and token checks every client route of the node shares; None: allowed."""
        if not self._origin_allowed(request.headers.get("Origin")):
            return self._reject(403, INVALID_REQUEST, f"Forbidden: Origin {request.headers['Origin']!r} is not "
                                "allowed (only loopback origins and the configured allowed origins are)")
        if self._token is not None and not self._authorized(request.headers.get("Authorization")):
            challenge = 'Bearer realm="taskmaster"'
            if "Authorization" in request.headers:
                challenge += ', error="invalid_token"'
            return self._reject(401, INVALID_REQUEST, "Unauthorized: this server requires the header "
                                "'Authorization: Bearer <token>' with its --token",
                                headers={"WWW-Authenticate": challenge})
        return None

    def _origin_allowed(self, origin: str | None) -> bool:
        """The spec's DNS-rebinding rule: browsers must not reach us from a foreign page."""
        if origin is None:
            return True  # not a browser
        if "*" in self._allowed_origins or origin.strip().rstrip("/").lower() in self._allowed_origins:
            return True
        try:
            host = URL(origin.strip()).host
        except ValueError:
            return False
        if not host:
            return False  # "null" and other opaque origins
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def _authorized(self, header: str | None) -> bool:
        scheme, _, value = (header or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    def _delete(self, request: web.Request) -> web.Response:
        session_id = request.headers.get("Mcp-Session-Id")
        if not session_id:
            return self._reject(400, INVALID_REQUEST, "Bad Request: DELETE /mcp needs an Mcp-Session-Id header")
        session = self._sessions.pop(session_id, None)
        if session is None:
            return self._session_unknown()
        _end_session(session)
        return web.Response(status=204)

    async def _post(self, request: web.Request) -> web.StreamResponse:
        version = request.headers.get("MCP-Protocol-Version")
        if version is not None and version not in SUPPORTED_VERSIONS:
            return self._reject(400, UNSUPPORTED_PROTOCOL_VERSION, f"Unsupported protocol version: {version}",
                                data={"supported": list(SUPPORTED_VERSIONS), "requested": version})
        if request.content_type != "application/json":
            return self._reject(415, INVALID_REQUEST,
                                "Unsupported Media Type: Content-Type must be application/json")
        body = await self._read_body(request)
        if body is None:
            return self._reject(413, INVALID_REQUEST, f"Request body too large: the limit is "
                                f"{_size(self._max_body)}")
        try:
            message = jsonrpc.parse(body)
        except RpcError as exc:
            return self._reject(400, exc.code, exc.message)
        exchange = _Exchange(stateless=version in STATELESS_VERSIONS, headers=request.headers,
                             accepts_sse="text/event-stream" in request.headers.get("Accept", "").lower())
        session_id = request.headers.get("Mcp-Session-Id")
        if session_id and not exchange.stateless and not _is_initialize(message):
            exchange.session = self._sessions.get(session_id)
            if exchange.session is None:
                return self._session_unknown()
            self._sessions.move_to_end(session_id)
            exchange.session_id = session_id
        if isinstance(message, list):
            return await self._batch(message, exchange)
        return await self._single(request, message, exchange)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or None once it exceeds max_body (read no further)."""
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > self._max_body:
                return None
        return bytes(body)

    async def _single(self, request: web.Request, message: Any, exchange: _Exchange) -> web.StreamResponse:
        try:
            msg = jsonrpc.classify(message)
        except RpcError as exc:
            return self._reply(exchange, self._fail(jsonrpc.request_id_of(message), exc))
        if isinstance(msg, Reply):
            self._take_reply(message, exchange)
            return web.Response(status=202)
        if msg.is_notification:
            return web.Response(status=202)  # nothing to act on: initialized, cancelled, progress ...
        if msg.method == "tools/call":
            if exchange.stateless and msg.params.get("requestState") is not None:
                return await self._resume(request, msg, exchange)
            call = self._start_call(msg, exchange)
            if call is not None:
                return await self._stream_call(request, msg, exchange, call)
        return self._reply(exchange, await self._dispatch(msg, exchange, None))

    async def _batch(self, messages: list, exchange: _Exchange) -> web.Response:
        """JSON-RPC batches (MCP 2025-03-26 only; later revisions dropped them): answered per element, in order."""
        if not messages:
            return self._reject(400, INVALID_REQUEST, "Invalid request: empty batch")
        if exchange.stateless:
            return self._reject(400, INVALID_REQUEST,
                                "Invalid request: protocol 2026-07-28 takes one JSON-RPC request per POST")
        answers = []
        for message in messages:
            try:
                msg = jsonrpc.classify(message)
            except RpcError as exc:
                answers.append(self._fail(jsonrpc.request_id_of(message), exc))
                continue
            if isinstance(msg, Reply):
                self._take_reply(message, exchange)
                continue
            if msg.is_notification:
                continue
            if msg.method == "initialize":
                answers.append(self._fail(msg.id, RpcError(INVALID_REQUEST,
                                                           "Invalid request: initialize must not be batched")))
                continue
            answers.append(await self._dispatch(msg, exchange, None))
        if not answers:
            return web.Response(status=202)
        return _json(answers, 200)

    def _start_call(self, msg: Request, exchange: _Exchange) -> ClientCall | None:
        """Start a tools/call that can talk to its client (progress, sampling); None if it cannot."""
        token = _progress_token(msg.params) if exchange.accepts_sse else None
        sampling = _offers_sampling(msg, exchange)
        if token is None and not sampling:
            return None
        pending = exchange.session["pending"] if sampling and not exchange.stateless else {}
        call = ClientCall(msg.params.get("name"), msg.params.get("arguments"), mrtr=exchange.stateless,
                          pending=pending, timeout=self._client_timeout)
        call.progress_token = token
        call.task = asyncio.ensure_future(self._dispatch(msg, exchange, call.progress if token is not None else None,
                                                         sampler(call) if sampling else None))
        self._streams.add(call.task)
        call.task.add_done_callback(self._streams.discard)
        call.task.add_done_callback(lambda _: self._finished(call))
        return call

    def _finished(self, call: ClientCall) -> None:
        call.done()
        if call.request_state is not None:  # nobody retried in time: the answer has no one to go to
            self._parked.pop(call.request_state, None)

    async def _resume(self, request: web.Request, msg: Request, exchange: _Exchange) -> web.StreamResponse:
        """A 2026-07-28 retry: hand its inputResponses to the call its requestState names, then answer
        from that call."""
        try:
            _envelope(msg, exchange.headers)
            state, responses = msg.params["requestState"], msg.params.get("inputResponses") or {}
            call = self._parked.get(state) if isinstance(state, str) else None
            if call is None:
                raise RpcError(INVALID_PARAMS, "Invalid params: requestState is unknown or expired (its tool call "
                               "ended, or waited longer than the client's time to answer); call the tool again "
                               "without requestState")
            if call.name != msg.params.get("name") or call.arguments != msg.params.get("arguments"):
                raise RpcError(INVALID_PARAMS, "Invalid params: requestState belongs to another tool call (a retry "
                               "repeats the original name and arguments)")
            if not isinstance(responses, dict):
                raise RpcError(INVALID_PARAMS, "Invalid params: inputResponses must be an object")
        except RpcError as exc:
            return self._reply(exchange, self._fail(msg.id, exc))
        del self._parked[state]
        call.request_state = None
        self.stray_replies += len(responses) - call.answer(responses)
        call.progress_token = _progress_token(msg.params) if exchange.accepts_sse else None
        call.wake.set()
        return await self._stream_call(request, msg, exchange, call)

    async def _stream_call(self, request: web.Request, msg: Request, exchange: _Exchange,
                           call: ClientCall) -> web.StreamResponse:
        """Answer `msg` from its call: JSON if the call ends (or, at 2026-07-28, needs input) before it has
        anything else to say, else an SSE stream of its progress and requests as they come, then the answer."""
        response: web.StreamResponse | None = None
        try:
            while True:
                woke = await _wait(call.wake, SSE_KEEPALIVE)
                call.wake.clear()
                ended = call.task.done()  # before draining: nothing can follow a finished call
                events, call.outbox = call.outbox, []
                if ended:
                    answer = {**call.task.result(), "id": msg.id}  # a 2026 retry is answered under its own id
                elif call.mrtr and call.asked:
                    answer = self._input_required(call, msg)
                else:
                    answer = None
                if response is None:
                    if answer is not None and (not events or not exchange.accepts_sse):
                        return self._reply(exchange, answer)
                    if not exchange.accepts_sse or (woke and not events):
                        continue  # JSON still possible: commit to SSE on the first event, or after a silence
                    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
                    await response.prepare(request)
                for event in events:
                    await response.write(_sse(event))
                if answer is not None:
                    await response.write(_sse(answer))
                    await response.write_eof()
                    return response
                if not events:
                    await response.write(b": keepalive\n\n")
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            log.debug("client left the stream of a tool call; the call finishes without it")
            if not call.mrtr:  # its requests went out on this stream: no answer can come now
                call.fail("the client closed the stream the request was sent on")
            if isinstance(exc, asyncio.CancelledError):
                raise
        return response

    def _input_required(self, call: ClientCall, msg: Request) -> dict:
        """The 2026-07-28 answer for a call that waits for its client: what it asks, and the state naming it."""
        call.request_state = secrets.token_urlsafe(24)
        self._parked[call.request_state] = call
        value = {"inputRequests": dict(call.asked), "requestState": call.request_state}
        return jsonrpc.result(msg.id, self._stamp("tools/call", value, "input_required"))

    def _take_reply(self, message: dict, exchange: _Exchange) -> None:
        """A client's response to a request we sent it (handshake era: matched within its session)."""
        pending = exchange.session["pending"] if exchange.session is not None else {}
        if not settle(pending.get(message["id"]), message):
            self.stray_replies += 1
            log.info("ignored a client response nobody waits for (unknown or expired id %r)", message["id"])

    def _reply(self, exchange: _Exchange, answer: dict) -> web.Response:
        status = 200
        if "error" in answer:
            table = _STATELESS_STATUS if exchange.stateless else _HANDSHAKE_STATUS
            status = table.get(answer["error"]["code"], 200)
        headers = {"Mcp-Session-Id": exchange.issued_session} if exchange.issued_session else None
        return _json(answer, status, headers)

    def _reject(self, status: int, code: int, message: str, data: Any = None,
                headers: dict | None = None) -> web.Response:
        """A transport-level refusal: HTTP status plus a JSON-RPC error body clients can show."""
        return _json(self._fail(None, RpcError(code, message, data)), status, headers)

    def _session_unknown(self) -> web.Response:
        return self._reject(404, INVALID_REQUEST, "Not Found: unknown or expired Mcp-Session-Id "
                            "(the session ended or the server restarted); send initialize again")

    def _fail(self, request_id: Any, exc: RpcError) -> dict:
        if self._metrics is not None:
            self._metrics.rpc_errors.labels(str(exc.code)).inc()
        return exc.answer(request_id)

    # JSON-RPC methods -----------------------------------------------------------------------------

    async def _dispatch(self, msg: Request, exchange: _Exchange, progress: Progress | None,
                        sample: Sampler | None = None) -> dict:
        """The answer to one request. Never raises: every failure is an error object."""
        try:
            if exchange.stateless:
                client, version = _envelope(msg, exchange.headers), exchange.headers["MCP-Protocol-Version"]
                methods = self._stateless_methods
            else:
                session = exchange.session or {}
                client, version = session.get("client", {}), session.get("protocol_version")
                methods = self._handshake_methods
            method = methods.get(msg.method)
            if method is None:
                raise RpcError(METHOD_NOT_FOUND, _not_found(msg.method, exchange.stateless))
            call = {"id": exchange.session_id, "client": client, "protocol_version": version, "progress": progress,
                    "sampler": sample}
            value = await method(msg.params, exchange, call)
            if exchange.stateless:
                value = self._stamp(msg.method, value)
            return jsonrpc.result(msg.id, value)
        except RpcError as exc:
            return self._fail(msg.id, exc)
        except UnknownTool as exc:
            return self._fail(msg.id, RpcError(METHOD_NOT_FOUND, str(exc)))
        except ParamError as exc:
            return self._fail(msg.id, RpcError(INVALID_PARAMS, str(exc)))
        except Exception as exc:
            log.exception("MCP method %s failed", msg.method)
            return self._fail(msg.id, RpcError(INTERNAL_ERROR, f"Internal error: {type(exc).__name__}"))

    def _stamp(self, method: str, value: dict, result_type: str = "complete") -> dict:
        """2026-07-28 result fields: resultType always, cache hints where required, who answered."""
        value = {**value, "resultType": result_type, "_meta": {META_SERVER_INFO: self._info}}
        if method in CACHEABLE:
            value["ttlMs"] = 0  # the tool list can change with TASK_MASTER_TOOLS on restart
            value["cacheScope"] = "private"
        return value

    async def _initialize(self, params: dict, exchange: _Exchange, call: dict) -> dict:
        requested = params.get("protocolVersion")
        if requested is not None and not isinstance(requested, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: protocolVersion must be a string")
        version = requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE
        session_id = secrets.token_urlsafe(24)
        self._sessions[session_id] = {"client": params, "protocol_version": version, "log_level": None,
                                      "pending": {}}  # pending: our requests' reply futures by id
        while len(self._sessions) > MAX_SESSIONS:
            _end_session(self._sessions.popitem(last=False)[1])
        exchange.issued_session = session_id
        return {"protocolVersion": version, "capabilities": CAPABILITIES, "serverInfo": self._info}

    async def _discover(self, params: dict, exchange: _Exchange, call: dict) -> dict:
        return {"supportedVersions": list(SUPPORTED_VERSIONS), "capabilities": CAPABILITIES}

    async def _ping(self, params: dict, exchange: _Exchange, call: dict) -> dict:
        return {}

    async def _set_level(self, params: dict, exchange: _Exchange, call: dict) -> dict:
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise RpcError(INVALID_PARAMS, f"Invalid params: level must be one of {', '.join(LOG_LEVELS)}")
        if exchange.session is not None:
            exchange.session["log_level"] = level  # kept for when we send log notifications
        return {}

    async def _tools_list(self, params: dict, exchange: _Exchange, call: dict) -> dict:
        return {"tools": self._list_tools()}  # one page: cursors are not needed for 44 tools

    async def _tools_call(self, params: dict, exchange: _Exchange, call: dict) -> dict:
        name = params.get("name")
        if not isinstance(name, str) or not name:
            raise RpcError(INVALID_PARAMS, "Invalid params: tools/call needs the tool's name as a string")
        return await self._call_tool(name, params.get("arguments"), call)


def _envelope(msg: Request, headers: Any) -> dict:
    """The 2026-07-28 per-request envelope as initialize-shaped client params; RpcError if inconsistent."""
    meta = msg.params.get("_meta")
    if not isinstance(meta, dict) or META_PROTOCOL not in meta or META_CLIENT_CAPABILITIES not in meta:
        raise RpcError(INVALID_PARAMS, f"Invalid params: protocol 2026-07-28 needs params._meta with "
                       f"{META_PROTOCOL!r} and {META_CLIENT_CAPABILITIES!r}")
    if meta[META_PROTOCOL] != headers["MCP-Protocol-Version"]:
        raise RpcError(HEADER_MISMATCH, "MCP-Protocol-Version header does not match params._meta")
    # Routing headers are optional for us, but when present they must tell the truth.
    method_header = headers.get("Mcp-Method")
    if method_header is not None and method_header != msg.method:
        raise RpcError(HEADER_MISMATCH, "Mcp-Method header does not match the request's method")
    name_header = headers.get("Mcp-Name")
    if (msg.method == "tools/call" and name_header is not None
            and _header_value(name_header) != msg.params.get("name")):
        raise RpcError(HEADER_MISMATCH, "Mcp-Name header does not match the tool's name")
    return {"protocolVersion": meta[META_PROTOCOL], "capabilities": meta[META_CLIENT_CAPABILITIES],
            "clientInfo": meta.get(META_CLIENT_INFO)}


def _offers_sampling(msg: Request, exchange: _Exchange) -> bool:
    """Whether this call may ask the client's model: the client declares `sampling` and can be reached
    (handshake era: a session to answer in and an SSE stream to ask on)."""
    if exchange.stateless:
        meta = msg.params.get("_meta")
        capabilities = meta.get(META_CLIENT_CAPABILITIES) if isinstance(meta, dict) else None
    elif exchange.session is None or not exchange.accepts_sse:
        return False
    else:
        capabilities = exchange.session["client"].get("capabilities")
    return isinstance(capabilities, dict) and isinstance(capabilities.get("sampling"), dict)


def _end_session(session: dict) -> None:
    for reply in list(session["pending"].values()):
        abandon(reply, "the MCP session ended before the client answered")


def _header_value(raw: str) -> str | None:
    """A header value, decoding the 2026 `=?base64?...?=` form used for non-ASCII names."""
    if raw.startswith("=?base64?") and raw.endswith("?="):
        try:
            return base64.b64decode(raw[9:-2], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    return raw


def _not_found(method: str, stateless: bool) -> str:
    if stateless and method == "initialize":
        return ("Method not found: initialize is not part of protocol 2026-07-28 "
                "(send it without the MCP-Protocol-Version header)")
    return f"Method not found: {method}"


def _is_initialize(message: Any) -> bool:
    return isinstance(message, dict) and message.get("method") == "initialize"


def _progress_token(params: dict) -> str | int | None:
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool)):
        return token
    return None


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Whether the event was set within the timeout."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


def _size(limit: int) -> str:
    mib = f" ({limit >> 20} MiB)" if limit >= 1 << 20 and limit % (1 << 20) == 0 else ""
    return f"{limit} bytes{mib}"


def _sse(message: dict) -> bytes:
    return b"event: message\ndata: " + jsonrpc.dumps(message) + b"\n\n"


def _json(message: Any, status: int, headers: dict | None = None) -> web.Response:
    return web.Response(body=jsonrpc.dumps(message), status=status, headers=headers,
                        content_type="application/json")
