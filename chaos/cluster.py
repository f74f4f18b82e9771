"""A cluster of real taskmasterd processes that faults can be done to.

Two modes. `netns` (root with iproute2): each node runs in its own network namespace on a bridge
(tests/netns.py), partitions are blackhole routes and packet faults are `tc netem` on the node's
link. `loopback` (anyone): nodes share 127.0.0.1 and a partition is the daemons' own fault
injection (POST /admin/faults: a node drops gossip and RPC to the peers it is told to isolate; set
on both sides). Where `tc netem` is missing (loopback mode, or a kernel without sch_netem), packet
loss and delay are the daemon's too (POST /admin/faults {"loss", "delayMs"}). Either way each node keeps its name, data dir and ports for the whole run, so a
restarted node comes back where its peers expect it.

Process actions block for up to a second (a restart waits for the ready line), so the async methods
run them in a thread: the workload's event loop keeps going while the nemesis acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import IO

import aiohttp

from tests.daemon import BIN, Daemon
from tests.netns import NetnsHosts

UP, DOWN, PAUSED = "up", "down", "paused"
HTTP_PORT, GOSSIP_PORT = 7070, 7946  # netns mode: every host has its own address, so fixed ports
ADMIN_TIMEOUT = aiohttp.ClientTimeout(total=5)
# A clean stop drains in-flight calls, which wait on paused or cut-off peers: the clock nemesis must
# not hold up the schedule for that.
CLOCK_RESTART_GRACE = 3.0
CLOSE_GRACE = 5.0
PROBED_FLAGS = ("--replicas", "--write-quorum", "--test-clock-offset")


class NodeProcess(Daemon):
    """One node: a Daemon whose command may run inside a namespace and whose output goes to a log
    file (a thread drains the pipes; a full pipe would block the daemon)."""

    def __init__(self, name: str, data_dir: Path, log_path: Path, args: list[str], hosts: NetnsHosts | None,
                 index: int):
        super().__init__(data_dir, *args)
        self.log_path = log_path
        self.hosts, self.index = hosts, index
        self.offset = 0.0
        self._log: IO[str] | None = None
        self._drains: list[threading.Thread] = []
        self.node_name = name

    def command(self) -> list[str]:
        command = super().command()
        if self.offset:
            command += ["--test-clock-offset", f"{self.offset:g}"]
        return self.hosts.wrap(self.index, command) if self.hosts else command

    def start(self, timeout: float = 30.0) -> NodeProcess:
        self._log = self.log_path.open("a")
        self._log.write(f"==== chaos: start {' '.join(self.command())}\n")
        self._log.flush()
        try:
            super().start(timeout)
        except BaseException:
            self._close_log()
            raise
        self._log.write(f"==== chaos: ready in {self.ready_seconds:.2f} s\n")
        # Daemon.start drains stderr through _drain (into the log file); stdout is drained here.
        self._drains = [threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True)]
        self._drains[0].start()
        return self

    def _drain(self, stream) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                self._log.write(line)
                self._log.flush()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def end(self, sig: int, grace: float = 15.0) -> None:
        """Stop the process with `sig` (SIGTERM: a clean stop; SIGKILL: kill -9), waiting `grace`
        seconds before killing it outright."""
        if self.running:
            self.proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self._drains:
            t.join(5)
        self._drains = []
        super().stop()  # the process is gone: this closes its pipes
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.write(f"==== chaos: exited {self.proc.returncode if self.proc else None}\n")
            self._log.close()
            self._log = None


class Cluster:
    """`size` nodes named n0..n{size-1}, their faults, and what is in force now (`state`, `cut`)."""

    def __init__(self, size: int, workdir: Path, *, mode: str = "auto", token: str = "chaos-token",
                 daemon_args: tuple[str, ...] = ()):
        self.size = size
        self.workdir = Path(workdir)
        self.mode = resolve_mode(mode)
        self.token = token
        self.daemon_args = tuple(daemon_args)
        self.hosts: NetnsHosts | None = None
        self.nodes: list[NodeProcess] = []
        self.state: list[str] = []
        self.cut: set[tuple[int, int]] = set()
        self.netem_on: set[int] = set()
        self._netem: bool | None = None  # whether tc netem works here (found out when first needed)
        self.addresses: list[tuple[str, int, int]] = []  # (host, http port, gossip port)
        self._missed: set[int] = set()  # loopback: nodes that missed an isolation update
        self._locks: list[asyncio.Lock] = []

    # ---- lifecycle -------------------------------------------------------------------------------
    def open(self) -> Cluster:
        """Make the namespaces (netns mode) and the node objects; nothing runs yet."""
        if self.mode == "netns":
            self.hosts = NetnsHosts(self.size).__enter__()
            self.addresses = [(self.hosts.addr(i), HTTP_PORT, GOSSIP_PORT) for i in range(self.size)]
        else:
            self.addresses = [("127.0.0.1", free_port(), free_port()) for _ in range(self.size)]
        for i, (host, http, gossip) in enumerate(self.addresses):
            name = f"n{i}"
            node_dir = self.workdir / "nodes" / name
            node_dir.mkdir(parents=True, exist_ok=True)
            joins = [a for j, (h, _, g) in enumerate(self.addresses) if j != i for a in ("--join", f"{h}:{g}")]
            args = ["--name", name, "--http", f"{host}:{http}", "--bind", f"{host}:{gossip}", *joins,
                    "--profile", "local", "--token", self.token, "--tools", "all", "--log-level", "info",
                    *self.daemon_args]
            self.nodes.append(NodeProcess(name, node_dir / "data", node_dir / "daemon.log", args, self.hosts, i))
        self.state = [DOWN] * self.size
        self._locks = [asyncio.Lock() for _ in range(self.size)]
        return self

    async def start(self) -> None:
        for i in range(self.size):
            await asyncio.to_thread(self.nodes[i].start)
            self.state[i] = UP

    def close(self) -> None:
        """Stop every node and remove the namespaces. Blocking and idempotent: safe in any finally."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.end(signal.SIGTERM, CLOSE_GRACE)
        self.state = [DOWN] * len(self.nodes)
        if self.hosts is not None:
            self.hosts.__exit__(None, None, None)
            self.hosts = None

    # ---- addresses -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [n.node_name for n in self.nodes]

    def base(self, i: int) -> str:
        host, http, _ = self.addresses[i]
        return f"http://{host}:{http}"

    def mcp_url(self, i: int) -> str:
        return self.base(i) + "/mcp"

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    # ---- process faults --------------------------------------------------------------------------
    # Each node's actions hold its lock, so that an isolation update is never sent to a node being
    # paused or restarted under it (it would hang, or be lost with the process).
    async def kill(self, i: int) -> None:
        async with self._locks[i]:
            await asyncio.to_thread(self.nodes[i].end, signal.SIGKILL)
            self.state[i] = DOWN

    async def restart(self, i: int, *, empty: bool = False) -> None:
        node = self.nodes[i]
        async with self._locks[i]:
            if node.running:
                await asyncio.to_thread(node.end, signal.SIGKILL)
            if empty:
                await asyncio.to_thread(shutil.rmtree, node.data_dir, True)
            await asyncio.to_thread(node.start)
            self.state[i] = UP
        await self._rejoined(i, fresh_process=True)

    async def pause(self, i: int) -> None:
        async with self._locks[i]:
            self.nodes[i].signal(signal.SIGSTOP)
            self.state[i] = PAUSED

    async def resume(self, i: int) -> None:
        async with self._locks[i]:
            self.nodes[i].signal(signal.SIGCONT)
            self.state[i] = UP
        await self._rejoined(i, fresh_process=False)

    async def set_clock(self, i: int, offset: float) -> None:
        """Restart the node (cleanly if it stops within CLOCK_RESTART_GRACE, data kept) with its clock
        `offset` seconds off."""
        node = self.nodes[i]
        async with self._locks[i]:
            await asyncio.to_thread(node.end, signal.SIGTERM, CLOCK_RESTART_GRACE)
            node.offset = offset
            await asyncio.to_thread(node.start)
            self.state[i] = UP
        await self._rejoined(i, fresh_process=True)

    # ---- network faults --------------------------------------------------------------------------
    async def partition(self, cut: set[tuple[int, int]]) -> None:
        self.cut = set(cut)
        if self.hosts is not None:
            await asyncio.to_thread(lambda: [self.hosts.block(a, b) for a, b in sorted(cut)])
        else:
            await self._push_isolation(range(self.size))

    async def heal_partition(self) -> None:
        self.cut = set()
        if self.hosts is not None:
            await asyncio.to_thread(self.hosts.heal)
        else:
            await self._push_isolation(range(self.size))

    @property
    def packet_faults(self) -> str:
        """How packet loss and delay are applied here: "tc netem" or "injected by the daemons"."""
        if self._netem is None:
            self._netem = self.hosts is not None and netem_problem() is None
        return "tc netem" if self._netem else "injected by the daemons"

    async def netem(self, i: int, loss: float, delay_ms: int) -> None:
        if self.packet_faults == "tc netem":
            await asyncio.to_thread(self._tc, i, "replace", "netem", "loss", f"{loss * 100:.0f}%",
                                    "delay", f"{delay_ms}ms", f"{delay_ms // 2}ms")
        else:
            await self._degrade(i, loss, delay_ms)
        self.netem_on.add(i)

    async def clear_netem(self, i: int) -> None:
        if i in self.netem_on:
            if self.packet_faults == "tc netem":
                await asyncio.to_thread(self._tc, i, "del")
            else:
                await self._degrade(i, 0.0, 0)
        self.netem_on.discard(i)

    async def _degrade(self, i: int, loss: float, delay_ms: int) -> None:
        """The daemon's own loss and delay (a node not running has nothing to degrade; a new
        process starts without)."""
        async with aiohttp.ClientSession(timeout=ADMIN_TIMEOUT, headers=self.headers) as http, self._locks[i]:
            if self.state[i] != UP:
                return
            async with http.post(self.base(i) + "/admin/faults", json={"loss": loss, "delayMs": delay_ms}) as r:
                if r.status != 200:
                    raise RuntimeError(f"{self.names[i]}: POST /admin/faults answered {r.status}: "
                                       f"{(await r.text())[:200]}")

    def _tc(self, i: int, verb: str, *qdisc: str) -> None:
        link = f"{self.hosts.tag}p{i}"  # the host's end of its veth pair, as tests/netns.py names it
        out = subprocess.run(self.hosts.wrap(i, ["tc", "qdisc", verb, "dev", link, "root", *qdisc]),
                             capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"tc qdisc {verb} on {self.names[i]}: {out.stderr.strip()}")

    async def _push_isolation(self, which) -> None:
        """Loopback mode: tell the running nodes among `which` whose peers they are cut off from. A
        paused or stopped node misses the update and gets it when it resumes or restarts."""
        if self.hosts is not None:
            return
        async with aiohttp.ClientSession(timeout=ADMIN_TIMEOUT, headers=self.headers) as http:
            await asyncio.gather(*(self._isolate(http, i) for i in which))

    async def _rejoined(self, i: int, *, fresh_process: bool) -> None:
        """Node i runs again: a new process starts with no isolation, a resumed one may hold an old one."""
        stale = bool(self.cut) if fresh_process else i in self._missed
        if stale:
            await self._push_isolation([i])
        else:
            self._missed.discard(i)

    async def _isolate(self, http: aiohttp.ClientSession, i: int) -> None:
        async with self._locks[i]:
            if self.state[i] != UP:
                self._missed.add(i)
                return
            peers = sorted(self.names[b if a == i else a] for a, b in self.cut if i in (a, b))
            async with http.post(self.base(i) + "/admin/faults", json={"isolate": peers}) as r:
                if r.status != 200:
                    raise RuntimeError(f"{self.names[i]}: POST /admin/faults answered {r.status}: "
                                       f"{(await r.text())[:200]}")
            self._missed.discard(i)

    # ---- the final phase -------------------------------------------------------------------------
    def crashed(self) -> dict[str, int]:
        """Nodes whose process exited although no fault stopped it: name -> exit code."""
        return {n.node_name: n.proc.returncode for i, n in enumerate(self.nodes)
                if self.state[i] != DOWN and n.proc is not None and n.proc.poll() is not None}

    async def heal_all(self) -> list[str]:
        """Undo every fault still in force (a heal that failed during the run, a node that exited on its
        own); returns what it did, and what it failed to do, in words."""
        done = []

        async def attempt(what: str, action) -> None:
            try:
                await action
                done.append(what)
            except Exception as exc:  # noqa: BLE001 -- reported; the checks then show the consequences
                done.append(f"{what}: FAILED ({type(exc).__name__}: {exc})")

        for name in self.crashed():
            self.state[self.names.index(name)] = DOWN
        for i, name in enumerate(self.names):
            if self.state[i] == PAUSED:
                await attempt(f"resumed {name}", self.resume(i))
            if self.state[i] == DOWN:
                await attempt(f"restarted {name}", self.restart(i))
            if self.nodes[i].offset:
                await attempt(f"reset the clock of {name}", self.set_clock(i, 0.0))
            if i in self.netem_on:
                await attempt(f"cleared netem on {name}", self.clear_netem(i))
        if self.cut:
            await attempt("healed the partition", self.heal_partition())
        return done


