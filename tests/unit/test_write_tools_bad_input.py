"""The write tools through registry.call_tool: bad input gets a clear error and changes nothing;
good input reaches the domain functions with every argument."""

from __future__ import annotations

import json

import pytest

from taskmaster.tasks.ids import ID_FORMAT_ERROR
from taskmaster.tasks.state import copy_json
from taskmaster.tools import registry, tasks_write  # noqa: F401  (registers the tools)
from taskmaster.tools.registry import ParamError, ToolContext
from tests.conftest import ROOT

# A valid call of every tool; each bad-input case spoils one thing.
VALID = {
    "set_task_status": {"id": "1", "status": "done"},
    "add_task": {"title": "New", "description": "Thing"},
    "add_subtask": {"id": "1", "title": "Sub"},
    "remove_task": {"id": "1"},
    "remove_subtask": {"id": "2.1"},
    "clear_subtasks": {"id": "2"},
    "move_task": {"from": "1", "to": "9"},
}
ID_FIELDS = {
    "set_task_status": ["id"], "add_task": ["dependencies"], "add_subtask": ["id", "taskId", "dependencies"],
    "remove_task": ["id"], "remove_subtask": ["id"], "clear_subtasks": ["id"], "move_task": ["from", "to"],
}
MALFORMED = ["1..2", "-3", "abc", "1.2.3", "1,,2", "2.", "0"]
# Ids that are well formed but name nothing (a tool error, not a schema error).
UNKNOWN = {
    "set_task_status": {"id": "99"}, "add_subtask": {"id": "99"}, "remove_task": {"id": "99"},
    "remove_subtask": {"id": "2.9"}, "move_task": {"from": "99"},
}


def seed(tx):
    tx.add("master", {"id": 1, "title": "One", "description": "", "status": "pending", "dependencies": []})
    tx.add("master", {"id": 2, "title": "Two", "description": "", "status": "pending", "dependencies": [1],
                      "subtasks": [{"id": 1, "title": "S", "description": "", "details": "",
                                    "status": "pending", "dependencies": []}]})


@pytest.fixture
async def seeded(service):
    await service.write(ROOT, seed)
    return service


def snapshot(service):
    view = service.view(ROOT)
    return ({t: copy_json(view.tasks(t)) for t in view.tag_names()}, copy_json(view.state),
            {t: copy_json(view.metadata(t)) for t in view.tag_names()})


async def call(service, name, args):
    return await registry.call_tool(name, {"projectRoot": ROOT, **args}, None,
                                    lambda root: ToolContext(service=service, root=root))


async def assert_param_error(service, name, args, *needles):
    before = snapshot(service)
    with pytest.raises(ParamError) as err:
        await call(service, name, args)
    text = str(err.value)
    assert text.startswith(f"Tool '{name}' parameter validation failed: ")
    for needle in needles:
        assert needle in text
    assert snapshot(service) == before


async def assert_tool_error(service, name, args, needle):
    before = snapshot(service)
    result = await call(service, name, args)
    assert result.get("isError") is True, result
    assert result["content"][0]["text"].startswith("Error: ") and needle in result["content"][0]["text"]
    assert snapshot(service) == before


@pytest.mark.parametrize("name", sorted(VALID))
async def test_wrong_types(seeded, name):
    for field in [*ID_FIELDS[name], "tag"]:
        await assert_param_error(seeded, name, {**VALID[name], field: 7},
                                 f"{field}: Invalid input: expected string, received number")
    await assert_param_error(seeded, name, {**VALID[name], "projectRoot": ["x"]}, "projectRoot")


@pytest.mark.parametrize("name", sorted(VALID))
async def test_missing_required_fields(seeded, name):
    await assert_param_error(seeded, name, {**VALID[name], "projectRoot": None},
                             "projectRoot: Invalid input: expected string, received undefined")
    required = [k for k in registry.TOOLS[name].input_schema.get("required", []) if k != "projectRoot"]
    for field in required:
        args = {k: v for k, v in VALID[name].items() if k != field}
        await assert_param_error(seeded, name, args, f"{field}: Invalid input: expected")


@pytest.mark.parametrize("name", sorted(VALID))
async def test_malformed_ids(seeded, name):
    for field in ID_FIELDS[name]:
        for bad in MALFORMED:
            await assert_param_error(seeded, name, {**VALID[name], field: bad}, f"{field}: {ID_FORMAT_ERROR}")


@pytest.mark.parametrize("name", sorted(UNKNOWN))
async def test_unknown_ids(seeded, name):
    await assert_tool_error(seeded, name, {**VALID[name], **UNKNOWN[name]}, "99" if name != "remove_subtask"
                            else "Subtask 2.9 not found")


