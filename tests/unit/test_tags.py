"""Tag tools: pure domain functions, the real TaskService, git branches, and bad input via the registry."""

from __future__ import annotations

import re
import subprocess

import orjson
import pytest

from taskmaster.tasks import tags
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.state import copy_json
from taskmaster.tools import tags as _tools  # noqa: F401  (registers the tools)
from taskmaster.tools.registry import ParamError, ToolContext, call_tool
from tests.conftest import ROOT, make_tx

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LOCALE_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")


def task(tid, status="pending", subtasks=()):
    return {"id": tid, "title": f"T{tid}", "description": "", "status": status, "dependencies": [],
            "subtasks": [{"id": i + 1, "title": "s", "status": s, "dependencies": []}
                         for i, s in enumerate(subtasks)]}


def project(state=None):
    return make_tx({
        "master": {"tasks": [task(1, "done"), task(2, subtasks=["done", "pending"]), task(3)]},
        "feature": {"tasks": [task(1, "in-progress")],
                    "metadata": {"created": "2026-01-01T00:00:00.000Z", "description": "feat"}},
        "alpha": {"tasks": []},
    }, state)


# ---- list_tags ---------------------------------------------------------------------------------------
def test_list_tags_puts_current_first_and_counts():
    result = tags.list_tags(project({"currentTag": "feature"}))
    assert [t["name"] for t in result["tags"]] == ["feature", "alpha", "master"]
    assert result["currentTag"] == "feature" and result["totalTags"] == 3
    assert result["message"] == "Found 3 tag(s)"
    master = result["tags"][2]
    assert master == {"name": "master", "isCurrent": False, "taskCount": 3, "completedTasks": 1,
                      "statusBreakdown": {"done": 1, "pending": 2},
                      "subtaskCounts": {"totalSubtasks": 2, "subtasksByStatus": {"done": 1, "pending": 1}},
                      "created": "Unknown", "description": "Tasks live here by default"}
    feature = result["tags"][0]
    assert feature["isCurrent"] and feature["created"] == "2026-01-01T00:00:00.000Z"
    assert result["tags"][1]["description"] == "No description"
    assert "metadata" not in feature


def test_list_tags_with_metadata_and_stale_current_tag():
    result = tags.list_tags(project({"currentTag": "deleted-long-ago"}), show_metadata=True)
    assert result["currentTag"] == "master" and result["tags"][0]["name"] == "master"
    assert result["tags"][2]["metadata"] == {"created": "2026-01-01T00:00:00.000Z", "description": "feat"}


# ---- add_tag -----------------------------------------------------------------------------------------
def test_add_empty_tag_does_not_switch():
    tx = project()
    result = tags.add_tag(tx, "sprint-2_b")
    assert result["tagName"] == "sprint-2_b" and result["created"] is True
    assert result["tasksCopied"] == 0 and result["sourceTag"] is None
    assert LOCALE_DATE.match(result["description"].removeprefix("Tag created on "))
    assert result["message"] == 'Successfully created tag "sprint-2_b"'
    meta = tx.metadata("sprint-2_b")
    assert ISO.match(meta["created"]) and meta["updated"] == meta["created"]
    assert meta["description"] == result["description"]
    assert tx.tasks("sprint-2_b") == [] and tx.current_tag == "master"
    assert not tx.state_changed


def test_add_tag_copying_current_or_named_tag_copies_deeply():
    tx = project({"currentTag": "master"})
    result = tags.add_tag(tx, "copy", copy_from_current=True, description="mine")
    assert (result["tasksCopied"], result["sourceTag"], result["description"]) == (3, "master", "mine")
    assert tx.tasks("copy") == tx.tasks("master")
    assert tx.tasks("copy")[1] is not tx.tasks("master")[1]
    assert tx.tasks("copy")[1]["subtasks"] is not tx.tasks("master")[1]["subtasks"]
    named = tags.add_tag(tx, "from-feature", copy_from_tag="feature")
    assert named["tasksCopied"] == 1 and named["sourceTag"] == "feature" and "warning" not in named


@pytest.mark.parametrize("source", ["alpha", "ghost"])
def test_add_tag_from_empty_or_missing_source_warns(source):
    tx = project()
    result = tags.add_tag(tx, "x", copy_from_tag=source)
    assert result["tasksCopied"] == 0
    assert result["warning"] == f'Source tag "{source}" not found or has no tasks'
    assert tx.has_tag("x")


