"""The router: the reference's role order, retry rules, skipping what cannot run, the defaults."""

from __future__ import annotations

import pytest

from taskmaster.llm import GenerateRequest, GenerateResult, LlmError, prompts
from taskmaster.llm.config import RetryPolicy
from taskmaster.llm.router import SEQUENCES
from tests.fakes.llm_servers import Reply, Slow, Status
from tests.fakes.llm_setup import FAST_RETRY, config, entry, router, tasks_json

PRD = "# Features\n1. Login with email.\n2. Task lists, after login.\n"


def parse_request():
    return prompts.parse_prd(PRD, num_tasks=5, next_id=1)


def test_role_sequences_are_the_references():
    assert SEQUENCES == {"main": ("main", "fallback", "research"), "research": ("research", "fallback", "main"),
                         "fallback": ("fallback", "main", "research")}


@pytest.mark.parametrize(("role", "order"), [("main", ["main", "fallback", "research"]),
                                             ("research", ["research", "fallback", "main"]),
                                             ("fallback", ["fallback", "main", "research"])])
async def test_each_role_falls_through_in_the_reference_order(servers, http, role, order):
    failing = {r: await servers("openai", [Status(401, f"{r} key revoked")]) for r in ("main", "research", "fallback")}
    last = order[-1]
    failing[last].script = [Reply(tasks_json("Only the last one answers"))]
    cfg = config(*(entry(r, failing[r], model=f"model-{r}") for r in failing))
    result = await router(cfg, http).generate(role, parse_request())
    assert result.role == last and result.model == f"model-{last}"
    # Each role's server was called once, in order: a 401 falls through at once, without retries.
    assert [len(failing[r].requests) for r in order] == [1, 1, 1]


async def test_429_with_retry_after_is_retried_after_the_servers_wait(servers, http, sleeps):
    server = await servers("openai", [Status(429, "Rate limit reached", headers={"retry-after": "0.02"}),
                                      Reply(tasks_json("A"))])
    result = await router(config(entry("main", server)), http, sleeps).generate("main", parse_request())
    assert result.data["tasks"][0]["title"] == "A"
    assert len(server.requests) == 2 and sleeps.waits == [0.02]


async def test_500_then_success_uses_exponential_backoff(servers, http, sleeps):
    server = await servers("anthropic", [Status(500, "internal"), Status(503, "unavailable"), Reply(tasks_json("A"))])
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=1.0)
    result = await router(config(entry("main", server), retry=policy), http, sleeps).generate("main", parse_request())
    assert result.provider == "anthropic" and len(server.requests) == 3
    assert sleeps.waits == [0.01, 0.02]


async def test_retry_after_is_capped_by_max_delay(servers, http, sleeps):
    server = await servers("openai", [Status(429, "slow down", headers={"retry-after": "3600"}), Reply(tasks_json("A"))])
    await router(config(entry("main", server)), http, sleeps).generate("main", parse_request())
    assert sleeps.waits == [FAST_RETRY.max_delay]


async def test_retries_exhausted_fall_through_to_the_fallback_role(servers, http, sleeps):
    main = await servers("openai", default=Status(502, "bad gateway"))
    fallback = await servers("anthropic", [Reply(tasks_json("From fallback"))])
    cfg = config(entry("main", main), entry("fallback", fallback))
    result = await router(cfg, http, sleeps).generate("main", parse_request())
    assert result.role == "fallback" and result.data["tasks"][0]["title"] == "From fallback"
    assert len(main.requests) == FAST_RETRY.max_attempts and len(sleeps.waits) == FAST_RETRY.max_attempts - 1


async def test_slow_answers_past_the_timeout_are_retried_then_fall_through(servers, http, sleeps):
    slow = await servers("openai", default=Slow(5.0, Reply(tasks_json("Too late"))))
    fallback = await servers("openai", [Reply(tasks_json("In time"))])
    cfg = config(entry("main", slow), entry("fallback", fallback), timeout=0.15,
                 retry=RetryPolicy(max_attempts=2, base_delay=0.001))
    result = await router(cfg, http, sleeps).generate("main", parse_request())
    assert result.data["tasks"][0]["title"] == "In time"
    assert len(slow.requests) == 2


async def test_when_every_configured_role_fails_the_error_names_each(servers, http):
    main = await servers("openai", default=Status(401, "invalid key"))
    research = await servers("anthropic", default=Status(403, "model not allowed"))
    cfg = config(entry("main", main), entry("research", research),
                 entry("fallback", provider="anthropic", model="claude-x"), keys={"OPENAI_API_KEY": "k1"})
    with pytest.raises(LlmError) as caught:
        await router(cfg, http).generate("main", parse_request())
    message = caught.value.message
    assert message.startswith("AI service call failed for all configured roles")
    assert "main (openai/m-1): " in message and "HTTP 401" in message and "invalid key" in message
    assert "Required API key ANTHROPIC_API_KEY" in message  # research and fallback were skipped: no key
    assert len(main.requests) == 1


