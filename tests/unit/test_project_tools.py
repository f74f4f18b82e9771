"""The project tools through the registry: generate, initialize_project, models, rules, response-language."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from taskmaster.tasks import files
from taskmaster.tools import project, tasks_read  # noqa: F401  (registers the tools)
from taskmaster.tools.registry import ParamError, ToolContext, call_tool

CONFIG = Path(".taskmaster", "config.json")


async def call(service, root, name: str, **args):
    """Run a tool as the MCP layer does: `data` of the envelope, or the error text."""
    result = await call_tool(name, {"projectRoot": str(root), **args}, None,
                             lambda r: ToolContext(service, r))
    text = result["content"][0]["text"]
    return text if result.get("isError") else json.loads(text)["data"]


@pytest.fixture
def proj(tmp_path) -> Path:
    """The project root (beside, not around, the service's database)."""
    root = tmp_path / "proj"
    root.mkdir()
    return root


def snapshot(root: Path) -> dict:
    """Every file under root with its content, to show a call changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- generate -----------------------------------------------------------------------------------
async def test_generate_writes_the_tags_task_files(service, proj):
    root = str(proj)

    def fill(tx):
        tx.add("master", {"id": 1, "title": "a", "status": "pending", "dependencies": []})
        tx.add("master", {"id": 2, "title": "b", "status": "pending", "dependencies": [1]})
        tx.create_tag("feat", {})
        tx.add("feat", {"id": 5, "title": "f", "status": "done"})
    await service.write(root, fill)
    data = await call(service, root, "generate")
    tasks_dir = os.path.join(root, files.TASK_FILES_DIR)
    assert data == {"message": "Successfully generated 2 task file(s)", "count": 2, "directory": tasks_dir,
                    "orphanedFilesRemoved": 0}
    assert sorted(os.listdir(tasks_dir)) == ["task_001.md", "task_002.md"]
    assert "**Dependencies:** 1\n" in Path(tasks_dir, "task_002.md").read_text(encoding="utf-8")

    data = await call(service, root, "generate", tag="feat", output="docs/tasks")
    assert data["count"] == 1 and data["directory"] == os.path.join(root, "docs", "tasks")
    assert os.listdir(data["directory"]) == ["task_005_feat.md"]
    assert (await call(service, root, "generate", tag="nope"))["count"] == 0


async def test_generate_rejects_wrong_types(service, proj):
    for args, field in (({"output": 3}, "output"), ({"tag": False}, "tag")):
        with pytest.raises(ParamError, match=f"{field}: Invalid input: expected string"):
            await call(service, proj, "generate", **args)
    assert snapshot(proj) == {}


# ---- initialize_project -------------------------------------------------------------------------
async def test_initialize_creates_the_layout_without_tasks_json(service, proj):
    data = await call(service, proj, "initialize_project", initGit=False)
    assert data["message"] == "Project initialized successfully."
    for rel in (".taskmaster/tasks", ".taskmaster/docs", ".taskmaster/reports", ".taskmaster/templates",
                ".taskmaster/config.json", ".taskmaster/state.json", ".env.example", ".gitignore"):
        assert (proj / rel).exists(), rel
        assert rel in data["created"]
    assert not (proj / files.TASKS_FILE).exists()
    config = json.loads((proj / CONFIG).read_text())
    assert config["global"]["anonymousTelemetry"] is False
    assert config["models"]["main"]["modelId"] == "claude-sonnet-4-20250514"
    assert json.loads((proj / files.STATE_FILE).read_text())["currentTag"] == "master"
    assert data["rules"] == [{"profile": "cursor", "path": os.path.join(".cursor", "rules", "taskmaster.mdc")}]
    assert (proj / ".cursor" / "rules" / "taskmaster.mdc").read_text().startswith("---\n")
    assert data["gitInitialized"] is False and not (proj / ".git").exists()


async def test_initialize_twice_keeps_what_exists(service, proj):
    (proj / ".gitignore").write_text("node_modules/")
    await call(service, proj, "initialize_project", initGit=False, storeTasksInGit=False, rules=["roo"])
    config = json.loads((proj / CONFIG).read_text())
    config["global"]["projectName"] = "mine"
    (proj / CONFIG).write_text(json.dumps(config))
    before = snapshot(proj)
    again = await call(service, proj, "initialize_project", initGit=False, storeTasksInGit=False, rules=["roo"])
    assert again["created"] == [] and snapshot(proj) == before
    ignore = (proj / ".gitignore").read_text().splitlines()
    assert ignore[0] == "node_modules/" and ".env" in ignore and ".taskmaster/tasks/tasks.json" in ignore


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
async def test_initialize_runs_git_init_only_outside_a_work_tree(service, proj):
    repo = proj / "repo"
    repo.mkdir()
    assert (await call(service, repo, "initialize_project"))["gitInitialized"] is True
    assert (repo / ".git").is_dir()
    inner = repo / "inner"
    inner.mkdir()
    assert (await call(service, inner, "initialize_project"))["gitInitialized"] is False
    assert not (inner / ".git").exists()
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=inner, capture_output=True, text=True)
    assert Path(out.stdout.strip()).resolve() == repo.resolve()


async def test_initialize_needs_an_existing_root_and_valid_rules(service, proj):
    text = await call(service, proj / "missing", "initialize_project")
    assert text.startswith("Error: Project root ") and "does not exist" in text
    assert not (proj / "missing").exists()
    with pytest.raises(ParamError, match=r"rules\.0: Invalid option"):
        await call(service, proj, "initialize_project", rules=["emacs"])
    with pytest.raises(ParamError, match="initGit: Invalid input: expected boolean"):
        await call(service, proj, "initialize_project", initGit="yes")
    assert snapshot(proj) == {}


# ---- models ---------------------------------------------------------------------------------------
async def test_models_without_config_reports_the_defaults(service, proj):
    data = await call(service, proj, "models")
    assert data["message"] == "Successfully retrieved current model configuration"
    main = data["activeModels"]["main"]
    assert (main["provider"], main["modelId"], main["sweScore"]) == ("anthropic", "claude-sonnet-4-20250514", 0.727)
    assert main["cost"] == {"input": 3, "output": 15} and set(main["keyStatus"]) == {"cli", "mcp"}
    assert data["activeModels"]["research"]["modelId"] == "sonar"
    assert snapshot(proj) == {}  # reading writes nothing


async def test_set_models_writes_config_and_keeps_other_settings(service, proj):
    await call(service, proj, "initialize_project", initGit=False)
    config = json.loads((proj / CONFIG).read_text())
    config["global"]["custom"] = 1
    (proj / CONFIG).write_text(json.dumps(config))
    data = await call(service, proj, "models", setMain="gpt-4o")
    assert data == {"role": "main", "provider": "openai", "modelId": "gpt-4o",
                    "message": "Successfully set main model to gpt-4o (Provider: openai)", "warning": None}
    data = await call(service, proj, "models", setResearch="sonar-pro", setFallback="o3")
    assert [u["role"] for u in data["updated"]] == ["research", "fallback"]
    config = json.loads((proj / CONFIG).read_text())
    assert config["models"]["main"]["modelId"] == "gpt-4o" and config["models"]["main"]["temperature"] == 0.2
    assert config["models"]["fallback"]["provider"] == "openai" and config["global"]["custom"] == 1
    active = (await call(service, proj, "models"))["activeModels"]
    assert active["research"]["modelId"] == "sonar-pro"


async def test_custom_models_need_a_provider_flag(service, proj):
    data = await call(service, proj, "models", setMain="llama3:8b", ollama=True)
    assert data["provider"] == "ollama" and "without validation" in data["warning"]
    data = await call(service, proj, "models", setFallback="my-model", baseURL="http://h/v1",
                      **{"openai-compatible": True})
    assert json.loads((proj / CONFIG).read_text())["models"]["fallback"] == {
        "provider": "openai-compatible", "modelId": "my-model", "maxTokens": 120000, "temperature": 0.2,
        "baseURL": "http://h/v1"}


@pytest.mark.parametrize("args,message", [
    ({"setMain": "no-such-model"}, "is not in taskmaster's list of known models"),
    ({"setMain": "sonar"}, "cannot be used for the main role"),
    ({"setMain": "  "}, "Invalid model ID"),
    ({"setMain": "x", "ollama": True, "openrouter": True}, "at most one custom provider flag"),
    ({"setMain": "x", "openai-compatible": True}, "needs baseURL"),
    ({"setMain": "gpt-4o", "setResearch": "bogus"}, "'bogus' is not in"),  # all or nothing
])
async def test_invalid_model_requests_change_nothing(service, proj, args, message):
    await call(service, proj, "initialize_project", initGit=False)
    before = snapshot(proj)
    text = await call(service, proj, "models", **args)
    assert text.startswith("Error: ") and message in text
    assert snapshot(proj) == before


async def test_models_wrong_types_and_broken_config(service, proj):
    with pytest.raises(ParamError, match="setMain: Invalid input: expected string"):
        await call(service, proj, "models", setMain=5)
    with pytest.raises(ParamError, match="listAvailableModels: Invalid input: expected boolean"):
        await call(service, proj, "models", listAvailableModels="true")
    (proj / ".taskmaster").mkdir()
    (proj / CONFIG).write_text("{broken")
    text = await call(service, proj, "models")
    assert text.startswith("Error: ") and "config.json is not valid JSON" in text


async def test_list_available_models_leaves_out_the_ones_in_use(service, proj):
    data = await call(service, proj, "models", listAvailableModels=True)
    ids = {m["modelId"] for m in data["models"]}
    assert "gpt-4o" in ids and "claude-sonnet-4-20250514" not in ids and "sonar" not in ids
    assert data["message"] == f"Successfully retrieved {len(data['models'])} available models"
    assert all(set(m) == {"provider", "modelId", "sweScore", "cost", "allowedRoles"} for m in data["models"])


# ---- rules ----------------------------------------------------------------------------------------
async def test_rules_add_and_remove_dedicated_and_shared_files(service, proj):
    (proj / "CLAUDE.md").write_text("# My project\n\nMy own notes.\n")
    data = await call(service, proj, "rules", action="add", profiles=["cursor", "claude", "codex", "opencode"])
    assert [p["profile"] for p in data["profiles"]] == ["cursor", "claude", "codex", "opencode"]
    claude = (proj / "CLAUDE.md").read_text()
    assert claude.startswith("# My project\n\nMy own notes.\n\n<!-- taskmaster rules (claude) -->")
    assert "next_task" in claude
    agents = (proj / "AGENTS.md").read_text()
    assert "(codex)" in agents and "(opencode)" in agents
    await call(service, proj, "rules", action="add", profiles=["claude"])  # again: still one block
    assert (proj / "CLAUDE.md").read_text().count("<!-- taskmaster rules (claude) -->") == 1

    data = await call(service, proj, "rules", action="remove", profiles=["claude", "codex", "zed"])
    assert [p["profile"] for p in data["profiles"]] == ["claude", "codex"] and data["notInstalled"] == ["zed"]
    assert (proj / "CLAUDE.md").read_text() == "# My project\n\nMy own notes.\n"
    assert "(codex)" not in (proj / "AGENTS.md").read_text() and "(opencode)" in (proj / "AGENTS.md").read_text()
    await call(service, proj, "rules", action="remove", profiles=["opencode"])
    assert not (proj / "AGENTS.md").exists()
    assert (proj / ".cursor" / "rules" / "taskmaster.mdc").exists()


async def test_removing_the_last_profile_needs_force(service, proj):
    await call(service, proj, "rules", action="add", profiles=["windsurf"])
    before = snapshot(proj)
    text = await call(service, proj, "rules", action="remove", profiles=["windsurf"])
    assert text.startswith("Error: Removing these profiles would leave the project without any rule profile")
    assert snapshot(proj) == before
    data = await call(service, proj, "rules", action="remove", profiles=["windsurf"], force=True)
    assert data["profiles"][0]["profile"] == "windsurf" and snapshot(proj) == {}


@pytest.mark.parametrize("args,field", [
    ({"action": "delete", "profiles": ["cursor"]}, "action"), ({"action": "add", "profiles": []}, "profiles"),
    ({"action": "add", "profiles": "cursor"}, "profiles"), ({"action": "add"}, "profiles"),
    ({"profiles": ["cursor"]}, "action"), ({"action": "add", "profiles": ["cursor"], "force": "y"}, "force"),
])
async def test_rules_bad_arguments(service, proj, args, field):
    with pytest.raises(ParamError, match=f"{field}: "):
        await call(service, proj, "rules", **args)
    assert snapshot(proj) == {}


# ---- response-language ----------------------------------------------------------------------------
async def test_response_language_is_written_and_answered(service, proj):
    await call(service, proj, "initialize_project", initGit=False)
    data = await call(service, proj, "response-language", language=" 中文 ")
    assert data == {"message": "Successfully set response language to: 中文", "responseLanguage": "中文"}
    config = json.loads((proj / CONFIG).read_text(encoding="utf-8"))
    assert config["global"]["responseLanguage"] == "中文"
    assert config["models"]["main"]["modelId"] == "claude-sonnet-4-20250514"


async def test_response_language_bad_input(service, proj):
    with pytest.raises(ParamError, match="language: Invalid input: expected string, received undefined"):
        await call(service, proj, "response-language")
    with pytest.raises(ParamError, match="language: Invalid input: expected string, received number"):
        await call(service, proj, "response-language", language=1)
    text = await call(service, proj, "response-language", language="   ")
    assert text.startswith("Error: Invalid response language")
    assert snapshot(proj) == {}


# ---- complexity_report --------------------------------------------------------------------------
async def test_complexity_report_from_the_tag_or_a_file(service, proj):
    text = await call(service, proj, "complexity_report")
    assert text.startswith("Error: No complexity report found. Run task-master analyze-complexity first.")
    report = {"meta": {"thresholdScore": 5}, "complexityAnalysis": [{"taskId": 1, "complexityScore": 3}]}
    await service.write(str(proj), lambda tx: tx.set_report("master", report))
    data = await call(service, proj, "complexity_report")
    assert data == {"report": report, "reportPath": os.path.join(str(proj), ".taskmaster", "reports",
                                                                  "task-complexity-report.json")}
    (proj / "r.json").write_text(json.dumps({"complexityAnalysis": []}))
    data = await call(service, proj, "complexity_report", file="r.json")
    assert data == {"report": {"complexityAnalysis": []}, "reportPath": str(proj / "r.json")}
    text = await call(service, proj, "complexity_report", file="nope.json")
    assert text.startswith("Error: No complexity report found.")
    with pytest.raises(ParamError, match="file: Invalid input: expected string"):
        await call(service, proj, "complexity_report", file=["r.json"])
