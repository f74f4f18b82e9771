"""`taskmasterd`: flags -> Config -> uvloop -> Node.run. Nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time

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
    p.add_argument("--join", action="append", default=[], metavar="HOST:PORT",
                   help="gossip address of a member to join through (repeatable; any live one will do)")
    p.add_argument("--advertise", metavar="HOST:PORT", help="gossip address peers should use (needed "
                   "when --bind is a wildcard such as 0.0.0.0)")
    p.add_argument("--profile", choices=("lan", "local", "wan"), default=os.environ.get("TASKMASTER_PROFILE", "lan"),
                   help="membership timers: lan (memberlist's LAN values, default), local (loopback), wan")
    p.add_argument("--probe-interval", type=float, metavar="SECONDS",
                   help="override the profile's probe interval (e.g. 0.3 for sub-2 s failure detection)")
    p.add_argument("--cluster-key", action="append", default=[], metavar="BASE64",
                   help="32-byte key (base64) that authenticates and encrypts gossip; repeat to accept "
                   "several during a rotation (the first encrypts). Env: TASKMASTER_CLUSTER_KEY (comma list)")
    p.add_argument("--replicas", default=os.environ.get("TASKMASTER_REPLICAS", "3"), metavar="N|all",
                   help="copies of each tag's tasks (default 3); 'all' keeps a full copy on every node")
    p.add_argument("--write-quorum", type=int, default=2, metavar="W",
                   help="durable copies before a write is acknowledged (default 2, clamped to N)")
    p.add_argument("--rpc-port", type=int, default=0, metavar="PORT",
                   help="node-to-node RPC port on the --bind host (default: any free port, advertised)")
    p.add_argument("--name", default=os.environ.get("TASKMASTER_NAME", ""),
                   help="node name (default: generated once, kept in the data dir)")
    p.add_argument("--token", default=os.environ.get("TASKMASTER_TOKEN"),
                   help="bearer token for /mcp (required when --http is not loopback)")
    p.add_argument("--tools", default=os.environ.get("TASK_MASTER_TOOLS"),
                   help="tool tier: core (default), standard, all, or a comma list (TASK_MASTER_TOOLS)")
    p.add_argument("--print-client-config", action="store_true",
                   help="after the ready line, print MCP client configs to paste into an editor")
    p.add_argument("--log-level", default=os.environ.get("TASKMASTER_LOG_LEVEL", "info"))
    # Test-only: block the event loop for STALL seconds every EVERY seconds (Lifeguard tests).
    p.add_argument("--test-stall-loop", metavar="STALL,EVERY", help=argparse.SUPPRESS)
    # Test-only: this node's clock runs SECONDS off (the chaos harness's clock-skew nemesis).
    p.add_argument("--test-clock-offset", type=float, default=0.0, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version=f"taskmasterd {__version__}")
    a = p.parse_args(argv)
    try:
        http_host, http_port = split_hostport(a.http)
        gossip_host, gossip_port = split_hostport(a.bind)
        join = tuple(split_hostport(j) for j in a.join)
        advertise = split_hostport(a.advertise) if a.advertise else None
        replicas = _replicas(a.replicas)
    except ValueError as exc:
        p.error(str(exc))
    if a.write_quorum < 1:
        p.error("--write-quorum must be at least 1")
    keys = a.cluster_key or [k for k in os.environ.get("TASKMASTER_CLUSTER_KEY", "").split(",") if k.strip()]
    logging.basicConfig(level=a.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    global _print_client_config, _stall_loop
    _print_client_config = a.print_client_config
    if a.test_stall_loop:
        stall, every = (float(x) for x in a.test_stall_loop.split(","))
        _stall_loop = (stall, every)
    return Config(name=a.name, data_dir=a.data_dir, http_host=http_host, http_port=http_port,
                  gossip_host=gossip_host, gossip_port=gossip_port, advertise=advertise, join=join,
                  profile=a.profile, probe_interval=a.probe_interval, cluster_keys=tuple(keys),
                  token=a.token or None, tools=a.tools, replicas=replicas, write_quorum=a.write_quorum,
                  rpc_port=a.rpc_port, clock_offset=a.test_clock_offset)


def _replicas(value: str) -> int | None:
    if value.strip().lower() == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"--replicas takes a number or 'all', not {value!r}") from None
    if n < 1:
        raise ValueError("--replicas must be at least 1")
    return n


_print_client_config = False
_stall_loop: tuple[float, float] | None = None


async def _stall_forever(stall: float, every: float) -> None:
    """Simulate a starved node: the whole event loop freezes for `stall` seconds, periodically."""
    while True:
        await asyncio.sleep(every)
        time.sleep(stall)  # blocking on purpose


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
    stalls = asyncio.create_task(_stall_forever(*_stall_loop)) if _stall_loop else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("taskmasterd").info("stopping: finishing in-flight calls")
    if stalls is not None:
        stalls.cancel()
    await node.stop()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    # The WAL fsync runs in a worker thread that must take the GIL back to acknowledge a group of
    # writes; with the default 5 ms switch interval a busy event loop makes every group wait for it.
    sys.setswitchinterval(0.0005)
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
