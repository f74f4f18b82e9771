"""Anthropic Messages API: `POST {baseURL}/messages` (baseURL `https://api.anthropic.com/v1`).

Headers `x-api-key` and `anthropic-version: 2023-06-01`; the system prompt is the top-level
`system` field; the answer is a list of content blocks (the text blocks are joined). Streaming
is SSE with the events message_start (input tokens), content_block_delta (text_delta),
message_delta (stop reason, output tokens), message_stop, ping, and error (e.g. overloaded).
The API has no JSON mode: the prompt asks for JSON and the schema check with its repair retry
does the rest.
"""

from __future__ import annotations

import aiohttp

from ..config import Secret
from .base import ChatProvider, Completion, GenerateRequest, ProviderError
from .http import decode_event, error_in_body, post, read_json, sse_events, stream_cut

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
"""The API requires max_tokens; used when the role's config gives none."""


class AnthropicProvider(ChatProvider):
    def __init__(self, name: str, model: str, *, base_url: str, key: Secret, http: aiohttp.ClientSession):
        super().__init__(name, model)
        self._url = base_url.rstrip("/") + "/messages"
        self._key = key
        self._http = http
        self._label = f"{name}/{model}"

    def __repr__(self) -> str:
        return f"AnthropicProvider({self._label}, {self._url})"

    async def complete(self, request: GenerateRequest, messages: list[dict]) -> Completion:
        body: dict = {"model": self.model, "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
                      "system": request.system, "messages": messages}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stream:
            body["stream"] = True
        headers = {"x-api-key": self._key.reveal(), "anthropic-version": API_VERSION}
        async with post(self._http, self._url, body, headers, timeout=request.timeout or 120.0,
                        label=self._label, key=self._key) as response:
            if request.stream:
                return await self._read_stream(response, request)
            return self._read_body(await read_json(response, self._label, self._key))

    def _read_body(self, body: dict) -> Completion:
        if body.get("type") == "error" or body.get("error"):
            raise error_in_body(body, self._label, self._key)
        content = body.get("content")
        if not isinstance(content, list):
            raise ProviderError(f"{self._label}: the response has no content blocks", retryable=False)
        usage = body.get("usage") or {}
        return Completion(text=_text_of(content), input_tokens=_input_tokens(usage),
                          output_tokens=int(usage.get("output_tokens") or 0),
                          truncated=body.get("stop_reason") == "max_tokens")

    async def _read_stream(self, response: aiohttp.ClientResponse, request: GenerateRequest) -> Completion:
        parts: list[str] = []
        received = 0
        completion = Completion(text="")
        finished = False
        async for event, data in sse_events(response):
            chunk = decode_event(data, self._label, self._key)
            kind = chunk.get("type", event)
            if kind == "error":
                raise error_in_body(chunk, self._label, self._key)
            if kind == "message_start":
                usage = (chunk.get("message") or {}).get("usage") or {}
                completion.input_tokens = _input_tokens(usage)
                completion.output_tokens = int(usage.get("output_tokens") or 0)
            elif kind == "content_block_delta":
                delta = chunk.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    parts.append(delta["text"])
                    received += len(delta["text"])
                    if request.on_delta is not None:
                        request.on_delta(received)
            elif kind == "message_delta":
                usage = chunk.get("usage") or {}
                if usage.get("output_tokens") is not None:
                    completion.output_tokens = int(usage["output_tokens"])
                if (chunk.get("delta") or {}).get("stop_reason") == "max_tokens":
                    completion.truncated = True
            elif kind == "message_stop":
                finished = True
                break
        if not finished:
            raise stream_cut(self._label)
        completion.text = "".join(parts)
        return completion


def _text_of(content: list) -> str:
    return "".join(block.get("text", "") for block in content
                   if isinstance(block, dict) and block.get("type") == "text")


def _input_tokens(usage: dict) -> int:
    # Prompt-cache reads and writes are input tokens too.
    return sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                 "cache_read_input_tokens"))
