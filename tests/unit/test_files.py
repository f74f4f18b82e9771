"""tasks.json import (both formats, mixed ids, broken files), export round trips, and generated files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from taskmaster.crdt import HLC
from taskmaster.storage import Store
from taskmaster.tasks import files
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.service import TaskService
from taskmaster.tasks.state import ProjectTx, ProjectView


@pytest.fixture
def importing(tmp_path):
    """A TaskService that imports a project's files on first sight, as the daemon does."""
    store = Store(str(tmp_path / "db"))
    yield TaskService(store, HLC("test-node"), importer=files.import_project)
    store.close()


def project(tmp_path, name="proj") -> str:
    root = tmp_path / name
    root.mkdir()
    return str(root)


def put(root: str, rel: str, content) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))


def try_import(root: str) -> ProjectTx:
    tx = ProjectTx(ProjectView.from_plain(root, {}))
    files.import_project(tx)
    return tx


# ---- export -> import round trip ----------------------------------------------------------------
async def test_export_then_import_into_a_fresh_project_gives_identical_tasks(tmp_path, importing):
    source = project(tmp_path, "source")

    def fill(tx):
        tx.edit_metadata("master").update({"created": "2026-01-01T00:00:00.000Z", "description": "Tasks"})
        tx.add("master", {"id": 1, "title": "one", "description": "d", "details": "x" * 50, "testStrategy": "t",
                          "status": "done", "priority": "high", "dependencies": [],
                          "metadata": {"owner": "ana", "nested": [1, {"a": None}]}})
        tx.add("master", {"id": 2, "title": "two", "status": "in-progress", "dependencies": [1, "3.1"],
                          "subtasks": [{"id": 1, "title": "s1", "description": "", "details": "", "status": "done",
                                        "dependencies": []},
                                       {"id": 2, "title": "s2", "status": "pending", "dependencies": [1, "3.1"]}]})
        tx.add("master", {"id": 3, "title": "three", "status": "pending", "dependencies": [],
                          "subtasks": [{"id": 1, "title": "t1", "status": "pending", "dependencies": []}]})
        tx.create_tag("feature-x", {"version": "1.0.0", "taskCount": 1, "tags": ["feature-x"]})
        tx.add("feature-x", {"id": 7, "title": "ümlaut ✓", "status": "review", "dependencies": []})
    await importing.write(source, fill)
    before = importing.view(source)

    target = project(tmp_path, "target")
    written = files.write_tasks_json(before, os.path.join(target, files.TASKS_FILE))
    assert written == {"path": os.path.join(target, files.TASKS_FILE), "tags": 2, "tasks": 4}

    text = Path(target, files.TASKS_FILE).read_text(encoding="utf-8")
    assert text.startswith('{\n  "master": {\n    "tasks": [\n')  # 2-space JSON, tagged, master first
    assert "ümlaut ✓" in text
    data = json.loads(text)
    assert set(data) == {"master", "feature-x"} and set(data["master"]) == {"tasks", "metadata"}

    after = importing.view(target)  # first sight of the project: imported from the file
    for tag in ("master", "feature-x"):
        assert after.tasks(tag) == before.tasks(tag)
        assert after.metadata(tag) == before.metadata(tag)
    assert after.tag_names() == before.tag_names()
    assert os.listdir(os.path.join(target, ".taskmaster", "tasks")) == ["tasks.json"]  # no temporary left


def test_export_always_has_master_and_uses_stored_shapes():
    view = ProjectView.from_plain("/p", {"b": {"tasks": [{"id": 1, "title": "x", "dependencies": ["2.1", 3]}]}})
    data = files.export_project(view)
    assert list(data) == ["master", "b"]
    assert data["master"] == {"tasks": [], "metadata": {}}
    assert data["b"]["tasks"][0]["dependencies"] == ["2.1", 3]


def test_write_json_replaces_atomically(tmp_path):
    path = str(tmp_path / "deep" / "file.json")
    files.write_json(path, {"a": 1})
    files.write_json(path, {"a": 2})
    assert json.loads(Path(path).read_text()) == {"a": 2}
    assert os.listdir(tmp_path / "deep") == ["file.json"]


# ---- import of what the reference writes ---------------------------------------------------------
async def test_legacy_flat_file_becomes_the_master_tag(tmp_path, importing):
    root = project(tmp_path)
    put(root, files.TASKS_FILE, {"tasks": [{"id": 1, "title": "a", "status": "pending", "dependencies": []},
                                           {"id": "2", "title": "b", "status": "done", "dependencies": ["1"]}],
                                 "metadata": {"projectName": "old", "version": "1.0"}})
    view = importing.view(root)
    assert [t["id"] for t in view.tasks("master")] == [1, 2]
    assert view.task("master", 2)["dependencies"] == [1]
    assert view.metadata("master") == {"projectName": "old", "version": "1.0"}
    assert view.tag_names() == ["master"] and view.current_tag == "master"


