"""Claims: next_task that also takes the task for one agent, under a lease that expires.

A claim picks what next_task would offer, leaving out what another agent holds, and marks it
in progress for the agent: on the task or subtask it sets `status: "in-progress"`, `assignee` and
`lease: {"agent", "expiresAt"}` (ISO-8601 UTC). An agent that already holds something gets it back
with the lease renewed, so a claim retried after a timeout does not take a second task.

A lease is live while its item is in progress (for a subtask: its parent too) and `expiresAt` is
ahead of `now`. So setting the status to done, pending or anything else ends it (the field stays as
a record and is ignored), and an expired lease frees the item for anyone. Holding a task covers its
subtasks and holding a subtask covers its parent: two agents never work on nested items either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .errors import TaskError
from .next_task import describe, find_next
from .state import ProjectTx, ProjectView

LEASE_SECONDS = 300  # the default; the tool schema repeats it and the bounds
MIN_LEASE_SECONDS = 1
MAX_LEASE_SECONDS = 86_400
CLAIM_REFUSED = "CLAIM_REFUSED_NO_QUORUM"
_CLAIMED_STEPS = ("Next: this is yours and already in progress until lease.expiresAt. Call next_task "
                  "with claim again before then to renew the lease (you get the same item back). Read "
                  "it with get_task (for a subtask, read its parent for context), and mark it done with "
                  "set_task_status when its work is verified: that ends the lease. Then claim again.")

Item = tuple[dict, dict | None]  # (task, None) or (parent, subtask)


class ClaimMoved(Exception):
    """`claim_next(only=...)`: the item granted is no longer what the claim would take; choose again."""


def claim_next(tx: ProjectTx, tag: str, agent: str, now: float | datetime, lease_seconds: int = LEASE_SECONDS,
               report: dict | None = None, quorum: Callable[[], str | None] | None = None,
               only: str | None = None, exclude: frozenset[str] = frozenset()) -> dict:
    """Claim the next task for `agent` until `now + lease_seconds`: next_task's answer plus
    `claimed` and `lease`; `claimed: False` with next_task's no-task answer when nothing is free.

    `quorum` (in a cluster) returns why a majority of the replicas is out of reach, if it is: then
    the claim is refused, since the other side of a partition could hand out the same task.
    In a cluster the item is first chosen (`choose_claim`) and granted by a majority of replicas;
    `only` then names it (ClaimMoved if it is no longer the choice) and `exclude` names items some
    replica would not grant.
    """
    check_claim(tx, tag, agent, lease_seconds)
    require_quorum(quorum)
    at = _seconds(now)
    choice = _choose(tx.tasks(tag), agent, at, exclude)
    if only is not None and (choice is None or item_key(choice) != only):
        raise ClaimMoved(only)
    if choice is None:
        return nothing_claimed(tx, tag)
    lease = lease_until(agent, at, lease_seconds)
    item = _take(tx, tag, choice, agent, lease, at)
    return {**describe(tx, tag, item, report), "nextSteps": _CLAIMED_STEPS, "claimed": True, "lease": lease}


def check_claim(view: ProjectView, tag: str, agent: object, lease_seconds: object) -> None:
    """The claim's own arguments and tag, checked before anything else (TaskError)."""
    _require_agent(agent)
    _require_lease_seconds(lease_seconds)
    if not view.has_tag(tag):  # a claim is a write: like every write, it names a tag that exists
        raise TaskError(f"Tag '{tag}' does not exist", "TAG_NOT_FOUND")


def require_quorum(quorum: Callable[[], str | None] | None) -> None:
    reason = quorum() if quorum is not None else None
    if reason is not None:
        raise TaskError("A claim needs a majority of the task's replicas reachable, so that no two agents "
                        f"can take the same task; refused because {reason}. Nothing was changed: retry "
                        "later, or call next_task without claim.", CLAIM_REFUSED)


def nothing_claimed(view: ProjectView, tag: str) -> dict:
    return {**describe(view, tag, None), "claimed": False}


