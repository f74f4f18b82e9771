"""taskmasterd as a real process: ready line, health, metrics, SIGTERM, data-dir lock, SIGKILL."""

from __future__ import annotations

import asyncio
import random
import signal

import aiohttp
import pytest

from tests.daemon import Daemon
from tests.jsonrpc_client import McpHttp, ToolFailed


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    return str(root)


async def test_ready_line_health_and_metrics(tmp_path, project):
    d = Daemon(tmp_path / "data", "--tools", "all").start()
    try:
        assert d.url.startswith("http://127.0.0.1:") and d.url.endswith("/mcp")
        assert int(d.gossip.rsplit(":", 1)[1]) > 0  # a real port, not 0
        async with aiohttp.ClientSession() as http:
            async with http.get(d.base + "/health") as r:
                assert r.status == 200
                health = await r.json()
            assert health["status"] == "ok" and health["name"] == d.name
            client = McpHttp(d.url, http)
            await client.initialize()
            await client.call("add_task", projectRoot=project, title="t", description="d")
            async with http.get(d.base + "/metrics") as r:
                text = await r.text()
        assert 'taskmaster_tool_calls_total{outcome="ok",tool="add_task"} 1.0' in text
        assert "taskmaster_storage_fsync_seconds_count" in text
    finally:
        d.stop()


async def test_name_is_kept_across_restarts(tmp_path):
    first = Daemon(tmp_path / "data").start()
    first.stop()
    second = Daemon(tmp_path / "data").start()
    second.stop()
    assert first.name == second.name != ""


def test_second_daemon_on_same_data_dir_fails_with_a_clear_message(tmp_path):
    d = Daemon(tmp_path / "data").start()
    try:
        other = Daemon(tmp_path / "data")
        other.proc = None
        import subprocess

        done = subprocess.run(other.command(), capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert "in use by another taskmasterd" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        d.stop()


async def test_sigterm_finishes_in_flight_calls_and_exits_zero(tmp_path, project):
    d = Daemon(tmp_path / "data", "--tools", "all").start()
    try:
        async with aiohttp.ClientSession() as http:
            client = McpHttp(d.url, http)
            await client.initialize()
            calls = [asyncio.create_task(client.call("add_task", projectRoot=project, title=f"t{i}",
                                                     description="d")) for i in range(20)]
            await asyncio.sleep(0)  # let the requests leave before the signal
            d.signal(signal.SIGTERM)
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert await asyncio.to_thread(d.wait, 20) == 0
        acked = {r["data"]["taskId"] for r in results if isinstance(r, dict)}
    finally:
        d.stop()
    d2 = Daemon(tmp_path / "data", "--tools", "all").start()
    try:
        async with aiohttp.ClientSession() as http:
            client = McpHttp(d2.url, http)
            await client.initialize()
            stored = await client.call("get_tasks", projectRoot=project)
        assert acked <= {t["id"] for t in stored["data"]["tasks"]}
    finally:
        d2.stop()


async def test_sigkill_loses_no_acknowledged_write(tmp_path, project):
    """Writers keep going while the daemon is SIGKILLed; after a restart every acked write is there."""
    d = Daemon(tmp_path / "data", "--tools", "all").start()
    acked_titles: set[str] = set()
    # task id -> (status, acked) of the last status write sent for it. Each writer only touches the
    # tasks it created and waits for each answer, so its writes to one task are applied in order.
    last_status: dict[int, tuple[str, bool]] = {}
    rng = random.Random(7)

    async def writer(client: McpHttp, w: int) -> None:
        mine: list[int] = []
        for i in range(10_000):
            try:
                if i % 3 == 2 and mine:
                    task_id = rng.choice(mine)
                    status = rng.choice(["done", "in-progress", "review", "pending", "blocked"])
                    last_status[task_id] = (status, False)
                    await client.call("set_task_status", projectRoot=project, id=str(task_id), status=status)
                    last_status[task_id] = (status, True)
                else:
                    title = f"w{w}-{i}"
                    r = await client.call("add_task", projectRoot=project, title=title, description="x")
                    acked_titles.add(title)
                    mine.append(r["data"]["taskId"])
                    last_status[r["data"]["taskId"]] = ("pending", True)
            except (TimeoutError, aiohttp.ClientError, ToolFailed):
                return  # the daemon is gone: this call was not acknowledged

    try:
        async with aiohttp.ClientSession() as http:
            clients = [McpHttp(d.url, http) for _ in range(6)]
            for c in clients:
                await c.initialize()
            writers = [asyncio.create_task(writer(c, n)) for n, c in enumerate(clients)]
            deadline = asyncio.get_running_loop().time() + 30
            while len(acked_titles) < 150 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            d.signal(signal.SIGKILL)
            await asyncio.gather(*writers)
        assert await asyncio.to_thread(d.wait, 10) == -signal.SIGKILL
    finally:
        d.stop()
    assert len(acked_titles) >= 150

    d2 = Daemon(tmp_path / "data", "--tools", "all").start()
    try:
        async with aiohttp.ClientSession() as http:
            client = McpHttp(d2.url, http)
            await client.initialize()
            stored = (await client.call("get_tasks", projectRoot=project))["data"]["tasks"]
    finally:
        d2.stop()
    titles = {t["title"] for t in stored}
    assert acked_titles <= titles, f"lost {len(acked_titles - titles)} acknowledged adds"
    by_id = {t["id"]: t for t in stored}
    for task_id, (status, acked) in last_status.items():
        assert task_id in by_id
        if acked:
            assert by_id[task_id]["status"] == status, f"task {task_id} lost its acknowledged status"


async def test_with_a_token_cluster_and_admin_need_it_health_does_not(tmp_path):
    d = Daemon(tmp_path / "data", "--token", "s3cret").start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(d.base + "/cluster") as r:
                assert r.status == 401
            async with http.get(d.base + "/cluster", headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with http.get(d.base + "/cluster", headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 200 and (await r.json())["self"] == d.name
            async with http.post(d.base + "/admin/export", json={"projectRoot": str(tmp_path)}) as r:
                assert r.status == 401
            async with http.get(d.base + "/health") as r:
                assert r.status == 200  # liveness probes carry no secrets
    finally:
        d.stop()