async def test_legacy_tasks_location_is_read_when_the_new_one_is_missing(tmp_path, importing):
    root = project(tmp_path)
    put(root, files.LEGACY_TASKS_FILE, {"tasks": [{"id": 4, "title": "old place"}], "meta": {"projectName": "p"}})
    view = importing.view(root)
    assert view.task("master", 4)["title"] == "old place"
    assert view.metadata("master") == {"projectName": "p"}


async def test_tagged_file_with_mixed_ids_state_and_reports(tmp_path, importing):
    root = project(tmp_path)
    put(root, files.TASKS_FILE, {
        "master": {"tasks": [
            {"id": "1", "title": "string id", "status": "done", "dependencies": []},
            {"id": 2, "title": "int id", "status": "pending", "dependencies": ["1", 1, "1.2", " 3 "],
             "subtasks": [{"id": "2.1", "title": "dotted", "status": "pending", "dependencies": ["2"],
                           "parentId": "undefined"},
                          {"id": 2, "title": "plain", "status": "done", "dependencies": [],
                           "parentTaskId": 2}]},
            {"id": 3.0, "title": "float id", "dependencies": []}],
            "metadata": {"created": "2025-01-01T00:00:00.000Z", "updated": "2025-01-02T00:00:00.000Z",
                         "description": "Tasks for master context"}},
        "feature": {"tasks": [{"id": "5", "title": "f", "status": "pending", "dependencies": []}],
                    "metadata": {"version": "1.0.0", "lastModified": "2025-02-01T00:00:00.000Z", "taskCount": 1,
                                 "completedCount": 0, "tags": ["feature"]}},
        "empty": {"tasks": []},
    })
    put(root, files.STATE_FILE, {"currentTag": "feature", "lastSwitched": "2025-02-01T00:00:00.000Z",
                                 "branchTagMapping": {"feat/x": "feature"}, "migrationNoticeShown": True})
    master_report = {"meta": {"tasksAnalyzed": 1}, "complexityAnalysis": [{"taskId": 2, "complexityScore": 6}]}
    put(root, os.path.join(".taskmaster", "reports", "task-complexity-report.json"), master_report)
    put(root, os.path.join(".taskmaster", "reports", "task-complexity-report_feature.json"),
        {"complexityAnalysis": [{"taskId": 5, "complexityScore": 2}]})

    view = importing.view(root)
    assert view.tag_names() == ["empty", "feature", "master"]
    assert view.current_tag == "feature"
    assert view.state["branchTagMapping"] == {"feat/x": "feature"}
    assert [t["id"] for t in view.tasks("master")] == [1, 2, 3]
    task2 = view.task("master", 2)
    assert task2["dependencies"] == [1, 3, "1.2"]  # "1" and 1 are one dependency; sorted as stored
    assert [s["id"] for s in task2["subtasks"]] == [1, 2]
    # Task Master's bare sibling number becomes the unambiguous "P.S" form.
    assert task2["subtasks"][0]["dependencies"] == ["2.2"] and "parentId" not in task2["subtasks"][0]
    assert task2["subtasks"][1]["parentTaskId"] == 2
    assert view.task("feature", 5)["title"] == "f"
    assert view.metadata("master")["description"] == "Tasks for master context"
    assert view.metadata("feature")["completedCount"] == 0
    assert view.report("master") == master_report
    assert view.report("feature")["complexityAnalysis"][0]["complexityScore"] == 2
    assert view.report("empty") is None


async def test_legacy_report_location_feeds_master(tmp_path, importing):
    root = project(tmp_path)
    put(root, files.TASKS_FILE, {"master": {"tasks": [{"id": 1, "title": "a"}]}})
    put(root, files.LEGACY_REPORT_FILE, {"complexityAnalysis": [{"taskId": 1, "complexityScore": 9}]})
    assert importing.view(root).report("master")["complexityAnalysis"][0]["complexityScore"] == 9


def test_no_tasks_file_means_nothing_to_import(tmp_path):
    root = project(tmp_path)
    put(root, files.STATE_FILE, {"currentTag": "x"})
    tx = ProjectTx(ProjectView.from_plain(root, {}))
    assert files.import_project(tx) is False
    assert tx.work == {} and not tx.state_changed
    put(root, files.TASKS_FILE, {})
    assert files.import_project(tx) is False and tx.work == {}


