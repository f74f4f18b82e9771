"""`task-master-mcp`: an MCP server on stdin/stdout for editors that launch servers as commands.

Each stdin line (one JSON-RPC message or batch) is POSTed to a daemon's /mcp and every answer is
written to stdout as one line: JSON answers as they are, SSE answers (progress, then the result) one
event per line. With `--server URL` (or TASKMASTER_SERVER) it bridges to a running daemon; without, it
starts an embedded node on a free loopback port and bridges to that, so `npx`-style configs work
unchanged. stdout carries protocol messages only: logs and anything else printed go to stderr.

MCP sampling passes through as it is: in the handshake era the daemon's `sampling/createMessage`
requests are SSE events of the call (so they reach the client as lines), and the client's responses
are stdin lines POSTed in the same session like any message (answered 202); at 2026-07-28 they travel
inside results (`input_required`) and the client's retried calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any, BinaryIO

import aiohttp
import orjson

from .. import logs
from . import jsonrpc
from .server import LATEST_HANDSHAKE

log = logging.getLogger("task-master-mcp")

# Connecting is quick or not happening; a tool call may legitimately take minutes (LLM tools).
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)
DRAIN_SECONDS = 30.0  # on stdin EOF, how long in-flight calls may take to answer before we exit
_REINIT_ID = "task-master-mcp/reinitialize"


class Bridge:
    """Forwards JSON-RPC lines to one daemon's /mcp and writes the answers to `out`."""

    def __init__(self, url: str, out: BinaryIO, token: str | None = None) -> None:
        self.url = url
        self._out = out
        self._base_headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if token:
            self._base_headers["Authorization"] = f"Bearer {token}"
        self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._initialize: dict | None = None  # the client's initialize, replayed if the daemon forgets us
        self._reopening = asyncio.Lock()

    async def close(self) -> None:
        if self._session_id is not None:
            try:
                async with self._http.delete(self.url, headers=self._headers(None)):
                    pass
            except (aiohttp.ClientError, OSError):
                pass  # the daemon is gone already; nothing to end
        await self._http.close()

    async def forward(self, line: bytes, message: Any) -> None:
        """Send one stdin line (`message` is its decoded form, None if it is not JSON) and write its
        answers. Never raises: failures become JSON-RPC errors."""
        request_id = _request_id(message)
        try:
            lost = await self._post(line, message, request_id, retry_on_404=True)
            if lost is not None:  # the daemon restarted or dropped our session: open a new one, try once more
                await self._reopen(lost)
                await self._post(line, message, request_id, retry_on_404=False)
        except (aiohttp.ClientError, OSError) as exc:  # OSError covers timeouts
            log.warning("daemon at %s unreachable: %s", self.url, exc)
            if request_id is not None:
                self._write_error(request_id, f"cannot reach the taskmaster daemon at {self.url}: "
                                  f"{exc or type(exc).__name__}")
        except Exception as exc:  # a bug here must not leave the editor waiting forever
            log.exception("bridging failed")
            if request_id is not None:
                self._write_error(request_id, f"task-master-mcp failed: {type(exc).__name__}: {exc}")

    async def _post(self, line: bytes, message: Any, request_id: Any, retry_on_404: bool) -> str | None:
        """POST one message and write its answers; for a lost session to retry, its id (nothing written)."""
        if _is_initialize(message):
            self._initialize = message
            self._session_id = self._protocol_version = None
        headers = self._headers(message)
        async with self._http.post(self.url, data=line, headers=headers) as response:
            if response.status == 404 and retry_on_404 and "Mcp-Session-Id" in headers:
                return headers["Mcp-Session-Id"]
            kind = response.content_type
            if kind == "text/event-stream":
                await self._relay_sse(response, request_id)
            elif kind == "application/json":
                body = await response.read()
                if _is_initialize(message):
                    self._adopt_session(response, body)
                self._write(_with_id(body, request_id))
            elif response.status != 202 and request_id is not None:
                text = (await response.text(errors="replace"))[:200]
                self._write_error(request_id, f"daemon answered HTTP {response.status}: {text}")
            return None

    async def _reopen(self, lost: str) -> None:
        async with self._reopening:
            if self._session_id != lost:
                return  # a concurrent request already opened the new session
            log.info("session ended on the daemon; opening a new one")
            self._session_id = None
            params = (self._initialize or {}).get("params") or {"protocolVersion": LATEST_HANDSHAKE,
                                                                 "capabilities": {}}
            request = orjson.dumps({"jsonrpc": "2.0", "id": _REINIT_ID, "method": "initialize",
                                    "params": params})
            async with self._http.post(self.url, data=request, headers=self._headers(None)) as response:
                self._adopt_session(response, await response.read())
            notice = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
            async with self._http.post(self.url, data=notice, headers=self._headers(None)):
                pass

    def _adopt_session(self, response: aiohttp.ClientResponse, body: bytes) -> None:
        self._session_id = response.headers.get("Mcp-Session-Id")
        try:
            self._protocol_version = orjson.loads(body)["result"]["protocolVersion"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._protocol_version = None

    def _headers(self, message: Any) -> dict[str, str]:
        headers = dict(self._base_headers)
        meta = _stateless_meta(message)
        if meta is not None:  # a 2026-07-28 request: its envelope names the version; routing headers mirror it
            headers["MCP-Protocol-Version"] = str(meta["io.modelcontextprotocol/protocolVersion"])
            headers["Mcp-Method"] = message["method"]
            return headers
        if self._session_id is not None:
            headers["Mcp-Session-Id"] = self._session_id
        if self._protocol_version is not None:
            headers["MCP-Protocol-Version"] = self._protocol_version
        return headers

    async def _relay_sse(self, response: aiohttp.ClientResponse, request_id: Any) -> None:
        """Each SSE event's data as one line (split by hand: aiohttp's readline caps lines at 128 KiB).
        A stream that ends before the answer gets an error answer, so the client never waits forever."""
        lines, data, last = _Lines(), [], b""
        async for chunk in response.content.iter_any():
            for line in lines.feed(chunk):
                field = line.rstrip(b"\r")
                if field.startswith(b"data:"):
                    data.append(field[5:].removeprefix(b" "))
                elif not field and data:
                    # Several data lines were one JSON text split at newlines, which JSON reads as spaces.
                    last = b" ".join(data)
                    self._write(last)
                    data = []
        if request_id is not None and not _is_answer(last):
            self._write_error(request_id, "the daemon ended the progress stream before answering")

    def _write_error(self, request_id: Any, message: str) -> None:
        self._write(jsonrpc.dumps(jsonrpc.error(request_id, jsonrpc.INTERNAL_ERROR, message)))

    def _write(self, body: bytes) -> None:
        body = body.strip()
        if b"\n" in body:  # one message per line, whatever the server's JSON looked like
            body = jsonrpc.dumps(orjson.loads(body))
        # One write per message, no await in between: concurrent answers never interleave.
        self._out.write(body + b"\n")
        self._out.flush()


class _Lines:
    """Splits a byte stream into lines, each byte scanned once however long the line."""

    def __init__(self) -> None:
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        *ends, rest = chunk.split(b"\n")
        lines = []
        for piece in ends:
            self._partial += piece
            lines.append(bytes(self._partial))
            self._partial.clear()
        self._partial += rest
        return lines

    def rest(self) -> bytes:
        return bytes(self._partial)


def _request_id(message: Any) -> Any:
    return message.get("id") if isinstance(message, dict) and "method" in message else None


def _is_answer(event: bytes) -> bool:
    try:
        message = orjson.loads(event)
    except orjson.JSONDecodeError:
        return False
    return isinstance(message, dict) and ("result" in message or "error" in message)


def _is_initialize(message: Any) -> bool:
    return isinstance(message, dict) and message.get("method") == "initialize"


def _stateless_meta(message: Any) -> dict | None:
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and "io.modelcontextprotocol/protocolVersion" in meta:
        return meta
    return None


def _with_id(body: bytes, request_id: Any) -> bytes:
    """Refusals made before the daemon read the id (413, 401, 404...) say `id: null`; name ours."""
    if request_id is None or b'"id":null' not in body:
        return body
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if isinstance(answer, dict) and answer.get("id") is None:
        answer["id"] = request_id
        return jsonrpc.dumps(answer)
    return body


def _claim_stdout() -> BinaryIO:
    """A private handle on stdout for protocol messages; fd 1 and sys.stdout then point at stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[bytes | None]:
    """stdin lines on a queue (None at EOF). A daemon thread reads, so pipes, files and ttys all work
    and a blocked read never holds up exit; it reads the raw fd, because a daemon thread parked inside
    sys.stdin's buffered reader makes interpreter shutdown abort."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def read() -> None:
        lines = _Lines()
        try:
            while chunk := os.read(0, 1 << 16):
                for line in lines.feed(chunk):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            if last := lines.rest():  # a final line without its newline
                loop.call_soon_threadsafe(queue.put_nowait, last)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:
            pass  # the loop closed: we are exiting anyway

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return queue


async def serve(bridge: Bridge, lines: asyncio.Queue[bytes | None]) -> None:
    """Forward lines until EOF, then let in-flight calls answer (up to DRAIN_SECONDS)."""
    inflight: set[asyncio.Task] = set()
    while (line := await lines.get()) is not None:
        if not line.strip():
            continue
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None  # forwarded anyway: the daemon words the parse error
        if _is_initialize(message):
            await bridge.forward(line, message)  # later requests need its session id
            continue
        task = asyncio.ensure_future(bridge.forward(line, message))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    if inflight:
        await asyncio.wait(inflight, timeout=DRAIN_SECONDS)


async def run(args: argparse.Namespace) -> int:
    out = _claim_stdout()
    node = None
    url = args.server
    if not url:
        from ..config import Config
        from ..node import Node
        from ..storage import StoreLockedError

        node = Node(Config(name="", data_dir=args.data_dir, http_port=0, gossip_port=0,
                           tools=os.environ.get("TASK_MASTER_TOOLS")))
        try:
            await node.start()
        except StoreLockedError as exc:
            log.error("%s\nAnother task-master-mcp or taskmasterd holds %s: run one `taskmasterd --data-dir %s` "
                      "and start this with --server URL instead.", exc, args.data_dir, args.data_dir)
            return 1
        except (ValueError, OSError) as exc:
            log.error("cannot start the embedded node: %s", exc)
            return 1
        url = node.http_url
        log.info("embedded node %s serving %s", node.name, url)
    bridge = Bridge(url, out, args.token)
    loop = asyncio.get_running_loop()
    work = asyncio.ensure_future(serve(bridge, _stdin_lines(loop)))
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C still raises KeyboardInterrupt
            loop.add_signal_handler(sig, work.cancel)
    try:
        await work
    except asyncio.CancelledError:
        log.info("signalled: stopping")
    finally:
        await bridge.close()
        if node is not None:
            await node.stop()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="task-master-mcp", description="Task Master MCP server on stdio.")
    p.add_argument("--server", default=os.environ.get("TASKMASTER_SERVER"), metavar="URL",
                   help="a running taskmasterd's MCP URL (default: run an embedded node)")
    p.add_argument("--token", default=os.environ.get("TASKMASTER_TOKEN"),
                   help="bearer token for the daemon (TASKMASTER_TOKEN)")
    p.add_argument("--data-dir", default=os.path.expanduser(os.path.join("~", ".taskmaster", "data")),
                   help="data directory of the embedded node (default ~/.taskmaster/data)")
    p.add_argument("--log-level", default=os.environ.get("TASKMASTER_LOG_LEVEL", "warning"),
                   choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default=os.environ.get("TASKMASTER_LOG_FORMAT", "text"), choices=("text", "json"),
                   help="text, or json: one object per line (TASKMASTER_LOG_FORMAT)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logs.setup(args.log_level, args.log_format, [args.token] if args.token else [])
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        code = runner.run(run(args))
    sys.exit(code)


if __name__ == "__main__":
    main()
