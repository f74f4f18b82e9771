"""The offline planner: every AI result kind answered by deterministic heuristics, with no network.

It is the embedded default, so every AI tool works on a machine with no model. It says what it is:
provider "offline-planner", and a `note` on every result. It reads the structured inputs the
prompt was built from (`request.context`, see prompts.py), never the prompt text. Same input, same
output: no clock, no randomness, stable orderings.
"""

from __future__ import annotations

import asyncio
import math
import re

from .. import schemas
from .base import GenerateRequest, GenerateResult, LlmError, Provider, Usage
from .heuristics import (
    balanced_chunks,
    best_match,
    first_sentence,
    likeness,
    mentions,
    points,
    sentences,
    title_of,
    word_count,
    words,
)
from .offline_prd import plan_tasks

NAME = "offline-planner"
MODEL = "heuristics-1"
NOTE = ("Offline planner: no AI model is configured on this node, so this result comes from deterministic "
        "text heuristics, not from a model. Configure one with the models tool (and its API key) for real "
        "planning.")

_HARD = re.compile(r"\b(security|secure|auth\w*|encrypt\w*|crypto\w*|distributed|concurren\w*|parallel|"
                   r"real[- ]time|migrat\w*|performance|scal\w*|cach\w*|sync\w*|replicat\w*|payment\w*|"
                   r"billing|algorithm\w*|pars\w*|compil\w*|protocol\w*|machine learning|model training|"
                   r"integration|third[- ]party|oauth|websocket\w*|transaction\w*|consisten\w*|"
                   r"fault[- ]toleran\w*|infrastructure|deploy\w*)\b", re.I)
_EASY = re.compile(r"\b(typo|rename|readme|docs?|documentation|copy|wording|bump|style|lint|cleanup|"
                   r"config(?:uration)? value)\b", re.I)
_SCOPE_UP = {"light": ("input validation and edge cases",),
             "regular": ("input validation and edge cases", "error handling with clear messages", "logging"),
             "heavy": ("input validation and edge cases", "error handling with clear messages", "logging",
                       "performance under load", "monitoring and metrics", "user and developer documentation")}
_SCOPE_DOWN_KEEP = {"light": 0.75, "regular": 0.5, "heavy": 0.25}
_RESEARCH_LIMIT = {"low": 3, "medium": 5, "high": 8}
_PRIORITY_SET = re.compile(r"\bpriority\s*(?:to|=|:|is)?\s*(high|medium|low|critical)\b|"
                           r"\b(high|medium|low|critical)[- ]priority\b", re.I)
_TITLE_SET = re.compile(r"\b(?:rename(?:\s+it)?\s+to|title\s*(?:to|=|:|is))\s*[\"“'](.+?)[\"”']", re.I)


class OfflinePlanner(Provider):
    name = NAME
    model = MODEL

    def __repr__(self) -> str:
        return "OfflinePlanner()"

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        if _heavy(request.context):
            return await asyncio.to_thread(answer, request)  # keep the event loop free for other calls
        return answer(request)


def answer(request: GenerateRequest) -> GenerateResult:
    """The planner's result for a request (synchronous: pure computation)."""
    handler = _HANDLERS.get(request.schema)
    if handler is None:
        raise LlmError(f"the offline planner cannot produce {request.schema!r} results")
    data, note = handler(request.context)
    if schemas.is_text(request.schema):
        text = data["text"]
    else:
        data = schemas.validate(request.schema, data)
        text = ""
    return GenerateResult(data=data, text=text, usage=Usage(NAME, MODEL), provider=NAME, model=MODEL,
                          note=f"{NOTE} {note}".strip())


# ---- parse_prd ----------------------------------------------------------------------------------
def _parse_prd(ctx: dict) -> tuple[dict, str]:
    prd = ctx.get("prd") or ""
    if not prd.strip():
        raise LlmError("The PRD is empty: there is nothing to plan from", "INVALID_INPUT")
    num = int(ctx.get("numTasks") or 0)
    tasks = plan_tasks(prd, num, int(ctx.get("nextId") or 1), _priority(ctx.get("defaultPriority")))
    if not tasks:
        raise LlmError("The PRD has no requirements the offline planner can read", "INVALID_INPUT")
    how = ("Tasks follow the PRD's headings, numbered and bulleted items in document order; dependencies "
           "follow that order and explicit mentions such as 'after 3' or 'depends on ...'.")
    if 0 < num < len(tasks):
        how += f" Consecutive requirements were merged to respect numTasks={num}."
    return {"tasks": tasks}, how


