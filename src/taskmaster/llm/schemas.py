"""The shape of every AI answer, and turning a model's text into a validated object.

One JSON schema per result kind, following the reference's zod schemas (src/schemas/*.js):
parse_prd's task list, expand_task's subtasks, the complexity analysis, updated tasks, add_task's
new task. Text kinds (research, update_subtask, append_task) are free text, wrapped as
`{"text": ...}`. `parse_answer` finds the JSON in the text (models like ```json fences), validates
it, fills defaults, drops unknown keys, and raises `SchemaViolation` with a message written for
the model: the repair retry (providers/base.py) sends it back once.

Validation is lenient where the intent is unambiguous: numeric strings where integers are wanted
("3"), enum values in another case ("High"), a bare list where an object holding one list is wanted.
The tool argument validator (tools/schema.py) serves a different purpose, zod's exact messages for
clients, so this one is separate.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

# The reference's AI status enum, plus review and completed: tasks can hold them, so answers may too.
_TASK_STATUS = ["pending", "in-progress", "blocked", "done", "cancelled", "deferred", "review", "completed"]
_PRIORITY = ["high", "medium", "low"]
_ID = {"type": "integer", "minimum": 1}
_TEXT = {"type": "string", "nullable": True, "default": ""}
_DEPS = {"type": "array", "items": _ID, "nullable": True, "default": []}

_PRD_TASK = {
    "type": "object", "required": ["id", "title", "description"],
    "properties": {
        "id": _ID, "title": {"type": "string", "minLength": 1}, "description": {"type": "string", "minLength": 1},
        "details": _TEXT, "testStrategy": _TEXT,
        "priority": {"type": "string", "enum": _PRIORITY, "nullable": True},
        "dependencies": _DEPS,
        "status": {"type": "string", "nullable": True, "default": "pending"},
    },
}
_SUBTASK = {
    "type": "object", "required": ["id", "title", "description", "details"],
    "properties": {
        "id": _ID, "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "minLength": 1}, "details": {"type": "string", "minLength": 1},
        "dependencies": _DEPS,
        "status": {"type": "string", "enum": _TASK_STATUS, "nullable": True, "default": "pending"},
        "testStrategy": _TEXT,
    },
}
_UPDATED_TASK = {
    "type": "object", "required": ["id", "title", "description", "status"],
    "properties": {
        "id": _ID, "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "minLength": 1},
        "status": {"type": "string", "enum": _TASK_STATUS},
        "dependencies": {"type": "array", "items": {"type": ["integer", "string"]}, "nullable": True, "default": []},
        "priority": {"type": "string", "enum": [*_PRIORITY, "critical"], "nullable": True},
        "details": _TEXT, "testStrategy": _TEXT,
        "subtasks": {"type": "array", "items": {"type": "object"}, "nullable": True},
    },
}
_COMPLEXITY_ENTRY = {
    "type": "object",
    "required": ["taskId", "complexityScore", "recommendedSubtasks", "expansionPrompt", "reasoning"],
    "properties": {
        "taskId": _ID, "taskTitle": {"type": "string", "default": ""},
        "complexityScore": {"type": "number", "minimum": 1, "maximum": 10},
        "recommendedSubtasks": {"type": "integer", "minimum": 0},
        "expansionPrompt": {"type": "string"}, "reasoning": {"type": "string"},
    },
}
_NEW_TASK = {
    "type": "object", "required": ["title", "description", "details", "testStrategy"],
    "properties": {
        "title": {"type": "string", "minLength": 1}, "description": {"type": "string", "minLength": 1},
        "details": {"type": "string"}, "testStrategy": {"type": "string"},
        "dependencies": _DEPS,
    },
}


def _holding(name: str, item: dict) -> dict:
    return {"type": "object", "required": [name], "properties": {name: {"type": "array", "items": item}}}


SCHEMAS: dict[str, dict | None] = {
    "parse_prd": _holding("tasks", _PRD_TASK),
    "expand_task": _holding("subtasks", _SUBTASK),
    "analyze_complexity": _holding("complexityAnalysis", _COMPLEXITY_ENTRY),
    "update_tasks": _holding("tasks", _UPDATED_TASK),
    "update_task": {"type": "object", "required": ["task"], "properties": {"task": _UPDATED_TASK}},
    "scope_task": {"type": "object", "required": ["task"], "properties": {"task": _UPDATED_TASK}},
    "add_task": _NEW_TASK,
    # Free text: None.
    "research": None,
    "update_subtask": None,
    "append_task": None,
}
# Lists whose items must carry distinct ids (the reference checks this after generateObject).
_UNIQUE = {"parse_prd": ("tasks", "id"), "expand_task": ("subtasks", "id"),
           "analyze_complexity": ("complexityAnalysis", "taskId"), "update_tasks": ("tasks", "id")}


class SchemaViolation(ValueError):
    """The answer is not usable; the message tells the model what to fix."""


def is_text(kind: str) -> bool:
    return schema_for(kind) is None


def schema_for(kind: str) -> dict | None:
    try:
        return SCHEMAS[kind]
    except KeyError:
        raise ValueError(f"unknown AI result kind {kind!r}") from None


def parse_answer(kind: str, text: str) -> dict:
    """The validated object in a model's answer; SchemaViolation when there is none."""
    schema = schema_for(kind)
    if schema is None:
        answer = (text or "").strip()
        if not answer:
            raise SchemaViolation("the answer was empty")
        return {"text": answer}
    return validate(kind, extract_json(text))


