"""Requests the server sends its client in the middle of a tools/call (MCP sampling), and their answers.

A `ClientCall` is one running tools/call that can talk back to its client. What it has to say waits
until the HTTP side writes it on the POST attached to the call (server.py):
- progress notifications and, in the handshake era, JSON-RPC requests queue in `outbox` and go out
  on the POST's SSE stream; the client answers each request with a POST of its own, which the server
  matches by id in the session's `pending` table;
- at 2026-07-28 (no sessions, no server-initiated requests) requests wait in `asked` instead: the
  server answers the POST with an `input_required` result naming them, and the client retries the
  call with `inputResponses` (Multi Round-Trip Requests), which `answer` hands to the waiting call.
Every request has a deadline; a session that ends or a stream the client closes fails what it waits for.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from ..llm.providers.sampling import Sampler
from . import jsonrpc

_ids = itertools.count(1)  # request ids (and MRTR keys), unique within the process and so per session


class ClientRequestError(Exception):
    """A request to the client failed: it answered with an error, not in time, or not at all."""


class ClientCall:
    """One tools/call and the requests it has sent its client. `pending` maps request ids to reply
    futures: the session's table in the handshake era, the call's own at 2026-07-28 (`mrtr`)."""

    def __init__(self, name: Any, arguments: Any, *, mrtr: bool, pending: dict, timeout: float):
        self.name, self.arguments = name, arguments  # what a 2026-07-28 retry must repeat
        self.mrtr = mrtr
        self.pending = pending
        self.timeout = timeout
        self.outbox: list[dict] = []
        self.asked: dict[str, dict] = {}  # 2026-07-28: unanswered input requests by key
        self.wake = asyncio.Event()
        self.progress_token: str | int | None = None  # of the POST attached now (None: it wants no progress)
        self.finished = False
        self.task: asyncio.Task | None = None  # the running tools/call (server.py starts it)
        self.request_state: str | None = None  # 2026-07-28: names the call while it waits for the retry
        self._mine: set = set()  # ids of this call's requests still waiting

    def done(self) -> None:
        """The call answered: requests made after this (by work it left behind) cannot reach the client."""
        self.finished = True
        self.wake.set()

    async def progress(self, value: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": value}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        self.outbox.append(jsonrpc.notification("notifications/progress", params))
        self.wake.set()

    async def ask(self, method: str, params: dict) -> dict:
        """The client's result for one request; ClientRequestError when it fails or times out."""
        if self.finished:
            raise ClientRequestError(f"{method} is only possible while the tool call is running "
                                     "(it has answered its client already)")
        request_id = f"taskmaster-{next(_ids)}"
        reply = asyncio.get_running_loop().create_future()
        self.pending[request_id] = reply
        self._mine.add(request_id)
        if self.mrtr:
            self.asked[request_id] = {"method": method, "params": params}
        else:
            self.outbox.append({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        self.wake.set()
        try:
            return await asyncio.wait_for(reply, self.timeout)
        except TimeoutError:
            raise ClientRequestError(f"the client did not answer {method} within {self.timeout:g} s") from None
        finally:
            self.pending.pop(request_id, None)
            self.asked.pop(request_id, None)
            self._mine.discard(request_id)

    def answer(self, responses: dict) -> int:
        """Hand a 2026-07-28 retry's inputResponses to the requests waiting for them; how many matched."""
        matched = 0
        for key, response in responses.items():
            reply = self.pending.get(key)
            if reply is None or reply.done():
                continue
            self.asked.pop(key, None)  # now, not when the waiter wakes: the server must not ask again
            if isinstance(response, dict):
                reply.set_result(response)
            else:
                reply.set_exception(ClientRequestError(f"the client's answer to {key} is not an object"))
            matched += 1
        return matched

    def fail(self, reason: str) -> None:
        """Fail every request of this call still waiting (the client can no longer answer them)."""
        for request_id in list(self._mine):
            abandon(self.pending.get(request_id), reason)


def abandon(reply: asyncio.Future | None, reason: str) -> None:
    if reply is not None and not reply.done():
        reply.set_exception(ClientRequestError(reason))


def settle(reply: asyncio.Future | None, message: dict) -> bool:
    """Resolve a request's future with the client's JSON-RPC response; False if nobody waits for it."""
    if reply is None or reply.done():
        return False
    error = message.get("error")
    if error is not None:
        detail = error.get("message") if isinstance(error, dict) else error
        code = error.get("code") if isinstance(error, dict) else None
        reply.set_exception(ClientRequestError(f"the client refused: {detail} (error {code})"))
    elif isinstance(message.get("result"), dict):
        reply.set_result(message["result"])
    else:
        reply.set_exception(ClientRequestError("the client's answer holds no result object"))
    return True


def sampler(call: ClientCall) -> Sampler:
    """The LLM layer's sampler (llm/providers/sampling.py) for one call: a sampling/createMessage to its client."""

    async def sample(messages: list[dict], system: str, max_tokens: int) -> tuple[str, str]:
        params = {"messages": [{"role": m["role"], "content": {"type": "text", "text": m["content"]}}
                               for m in messages],
                  "systemPrompt": system, "maxTokens": max_tokens, "includeContext": "none"}
        return _sampled_text(await call.ask("sampling/createMessage", params))

    return sample


def _sampled_text(result: dict) -> tuple[str, str]:
    """(text, model) of a CreateMessageResult; its content is one block or (2025-11-25 on) a list."""
    content = result.get("content")
    blocks = content if isinstance(content, list) else [content]
    texts = [b["text"] for b in blocks
             if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]
    if not texts:
        raise ClientRequestError("the client's sampling answer holds no text content")
    model = result.get("model")
    return "".join(texts), model if isinstance(model, str) else ""
