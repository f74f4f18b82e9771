"""Fixtures for the LLM layer: fake provider servers on loopback, a client session, a sleep log."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes.llm_servers import FakeLlmServer
from tests.fakes.llm_setup import SleepLog


@pytest.fixture
async def servers():
    """`await servers("openai", [steps...], **options)` starts a fake server; all are closed after the test."""
    started: list[FakeLlmServer] = []

    async def start(wire: str, script: list | None = None, **options) -> FakeLlmServer:
        server = await FakeLlmServer(wire, script, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def sleeps() -> SleepLog:
    return SleepLog()
