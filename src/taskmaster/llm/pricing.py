"""What an AI call cost: a price table per provider/model, and the reference's `telemetryData`.

Prices are USD per million input/output tokens, as in the reference's supported-models.json
(`cost_per_1m_tokens`). `telemetryData` has the reference's fields: timestamp, userId, commandName,
modelUsed, providerName, inputTokens, outputTokens, totalTokens, totalCost (6 decimals), currency,
isUnknownCost (true when the model is not in the table: the cost shown is then 0).
"""

from __future__ import annotations

from ..tasks.model import iso_now
from .providers.base import Usage

CURRENCY = "USD"
_FREE = (0.0, 0.0)

PRICES: dict[tuple[str, str], tuple[float, float]] = {
    ("anthropic", "claude-sonnet-4-20250514"): (3.0, 15.0),
    ("anthropic", "claude-opus-4-20250514"): (15.0, 75.0),
    ("anthropic", "claude-3-7-sonnet-20250219"): (3.0, 15.0),
    ("anthropic", "claude-3-5-sonnet-20241022"): (3.0, 15.0),
    ("anthropic", "claude-3-5-haiku-20241022"): (0.8, 4.0),
    ("openai", "gpt-4o"): (2.5, 10.0),
    ("openai", "gpt-4o-mini"): (0.15, 0.6),
    ("openai", "gpt-4.1"): (2.0, 8.0),
    ("openai", "gpt-4.1-mini"): (0.4, 1.6),
    ("openai", "gpt-4.1-nano"): (0.1, 0.4),
    ("openai", "o1"): (15.0, 60.0),
    ("openai", "o3"): (2.0, 8.0),
    ("openai", "o3-mini"): (1.1, 4.4),
    ("openai", "o4-mini"): (1.1, 4.4),
    ("openai", "gpt-4o-search-preview"): (2.5, 10.0),
    ("openai", "gpt-4o-mini-search-preview"): (0.15, 0.6),
    ("google", "gemini-2.0-flash"): (0.15, 0.6),
    ("google", "gemini-2.5-pro"): (1.25, 10.0),
    ("google", "gemini-2.5-flash"): (0.3, 2.5),
    ("perplexity", "sonar"): (1.0, 1.0),
    ("perplexity", "sonar-pro"): (3.0, 15.0),
    ("perplexity", "sonar-reasoning"): (1.0, 5.0),
    ("perplexity", "sonar-reasoning-pro"): (2.0, 8.0),
    ("perplexity", "deep-research"): (2.0, 8.0),
    ("xai", "grok-3"): (3.0, 15.0),
    ("xai", "grok-3-fast"): (5.0, 25.0),
    ("xai", "grok-4"): (3.0, 15.0),
    ("groq", "llama-3.3-70b-versatile"): (0.59, 0.79),
    ("groq", "llama-3.1-8b-instant"): (0.05, 0.08),
    ("groq", "moonshotai/kimi-k2-instruct"): (1.0, 3.0),
    ("openrouter", "openai/gpt-4.1"): (2.0, 8.0),
    ("openrouter", "openai/gpt-4.1-mini"): (0.4, 1.6),
    ("openrouter", "openai/gpt-4o-mini"): (0.15, 0.6),
    ("openrouter", "deepseek/deepseek-chat-v3-0324"): (0.27, 1.1),
    ("mcp", "mcp-sampling"): _FREE,
}
# Providers that never bill (local servers, the client's own model, the offline planner).
FREE_PROVIDERS = frozenset({"ollama", "lmstudio", "mcp", "offline-planner"})


def price(provider: str, model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens; None when unknown."""
    if provider in FREE_PROVIDERS:
        return _FREE
    return PRICES.get((provider, model))


def cost(usage: Usage) -> float:
    rates = price(usage.provider, usage.model) or _FREE
    return round(usage.input_tokens / 1_000_000 * rates[0] + usage.output_tokens / 1_000_000 * rates[1], 6)


def telemetry_data(usage: Usage, command_name: str, user_id: str | None = None,
                   timestamp: str | None = None) -> dict:
    """The reference's telemetryData for one AI call."""
    return {
        "timestamp": timestamp or iso_now(),
        "userId": user_id,
        "commandName": command_name,
        "modelUsed": usage.model,
        "providerName": usage.provider,
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.total_tokens,
        "totalCost": cost(usage),
        "currency": CURRENCY,
        "isUnknownCost": price(usage.provider, usage.model) is None,
    }


def aggregate(items: list[dict | None], command_name: str) -> dict | None:
    """Several calls' telemetry as one (expand_all, scope_*): sums, and "Multiple" where they differ."""
    items = [t for t in items if t]
    if not items:
        return None

    def one_or_multiple(key: str) -> str:
        values = {t.get(key) for t in items}
        return values.pop() if len(values) == 1 else "Multiple"

    return {
        "timestamp": max(t["timestamp"] for t in items),
        "userId": items[0].get("userId"),
        "commandName": command_name,
        "modelUsed": one_or_multiple("modelUsed"),
        "providerName": one_or_multiple("providerName"),
        "inputTokens": sum(t["inputTokens"] for t in items),
        "outputTokens": sum(t["outputTokens"] for t in items),
        "totalTokens": sum(t["totalTokens"] for t in items),
        "totalCost": round(sum(t["totalCost"] for t in items), 6),
        "currency": CURRENCY,
        "isUnknownCost": any(t.get("isUnknownCost") for t in items),
    }
