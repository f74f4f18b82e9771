"""The autopilot through MCP on real taskmasterd processes and real git repositories: the whole TDD
loop on one node; on two, the workflow replicated (any node answers for it, also once its
coordinator is gone) and the git steps run on the node that sees the checkout, or a clear error
naming every node asked when none does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp
import pytest

from taskmaster.ring import Ring, partition_key
from tests.cluster import Cluster, Node, ToolFailed
from tests.daemon import Daemon
from tests.gitrepo import git, make_repo
from tests.jsonrpc_client import McpHttp


async def add_task(client: McpHttp, root: str, title: str, subtasks: list[str]) -> int:
    task_id = (await client.call("add_task", projectRoot=root, title=title, description="d"))["data"]["taskId"]
    for sub in subtasks:
        await client.call("add_subtask", projectRoot=root, id=str(task_id), title=sub)
    return task_id


async def phase(client: McpHttp, root: str, total: int, failed: int) -> dict:
    results = {"total": total, "passed": total - failed, "failed": failed}
    return (await client.call("autopilot_complete_phase", projectRoot=root, testResults=results))["data"]


async def test_the_whole_loop_on_one_node(tmp_path):
    root = make_repo(tmp_path / "project")
    repo = Path(root)
    daemon = Daemon(tmp_path / "data", "--tools", "all").start()
    try:
        async with aiohttp.ClientSession() as http:
            client = McpHttp(daemon.url, http)
            task = await add_task(client, root, "Shopping cart", ["Add item", "Remove item", "Total price"])
            assert git(root, "status", "--porcelain") == "", "tasks live in the daemon, not in the checkout"

            start = (await client.call("autopilot_start", projectRoot=root, taskId=str(task)))["data"]
            branch = f"tm/master/task-{task}-shopping-cart"
            assert (start["branchName"], start["phase"], start["tddPhase"], start["nextAction"]) == (
                branch, "SUBTASK_LOOP", "RED", "generate_test")
            assert start["ranOn"] == daemon.name and start["branchCreated"] is True
            assert git(root, "branch", "--show-current").strip() == branch

            # Subtask 1: RED, GREEN, COMMIT with the generated message.
            (repo / "test_cart.py").write_text("def test_add(): ...\n")
            assert (await phase(client, root, 2, 2))["tddPhase"] == "GREEN"
            (repo / "cart.py").write_text("def add(): ...\n")
            assert (await phase(client, root, 2, 0))["nextAction"] == "commit_changes"
            first = (await client.call("autopilot_commit", projectRoot=root))["data"]
            assert sorted(first["files"]) == ["cart.py", "test_cart.py"] and first["ranOn"] == daemon.name
            assert git(root, "log", "-1", "--format=%H").strip() == first["commitSha"]
            assert git(root, "log", "-1", "--format=%B").strip() == (
                f"feat(task-{task}): Add item\n\nTask: {task}\nSubtask: {task}.1\nPhase: COMMIT\n"
                "Tests: 2 passing, 0 failing")

            # Subtask 2: its tests already pass, so it completes without a commit.
            skipped = await phase(client, root, 3, 0)
            assert "already implemented" in skipped["message"] and skipped["currentSubtask"]["id"] == f"{task}.3"

            # Subtask 3: only the named files are committed, with the caller's message.
            await phase(client, root, 4, 1)
            await phase(client, root, 4, 0)
            (repo / "total.py").write_text("def total(): ...\n")
            (repo / "notes.txt").write_text("scratch\n")
            last = (await client.call("autopilot_commit", projectRoot=root, files=["total.py"],
                                      customMessage="feat(cart): totals"))["data"]
            assert (last["files"], last["phase"], last["isComplete"]) == (["total.py"], "FINALIZE", True)
            assert git(root, "log", "-1", "--format=%s").strip() == "feat(cart): totals"
            assert git(root, "rev-list", "--count", "main..HEAD").strip() == "2"

            with pytest.raises(ToolFailed, match="working tree has uncommitted changes.\nStaged: 0, Modified: 0, "
                                                 "Deleted: 0, Untracked: 1"):
                await client.call("autopilot_finalize", projectRoot=root)
            assert (await client.call("autopilot_status", projectRoot=root))["data"]["phase"] == "FINALIZE"
            os.remove(repo / "notes.txt")
            done = (await client.call("autopilot_finalize", projectRoot=root))["data"]
            assert (done["phase"], done["nextAction"], done["progress"]["percentage"]) == (
                "COMPLETE", "workflow_complete", 100)
            with pytest.raises(ToolFailed, match="No active workflow found"):
                await client.call("autopilot_status", projectRoot=root)
            shown = (await client.call("get_task", projectRoot=root, id=str(task)))["data"]
            assert [shown["status"], *(s["status"] for s in shown["subtasks"])] == ["done"] * 4

            # Abort: the workflow goes, the branch and its commits stay.
            other = await add_task(client, root, "Checkout", ["Pay"])
            await client.call("autopilot_start", projectRoot=root, taskId=str(other))
            aborted = (await client.call("autopilot_abort", projectRoot=root))["data"]
            assert aborted == {"message": "Workflow aborted", "hadWorkflow": True, "taskId": other,
                               "branchName": f"tm/master/task-{other}-checkout", "note": aborted["note"]}
            assert git(root, "branch", "--list", f"tm/master/task-{other}-checkout").strip()
            assert git(root, "branch", "--list", branch).strip(), "the finished workflow's branch is kept too"
            assert (await client.call("autopilot_abort", projectRoot=root))["data"]["hadWorkflow"] is False
    finally:
        daemon.stop()


def coordinator(root: str, names: list[str]) -> str:
    """The node the project's calls run on (the first of its own partition's preference order)."""
    return Ring(names).walk(partition_key(root, ""))[0]


async def test_two_nodes_share_the_workflow_and_say_who_was_asked(tmp_path):
    root = make_repo(tmp_path / "project")
    async with Cluster(tmp_path, 2) as c:
        names = [n.name for n in c.nodes]
        coord = coordinator(root, names)
        first, other = names.index(coord), 1 - names.index(coord)
        task = await add_task(c.client(other), root, "Search", ["Index", "Query"])

        started = (await c.client(other).call("autopilot_start", projectRoot=root, taskId=str(task)))["data"]
        assert started["ranOn"] == coord, "the call ran on the coordinator, which sees the checkout itself"
        await phase(c.client(other), root, 1, 1)
        statuses = [(await c.client(i).call("autopilot_status", projectRoot=root))["data"] for i in (0, 1)]
        assert statuses[0] == statuses[1] and statuses[0]["tddPhase"] == "GREEN"
        resumed = (await c.client(first).call("autopilot_resume", projectRoot=root))["data"]
        assert resumed["message"] == "Workflow resumed" and resumed["nextAction"] == "implement_code"

        plain = tmp_path / "plain"
        plain.mkdir()
        await add_task(c.client(0), str(plain), "Nothing", ["x"])
        with pytest.raises(ToolFailed) as err:
            await c.client(other).call("autopilot_start", projectRoot=str(plain), taskId="1")
        asked = coordinator(str(plain), names)  # that project's coordinator runs the call, asks itself first
        assert (f"No node in the cluster can see projectRoot {plain} as a git repository "
                f"(asked {asked}, {[n for n in names if n != asked][0]})") in str(err.value)

        # The workflow is on both nodes: with its coordinator gone, the other one carries on.
        await c.wait_converged([partition_key(root, "")], timeout=10)
        c.nodes[first].stop()
        survivor = c.client(other)
        assert (await survivor.call("autopilot_status", projectRoot=root))["data"] == statuses[0]
        await phase(survivor, root, 1, 0)
        (Path(root) / "index.py").write_text("index = {}\n")
        committed = (await survivor.call("autopilot_commit", projectRoot=root))["data"]
        assert committed["ranOn"] == names[other] and committed["currentSubtask"]["id"] == f"{task}.2"
        assert git(root, "log", "-1", "--format=%s").strip() == f"feat(task-{task}): Index"


def _can_hide_directories() -> bool:
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


class HiddenCluster(Cluster):
    """A cluster where node `blind` runs in its own mount namespace with `hidden` covered by an empty
    tmpfs: on this one machine, that node cannot see what is there, as a node on another machine."""

    def __init__(self, tmp: Path, size: int, blind: int, hidden: Path):
        super().__init__(tmp, size)
        self.blind, self.hidden = blind, str(hidden)

    def node(self, i: int, *extra: str) -> Node:
        node = super().node(i, *extra)
        if i == self.blind:
            inner = node.command
            node.command = lambda: ["unshare", "-m", "--propagation", "private", "sh", "-c",
                                    'mount -t tmpfs tmpfs "$0" && exec "$@"', self.hidden, *inner()]
        return node


@pytest.mark.skipif(not _can_hide_directories(), reason="needs root and mount namespaces to hide a directory")
async def test_git_steps_run_on_the_node_that_sees_the_checkout(tmp_path):
    root = make_repo(tmp_path / "elsewhere" / "project")
    names = ["n0", "n1"]
    coord = coordinator(root, names)
    seer = names[1 - names.index(coord)]
    async with HiddenCluster(tmp_path, 2, blind=names.index(coord), hidden=tmp_path / "elsewhere") as c:
        client = c.client(names.index(coord))
        task = await add_task(client, root, "Export", ["CSV"])
        started = (await client.call("autopilot_start", projectRoot=root, taskId=str(task)))["data"]
        assert started["ranOn"] == seer, f"{coord} cannot see {root}: {seer} made the branch"
        assert git(root, "branch", "--show-current").strip() == started["branchName"]
        await phase(client, root, 1, 1)
        await phase(client, root, 1, 0)
        (Path(root) / "export.py").write_text("def csv(): ...\n")
        committed = (await client.call("autopilot_commit", projectRoot=root))["data"]
        assert committed["ranOn"] == seer and committed["phase"] == "FINALIZE"
        assert git(root, "log", "-1", "--format=%H").strip() == committed["commitSha"]
        done = (await client.call("autopilot_finalize", projectRoot=root))["data"]
        assert done["ranOn"] == seer and done["phase"] == "COMPLETE"