def resolve_mode(mode: str) -> str:
    if mode == "auto":
        return "netns" if NetnsHosts.available() else "loopback"
    if mode == "netns" and not NetnsHosts.available():
        raise RuntimeError("netns mode needs root and iproute2's `ip netns`")
    if mode not in ("netns", "loopback"):
        raise ValueError(f"mode must be auto, netns or loopback, not {mode!r}")
    return mode


def netem_problem() -> str | None:
    """Why `tc netem` cannot be used here (None if it can): tried in a namespace made for the purpose."""
    if not NetnsHosts.available() or shutil.which("tc") is None:
        return "packet faults need root, iproute2's `ip netns` and `tc`"
    ns = f"tmnetem{os.getpid() % 100000}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, text=True)
        out = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                              "delay", "1ms"], capture_output=True, text=True)
        return None if out.returncode == 0 else f"tc netem does not work here: {out.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (gossip uses both on one port)."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def daemon_flags(flags: tuple[str, ...] = PROBED_FLAGS) -> dict[str, bool]:
    """Which of these flags this taskmasterd accepts (argparse names the unknown ones and exits)."""
    probe = "--chaos-no-such-flag"
    result = {}
    for flag in flags:
        out = subprocess.run([str(BIN / "taskmasterd"), flag, "1", probe], capture_output=True, text=True,
                             timeout=30)
        result[flag] = flag not in out.stderr.split("unrecognized arguments:")[-1]
    return result


def daemon_version() -> str:
    out = subprocess.run([str(BIN / "taskmasterd"), "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or out.stderr.strip()