@pytest.mark.parametrize("name", ["", "a b", "a/b", "tag.1", "über", "x\n", " x", "a;rm"])
def test_add_tag_refuses_invalid_names(name):
    tx = project()
    with pytest.raises(TaskError, match=r"Tag name can only contain letters, numbers, hyphens, and "
                                        r"underscores \(name: "):
        tags.add_tag(tx, name)
    assert tx.work == {}


@pytest.mark.parametrize("name", ["master", "Master", "MAIN", "default"])
def test_add_tag_refuses_reserved_names(name):
    with pytest.raises(TaskError, match=f'"{name}" is a reserved tag name'):
        tags.add_tag(project(), name)


def test_add_existing_tag_is_an_error():
    with pytest.raises(TaskError, match='Tag "feature" already exists'):
        tags.add_tag(project(), "feature")


# ---- branches ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("branch", "name"), [
    ("feature/Login.Page", "feature-login-page"),
    ("--fix//it--", "fix-it"),
    ("JIRA-12_x", "jira-12_x"),
    ("a" * 80, "a" * 50),
])
def test_tag_name_for_branch(branch, name):
    assert tags.tag_name_for_branch(branch) == name


@pytest.mark.parametrize("branch", ["main", "Master", "develop", "dev", "HEAD", "///"])
def test_branches_that_make_no_tag(branch):
    with pytest.raises(TaskError, match="cannot be converted to a valid tag name"):
        tags.tag_name_for_branch(branch)


def test_add_tag_from_branch_records_the_mapping():
    tx = project()
    result = tags.add_tag_from_branch(tx, "feature/Login")
    assert result["branchName"] == "feature/Login" and result["tagName"] == "feature-login"
    assert result["mappingUpdated"] is True and result["created"] is True
    assert result["description"] == 'Tag created from git branch "feature/Login"'
    assert result["message"] == 'Successfully created tag "feature-login" from git branch "feature/Login"'
    assert tx.state["branchTagMapping"] == {"feature/Login": "feature-login"}
    assert tx.has_tag("feature-login") and tx.current_tag == "master"


def git_repo(path, branch):
    subprocess.run(["git", "init", "-q", "-b", branch, str(path)], check=True)
    return str(path)


def test_current_branch_inside_and_outside_git(tmp_path):
    repo = git_repo(tmp_path / "repo", "feature/x")
    assert tags.current_branch(repo) == "feature/x"
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(TaskError, match="Not in a git repository"):
        tags.current_branch(str(plain))


# ---- delete_tag --------------------------------------------------------------------------------------
def test_delete_tag_reports_and_removes():
    tx = project()
    assert tags.delete_tag(tx, "feature") == {
        "tagName": "feature", "deleted": True, "tasksDeleted": 1, "wasCurrentTag": False,
        "switchedToMaster": False, "message": 'Successfully deleted tag "feature"'}
    assert not tx.has_tag("feature") and "feature" not in tx.tag_names()
    assert not tx.state_changed


def test_delete_current_tag_switches_to_master():
    tx = project({"currentTag": "feature"})
    result = tags.delete_tag(tx, "feature")
    assert result["wasCurrentTag"] and result["switchedToMaster"]
    assert tx.state["currentTag"] == "master" and ISO.match(tx.state["lastSwitched"])


@pytest.mark.parametrize(("name", "text"), [
    ("master", 'Cannot delete the "master" tag'),
    ("ghost", 'Tag "ghost" does not exist'),
    ("a b", 'Tag name is not valid (name: "a b")'),
])
def test_delete_tag_errors(name, text):
    tx = project()
    with pytest.raises(TaskError, match=re.escape(text)):
        tags.delete_tag(tx, name)
    assert tx.work == {} and not tx.state_changed


# ---- use_tag -----------------------------------------------------------------------------------------
def test_use_tag_switches():
    tx = project()
    result = tags.use_tag(tx, "feature")
    assert result["previousTag"] == "master" and result["currentTag"] == "feature"
    assert result["tagName"] == "feature" and result["switched"] is True and result["taskCount"] == 1
    assert result["message"] == 'Successfully switched to tag "feature"'
    assert result["nextTask"]["id"] == 1  # the in-progress task of "feature"
    assert tags.use_tag(make_tx({"empty": {"tasks": []}}), "empty")["nextTask"] is None
    assert tx.state["currentTag"] == "feature" and ISO.match(tx.state["lastSwitched"])
    assert tx.current_tag == "feature"


def test_use_missing_tag_is_an_error():
    tx = project()
    with pytest.raises(TaskError, match='Tag "ghost" does not exist'):
        tags.use_tag(tx, "ghost")
    assert not tx.state_changed


