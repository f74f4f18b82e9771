"""`taskmasterd`: flags, environment and config file -> Config -> uvloop -> Node.run; and the `backup`
and `restore` subcommands. Nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping

from . import __version__, backup, logs
from .config import ENV_CONFIG, OPTIONS, Config, ConfigError, Sources, load, render, secrets
from .node import Node
from .storage import StoreLockedError

SUBCOMMANDS = ("backup", "restore")
EPILOG = f"""\
subcommands:
  taskmasterd backup --server URL --to DIR [--token T]
      ask a running node for a consistent checkpoint of its data, without stopping it
  taskmasterd restore --from DIR --data-dir DIR
      prepare a data directory from a backup; a node started on it rejoins and converges

Each option is also an environment variable (shown in brackets) and a key of the --config file
(the option's name, e.g. data_dir or write_quorum); the config file is read only when named by
--config or {ENV_CONFIG}. Precedence, highest first:
  flag > environment > config file > default
--print-config shows the result and where each value came from."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="taskmasterd", description="Task Master MCP tools as a cluster node.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help=f"TOML file of options [{ENV_CONFIG}]")
    p.add_argument("--print-config", action="store_true",
                   help="print the configuration in effect as TOML (secrets masked) and exit")
    defaults = Config()
    for opt in OPTIONS:
        default = opt.get(defaults)
        shown = f"; default {opt.render(default)}" if default not in (None, "", ()) and not opt.secret else ""
        # No argparse default: an absent flag must not hide the variable or the file (see load()).
        p.add_argument(opt.flag, dest=opt.key, metavar=opt.metavar, default=argparse.SUPPRESS,
                       action="append" if opt.many else "store", help=f"{opt.help} [{opt.env}{shown}]")
    p.add_argument("--print-client-config", action="store_true",
                   help="after the ready line, print MCP client configs to paste into an editor")
    # Test-only: block the event loop for STALL seconds every EVERY seconds (Lifeguard tests).
    p.add_argument("--test-stall-loop", metavar="STALL,EVERY", help=argparse.SUPPRESS)
    # Test-only: this node's clock runs SECONDS off (the chaos harness's clock-skew nemesis).
    p.add_argument("--test-clock-offset", type=float, default=0.0, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version=f"taskmasterd {__version__}")
    return p


def parse(argv: list[str] | None = None,
          env: Mapping[str, str] | None = None) -> tuple[Config, Sources, argparse.Namespace]:
    """The Config for a command line (flag > environment > config file > default), where each value
    came from, and the flags that are not Config. A bad value exits 2 with a message naming it."""
    env = os.environ if env is None else env
    p = build_parser()
    a = p.parse_args(argv)
    flags = {opt.key: getattr(a, opt.key) for opt in OPTIONS if hasattr(a, opt.key)}
    a.config = a.config or env.get(ENV_CONFIG, "").strip() or None
    try:
        config, sources = load(flags, env, a.config)
    except ConfigError as exc:
        p.error(str(exc))
    config.clock_offset = a.test_clock_offset
    if a.test_stall_loop:
        stall, every = (float(x) for x in a.test_stall_loop.split(","))
        a.test_stall_loop = (stall, every)
    return config, sources, a


def parse_args(argv: list[str] | None = None) -> Config:
    return parse(argv)[0]


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


async def run(config: Config, print_client_config: bool = False,
              stall_loop: tuple[float, float] | None = None) -> None:
    node = Node(config)
    await node.start()
    print(node.ready_line(), flush=True)
    if print_client_config:
        print(f"\nMCP endpoint: {node.http_url}\nPaste into your MCP client's config:\n{client_config(node)}\n",
              flush=True)
    stalls = asyncio.create_task(_stall_forever(*stall_loop)) if stall_loop else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("taskmasterd").info("stopping: leaving the cluster, finishing in-flight calls",
                                          extra={"event": "leave", "node": node.name})
    if stalls is not None:
        stalls.cancel()
    await node.stop()


def freeze_after_full_collection(phase: str, info: dict) -> None:
    """What survived a full collection is long-lived (cached tasks, the store's digests): freeze it
    so the next full collections skip it. Unfrozen, a node caching 100,000 tasks stops every few
    tens of thousands of writes for 0.24-1.1 s to scan them all; frozen, for under 1 ms
    (scripts/bench_gc.py).
    The cost: a reference cycle that was alive at a full collection and dies later is never
    collected (plain task data holds no cycles; connection objects may)."""
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        sys.exit(backup.main(argv))  # `taskmasterd backup|restore ...`: their own flags
    config, sources, flags = parse(argv)
    if flags.print_config:
        print(render(config, sources, flags.config), end="")
        sys.exit(0)
    logs.setup(config.log_level, config.log_format, secrets(config))
    # The WAL fsync runs in a worker thread that must take the GIL back to acknowledge a group of
    # writes; with the default 5 ms switch interval a busy event loop makes every group wait for it.
    sys.setswitchinterval(0.0005)
    gc.callbacks.append(freeze_after_full_collection)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # no uvloop on this platform: the stdlib loop works, just slower
        runner = asyncio.Runner()
    try:
        with runner:
            runner.run(run(config, flags.print_client_config, flags.test_stall_loop))
    except StoreLockedError as exc:
        sys.exit(f"taskmasterd: {exc}")
    except (ValueError, OSError) as exc:  # bad flag combinations, address in use
        sys.exit(f"taskmasterd: {exc}")


if __name__ == "__main__":
    main()
