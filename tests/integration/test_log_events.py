"""Structured logs on real processes: JSON lines with an `event` for each membership change and
handoff, and no secret in them."""

from __future__ import annotations

import asyncio
import json
import time
from itertools import pairwise

from tests.cluster import TOKEN, Cluster


def events(text: str) -> list[dict]:
    """Every line of a log; each must be one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def about(node, name: str) -> list[str]:
    """The events `node` logged about member `name`, in order."""
    return [e["event"] for e in events(node.log_text) if e.get("node") == name and e["event"]]


async def wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never logged: {what}"
        await asyncio.sleep(0.05)


async def test_json_logs_name_joins_deaths_and_handoffs_and_carry_no_token(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 2, "--log-format", "json", "--log-level", "info") as c:
        seed, joiner = c.nodes
        await wait_for(lambda: "join" in about(seed, joiner.name), "the seed seeing the joiner join")
        await wait_for(lambda: "join" in about(joiner, joiner.name), "the joiner joining")
        assert about(joiner, seed.name)[:1] == ["join"]  # through the seed
        # Cut off, the joiner is declared dead; a write meanwhile leaves a hint for it, handed off
        # after the heal, when it is back (a join again).
        await c.partition([0], [1])
        await wait_for(lambda: about(seed, joiner.name)[-1:] == ["dead"], "a death after a partition")
        await c.client(0).call("add_task", projectRoot=root, title="while apart", description="d")
        await c.heal()
        await wait_for(lambda: "handoff" in about(seed, joiner.name), "the handoff after the heal")
        joiner.proc.kill()
        joiner.wait()
        await wait_for(lambda: about(seed, joiner.name)[-1:] == ["dead"], "a death after a kill")
        joiner.stop()
    for node in (seed, joiner):
        lines = events(node.log_text)
        assert lines and all({"ts", "level", "logger", "event", "msg"} <= set(e) for e in lines)
        assert TOKEN not in node.log_text
    # In this order (a suspicion may precede a death; a loaded machine may add a refuted one), and
    # never the same change twice in a row.
    seen = about(seed, joiner.name)
    rest = iter(seen)
    assert all(e in rest for e in ["join", "dead", "join", "handoff", "dead"]), seen
    assert all(a != b for a, b in pairwise(seen)), seen
    dead = [e for e in events(seed.log_text) if e["event"] == "dead"][-1]
    assert dead["level"] == "warning" and dead["addr"] == joiner.gossip and dead["logger"] == "taskmaster.node"
    handoff = next(e for e in events(seed.log_text) if e["event"] == "handoff")
    assert handoff["docs"] >= 1 and handoff["level"] == "info"
    assert [e["node"] for e in events(seed.log_text) if e["event"] == "leave"] == [seed.name]  # SIGTERM
