"""The wire formats: OpenAI-compatible chat completions and Anthropic messages, plain and streamed,
against local servers that speak them; usage, truncation and error classification."""

from __future__ import annotations

import json

import pytest

from taskmaster.llm import schemas
from taskmaster.llm.config import Secret
from taskmaster.llm.providers.anthropic import API_VERSION, AnthropicProvider
from taskmaster.llm.providers.base import GenerateRequest, InvalidAnswer, ProviderError
from taskmaster.llm.providers.http import retry_after
from taskmaster.llm.providers.openai_compat import OpenAICompatProvider
from tests.fakes.llm_servers import Raw, Reply, Slow, Status, StreamError
from tests.fakes.llm_setup import ANTHROPIC_KEY, OPENAI_KEY, tasks_json


def request(kind: str = "parse_prd", **options) -> GenerateRequest:
    return GenerateRequest(schema=kind, system="You plan.", messages=[{"role": "user", "content": "PRD: a todo app"}],
                           timeout=options.pop("timeout", 2.0), **options)


def openai(server, http, key: str | None = OPENAI_KEY, **options) -> OpenAICompatProvider:
    return OpenAICompatProvider("openai", "gpt-4o", base_url=server.base_url, key=Secret(key) if key else None,
                                http=http, **options)


def anthropic(server, http) -> AnthropicProvider:
    return AnthropicProvider("anthropic", "claude-sonnet-4-20250514", base_url=server.base_url,
                             key=Secret(ANTHROPIC_KEY), http=http)


# ---- OpenAI-compatible --------------------------------------------------------------------------
async def test_openai_request_shape_and_answer(servers, http):
    server = await servers("openai", [Reply(tasks_json("Set up repo"), input_tokens=120, output_tokens=45)])
    result = await openai(server, http).generate(request(max_tokens=500, temperature=0.2))
    sent = server.requests[0]
    assert sent["headers"]["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent["body"]["model"] == "gpt-4o"
    assert sent["body"]["messages"][0] == {"role": "system", "content": "You plan."}
    assert sent["body"]["messages"][1] == {"role": "user", "content": "PRD: a todo app"}
    assert sent["body"]["max_tokens"] == 500 and sent["body"]["temperature"] == 0.2
    assert sent["body"]["response_format"] == {"type": "json_object"}
    assert "stream" not in sent["body"]
    assert result.data["tasks"][0]["title"] == "Set up repo"
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.total_tokens) == (120, 45, 165)
    assert (result.provider, result.model) == ("openai", "gpt-4o")


async def test_openai_streaming_joins_deltas_and_reads_usage_from_last_chunk(servers, http):
    text = tasks_json("Design schema", "Build API")
    server = await servers("openai", [Reply(text, input_tokens=30, output_tokens=20)])
    seen: list[int] = []
    result = await openai(server, http).generate(request(stream=True, on_delta=seen.append))
    body = server.requests[0]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert result.text == text
    assert [t["title"] for t in result.data["tasks"]] == ["Design schema", "Build API"]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (30, 20)
    assert len(seen) == 3 and seen[-1] == len(text) and seen == sorted(seen)


async def test_text_kinds_send_no_json_mode_and_local_servers_need_no_key(servers, http):
    server = await servers("openai", [Reply("Use PostgreSQL 16 with logical replication.")])
    result = await openai(server, http, key=None).generate(request("research"))
    sent = server.requests[0]
    assert "Authorization" not in sent["headers"]
    assert "response_format" not in sent["body"]
    assert result.data == {"text": "Use PostgreSQL 16 with logical replication."}


async def test_servers_without_json_mode_get_no_response_format(servers, http):
    server = await servers("openai", [Reply(tasks_json("A"))])
    await openai(server, http, json_mode=False).generate(request())
    assert "response_format" not in server.requests[0]["body"]


async def test_reasoning_models_get_max_completion_tokens(servers, http):
    server = await servers("openai", [Reply(tasks_json("A"))])
    provider = OpenAICompatProvider("openai", "o3", base_url=server.base_url, key=Secret(OPENAI_KEY), http=http)
    await provider.generate(request(max_tokens=900, temperature=0.2))
    body = server.requests[0]["body"]
    assert body["max_completion_tokens"] == 900 and "max_tokens" not in body and "temperature" not in body


async def test_openai_error_in_stream_is_retryable(servers, http):
    server = await servers("openai", [StreamError('{"tasks": [')])
    with pytest.raises(ProviderError) as caught:
        await openai(server, http).generate(request(stream=True))
    assert caught.value.retryable


