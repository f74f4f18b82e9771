"""Argument rules the JSON schemas cannot express, reported as -32602 like schema violations."""

from __future__ import annotations

from ..tasks.ids import ID_FORMAT_ERROR, is_valid_refs
from .registry import Check


def ids(*fields: str) -> Check:
    """Each named field, when present, must be an id or a comma list of ids ("15", "15.2")."""

    def check(args: dict) -> list[str]:
        return [f"{f}: {ID_FORMAT_ERROR}" for f in fields if f in args and not is_valid_refs(args[f])]

    return check
