"""Does Task Master itself read what we export? A check against the real reference, not a test.

Builds a project on a real taskmasterd (two tags, subtasks, sibling and subtask -> task
dependencies, mixed statuses), exports it with POST /admin/export, then asks the reference CLI to
list every tag and pick the next task, and compares with what our tools answer.

    npm install --prefix /tmp/ref task-master-ai@0.43.1
    python scripts/check_reference.py --reference /tmp/ref/node_modules/.bin/task-master

Prints JSON; exits 1 on any difference. (A subtask that depends on a top-level task cannot be said in
Task Master's format; it is left out of the comparison, and the report says so.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.daemon import Daemon  # noqa: E402
from tests.jsonrpc_client import McpHttp  # noqa: E402


async def build(c: McpHttp, root: str) -> None:
    for i in range(1, 6):
        await c.call("add_task", projectRoot=root, title=f"Task {i}", description=f"about {i}",
                     priority=["high", "medium", "low"][i % 3])
    for i in range(1, 4):
        await c.call("add_subtask", projectRoot=root, id="2", title=f"Part {i}",
                     dependencies=str(i - 1) if i > 1 else None)
    await c.call("add_dependency", projectRoot=root, id="3", dependsOn="1")
    await c.call("add_dependency", projectRoot=root, id="4", dependsOn="2.1")
    await c.call("add_dependency", projectRoot=root, id="2.3", dependsOn="5")  # subtask -> task
    await c.call("set_task_status", projectRoot=root, id="1", status="done")
    await c.call("set_task_status", projectRoot=root, id="2.1", status="done")
    await c.call("set_task_status", projectRoot=root, id="2", status="in-progress")
    await c.call("add_tag", projectRoot=root, name="feature", description="a second tag")
    await c.call("add_task", projectRoot=root, title="Feature work", description="x", tag="feature")


def reference(cli: str, root: str, *args: str) -> dict:
    env = {**os.environ, "TASKMASTER_SKIP_AUTO_UPDATE": "1"}
    out = subprocess.run([cli, *args, "--format", "json", "--project", root], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    start = out.stdout.find("{")
    if out.returncode != 0 or start < 0:
        raise RuntimeError(f"reference {' '.join(args)} failed: {out.stderr[-500:]}")
    return json.JSONDecoder().raw_decode(out.stdout[start:])[0]


def task_deps_in_subtasks(tasks: list[dict]) -> set[str]:
    """Our subtask -> task dependencies, as Task Master will misread them ("P.N" for task N)."""
    return {f"{t['id']}.{d}" for t in tasks for s in t.get("subtasks") or []
            for d in s.get("dependencies") or [] if isinstance(d, int)}


def summary(tasks: list[dict], ours: bool, inexpressible: set[str]) -> list:
    """What both sides must agree on, in one shape: ids as strings, dependencies as full ids."""
    rows = []
    for t in tasks:
        subs = []
        for s in t.get("subtasks") or []:
            deps = [str(d) if "." in str(d) else f"{t['id']}.{d}" for d in s.get("dependencies") or []
                    if not (ours and isinstance(d, int))]
            subs.append([str(s["id"]).rsplit(".", 1)[-1], s["title"], s.get("status"),
                         sorted(d for d in deps if d not in inexpressible)])
        rows.append([str(t["id"]), t["title"], t.get("status"), sorted(str(d) for d in t["dependencies"]), subs])
    return rows


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True, help="path to the reference's task-master CLI")
    a = ap.parse_args()
    report: dict = {"reference": a.reference, "checks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "project")
        os.makedirs(root)
        d = Daemon(Path(tmp) / "data", "--tools", "all").start()
        try:
            async with aiohttp.ClientSession() as http:
                c = McpHttp(d.url, http)
                await c.initialize()
                await build(c, root)
                async with http.post(d.base + "/admin/export", json={"projectRoot": root}) as r:
                    report["export"] = await r.json()
                ours = {tag: (await c.call("get_tasks", projectRoot=root, tag=tag))["data"]["tasks"]
                        for tag in ("master", "feature")}
                our_next = (await c.call("next_task", projectRoot=root))["data"]["nextTask"]
        finally:
            d.stop()
        for tag in ("master", "feature"):
            theirs = reference(a.reference, root, "list", "--with-subtasks", "--tag", tag)["tasks"]
            skip = task_deps_in_subtasks(ours[tag])
            mine, yours = summary(ours[tag], True, skip), summary(theirs, False, skip)
            report["checks"][f"list {tag}"] = mine == yours
            if mine != yours:
                report[f"ours {tag}"], report[f"theirs {tag}"] = mine, yours
        their_next = reference(a.reference, root, "next")
        their_id = str((their_next.get("task") or their_next.get("nextTask") or their_next).get("id"))
        report["checks"]["next task"] = their_id == str(our_next["id"])
        report["next"] = {"ours": our_next["id"], "theirs": their_id}
    report["left out"] = "subtask 2.3 -> task 5 (not expressible in Task Master's format; kept in tmDependencies)"
    report["ok"] = all(report["checks"].values())
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
