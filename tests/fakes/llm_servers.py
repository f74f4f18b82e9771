"""Local HTTP servers that speak the OpenAI chat-completions and Anthropic messages wire formats.

A `FakeLlmServer` answers each request with the next step of its script (then `default`, if any):
`Reply` (a normal answer, streamed as SSE when the request asks for it), `Status` (an HTTP
error), `Slow` (an answer after a delay, to run past a client's timeout), `Raw` (any body), or
`StreamError` (a stream that breaks off with an error event). Every request is recorded. Nothing
leaves loopback.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Reply:
    text: str
    input_tokens: int = 11
    output_tokens: int = 7
    truncated: bool = False


@dataclass
class Status:
    status: int
    message: str = "error"
    headers: dict = field(default_factory=dict)
    kind: str = "api_error"


@dataclass
class Slow:
    seconds: float
    then: Reply


@dataclass
class Raw:
    body: bytes
    status: int = 200
    content_type: str = "application/json"


@dataclass
class StreamError:
    partial: str
    message: str = "Overloaded"
    kind: str = "overloaded_error"


class FakeLlmServer:
    def __init__(self, wire: str, script: list | None = None, *, default=None, expected_key: str | None = None,
                 latency: float = 0.0):
        assert wire in ("openai", "anthropic")
        self.wire = wire
        self.script = list(script or [])
        self.default = default
        self.expected_key = expected_key
        self.latency = latency
        self.requests: list[dict] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> FakeLlmServer:
        app = web.Application()
        path = "/v1/chat/completions" if self.wire == "openai" else "/v1/messages"
        app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeLlmServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---- handling -------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        if self.expected_key is not None and self._key(request) != self.expected_key:
            given = self._key(request) or ""
            return self._error(Status(401, f"Incorrect API key provided: {given}", kind="authentication_error"))
        step = self.script.pop(0) if self.script else self.default
        if step is None:
            return self._error(Status(500, "fake server script exhausted"))
        if self.latency:
            await self._pause(self.latency)
        if isinstance(step, Slow):
            await self._pause(step.seconds)
            step = step.then
        if isinstance(step, Status):
            return self._error(step)
        if isinstance(step, Raw):
            return web.Response(body=step.body, status=step.status, content_type=step.content_type)
        if body.get("stream"):
            return await self._stream(request, body, step)
        if isinstance(step, StreamError):
            return self._error(Status(529, step.message, kind=step.kind))
        return web.json_response(self._message(body, step))

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            pass

    def _key(self, request: web.Request) -> str | None:
        if self.wire == "anthropic":
            return request.headers.get("x-api-key")
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth else None

    def _error(self, step: Status) -> web.Response:
        if self.wire == "anthropic":
            payload = {"type": "error", "error": {"type": step.kind, "message": step.message}}
        else:
            payload = {"error": {"message": step.message, "type": step.kind, "code": None}}
        return web.json_response(payload, status=step.status, headers=step.headers)

    def _message(self, body: dict, step: Reply) -> dict:
        model = body.get("model", "fake")
        if self.wire == "anthropic":
            return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": step.text}],
                    "stop_reason": "max_tokens" if step.truncated else "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": step.input_tokens, "output_tokens": step.output_tokens}}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": step.text},
                             "finish_reason": "length" if step.truncated else "stop"}],
                "usage": {"prompt_tokens": step.input_tokens, "completion_tokens": step.output_tokens,
                          "total_tokens": step.input_tokens + step.output_tokens}}

    async def _stream(self, request: web.Request, body: dict, step) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        text = step.partial if isinstance(step, StreamError) else step.text
        size = max(1, -(-len(text) // 3))  # three pieces, so the client has to join deltas
        pieces = [text[i:i + size] for i in range(0, len(text), size)]
        if self.wire == "anthropic":
            await self._anthropic_stream(response, body, step, pieces)
        else:
            await self._openai_stream(response, body, step, pieces)
        await response.write_eof()
        return response

    async def _openai_stream(self, response, body, step, pieces) -> None:
        async def send(obj) -> None:
            await response.write(f"data: {json.dumps(obj)}\n\n".encode())

        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": body.get("model")}
        await send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for piece in pieces:
            await send({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        if isinstance(step, StreamError):
            await send({"error": {"message": step.message, "type": "server_error"}})
            return
        await send({**base, "choices": [{"index": 0, "delta": {},
                                         "finish_reason": "length" if step.truncated else "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({**base, "choices": [], "usage": {"prompt_tokens": step.input_tokens,
                                                         "completion_tokens": step.output_tokens}})
        await response.write(b"data: [DONE]\n\n")

    async def _anthropic_stream(self, response, body, step, pieces) -> None:
        async def send(event: str, obj) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(obj)}\n\n".encode())

        usage_in = step.input_tokens if isinstance(step, Reply) else 5
        await send("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"), "content": [],
            "stop_reason": None, "usage": {"input_tokens": usage_in, "output_tokens": 1}}})
        await send("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})
        await send("ping", {"type": "ping"})
        for piece in pieces:
            await send("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": piece}})
        if isinstance(step, StreamError):
            await send("error", {"type": "error", "error": {"type": step.kind, "message": step.message}})
            return
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        await send("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": "max_tokens" if step.truncated else "end_turn",
                                               "stop_sequence": None},
                                     "usage": {"output_tokens": step.output_tokens}})
        await send("message_stop", {"type": "message_stop"})