# ---- Anthropic ----------------------------------------------------------------------------------
async def test_anthropic_request_shape_and_answer(servers, http):
    server = await servers("anthropic", [Reply(tasks_json("Auth"), input_tokens=200, output_tokens=80)])
    result = await anthropic(server, http).generate(request(max_tokens=1000, temperature=0.1))
    sent = server.requests[0]
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert sent["headers"]["anthropic-version"] == API_VERSION == "2023-06-01"
    assert "Authorization" not in sent["headers"]
    assert sent["body"]["system"] == "You plan."
    assert sent["body"]["messages"] == [{"role": "user", "content": "PRD: a todo app"}]
    assert sent["body"]["max_tokens"] == 1000 and sent["body"]["temperature"] == 0.1
    assert result.data["tasks"][0]["title"] == "Auth"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (200, 80)


async def test_anthropic_streaming_events(servers, http):
    text = tasks_json("Auth", "Billing")
    server = await servers("anthropic", [Reply(text, input_tokens=64, output_tokens=33)])
    seen: list[int] = []
    result = await anthropic(server, http).generate(request(stream=True, on_delta=seen.append))
    assert server.requests[0]["body"]["stream"] is True
    assert result.text == text and len(result.data["tasks"]) == 2
    assert (result.usage.input_tokens, result.usage.output_tokens) == (64, 33)
    assert seen[-1] == len(text)


async def test_anthropic_overloaded_error_event_is_retryable(servers, http):
    server = await servers("anthropic", [StreamError('{"tasks": [', message="Overloaded")])
    with pytest.raises(ProviderError) as caught:
        await anthropic(server, http).generate(request(stream=True))
    assert caught.value.retryable and "Overloaded" in caught.value.message


async def test_anthropic_529_is_retryable_and_400_is_not(servers, http):
    server = await servers("anthropic", [Status(529, "Overloaded", kind="overloaded_error"),
                                         Status(400, "messages: field required", kind="invalid_request_error")])
    with pytest.raises(ProviderError) as overloaded:
        await anthropic(server, http).generate(request())
    with pytest.raises(ProviderError) as bad:
        await anthropic(server, http).generate(request())
    assert overloaded.value.retryable and overloaded.value.status == 529
    assert not bad.value.retryable and "messages: field required" in bad.value.message


@pytest.mark.parametrize(("wire", "body"), [
    ("openai", b'data: {"choices": [{"index": 0, "delta": {"content": "{\\"tasks\\": ["}}]}\n\n'),
    ("anthropic", b'event: message_start\ndata: {"type": "message_start", "message": {"usage": '
                  b'{"input_tokens": 3}}}\n\nevent: content_block_delta\ndata: {"type": "content_block_delta", '
                  b'"delta": {"type": "text_delta", "text": "{"}}\n\n'),
])
async def test_a_stream_that_stops_early_is_a_retryable_network_error(servers, http, wire, body):
    server = await servers(wire, [Raw(body, content_type="text/event-stream")])
    provider = openai(server, http) if wire == "openai" else anthropic(server, http)
    with pytest.raises(ProviderError) as caught:
        await provider.generate(request(stream=True))
    assert caught.value.retryable and "stream ended before the answer was complete" in caught.value.message


# ---- truncation, broken bodies, time-outs -------------------------------------------------------
@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_cut_off_answer_is_reported_without_a_repair_round(servers, http, wire):
    server = await servers(wire, [Reply('{"tasks": [{"id": 1, "title": "Au', truncated=True)])
    provider = openai(server, http) if wire == "openai" else anthropic(server, http)
    with pytest.raises(InvalidAnswer) as caught:
        await provider.generate(request(max_tokens=20))
    assert "token limit (20)" in caught.value.message and "maxTokens" in caught.value.message
    assert len(server.requests) == 1


async def test_a_body_that_is_not_json_is_a_final_error(servers, http):
    server = await servers("openai", [Raw(b"<html>bad gateway page</html>", content_type="text/html")])
    with pytest.raises(ProviderError) as caught:
        await openai(server, http).generate(request())
    assert not caught.value.retryable and "not JSON" in caught.value.message


async def test_slow_answer_past_the_timeout_is_a_retryable_timeout(servers, http):
    server = await servers("openai", [Slow(5.0, Reply(tasks_json("A")))])
    with pytest.raises(ProviderError) as caught:
        await openai(server, http).generate(request(timeout=0.2))
    assert caught.value.retryable and "timeout" in caught.value.message


async def test_connection_refused_is_a_retryable_network_error(http):
    provider = OpenAICompatProvider("openai", "gpt-4o", base_url="http://127.0.0.1:9/v1", key=None, http=http)
    with pytest.raises(ProviderError) as caught:
        await provider.generate(request())
    assert caught.value.retryable and "network error" in caught.value.message


def test_retry_after_headers():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_the_schema_sent_to_models_is_plain_json_schema():
    text = schemas.schema_text("parse_prd")
    parsed = json.loads(text)
    assert parsed["required"] == ["tasks"]
    assert "nullable" not in text and "default" not in text