# ---- expand_task --------------------------------------------------------------------------------
def _expand(ctx: dict) -> tuple[dict, str]:
    task = ctx.get("task") or {}
    title = title_of(task.get("title") or "") or f"task {task.get('id')}"
    found = points(task.get("details") or "") or points(task.get("description") or "")
    num = int(ctx.get("num") or 0)
    count = num if num > 0 else min(max(3, 2 + math.ceil(len(found) / 2)), 6)
    first = int(ctx.get("nextSubtaskId") or 1)
    guidance = " ".join(x for x in (ctx.get("expansionPrompt"), ctx.get("prompt")) if x)
    steps = _steps(title, task, found, count, guidance)
    # Implementation steps wait for the design; the test step waits for every implementation step.
    after = {"design": [], "implement": [first] if steps[0][0] == "design" else [],
             "test": [first + i for i, step in enumerate(steps) if step[0] == "implement"]}
    subtasks = [{"id": first + i, "title": step_title, "description": description, "details": details,
                 "dependencies": list(after[kind]), "status": "pending", "testStrategy": None}
                for i, (kind, step_title, description, details) in enumerate(steps)]
    return {"subtasks": subtasks}, "Subtasks split the task's details into design, implementation and test steps."


def _steps(title: str, task: dict, found: list[str], count: int, guidance: str) -> list[tuple]:
    listing = "\n".join(f"- {p}" for p in found)
    design = ("design", f"Design the approach for {title}",
              f"Decide the structure, interfaces and data that {title} needs before writing code.",
              "Settle how the work is split and what each part exposes." + (f"\nPoints to cover:\n{listing}"
                                                                             if listing else "")
              + (f"\nGuidance: {guidance}" if guidance else ""))
    test = ("test", f"Test {title}", f"Verify that {title} works as specified, including failure cases.",
            _or(task.get("testStrategy"), "Write automated tests for each implemented part and its error paths.")
            + (f"\nCheck each point:\n{listing}" if listing else ""))
    slots = count - 2 if count >= 3 else 1
    implement = []
    for k, part in enumerate(balanced_chunks(max(len(found), slots), slots)):
        chunk = [found[j] for j in part if j < len(found)]
        name = _lower_first(title_of(chunk[0], 60)) if chunk else f"{title} (part {k + 1} of {slots})"
        body = "\n".join(f"- {p}" for p in chunk) or f"Implement part {k + 1} of {slots} of {title}."
        implement.append(("implement", f"Implement {name}", f"Build and wire up: {name}.",
                          f"{body}\n(From the details of {title}.)"))
    if count == 1:
        return implement[:1]
    if count == 2:
        return [implement[0], test]
    return [design, *implement, test]


# ---- analyze_complexity -------------------------------------------------------------------------
def _complexity(ctx: dict) -> tuple[dict, str]:
    fan_in = {str(k): int(v) for k, v in (ctx.get("fanIn") or {}).items()}
    return {"complexityAnalysis": [_score(t, fan_in.get(str(t.get("id")), 0)) for t in ctx.get("tasks") or []]}, \
        "Scores come from the amount of text, dependency fan-in/out and technical keywords."


def _score(task: dict, fan_in: int) -> dict:
    text = " ".join(str(task.get(k) or "") for k in ("title", "description", "details", "testStrategy"))
    count = word_count(text)
    size = min(4.0, math.log2(1 + count / 20))
    fan_out = len(task.get("dependencies") or [])
    links = min(2.0, 0.4 * (fan_in + fan_out))
    hard = sorted({_singular(m.group(0).lower()) for m in _HARD.finditer(text)})
    keywords = min(3.0, 0.75 * len(hard))
    easy = 1.0 if _EASY.search(task.get("title") or "") and not hard else 0.0
    existing = min(1.0, len(task.get("subtasks") or []) / 4)
    score = int(min(10, max(1, round(1 + size + links + keywords + existing - easy))))
    recommended = min(10, max(1, round(score * 0.8)))
    title = task.get("title") or ""
    reasoning = (f"Offline heuristic, not a model's judgement: {count} words of description (+{size:.1f}), "
                 f"{fan_out} dependencies and {fan_in} dependents (+{links:.1f}), "
                 f"technical keywords {', '.join(hard) if hard else 'none'} (+{keywords:.1f})"
                 + (f", {len(task.get('subtasks') or [])} existing subtasks (+{existing:.1f})" if existing else "")
                 + (", routine-work wording (-1.0)" if easy else "") + f": score {score}/10.")
    return {"taskId": task.get("id"), "taskTitle": title, "complexityScore": score,
            "recommendedSubtasks": recommended, "expansionPrompt": _expansion_prompt(task, recommended, hard),
            "reasoning": reasoning}


