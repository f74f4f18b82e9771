"""JSON-RPC 2.0 framing for MCP: parse a body, classify each message, build answers and errors.

Pure functions, no I/O. Everything a client can send is classified here, so the transport never meets
a shape it did not expect: garbage becomes an error object, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..tools.schema import json_type

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP 2026-07-28 additions (the official SDK's numbers)
HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022


class RpcError(Exception):
    """A JSON-RPC error to answer with; `data` is optional structured detail."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def answer(self, request_id: Any = None) -> dict:
        return error(request_id, self.code, self.message, self.data)


@dataclass(frozen=True, slots=True)
class Request:
    """A request (has an id: owed an answer) or a notification (no id: owed nothing)."""

    method: str
    params: dict
    id: str | int | None = None
    is_notification: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A response the client sent to a request of ours (sampling); the server reads its id and result
    from the raw message."""


def result(request_id: str | int, value: dict) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def error(request_id: Any, code: int, message: str, data: Any = None) -> dict:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": err}


def notification(method: str, params: dict) -> dict:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def parse(body: bytes) -> Any:
    """The decoded body; RpcError(-32700) when it is not JSON (bad UTF-8, too deep, 65-bit ints too)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RpcError(PARSE_ERROR, f"Parse error: {exc}") from None


def _valid_id(value: Any) -> bool:
    # MCP narrows JSON-RPC ids to strings and integers (null ids are not allowed).
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def request_id_of(message: Any) -> str | int | None:
    """The id to answer an invalid message with: its own when usable, else null."""
    if isinstance(message, dict) and _valid_id(message.get("id")):
        return message["id"]
    return None


def classify(message: Any) -> Request | Reply:
    """One decoded message as a Request or Reply; RpcError(-32600/-32602) when it is neither."""
    if not isinstance(message, dict):
        raise RpcError(INVALID_REQUEST, f"Invalid request: expected a JSON-RPC object, got {json_type(message)}")
    if message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"')
    has_id = "id" in message
    if has_id and not _valid_id(message["id"]):
        raise RpcError(INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer')
    method = message.get("method")
    if method is None and has_id and ("result" in message or "error" in message):
        return Reply()
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, 'Invalid request: "method" must be a non-empty string')
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, f'Invalid params: "params" must be an object, got {json_type(params)}')
    if not has_id:
        return Request(method, params, is_notification=True)
    return Request(method, params, message["id"])


def dumps(message: Any) -> bytes:
    """Compact JSON (orjson)."""
    return orjson.dumps(message)