# ---- rename_tag --------------------------------------------------------------------------------------
def test_rename_tag_moves_everything_and_state_follows():
    tx = make_tx({"master": {"tasks": []},
                  "old": {"tasks": [task(1), task(2)], "metadata": {"description": "d"},
                          "report": {"complexityAnalysis": []}}},
                 {"currentTag": "old"})
    result = tags.rename_tag(tx, "old", "new")
    assert result == {"oldName": "old", "newName": "new", "renamed": True, "taskCount": 2,
                      "wasCurrentTag": True, "isCurrentTag": True,
                      "message": 'Successfully renamed tag from "old" to "new"'}
    assert not tx.has_tag("old") and [t["id"] for t in tx.tasks("new")] == [1, 2]
    meta = tx.metadata("new")
    assert meta["description"] == "d" and meta["renamed"]["from"] == "old" and ISO.match(meta["renamed"]["date"])
    assert tx.report("new") == {"complexityAnalysis": []}
    assert tx.state["currentTag"] == "new"


@pytest.mark.parametrize(("old", "new", "text"), [
    ("master", "x", 'Cannot rename the "master" tag'),
    ("ghost", "x", 'Tag "ghost" does not exist'),
    ("feature", "alpha", 'New tag "alpha" already exists'),
    ("feature", "main", '"main" is a reserved tag name'),
    ("feature", "new name", 'New tag name can only contain letters, numbers, hyphens, and underscores'),
])
def test_rename_tag_errors(old, new, text):
    tx = project()
    with pytest.raises(TaskError, match=re.escape(text)):
        tags.rename_tag(tx, old, new)
    assert tx.work == {} and not tx.state_changed


# ---- copy_tag ----------------------------------------------------------------------------------------
def test_copy_tag_deep_copies_and_does_not_switch():
    tx = project()
    result = tags.copy_tag(tx, "master", "snapshot")
    assert result["sourceName"] == "master" and result["targetName"] == "snapshot"
    assert result["copied"] is True and result["tasksCopied"] == 3
    assert result["description"].startswith('Copy of "master" created on ')
    meta = tx.metadata("snapshot")
    assert meta["copiedFrom"]["tag"] == "master" and ISO.match(meta["copiedFrom"]["date"])
    assert meta["description"] == result["description"] and ISO.match(meta["created"])
    assert tx.tasks("snapshot") == tx.tasks("master")
    assert all(a is not b for a, b in zip(tx.tasks("snapshot"), tx.tasks("master"), strict=True))
    assert tx.current_tag == "master" and not tx.state_changed
    assert tags.copy_tag(tx, "feature", "f2", "custom")["description"] == "custom"


@pytest.mark.parametrize(("src", "dst", "text"), [
    ("ghost", "x", 'Source tag "ghost" does not exist'),
    ("master", "feature", 'Target tag "feature" already exists'),
    ("master", "Default", '"Default" is a reserved tag name'),
    ("master", "a.b", 'Target tag name can only contain'),
])
def test_copy_tag_errors(src, dst, text):
    tx = project()
    with pytest.raises(TaskError, match=re.escape(text)):
        tags.copy_tag(tx, src, dst)
    assert tx.work == {}


# ---- through the real service and the registry ------------------------------------------------------
async def seed(service, root=ROOT):
    def fill(tx):
        tx.add("master", task(1, "done"))
        tx.add("master", task(2))
        tags.add_tag(tx, "feature")
        tx.add("feature", task(1))
    await service.write(root, fill)


def snapshot(service, root=ROOT):
    view = service.view(root)
    return copy_json({"tags": {t: view.tasks(t) for t in view.tag_names()}, "state": view.state,
                      "meta": {t: view.metadata(t) for t in view.tag_names()}})


async def call(service, tool, /, root=ROOT, **args):
    """The tool's body, or the error text for a tool error."""
    result = await call_tool(tool, {"projectRoot": root, **args}, None, lambda r: ToolContext(service, r))
    text = result["content"][0]["text"]
    return text if result.get("isError") else orjson.loads(text)


