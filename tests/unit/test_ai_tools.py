"""The eleven AI tools through registry.call_tool on a real TaskService: the offline planner by
default (deterministic, no network) and a local OpenAI-compatible fake server for the provider path.
Every failure — bad arguments, unknown ids, refused operations, provider errors, unusable answers —
is a clear error and leaves the stored state exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskmaster.config import Config
from taskmaster.llm.providers.offline import NAME as OFFLINE
from taskmaster.tasks.ids import ID_FORMAT_ERROR
from taskmaster.tasks.state import copy_json
from taskmaster.tools import registry
from taskmaster.tools.registry import ParamError, ToolContext
from tests.fakes.llm_servers import FakeLlmServer, Reply, Status
from tests.fakes.llm_setup import tasks_json

registry.load_all()

PRD = """# Shop
## Features
1. Product catalogue: list products with prices.
2. Shopping cart, after the product catalogue.
3. Checkout with card payments, requires the shopping cart.
"""


@pytest.fixture
def root(tmp_path) -> Path:
    project = tmp_path / "proj"
    (project / ".taskmaster" / "docs").mkdir(parents=True)
    (project / ".taskmaster" / "docs" / "prd.txt").write_text(PRD, encoding="utf-8")
    return project


class Calls:
    """Runs tools as the MCP layer does, on one project."""

    def __init__(self, service, root: Path, config=None):
        self.service, self.root, self.config = service, str(root), config
        self.progress: list[tuple] = []

    def ctx(self, root: str) -> ToolContext:
        async def progress(done, total=None, message=None):
            self.progress.append((done, total, message))

        return ToolContext(self.service, root, node="node-a", config=self.config, progress=progress)

    async def raw(self, name: str, **args) -> dict:
        return await registry.call_tool(name, {"projectRoot": self.root, **args}, None, self.ctx)

    async def ok(self, name: str, **args):
        result = await self.raw(name, **args)
        assert not result.get("isError"), result["content"][0]["text"]
        return json.loads(result["content"][0]["text"])["data"]

    def snapshot(self):
        view = self.service.view(self.root)
        tags = view.tag_names()
        return ({t: copy_json(view.tasks(t)) for t in tags}, {t: copy_json(view.report(t)) for t in tags},
                {t: copy_json(view.metadata(t)) for t in tags}, copy_json(view.state))

    async def error(self, name: str, needle: str, **args) -> str:
        before = self.snapshot()
        result = await self.raw(name, **args)
        text = result["content"][0]["text"]
        assert result.get("isError") is True, text
        assert text.startswith("Error: ") and needle in text, text
        assert self.snapshot() == before
        return text

    async def param_error(self, name: str, needle: str, **args) -> None:
        before = self.snapshot()
        with pytest.raises(ParamError) as caught:
            await self.raw(name, **args)
        assert needle in str(caught.value)
        assert self.snapshot() == before

    def tasks(self, tag: str = "master") -> list[dict]:
        return self.service.view(self.root).tasks(tag)


@pytest.fixture
def calls(service, root) -> Calls:
    return Calls(service, root)


async def seed(calls: Calls, *tasks: dict) -> None:
    def fill(tx):
        for task in tasks:
            tx.add("master", copy_json(task))
    await calls.service.write(calls.root, fill)


def task(i, deps=(), subs=(), status="pending", **extra):
    return {"id": i, "title": f"Task {i} login page", "description": f"Build login part {i}",
            "details": f"- form {i}\n- validation {i}", "testStrategy": "", "status": status, "priority": "medium",
            "dependencies": list(deps), "subtasks": list(subs), **extra}


def sub(i, status="pending", deps=()):
    return {"id": i, "title": f"Sub {i}", "description": f"Sub part {i}", "details": "", "status": status,
            "dependencies": list(deps)}


def assert_offline(data: dict, command: str) -> None:
    assert data["provider"]["name"] == OFFLINE and data["provider"]["node"] == "node-a"
    assert "Offline planner" in data["provider"]["note"]
    assert data["telemetryData"]["commandName"] == command and data["telemetryData"]["providerName"] == OFFLINE
    assert data["tagInfo"]["currentTag"] == "master"


# ---- parse_prd -----------------------------------------------------------------------------------
async def test_parse_prd_offline_writes_an_ordered_plan(calls):
    data = await calls.ok("parse_prd")
    assert_offline(data, "parse-prd")
    assert data["taskIds"] == [1, 2, 3] and data["message"].startswith("Successfully parsed PRD and generated tasks in")
    tasks = calls.tasks()
    assert [t["title"] for t in tasks] == ["Product catalogue", "Shopping cart", "Checkout with card payments"]
    assert [t["dependencies"] for t in tasks] == [[], [1], [2]]
    assert all(t["status"] == "pending" and t["subtasks"] == [] for t in tasks)


async def test_parse_prd_refuses_a_tag_with_tasks_then_appends_or_forces(calls):
    await calls.ok("parse_prd")
    await calls.error("parse_prd", "Tag 'master' already contains 3 tasks. Use --force to overwrite or --append")
    assert (await calls.ok("parse_prd", append=True))["taskIds"] == [4, 5, 6]
    assert [t["dependencies"] for t in calls.tasks()[3:]] == [[], [4], [5]]
    assert (await calls.ok("parse_prd", force=True, numTasks="2"))["taskIds"] == [7, 8]
    assert [t["id"] for t in calls.tasks()] == [7, 8]


async def test_parse_prd_into_a_new_tag_and_bad_tag_names(calls):
    await calls.ok("parse_prd", tag="shop")
    assert len(calls.tasks("shop")) == 3 and calls.tasks() == []
    for bad in ("bad name!", "../etc"):
        await calls.error("parse_prd", "can only contain letters, numbers, hyphens, and underscores", tag=bad)


async def test_parse_prd_input_errors_change_nothing(service, root):
    config = Config(data_dir=str(root.parent / "node"))
    config.max_prd_bytes = 100
    calls = Calls(service, root, config)
    await calls.error("parse_prd", "Input PRD file not found at resolved path", input="missing.txt")
    (root / "empty.md").write_text(" \n\t\n", encoding="utf-8")
    await calls.error("parse_prd", "is empty or could not be read", input="empty.md")
    (root / "bin.md").write_bytes(b"\xff\xfe\x00bad")
    await calls.error("parse_prd", "is not UTF-8 text", input=str(root / "bin.md"))
    await calls.error("parse_prd", "over the limit of 100 bytes", input=".taskmaster/docs/prd.txt")
    for bad in ("abc", "-1", "101", "2.5"):
        await calls.error("parse_prd", "Invalid numTasks", numTasks=bad)


async def test_parse_prd_without_readable_requirements_is_an_error(calls, root):
    (root / "noise.txt").write_text("```\ncode only\n```\n", encoding="utf-8")
    await calls.error("parse_prd", "no requirements", input="noise.txt")


# ---- add_task (prompt mode) ----------------------------------------------------------------------
async def test_add_task_prompt_mode_asks_the_model(calls):
    await seed(calls, task(1), task(2))
    data = await calls.ok("add_task", prompt="Rate limiting for the login page, after task 2", dependencies="1",
                          priority="high")
    assert data["taskId"] == 3 and data["message"] == "Successfully added new task #3"
    assert_offline(data, "add-task")
    new = calls.tasks()[-1]
    assert new["dependencies"] == [1, 2] and new["priority"] == "high" and new["status"] == "pending"
    manual = await calls.ok("add_task", title="Manual", description="Still manual", prompt="ignored")
    assert manual == {"taskId": 4, "message": "Successfully added new task #4", "telemetryData": None,
                      "tagInfo": None}


# ---- expand_task, expand_all ---------------------------------------------------------------------
async def test_expand_task_adds_subtasks_and_skips_or_replaces_existing_ones(calls):
    await seed(calls, task(1), task(2, deps=["3.1"]), task(3, subs=[sub(1)]))
    data = await calls.ok("expand_task", id="1", num="3", prompt="keep it small")
    assert_offline(data, "expand-task")
    assert data["subtasksAdded"] == 3 and data["hasExistingSubtasks"] is False
    assert [s["id"] for s in calls.tasks()[0]["subtasks"]] == [1, 2, 3]
    before = calls.snapshot()
    skipped = await calls.ok("expand_task", id="3")
    assert skipped["message"] == "Task 3 already has subtasks. Expansion skipped." and skipped["subtasksAdded"] == 0
    assert skipped["telemetryData"] is None and skipped["provider"] is None and calls.snapshot() == before
    replaced = await calls.ok("expand_task", id="3", force=True, num="2")
    assert replaced["subtasksAdded"] == 2 and replaced["hasExistingSubtasks"] is True
    assert calls.tasks()[1]["dependencies"] == []  # 3.1 was replaced: the reference to it went too


async def test_expand_task_errors(calls):
    await seed(calls, task(1, status="done"), task(2))
    await calls.error("expand_task", "Task 1 is already marked as done and cannot be expanded", id="1")
    await calls.error("expand_task", "Task with ID 9 not found", id="9")
    await calls.error("expand_task", "Expected a single task ID", id="2.1")
    await calls.error("expand_task", "Invalid num", id="2", num="51")


async def test_expand_all_streams_progress_and_counts(calls):
    await seed(calls, task(1), task(2, status="in-progress"), task(3, status="done"), task(4, subs=[sub(1)]))
    data = await calls.ok("expand_all", num="2")
    assert data["message"] == "Expand all operation completed. Expanded: 2, Failed: 0, Skipped: 0"
    assert data["details"]["tasksToExpand"] == 2 and data["details"]["expandedCount"] == 2
    assert [p[:2] for p in calls.progress] == [(1, 2), (2, 2)]
    assert [len(t["subtasks"]) for t in calls.tasks()] == [2, 2, 0, 1]
    nothing = await calls.ok("expand_all")
    assert nothing["details"]["tasksToExpand"] == 0 and nothing["telemetryData"] is None


# ---- analyze_project_complexity ------------------------------------------------------------------
async def test_analysis_stores_the_tags_report_and_writes_the_file(calls, root):
    await seed(calls, task(1), task(2, status="done"), task(3, deps=[1]))
    data = await calls.ok("analyze_project_complexity", threshold=7)
    assert_offline(data, "analyze-complexity")
    report = data["fullReport"]
    assert [e["taskId"] for e in report["complexityAnalysis"]] == [1, 3]
    assert report["meta"]["thresholdScore"] == 7 and report["meta"]["tasksAnalyzed"] == 2
    assert data["reportSummary"]["taskCount"] == 2
    stored = await calls.ok("complexity_report")
    assert stored["report"] == report
    on_disk = root / ".taskmaster" / "reports" / "task-complexity-report.json"
    assert json.loads(on_disk.read_text(encoding="utf-8")) == report and data["reportPath"] == str(on_disk)
    # A filter that matches nothing keeps the report as it is, without asking the model.
    kept = await calls.ok("analyze_project_complexity", ids="2")
    assert kept["fullReport"] == report and kept["telemetryData"] is None
    again = await calls.ok("analyze_project_complexity", ids="3", output="out/report.json")
    assert [e["taskId"] for e in again["fullReport"]["complexityAnalysis"]] == [1, 3]
    assert (root / "out" / "report.json").exists()


async def test_analysis_errors(calls):
    await calls.error("analyze_project_complexity", "No tasks found in tag 'master'")
    await seed(calls, task(1))
    await calls.error("analyze_project_complexity", "not subtasks: 1.1", ids="1.1")
    await calls.param_error("analyze_project_complexity", "threshold", threshold=11)


# ---- scope_up_task, scope_down_task --------------------------------------------------------------
async def test_scope_up_regenerates_pending_subtasks_and_keeps_started_ones(calls):
    await seed(calls, task(1, subs=[sub(1, "done"), sub(2), sub(3, "in-progress")]), task(2))
    data = await calls.ok("scope_up_task", id="1,2", strength="light")
    assert data["tasksUpdated"] == 2 and data["message"] == "Successfully scoped up 2 task(s)"
    assert data["telemetryData"]["commandName"] == "scope-up"
    first = calls.tasks()[0]
    assert [(s["id"], s["status"]) for s in first["subtasks"][:2]] == [(1, "done"), (3, "in-progress")]
    assert len(first["subtasks"]) > 2 and all(s["status"] == "pending" for s in first["subtasks"][2:])
    assert "Scope increased (light" in first["details"]
    down = await calls.ok("scope_down_task", id="2")
    assert down["message"] == "Successfully scoped down 1 task(s)"


async def test_scope_re_analyses_a_task_the_report_scored(calls):
    report = {"meta": {"thresholdScore": 6}, "complexityAnalysis": [
        {"taskId": 1, "complexityScore": 9, "recommendedSubtasks": 5, "expansionPrompt": "e", "reasoning": "old"},
        {"taskId": 2, "complexityScore": 3, "recommendedSubtasks": 2, "expansionPrompt": "e", "reasoning": "kept"}]}

    def fill(tx):
        tx.add("master", task(1))
        tx.add("master", task(2))
        tx.set_report("master", report)
    await calls.service.write(calls.root, fill)
    await calls.ok("scope_down_task", id="1", strength="heavy")
    entries = calls.service.view(calls.root).report("master")["complexityAnalysis"]
    assert [e["taskId"] for e in entries] == [2, 1] and entries[0]["reasoning"] == "kept"
    assert entries[1]["reasoning"].startswith("Offline heuristic")
    assert calls.service.view(calls.root).report("master")["meta"]["thresholdScore"] == 6


async def test_scope_checks_everything_before_any_call(calls):
    await seed(calls, task(1))
    await calls.error("scope_up_task", "Invalid strength level: max. Must be one of: light, regular, heavy",
                      id="1", strength="max")
    await calls.error("scope_down_task", "Task with ID 5 not found", id="1,5")


# ---- update, update_task, update_subtask ----------------------------------------------------------
async def test_update_rewrites_open_tasks_from_an_id(calls):
    await seed(calls, task(1), task(2, status="done"), task(3))
    data = await calls.ok("update", **{"from": "2", "prompt": "Set priority to high"})
    assert data["updatedTaskIds"] == [3] and data["message"] == "Successfully updated 1 tasks."
    assert [t["priority"] for t in calls.tasks()] == ["medium", "medium", "high"]
    none = await calls.ok("update", **{"from": "4", "prompt": "anything"})
    assert none["updatedCount"] == 0 and none["provider"] is None
    await calls.error("update", "A prompt is required", **{"from": "1", "prompt": "  "})


async def test_update_task_full_append_and_locked_done(calls):
    await seed(calls, task(1, subs=[sub(1, deps=[2]), sub(2, deps=["1.1"])]), task(2, status="done"))
    full = await calls.ok("update_task", id="1", prompt='rename it to "Sign-in page"')
    assert full["updated"] is True and full["updatedTask"]["title"] == "Sign-in page"
    assert calls.tasks()[0]["subtasks"] == [sub(1, deps=[2]), sub(2, deps=["1.1"])]
    appended = await calls.ok("update_task", id="1", prompt="uses OAuth", append=True)
    assert "<info added on " in appended["updatedTask"]["details"] and "uses OAuth" in appended["updatedTask"]["details"]
    assert appended["updatedTask"]["description"].endswith("]")
    before = calls.snapshot()
    locked = await calls.ok("update_task", id="2", prompt="change it")
    assert locked["updated"] is False and locked["message"] == "Task 2 was not updated (likely already completed)."
    assert calls.snapshot() == before
    await calls.error("update_task", "update_task takes one task ID, got 1.1 (subtasks are updated with "
                                     "update_subtask)", id="1.1", prompt="x")
    await calls.error("update_task", "takes one task ID, got 1,2", id="1,2", prompt="x")
    await calls.error("update_task", "Task with ID 9 not found", id="9", prompt="x")
    await calls.error("update_task", "A prompt is required", id="1")


async def test_metadata_needs_the_switch_and_a_json_object(calls, monkeypatch):
    await seed(calls, task(1, subs=[sub(1)]))
    monkeypatch.delenv("TASK_MASTER_ALLOW_METADATA_UPDATES", raising=False)
    await calls.error("update_task", "Metadata updates are disabled", id="1", metadata='{"a": 1}')
    monkeypatch.setenv("TASK_MASTER_ALLOW_METADATA_UPDATES", "true")
    await calls.error("update_task", "Invalid metadata JSON", id="1", metadata="{nope")
    await calls.error("update_subtask", "must be a JSON object", id="1.1", metadata="[1]")
    data = await calls.ok("update_task", id="1", metadata='{"sprint": "Q1"}')
    assert data["updatedTask"]["metadata"] == {"sprint": "Q1"} and data["telemetryData"] is None
    sub_data = await calls.ok("update_subtask", id="1.1", metadata='{"ticket": 7}')
    assert sub_data["subtask"]["metadata"] == {"ticket": 7} and sub_data["provider"] is None


async def test_update_subtask_appends_a_dated_note(calls):
    await seed(calls, task(1, subs=[sub(1), sub(2)]))
    data = await calls.ok("update_subtask", id="1.2", prompt="found the cause")
    assert data["message"] == "Successfully updated subtask with ID 1.2" and data["parentId"] == 1
    assert_offline(data, "update-subtask")
    details = calls.tasks()[0]["subtasks"][1]["details"]
    assert details.startswith("<info added on ") and "found the cause" in details
    await calls.error("update_subtask", 'Invalid subtask ID format: 1. Subtask ID must be in format', id="1",
                      prompt="x")
    await calls.error("update_subtask", "Subtask with ID 1.9 not found", id="1.9", prompt="x")


# ---- research ------------------------------------------------------------------------------------
async def test_research_answers_and_saves_to_a_task_and_a_file(calls, root):
    await seed(calls, task(1), task(2, subs=[sub(1)]))
    (root / "notes.md").write_text("We use sessions.", encoding="utf-8")
    data = await calls.ok("research", query="login page validation", taskIds="2.1", filePaths="notes.md",
                          includeProjectTree=True, saveTo="1", saveToFile=True, detailLevel="high")
    assert data["provider"]["role"] == "research" and "login" in data["result"]
    assert data["totalInputTokens"] == data["systemPromptTokens"] + data["userPromptTokens"] > 0
    saved = Path(data["savedFilePath"])
    assert saved.parent == root / ".taskmaster" / "docs" / "research" and saved.name.endswith(
        "_login-page-validation.md")
    assert data["result"] in saved.read_text(encoding="utf-8")
    assert "**Initial Query:** login page validation" in calls.tasks()[0]["details"]
    assert data["savedTo"]["id"] == 1


async def test_research_bad_input_changes_nothing(calls, root):
    await seed(calls, task(1))
    await calls.error("research", "Task with ID 9 not found", query="q", saveTo="9")
    await calls.error("research", "Task with ID 7 not found", query="q", taskIds="1,7")
    await calls.error("research", "file not found: nope.md", query="q", filePaths="nope.md")
    await calls.error("research", "cannot read .taskmaster", query="q", filePaths=".taskmaster", saveTo="1")
    await calls.error("research", "must not be empty", query="  ")
    elsewhere = Calls(calls.service, root.parent / "not-on-this-node")
    await seed(elsewhere, task(1))
    await elsewhere.error("research", "does not exist or is not a directory", query="q", saveToFile=True, saveTo="1")
    assert not (root.parent / "not-on-this-node").exists()
    await calls.param_error("research", "detailLevel", query="q", detailLevel="extreme")


# ---- bad input common to every AI tool ------------------------------------------------------------
VALID = {
    "parse_prd": {}, "expand_task": {"id": "1"}, "expand_all": {}, "analyze_project_complexity": {},
    "scope_up_task": {"id": "1"}, "scope_down_task": {"id": "1"}, "research": {"query": "q"},
    "add_task": {"prompt": "p"}, "update": {"from": "1", "prompt": "p"}, "update_task": {"id": "1", "prompt": "p"},
    "update_subtask": {"id": "1.1", "prompt": "p"},
}
ID_FIELDS = {"expand_task": ["id"], "scope_up_task": ["id"], "scope_down_task": ["id"], "update": ["from"],
             "update_task": ["id"], "update_subtask": ["id"], "research": ["taskIds", "saveTo"],
             "analyze_project_complexity": ["ids"], "add_task": ["dependencies"]}


@pytest.mark.parametrize("name", sorted(VALID))
async def test_wrong_types_and_malformed_ids_are_param_errors(calls, name):
    await seed(calls, task(1, subs=[sub(1)]))
    await calls.param_error(name, "tag: Invalid input: expected string, received number", **VALID[name], tag=7)
    for field in ID_FIELDS.get(name, []):
        await calls.param_error(name, f"{field}: Invalid input: expected string, received number",
                                **{**VALID[name], field: 7})
        for bad in ("1..2", "-3", "abc", "1.2.3"):
            await calls.param_error(name, f"{field}: {ID_FORMAT_ERROR}", **{**VALID[name], field: bad})


@pytest.mark.parametrize("name", sorted(set(VALID) - {"parse_prd"}))
async def test_unknown_and_invalid_tags_are_errors(calls, name):
    await seed(calls, task(1, subs=[sub(1)]))
    for tag in ("nope", "bad name!", "../etc"):
        await calls.error(name, f"Tag '{tag}' does not exist", **VALID[name], tag=tag)


# ---- the provider path: a local OpenAI-compatible server -------------------------------------------
@pytest.fixture
async def provider(service, root, tmp_path):
    """A project whose main role is a fake OpenAI-compatible server (retries without real waits)."""
    server = await FakeLlmServer("openai").start()
    node = tmp_path / "node"
    node.mkdir()
    (node / "models.json").write_text(json.dumps({"retry": {"maxAttempts": 3, "baseDelay": 0.001, "maxDelay": 0.01}}))
    (root / ".taskmaster" / "config.json").write_text(json.dumps(
        {"models": {"main": {"provider": "openai", "modelId": "gpt-4o-mini", "baseURL": server.base_url}}}))
    (root / ".env").write_text("OPENAI_API_KEY=sk-test-0123456789\n")
    yield server, Calls(service, root, Config(data_dir=str(node)))
    await server.close()


async def test_a_500_is_retried_and_the_answer_says_who_answered(provider):
    server, calls = provider
    server.script = [Status(500, "internal"), Reply(tasks_json("Catalogue", "Cart"), 100, 40)]
    data = await calls.ok("parse_prd")
    assert len(server.requests) == 2
    assert data["provider"] == {"name": "openai", "model": "gpt-4o-mini", "role": "main", "node": "node-a",
                                "note": None}
    telemetry = data["telemetryData"]
    assert (telemetry["providerName"], telemetry["inputTokens"], telemetry["outputTokens"]) == ("openai", 100, 40)
    assert telemetry["totalCost"] == round(100 * 0.15e-6 + 40 * 0.6e-6, 6) and not telemetry["isUnknownCost"]
    assert [t["title"] for t in calls.tasks()] == ["Catalogue", "Cart"]
    assert "sk-test-0123456789" not in json.dumps(data)


async def test_garbage_answers_are_a_tool_error_and_change_nothing(provider):
    server, calls = provider
    await seed(calls, task(1), task(2))
    server.default = Reply("Sure! Here are some subtasks: 1) do it 2) test it")
    await calls.error("expand_task", "returned an unusable answer for expand_task twice", id="1")
    assert len(server.requests) == 2  # the answer, then the repair request
    server.default = Reply(json.dumps({"subtasks": [{"id": 1, "title": "No description"}]}))
    await calls.error("expand_task", "subtasks[0].description: missing", id="2")
    server.default = Status(503, "overloaded")
    await calls.error("update_task", "AI service call failed for all configured roles", id="1", prompt="x")


async def test_a_model_rewrite_keeps_status_and_done_subtasks(provider):
    server, calls = provider
    await seed(calls, task(1, subs=[sub(1, "done"), sub(2)]), task(2))
    rewrite = {"task": {"id": 99, "title": "Login v2", "description": "Rebuilt", "status": "done",
                        "dependencies": [2, 42], "priority": "high",
                        "subtasks": [{"id": 1, "title": "Changed done one", "status": "pending"},
                                     {"id": 2, "title": "New second", "dependencies": [1]}]}}
    server.script = [Reply(json.dumps(rewrite))]
    data = await calls.ok("update_task", id="1", prompt="rework the design")
    stored = calls.tasks()[0]
    assert data["updatedTask"] == stored
    assert (stored["id"], stored["title"], stored["status"], stored["priority"]) == (1, "Login v2", "pending", "high")
    assert stored["dependencies"] == [2]
    assert stored["subtasks"][0] == sub(1, "done")
    assert stored["subtasks"][1]["title"] == "New second" and stored["subtasks"][1]["dependencies"] == ["1.1"]


async def test_models_reports_a_key_from_the_projects_env(calls, root, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    await calls.ok("models", setMain="gpt-4o")
    assert (await calls.ok("models"))["activeModels"]["main"]["keyStatus"] == {"cli": False, "mcp": False}
    (root / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\n")
    assert (await calls.ok("models"))["activeModels"]["main"]["keyStatus"] == {"cli": True, "mcp": True}