def validate(kind: str, value: Any) -> dict:
    """`value` checked against the kind's schema: defaults filled, unknown keys dropped."""
    schema = schema_for(kind)
    if isinstance(value, list) and len(schema["required"]) == 1:
        value = {schema["required"][0]: value}  # a bare list where {"tasks": [...]} was asked for
    issues: list[str] = []
    out = _check(schema, value, "", issues)
    if not issues and kind in _UNIQUE:
        _check_unique(out, *_UNIQUE[kind], issues)
    if issues:
        more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
        raise SchemaViolation("the JSON does not match the required shape: " + "; ".join(issues[:5]) + more)
    return out


def repair_instruction(kind: str, problem: str) -> str:
    if is_text(kind):
        return f"Your previous answer could not be used: {problem}. Answer the request again."
    return (f"Your previous answer could not be used: {problem}. Reply again with only the corrected JSON "
            f"object matching this JSON schema, and no other text:\n{schema_text(kind)}")


def schema_text(kind: str) -> str:
    """The kind's schema as compact JSON, for prompts."""
    return json.dumps(_public(schema_for(kind)), separators=(",", ":"))


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer: the whole text, a fenced block, or the outermost braces."""
    text = (text or "").strip()
    if not text:
        raise SchemaViolation("the answer was empty, a JSON object was expected")
    candidates = [text]
    fenced = _FENCE.search(text)
    if fenced:
        candidates.append(fenced.group(1).strip())
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start:end + 1])
    first_error = None
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError as error:
            first_error = first_error or error
    raise SchemaViolation(f"the answer is not valid JSON ({first_error})")


# ---- the validator ------------------------------------------------------------------------------
def _check(schema: dict, value: Any, path: str, issues: list[str]) -> Any:
    types = schema.get("type")
    if types is not None:
        value, ok = _coerce(types if isinstance(types, list) else [types], value)
        if not ok:
            issues.append(f"{path or 'answer'}: expected {_type_names(types)}, got {_json_type(value)}")
            return value
    if "enum" in schema:
        match = next((e for e in schema["enum"] if isinstance(value, str) and e == value.strip().lower()), None)
        if match is None:
            issues.append(f"{path}: must be one of {', '.join(schema['enum'])}, got {value!r}")
        value = match or value
    if isinstance(value, str):
        if len(value.strip()) < schema.get("minLength", 0):
            issues.append(f"{path}: must not be empty")
        if len(value) > schema.get("maxLength", len(value)):
            issues.append(f"{path}: longer than {schema['maxLength']} characters")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if value < schema.get("minimum", value):
            issues.append(f"{path}: must be >= {schema['minimum']}, got {value}")
        if value > schema.get("maximum", value):
            issues.append(f"{path}: must be <= {schema['maximum']}, got {value}")
    elif isinstance(value, list) and "items" in schema:
        value = [_check(schema["items"], item, f"{path}[{i}]", issues) for i, item in enumerate(value)]
    elif isinstance(value, dict) and "properties" in schema:
        value = _object(schema, value, path, issues)
    return value


def _object(schema: dict, value: dict, path: str, issues: list[str]) -> dict:
    out = {}
    required = schema.get("required", ())
    for name, sub in schema["properties"].items():
        where = f"{path}.{name}" if path else name
        present = value.get(name)
        if present is not None:
            out[name] = _check(sub, present, where, issues)
        elif name in required and not (name in value and sub.get("nullable")):
            issues.append(f"{where}: missing")
        elif "default" in sub:
            out[name] = copy.copy(sub["default"])  # lists are per result, never shared
    return out


def _coerce(types: list[str], value: Any) -> tuple[Any, bool]:
    for want in types:
        if want == "integer":
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                return value, True
            if isinstance(value, float) and value.is_integer():
                return int(value), True
            if isinstance(value, str) and value.strip().isdigit():
                return int(value.strip()), True
        elif want == "number":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value, True
            if isinstance(value, str):
                try:
                    return float(value), True
                except ValueError:
                    continue
        elif isinstance(value, _PY_TYPES[want]) and not (want != "boolean" and isinstance(value, bool)):
            return value, True
    return value, False


_PY_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


def _check_unique(out: dict, list_key: str, id_key: str, issues: list[str]) -> None:
    seen: set = set()
    for item in out[list_key]:
        if item[id_key] in seen:
            issues.append(f"{list_key}: {id_key} {item[id_key]} appears more than once")
        seen.add(item[id_key])


def _type_names(types) -> str:
    return " or ".join(types) if isinstance(types, list) else types


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _public(schema: Any) -> Any:
    """The schema as standard JSON Schema for models (our `nullable`/`default` marks left out)."""
    if isinstance(schema, dict):
        return {k: _public(v) for k, v in schema.items() if k not in ("nullable", "default")}
    if isinstance(schema, list):
        return [_public(v) for v in schema]
    return schema
