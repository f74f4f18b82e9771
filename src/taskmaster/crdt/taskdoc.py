"""Plain Task Master objects <-> CRDT documents.

A task document holds the task's fields as LWW registers, its dependencies as the OR-set
"dependencies" and its subtasks as child documents keyed by a random id that never changes (so a
subtask renumbered on one replica and edited on another is still one subtask). Subtask order is the
field `~pos`. Fields starting with '~' are ours and never shown to users.

`view` materializes a document; `delta` gives the smallest delta document that turns the
materialized `old` into `new`.
"""

from __future__ import annotations

import math
from typing import Any

from .doc import DELETED, Doc, merge

DEPS = "dependencies"
SUBTASKS = "subtasks"
POS = "~pos"

# The order Task Master writes a task's keys in; other keys follow alphabetically.
_TASK_ORDER = ("id", "title", "description", "details", "testStrategy", "status", "dependencies",
               "priority", "subtasks")
_ORDER_INDEX = {k: i for i, k in enumerate(_TASK_ORDER)}


def _ordered(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: obj[k] for k in _TASK_ORDER if k in obj}
    if len(out) < len(obj):
        for k in sorted(k for k in obj if k not in _ORDER_INDEX):
            out[k] = obj[k]
    return out


def same(a: Any, b: Any) -> bool:
    """Equality that tells 1 from True, 1 from 1.0 and 0.0 from -0.0 (they are different JSON)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


def view(doc: Doc) -> tuple[dict[str, Any] | None, list[str]]:
    """The plain task and the child keys of its subtasks in order; (None, []) when deleted."""
    if doc.deleted:
        return None, []
    task = {k: r[3] for k, r in doc.fields.items() if r[2] and k[0] != "~"}
    task[DEPS] = doc.members(DEPS)
    live = [(sub.get(POS, 0), key, sub) for key, sub in doc.children.items() if not sub.deleted]
    live.sort(key=lambda item: (item[0], item[1]))
    subs = []
    for _, _, sub in live:
        plain = {k: r[3] for k, r in sub.fields.items() if r[2] and k[0] != "~"}
        plain[DEPS] = sub.members(DEPS)
        subs.append(_ordered(plain))
    task[SUBTASKS] = subs
    return _ordered(task), [key for _, key, _ in live]


def fields_view(doc: Doc) -> dict[str, Any] | None:
    """A fields-only document (tag metadata, project state) as a dict; None when deleted."""
    if doc.deleted:
        return None
    return {k: r[3] for k, r in doc.fields.items() if r[2] and k[0] != "~"}


def fields_delta(delta: Doc, old: dict[str, Any], new: dict[str, Any], ts: int, node: str,
                 skip: tuple[str, ...] = ()) -> None:
    for key, value in new.items():
        if key not in skip and (key not in old or not same(old[key], value)):
            delta.set(key, value, ts, node)
    for key in old:
        if key not in skip and key not in new:
            delta.unset(key, ts, node)


def deps_delta(delta: Doc, doc: Doc | None, old: list, new: list, ts: int, node: str) -> None:
    old_set, new_set = set(old), set(new)
    for elem in new_set - old_set:
        delta.add(DEPS, elem, ts, node)
    for elem in old_set - new_set:
        if doc is not None:
            delta.remove(DEPS, elem, doc.dots(DEPS, elem))


def tombstone(ts: int, node: str) -> Doc:
    return Doc().set(DELETED, True, ts, node)


CASCADE = "~cascade"  # set with the stamp of `~del` by a deletion that also deleted every subtask


def tombstone_task(stored: Doc | None, ts: int, node: str) -> Doc:
    """Delete a task and every subtask it holds now (`stored`: the task's document, if any).

    A subtask another replica adds concurrently is not in this delta, so after merge it is a live
    child of a deleted task: that is how tasks/repair.py finds it and brings the task back with it.
    `CASCADE` marks the deletion as one that covered the subtasks it saw; after a plain `tombstone`
    a live child proves nothing (the deletion may well have seen it).
    """
    delta = tombstone(ts, node).set(CASCADE, True, ts, node)
    if stored is not None:
        for key, child in stored.children.items():
            if not child.deleted:
                delta.children[key] = tombstone(ts, node)
    return delta


def task_delta(doc: Doc | None, old: dict | None, new: dict | None, sub_keys: list[str],
               ts: int, node: str) -> Doc:
    """Delta from `old` (the view of `doc`) to `new`.

    `sub_keys[i]` is the child key of `new["subtasks"][i]`: an existing key for a subtask that was
    already there (wherever it moved), a fresh one for a new subtask.
    """
    if new is None:
        return tombstone(ts, node)
    delta = Doc()
    if doc is not None and doc.deleted:
        # Re-created on purpose: the tombstone still holds the old content; diff against it so
        # none of it shows through.
        delta.set(DELETED, False, ts, node)
        doc = merge(doc, delta)
        old = view(doc)[0]
    old = old or {}
    fields_delta(delta, old, new, ts, node, skip=(DEPS, SUBTASKS))
    deps_delta(delta, doc, old.get(DEPS, []), new.get(DEPS, []), ts, node)
    old_subs = dict(zip(_sub_keys(doc), old.get(SUBTASKS, []), strict=False))
    new_subs = new.get(SUBTASKS, [])
    positions = _positions(doc, sub_keys)
    for key, sub in zip(sub_keys, new_subs, strict=True):
        before = old_subs.get(key)
        child_doc = doc.children.get(key) if doc is not None else None
        part = Doc()
        fields_delta(part, before or {}, sub, ts, node, skip=(DEPS,))
        deps_delta(part, child_doc, (before or {}).get(DEPS, []), sub.get(DEPS, []), ts, node)
        if child_doc is not None and child_doc.deleted:
            part.set(DELETED, False, ts, node)
        if key in positions:
            part.set(POS, positions[key], ts, node)
        if not part.is_empty():
            delta.children[key] = part
    for key in set(old_subs) - set(sub_keys):
        delta.children[key] = tombstone(ts, node)
    return delta


def _sub_keys(doc: Doc | None) -> list[str]:
    """Child keys of the live subtasks in display order (what `view` returns, without building it)."""
    if doc is None or doc.deleted:
        return []
    live = sorted((sub.get(POS, 0), key) for key, sub in doc.children.items() if not sub.deleted)
    return [key for _, key in live]


def _positions(doc: Doc | None, keys: list[str]) -> dict[str, float]:
    """New `~pos` values needed so subtasks sort in `keys` order; existing ones kept when they do."""
    current = [doc.children[k].get(POS) if doc is not None and k in doc.children else None for k in keys]
    out: dict[str, float] = {}
    last = None
    for i, key in enumerate(keys):
        pos = current[i]
        if pos is not None and (last is None or pos > last):
            last = pos
            continue
        nxt = next((p for p in current[i + 1:] if p is not None), None)
        if last is None:
            candidate = nxt - 1 if nxt is not None else 0
        else:
            candidate = (last + nxt) / 2 if nxt is not None else last + 1
        if (nxt is not None and candidate >= nxt) or (last is not None and candidate <= last):
            return {k: j for j, k in enumerate(keys)}  # no room left between floats: renumber all
        out[key] = candidate
        last = candidate
    return out
