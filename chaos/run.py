"""One chaos run, start to finish: cluster up, set-up writes, workload and nemesis together, the final
phase (heal everything, wait for convergence, read every node), the checks and the report."""

from __future__ import annotations

import asyncio
import dataclasses
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.jsonrpc_client import McpHttp

from . import checker, nemesis, report
from .cluster import Cluster, daemon_flags, daemon_version, resolve_mode
from .history import HistoryWriter, Op
from .workload import SETUP_CLIENT, ClientState, run_call, run_client, settle_operations, setup_calls

DEFAULT_REPLICAS = 3  # taskmasterd's default --replicas
POLL = 0.5
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
READY_DEADLINE = 30.0


class HarnessError(Exception):
    """The run could not be carried out (not a finding about the cluster)."""


@dataclass
class Options:
    nodes: int = 5
    seconds: float = 60.0
    nemesis: tuple[str, ...] = ("partition", "kill", "pause", "clock")
    seed: int = 0
    replicas: str | None = None
    write_quorum: int | None = None
    clients: int | None = None
    out: Path = field(default_factory=lambda: Path("chaos-runs"))
    mode: str = "auto"
    converge_timeout: float = 60.0
    op_timeout: float = 5.0

    @property
    def client_count(self) -> int:
        return self.clients or 2 * self.nodes

    @property
    def expected_replicas(self) -> int:
        if self.replicas == "all":
            return self.nodes
        return int(self.replicas) if self.replicas else DEFAULT_REPLICAS

    def command(self) -> str:
        """The command line that replays this run (same seed: same schedule, same client plans)."""
        args = ["python", "-m", "chaos", "run", "--nodes", str(self.nodes), "--seconds", f"{self.seconds:g}",
                "--nemesis", ",".join(self.nemesis) or "none", "--seed", str(self.seed),
                "--clients", str(self.client_count), "--mode", self.mode]
        if self.replicas:
            args += ["--replicas", self.replicas]
        if self.write_quorum:
            args += ["--write-quorum", str(self.write_quorum)]
        return shlex.join(args)

    def daemon_args(self) -> tuple[str, ...]:
        args = ("--replicas", self.replicas) if self.replicas else ()
        return args + (("--write-quorum", str(self.write_quorum)) if self.write_quorum else ())


def run(opts: Options) -> dict:
    """Carry out a run; returns the report (also written to opts.out)."""
    return asyncio.run(_run(opts))


RUN_FILES = ("history.jsonl", "final.json", "report.json", "report.md", "timeline.png", "nodes", "project")


def _clear_previous_run(out: Path) -> None:
    """A run reuses its directory (e.g. `make test`'s): the same seed writes the same markers, so what an
    earlier run left there would read as this run's writes. Only the files a run makes are removed."""
    for name in RUN_FILES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


