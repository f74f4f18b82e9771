"""Tool registry: name, schema, annotations, tier and handler of every MCP tool, and how a call runs.

A handler is `async def handler(ctx: ToolContext, args: dict) -> data`. It is thin: it resolves the
tag, calls a plain domain function in `taskmaster.tasks` through `ctx.service` and returns the
function's result, which becomes `data` of the response envelope. It signals a user-facing failure by
raising `TaskError`; the envelope, metrics and error shapes are built here, once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote

import orjson

from .. import __version__
from ..tasks.errors import TaskError
from ..tasks.service import WRITE_COPIES
from .schema import validate

log = logging.getLogger(__name__)

PRODUCT = "taskmaster"
ENVELOPE_VERSION = {"version": __version__, "name": PRODUCT}

Handler = Callable[["ToolContext", dict], Awaitable[Any]]
Check = Callable[[dict], list[str]]


class ParamError(Exception):
    """Arguments that violate the tool's schema: JSON-RPC error -32602."""


class UnknownTool(Exception):
    """No such tool (or not in the selected tier): JSON-RPC error -32601."""


@dataclass
class ToolContext:
    service: Any  # taskmaster.tasks.service.TaskService
    root: str  # normalised projectRoot
    node: str = ""  # name of the node answering
    config: Any = None  # taskmaster.config.Config
    progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None
    client: dict = field(default_factory=dict)  # the client's initialize params (capabilities, info)
    quorum: Callable[[], str | None] | None = None
    """In a cluster: None if a majority of the call's replicas is reachable, else why not (for
    decisions that must not be taken twice, like a claim)."""
    grant: Callable[[str, str, str, dict | None], Awaitable[str | None]] | None = None
    """In a cluster: grant(item, agent, expiresAt, lease seen on it) asks a majority of the tag's
    replicas to promise the item to the agent; None when they did, else why not."""
    sampler: Callable[[list[dict], str, int], Awaitable[tuple[str, str]]] | None = None
    """MCP sampling: sampler(messages, system, max_tokens) -> (text, model) asks the calling client's
    model (llm/providers/sampling.py); None when the client does not offer sampling or the call was
    forwarded from another node."""
    cluster: Any = None
    """The node's cluster services: `.operations` (supervised operations, replication/operations.py) and
    `.models` (other nodes' LLM providers, cluster/registry.py); None outside a taskmasterd node."""


@dataclass
class Tool:
    name: str
    description: str
    input_schema: dict
    annotations: dict
    handler: Handler
    check: Check | None = None  # extra argument rules (id formats) reported as -32602

    def listing(self) -> dict:
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema,
                "annotations": self.annotations}


_SPEC = json.loads(resources.files("taskmaster.tools").joinpath("schemas.json").read_text())
TIERS: dict[str, list[str]] = _SPEC["tiers"]
TOOLS: dict[str, Tool] = {}


def tool(name: str, check: Check | None = None) -> Callable[[Handler], Handler]:
    """Register `handler` as tool `name`, with the schema from schemas.json."""
    spec = _SPEC["tools"][name]

    def register(handler: Handler) -> Handler:
        TOOLS[name] = Tool(name, spec["description"], spec["inputSchema"], spec.get("annotations", {}),
                           handler, check)
        return handler

    return register


def load_all() -> dict[str, Tool]:
    """Import every tool module (registration happens on import)."""
    from . import ai, autopilot, dependencies, operations, project, tags, tasks_read, tasks_write  # noqa: F401

    missing = set(_SPEC["tools"]) - set(TOOLS)
    if missing:
        raise RuntimeError(f"tools without a handler: {sorted(missing)}")
    return TOOLS


def _canon(name: str) -> str:
    name = name.strip().lower().replace("-", "_")
    return "response-language" if name == "response_language" else name


def select(spec: str | None) -> list[str]:
    """Tool names for TASK_MASTER_TOOLS: core (default, alias lean), standard, all, or a list."""
    value = (spec or "").strip().lower()
    if value in ("", "core", "lean"):
        return list(TIERS["core"])
    if value in TIERS:
        return list(TIERS[value])
    known = {_canon(n): n for n in TIERS["all"]}
    chosen = []
    for part in value.split(","):
        name = known.get(_canon(part)) if part.strip() else None
        if name is None:
            if part.strip():
                log.warning("TASK_MASTER_TOOLS names an unknown tool: %s", part.strip())
            continue
        if name not in chosen:
            chosen.append(name)
    return chosen or list(TIERS["all"])


