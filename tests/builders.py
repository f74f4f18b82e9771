"""Plain task and subtask dicts for pure domain tests, and a transaction over them."""

from __future__ import annotations

from tests.conftest import make_tx


def task(i, deps=(), subs=(), **extra):
    return {"id": i, "title": f"Task {i}", "description": "", "status": "pending", "priority": "medium",
            "dependencies": list(deps), "subtasks": list(subs), **extra}


def sub(i, deps=(), **extra):
    return {"id": i, "title": f"Sub {i}", "description": "", "details": "", "status": "pending",
            "dependencies": list(deps), **extra}


def tx_with(*tasks, **other_tags):
    tags = {"master": {"tasks": list(tasks)}}
    tags.update({name: {"tasks": ts} for name, ts in other_tags.items()})
    return make_tx(tags)


def deps_of(tx, tid, sub_id=None, tag="master"):
    t = tx.task(tag, tid)
    if sub_id is None:
        return t["dependencies"]
    return next(s for s in t["subtasks"] if s["id"] == sub_id)["dependencies"]