@pytest.mark.parametrize("name", sorted(VALID))
async def test_unknown_or_invalid_tag(seeded, name):
    for tag in ("nope", "bad name!", "../etc"):
        await assert_tool_error(seeded, name, {**VALID[name], "tag": tag}, f"Tag '{tag}' does not exist")


async def test_tool_specific_bad_input(seeded):
    await assert_param_error(seeded, "set_task_status", {"id": "1", "status": "urgent"}, "status: Invalid option")
    await assert_param_error(seeded, "clear_subtasks", {}, "Either 'id' or 'all' parameter must be provided")
    await assert_param_error(seeded, "clear_subtasks", {"id": " "}, "Either 'id' or 'all'")
    await assert_param_error(seeded, "remove_subtask", {"id": "2.1", "convert": "yes"},
                             "convert: Invalid input: expected boolean, received string")
    await assert_tool_error(seeded, "add_task", {"title": "only"}, "Either the prompt parameter or both")
    await assert_tool_error(seeded, "add_task", {"prompt": " "}, "Either the prompt parameter or both")
    await assert_tool_error(seeded, "add_subtask", {"id": "1"}, "Either taskId or title must be provided")
    await assert_tool_error(seeded, "add_subtask", {"id": "2.1", "title": "x"}, "Invalid parent task ID: 2.1")
    await assert_tool_error(seeded, "add_subtask", {"id": "1", "taskId": "98"}, "Task with ID 98 not found")
    await assert_tool_error(seeded, "remove_subtask", {"id": "2"}, "Invalid subtask ID format: 2.")
    await assert_tool_error(seeded, "move_task", {"from": "1"}, "Destination ID is required")
    await assert_tool_error(seeded, "move_task", {"from": "1", "to": "40,41"}, "must match")
    await assert_tool_error(seeded, "move_task", {"from": "1", "fromTag": "nope", "toTag": "x"},
                            'Source tag "nope" not found')
    await assert_tool_error(seeded, "set_task_status", {"id": "1,99", "status": "done"}, "99")


# ---- good input reaches the domain ---------------------------------------------------------------
def data_of(result):
    assert not result.get("isError"), result
    body = json.loads(result["content"][0]["text"])
    assert body["tag"] == "master" and set(body) == {"data", "version", "tag"}
    return body["data"]


async def test_every_tool_passes_its_arguments(seeded):
    s = seeded
    d = data_of(await call(s, "add_task", {"title": "T", "description": "D", "details": "x", "testStrategy": "y",
                                           "priority": "high", "dependencies": "1, 2.1"}))
    new = s.view(ROOT).task("master", 3)
    assert (new["details"], new["testStrategy"], new["priority"]) == ("x", "y", "high")
    assert d["taskId"] == 3 and new["dependencies"] == [1, "2.1"]
    d = data_of(await call(s, "add_subtask", {"id": "1", "title": "S", "description": "sd", "details": "sx",
                                              "status": "in-progress", "dependencies": "2.1", "taskId": ""}))
    assert d["subtask"] == {"id": 1, "title": "S", "description": "sd", "details": "sx",
                            "status": "in-progress", "dependencies": ["2.1"], "parentTaskId": 1}
    d = data_of(await call(s, "set_task_status", {"id": "1.1", "status": "done"}))
    assert d["tasks"][0]["taskId"] == "1.1" and s.view(ROOT).task("master", 1)["status"] == "done"
    d = data_of(await call(s, "add_subtask", {"id": "1", "taskId": "3"}))
    assert d["subtask"]["id"] == 2 and s.view(ROOT).task("master", 3) is None
    d = data_of(await call(s, "move_task", {"from": "1.2", "to": "7", "fromTag": "master", "toTag": "master"}))
    assert d["movedItem"]["id"] == 7
    d = data_of(await call(s, "move_task", {"from": "7", "fromTag": "master", "toTag": "later",
                                            "ignoreDependencies": True}))
    assert d["movedTasks"] == [{"id": 7, "fromTag": "master", "toTag": "later"}]
    d = data_of(await call(s, "remove_subtask", {"id": "2.1", "convert": True}))
    assert d["task"]["id"] == 3  # task 7 left master: the highest id there is 2 again
    d = data_of(await call(s, "clear_subtasks", {"all": True, "id": ""}))
    assert [t["id"] for t in d["tasksCleared"]] == [1, 2, 3]
    d = data_of(await call(s, "remove_task", {"id": "3, 1"}))
    assert d["successful"] == 2 and [t["id"] for t in s.view(ROOT).tasks("master")] == [2]