async def _run(opts: Options) -> dict:
    faults = nemesis.schedule(opts.seed, opts.nodes, opts.seconds, opts.nemesis)
    try:
        mode = resolve_mode(opts.mode)
    except (RuntimeError, ValueError) as exc:
        raise HarnessError(str(exc)) from None
    flags = await asyncio.to_thread(daemon_flags)
    _refuse_unsupported(opts, mode, flags)
    _clear_previous_run(opts.out)
    opts.out.mkdir(parents=True, exist_ok=True)
    root = str((opts.out / "project").resolve())
    writer = HistoryWriter(opts.out / "history.jsonl")
    cluster = Cluster(opts.nodes, opts.out, mode=mode, daemon_args=opts.daemon_args())
    try:
        cluster.open()
        try:
            await cluster.start()
        except RuntimeError as exc:  # a node did not get ready
            raise HarnessError(f"the cluster did not start: {exc}") from None
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT, headers=cluster.headers) as http:
            endpoints = await _endpoints(http, cluster)
            if mode == "loopback" and any(f.cls == "partition" for f in faults) and not endpoints["/admin/faults"]:
                raise HarnessError("loopback partitions need POST /admin/faults, which this taskmasterd lacks")
            if await _wait(lambda: _membership(http, cluster), READY_DEADLINE) is None:
                raise HarnessError(f"the {opts.nodes} nodes did not all see each other alive within "
                                   f"{READY_DEADLINE:g} s of starting")
            setup_ops, setup_origin = await _setup(http, cluster, root, opts)
            started = time.monotonic()
            for op in setup_ops:  # on the workload's clock: before its zero
                op.invoke, op.complete = (round(t + setup_origin - started, 6) for t in (op.invoke, op.complete))
                writer.op(op)
            until = started + opts.seconds
            clients = [asyncio.create_task(run_client(
                ClientState(c), opts.seed, cluster.names[c % opts.nodes], cluster.mcp_url(c % opts.nodes),
                cluster.token, root, started, until, writer.op, opts.op_timeout)) for c in range(opts.client_count)]
            await asyncio.gather(nemesis.run_schedule(faults, cluster, started, writer.event), *clients)
            final, phase = await _final_phase(http, cluster, root, opts, endpoints["/admin/digest"],
                                              writer.history.ops)
            phase["began_at"] = round(phase.pop("began") - started, 3)
            phase["last_heal_at"] = max((e.time for e in writer.history.events if e.action == "heal"), default=None)
    finally:
        writer.close()
        cluster.close()
    checker.save_final(final, opts.out / "final.json")
    checks = checker.check(writer.history, final, faults)
    if "packet" in opts.nemesis:
        flags = {**flags, "packet faults": cluster.packet_faults}
    options = {"nodes": opts.nodes, "seconds": opts.seconds, "nemesis": list(opts.nemesis),
               "clients": opts.client_count, "replicas": opts.replicas or DEFAULT_REPLICAS,
               "write_quorum": opts.write_quorum, "op_timeout": opts.op_timeout,
               "converge_timeout": opts.converge_timeout}
    result = report.build(seed=opts.seed, command=dataclasses.replace(opts, mode=mode).command(), options=options, mode=mode, versions=versions(),
                          capabilities={**flags, **endpoints}, faults=faults, history=writer.history,
                          final_phase=phase, checks=checks)
    report.write(opts.out, result, writer.history, faults)
    return result


def _refuse_unsupported(opts: Options, mode: str, flags: dict[str, bool]) -> None:
    if "clock" in opts.nemesis and not flags["--test-clock-offset"]:
        raise HarnessError("the clock nemesis needs taskmasterd --test-clock-offset, which this build lacks")
    for flag, value in (("--replicas", opts.replicas), ("--write-quorum", opts.write_quorum)):
        if value and not flags[flag]:
            raise HarnessError(f"this taskmasterd has no {flag}")


async def _endpoints(http: aiohttp.ClientSession, cluster: Cluster) -> dict[str, bool]:
    found = {}
    for path in ("/admin/faults", "/admin/digest"):
        async with http.get(cluster.base(0) + path) as r:
            found[path] = r.status == 200
    return found


async def _setup(http: aiohttp.ClientSession, cluster: Cluster, root: str, opts: Options) -> tuple[list[Op], float]:
    """The claims tag and its first work items, through node 0, each retried until acknowledged.
    Returns the operations (times since the returned origin)."""
    mcp = McpHttp(cluster.mcp_url(0), http, cluster.token)
    origin, ops = time.monotonic(), []
    for seq, call in enumerate(setup_calls(opts.client_count * 2)):
        deadline = time.monotonic() + READY_DEADLINE
        while True:
            op, _ = await run_call(mcp, call, root, SETUP_CLIENT, seq, cluster.names[0], origin, ops.append)
            if op.outcome == "ok":
                break
            if time.monotonic() > deadline:
                raise HarnessError(f"set-up write {call.tool} {call.args} kept failing: {op.error}")
            await asyncio.sleep(POLL)  # retry pacing while the cluster settles
    return ops, origin


