"""Claims by several agents over random tags.

1. Any interleaving of claims, finishes and releases by K agents at random times with random leases
   never has two agents holding live leases on the same item, or on a task and one of its subtasks,
   at the same instant; and a claim by an agent that holds something returns that item.
2. With leases that never expire, agents claiming (and finishing what they claim) until nothing is
   left claim every claimable item exactly once, and then next_task has nothing left to offer.

Each run is one transaction over plain data: claims read what earlier steps wrote, as on the service.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import scaled

from taskmaster.tasks.claims import claim_next
from taskmaster.tasks.next_task import find_next
from taskmaster.tasks.status import set_task_status
from tests.conftest import make_tx

T0 = 1_800_000_000
STATUS = st.sampled_from(["pending", "pending", "in-progress", "done", "blocked", "cancelled"])
REFS = st.integers(1, 7) | st.builds(lambda p, c: f"{p}.{c}", st.integers(1, 6), st.integers(1, 3))
SUBTASKS = st.lists(st.fixed_dictionaries({
    "id": st.integers(1, 3), "status": STATUS, "dependencies": st.lists(REFS, max_size=2, unique=True)}),
    max_size=3, unique_by=lambda s: s["id"])
TAGS = st.lists(st.fixed_dictionaries({
    "id": st.integers(1, 6), "status": STATUS, "priority": st.sampled_from(["high", "medium", "low"]),
    "dependencies": st.lists(REFS, max_size=2, unique=True), "subtasks": SUBTASKS}),
    max_size=6, unique_by=lambda t: t["id"])
AGENTS = 4
STEPS = st.lists(st.tuples(st.integers(0, AGENTS - 1), st.integers(0, 40), st.integers(1, 60),
                           st.sampled_from(["claim", "claim", "claim", "finish", "release"])), max_size=40)


@dataclass
class Holding:
    agent: str
    item: str  # "3" or "3.1"
    expires: float
    ended: bool = False  # its item left in-progress (finished, released, or its parent did)


def overlap(a: str, b: str) -> bool:
    """The same item, or a task and one of its subtasks."""
    return a == b or a.split(".")[0] == b or b.split(".")[0] == a


def in_progress(tx, item: str) -> bool:
    """The item, and for a subtask its parent, are in progress (what keeps a lease live)."""
    task_id, _, sub_id = item.partition(".")
    task = tx.task("master", int(task_id))
    if task is None or task.get("status") != "in-progress":
        return False
    return not sub_id or any(s["id"] == int(sub_id) and s.get("status") == "in-progress"
                             for s in task["subtasks"])


def item_of(answer: dict) -> str:
    return str(answer["nextTask"]["id"])


@settings(max_examples=scaled(0.4))
@given(TAGS, STEPS)
def test_no_two_agents_ever_hold_the_same_item(tasks, steps):
    tx = make_tx({"master": {"tasks": tasks}})
    holdings: list[Holding] = []
    now = T0
    for agent_no, pause, seconds, action in steps:
        now += pause
        agent = f"agent{agent_no}"
        mine = [h for h in holdings if h.agent == agent and not h.ended and h.expires > now]
        if action == "claim":
            answer = claim_next(tx, "master", agent, now, seconds)
            if answer["claimed"]:
                item = item_of(answer)
                if mine:
                    assert [h.item for h in mine] == [item]  # a retry returns what the agent holds
                clash = [h for h in holdings if h.agent != agent and not h.ended and h.expires > now
                         and overlap(h.item, item)]
                assert not clash, (agent, item, clash)
                holdings = [h for h in holdings if not (h.agent == agent and h.item == item)]
                holdings.append(Holding(agent, item, now + seconds))
            else:
                assert not mine  # an agent holding something always gets it back
        elif mine:
            set_task_status(tx, "master", mine[0].item, "done" if action == "finish" else "pending")
        for h in holdings:  # a status change ends leases, its own and (through a parent) others
            h.ended = h.ended or not in_progress(tx, h.item)


@settings(max_examples=scaled(0.4))
@given(TAGS, st.lists(st.tuples(st.integers(0, AGENTS - 1), st.booleans()), max_size=30))
def test_claiming_until_nothing_is_left_claims_everything_once(tasks, schedule):
    tx = make_tx({"master": {"tasks": tasks}})
    claimed: list[str] = []
    holding: dict[str, str] = {}  # agent -> the item it holds
    turns = iter(schedule)
    for turn in range(1000):
        agent_no, finish = next(turns, (turn % AGENTS, True))  # then round robin, finishing
        agent = f"agent{agent_no}"
        answer = claim_next(tx, "master", agent, T0, 3600)
        if not answer["claimed"]:
            assert agent not in holding
            if not holding:  # nobody holds anything, and still nothing to claim: all done
                break
            continue
        item = item_of(answer)
        if agent in holding:
            assert holding[agent] == item  # the retry returned what it holds
        else:
            assert item not in claimed and item not in holding.values()
            claimed.append(item)
            holding[agent] = item
        if finish:
            set_task_status(tx, "master", item, "done")
            del holding[agent]
    else:
        raise AssertionError("the agents never ran out of work")
    assert find_next(tx.tasks("master")) is None  # nothing claimable was left behind
