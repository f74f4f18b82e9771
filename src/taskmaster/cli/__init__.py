"""`task-master`: Task Master's everyday commands as a client of a running taskmasterd.

Exit codes: 0 ok, 1 tool or JSON-RPC error, 2 usage error, 3 daemon unreachable, 4 `cluster` answered
and some member is suspect or dead (its table or JSON is printed all the same).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TextIO

from .commands import Request, Settings, UsageError, parse, settings
from .render import VIEWS, Printer, unwell_members

EXIT_USAGE = 2
EXIT_DEGRADED = 4


async def execute(request: Request, cfg: Settings) -> tuple[object, str | None]:
    """Send the request; returns (data, tag) or raises CliError."""
    from .client import McpHttpClient

    async with McpHttpClient(cfg.server, cfg.token) as client:
        if request.admin and request.method == "GET":
            return await client.admin(request.target, query=request.args), None
        if request.admin:
            return await client.admin(request.target, {"projectRoot": cfg.project, **request.args}), None
        envelope = await client.call_tool(request.target, {"projectRoot": cfg.project, **request.args})
        return envelope["data"], envelope.get("tag")


def run(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        request, ns = parse(argv)
    except UsageError as exc:
        err.write(f"task-master {exc}\n")
        return EXIT_USAGE
    cfg = settings(ns)
    # Imported only now: --help and usage errors answer without loading aiohttp (~0.3 s).
    from .client import CliError

    try:
        data, tag = asyncio.run(execute(request, cfg))
    except CliError as exc:
        err.write(f"task-master: {exc}\n")
        return exc.exit_code
    if cfg.json:
        out.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        Printer(out).print(VIEWS[request.view](data, tag))
    return EXIT_DEGRADED if request.view == "cluster" and unwell_members(data) else 0


def main(argv: list[str] | None = None) -> None:
    try:
        sys.exit(run(argv))
    except KeyboardInterrupt:
        sys.exit(130)
