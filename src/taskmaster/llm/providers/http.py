"""HTTP plumbing shared by the wire providers: one POST with a deadline, error classification, SSE.

Retryable (the reference's rule): 429, 408, every 5xx (Anthropic's 529 "overloaded" included),
timeouts and network errors. Everything else (400, 401, 403, 404, 422, a broken body) is final
for this provider and the router moves to the next role at once. Any text that comes back from a
provider is scrubbed of the key before it is put in an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime

import aiohttp

from ..config import Secret, redact
from .base import ProviderError

_RETRYABLE = frozenset({408, 429})
_MAX_ERROR_TEXT = 300


@asynccontextmanager
async def post(http: aiohttp.ClientSession, url: str, body: dict, headers: dict, *, timeout: float,
               label: str, key: Secret | None) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST JSON; yields a 2xx response, raises ProviderError otherwise (also for time-outs)."""
    try:
        async with http.post(url, json=body, headers=headers,
                             timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status >= 300:
                raise await _http_error(response, label, key)
            yield response
    except TimeoutError:
        raise ProviderError(f"{label}: no complete answer within {timeout:g} s (timeout)", retryable=True) from None
    except aiohttp.ClientError as error:
        raise ProviderError(f"{label}: network error: {redact(str(error), key)}", retryable=True) from None


async def read_json(response: aiohttp.ClientResponse, label: str, key: Secret | None) -> dict:
    raw = await response.read()
    try:
        body = json.loads(raw)
    except ValueError:
        raise ProviderError(f"{label}: the response body is not JSON: {_snippet(raw, key)}", retryable=False) from None
    if not isinstance(body, dict):
        raise ProviderError(f"{label}: unexpected response body: {_snippet(raw, key)}", retryable=False)
    return body


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    """(event, data) per server-sent event; `event` is "message" when the server names none."""
    event, data = "message", []
    async for raw_line in response.content:
        line = raw_line.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue  # comment / keep-alive
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield event, "\n".join(data)


def decode_event(data: str, label: str, key: Secret | None) -> dict:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise ProviderError(f"{label}: malformed stream chunk: {_snippet(data.encode(), key)}",
                            retryable=False) from None
    if not isinstance(chunk, dict):
        raise ProviderError(f"{label}: unexpected stream chunk: {_snippet(data.encode(), key)}", retryable=False)
    return chunk


def stream_cut(label: str) -> ProviderError:
    """The stream closed before the model finished: a dropped connection, worth another try."""
    return ProviderError(f"{label}: the stream ended before the answer was complete (network error)",
                         retryable=True)


def error_in_body(body: dict, label: str, key: Secret | None, status: int | None = None) -> ProviderError:
    """An error object delivered inside a 200 body or a stream (OpenAI and Anthropic shapes)."""
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    kind = str(error.get("type", "")) if isinstance(error, dict) else ""
    text = redact(str(message or body), key)[:_MAX_ERROR_TEXT]
    retryable = (status is not None and (status in _RETRYABLE or status >= 500)) or any(
        word in f"{kind} {text}".lower() for word in ("overloaded", "rate limit", "rate_limit", "timeout",
                                                      "temporarily unavailable", "server_error", "api_error"))
    return ProviderError(f"{label}: {text}", retryable=retryable, status=status)


async def _http_error(response: aiohttp.ClientResponse, label: str, key: Secret | None) -> ProviderError:
    status = response.status
    raw = await response.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    detail = _snippet(raw, key)
    if isinstance(body, dict) and body.get("error"):
        detail = str(error_in_body(body, "", key)).removeprefix(": ")
    retryable = status in _RETRYABLE or status >= 500
    hint = " (check the API key)" if status in (401, 403) else ""
    return ProviderError(f"{label}: HTTP {status}{hint}: {detail}", retryable=retryable, status=status,
                         retry_after=retry_after(response.headers) if retryable else None)


def retry_after(headers) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, or `retry-after` in seconds or as a date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _snippet(raw: bytes, key: Secret | None) -> str:
    # Redact before cutting, so no part of a key survives at the cut.
    return redact(raw[:65536].decode("utf-8", "replace"), key)[:_MAX_ERROR_TEXT] or "(empty body)"

