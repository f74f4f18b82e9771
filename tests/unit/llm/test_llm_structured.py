"""Structured answers: schema validation, the one repair retry, and MCP sampling."""

from __future__ import annotations

import asyncio
import json

import pytest

from taskmaster.llm import LlmError, prompts, schemas
from taskmaster.llm.providers.base import InvalidAnswer, ProviderError
from taskmaster.llm.providers.sampling import SamplingProvider
from taskmaster.tasks.errors import TaskError
from tests.fakes.llm_servers import Reply, Status
from tests.fakes.llm_setup import config, entry, router, tasks_json

TASK = {"id": 4, "title": "Payments", "description": "Take card payments", "details": "Use Stripe.",
        "testStrategy": "", "status": "pending", "priority": "high", "dependencies": [1], "subtasks": []}


def expand_request(num: int = 2):
    return prompts.expand_task(TASK, num=num, next_subtask_id=1)


def subtasks_json(n: int) -> str:
    return json.dumps({"subtasks": [{"id": i, "title": f"Step {i} of the work", "description": f"Do step {i} now",
                                     "details": f"Details for step {i}, written out.", "dependencies": [],
                                     "status": "pending"} for i in range(1, n + 1)]})


# ---- the repair retry -----------------------------------------------------------------------------
@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_malformed_json_is_repaired_once(servers, http, wire):
    server = await servers(wire, [Reply('{"subtasks": [{"id": 1, "title": ', input_tokens=10, output_tokens=5),
                                  Reply(subtasks_json(2), input_tokens=30, output_tokens=20)])
    result = await router(config(entry("main", server)), http).generate("main", expand_request())
    assert [s["id"] for s in result.data["subtasks"]] == [1, 2]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (40, 25)  # both rounds counted
    repair = server.requests[1]["body"]["messages"]
    turns = [m for m in repair if m["role"] != "system"]
    assert turns[-2] == {"role": "assistant", "content": '{"subtasks": [{"id": 1, "title": '}
    assert turns[-1]["role"] == "user" and "not valid JSON" in turns[-1]["content"]
    assert '"subtasks"' in turns[-1]["content"]  # the schema is sent again


async def test_wrong_schema_is_repaired_with_the_exact_problem(servers, http):
    wrong = json.dumps({"subtasks": [{"id": "one", "title": "x", "description": "d", "details": "e",
                                      "status": "started"}]})
    server = await servers("openai", [Reply(wrong), Reply(subtasks_json(1))])
    result = await router(config(entry("main", server)), http).generate("main", expand_request(1))
    assert result.data["subtasks"][0]["title"] == "Step 1 of the work"
    feedback = server.requests[1]["body"]["messages"][-1]["content"]
    assert "subtasks[0].id: expected integer, got string" in feedback
    assert "subtasks[0].status: must be one of" in feedback


async def test_still_wrong_after_repair_is_a_clear_error_and_the_next_role_is_tried(servers, http):
    main = await servers("openai", [Reply("Sure! Here are your subtasks."), Reply('{"steps": []}')])
    fallback = await servers("anthropic", [Reply(subtasks_json(2))])
    result = await router(config(entry("main", main), entry("fallback", fallback)), http).generate(
        "main", expand_request())
    assert result.role == "fallback" and len(main.requests) == 2
    with pytest.raises(LlmError) as caught:
        main.script = [Reply("no json"), Reply("still no json")]
        await router(config(entry("main", main)), http).generate("main", expand_request())
    assert "unusable answer for expand_task twice" in caught.value.message
    assert "not valid JSON" in caught.value.message


async def test_provider_error_during_repair_is_retried_by_the_router(servers, http, sleeps):
    server = await servers("openai", [Reply("oops"), Status(503, "busy"), Reply("oops"), Reply(subtasks_json(2))])
    result = await router(config(entry("main", server)), http, sleeps).generate("main", expand_request())
    assert len(result.data["subtasks"]) == 2 and len(sleeps.waits) == 1


async def test_research_text_needs_no_json(servers, http):
    server = await servers("anthropic", [Reply("  Use Argon2id for password hashing.  ")])
    request = prompts.research("How to hash passwords?", tasks=[TASK])
    result = await router(config(entry("research", server)), http).generate("research", request)
    assert result.data == {"text": "Use Argon2id for password hashing."}


async def test_empty_text_answer_is_repaired(servers, http):
    server = await servers("openai", [Reply(""), Reply("Added: retry on 409.")])
    request = prompts.update_subtask(TASK, {"id": 1, "title": "Client", "details": ""}, "note the 409 handling")
    result = await router(config(entry("main", server)), http).generate("main", request)
    assert result.data["text"] == "Added: retry on 409." and len(server.requests) == 2
    assert server.requests[1]["body"]["messages"][-2] == {"role": "assistant", "content": "(empty answer)"}


