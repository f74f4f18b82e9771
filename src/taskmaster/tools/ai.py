"""Handlers of the eleven AI tools: parse_prd, expand_task, expand_all, analyze_project_complexity,
scope_up_task, scope_down_task, research, add_task (prompt mode), update, update_task, update_subtask.

Each reads the project, asks the model (llm/router: the roles configured in the node's models.json
and the project's .taskmaster/config.json, else the offline planner) and then applies the validated
answer in ONE write. The model is asked before the write and the write functions only apply
(tasks/ai_*.py), so a failed call or an unusable answer changes nothing. Every answer carries the
reference's `telemetryData` and `tagInfo`, plus `provider`: who answered ({name, model, role, node,
note}; the offline planner's note says its result is heuristics).
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime

from ..llm import GenerateRequest, prompts
from ..tasks import ai_complexity, ai_create, ai_expand, ai_research, ai_scope, ai_update, files
from ..tasks.ai_context import flattened, related, whole_number
from ..tasks.complexity import complexity_of, report_path
from ..tasks.create import next_task_id
from ..tasks.errors import TaskError
from ..tasks.model import iso_now
from ..tasks.references import refs_or_error
from ..tasks.remove import tasks_path
from ..tasks.state import ProjectView
from . import ai_files, checks, operations
from .ai_model import ModelCalls, model_calls
from .ai_model import answer as reply
from .project import load_config
from .registry import ToolContext, tool
from .tasks_write import ids_or_blank

DEFAULT_MAX_PRD_BYTES = 200_000
"""A PRD above this size is refused (Config.max_prd_bytes overrides it): it would not fit a model's
context with room for the answer, and a bigger one is better split."""
MAX_NUM_TASKS = 100
RELATED_FOR_EXPANSION = 5  # related tasks shown with a task to expand (the reference's fuzzy search: 5)
RELATED_FOR_RESEARCH = 8  # and with a research question (the reference: 8)


def _existing_tag(view: ProjectView, args: dict) -> str:
    tag = view.resolve_tag(args.get("tag"))
    if not view.has_tag(tag):
        raise TaskError(f"Tag '{tag}' does not exist", "TAG_NOT_FOUND")
    return tag


def _settings(root: str) -> dict:
    """The project's config.json `global` settings (defaults when it has none)."""
    return load_config(root)["global"]


# ---- parse_prd, add_task ------------------------------------------------------------------------
@tool("parse_prd")
async def parse_prd(ctx: ToolContext, args: dict):
    return await operations.perform(ctx, "parse_prd", args)


async def _prd_plan(ctx: ToolContext, args: dict) -> dict:
    view = ctx.service.view(ctx.root)
    tag = view.resolve_tag(args.get("tag"))
    append, force, research = bool(args.get("append")), bool(args.get("force")), bool(args.get("research"))
    ai_create.check_prd_target(view, tag, append=append, force=force)
    settings = _settings(ctx.root)
    num = whole_number(args.get("numTasks"), "numTasks", 0, MAX_NUM_TASKS, settings.get("defaultNumTasks", 10))
    limit = getattr(ctx.config, "max_prd_bytes", None) or DEFAULT_MAX_PRD_BYTES
    prd = await asyncio.to_thread(ai_files.read_prd, ctx.root, args["input"], limit)
    priority = settings.get("defaultPriority") or "medium"
    request = prompts.parse_prd(prd, num_tasks=num, next_id=next_task_id(view, tag), default_priority=priority,
                                research=research)
    return {"tag": tag, "append": append, "force": force, "priority": priority,
            "steps": [operations.step(request, research)]}


