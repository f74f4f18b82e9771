"""AI tools that can run as supervised operations: `async: true`, get_operation_status, and the one loop
that asks the model for a tool's requests whether it runs inside the call or as an operation.

Such a tool is a `Job` in three parts:
- `plan(ctx, args)`, where the call lands (the tag's coordinator): checks the arguments, reads the
  inputs and builds the model requests. Bad input fails here, before anything starts. A plan with an
  "answer" needs no model (the tool answers at once, also when asked to run async).
- the requests, asked in order (`ask_all`); a tolerant job (expand_all) records a failed request
  as that item's error and goes on.
- `finish(ctx, plan, answers, calls, seed)`, on the tag's coordinator: applies the answers in one
  write and returns the tool's answer. As an operation its `seed` is the operation id: the documents
  it creates get keys derived from it, and an answer it already applied is recognised and not
  applied again, so a runner's crash at any point never duplicates a task.

Without `async`, `perform` runs the three in a row inside the call (progress as MCP notifications).
With it, the operation's record is written durably on W replicas and `{operationId}` comes back at
once; replication/operations.py runs it on the ring owner of the operation id and hands it over if
that node dies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..llm import GenerateRequest, GenerateResult, LlmError
from ..replication.operations import Run, is_operation_id
from ..tasks.errors import TaskError
from ..tasks.state import ProjectView, seeded_uid
from .ai_model import ModelCalls, model_calls
from .registry import ToolContext, load_all, select, tool

STATUS_TOOL = "get_operation_status"


@dataclass(frozen=True)
class Job:
    kind: str  # the tool's name
    command: str  # telemetry's commandName
    plan: Callable[[ToolContext, dict], Awaitable[dict]]
    finish: Callable[[ToolContext, dict, list[dict], Any, str | None], Awaitable[dict]]
    tolerant: bool = False  # a failed request fails only its item, not the whole job


JOBS: dict[str, Job] = {}


def job(kind: str, command: str, plan, finish, tolerant: bool = False) -> Job:
    JOBS[kind] = Job(kind, command, plan, finish, tolerant)
    return JOBS[kind]


def step(request: GenerateRequest, research: bool, done: str | None = None, failed: str | None = None) -> dict:
    """One model request of a plan, with the progress messages of its success and its failure."""
    return {"request": request.to_dict(), "research": research, "done": done, "failed": failed}


# ---- running a job ------------------------------------------------------------------------------------
async def perform(ctx: ToolContext, kind: str, args: dict) -> dict:
    """The tool call: plan, then either start the operation (`async`) or ask and finish here."""
    work = JOBS[kind]
    plan = await work.plan(ctx, args)
    if "answer" in plan:
        return plan["answer"]
    if args.get("async"):
        return await _submit(ctx, work, plan)
    async with model_calls(ctx) as model:
        answers = await ask_all(model, plan, work.tolerant, progress=ctx.progress)
        return await work.finish(ctx, plan, answers, model, None)


async def ask_all(model: ModelCalls, plan: dict, tolerant: bool, *, progress=None, saved: dict | None = None,
                  save: Callable[[int, dict, int, int], Awaitable[None]] | None = None) -> list[dict]:
    """Each request's answer, {"data"} or (tolerant) {"error"}; answers in `saved` are reused, new ones
    handed to `save` before the next request is asked."""
    steps = plan["steps"]
    answers = []
    for index, item in enumerate(steps):
        entry = (saved or {}).get(index)
        if entry is not None:
            _replay(model, entry)
        else:
            try:
                result = await model.ask(item["research"], GenerateRequest.from_dict(item["request"]))
                entry = {"data": result.data, "call": _recorded(model, result)}
            except LlmError as exc:
                if not tolerant:
                    raise
                entry = {"error": exc.message}
            if save is not None:
                await save(index, entry, index + 1, len(steps))
        answers.append(entry)
        message = item["done"] if "data" in entry else f"{item['failed']}: {entry['error']}"
        if progress is not None and item["done"]:
            await progress(index + 1, len(steps), message)
    return answers


def _recorded(model: ModelCalls, result: GenerateResult) -> dict:
    """What replaying a model call needs: who answered and what it cost (not the answer's raw text)."""
    return {"result": {**result.to_dict(), "text": "", "data": {}}, "telemetry": model.telemetry_items[-1],
            "node": model.nodes[-1]}


def _replay(model: ModelCalls, entry: dict) -> None:
    call = entry.get("call")
    if call is not None:
        model.results.append(GenerateResult.from_dict(call["result"]))
        model.telemetry_items.append(call["telemetry"])
        model.nodes.append(call["node"])


class Recorded:
    """A job's model calls as the runner summed them up: what `finish` reports on another node."""

    def __init__(self, telemetry: dict | None, provider: dict | None):
        self._telemetry, self._provider = telemetry, provider

    def telemetry(self, command: str) -> dict | None:
        return self._telemetry

    def provider(self) -> dict | None:
        return self._provider


async def _submit(ctx: ToolContext, work: Job, plan: dict) -> dict:
    operations = getattr(ctx.cluster, "operations", None)
    if operations is None:
        raise TaskError("async: true needs a taskmasterd node (operations are supervised by the cluster)",
                        "ASYNC_UNAVAILABLE")
    if STATUS_TOOL not in select(getattr(ctx.config, "tools", None)):
        raise TaskError(f"async: true needs the {STATUS_TOOL} tool to follow the operation; enable it with "
                        "TASK_MASTER_TOOLS=standard or all (or run without async)", "ASYNC_UNAVAILABLE")
    status = await operations.submit(work.kind, ctx.root, plan["tag"], plan, len(plan["steps"]))
    return {"operationId": status["operationId"], "status": status["status"],
            "message": f"{work.kind} is running as operation {status['operationId']}; "
                       f"follow it with {STATUS_TOOL}"}


def install(operations, make_ctx: Callable[[str], ToolContext]) -> None:
    """Give a node's supervisor the runner and the final write of every job kind."""
    load_all()  # the AI tools register their jobs when imported
    async def run(op: Run) -> dict:
        work = JOBS[op.kind]
        async with model_calls(make_ctx(op.root)) as model:
            answers = await ask_all(model, op.plan, work.tolerant, saved=op.saved, save=op.save)
            calls = {"telemetry": model.telemetry(work.command), "provider": model.provider()}
        return await op.apply({"plan": op.plan, "answers": answers, "calls": calls})

    async def apply(op_id: str, kind: str, root: str, tag: str, payload: dict) -> dict:
        work = JOBS[kind]
        return await work.finish(make_ctx(root), payload["plan"], payload["answers"],
                                 Recorded(**payload["calls"]), op_id)

    for kind in JOBS:
        operations.register(kind, run, apply)


# ---- recognising an answer already applied -------------------------------------------------------------
def created_by(view: ProjectView, tag: str, seed: str, count: int) -> list[dict]:
    """The tasks a transaction seeded with `seed` created in `tag` (empty: it has not run)."""
    if view.find_uid(tag, seeded_uid(seed, "task", 0)) is None:
        return []
    return [t for t in (view.find_uid(tag, seeded_uid(seed, "task", i)) for i in range(count)) if t is not None]


def subtasks_by(view: ProjectView, tag: str, task_id: int, seed: str) -> int:
    """How many of a task's subtasks a transaction seeded with `seed` created (0: it has not run)."""
    task = view.task(tag, task_id)
    if task is None:
        return 0
    keys = set(view.subtask_keys(tag, task))
    if seeded_uid(seed, "sub", task_id, 0) not in keys:
        return 0
    return sum(1 for i in range(len(keys)) if seeded_uid(seed, "sub", task_id, i) in keys)


# ---- get_operation_status ------------------------------------------------------------------------------
@tool(STATUS_TOOL)
async def get_operation_status(ctx: ToolContext, args: dict):
    op_id = args["operationId"].strip()
    if not is_operation_id(op_id):
        raise TaskError(f"Invalid operationId: {args['operationId']!r}. Expected the 16-character id that an "
                        "async call returned", "INVALID_OPERATION_ID")
    operations = getattr(ctx.cluster, "operations", None)
    status = await operations.status(op_id) if operations is not None else None
    if status is None or status["projectRoot"] != ctx.root:
        raise TaskError(f"Operation {op_id} not found in project {ctx.root} (finished operations are kept for a "
                        "limited time)", "OPERATION_NOT_FOUND")
    return status
