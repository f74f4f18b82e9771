"""Task and subtask references: "15" is task 15, "15.2" is subtask 2 of task 15.

On the wire and in every stored dependency list a task id is a number and a subtask id the string
"P.S" (see references.py, which reads and writes stored dependencies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ID_FORMAT_ERROR = ("Invalid task ID format. Expected numeric (e.g., '15'), subtask (e.g., '15.2'), "
                   "or display ID (e.g., 'HAM-123')")
_REF = re.compile(r"^\s*(\d+)(?:\.(\d+))?\s*$")
MAX_ID = 2**53 - 1  # JSON-safe integers only


@dataclass(frozen=True, order=True)
class Ref:
    task: int
    sub: int | None = None

    @property
    def is_subtask(self) -> bool:
        return self.sub is not None

    def __str__(self) -> str:
        return f"{self.task}.{self.sub}" if self.sub is not None else str(self.task)

    @property
    def wire(self) -> int | str:
        """The value used in responses and dependency lists: int for tasks, "P.S" for subtasks."""
        return str(self) if self.sub is not None else self.task


def parse_ref(text: str | int) -> Ref:
    """Parse one id; raises ValueError(ID_FORMAT_ERROR) for anything else ("1..2", "-3", "abc")."""
    if isinstance(text, bool):
        raise ValueError(ID_FORMAT_ERROR)
    if isinstance(text, int):
        text = str(text)
    m = _REF.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(ID_FORMAT_ERROR)
    task = int(m.group(1))
    sub = int(m.group(2)) if m.group(2) is not None else None
    if task < 1 or task > MAX_ID or (sub is not None and (sub < 1 or sub > MAX_ID)):
        raise ValueError(ID_FORMAT_ERROR)
    return Ref(task, sub)


def parse_refs(text: str) -> list[Ref]:
    """A comma-separated list of ids (spaces allowed), in the order given."""
    parts = [p for p in str(text).split(",")]
    if not parts or any(not p.strip() for p in parts):
        raise ValueError(ID_FORMAT_ERROR)
    return [parse_ref(p) for p in parts]


def is_valid_refs(text: str) -> bool:
    try:
        parse_refs(text)
        return True
    except ValueError:
        return False


def dep_wire(dep: int | str) -> int | str:
    """A dependency read from a file in its id type: "3" -> 3, "2.1" stays, 3 stays."""
    if isinstance(dep, str):
        s = dep.strip()
        if s.isdigit():
            return int(s)
        return s
    return dep


def renumbered(items: list[dict], start: int) -> dict:
    """A model's ids for `items` -> start, start+1, ... by position (a repeated id keeps its first)."""
    new_id: dict = {}
    for index, item in enumerate(items):
        new_id.setdefault(item["id"], start + index)
    return new_id
