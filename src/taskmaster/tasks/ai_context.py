"""What the AI tools share: reading their numeric arguments, the tag's items as context, and the
dated note blocks the reference appends to details.

Related items are found by shared words of their title and description (the reference uses a
fuzzy search for the same purpose); it only chooses what a prompt shows, so it never changes data.
"""

from __future__ import annotations

import heapq
import re

from .errors import TaskError
from .state import ProjectView
from .tags import locale_date

_WORD = re.compile(r"\w+")
_SHORT = 2  # words this long or shorter ("a", "to", "of") say nothing about relatedness


def whole_number(value: str | int | None, field: str, low: int, high: int, default: int | None) -> int | None:
    """An integer argument given as a string ("5"); blank means `default`; anything else outside
    [low, high] is a TaskError naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise TaskError(f"Invalid {field}: {value!r}. Expected a whole number from {low} to {high}",
                        "INVALID_ARGUMENT")
    return int(text)


def words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) > _SHORT)


def related(items: list[dict], text: str, limit: int, exclude: frozenset = frozenset()) -> list[dict]:
    """Up to `limit` items sharing the most words with `text` (ties: earlier first); none share any."""
    wanted = words(text)
    if not wanted or limit <= 0:
        return []
    scored = []
    for index, item in enumerate(items):
        if item.get("id") in exclude:
            continue
        shared = len(wanted & words(f"{item.get('title') or ''} {item.get('description') or ''}"))
        if shared:
            scored.append((-shared, index, item))
    return [item for _, _, item in heapq.nsmallest(limit, scored, key=lambda s: s[:2])]


def flattened(view: ProjectView, tag: str) -> list[dict]:
    """The tag's tasks, each followed by its subtasks as items with a "P.S" id (for search)."""
    items = []
    for task in view.tasks(tag):
        items.append(task)
        for sub in task.get("subtasks") or ():
            items.append({**sub, "id": f"{task['id']}.{sub.get('id')}"})
    return items


def tag_info(view: ProjectView, tag: str) -> dict:
    """The reference's `tagInfo` of AI answers."""
    return {"currentTag": tag, "availableTags": view.tag_names()}


def info_block(text: str, timestamp: str) -> str:
    """The reference's dated note: `<info added on ISO>` ... `</info added on ISO>`."""
    return f"<info added on {timestamp}>\n{text.strip()}\n</info added on {timestamp}>"


def append_note(item: dict, text: str, prompt: str, timestamp: str) -> None:
    """Append a dated note to `item`'s details; a short request (under 100 characters) also marks the
    description " [Updated: M/D/YYYY]", as the reference does."""
    details = item.get("details") or ""
    item["details"] = (details + "\n" if details else "") + info_block(text, timestamp)
    if len(prompt) < 100 and item.get("description"):
        item["description"] += f" [Updated: {locale_date()}]"


def replace_subtasks(task: dict, subtasks: list[dict]) -> None:
    """Set an edited task's subtasks, reusing the dict of every id that stays: a subtask's stored
    document follows its dict, so a rewritten subtask stays the same document (an edit, which merges
    with concurrent edits elsewhere) instead of a deletion plus a new one."""
    old = {s.get("id"): s for s in task.get("subtasks") or ()}
    out = []
    for sub in subtasks:
        mine = old.pop(sub["id"], None)
        if mine is None:
            out.append(sub)
            continue
        if mine != sub:
            mine.clear()
            mine.update(sub)
        out.append(mine)
    task["subtasks"] = out