async def _prd_finish(ctx: ToolContext, plan: dict, answers: list[dict], model, seed: str | None) -> dict:
    tag, raw = plan["tag"], answers[0]["data"]["tasks"]

    def apply(tx) -> list[dict]:
        if seed is not None:  # an operation: a re-run finds what its first run wrote
            tx.seed = seed
            done = operations.created_by(tx.base, tag, seed, len(raw))
            if done:
                return done
        return ai_create.apply_prd(tx, tag, raw, append=plan["append"], force=plan["force"],
                                   default_priority=plan["priority"])

    tasks = await ctx.service.write(ctx.root, apply)
    view = ctx.service.view(ctx.root)
    path = tasks_path(view)
    return reply({"message": f"Successfully parsed PRD and generated tasks in {path}", "outputPath": path,
                  "taskCount": len(tasks), "taskIds": [t["id"] for t in tasks]}, model, "parse-prd", view, tag)


async def add_task_from_prompt(ctx: ToolContext, args: dict) -> dict:
    """add_task's prompt mode (tasks_write.add_task hands it over)."""
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    deps = args.get("dependencies")
    requested = refs_or_error(deps) if deps and str(deps).strip() else []
    priority = args.get("priority") or _settings(ctx.root).get("defaultPriority")
    research = bool(args.get("research"))
    async with model_calls(ctx) as model:
        result = await model.ask(research, prompts.add_task(
            args["prompt"], tasks=view.tasks(tag), new_id=next_task_id(view, tag),
            dependencies=[r.task for r in requested if r.sub is None], priority=priority, research=research))
        task = await ctx.service.write(ctx.root, lambda tx: ai_create.apply_new_task(
            tx, tag, result.data, requested=requested, priority=priority))
    return reply({"taskId": task["id"], "message": f"Successfully added new task #{task['id']}"},
                 model, "add-task", view, tag)