def normalize_root(raw: str) -> str:
    """projectRoot as Task Master resolves it: file:// URIs, %-escapes, backslashes, relative parts."""
    root = raw.strip()
    if root.startswith("file://"):
        root = root[len("file://"):]
    root = unquote(root).replace("\\", "/")
    if len(root) > 2 and root[0] == "/" and root[2] == ":":
        root = root[1:]  # "/C:/x" -> "C:/x"
    return os.path.normpath(os.path.abspath(root)).replace("\\", "/")


def text_result(text: str, is_error: bool = False) -> dict:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
    if is_error:
        result["isError"] = True
    return result


def error_text(message: str, tag: str | None) -> str:
    lines = [f"Error: {message}", f"Version: {__version__}", f"Name: {PRODUCT}"]
    if tag:
        lines.append(f"Current Tag: {tag}")
    return "\n".join(lines)


def check_call(name: str, arguments: Any, enabled: set[str] | None) -> tuple[Tool, dict]:
    """The tool and its validated arguments; raises UnknownTool / ParamError."""
    spec = TOOLS.get(name)
    if spec is None or (enabled is not None and name not in enabled):
        raise UnknownTool(f"Unknown tool: {name}")
    args, issues = validate(spec.input_schema, arguments if arguments is not None else {})
    if not issues and spec.check is not None:
        issues = spec.check(args)
    if issues:
        raise ParamError(f"Tool '{name}' parameter validation failed: {'; '.join(issues)}. "
                         "Please check the parameter types and values according to the tool's schema.")
    return spec, args


def call_tag(name: str, args: dict) -> str | None:
    """The tag a validated call names, "" for a call across tags (or on the project itself), None
    for a call on the current tag."""
    if name == "move_task" and (args.get("fromTag") or args.get("toTag")):
        return ""
    if "tag" not in TOOLS[name].input_schema.get("properties", {}):
        return ""
    return args.get("tag") or None


async def call_tool(name: str, arguments: Any, enabled: set[str] | None, make_ctx: Callable[[str], ToolContext],
                    metrics=None) -> dict:
    """Run one tools/call: returns the MCP result, or raises UnknownTool / ParamError."""
    spec, args = check_call(name, arguments, enabled)
    raw_root = _raw_root(args)
    started = time.perf_counter()
    outcome = "ok"
    tag = args.get("tag") or None
    try:
        if not raw_root:
            raise TaskError("projectRoot is required: pass the project's absolute path")
        ctx = make_ctx(normalize_root(raw_root))
        copies: list[int] = []
        receipt = WRITE_COPIES.set(copies)
        try:
            data = await spec.handler(ctx, args)
        finally:
            WRITE_COPIES.reset(receipt)
        tag = tag or ctx.service.view(ctx.root).current_tag
        body = {"data": data, "version": ENVELOPE_VERSION, "tag": tag}
        if copies:  # in a cluster: the durable copies the call's writes have (the fewest, if several)
            body["replicas"] = min(copies)
        return text_result(orjson.dumps(body, default=_json_default).decode())
    except TaskError as exc:
        outcome = "error"
        return text_result(error_text(exc.message, tag or _current_tag(make_ctx, raw_root)), is_error=True)
    except Exception as exc:  # the daemon never dies of a request
        outcome = "crash"
        log.exception("tool %s failed", name)
        return text_result(error_text(f"internal error in {name}: {exc}", tag), is_error=True)
    finally:
        if metrics is not None:
            metrics.tool_calls.labels(name, outcome).inc()
            metrics.tool_latency.labels(name).observe(time.perf_counter() - started)


def _raw_root(args: dict) -> str | None:
    return os.environ.get("TASK_MASTER_PROJECT_ROOT") or args.get("projectRoot")


def call_root(arguments: Any) -> str | None:
    """The normalised projectRoot a call works on, read before validation (None if it has none)."""
    raw = _raw_root(arguments) if isinstance(arguments, dict) else None
    return normalize_root(raw) if isinstance(raw, str) and raw.strip() else None


def _current_tag(make_ctx: Callable[[str], ToolContext], raw_root: str | None) -> str | None:
    if not raw_root:
        return None
    try:
        ctx = make_ctx(normalize_root(raw_root))
        return ctx.service.view(ctx.root).current_tag
    except Exception:
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
