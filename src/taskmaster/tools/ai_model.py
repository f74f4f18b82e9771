"""The model side of one AI tool call: the router, what its answers cost, and who answered.

The router is built per call from the node's `<data_dir>/models.json` and the project's
`.taskmaster/config.json` and `.env` (llm/config.py), so a `models` change applies to the next
call. This is the one place the AI tools reach a model: routing a call to another node that has a
provider belongs here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..llm import GenerateRequest, GenerateResult, LlmRouter, load_llm_config, pricing
from ..tasks.ai_context import tag_info
from ..tasks.errors import TaskError
from ..tasks.state import ProjectView
from .registry import ToolContext

SAMPLING_NAME = "mcp-sampling"  # answers name the client's model (MCP sampling) so, not by its provider id "mcp"


class ModelCalls:
    """The model calls of one tool call."""

    def __init__(self, ctx: ToolContext):
        try:
            config = load_llm_config(getattr(ctx.config, "data_dir", None), ctx.root)
        except ValueError as exc:
            raise TaskError(str(exc), "INVALID_MODEL_CONFIG") from None
        self.router = LlmRouter(config)
        self.node = ctx.node
        self.sampler = ctx.sampler
        self.root = ctx.root
        self.remote = getattr(ctx.cluster, "models", None)  # in a cluster: other nodes' providers
        self.metrics = getattr(ctx.cluster, "metrics", None)  # the node's, summing usage in /metrics
        self.results: list[GenerateResult] = []
        self.nodes: list[str] = []  # the node that answered each call
        self.telemetry_items: list[dict] = []

    async def ask(self, research: bool, request: GenerateRequest) -> GenerateResult:
        """The validated answer of the research role (or main); LlmError (a TaskError) when none came.
        A node with no provider of its own has the nearest node that has one answer (cluster/registry.py);
        the client's model (sampling) or the offline planner answer only when no node has one."""
        role = "research" if research else "main"
        forwarded = None
        if self.remote is not None and not self.router.available()[:-1]:  # [-1] is the offline planner
            forwarded = await self.remote.generate(role, request, self.root)
        result, node = forwarded or (await self.router.generate(role, request, sampler=self.sampler), self.node)
        self.results.append(result)
        self.nodes.append(node)
        self.telemetry_items.append(self.router.telemetry(result, request.command))
        if self.metrics is not None:
            self.metrics.count_llm_usage(self.telemetry_items[-1])
        return result

    def telemetry(self, command: str) -> dict | None:
        """The reference's telemetryData: one call's, or the calls' sums."""
        if len(self.telemetry_items) == 1:
            return self.telemetry_items[0]
        return pricing.aggregate(self.telemetry_items, command)

    def provider(self) -> dict | None:
        """Who answered: {name, model, role, node, note}; "Multiple" where several calls differ."""
        if not self.results:
            return None

        def one(values: list) -> str:
            return values[0] if len(set(values)) == 1 else "Multiple"

        notes = [r.note for r in self.results if r.note]
        names = [SAMPLING_NAME if r.provider == "mcp" else r.provider for r in self.results]
        return {"name": one(names), "model": one([r.model for r in self.results]),
                "role": one([r.role for r in self.results]), "node": one(self.nodes), "note": notes[0] if notes else None}


@asynccontextmanager
async def model_calls(ctx: ToolContext) -> AsyncIterator[ModelCalls]:
    calls = ModelCalls(ctx)
    try:
        yield calls
    finally:
        await calls.router.close()


def answer(data: dict, calls: ModelCalls | None, command: str, view: ProjectView, tag: str) -> dict:
    """A tool's data with the reference's telemetryData and tagInfo, and who answered (None: no model call)."""
    return {**data, "telemetryData": calls.telemetry(command) if calls else None, "tagInfo": tag_info(view, tag),
            "provider": calls.provider() if calls else None}
