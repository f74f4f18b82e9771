"""Model configuration files, API keys from the environment and .env, and keys never leaking."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from taskmaster.llm import LlmError, load_llm_config, prompts
from taskmaster.llm.config import KeyStore, Secret, read_dotenv
from taskmaster.llm.providers import CATALOG, build, ollama_v1, unusable_reason
from tests.fakes.llm_servers import Raw, Reply
from tests.fakes.llm_setup import config, entry, router, tasks_json

SECRET = "sk-live-SUPERSECRET-4f9a8b7c6d5e"


def write_json(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_project_entries_come_before_the_nodes_for_each_role(tmp_path):
    data, project = tmp_path / "data", tmp_path / "project"
    write_json(data / "models.json", {"models": {
        "main": {"provider": "ollama", "modelId": "qwen3:14b", "maxTokens": 8000, "temperature": 0.1},
        "research": {"provider": "openai", "modelId": "gpt-4o"}},
        "retry": {"maxAttempts": 5, "baseDelay": 0.5, "maxDelay": 4}, "timeout": 30})
    write_json(project / ".taskmaster" / "config.json", {
        "models": {"main": {"provider": "anthropic", "modelId": "claude-sonnet-4-20250514", "maxTokens": 64000,
                            "temperature": 0.2, "baseURL": "https://proxy.example/v1"}},
        "global": {"responseLanguage": "Français", "userId": "u-7"}})
    cfg = load_llm_config(str(data), str(project), environ={})
    main = cfg.entries("main")
    assert [(e.source, e.provider, e.model_id) for e in main] == [
        ("project", "anthropic", "claude-sonnet-4-20250514"), ("node", "ollama", "qwen3:14b")]
    assert main[0].base_url == "https://proxy.example/v1" and main[0].max_tokens == 64000
    assert main[1].temperature == 0.1
    assert [e.model_id for e in cfg.entries("research")] == ["gpt-4o"] and cfg.entries("fallback") == ()
    assert (cfg.retry.max_attempts, cfg.retry.base_delay, cfg.retry.max_delay, cfg.timeout) == (5, 0.5, 4.0, 30.0)
    assert cfg.response_language == "Français" and cfg.user_id == "u-7"


def test_a_bare_role_mapping_is_accepted(tmp_path):
    write_json(tmp_path / "models.json", {"main": {"provider": "openai", "modelId": "gpt-4o-mini"}})
    assert load_llm_config(str(tmp_path), environ={}).entries("main")[0].model_id == "gpt-4o-mini"


def test_no_files_means_no_roles(tmp_path):
    cfg = load_llm_config(str(tmp_path), str(tmp_path), environ={})
    assert all(cfg.entries(role) == () for role in ("main", "research", "fallback"))


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"models": []}', '{"global": "x"}',
                                     '{"retry": {"maxAttempts": "many"}}', '{"timeout": 0}', '{"retry": []}'])
def test_a_malformed_file_is_a_clear_error(tmp_path, content):
    (tmp_path / "models.json").write_text(content)
    with pytest.raises(ValueError, match="models.json"):
        load_llm_config(str(tmp_path), environ={})


def test_dotenv_parsing(tmp_path):
    (tmp_path / ".env").write_text(
        "# keys\nexport OPENAI_API_KEY=sk-one\nANTHROPIC_API_KEY=\"sk two\"\nGROQ_API_KEY='g3'  \n"
        "XAI_API_KEY=x4 # trailing comment\nbroken line\n\nEMPTY=\n")
    assert read_dotenv(str(tmp_path / ".env")) == {"OPENAI_API_KEY": "sk-one", "ANTHROPIC_API_KEY": "sk two",
                                                 "GROQ_API_KEY": "g3", "XAI_API_KEY": "x4", "EMPTY": ""}
    assert read_dotenv(str(tmp_path / "missing.env")) == {}


def test_dotenv_comes_before_the_environment_as_in_the_reference(tmp_path):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=from-dotenv\nEMPTY_ONE=\n")
    keys = KeyStore.for_project(str(tmp_path), {"OPENAI_API_KEY": "from-env", "EMPTY_ONE": "env-value",
                                                "OLLAMA_BASE_URL": "http://gpu:11434"})
    assert keys.secret("OPENAI_API_KEY").reveal() == "from-dotenv"
    assert keys.secret("EMPTY_ONE").reveal() == "env-value"  # an empty .env value does not hide the env
    assert keys.secret("ANTHROPIC_API_KEY") is None and keys.secret(None) is None


def test_ollama_base_url_from_the_environment(tmp_path):
    cfg = load_llm_config(str(tmp_path), environ={"OLLAMA_BASE_URL": "http://gpu-box:11434"})
    assert cfg.ollama_base_url == "http://gpu-box:11434"
    assert ollama_v1("http://localhost:11434/api") == "http://localhost:11434/v1"
    assert ollama_v1("http://gpu-box:11434/") == "http://gpu-box:11434/v1"
    assert ollama_v1("http://gpu-box:11434/v1") == "http://gpu-box:11434/v1"


def test_providers_that_need_no_key(http):
    cfg = config(keys={})
    for name in ("ollama", "lmstudio", "offline"):
        assert unusable_reason(entry("main", provider=name), cfg) is None, name
    assert "needs a baseURL" in unusable_reason(entry("main", provider="openai-compatible"), cfg)
    assert "ANTHROPIC_API_KEY" in unusable_reason(entry("main", provider="anthropic"), cfg)
    assert "not supported" in unusable_reason(entry("main", provider="bedrock"), cfg)
    assert set(CATALOG) >= {"anthropic", "openai", "perplexity", "xai", "groq", "openrouter", "ollama", "mcp"}


# ---- keys never leak ----------------------------------------------------------------------------
def test_secret_is_masked_and_not_serialisable():
    secret = Secret(SECRET)
    assert SECRET not in repr(secret) and SECRET not in str(secret) and SECRET not in f"{secret}"
    assert SECRET not in repr(KeyStore({"OPENAI_API_KEY": SECRET}))
    with pytest.raises(TypeError):
        pickle.dumps(secret)


async def test_key_never_in_provider_repr_logs_or_errors(servers, http, caplog):
    # The fake answers 401 and echoes the key it got, as real APIs do ("Incorrect API key provided: ...").
    server = await servers("openai", expected_key="sk-the-right-one")
    cfg = config(entry("main", server), keys={"OPENAI_API_KEY": SECRET})
    provider = build(entry("main", server), cfg, http)
    assert SECRET not in repr(provider) and SECRET not in repr(cfg)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LlmError) as caught:
        await router(cfg, http).generate("main", prompts.parse_prd("1. A", num_tasks=1, next_id=1))
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"  # it was sent...
    assert "HTTP 401" in caught.value.message and "check the API key" in caught.value.message
    assert SECRET not in caught.value.message and SECRET not in str(caught.value)  # ...and is never shown
    assert "Incorrect API key provided: ***" in caught.value.message
    assert SECRET not in caplog.text and "HTTP 401" in caplog.text
    assert len(server.requests) == 1  # 401 is not retried


async def test_key_redacted_from_stream_and_body_errors(servers, http):
    body = json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                  "message": f"key {SECRET} is not allowed here"}}).encode()
    for wire, name in (("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")):
        server = await servers(wire, default=Raw(body))
        cfg = config(entry("main", server), keys={name: SECRET})
        with pytest.raises(LlmError) as caught:
            await router(cfg, http).generate("main", prompts.parse_prd("1. A", num_tasks=1, next_id=1))
        assert "key *** is not allowed here" in caught.value.message and SECRET not in caught.value.message


async def test_a_project_dotenv_key_is_used(tmp_path, servers, http):
    server = await servers("openai", [Reply(tasks_json("A"))], expected_key="sk-from-dotenv")
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\n")
    write_json(tmp_path / ".taskmaster" / "config.json",
               {"models": {"main": {"provider": "openai", "modelId": "gpt-4o", "baseURL": server.base_url}}})
    cfg = load_llm_config(None, str(tmp_path), environ={"OPENAI_API_KEY": "sk-stale"})
    result = await router(cfg, http).generate("main", prompts.parse_prd("1. A", num_tasks=1, next_id=1))
    assert result.provider == "openai" and result.data["tasks"][0]["title"] == "A"
