"""The providers this node can speak, and building one from a role's configuration.

Every provider name of the reference's `models` config that has an OpenAI-compatible or an
Anthropic endpoint is here; agent CLIs (claude-code, codex-cli, gemini-cli), Bedrock, Azure and
Vertex are not, and a role configured with one is skipped with a clear reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from ..config import LlmConfig, ModelEntry
from .anthropic import AnthropicProvider
from .base import NotConfigured, Provider
from .offline import OfflinePlanner
from .openai_compat import OpenAICompatProvider
from .sampling import Sampler, SamplingProvider


@dataclass(frozen=True)
class ProviderSpec:
    wire: str
    """"openai" (chat completions), "anthropic" (messages), "mcp" (client sampling), "offline"."""
    base_url: str | None = None
    key_env: str | None = None
    key_required: bool = True
    json_mode: bool = True
    """The server takes response_format {"type": "json_object"}."""


CATALOG: dict[str, ProviderSpec] = {
    "anthropic": ProviderSpec("anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
    "openai": ProviderSpec("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "perplexity": ProviderSpec("openai", "https://api.perplexity.ai", "PERPLEXITY_API_KEY", json_mode=False),
    "xai": ProviderSpec("openai", "https://api.x.ai/v1", "XAI_API_KEY"),
    "groq": ProviderSpec("openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "openrouter": ProviderSpec("openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "mistral": ProviderSpec("openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "google": ProviderSpec("openai", "https://generativelanguage.googleapis.com/v1beta/openai", "GOOGLE_API_KEY"),
    "ollama": ProviderSpec("openai", "http://localhost:11434/v1", "OLLAMA_API_KEY", key_required=False),
    "lmstudio": ProviderSpec("openai", "http://localhost:1234/v1", None, key_required=False, json_mode=False),
    "openai-compatible": ProviderSpec("openai", None, "OPENAI_COMPATIBLE_API_KEY", key_required=False),
    "mcp": ProviderSpec("mcp", key_required=False),
    "offline": ProviderSpec("offline", key_required=False),
}


def unusable_reason(entry: ModelEntry, config: LlmConfig, sampler: Sampler | None = None) -> str | None:
    """Why this role's provider cannot run on this node (None: it can)."""
    spec = CATALOG.get(entry.provider)
    if spec is None:
        return (f"provider '{entry.provider}' is not supported by taskmaster "
                f"(supported: {', '.join(sorted(CATALOG))})")
    if spec.wire == "mcp" and sampler is None:
        return "the calling MCP client does not offer sampling"
    if spec.key_required and config.keys.secret(spec.key_env) is None:
        return (f"Required API key {spec.key_env} for provider '{entry.provider}' is not set in the "
                f"environment or the project's .env file")
    if spec.wire in ("openai", "anthropic") and _base_url(entry, spec, config) is None:
        return f"provider '{entry.provider}' needs a baseURL in the role's configuration"
    return None


def build(entry: ModelEntry, config: LlmConfig, http: aiohttp.ClientSession,
          sampler: Sampler | None = None) -> Provider:
    """The provider for a role's entry; NotConfigured when it cannot run here."""
    reason = unusable_reason(entry, config, sampler)
    if reason is not None:
        raise NotConfigured(reason)
    spec = CATALOG[entry.provider]
    if spec.wire == "offline":
        return OfflinePlanner()
    if spec.wire == "mcp":
        return SamplingProvider(sampler)
    key = config.keys.secret(spec.key_env)
    base_url = _base_url(entry, spec, config)
    if spec.wire == "anthropic":
        return AnthropicProvider(entry.provider, entry.model_id, base_url=base_url, key=key, http=http)
    return OpenAICompatProvider(entry.provider, entry.model_id, base_url=base_url, key=key, http=http,
                                json_mode=spec.json_mode)


def _base_url(entry: ModelEntry, spec: ProviderSpec, config: LlmConfig) -> str | None:
    if entry.provider == "ollama":
        return ollama_v1(entry.base_url or config.ollama_base_url or spec.base_url)
    return entry.base_url or spec.base_url


def ollama_v1(url: str) -> str:
    """Ollama's OpenAI-compatible root from a configured URL: the reference's `.../api` or a bare host."""
    url = url.rstrip("/")
    if url.endswith("/api"):
        return url[:-4] + "/v1"
    return url if url.endswith("/v1") else url + "/v1"