def _expansion_prompt(task: dict, count: int, hard: list[str]) -> str:
    name = f"task {task.get('id')} '{task.get('title') or ''}'"
    focus = f", paying attention to {', '.join(hard[:4])}" if hard else ""
    if count == 1:
        return f"Keep {name} as one subtask that implements and verifies it{focus}."
    if count == 2:
        return f"Split {name} into 2 subtasks: the implementation{focus}, then its tests."
    return (f"Break down {name} into {count} subtasks: a design step, implementation steps{focus}, and a test "
            "step based on its test strategy.")


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


# ---- update, update_task, scope, add_task ---------------------------------------------------------
def _update_tasks(ctx: dict) -> tuple[dict, str]:
    changed = [_updated(t, ctx.get("prompt") or "") for t in ctx.get("tasks") or []]
    return {"tasks": [t for t, _ in changed]}, " ".join(why for _, why in changed)


def _update_task(ctx: dict) -> tuple[dict, str]:
    task, why = _updated(ctx.get("task") or {}, ctx.get("prompt") or "")
    return {"task": task}, why


def _updated(original: dict, prompt: str) -> tuple[dict, str]:
    task = _task_fields(original)
    changes = []
    priority = _PRIORITY_SET.search(prompt)
    if priority:
        task["priority"] = (priority.group(1) or priority.group(2)).lower()
        changes.append(f"priority set to {task['priority']}")
    title = _TITLE_SET.search(prompt)
    if title:
        task["title"] = title.group(1).strip()[:200]
        changes.append(f"title changed to '{task['title']}'")
    task["details"] = _append(task["details"], f"Update requested (recorded by the offline planner, not "
                                                f"applied as a rewrite): {prompt.strip()}")
    changes.append("the request was appended to details")
    return task, f"Task {task['id']}: {', '.join(changes)}."


def _scope(ctx: dict) -> tuple[dict, str]:
    task = _task_fields(ctx.get("task") or {})
    strength = ctx.get("strength") if ctx.get("strength") in _SCOPE_DOWN_KEEP else "regular"
    request = f" Requested: {ctx['prompt'].strip()}" if (ctx.get("prompt") or "").strip() else ""
    if ctx.get("direction") == "down":
        found = points(task["details"])
        keep = max(1, math.ceil(len(found) * _SCOPE_DOWN_KEEP[strength]))
        if len(found) > keep:
            dropped = found[keep:]
            task["details"] = "\n".join(f"- {p}" for p in found[:keep]) + (
                f"\n\nScope reduced ({strength}, offline planner): deferred "
                + "; ".join(title_of(p, 60) for p in dropped) + "." + request)
            tests = sentences(task["testStrategy"])
            task["testStrategy"] = tests[0] if tests else task["testStrategy"]
            return {"task": task}, f"Task {task['id']}: kept {keep} of {len(found)} points, deferred {len(dropped)}."
        task["details"] = _append(task["details"], f"Scope reduced ({strength}, offline planner): the details "
                                                   f"hold no separate points to defer, nothing was cut.{request}")
        return {"task": task}, f"Task {task['id']}: nothing to cut."
    added = _SCOPE_UP[strength]
    task["details"] = _append(task["details"], f"Scope increased ({strength}, offline planner): also cover "
                                               f"{', '.join(added)}.{request}")
    task["testStrategy"] = _append(task["testStrategy"], f"Also test {', '.join(added)}.")
    return {"task": task}, f"Task {task['id']}: added {', '.join(added)}."


def _add_task(ctx: dict) -> tuple[dict, str]:
    prompt = (ctx.get("prompt") or "").strip()
    if not prompt:
        raise LlmError("add_task needs a prompt describing the task", "INVALID_INPUT")
    existing = [t for t in ctx.get("tasks") or [] if isinstance(t.get("id"), int)]
    ids = {t["id"] for t in existing}
    deps = {d for d in ctx.get("dependencies") or [] if d in ids}
    asked = words(prompt)
    titles = [words(t.get("title") or "") for t in existing]
    for number, phrase in mentions(prompt):
        match = best_match(words(phrase), titles) if number is None else None
        if number in ids:
            deps.add(number)
        elif match is not None:
            deps.add(existing[match]["id"])
    related = sorted(existing, key=lambda t: (-likeness(asked, words(_summary(t))), t["id"]))[:3]
    related = [t for t in related if likeness(asked, words(_summary(t))) > 0]
    title = title_of(prompt) or "New task"
    details = prompt + ("\n\nRelated existing tasks: " + "; ".join(f"{t['id']} {t.get('title', '')}" for t in related)
                        if related else "")
    return {"title": title, "description": first_sentence(prompt) or title, "details": details,
            "testStrategy": f"Verify that {title[:1].lower() + title[1:]} works as described, including failure "
                            "cases.", "dependencies": sorted(deps)}, "Title and description come from the prompt."


