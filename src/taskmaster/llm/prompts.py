"""Prompts for every AI tool: each builder returns a `GenerateRequest` ready for the router.

A request carries both the rendered prompt (for models) and the structured inputs it was rendered
from (`context`, for the offline planner), so both read the same facts. JSON kinds tell the model
the exact schema its answer must match (schemas.py checks it).
"""

from __future__ import annotations

import json

from . import schemas
from .providers.base import GenerateRequest

_JSON_RULE = ("Answer with one JSON object and nothing else (no prose, no code fences). It must match this "
              "JSON schema:\n{schema}")
_TASK_KEYS = ("id", "title", "description", "details", "testStrategy", "status", "priority", "dependencies")


def parse_prd(prd: str, *, num_tasks: int, next_id: int, default_priority: str = "medium",
              research: bool = False) -> GenerateRequest:
    count = (f"about {num_tasks} top-level tasks" if num_tasks > 0 else
             "as many top-level tasks as the document's scope needs")
    system = (
        "You are a technical project planner. Turn a product requirements document into an ordered list of "
        f"{count} that a developer can work through. Number the tasks from {next_id}. Each task has a short "
        "title, a one-sentence description, implementation details, a test strategy, a priority (high, medium "
        "or low; use " + default_priority + " when the document gives no hint), status pending, and the ids of "
        "earlier tasks it depends on (never a later or its own id). Order tasks so foundations come first. "
        "Stay within what the document asks for." + _research(research) + "\n\n" + _json_rule("parse_prd"))
    return _request("parse_prd", "parse-prd", system, f"Product requirements document:\n\n{prd}",
                    {"prd": prd, "numTasks": num_tasks, "nextId": next_id, "defaultPriority": default_priority})


def expand_task(task: dict, *, num: int, next_subtask_id: int, prompt: str | None = None,
                expansion_prompt: str | None = None, related: list[dict] | tuple = (),
                research: bool = False) -> GenerateRequest:
    count = f"exactly {num} subtasks" if num > 0 else "the number of subtasks the work needs"
    system = (
        f"You break a software task into {count}, numbered from {next_subtask_id}. Each subtask is a concrete "
        "step with a title, a description, implementation details, status pending, an optional test strategy, "
        "and the ids of earlier subtasks of this task it depends on." + _research(research)
        + "\n\n" + _json_rule("expand_task"))
    parts = [f"Task to break down:\n{_task_json(task)}"]
    if expansion_prompt:
        parts.append(f"Guidance from the complexity analysis: {expansion_prompt}")
    if related:
        parts.append("Related tasks, for context:\n" + "\n".join(_task_json(t) for t in related))
    if prompt:
        parts.append(f"Additional instructions: {prompt}")
    return _request("expand_task", "expand-task", system, "\n\n".join(parts),
                    {"task": task, "num": num, "nextSubtaskId": next_subtask_id, "prompt": prompt,
                     "expansionPrompt": expansion_prompt})


def analyze_complexity(tasks: list[dict], *, all_tasks: list[dict] | None = None, threshold: int = 5,
                       research: bool = False) -> GenerateRequest:
    fan_in: dict[str, int] = {}
    for task in all_tasks if all_tasks is not None else tasks:
        for dep in task.get("dependencies") or ():
            fan_in[str(dep)] = fan_in.get(str(dep), 0) + 1
    system = (
        "You assess the implementation complexity of software tasks. For every task given, score it from 1 "
        "(trivial) to 10 (very complex), recommend how many subtasks it should be split into, write a prompt "
        "that would guide that split, and explain the score briefly. Tasks scoring " + str(threshold)
        + " or more are candidates for expansion." + _research(research)
        + "\n\n" + _json_rule("analyze_complexity"))
    user = "Tasks to analyse:\n" + "\n".join(_task_json(t) for t in tasks)
    return _request("analyze_complexity", "analyze-complexity", system, user,
                    {"tasks": tasks, "fanIn": fan_in, "threshold": threshold})


def update_tasks(tasks: list[dict], prompt: str, *, research: bool = False) -> GenerateRequest:
    system = ("You update software tasks to reflect new information. Return every task given, with the same ids "
              "and statuses, changed only where the new information requires it. Keep completed subtasks as "
              "they are." + _research(research) + "\n\n" + _json_rule("update_tasks"))
    user = "Tasks:\n" + "\n".join(_task_json(t, subtasks=True) for t in tasks) + f"\n\nNew information:\n{prompt}"
    return _request("update_tasks", "update-tasks", system, user, {"tasks": tasks, "prompt": prompt})


def update_task(task: dict, prompt: str, *, research: bool = False) -> GenerateRequest:
    system = ("You update one software task to reflect new information. Keep its id; keep its status unless "
              "the information is about status; keep completed subtasks as they are." + _research(research)
              + "\n\n" + _json_rule("update_task"))
    user = f"Task:\n{_task_json(task, subtasks=True)}\n\nNew information:\n{prompt}"
    return _request("update_task", "update-task", system, user, {"task": task, "prompt": prompt})