async def _final_phase(http: aiohttp.ClientSession, cluster: Cluster, root: str, opts: Options,
                       have_digest: bool, ops: list[Op]) -> tuple[checker.FinalState, dict]:
    began = time.monotonic()
    crashed = cluster.crashed()  # before heal_all restarts them
    heal_actions = await cluster.heal_all()
    n = cluster.size

    async def converged() -> bool:
        if have_digest:
            digests = await _digests(http, cluster)
            return digests is not None and checker.digests_agree(digests, opts.expected_replicas, n)[0]
        reads = await asyncio.gather(*(read_node(http, cluster, i, root) for i in range(n)))
        return None not in reads and len({checker.reads_fingerprint(r) for r in reads}) == 1

    membership_after = await _wait(lambda: _membership(http, cluster), opts.converge_timeout, began)
    operations = await settle_operations([McpHttp(cluster.mcp_url(i), http, cluster.token) for i in range(n)], root, ops)
    converged_after = await _wait(converged, opts.converge_timeout, began)
    reads = await asyncio.gather(*(read_node(http, cluster, i, root) for i in range(n)))
    views = await asyncio.gather(*(_view(http, cluster, i) for i in range(n)))
    final = checker.FinalState(
        nodes=cluster.names, reads=dict(zip(cluster.names, reads, strict=True)),
        views=dict(zip(cluster.names, views, strict=True)),
        digests=await _digests(http, cluster) if have_digest else None, replicas=opts.expected_replicas,
        converged_after=converged_after, convergence_method="digests" if have_digest else "reads",
        crashed=crashed, log_errors={n.node_name: log_errors(n.log_path) for n in cluster.nodes},
        operations=operations)
    phase = {"began": began, "heal_actions": heal_actions, "converged_after": converged_after, "membership_after": membership_after,
             "convergence_method": final.convergence_method, "timeout": opts.converge_timeout}
    return final, phase


async def _wait(predicate, timeout: float, since: float | None = None) -> float | None:
    """Poll an async predicate until true; the seconds since `since` (default: now) it took, or None."""
    since = time.monotonic() if since is None else since
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await predicate():
                return round(time.monotonic() - since, 3)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            pass  # a node still restarting: keep polling
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(POLL)


async def _view(http: aiohttp.ClientSession, cluster: Cluster, i: int) -> dict[str, str] | None:
    try:
        async with http.get(cluster.base(i) + "/cluster") as r:
            body = await r.json()
        return {m["name"]: m["state"] for m in body["members"]}
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
        return None


async def _membership(http: aiohttp.ClientSession, cluster: Cluster) -> bool:
    views = await asyncio.gather(*(_view(http, cluster, i) for i in range(cluster.size)))
    return all(v is not None and all(v.get(m) == "alive" for m in cluster.names) for v in views)


async def _digests(http: aiohttp.ClientSession, cluster: Cluster) -> dict[str, dict[str, str]] | None:
    async def one(i: int) -> dict[str, str]:
        async with http.get(cluster.base(i) + "/admin/digest") as r:
            r.raise_for_status()
            return (await r.json())["partitions"]

    try:
        return dict(zip(cluster.names, await asyncio.gather(*(one(i) for i in range(cluster.size))), strict=True))
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
        return None


async def read_node(http: aiohttp.ClientSession, cluster: Cluster, i: int, root: str) -> dict | None:
    """Every tag of the project as node i answers it over MCP; None if it does not answer."""
    mcp = McpHttp(cluster.mcp_url(i), http, cluster.token)
    try:
        tags = (await mcp.call("list_tags", projectRoot=root))["data"]["tags"]
        return {t["name"]: (await mcp.call("get_tasks", projectRoot=root, tag=t["name"], withSubtasks=True))
                ["data"]["tasks"] for t in tags}
    except Exception:  # noqa: BLE001 -- any failure means this node's state is unknown: recorded as such
        return None


def log_errors(path: Path) -> int:
    """Lines of a node's log that report an error or a traceback."""
    with path.open(errors="replace") as f:
        return sum(" ERROR " in line or line.startswith("Traceback") for line in f)


def versions() -> dict:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip()

    try:
        import matplotlib
        mpl = matplotlib.__version__
    except ImportError:
        mpl = None
    return {"taskmasterd": daemon_version(), "python": sys.version.split()[0], "platform": platform.platform(),
            "commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain")),
            "matplotlib": mpl}