# ---- text kinds ---------------------------------------------------------------------------------
def _research(ctx: dict) -> tuple[dict, str]:
    query = (ctx.get("query") or "").strip()
    limit = _RESEARCH_LIMIT.get(ctx.get("detailLevel") or "medium", 5)
    explicit = list(ctx.get("tasks") or [])
    asked = words(query)
    scored = [(likeness(asked, words(_summary(t))), i, t) for i, t in enumerate(ctx.get("candidates") or [])]
    matched = [t for s, _, t in sorted(scored, key=lambda x: (-x[0], x[1])) if s > 0]
    shown = (explicit + [t for t in matched if t not in explicit])[:max(limit, len(explicit))]
    lines = ["No AI model is configured on this node, so this is not a researched answer: the offline planner "
             "can only gather what the project already records about the question.", "", f"Query: {query}"]
    if shown:
        lines += ["", "Related tasks:"]
        lines += [f"- {t.get('id')}: {t.get('title', '')} ({t.get('status', 'pending')}) - "
                  f"{first_sentence(t.get('description') or '', 200)}" for t in shown]
        if ctx.get("detailLevel") == "high":
            lines += [f"  {t.get('id')} details: {first_sentence(t.get('details') or '', 300)}"
                      for t in shown if t.get("details")]
    else:
        lines += ["", "No task in this tag looks related to the query."]
    if (ctx.get("customContext") or "").strip():
        lines += ["", f"Context given: {ctx['customContext'].strip()}"]
    lines += ["", "For a real answer, configure a model for the research role (models tool, setResearch) with "
                  "its API key, or call from an MCP client that supports sampling."]
    return {"text": "\n".join(lines)}, f"{len(shown)} related task(s) listed."


def _note_text(ctx: dict) -> tuple[dict, str]:
    prompt = (ctx.get("prompt") or "").strip()
    return {"text": f"Note recorded by the offline planner (no AI model configured; not researched or "
                    f"rewritten): {prompt}"}, "The request was recorded as given."


# ---- helpers ------------------------------------------------------------------------------------
def _task_fields(task: dict) -> dict:
    """The fields an updated-task answer carries, copied (subtasks come back unchanged, as copies)."""
    title = _or(task.get("title"), f"Task {task.get('id')}")
    out = {"id": task.get("id"), "title": title, "description": _or(task.get("description"), title),
           "status": task.get("status") or "pending", "dependencies": list(task.get("dependencies") or []),
           "priority": task.get("priority"), "details": task.get("details") or "",
           "testStrategy": task.get("testStrategy") or ""}
    if task.get("subtasks") is not None:
        out["subtasks"] = [dict(sub) for sub in task["subtasks"]]  # never hand out the caller's dicts
    return out


def _or(text, fallback: str) -> str:
    """`text` unless it is missing or blank."""
    return text if isinstance(text, str) and text.strip() else fallback


def _lower_first(text: str) -> str:
    """"Create a customer" -> "create a customer"; acronyms and names ("API", "OAuth") stay."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _heavy(ctx: dict) -> bool:
    """Inputs big enough (about 10 ms of work and up) to run off the event loop."""
    return len(ctx.get("prd") or "") > 20_000 or len(ctx.get("tasks") or ()) > 200


def _append(text: str, addition: str) -> str:
    return f"{text.rstrip()}\n\n{addition}" if (text or "").strip() else addition


def _summary(task: dict) -> str:
    return f"{task.get('title', '')} {task.get('description', '')}"


def _priority(value) -> str:
    return value if value in ("high", "medium", "low") else "medium"


_HANDLERS = {"parse_prd": _parse_prd, "expand_task": _expand, "analyze_complexity": _complexity,
             "update_tasks": _update_tasks, "update_task": _update_task, "scope_task": _scope,
             "add_task": _add_task, "research": _research, "update_subtask": _note_text,
             "append_task": _note_text}
