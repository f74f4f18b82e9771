"""Usage accounting: cost from the price table, the reference's telemetryData, aggregation."""

from __future__ import annotations

from taskmaster.llm import Usage
from taskmaster.llm.pricing import aggregate, cost, price, telemetry_data

FIELDS = {"timestamp", "userId", "commandName", "modelUsed", "providerName", "inputTokens", "outputTokens",
          "totalTokens", "totalCost", "currency", "isUnknownCost"}


def test_cost_per_million_tokens():
    assert cost(Usage("anthropic", "claude-sonnet-4-20250514", 1_000_000, 1_000_000)) == 18.0
    assert cost(Usage("openai", "gpt-4o-mini", 2_000, 500)) == 0.0006  # 0.0003 + 0.0003
    assert cost(Usage("perplexity", "sonar", 1234, 567)) == 0.001801


def test_telemetry_has_the_references_fields():
    t = telemetry_data(Usage("openai", "gpt-4o", 1500, 500), "expand-task", "user-1", "2026-01-02T03:04:05.000Z")
    assert set(t) == FIELDS
    assert t == {"timestamp": "2026-01-02T03:04:05.000Z", "userId": "user-1", "commandName": "expand-task",
                 "modelUsed": "gpt-4o", "providerName": "openai", "inputTokens": 1500, "outputTokens": 500,
                 "totalTokens": 2000, "totalCost": 0.00875, "currency": "USD", "isUnknownCost": False}


def test_unknown_models_cost_zero_and_say_so_free_ones_do_not():
    unknown = telemetry_data(Usage("openai", "gpt-99", 1000, 1000), "parse-prd")
    assert unknown["totalCost"] == 0 and unknown["isUnknownCost"] is True
    for provider, model in (("ollama", "qwen3:14b"), ("mcp", "claude-via-client"), ("offline-planner", "h")):
        free = telemetry_data(Usage(provider, model, 5000, 5000), "parse-prd")
        assert free["totalCost"] == 0 and free["isUnknownCost"] is False
    assert price("openai", "gpt-99") is None and price("lmstudio", "anything") == (0.0, 0.0)


def test_aggregate_sums_and_says_multiple_where_calls_differ():
    a = telemetry_data(Usage("openai", "gpt-4o", 1000, 100), "expand-task", "u", "2026-01-01T00:00:00.000Z")
    b = telemetry_data(Usage("anthropic", "claude-sonnet-4-20250514", 2000, 200), "expand-task", "u",
                       "2026-01-01T00:00:01.000Z")
    total = aggregate([a, None, b], "expand-all-tasks")
    assert total["commandName"] == "expand-all-tasks" and total["timestamp"] == "2026-01-01T00:00:01.000Z"
    assert total["modelUsed"] == "Multiple" and total["providerName"] == "Multiple"
    assert (total["inputTokens"], total["outputTokens"], total["totalTokens"]) == (3000, 300, 3300)
    assert total["totalCost"] == round(a["totalCost"] + b["totalCost"], 6)
    same = aggregate([a, a], "expand-all-tasks")
    assert same["modelUsed"] == "gpt-4o" and same["providerName"] == "openai"
    assert aggregate([None], "x") is None and aggregate([], "x") is None