def append_to_task(task: dict, prompt: str, *, research: bool = False) -> GenerateRequest:
    system = ("You add a short, dated-log-style note to a software task's implementation details. Write only "
              "the new text to append, in plain prose or a short list, without repeating what is there."
              + _research(research))
    user = f"Task:\n{_task_json(task)}\n\nWhat to add:\n{prompt}"
    return _request("append_task", "update-task", system, user, {"task": task, "prompt": prompt})


def update_subtask(parent: dict, subtask: dict, prompt: str, *, previous: dict | None = None,
                   following: dict | None = None, research: bool = False) -> GenerateRequest:
    system = ("You add implementation notes to a subtask. Write only the new text to append to its details: "
              "concrete findings, decisions or steps, without repeating what is there." + _research(research))
    parts = [f"Parent task:\n{_task_json(parent)}", f"Subtask:\n{_task_json(subtask)}"]
    parts += [f"{name} subtask:\n{_task_json(s)}" for name, s in (("Previous", previous), ("Next", following)) if s]
    parts.append(f"What to add:\n{prompt}")
    return _request("update_subtask", "update-subtask", system, "\n\n".join(parts),
                    {"parent": parent, "subtask": subtask, "prompt": prompt})


def scope_task(task: dict, direction: str, strength: str, prompt: str | None = None, *,
               research: bool = False) -> GenerateRequest:
    if direction not in ("up", "down"):
        raise ValueError("direction must be 'up' or 'down'")
    change = ("more complete and more demanding: add the work a thorough implementation needs" if direction == "up"
              else "simpler and smaller: keep the essential work, drop or defer the rest")
    system = (f"You rescope one software task to be {change}. Strength: {strength} (light, regular or heavy). "
              "Rewrite its title, description, details, test strategy and priority accordingly; keep its id, "
              "status and dependencies." + _research(research) + "\n\n" + _json_rule("scope_task"))
    user = f"Task:\n{_task_json(task)}" + (f"\n\nAdditional instructions: {prompt}" if prompt else "")
    return _request("scope_task", f"scope-{direction}", system, user,
                    {"task": task, "direction": direction, "strength": strength, "prompt": prompt})


def add_task(prompt: str, *, tasks: list[dict], new_id: int, dependencies: list[int] | tuple = (),
             priority: str | None = None, research: bool = False) -> GenerateRequest:
    summaries = [{k: t.get(k) for k in ("id", "title", "description", "status", "dependencies")} for t in tasks]
    system = ("You write one new software task from a request: a clear title, a one or two sentence "
              "description, implementation details, a test strategy, and the ids of existing tasks it depends "
              "on (only ids from the list given)." + _research(research) + "\n\n" + _json_rule("add_task"))
    user = (f"New task id: {new_id}\nRequest: {prompt}\n"
            + (f"Requested dependencies: {list(dependencies)}\n" if dependencies else "")
            + (f"Priority: {priority}\n" if priority else "")
            + "Existing tasks:\n" + "\n".join(json.dumps(s, ensure_ascii=False) for s in summaries))
    return _request("add_task", "add-task", system, user,
                    {"prompt": prompt, "tasks": summaries, "newId": new_id, "dependencies": list(dependencies),
                     "priority": priority})


def research(query: str, *, tasks: list[dict] | tuple = (), candidates: list[dict] | tuple = (),
             detail_level: str = "medium", custom_context: str | None = None,
             files: dict[str, str] | None = None, project_tree: str | None = None) -> GenerateRequest:
    style = {"low": "Answer briefly and directly.", "high": "Answer in depth, with examples and trade-offs."}
    system = ("You are a research assistant for a software project. Answer the question using current, "
              "accurate knowledge and the project context given. " + style.get(detail_level, "Be thorough "
                                                                                "but concise."))
    parts = [f"Question: {query}"]
    if tasks:
        parts.append("Tasks in question:\n" + "\n".join(_task_json(t, subtasks=True) for t in tasks))
    if custom_context:
        parts.append(f"Additional context:\n{custom_context}")
    for path, content in (files or {}).items():
        parts.append(f"File {path}:\n{content}")
    if project_tree:
        parts.append(f"Project tree:\n{project_tree}")
    return _request("research", "research", system, "\n\n".join(parts),
                    {"query": query, "tasks": list(tasks), "candidates": list(candidates),
                     "detailLevel": detail_level, "customContext": custom_context})


# ---- helpers ------------------------------------------------------------------------------------
def _request(kind: str, command: str, system: str, user: str, context: dict) -> GenerateRequest:
    return GenerateRequest(schema=kind, system=system, messages=[{"role": "user", "content": user}],
                           context=context, command=command)


def _json_rule(kind: str) -> str:
    return _JSON_RULE.format(schema=schemas.schema_text(kind))


def _research(enabled: bool) -> str:
    return " Use current best practices and up-to-date knowledge." if enabled else ""


def _task_json(task: dict, subtasks: bool = False) -> str:
    view = {k: task[k] for k in _TASK_KEYS if task.get(k) not in (None, "", [])}
    if subtasks and task.get("subtasks"):
        view["subtasks"] = [{k: s.get(k) for k in ("id", "title", "status", "description")} for s in task["subtasks"]]
    return json.dumps(view, ensure_ascii=False)