def choose_claim(view: ProjectView, tag: str, agent: str, now: float | datetime,
                 exclude: frozenset[str] = frozenset()) -> tuple[str, dict | None] | None:
    """What a claim by `agent` would take now: (its id, "5" or "5.2"; the lease it carries, which
    a replica granting the claim may hold a lock for), or None."""
    choice = _choose(view.tasks(tag), agent, _seconds(now), exclude)
    if choice is None:
        return None
    item = choice[1] if choice[1] is not None else choice[0]
    lease = item.get("lease")
    return item_key(choice), (dict(lease) if isinstance(lease, dict) else None)


def lease_until(agent: str, now: float | datetime, lease_seconds: int) -> dict:
    return {"agent": agent, "expiresAt": _iso(_seconds(now) + lease_seconds)}


def item_key(choice: Item) -> str:
    task, sub = choice
    return str(task["id"]) if sub is None else f"{task['id']}.{sub['id']}"


def _choose(tasks: list[dict], agent: str, at: float, exclude: frozenset[str]) -> Item | None:
    own, taken = _leases(tasks, agent, at)
    if own is not None:
        return own
    if not exclude:
        return find_next(tasks, taken)
    return find_next(tasks, lambda task, sub: taken(task, sub) or item_key((task, sub)) in exclude)


def live_holder(item: dict, at: float) -> str | None:
    """The agent whose lease on this in-progress item is live at `at` (the parent's status is the
    caller's to check)."""
    if item.get("status") != "in-progress":
        return None
    expiry = _lease_expiry(item)
    return item["lease"]["agent"] if expiry is not None and expiry > at else None


def _lease_expiry(item: dict) -> float | None:
    """When the item's lease ends (epoch seconds); None without a readable lease."""
    lease = item.get("lease")
    if not isinstance(lease, dict) or not isinstance(lease.get("agent"), str):
        return None
    try:
        when = datetime.fromisoformat(lease.get("expiresAt"))
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _leases(tasks: list[dict], agent: str, at: float) -> tuple[Item | None, Callable[[dict, dict | None], bool]]:
    """The first item `agent` holds, and whether an item is off limits because another agent holds
    it, its parent or (for a task) one of its subtasks.

    Only in-progress tasks can hold a live lease on themselves or their subtasks: the same part of
    the tag next_task looks into for subtasks.
    """
    own, held, busy = None, set(), set()  # id() of items held by others; of tasks with such subtasks
    for task in tasks:
        if task.get("status") != "in-progress":
            continue
        holder = live_holder(task, at)
        if holder == agent:
            own = own or (task, None)
        elif holder is not None:
            held.add(id(task))
        for sub in task.get("subtasks") or ():
            holder = live_holder(sub, at)
            if holder == agent:
                own = own or (task, sub)
            elif holder is not None:
                held.add(id(sub))
                busy.add(id(task))

    def taken(task: dict, sub: dict | None) -> bool:
        if sub is None:
            return id(task) in held or id(task) in busy
        return id(sub) in held or id(task) in held

    return own, taken


def _take(tx: ProjectTx, tag: str, choice: Item, agent: str, lease: dict, at: float) -> Item:
    """Mark the item in progress for `agent` under `lease`; returns it as stored in `tx`."""
    task, sub = choice
    mine = tx.edit(tag, task)
    item = mine if sub is None else mine["subtasks"][next(i for i, s in enumerate(task["subtasks"]) if s is sub)]
    if item.get("status") != "in-progress":
        item["status"] = "in-progress"
        item["updatedAt"] = _iso(at)
    item["assignee"] = agent
    item["lease"] = dict(lease)
    return mine, (None if sub is None else item)


def _require_agent(agent: object) -> None:
    if not isinstance(agent, str) or not agent.strip():
        raise TaskError("agent is required when claim is true: the name of the agent taking the task "
                        "(a non-empty string)", "INVALID_AGENT")


def _require_lease_seconds(seconds: object) -> None:
    if seconds.__class__ is not int or not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        raise TaskError(f"leaseSeconds must be a whole number from {MIN_LEASE_SECONDS} to "
                        f"{MAX_LEASE_SECONDS}, got {seconds!r}", "INVALID_LEASE")


def _seconds(now: float | datetime) -> float:
    if isinstance(now, datetime):
        return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    return float(now)


def _iso(seconds: float) -> str:
    """Epoch seconds as iso_now writes times: 2026-11-27T11:08:00.000Z."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