async def test_roles_without_a_usable_provider_are_skipped(servers, http):
    server = await servers("openai", [Reply(tasks_json("A"))])
    cfg = config(entry("main", provider="claude-code", model="sonnet"),
                 entry("main", provider="anthropic", model="claude-sonnet-4-20250514"),
                 entry("fallback", server), keys={"OPENAI_API_KEY": "k"})
    result = await router(cfg, http).generate("main", parse_request())
    assert result.role == "fallback"


async def test_the_same_model_is_not_tried_twice_under_two_roles(servers, http):
    server = await servers("openai", default=Status(400, "bad request"))
    cfg = config(entry("main", server), entry("fallback", server), entry("research", server))
    with pytest.raises(LlmError):
        await router(cfg, http).generate("main", parse_request())
    assert len(server.requests) == 1


async def test_nothing_configured_means_the_offline_planner(http):
    result = await router(config(), http).generate("main", parse_request())
    assert result.provider == "offline-planner" and result.role == "main"
    assert [t["title"] for t in result.data["tasks"]] == ["Login with email", "Task lists"]
    assert "Offline planner" in result.note


async def test_offline_when_configured_models_cannot_run_here_says_why(http):
    cfg = config(entry("main", provider="anthropic", model="claude-sonnet-4-20250514"), keys={})
    result = await router(cfg, http).generate("main", parse_request())
    assert result.provider == "offline-planner"
    assert "ANTHROPIC_API_KEY" in result.note


async def test_the_offline_planner_can_be_configured_explicitly(http):
    cfg = config(entry("main", provider="offline", model="heuristics-1"))
    result = await router(cfg, http).generate("main", parse_request())
    assert result.provider == "offline-planner" and len(result.data["tasks"]) == 2


async def test_role_settings_and_response_language_reach_the_provider(servers, http):
    server = await servers("openai", [Reply(tasks_json("A"))])
    cfg = config(entry("main", server, max_tokens=777, temperature=0.3, stream=True), response_language="Deutsch")
    await router(cfg, http).generate("main", parse_request())
    body = server.requests[0]["body"]
    assert body["max_tokens"] == 777 and body["temperature"] == 0.3 and body["stream"] is True
    assert body["messages"][0]["content"].endswith("Always respond in Deutsch.")


async def test_the_request_overrides_the_role_settings(servers, http):
    server = await servers("openai", [Reply(tasks_json("A"))])
    request = parse_request()
    request.max_tokens, request.temperature = 100, 0.0
    await router(config(entry("main", server, max_tokens=777, temperature=0.3)), http).generate("main", request)
    body = server.requests[0]["body"]
    assert body["max_tokens"] == 100 and body["temperature"] == 0.0


async def test_unknown_role_is_a_clear_error(http):
    with pytest.raises(ValueError, match="unknown AI role 'boss'"):
        await router(config(), http).generate("boss", parse_request())


def test_available_lists_what_this_node_can_run(http):
    cfg = config(entry("main", provider="openai", model="gpt-4o"), entry("fallback", provider="openai", model="gpt-4o"),
                 entry("research", provider="perplexity", model="sonar"), keys={"OPENAI_API_KEY": "k"})
    available = router(cfg, http).available()
    assert available == [{"provider": "openai", "modelId": "gpt-4o", "roles": ["main", "fallback"]},
                         {"provider": "offline-planner", "modelId": "heuristics-1",
                          "roles": ["main", "research", "fallback"]}]


async def test_telemetry_for_a_result(servers, http):
    server = await servers("anthropic", [Reply(tasks_json("A"), input_tokens=1_000_000, output_tokens=100_000)])
    cfg = config(entry("main", server, model="claude-sonnet-4-20250514"), user_id="u-1")
    r = router(cfg, http)
    telemetry = r.telemetry(await r.generate("main", parse_request()), "parse-prd")
    assert telemetry["totalCost"] == 4.5 and telemetry["userId"] == "u-1"
    assert telemetry["commandName"] == "parse-prd" and telemetry["providerName"] == "anthropic"


async def test_requests_and_results_travel_as_plain_data(servers, http):
    """What the cluster layer forwards to a node that has a model, and gets back."""
    progress: list[int] = []
    request = parse_request()
    request.on_delta = progress.append
    wire = request.to_dict()
    assert "on_delta" not in wire
    server = await servers("openai", [Reply(tasks_json("A"))])
    result = await router(config(entry("main", server)), http).generate("main", GenerateRequest.from_dict(wire))
    back = GenerateResult.from_dict(result.to_dict())
    assert back == result and back.usage.total_tokens == result.usage.total_tokens