async def test_import_on_demand_replaces_tags_in_the_file_and_keeps_the_others(tmp_path, service):
    root = project(tmp_path)

    def fill(tx):
        tx.add("master", {"id": 1, "title": "stale"})
        tx.add("master", {"id": 9, "title": "gone after import"})
        tx.create_tag("keep", {"description": "mine"})
        tx.add("keep", {"id": 1, "title": "kept"})
    await service.write(root, fill)
    put(root, files.TASKS_FILE, {"master": {"tasks": [{"id": 1, "title": "fresh"}, {"id": 2, "title": "new"}],
                                            "metadata": {"description": "from file"}}})
    assert await service.write(root, files.import_project) is True
    view = service.view(root)
    assert [(t["id"], t["title"]) for t in view.tasks("master")] == [(1, "fresh"), (2, "new")]
    assert view.metadata("master") == {"description": "from file"}
    assert view.task("keep", 1)["title"] == "kept" and view.metadata("keep") == {"description": "mine"}


# ---- broken files -------------------------------------------------------------------------------
@pytest.mark.parametrize("content,message", [
    ("{not json", r"tasks\.json is not valid JSON"),
    ("[1, 2]", r"tasks\.json is not a Task Master tasks file"),
    ({"master": [1]}, r"tag 'master' must be an object with a \"tasks\" list"),
    ({"master": {"tasks": {"1": {}}}}, r"tag 'master' must be an object"),
    ({"tasks": ["x"]}, r"tag 'master': every task must be an object"),
    ({"tasks": [{"title": "no id"}]}, r"task id must be a positive whole number, got null"),
    ({"tasks": [{"id": "abc"}]}, r"task id must be a positive whole number, got \"abc\""),
    ({"tasks": [{"id": 0}]}, r"task id must be a positive whole number, got 0"),
    ({"tasks": [{"id": True}]}, r"task id must be a positive whole number, got true"),
    ({"tasks": [{"id": 1}, {"id": "1"}]}, r"task id 1 appears twice"),
    ({"tasks": [{"id": 1, "dependencies": "2"}]}, r"task 1: \"dependencies\" must be a list"),
    ({"tasks": [{"id": 1, "dependencies": ["1..2"]}]}, r"task 1: invalid dependency \"1\.\.2\""),
    ({"tasks": [{"id": 1, "dependencies": [None]}]}, r"task 1: invalid dependency null"),
    ({"tasks": [{"id": 1, "subtasks": {}}]}, r"task 1: \"subtasks\" must be a list"),
    ({"tasks": [{"id": 1, "subtasks": [{"id": "x"}]}]}, r"task 1: subtask id must be a positive whole number"),
    ({"tasks": [{"id": 1, "subtasks": [{"id": 1, "dependencies": ["-3"]}]}]}, r"subtask 1: invalid dependency"),
    ({"master": {"tasks": [], "metadata": "old"}}, r"the metadata of tag 'master' must be an object"),
    ({" ": {"tasks": []}}, r"a tag name must not be empty"),
])
def test_broken_tasks_files_raise_a_clear_error_naming_the_file(tmp_path, content, message):
    root = project(tmp_path)
    put(root, files.TASKS_FILE, content)
    with pytest.raises(TaskError, match=message) as err:
        try_import(root)
    assert os.path.join(root, files.TASKS_FILE) in err.value.message


def test_broken_state_and_report_files_name_themselves(tmp_path):
    root = project(tmp_path)
    put(root, files.TASKS_FILE, {"master": {"tasks": [{"id": 1}]}})
    put(root, files.STATE_FILE, "[]")
    with pytest.raises(TaskError, match=r"state\.json must hold a JSON object"):
        try_import(root)
    os.unlink(os.path.join(root, files.STATE_FILE))
    put(root, os.path.join(".taskmaster", "reports", "task-complexity-report.json"), "{oops")
    with pytest.raises(TaskError, match=r"task-complexity-report\.json is not valid JSON"):
        try_import(root)


async def test_a_broken_file_leaves_the_project_empty_and_usable(tmp_path, importing):
    root = project(tmp_path)
    put(root, files.TASKS_FILE, '{"master": {"tasks": [{"id": 1}, {"id": 1}]}}')
    assert importing.view(root).tasks("master") == []
    await importing.write(root, lambda tx: tx.add("master", {"id": 1, "title": "works"}))
    assert importing.view(root).task("master", 1)["title"] == "works"


# ---- generated task files -----------------------------------------------------------------------
def sample_tasks():
    return [
        {"id": 1, "title": "Setup", "description": "Init repo", "details": "Use git.", "testStrategy": "CI green",
         "status": "done", "priority": "high", "dependencies": [], "subtasks": []},
        {"id": 2, "title": "Build", "description": "Make it", "status": "in-progress", "dependencies": [1, 3, "1.1"],
         "subtasks": [{"id": 1, "title": "Part A", "description": "First part", "details": "Carefully",
                       "status": "done", "dependencies": []},
                      {"id": 2, "title": "Part B", "status": "pending", "dependencies": ["2.1", "3.1", 3]}]},
        {"id": 3, "title": "Ship", "status": "blocked", "dependencies": [], "subtasks": []},
    ]