# ---- expand_task, expand_all --------------------------------------------------------------------
@tool("expand_task", check=checks.ids("id"))
async def expand_task(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    task = ai_expand.expandable_task(view, tag, ai_expand.task_ref(args["id"]))
    force, research = bool(args.get("force")), bool(args.get("research"))
    num = whole_number(args.get("num"), "num", 0, ai_expand.MAX_SUBTASKS, None)
    had = bool(task.get("subtasks"))
    if had and not force:
        return reply({"message": f"Task {task['id']} already has subtasks. Expansion skipped.", "task": task,
                      "subtasksAdded": 0, "hasExistingSubtasks": True}, None, "expand-task", view, tag)
    count = ai_expand.subtask_count(num, view.report(tag), task["id"], _default_subtasks(ctx.root))
    async with model_calls(ctx) as model:
        result = await model.ask(research, _expansion_request(view, tag, task, count, args.get("prompt"), research))
        expanded, added = await ctx.service.write(ctx.root, lambda tx: ai_expand.apply_expansion(
            tx, tag, task["id"], result.data["subtasks"], force=force, limit=count))
    return reply({"task": expanded, "subtasksAdded": added, "hasExistingSubtasks": had}, model, "expand-task",
                 view, tag)


@tool("expand_all")
async def expand_all(ctx: ToolContext, args: dict):
    return await operations.perform(ctx, "expand_all", args)


async def _expand_all_plan(ctx: ToolContext, args: dict) -> dict:
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    force, research = bool(args.get("force")), bool(args.get("research"))
    num = whole_number(args.get("num"), "num", 0, ai_expand.MAX_SUBTASKS, None)
    default = _default_subtasks(ctx.root)
    tasks, steps = [], []
    for task in ai_expand.expand_all_candidates(view, tag, force):
        count = ai_expand.subtask_count(num, view.report(tag), task["id"], default)
        tasks.append([task["id"], count])
        steps.append(operations.step(_expansion_request(view, tag, task, count, args.get("prompt"), research),
                                     research, done=f"Generated subtasks for task {task['id']}: {task['title']}",
                                     failed=f"Task {task['id']} failed"))
    return {"tag": tag, "force": force, "tasks": tasks, "steps": steps}


async def _expand_all_finish(ctx: ToolContext, plan: dict, answers: list[dict], model, seed: str | None) -> dict:
    tag, force = plan["tag"], plan["force"]
    planned, failures = [], []
    for (task_id, count), answer in zip(plan["tasks"], answers, strict=True):
        if "error" in answer:  # one task's failure does not stop the others (the reference's rule)
            failures.append({"taskId": task_id, "error": answer["error"]})
        else:
            planned.append((task_id, answer["data"]["subtasks"], count))

    def apply(tx) -> dict:
        todo, earlier = planned, []
        if seed is not None:  # an operation: tasks a first run already expanded stay as they are
            tx.seed = seed
            earlier = [(p[0], operations.subtasks_by(tx.base, tag, p[0], seed)) for p in planned]
            earlier = [(task_id, added) for task_id, added in earlier if added]
            todo = [p for p in planned if p[0] not in dict(earlier)]
        outcome = ai_expand.apply_expansions(tx, tag, todo, force=force)
        outcome["expanded"] = sorted(outcome["expanded"] + [{"taskId": t, "subtasksAdded": n} for t, n in earlier],
                                     key=lambda e: e["taskId"])
        return outcome

    outcome = await ctx.service.write(ctx.root, apply) if planned else {"expanded": [], "failed": [], "skipped": []}
    failed = failures + outcome["failed"]
    counts = {"expandedCount": len(outcome["expanded"]), "failedCount": len(failed),
              "skippedCount": len(outcome["skipped"])}
    return reply({"message": f"Expand all operation completed. Expanded: {counts['expandedCount']}, "
                             f"Failed: {counts['failedCount']}, Skipped: {counts['skippedCount']}",
                  "details": {**counts, "tasksToExpand": len(plan["tasks"]), "expanded": outcome["expanded"],
                              "failures": failed, "skipped": outcome["skipped"]}},
                 model, "expand-all-tasks", ctx.service.view(ctx.root), tag)


def _expansion_request(view: ProjectView, tag: str, task: dict, count: int, prompt: str | None,
                       research: bool) -> GenerateRequest:
    near = related(view.tasks(tag), f"{task.get('title') or ''} {task.get('description') or ''}",
                   RELATED_FOR_EXPANSION, frozenset({task["id"]}))
    return prompts.expand_task(task, num=count, next_subtask_id=1, prompt=prompt,
                               expansion_prompt=ai_expand.expansion_prompt(view.report(tag), task["id"]),
                               related=near, research=research)


def _default_subtasks(root: str) -> int:
    value = _settings(root).get("defaultSubtasks")
    return value if isinstance(value, int) and 0 <= value <= ai_expand.MAX_SUBTASKS else 5


# ---- analyze_project_complexity ---------------------------------------------------------------------
@tool("analyze_project_complexity", check=ids_or_blank((), ("ids",)))
async def analyze_project_complexity(ctx: ToolContext, args: dict):
    return await operations.perform(ctx, "analyze_project_complexity", args)


async def _complexity_plan(ctx: ToolContext, args: dict) -> dict:
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    ids = ai_complexity.parse_task_ids(args.get("ids"))
    targets = ai_complexity.analysis_targets(view, tag, ids, args.get("from"), args.get("to"))
    filtered = ids is not None or args.get("from") is not None or args.get("to") is not None
    existing = view.report(tag)
    path = files.resolve_path(ctx.root, args["output"]) if args.get("output") else report_path(ctx.root, tag)
    if not targets and filtered and existing is not None:
        return {"answer": _analysis_answer("No matching tasks found for analysis. Kept the existing report.",
                                           existing, path, None, view, tag)}
    research = bool(args.get("research"))
    request = prompts.analyze_complexity(targets, all_tasks=view.tasks(tag), threshold=args["threshold"],
                                         research=research) if targets else None
    return {"tag": tag, "ids": [t["id"] for t in targets], "threshold": args["threshold"], "research": research,
            "project": _project_name(ctx.root), "now": iso_now(), "path": path, "output": bool(args.get("output")),
            "steps": [operations.step(request, research)] if request is not None else []}


async def _complexity_finish(ctx: ToolContext, plan: dict, answers: list[dict], model, seed: str | None) -> dict:
    tag, path = plan["tag"], plan["path"]
    answer = answers[0]["data"]["complexityAnalysis"] if answers else []
    report = await ctx.service.write(ctx.root, lambda tx: ai_complexity.store_analysis(
        tx, tag, plan["ids"], answer, threshold=plan["threshold"], research=plan["research"],
        project_name=plan["project"], now=plan["now"]))  # the plan's time: a re-run stores the same report
    written = await asyncio.to_thread(ai_files.write_report_file, ctx.root, path, report, plan["output"])
    message = (f"Task complexity analysis complete. Report saved to {path}" if written else
               f"Task complexity analysis complete. Report stored with tag '{tag}' (see complexity_report)")
    return _analysis_answer(message, report, path, model, ctx.service.view(ctx.root), tag)


def _analysis_answer(message: str, report: dict, path: str, model: ModelCalls | None, view: ProjectView,
                     tag: str) -> dict:
    return reply({"message": message, "reportPath": path, "reportSummary": ai_complexity.report_summary(report),
                  "fullReport": report}, model, "analyze-complexity", view, tag)


def _project_name(root: str) -> str:
    return _settings(root).get("projectName") or os.path.basename(root) or "project"


# ---- scope_up_task, scope_down_task ---------------------------------------------------------------
@tool("scope_up_task", check=checks.ids("id"))
async def scope_up_task(ctx: ToolContext, args: dict):
    return await _scope(ctx, args, "up")


@tool("scope_down_task", check=checks.ids("id"))
async def scope_down_task(ctx: ToolContext, args: dict):
    return await _scope(ctx, args, "down")


async def _scope(ctx: ToolContext, args: dict, direction: str) -> dict:
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    strength = ai_scope.check_strength(args.get("strength"))
    tasks = ai_scope.scope_targets(view, tag, args["id"])
    research, prompt, report = bool(args.get("research")), args.get("prompt"), view.report(tag)
    project = _project_name(ctx.root)
    plans, analyses = [], []
    async with model_calls(ctx) as model:
        for task in tasks:
            result = await model.ask(research, prompts.scope_task(task, direction, strength, prompt, research=research))
            answer, raw = result.data["task"], None
            rescoped = ai_scope.rescoped(task, answer)
            score = complexity_of(report, task["id"]).get("complexityScore")
            pending = ai_scope.pending_subtasks(task)
            if pending:
                raw = await _regenerated_subtasks(model, task, rescoped, direction, strength, len(pending), score,
                                                  prompt, research)
            plans.append((task["id"], answer, raw))
            if score:  # the reference re-analyses a task it had a score for
                result = await model.ask(research, prompts.analyze_complexity([rescoped], all_tasks=view.tasks(tag),
                                                                            research=research))
                analyses.append((task["id"], result.data["complexityAnalysis"]))

        def apply(tx) -> list[dict]:
            updated = [ai_scope.apply_scope(tx, tag, task_id, answer, raw) for task_id, answer, raw in plans]
            threshold = ((report or {}).get("meta") or {}).get("thresholdScore", 5)
            for task_id, entries in analyses:
                ai_complexity.store_analysis(tx, tag, [task_id], entries, threshold=threshold, research=research,
                                             project_name=project, now=iso_now())
            return updated

        updated = await ctx.service.write(ctx.root, apply)
    return reply({"updatedTasks": updated, "tasksUpdated": len(updated),
                  "message": f"Successfully scoped {direction} {len(updated)} task(s)"},
                 model, f"scope-{direction}", view, tag)


async def _regenerated_subtasks(model: ModelCalls, task: dict, rescoped: dict, direction: str, strength: str,
                                pending: int, score, prompt: str | None, research: bool) -> list[dict]:
    kept = [s for s in task.get("subtasks") or () if (s.get("status") or "pending") != "pending"]
    count = ai_scope.new_subtask_count(direction, strength, len(kept), pending, score)
    start = max((s.get("id") or 0 for s in kept), default=0) + 1
    guidance = (f"The task was just scoped {direction} ({strength}): write the subtasks that replace its "
                f"{pending} pending ones, matching the new scope."
                + (f" These started or finished subtasks stay: {'; '.join(s.get('title') or '' for s in kept)}."
                   if kept else "") + (f" {prompt}" if prompt else ""))
    result = await model.ask(research, prompts.expand_task(rescoped, num=count, next_subtask_id=start,
                                                           prompt=guidance, research=research))
    return result.data["subtasks"]


# ---- update, update_task, update_subtask ----------------------------------------------------------
@tool("update", check=checks.ids("from"))
async def update(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    first = ai_expand.task_ref(args["from"], "from")
    prompt = _prompt(args, required=True)
    targets = ai_update.update_targets(view, tag, first)
    if not targets:
        return reply({"message": f"No tasks to update: no task from ID {first} on is open", "updatedCount": 0,
                      "updatedTaskIds": []}, None, "update-tasks", view, tag)
    research = bool(args.get("research"))
    async with model_calls(ctx) as model:
        result = await model.ask(research, prompts.update_tasks(targets, prompt, research=research))
        updated = await ctx.service.write(ctx.root, lambda tx: ai_update.apply_updates(
            tx, tag, result.data["tasks"], prompt, {t["id"] for t in targets}))
    return reply({"message": f"Successfully updated {len(updated)} tasks.", "updatedCount": len(updated),
                  "updatedTaskIds": [t["id"] for t in updated]}, model, "update-tasks", view, tag)


@tool("update_task", check=checks.ids("id"))
async def update_task(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    refs = refs_or_error(args["id"])
    if len(refs) != 1 or refs[0].sub is not None:
        raise TaskError(f"update_task takes one task ID, got {args['id'].strip()} (subtasks are updated with "
                        "update_subtask)", "INVALID_TASK_ID")
    task_id = refs[0].task
    metadata = ai_update.parse_metadata(args.get("metadata"), _metadata_allowed())
    prompt = _prompt(args, required=metadata is None)
    task = ai_update.task_to_update(view, tag, task_id)
    if ai_update.is_done(task):
        return reply({"message": f"Task {task_id} was not updated (likely already completed).", "taskId": task_id,
                      "updated": False}, None, "update-task", view, tag)
    research = bool(args.get("research"))
    if not prompt:
        updated = await ctx.service.write(ctx.root, lambda tx: ai_update.apply_task_note(
            tx, tag, task_id, None, "", iso_now(), metadata))
        return reply({"message": f"Successfully updated metadata of task {task_id}", "taskId": task_id,
                      "updated": True, "updatedTask": updated}, None, "update-task", view, tag)
    async with model_calls(ctx) as model:
        if args.get("append"):
            result = await model.ask(research, prompts.append_to_task(task, prompt, research=research))
            updated = await ctx.service.write(ctx.root, lambda tx: ai_update.apply_task_note(
                tx, tag, task_id, result.data["text"], prompt, iso_now(), metadata))
        else:
            result = await model.ask(research, prompts.update_task(task, prompt, research=research))
            updated = await ctx.service.write(ctx.root, lambda tx: ai_update.apply_task_rewrite(
                tx, tag, task_id, result.data["task"], prompt, metadata))
    return reply({"message": f"Successfully updated task with ID {task_id} based on the prompt", "taskId": task_id,
                  "useResearch": research, "updated": True, "updatedTask": updated}, model, "update-task", view, tag)


@tool("update_subtask", check=checks.ids("id"))
async def update_subtask(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    parent, sub, ref = ai_update.subtask_to_update(view, tag, args["id"])
    metadata = ai_update.parse_metadata(args.get("metadata"), _metadata_allowed())
    prompt = _prompt(args, required=metadata is None)
    research = bool(args.get("research"))
    model = None
    text = None
    if prompt:
        subtasks = parent.get("subtasks") or []
        at = subtasks.index(sub)
        request = prompts.update_subtask(parent, sub, prompt, previous=subtasks[at - 1] if at else None,
                                         following=subtasks[at + 1] if at + 1 < len(subtasks) else None,
                                         research=research)
        async with model_calls(ctx) as model:
            text = (await model.ask(research, request)).data["text"]
    updated = await ctx.service.write(ctx.root, lambda tx: ai_update.apply_subtask_note(
        tx, tag, ref, text, prompt, iso_now(), metadata))
    return reply({"message": f"Successfully updated subtask with ID {ref}", "subtaskId": str(ref),
                  "parentId": ref.task, "subtask": updated, "useResearch": research}, model, "update-subtask",
                 view, tag)


def _prompt(args: dict, required: bool) -> str:
    prompt = args.get("prompt") or ""
    if required and not prompt.strip():
        raise TaskError("A prompt is required: say what to change (or pass metadata where the tool takes it)",
                        "MISSING_PROMPT")
    return prompt.strip()


def _metadata_allowed() -> bool:
    return os.environ.get(ai_update.METADATA_SWITCH, "").strip().lower() == "true"


# ---- research -----------------------------------------------------------------------------------
@tool("research", check=ids_or_blank((), ("taskIds", "saveTo")))
async def research(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    tag = _existing_tag(view, args)
    query = args["query"].strip()
    if not query:
        raise TaskError("The research query must not be empty", "MISSING_QUERY")
    named = ai_research.research_items(view, tag, args.get("taskIds"))
    save_to = ai_research.save_target(view, tag, args.get("saveTo"))
    contents = await asyncio.to_thread(ai_files.context_files, ctx.root, args.get("filePaths"))
    tree = await asyncio.to_thread(ai_files.project_tree, ctx.root) if args.get("includeProjectTree") else None
    items = flattened(view, tag)
    near = related(items, query, RELATED_FOR_RESEARCH, frozenset(t["id"] for t in named))
    detail = args.get("detailLevel") or "medium"
    request = prompts.research(query, tasks=[*named, *near], candidates=items, detail_level=detail,
                               custom_context=args.get("customContext"), files=contents, project_tree=tree)
    async with model_calls(ctx) as model:
        answer = (await model.ask(True, request)).data["text"]  # research always uses the research role
    data = {"query": query, "result": answer, "detailLevel": detail, **_prompt_sizes(request, query)}
    now, timestamp = datetime.now(), iso_now()
    if args.get("saveToFile"):
        name, content = ai_research.research_file(query, answer, now, timestamp)
        data["savedFilePath"] = await asyncio.to_thread(ai_files.write_text, ctx.root, ai_research.RESEARCH_DIR, name,
                                                        content)
    if save_to is not None:
        thread = ai_research.conversation(query, answer, now)
        data["savedTo"] = await ctx.service.write(ctx.root, lambda tx: ai_research.apply_research_note(
            tx, tag, save_to, thread, timestamp))
    return reply(data, model, "research", view, tag)


def _prompt_sizes(request: GenerateRequest, query: str) -> dict:
    """The reference's size figures, estimated at 4 characters a token."""
    user = "".join(m["content"] for m in request.messages)
    context = max(0, len(user) - len(query))
    system_tokens, user_tokens = _tokens(len(request.system)), _tokens(len(user))
    return {"contextSize": context, "contextTokens": _tokens(context), "systemPromptTokens": system_tokens,
            "userPromptTokens": user_tokens, "totalInputTokens": system_tokens + user_tokens}


def _tokens(characters: int) -> int:
    return -(-characters // 4)


operations.job("parse_prd", "parse-prd", _prd_plan, _prd_finish)
operations.job("expand_all", "expand-all-tasks", _expand_all_plan, _expand_all_finish, tolerant=True)
operations.job("analyze_project_complexity", "analyze-complexity", _complexity_plan, _complexity_finish)
