"""Building LLM configs and routers against the fake servers (tests and scripts/bench_llm.py)."""

from __future__ import annotations

import json

import aiohttp

from taskmaster.llm.config import KeyStore, LlmConfig, ModelEntry, RetryPolicy
from taskmaster.llm.router import LlmRouter
from tests.fakes.llm_servers import FakeLlmServer

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.05)
OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
KEYS = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}


class SleepLog:
    """The router's sleep: records each wait instead of waiting (fast tests that can check the backoff)."""

    def __init__(self):
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def entry(role: str, server: FakeLlmServer | None = None, *, provider: str | None = None, model: str = "m-1",
          **options) -> ModelEntry:
    """A role entry pointing at a fake server (provider follows the server's wire unless given)."""
    if provider is None:
        provider = "openai" if server is None or server.wire == "openai" else "anthropic"
    return ModelEntry(role=role, provider=provider, model_id=model,
                      base_url=server.base_url if server is not None else None, **options)


def config(*entries: ModelEntry, keys: dict | None = None, timeout: float = 2.0,
           retry: RetryPolicy = FAST_RETRY, **options) -> LlmConfig:
    roles: dict[str, tuple] = {}
    for e in entries:
        roles[e.role] = (*roles.get(e.role, ()), e)
    return LlmConfig(roles=roles, keys=KeyStore(KEYS if keys is None else keys), retry=retry, timeout=timeout,
                     **options)


def router(cfg: LlmConfig, http: aiohttp.ClientSession, sleeps: SleepLog | None = None) -> LlmRouter:
    return LlmRouter(cfg, http=http, sleep=sleeps or SleepLog())


def tasks_json(*titles: str) -> str:
    return json.dumps({"tasks": [{"id": i, "title": t, "description": f"Do {t}", "details": "", "testStrategy": "",
                                  "priority": "medium", "dependencies": [], "status": "pending"}
                                 for i, t in enumerate(titles, start=1)]})
