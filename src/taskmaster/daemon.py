"""`taskmasterd`: flags -> Config -> uvloop -> Node.run. Nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from . import __version__
from .config import Config, split_hostport
from .node import Node
from .storage import StoreLockedError


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="taskmasterd", description="Task Master MCP tools as a cluster node.")
    p.add_argument("--data-dir", default=os.environ.get("TASKMASTER_DATA_DIR", "./taskmaster-data"),
                   help="RocksDB data directory (default ./taskmaster-data)")
    p.add_argument("--http", default="127.0.0.1:7070", metavar="HOST:PORT",
                   help="MCP/HTTP address (default 127.0.0.1:7070; port 0 = any free port)")
    p.add_argument("--bind", default="127.0.0.1:7946", metavar="HOST:PORT",
                   help="gossip address (default 127.0.0.1:7946; port 0 = any free port)")
    p.add_argument("--name", default=os.environ.get("TASKMASTER_NAME", ""),
                   help="node name (default: generated once, kept in the data dir)")
    p.add_argument("--token", default=os.environ.get("TASKMASTER_TOKEN"),
                   help="bearer token for /mcp (required when --http is not loopback)")
    p.add_argument("--tools", default=os.environ.get("TASK_MASTER_TOOLS"),
                   help="tool tier: core (default), standard, all, or a comma list (TASK_MASTER_TOOLS)")
    p.add_argument("--print-client-config", action="store_true",
                   help="after the ready line, print MCP client configs to paste into an editor")
    p.add_argument("--log-level", default=os.environ.get("TASKMASTER_LOG_LEVEL", "info"))
    p.add_argument("--version", action="version", version=f"taskmasterd {__version__}")
    a = p.parse_args(argv)
    try:
        http_host, http_port = split_hostport(a.http)
        gossip_host, gossip_port = split_hostport(a.bind)
    except ValueError as exc:
        p.error(str(exc))
    logging.basicConfig(level=a.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    global _print_client_config
    _print_client_config = a.print_client_config
    return Config(name=a.name, data_dir=a.data_dir, http_host=http_host, http_port=http_port,
                  gossip_host=gossip_host, gossip_port=gossip_port, token=a.token or None, tools=a.tools)


_print_client_config = False


def client_config(node: Node) -> str:
    """Ready-to-paste MCP client configs: HTTP for clients that speak it, stdio for the rest."""
    http = {"type": "http", "url": node.http_url}
    if node.config.token:
        http["headers"] = {"Authorization": "Bearer <your token>"}
    stdio = {"command": "task-master-mcp", "args": ["--server", node.http_url]}
    return json.dumps({"mcpServers": {"taskmaster": http}}, indent=2) + "\n\nor, for stdio-only clients:\n" + \
        json.dumps({"mcpServers": {"taskmaster": stdio}}, indent=2)


async def run(config: Config) -> None:
    node = Node(config)
    await node.start()
    print(node.ready_line(), flush=True)
    if _print_client_config:
        print(f"\nMCP endpoint: {node.http_url}\nPaste into your MCP client's config:\n{client_config(node)}\n",
              flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("taskmasterd").info("stopping: finishing in-flight calls")
    await node.stop()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # no uvloop on this platform: the stdlib loop works, just slower
        runner = asyncio.Runner()
    try:
        with runner:
            runner.run(run(config))
    except StoreLockedError as exc:
        sys.exit(f"taskmasterd: {exc}")
    except (ValueError, OSError) as exc:  # bad flag combinations, address in use
        sys.exit(f"taskmasterd: {exc}")


if __name__ == "__main__":
    main()
