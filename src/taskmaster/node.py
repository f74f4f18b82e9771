"""Node: builds the layers of one taskmasterd in order, and takes them down in reverse.

This is the only module that wires layers together; `daemon.py` only turns flags into a Config.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket

from aiohttp import web

from . import __version__
from .api import build_app
from .config import Config
from .crdt import HLC
from .metrics import Metrics
from .storage import Store
from .tasks.service import TaskService

log = logging.getLogger(__name__)


def _node_name(config: Config) -> str:
    """The configured name, else one generated once and kept in the data dir (stable across restarts)."""
    if config.name:
        return config.name
    path = os.path.join(config.data_dir, "node.json")
    try:
        with open(path) as f:
            return json.load(f)["name"]
    except (OSError, ValueError, KeyError):
        name = f"{socket.gethostname()}-{secrets.token_hex(3)}"
        with open(path + ".tmp", "w") as f:
            json.dump({"name": name}, f)
        os.replace(path + ".tmp", path)
        return name


class Node:
    def __init__(self, config: Config):
        self.config = config
        self.name = ""
        self.metrics = Metrics()
        self.store: Store | None = None
        self.service: TaskService | None = None
        self._runner: web.AppRunner | None = None
        self._gossip_sock: socket.socket | None = None
        self.http_port = 0
        self.gossip_port = 0
        self._stopped = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        if not cfg.http_is_loopback and not cfg.token:
            raise ValueError(f"HTTP on non-loopback address {cfg.http_host} requires --token "
                             "(or TASKMASTER_TOKEN): nobody outside may call tools unauthenticated")
        os.makedirs(cfg.data_dir, exist_ok=True)
        self.name = _node_name(cfg)
        self.store = Store(os.path.join(cfg.data_dir, "db"), self.metrics)
        try:
            hlc = HLC(self.name, max_offset_ms=cfg.hlc_max_offset_ms)
            from .tasks.files import import_project

            self.service = TaskService(self.store, hlc, self.metrics, importer=import_project)
            self._reserve_gossip()
            self._runner = web.AppRunner(build_app(self), access_log=None,
                                         shutdown_timeout=cfg.drain_seconds)
            await self._runner.setup()
            site = web.TCPSite(self._runner, cfg.http_host, cfg.http_port)
            await site.start()
            self.http_port = self._runner.addresses[0][1]
        except BaseException:
            await self._close()
            raise

    def _reserve_gossip(self) -> None:
        # Hold the gossip address now so the ready line names real ports; the membership layer
        # takes this socket over.
        family = socket.AF_INET6 if ":" in self.config.gossip_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((self.config.gossip_host, self.config.gossip_port))
        self._gossip_sock = sock
        self.gossip_port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Finish in-flight calls (up to drain_seconds), flush, close."""
        await self._close()
        self._stopped.set()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._gossip_sock is not None:
            self._gossip_sock.close()
            self._gossip_sock = None
        if self.store is not None:
            self.store.close()
            self.store = None

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # ---- addresses -------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        host = self.config.http_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.http_port}/mcp"

    @property
    def gossip_addr(self) -> str:
        return f"{self.config.gossip_host}:{self.gossip_port}"

    def ready_line(self) -> str:
        return f"taskmasterd ready name={self.name} http={self.http_url} gossip={self.gossip_addr}"

    def health(self) -> dict:
        return {"status": "ok", "name": self.name, "version": __version__, "http": self.http_url,
                "gossip": self.gossip_addr}