async def test_tag_lifecycle_through_the_service(service):
    await seed(service)
    listed = await call(service, "list_tags")
    assert [t["name"] for t in listed["data"]["tags"]] == ["master", "feature"]
    copied = await call(service, "copy_tag", sourceName="master", targetName="snap")
    assert copied["data"]["tasksCopied"] == 2
    used = await call(service, "use_tag", name="snap")
    assert used["tag"] == "snap" and used["data"]["previousTag"] == "master"
    assert service.view(ROOT).current_tag == "snap"
    renamed = await call(service, "rename_tag", oldName="snap", newName="snap2")
    assert renamed["data"]["wasCurrentTag"] and service.view(ROOT).current_tag == "snap2"
    assert [t["id"] for t in service.view(ROOT).tasks("snap2")] == [1, 2]
    deleted = await call(service, "delete_tag", name="snap2")
    assert deleted["data"]["switchedToMaster"] and deleted["tag"] == "master"
    assert service.view(ROOT).tag_names() == ["feature", "master"]
    added = await call(service, "add_tag", name="snap2", copyFromTag="feature")
    assert added["data"]["tasksCopied"] == 1  # a deleted name can be used again
    assert [t["id"] for t in service.view(ROOT).tasks("snap2")] == [1]


async def test_add_tag_from_branch_through_the_tool(service, tmp_path):
    repo = git_repo(tmp_path / "repo", "feature/Login")
    body = await call(service, "add_tag", root=repo, name="ignored", fromBranch=True)
    assert body["data"]["tagName"] == "feature-login"
    assert service.view(repo).state["branchTagMapping"] == {"feature/Login": "feature-login"}
    plain = tmp_path / "plain"
    plain.mkdir()
    before = snapshot(service, str(plain))
    answer = await call(service, "add_tag", root=str(plain), name="x", fromBranch=True)
    assert answer.startswith("Error: Not in a git repository. Cannot use fromBranch option.")
    assert snapshot(service, str(plain)) == before


@pytest.mark.parametrize(("tool", "args", "text"), [
    ("add_tag", {"name": "bad name"}, 'Tag name can only contain letters, numbers, hyphens, and underscores'),
    ("add_tag", {"name": ""}, '(name: "")'),
    ("add_tag", {"name": "MASTER"}, '"MASTER" is a reserved tag name'),
    ("add_tag", {"name": "feature"}, 'Tag "feature" already exists'),
    ("delete_tag", {"name": "master"}, 'Cannot delete the "master" tag'),
    ("delete_tag", {"name": "ghost"}, 'Tag "ghost" does not exist'),
    ("delete_tag", {"name": "../etc"}, 'Tag name is not valid (name: "../etc")'),
    ("use_tag", {"name": "ghost"}, 'Tag "ghost" does not exist'),
    ("use_tag", {"name": "no way"}, 'Tag name is not valid (name: "no way")'),
    ("rename_tag", {"oldName": "master", "newName": "x"}, 'Cannot rename the "master" tag'),
    ("rename_tag", {"oldName": "feature", "newName": "a/b"}, '(newName: "a/b")'),
    ("rename_tag", {"oldName": "fe ature", "newName": "b"}, '(oldName: "fe ature")'),
    ("copy_tag", {"sourceName": "feature", "targetName": "x y"}, '(targetName: "x y")'),
    ("copy_tag", {"sourceName": "nope!", "targetName": "ok"}, '(sourceName: "nope!")'),
    ("copy_tag", {"sourceName": "feature", "targetName": "master"}, '"master" is a reserved tag name'),
])
async def test_tool_errors_leave_state_unchanged(service, tool, args, text):
    await seed(service)
    before = snapshot(service)
    answer = await call(service, tool, **args)
    assert isinstance(answer, str) and answer.startswith("Error: ") and text in answer
    assert snapshot(service) == before


@pytest.mark.parametrize(("tool", "args", "text"), [
    ("add_tag", {"name": 5}, "name: Invalid input: expected string, received number"),
    ("add_tag", {}, "name: Invalid input: expected string, received undefined"),
    ("add_tag", {"name": "x", "copyFromCurrent": "yes"}, "copyFromCurrent: Invalid input: expected boolean"),
    ("add_tag", {"name": "x", "fromBranch": 1}, "fromBranch: Invalid input: expected boolean"),
    ("delete_tag", {"name": ["feature"]}, "name: Invalid input: expected string, received array"),
    ("use_tag", {}, "name: Invalid input: expected string, received undefined"),
    ("rename_tag", {"oldName": "feature"}, "newName: Invalid input: expected string, received undefined"),
    ("rename_tag", {"oldName": 1, "newName": "x"}, "oldName: Invalid input: expected string, received number"),
    ("copy_tag", {"sourceName": "feature", "targetName": None},
     "targetName: Invalid input: expected string, received undefined"),
    ("list_tags", {"showMetadata": "true"}, "showMetadata: Invalid input: expected boolean, received string"),
])
async def test_schema_violations_are_param_errors(service, tool, args, text):
    await seed(service)
    before = snapshot(service)
    with pytest.raises(ParamError, match=re.escape(text)):
        await call(service, tool, **args)
    assert snapshot(service) == before
