"""Validation of tool arguments against their JSON schema, with Task Master's (zod's) messages.

Only the keywords the tool schemas use are supported: type, properties, required, default, enum,
items, minLength, minItems, minimum, maximum, exclusiveMinimum. Unknown properties are dropped, as
zod does; defaults are filled in.
"""

from __future__ import annotations

from typing import Any

_JSON_TYPES = {
    "string": str,
    "boolean": bool,
    "object": dict,
    "array": list,
}


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as validation messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check(schema: dict, value: Any, path: str, issues: list[str]) -> Any:
    want = schema.get("type")
    if want == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            got = json_type(value)
            issues.append(f"{path}: Invalid input: expected {'int' if got == 'number' else 'number'}, received {got}")
            return value
    elif want == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            issues.append(f"{path}: Invalid input: expected number, received {json_type(value)}")
            return value
    elif want in _JSON_TYPES and not isinstance(value, _JSON_TYPES[want]):
        issues.append(f"{path}: Invalid input: expected {want}, received {json_type(value)}")
        return value
    if "enum" in schema and value not in schema["enum"]:
        options = "|".join(f'"{o}"' for o in schema["enum"])
        issues.append(f"{path}: Invalid option: expected one of {options}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        issues.append(f"{path}: Too small: expected string to have >={schema['minLength']} characters")
    if "minItems" in schema and len(value) < schema["minItems"]:
        issues.append(f"{path}: Too small: expected array to have >={schema['minItems']} items")
    if "minimum" in schema and value < schema["minimum"]:
        issues.append(f"{path}: Too small: expected number to be >={schema['minimum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        issues.append(f"{path}: Too small: expected number to be >{schema['exclusiveMinimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        issues.append(f"{path}: Too big: expected number to be <={schema['maximum']}")
    if want == "array" and "items" in schema:
        value = [_check(schema["items"], v, f"{path}.{i}", issues) for i, v in enumerate(value)]
    if want == "object" and "properties" in schema:
        value = _object(schema, value, path, issues)
    return value


def _object(schema: dict, value: dict, path: str, issues: list[str]) -> dict:
    """Properties checked in schema order (zod's issue order); missing required ones reported there."""
    out = {}
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        if value.get(name) is not None:
            out[name] = _check(sub, value[name], _join(path, name), issues)
        elif name in required:
            want = "number" if sub.get("type") == "integer" else sub.get("type", "value")
            issues.append(f"{_join(path, name)}: Invalid input: expected {want}, received undefined")
        elif "default" in sub:
            out[name] = sub["default"]
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate(schema: dict, args: Any) -> tuple[dict, list[str]]:
    """(arguments with defaults and without unknown keys, list of issues)."""
    issues: list[str] = []
    if not isinstance(args, dict):
        return {}, [f"arguments: Invalid input: expected object, received {json_type(args)}"]
    return _object(schema, args, "", issues), issues
