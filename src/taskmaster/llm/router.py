"""Choosing a model for an AI call: roles, the reference's fallback order, retries, and the defaults.

`await LlmRouter(config).generate(role, request)`:
- Roles are tried in the reference's order: main -> fallback -> research; research -> fallback ->
  main; fallback -> main -> research. Within a role, the project's entry comes before the node's
  (config.py). A model already tried under an earlier role is not tried again.
- An entry this node cannot run (unsupported provider, missing key, no MCP sampling) is skipped.
- Retryable errors (429, 5xx, timeouts, network) are retried up to `retry.max_attempts` calls per
  entry with exponential backoff, or the server's retry-after when it sends one; then the next
  role. Other errors (400/401/403, an answer still invalid after its repair) go to the next role
  at once. When every configured role fails, one error lists what each one said.
- When no role can run at all, the calling client's model (MCP sampling) is used if it offers
  one, and otherwise the offline planner: every AI tool works on a machine with no model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp

from . import pricing, providers
from .config import ROLES, LlmConfig, ModelEntry
from .providers.base import GenerateRequest, GenerateResult, LlmError, Provider, ProviderError
from .providers.offline import OfflinePlanner
from .providers.sampling import Sampler, SamplingProvider

log = logging.getLogger("taskmaster.llm")

SEQUENCES = {
    "main": ("main", "fallback", "research"),
    "research": ("research", "fallback", "main"),
    "fallback": ("fallback", "main", "research"),
}


class LlmRouter:
    def __init__(self, config: LlmConfig, *, http: aiohttp.ClientSession | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.config = config
        self._http = http
        self._owns_http = http is None
        self._sleep = sleep

    async def generate(self, role: str, request: GenerateRequest, *, sampler: Sampler | None = None) -> GenerateResult:
        """The validated answer of the first role that gives one; LlmError when all configured roles fail."""
        if role not in SEQUENCES:
            raise ValueError(f"unknown AI role {role!r} (expected one of {', '.join(SEQUENCES)})")
        skipped: list[str] = []
        failed: list[str] = []
        seen: set[tuple] = set()
        for current in SEQUENCES[role]:
            for entry in self.config.entries(current):
                identity = (entry.provider, entry.model_id, entry.base_url)
                if identity in seen:
                    continue
                seen.add(identity)
                label = f"{current} ({entry.provider}/{entry.model_id})"
                reason = providers.unusable_reason(entry, self.config, sampler)
                if reason is not None:
                    log.info("AI role %s skipped: %s", label, reason)
                    skipped.append(f"{label}: {reason}")
                    continue
                provider = providers.build(entry, self.config, self._session(), sampler)
                try:
                    result = await self._with_retries(provider, self._prepared(request, entry), label)
                except LlmError as error:
                    log.warning("AI role %s failed: %s", label, error.message)
                    failed.append(f"{label}: {error.message}")
                    continue
                result.role = current
                return result
        if failed:
            raise LlmError("AI service call failed for all configured roles: " + " | ".join(failed + skipped))
        return await self._default(role, request, sampler, skipped)

    def available(self) -> list[dict]:
        """The models this node can run by itself (for gossip metadata); the offline planner is always last."""
        found: dict[tuple[str, str], dict] = {}
        for role in ROLES:
            for entry in self.config.entries(role):
                if providers.unusable_reason(entry, self.config) is None:
                    item = found.setdefault((entry.provider, entry.model_id),
                                            {"provider": entry.provider, "modelId": entry.model_id, "roles": []})
                    if role not in item["roles"]:
                        item["roles"].append(role)
        return [*found.values(), {"provider": OfflinePlanner.name, "modelId": OfflinePlanner.model, "roles": list(ROLES)}]

    def telemetry(self, result: GenerateResult, command_name: str) -> dict:
        """The reference's telemetryData for a result."""
        return pricing.telemetry_data(result.usage, command_name, self.config.user_id)

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None

    # ---- internals ------------------------------------------------------------------------------
    async def _default(self, role: str, request: GenerateRequest, sampler: Sampler | None,
                       skipped: list[str]) -> GenerateResult:
        why = ["Configured models that cannot run here: " + " | ".join(skipped) + "."] if skipped else []
        if sampler is not None:
            entry = ModelEntry(role=role, provider="mcp", model_id="mcp-sampling")
            try:
                result = await self._with_retries(SamplingProvider(sampler), self._prepared(request, entry),
                                                  "mcp-sampling")
                result.role = role
                return result
            except LlmError as error:
                log.warning("MCP sampling failed, using the offline planner: %s", error.message)
                why.append(f"MCP sampling failed: {error.message}")
        result = await OfflinePlanner().generate(request)
        result.role = role
        result.note = " ".join([result.note, *why])
        return result

    async def _with_retries(self, provider: Provider, request: GenerateRequest, label: str) -> GenerateResult:
        policy = self.config.retry
        attempt = 1
        while True:
            try:
                return await provider.generate(request)
            except ProviderError as error:
                if not error.retryable or attempt >= policy.max_attempts:
                    raise
                wait = policy.delay(attempt, error.retry_after)
                log.warning("AI call %s attempt %d/%d failed: %s; retrying in %.2f s", label, attempt,
                            policy.max_attempts, error.message, wait)
                await self._sleep(wait)
                attempt += 1

    def _prepared(self, request: GenerateRequest, entry: ModelEntry) -> GenerateRequest:
        """The request with the role's settings filled in where the caller left them open."""
        system = request.system
        if self.config.response_language:
            system = f"{system}\n\nAlways respond in {self.config.response_language}."
        return replace(
            request, system=system,
            max_tokens=request.max_tokens or entry.max_tokens,
            temperature=request.temperature if request.temperature is not None else entry.temperature,
            timeout=request.timeout or self.config.timeout,
            stream=request.stream if request.stream is not None else entry.stream,
        )

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http
