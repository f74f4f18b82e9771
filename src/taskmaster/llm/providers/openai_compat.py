"""OpenAI-compatible chat completions: OpenAI, Ollama, vLLM, LM Studio, OpenRouter, Groq, xAI, ...

`POST {baseURL}/chat/completions` with `Authorization: Bearer <key>` (when there is a key), the
system prompt as the first message, `response_format: {"type": "json_object"}` for JSON answers
where the server supports it, and optionally `stream: true` (SSE `data:` chunks ending with
`[DONE]`; `stream_options.include_usage` asks for the token counts in the last chunk).
`baseURL` includes the version path, as in the reference's config (`https://api.openai.com/v1`).
"""

from __future__ import annotations

import re

import aiohttp

from .. import schemas
from ..config import Secret
from .base import ChatProvider, Completion, GenerateRequest, ProviderError
from .http import decode_event, error_in_body, post, read_json, sse_events, stream_cut

# OpenAI's reasoning models take max_completion_tokens and only the default temperature.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


class OpenAICompatProvider(ChatProvider):
    def __init__(self, name: str, model: str, *, base_url: str, key: Secret | None,
                 http: aiohttp.ClientSession, json_mode: bool = True):
        super().__init__(name, model)
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._key = key
        self._http = http
        self._json_mode = json_mode
        self._label = f"{name}/{model}"

    def __repr__(self) -> str:
        return f"OpenAICompatProvider({self._label}, {self._url})"

    async def complete(self, request: GenerateRequest, messages: list[dict]) -> Completion:
        body = self._body(request, messages)
        headers = {"Authorization": f"Bearer {self._key.reveal()}"} if self._key else {}
        async with post(self._http, self._url, body, headers, timeout=request.timeout or 120.0,
                        label=self._label, key=self._key) as response:
            if request.stream:
                return await self._read_stream(response, request)
            return self._read_body(await read_json(response, self._label, self._key))

    def _body(self, request: GenerateRequest, messages: list[dict]) -> dict:
        body: dict = {"model": self.model,
                      "messages": [{"role": "system", "content": request.system}, *messages]}
        reasoning = self.name == "openai" and _REASONING_MODEL.match(self.model)
        if request.max_tokens:
            body["max_completion_tokens" if reasoning else "max_tokens"] = request.max_tokens
        if request.temperature is not None and not reasoning:
            body["temperature"] = request.temperature
        if self._json_mode and not schemas.is_text(request.schema):
            body["response_format"] = {"type": "json_object"}
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _read_body(self, body: dict) -> Completion:
        if body.get("error"):
            raise error_in_body(body, self._label, self._key)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ProviderError(f"{self._label}: the response has no choices", retryable=False)
        message = choices[0].get("message") or {}
        usage = body.get("usage") or {}
        return Completion(text=message.get("content") or "",
                          input_tokens=int(usage.get("prompt_tokens") or 0),
                          output_tokens=int(usage.get("completion_tokens") or 0),
                          truncated=choices[0].get("finish_reason") == "length")

    async def _read_stream(self, response: aiohttp.ClientResponse, request: GenerateRequest) -> Completion:
        parts: list[str] = []
        received = 0
        completion = Completion(text="")
        finished = False
        async for _event, data in sse_events(response):
            if data.strip() == "[DONE]":
                finished = True
                break
            chunk = decode_event(data, self._label, self._key)
            if chunk.get("error"):
                raise error_in_body(chunk, self._label, self._key)
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                completion.input_tokens = int(usage.get("prompt_tokens") or 0)
                completion.output_tokens = int(usage.get("completion_tokens") or 0)
            for choice in chunk.get("choices") or ():
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    parts.append(delta)
                    received += len(delta)
                    if request.on_delta is not None:
                        request.on_delta(received)
                if choice.get("finish_reason"):
                    finished = True
                    completion.truncated = choice["finish_reason"] == "length"
        if not finished:
            raise stream_cut(self._label)
        completion.text = "".join(parts)
        return completion