def test_task_markdown_layout():
    tasks = sample_tasks()
    text = files.task_markdown(tasks[1], {t["id"]: t["status"] for t in tasks})
    assert text == (
        "# Task ID: 2\n\n**Title:** Build\n\n**Status:** in-progress\n\n"
        "**Dependencies:** 1 ✓, 3 ⛔, 1.1\n\n**Priority:** medium\n\n**Description:** Make it\n\n"
        "**Details:**\n\nNo details provided.\n\n**Test Strategy:**\n\nNo test strategy provided.\n\n"
        "## Subtasks\n\n### 2.1. Part A\n\n**Status:** done  \n**Dependencies:** None  \n\nFirst part\n\n"
        "**Details:**\n\nCarefully\n\n### 2.2. Part B\n\n**Status:** pending  \n**Dependencies:** 2.1, 3.1, 3  \n\n")
    first = files.task_markdown(tasks[0], {})
    assert "**Dependencies:** None\n" in first and "**Details:**\n\nUse git.\n\n**Test Strategy:**\n\nCI green\n" \
        in first and "## Subtasks" not in first


def test_generate_writes_one_file_per_task_and_removes_only_this_tags_orphans(tmp_path):
    out = str(tmp_path / "out")
    os.makedirs(out)
    for name in ("task_009.md", "task_002_feature.md", "task_007_feature.md", "notes.md", "task_1.txt"):
        open(os.path.join(out, name), "w").close()
    result = files.generate_task_files(sample_tasks(), "master", out)
    assert result == {"message": "Successfully generated 3 task file(s)", "count": 3, "directory": out,
                      "orphanedFilesRemoved": 1}
    assert sorted(os.listdir(out)) == ["notes.md", "task_001.md", "task_002.md", "task_002_feature.md",
                                       "task_003.md", "task_007_feature.md", "task_1.txt"]
    assert Path(out, "task_002.md").read_text(encoding="utf-8").startswith("# Task ID: 2\n")

    result = files.generate_task_files(sample_tasks()[:1] + [{"id": 12, "title": "x"}], "feature", out)
    assert result["count"] == 2 and result["orphanedFilesRemoved"] == 2
    assert {"task_001_feature.md", "task_012_feature.md"} <= set(os.listdir(out))
    assert not {"task_002_feature.md", "task_007_feature.md"} & set(os.listdir(out))
    assert "task_002.md" in os.listdir(out)  # master's files are not this tag's orphans


def test_generate_with_no_tasks_writes_and_removes_nothing(tmp_path):
    out = str(tmp_path / "new")
    result = files.generate_task_files([], "master", out)
    assert result == {"message": "Successfully generated 0 task file(s)", "count": 0, "directory": out,
                      "orphanedFilesRemoved": 0}
    assert os.listdir(out) == []


def test_generate_into_an_unwritable_place_is_a_task_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TaskError, match="Failed to generate task files"):
        files.generate_task_files(sample_tasks(), "master", str(blocker / "sub"))


def test_task_file_names_stay_inside_the_directory_whatever_the_tag():
    assert files.task_filename(7, "master") == "task_007.md"
    assert files.task_filename(1234, "feat_1") == "task_1234_feat_1.md"
    assert files.task_filename(1, "../../evil") == "task_001_------evil.md"


def test_export_speaks_task_masters_dependency_dialect_and_round_trips_exactly():
    view = ProjectView.from_plain("/p", {"master": {"tasks": sample_tasks()}})
    exported = files.export_project(view)["master"]["tasks"][1]["subtasks"][1]
    # Sibling "2.1" is written as Task Master writes it (bare 1); the task dependency 3 cannot be
    # said unambiguously in that format, so the exact list rides along in tmDependencies.
    assert exported["dependencies"] == [1, "3.1", 3]
    assert exported[files.EXACT_DEPS] == ["2.1", "3.1", 3]
    assert files.EXACT_DEPS not in files.export_project(view)["master"]["tasks"][1]["subtasks"][0]
    assert view.task("master", 2)["subtasks"][1]["dependencies"] == ["2.1", "3.1", 3]  # cache untouched


async def test_export_then_import_keeps_subtask_dependencies_on_tasks(tmp_path, importing):
    source = ProjectView.from_plain("/p", {"master": {"tasks": sample_tasks()}})
    root = project(tmp_path)
    put(root, files.TASKS_FILE, files.export_project(source))
    imported = importing.view(root).task("master", 2)["subtasks"][1]
    assert imported["dependencies"] == [3, "2.1", "3.1"]  # stored as a set: numbers first
    assert files.EXACT_DEPS not in imported
