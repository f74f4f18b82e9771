"""Which models a node may use, and its API keys (which never leave this module in readable form).

Two files in the reference's `models` shape (`{"models": {"main": {provider, modelId, maxTokens,
temperature, baseURL?}, "research": ..., "fallback": ...}, "global": {...}}`) name the models:
- the project's `.taskmaster/config.json`, written by the `models` tool: the user's choice;
- the node's `<data_dir>/models.json`: what the operator gave this machine (may also hold
  `"retry": {"maxAttempts", "baseDelay", "maxDelay"}` and `"timeout"` seconds).
Each role tries the project's entry first, then the node's: a project whose config names a model
this node has no key for still gets the node's own model for that role.

Keys come from `<projectRoot>/.env` first, then the process environment (the reference's order,
without its MCP-session layer). A key is held in a `Secret`, whose repr and str are masked;
`redact` scrubs keys out of any text that may come back from a provider.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

ROLES = ("main", "research", "fallback")
MODELS_FILE = "models.json"
PROJECT_CONFIG = os.path.join(".taskmaster", "config.json")
DOTENV = ".env"


class Secret:
    """An API key. Only `reveal()` gives the value, at the moment a request header is built."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("API keys are not serialised")


def redact(text: str, *secrets: Secret | None) -> str:
    for secret in secrets:
        if secret is not None and secret.reveal():
            text = text.replace(secret.reveal(), "***")
    return text


class KeyStore:
    """API keys and other settings by environment variable name: `.env` first, then the environment."""

    def __init__(self, environ: Mapping[str, str] | None = None, dotenv: Mapping[str, str] | None = None):
        self._environ = dict(os.environ if environ is None else environ)
        self._dotenv = dict(dotenv or {})

    @classmethod
    def for_project(cls, project_root: str | None, environ: Mapping[str, str] | None = None) -> KeyStore:
        dotenv = read_dotenv(os.path.join(project_root, DOTENV)) if project_root else {}
        return cls(environ, dotenv)

    def secret(self, name: str | None) -> Secret | None:
        value = self.setting(name)
        return Secret(value) if value else None

    def setting(self, name: str | None) -> str | None:
        if not name:
            return None
        return (self._dotenv.get(name) or self._environ.get(name) or "").strip() or None

    def __repr__(self) -> str:
        return f"KeyStore({len(self._dotenv)} from .env, environment)"


def read_dotenv(path: str) -> dict[str, str]:
    """KEY=VALUE lines (optional `export `, quotes, # comments); a missing file is empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return {}
    values = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) > 1:
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name.strip()] = value
    return values


@dataclass(frozen=True)
class ModelEntry:
    role: str
    provider: str
    model_id: str
    max_tokens: int | None = None
    temperature: float | None = None
    base_url: str | None = None
    stream: bool = False
    source: str = "node"
    """Where it was configured: "project" (.taskmaster/config.json) or "node" (models.json)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    """Calls per role for retryable errors (the reference: MAX_RETRIES 2, so 3 calls)."""
    base_delay: float = 1.0
    """First backoff in seconds, doubled each retry (the reference starts at 1 s)."""
    max_delay: float = 30.0
    """Cap on one wait, a server's retry-after included."""

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Wait before call `attempt + 1`: the server's retry-after when it gave one, else backoff."""
        wait = retry_after if retry_after is not None else self.base_delay * 2 ** (attempt - 1)
        return max(0.0, min(wait, self.max_delay))


@dataclass
class LlmConfig:
    roles: dict[str, tuple[ModelEntry, ...]] = field(default_factory=dict)
    keys: KeyStore = field(default_factory=lambda: KeyStore({}))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 120.0
    """Seconds per provider round trip (the reference's per-tool timeout is 120 s)."""
    response_language: str | None = None
    """Appended to every system prompt as "Always respond in <language>." (config.global)."""
    ollama_base_url: str | None = None
    user_id: str | None = None

    def entries(self, role: str) -> tuple[ModelEntry, ...]:
        return self.roles.get(role, ())


def load_llm_config(data_dir: str | None = None, project_root: str | None = None,
                    environ: Mapping[str, str] | None = None) -> LlmConfig:
    """The node's and the project's model settings; ValueError naming the file when one is malformed."""
    node_path = os.path.join(data_dir, MODELS_FILE) if data_dir else ""
    node = _read_models_file(node_path) if data_dir else {}
    project = _read_models_file(os.path.join(project_root, PROJECT_CONFIG)) if project_root else {}
    roles = {role: tuple(e for e in (_entry(project, role, "project"), _entry(node, role, "node")) if e)
             for role in ROLES}
    glob = {**node.get("global", {}), **project.get("global", {})}
    keys = KeyStore.for_project(project_root, environ)
    retry = node.get("retry", {})
    try:
        policy = RetryPolicy(max_attempts=max(1, int(retry.get("maxAttempts", 3))),
                             base_delay=max(0.0, float(retry.get("baseDelay", 1.0))),
                             max_delay=max(0.0, float(retry.get("maxDelay", 30.0))))
        timeout = float(node.get("timeout", 120.0))
    except (TypeError, ValueError):
        raise ValueError(f"{node_path}: \"retry\" values and \"timeout\" must be numbers") from None
    if timeout <= 0:
        raise ValueError(f"{node_path}: \"timeout\" must be a positive number of seconds")
    return LlmConfig(
        roles=roles, keys=keys, retry=policy, timeout=timeout,
        response_language=glob.get("responseLanguage") or None,
        ollama_base_url=keys.setting("OLLAMA_BASE_URL") or glob.get("ollamaBaseURL") or None,
        user_id=glob.get("userId") or None,
    )


def _read_models_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read model configuration ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: model configuration must be a JSON object")
    if "models" not in data and any(role in data for role in ROLES):
        data = {"models": data}  # a bare {main, research, fallback} mapping
    for key in ("models", "global", "retry"):
        if not isinstance(data.get(key, {}), dict):
            raise ValueError(f"{path}: \"{key}\" must be a JSON object")
    return data


def _entry(data: dict, role: str, source: str) -> ModelEntry | None:
    raw = data.get("models", {}).get(role)
    if not isinstance(raw, dict) or not raw.get("provider") or not raw.get("modelId"):
        return None
    return ModelEntry(role=role, provider=str(raw["provider"]).strip().lower(), model_id=str(raw["modelId"]),
                      max_tokens=_number(raw.get("maxTokens"), int), temperature=_number(raw.get("temperature"), float),
                      base_url=raw.get("baseURL") or None, stream=bool(raw.get("stream", False)), source=source)


def _number(value, kind):
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None