# ---- MCP sampling -------------------------------------------------------------------------------
class FakeClient:
    """Stands in for an MCP client's sampling/createMessage: scripted answers, recorded calls."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[tuple] = []

    async def __call__(self, messages, system, max_tokens):
        self.calls.append((messages, system, max_tokens))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer, "claude-from-client"


async def test_sampling_provider_with_repair():
    client = FakeClient("not json", subtasks_json(2))
    result = await SamplingProvider(client).generate(expand_request())
    assert (result.provider, result.model) == ("mcp", "claude-from-client")
    assert len(result.data["subtasks"]) == 2 and len(client.calls) == 2
    messages, system, max_tokens = client.calls[1]
    assert messages[-1]["role"] == "user" and "not valid JSON" in messages[-1]["content"]
    assert "break a software task" in system and max_tokens == 8192


async def test_sampling_is_used_when_configured_and_a_client_offers_it(http):
    client = FakeClient(tasks_json("From the client's model"))
    cfg = config(entry("main", provider="mcp", model="mcp-sampling"))
    result = await router(cfg, http).generate("main", prompts.parse_prd("1. A", num_tasks=1, next_id=1),
                                              sampler=client)
    assert result.provider == "mcp" and result.data["tasks"][0]["title"] == "From the client's model"


async def test_sampling_configured_but_not_offered_is_skipped(http):
    cfg = config(entry("main", provider="mcp", model="mcp-sampling"))
    result = await router(cfg, http).generate("main", prompts.parse_prd("1. A\n2. B", num_tasks=0, next_id=1))
    assert result.provider == "offline-planner" and "does not offer sampling" in result.note


async def test_with_nothing_configured_the_clients_model_comes_before_the_offline_planner(http):
    client = FakeClient(tasks_json("Sampled"))
    result = await router(config(), http).generate("main", prompts.parse_prd("1. A", num_tasks=1, next_id=1),
                                                   sampler=client)
    assert result.provider == "mcp" and result.role == "main"


async def test_a_client_that_refuses_to_sample_leaves_the_offline_planner(http):
    client = FakeClient(RuntimeError("user declined"))
    result = await router(config(), http).generate("main", prompts.parse_prd("1. A\n2. B", num_tasks=0, next_id=1),
                                                   sampler=client)
    assert result.provider == "offline-planner" and "user declined" in result.note


async def test_a_sampling_timeout_is_retryable():
    async def never(messages, system, max_tokens):
        await asyncio.Event().wait()

    request = expand_request()
    request.timeout = 0.05
    with pytest.raises(ProviderError) as caught:
        await SamplingProvider(never).generate(request)
    assert caught.value.retryable


# ---- the validator ------------------------------------------------------------------------------
def test_fenced_and_wrapped_json_is_found():
    inner = tasks_json("A")
    for text in (inner, f"```json\n{inner}\n```", f"Here you go:\n{inner}\nThanks!"):
        assert schemas.parse_answer("parse_prd", text)["tasks"][0]["title"] == "A"


def test_a_bare_list_is_accepted_for_a_single_list_answer():
    bare = json.dumps(json.loads(tasks_json("A", "B"))["tasks"])
    assert len(schemas.parse_answer("parse_prd", bare)["tasks"]) == 2


def test_defaults_are_filled_unknown_keys_dropped_and_lists_never_shared():
    text = json.dumps({"tasks": [{"id": "1", "title": "A", "description": "d", "priority": "HIGH", "extra": 1},
                                 {"id": 2.0, "title": "B", "description": "e", "dependencies": None}]})
    first = schemas.parse_answer("parse_prd", text)
    a, b = first["tasks"]
    assert a == {"id": 1, "title": "A", "description": "d", "details": "", "testStrategy": "", "priority": "high",
                 "dependencies": [], "status": "pending"}
    assert b["id"] == 2 and b["dependencies"] == [] and "priority" not in b
    a["dependencies"].append(99)
    assert schemas.parse_answer("parse_prd", text)["tasks"][0]["dependencies"] == []


@pytest.mark.parametrize(("kind", "answer", "problem"), [
    ("parse_prd", {"tasks": [{"id": 1, "title": "", "description": "d"}]}, "tasks[0].title: must not be empty"),
    ("parse_prd", {"tasks": [{"id": 0, "title": "t", "description": "d"}]}, "tasks[0].id: must be >= 1"),
    ("parse_prd", {"tasks": [{"id": 1, "title": "t", "description": "d"}] * 2}, "id 1 appears more than once"),
    ("parse_prd", {"task": []}, "tasks: missing"),
    ("parse_prd", "just text", "answer: expected object, got string"),
    ("analyze_complexity", {"complexityAnalysis": [{"taskId": 1, "complexityScore": 11, "recommendedSubtasks": 2,
                                                   "expansionPrompt": "p", "reasoning": "r"}]},
     "complexityScore: must be <= 10"),
    ("update_task", {"task": {"id": 1, "title": "t", "description": "d"}}, "task.status: missing"),
    ("add_task", {"title": "t", "description": "d", "details": "x"}, "testStrategy: missing"),
])
def test_violations_are_described_for_the_model(kind, answer, problem):
    with pytest.raises(schemas.SchemaViolation) as caught:
        schemas.validate(kind, answer)
    assert problem in str(caught.value)


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown AI result kind"):
        schemas.parse_answer("nope", "{}")


def test_invalid_answer_is_a_tool_error():
    assert issubclass(InvalidAnswer, TaskError)
