"""A one-shot MCP client over Streamable HTTP (aiohttp), plus the daemon's admin endpoints.

The CLI runs one tool per process: initialize, notifications/initialized, tools/call, then it ends the
session. Every failure becomes a `CliError` whose `exit_code` the CLI returns.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

PROTOCOL_VERSION = "2025-11-25"
CLIENT_INFO = {"name": "task-master-cli", "version": "1"}
# Connecting is quick or not happening; a tool call (generate on a big tag) may take a while.
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=300)
_ERROR_TRAILER = ("Current Tag:", "Name:", "Version:")  # last line first; Current Tag is optional


class CliError(Exception):
    """A failure the user sees as one message; `exit_code` 1 unless a subclass says otherwise."""

    exit_code = 1


class Unreachable(CliError):
    exit_code = 3


def admin_base(url: str) -> str:
    """The daemon's base URL: the MCP URL without its trailing /mcp."""
    base = url.rstrip("/")
    return base[: -len("/mcp")] if base.endswith("/mcp") else base


def tool_error_message(text: str) -> str:
    """The message of an isError text `Error: <message>\\nVersion: ...\\nName: ...[\\nCurrent Tag: ...]`."""
    lines = text.split("\n")
    for prefix in _ERROR_TRAILER:
        if len(lines) > 1 and lines[-1].startswith(prefix):
            lines.pop()
    message = "\n".join(lines)
    return message[len("Error: "):] if message.startswith("Error: ") else message


def rpc_error_message(error: Any) -> str:
    if not isinstance(error, dict):
        return f"malformed JSON-RPC error: {error!r}"
    message = str(error.get("message", "unknown error"))
    if error.get("code") == -32601:
        message += ("\n(the daemon does not offer this tool: start it with `--tools all` "
                    "or TASK_MASTER_TOOLS=all)")
    return message


def _unreachable(url: str, exc: BaseException) -> Unreachable:
    reason = str(exc) or type(exc).__name__
    return Unreachable(f"cannot reach taskmasterd at {url} ({reason}).\n"
                       "Start one with `make run` (or `taskmasterd`), or point --server / "
                       "TASKMASTER_SERVER at a running node.")


class McpHttpClient:
    def __init__(self, url: str, token: str | None = None):
        self.url = url
        self._headers = {"Accept": "application/json, text/event-stream"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._http: aiohttp.ClientSession | None = None
        self._next_id = 0
        self._session_id: str | None = None
        self._initialized = False

    async def __aenter__(self) -> McpHttpClient:
        self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        return self

    async def __aexit__(self, *exc_info) -> None:
        try:
            if self._session_id is not None:
                await self._end_session()
        finally:
            await self._http.close()

    # ---- MCP ---------------------------------------------------------------------------------------
    async def call_tool(self, name: str, arguments: dict) -> dict:
        """Run one tool; returns the response envelope {data, version, tag} or raises CliError."""
        if not self._initialized:
            await self._initialize()
        result = await self._request("tools/call", {"name": name, "arguments": arguments})
        content = result.get("content") or [{}]
        text = content[0].get("text", "") if isinstance(content[0], dict) else ""
        if result.get("isError"):
            raise CliError(tool_error_message(text))
        try:
            envelope = json.loads(text)
        except ValueError:
            raise CliError(f"{name} answered something that is not JSON: {text[:200]!r}") from None
        if not isinstance(envelope, dict) or "data" not in envelope:
            raise CliError(f"{name} answered without a data field: {text[:200]!r}")
        return envelope

    async def _initialize(self) -> None:
        result = await self._request("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO})
        self._headers["MCP-Protocol-Version"] = str(result.get("protocolVersion") or PROTOCOL_VERSION)
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self._initialized = True

    async def _request(self, method: str, params: dict) -> dict:
        self._next_id += 1
        message = await self._post({"jsonrpc": "2.0", "id": self._next_id, "method": method,
                                    "params": params})
        if message is None:
            raise CliError(f"{method}: the daemon sent no answer")
        if "error" in message:
            raise CliError(rpc_error_message(message["error"]))
        result = message.get("result")
        if not isinstance(result, dict):
            raise CliError(f"{method}: malformed answer {str(message)[:200]!r}")
        return result

    async def _post(self, payload: dict) -> dict | None:
        """POST one JSON-RPC message; returns the answer to it (None for a notification)."""
        try:
            async with self._http.post(self.url, json=payload, headers=self._headers) as resp:
                session_id = resp.headers.get("Mcp-Session-Id")
                if session_id and self._session_id is None:
                    self._session_id = session_id
                    self._headers["Mcp-Session-Id"] = session_id
                if resp.status == 202 or "id" not in payload:
                    if resp.status >= 400:
                        raise CliError(f"{payload['method']}: HTTP {resp.status} from {self.url}")
                    return None
                self._check_auth(resp)
                if resp.content_type == "text/event-stream":
                    return await _answer_from_sse(resp, payload["id"])
                body = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:  # refused, reset, DNS, read timeout
            raise _unreachable(self.url, exc) from None
        try:
            message = json.loads(body)
        except ValueError:
            raise CliError(f"HTTP {resp.status} from {self.url} is not JSON-RPC: {body[:200]!r} "
                           "(is --server the daemon's /mcp URL?)") from None
        if not isinstance(message, dict):
            raise CliError(f"HTTP {resp.status} from {self.url}: unexpected answer {body[:200]!r}")
        return message

    def _check_auth(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status in (401, 403):
            hint = "the token was refused" if "Authorization" in self._headers else "a token is required"
            raise CliError(f"{self.url}: {hint} (HTTP {resp.status}); pass --token or set TASKMASTER_TOKEN")

    async def _end_session(self) -> None:
        # Courtesy: the daemon may forget the session now rather than at its idle timeout.
        try:
            async with self._http.delete(self.url, headers=self._headers):
                pass
        except (aiohttp.ClientError, TimeoutError):
            pass

    # ---- admin endpoints ---------------------------------------------------------------------------
    async def admin(self, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        """POST `body` to the daemon's `path` (GET it with `query` when there is no body, as for
        /cluster); returns its JSON answer or raises CliError."""
        url = admin_base(self.url) + path
        headers = {k: v for k, v in self._headers.items() if k == "Authorization"}
        try:
            async with self._http.request("GET" if body is None else "POST", url, json=body, params=query,
                                          headers=headers) as resp:
                self._check_auth(resp)
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(url, exc) from None
        if resp.status == 404:
            raise CliError(f"{url}: this daemon has no {path} endpoint (is it an older taskmasterd?)")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if resp.status != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise CliError(error or f"{url}: HTTP {resp.status}: {text[:200]!r}")
        return answer


async def _answer_from_sse(resp: aiohttp.ClientResponse, request_id: int) -> dict:
    """Read an SSE stream until the JSON-RPC answer to `request_id` (progress notifications skipped)."""
    data: list[str] = []
    async for raw in resp.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            message = _json_or_none("\n".join(data))
            data = []
            if isinstance(message, dict) and message.get("id") == request_id:
                return message
    message = _json_or_none("\n".join(data)) if data else None
    if isinstance(message, dict) and message.get("id") == request_id:
        return message
    raise CliError("the daemon's event stream ended without an answer")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
