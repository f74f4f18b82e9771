"""The reference lost 765 of 1,850 writes with two agents writing at once. We lose none.

Two official MCP SDK clients against one real daemon, each on its own session: 2 x 100
set_task_status on disjoint tasks, and 2 x 100 add_subtask on the same parents, all at once.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.daemon import Daemon


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path / "data", "--tools", "all").start()
    yield d
    d.stop()


async def _call(session: ClientSession, tool: str, **args) -> dict:
    result = await session.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)["data"]


async def _agent(url: str, work) -> None:
    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await work(session)


async def test_two_agents_lose_nothing(daemon, tmp_path):
    root = str(tmp_path / "project")
    (tmp_path / "project").mkdir()

    async def seed(s):
        for i in range(200):
            await _call(s, "add_task", projectRoot=root, title=f"task {i + 1}", description="seed")

    await _agent(daemon.url, seed)

    def statuses(first: int):
        async def work(s):
            for task_id in range(first, first + 100):
                await _call(s, "set_task_status", projectRoot=root, id=str(task_id), status="done")
        return work

    def subtasks(agent: str):
        async def work(s):
            for i in range(100):
                await _call(s, "add_subtask", projectRoot=root, id=str(1 + i % 4), title=f"{agent}-{i}")
        return work

    await asyncio.gather(_agent(daemon.url, statuses(1)), _agent(daemon.url, statuses(101)),
                         _agent(daemon.url, subtasks("a")), _agent(daemon.url, subtasks("b")))

    async def check(s):
        tasks = (await _call(s, "get_tasks", projectRoot=root))["tasks"]
        assert [t["status"] for t in tasks] == ["done"] * 200
        titles = [sub["title"] for t in tasks for sub in t["subtasks"]]
        assert sorted(titles) == sorted([f"a-{i}" for i in range(100)] + [f"b-{i}" for i in range(100)])
        for t in tasks[:4]:  # subtask ids stay unique per parent under concurrency
            ids = [sub["id"] for sub in t["subtasks"]]
            assert len(ids) == len(set(ids)) == 50

    await _agent(daemon.url, check)
