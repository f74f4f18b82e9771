"""The HTTP face of a node: /mcp (MCP Streamable HTTP), /health and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiohttp import web

from . import __version__, backup
from .mcp.server import McpServer
from .replication.coordinator import CallFailed
from .ring import partition_key
from .tasks import files
from .tasks.errors import TaskError
from .tools import registry
from .tools.registry import ToolContext

if TYPE_CHECKING:
    from .node import Node

ANSWERED_HERE = frozenset({"get_operation_status"})
"""Tools that work on no tag: the node that gets the call answers (it routes by operation id itself)."""


def build_app(node: Node) -> web.Application:
    cfg = node.config
    tools = registry.load_all()
    enabled = registry.select(cfg.tools)
    enabled_set = frozenset(enabled)

    def run_here(name: str, arguments, session: dict, quorum=None, partition: bytes | None = None):
        grant = None
        if partition is not None:
            def grant(item, agent, expires_at, seen):
                return node.replicator.grant(partition, item, agent, expires_at, seen)

        def make_ctx(root: str) -> ToolContext:
            return ToolContext(node.service, root, node.name, cfg, session.get("progress"),
                               session.get("client") or {}, quorum, grant, sampler=session.get("sampler"),
                               cluster=node)

        return registry.call_tool(name, arguments, enabled_set, make_ctx, node.metrics)

    async def call_tool(name: str, arguments, session: dict) -> dict:
        """Run a call on its coordinator: here on a single node, else wherever the ring says."""
        rep = node.replicator
        if not node.joined.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(node.joined.wait()), cfg.join_wait)
        root = registry.call_root(arguments)
        if rep is None or len(rep.ring) == 1 or root is None or name in ANSWERED_HERE:
            return await run_here(name, arguments, session)
        _, args = registry.check_call(name, arguments, enabled_set)  # bad calls are answered here
        tag = registry.call_tag(name, args)
        tag = node.service.current_tag(root) if tag is None else tag
        partition = partition_key(root, tag)
        strict = name == "next_task" and bool(args.get("claim"))  # a claim must not be decided twice
        try:
            return await rep.call(root, tag, name, arguments,
                                  lambda: run_here(name, arguments, session, lambda: rep.strict_problem(partition)
                                                   if strict else rep.quorum_problem(partition), partition), strict)
        except CallFailed as exc:
            return registry.text_result(registry.error_text(str(exc), tag or None), is_error=True)

    if node.replicator is not None:  # calls forwarded here by other nodes
        node.replicator.local_call = lambda name, arguments, quorum, partition: run_here(
            name, arguments, {}, quorum, partition)

    def list_tools() -> list[dict]:
        return [tools[name].listing() for name in enabled]

    # The MCP server answers oversized bodies itself (413 with a JSON-RPC error), so aiohttp's own
    # limit sits just above it.
    app = web.Application(client_max_size=cfg.max_body_bytes + 64 * 1024)
    mcp = McpServer(call_tool, list_tools, {"name": "taskmaster", "version": __version__}, token=cfg.token,
                    allowed_origins=cfg.allowed_origins, max_body=cfg.max_body_bytes, metrics=node.metrics)
    mcp.add_routes(app)

    async def export(request: web.Request) -> web.Response:
        """POST {"projectRoot", "output"?}: write the project's tasks.json (Task Master's format)."""
        async def run(root: str, body: dict) -> dict:
            path = files.resolve_path(root, body.get("output") or files.TASKS_FILE)
            return files.write_tasks_json(node.service.view(root), path)

        return await _admin(request, mcp, run)

    async def import_(request: web.Request) -> web.Response:
        """POST {"projectRoot", "input"?}: load a tasks.json into the project (its tags replace ours)."""
        async def run(root: str, body: dict) -> dict:
            path = files.resolve_path(root, body["input"]) if body.get("input") else None
            found = await node.service.write(root, lambda tx: files.import_project(tx, path))
            if not found:
                raise TaskError(f"No tasks.json in {root}", "FILE_NOT_FOUND")
            view = node.service.view(root)
            return {"tags": len(view.tag_names()), "tasks": sum(len(view.tasks(t)) for t in view.tag_names())}

        return await _admin(request, mcp, run)

    async def faults(request: web.Request) -> web.Response:
        """GET: the faults injected here. POST {"isolate": [names], "loss": 0..1, "delayMs": n}, each
        key optional: cut this node off from exactly those peers ([] heals; a partition sets it on
        both sides), and lose that fraction of its gossip packets and delay what it sends (what
        `tc netem` does, where it is missing). For tests and the chaos harness."""
        denied = mcp.guard(request)
        if denied is not None:
            return denied
        if request.method == "POST":
            try:
                body = await request.json()
                names = body.get("isolate", sorted(node.faults.isolated))
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise ValueError
                loss, delay_ms = body.get("loss", node.faults.loss), body.get("delayMs", node.faults.delay * 1000)
                if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (loss, delay_ms)):
                    raise ValueError
                node.faults.degrade(float(loss), delay_ms / 1000)
            except (ValueError, AttributeError, TypeError):
                return web.json_response({"error": 'body must be {"isolate": ["node name", ...], "loss": 0..1, '
                                                   '"delayMs": 0..10000}'}, status=400)
            node.faults.isolate(names)
            if node.rpc is not None:
                for name in names:  # connections already open would otherwise carry on
                    addr = node.replicator.addrs.get(name) if node.replicator else None
                    if addr is not None:
                        node.rpc.disconnect(addr)
        f = node.faults
        return web.json_response({"isolate": sorted(f.isolated), "loss": f.loss, "delayMs": round(f.delay * 1000)})

    async def digest(request: web.Request) -> web.Response:
        """The digest root of every partition stored here: replicas agree when their roots do."""
        denied = mcp.guard(request)
        if denied is not None:
            return denied
        index = node.store.digest
        return web.json_response({"partitions": {p.hex(): index.root(p).hex() for p in index.partitions()},
                                  "documents": len(index)})

    async def health(_: web.Request) -> web.Response:
        return web.json_response(node.health())

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=node.metrics.render(), content_type="text/plain", charset="utf-8")

    async def cluster(request: web.Request) -> web.Response:
        # Membership is the cluster's to read (promise 4): same origin and token rules as /mcp.
        return mcp.guard(request) or web.json_response(node.cluster())

    async def operations(request: web.Request) -> web.Response:
        """GET [?all=1]: the supervised operations running anywhere in the cluster (with all=1, also the
        finished ones still kept); same rules as /cluster."""
        return mcp.guard(request) or web.json_response(
            await node.operations.gather(request.query.get("all") in ("1", "true")))

    async def backup_(request: web.Request) -> web.StreamResponse:
        """A consistent checkpoint of this node's store, streamed as a tar (taskmasterd backup)."""
        return mcp.guard(request) or await backup.send(request, node)

    app.router.add_get("/health", health)
    app.router.add_get("/cluster", cluster)
    app.router.add_get("/operations", operations)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/admin/export", export)
    app.router.add_post("/admin/import", import_)
    app.router.add_route("*", "/admin/faults", faults)
    app.router.add_get("/admin/digest", digest)
    app.router.add_post("/admin/backup", backup_)
    return app


async def _admin(request: web.Request, mcp: McpServer, run) -> web.Response:
    """An admin call: same origin and token rules as /mcp, JSON in, JSON out, 400 with the reason."""
    refusal = mcp.guard(request)
    if refusal is not None:
        return refusal
    try:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("projectRoot"), str) or not body["projectRoot"]:
            raise TaskError("the body must be a JSON object with projectRoot (a string)")
        return web.json_response(await run(registry.normalize_root(body["projectRoot"]), body))
    except TaskError as exc:
        return web.json_response({"error": exc.message}, status=400)
    except ValueError as exc:  # not JSON
        return web.json_response({"error": f"the body must be JSON: {exc}"}, status=400)
