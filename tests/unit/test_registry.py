"""The tool registry: tiers, argument validation messages, projectRoot normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskmaster.tools import registry
from taskmaster.tools.schema import validate

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "tools_list.json"


@pytest.fixture(scope="module")
def tools():
    return registry.load_all()


def test_all_44_tools_match_the_reference_schemas(tools):
    if not REFERENCE.exists():
        pytest.skip("reference tools_list.json not beside the checkout")
    ref = {t["name"]: t for t in json.loads(REFERENCE.read_text())["tools"]}
    # get_operation_status is ours: the reference has the file but never registers it
    assert set(tools) == set(ref) | {"get_operation_status"} and len(tools) == 45
    for name, spec in ref.items():
        ours = tools[name].input_schema
        extra = set(ours["properties"]) - set(spec["inputSchema"]["properties"])
        # get_tasks paging, next_task claims and async AI operations are ours, documented
        assert extra <= {"fields", "limit", "offset", "claim", "agent", "leaseSeconds", "async"}, name
        assert {k: ours["properties"][k] for k in spec["inputSchema"]["properties"]} == \
            spec["inputSchema"]["properties"], name
        assert ours.get("required") == spec["inputSchema"].get("required"), name
        assert tools[name].annotations == spec.get("annotations", {}), name


@pytest.mark.parametrize("spec,expected", [
    (None, "core"), ("", "core"), ("lean", "core"), ("core", "core"), ("standard", "standard"),
    ("ALL", "all"),
])
def test_tiers(spec, expected):
    assert registry.select(spec) == registry.TIERS[expected]


def test_custom_tool_list_is_normalised_and_falls_back_to_all():
    assert registry.select("get-tasks, Next_Task,response_language,nope") == \
        ["get_tasks", "next_task", "response-language"]
    assert registry.select("nope,also-nope") == registry.TIERS["all"]
    assert len(registry.TIERS["core"]) == 7 and len(registry.TIERS["standard"]) == 15  # + get_operation_status


def test_validation_messages_name_the_field(tools):
    schema = tools["set_task_status"].input_schema
    _, issues = validate(schema, {"id": "1", "status": "urgent", "projectRoot": "/p"})
    assert issues == ['status: Invalid option: expected one of "pending"|"in-progress"|"done"|'
                      '"deferred"|"cancelled"|"blocked"|"review"']
    _, issues = validate(schema, {"id": 1, "status": "done"})
    assert issues == ["id: Invalid input: expected string, received number",
                      "projectRoot: Invalid input: expected string, received undefined"]
    _, issues = validate(schema, {"id": "", "status": "done", "projectRoot": "/p"})
    assert issues == ["id: Too small: expected string to have >=1 characters"]
    _, issues = validate(schema, ["not", "an", "object"])
    assert issues == ["arguments: Invalid input: expected object, received array"]


def test_validation_fills_defaults_drops_unknown_and_checks_bounds(tools):
    schema = tools["analyze_project_complexity"].input_schema
    args, issues = validate(schema, {"projectRoot": "/p", "surprise": 1})
    assert issues == [] and args == {"projectRoot": "/p", "threshold": 5, "research": False}
    _, issues = validate(schema, {"projectRoot": "/p", "threshold": 11, "from": 0})
    assert issues == ["threshold: Too big: expected number to be <=10",
                      "from: Too small: expected number to be >0"]
    _, issues = validate(schema, {"projectRoot": "/p", "threshold": 2.5})
    assert issues == ["threshold: Invalid input: expected int, received number"]
    rules = tools["rules"].input_schema
    _, issues = validate(rules, {"action": "add", "profiles": [], "projectRoot": "/p"})
    assert issues == ["profiles: Too small: expected array to have >=1 items"]
    _, issues = validate(rules, {"action": "add", "profiles": ["emacs"], "projectRoot": "/p"})
    assert issues[0].startswith('profiles.0: Invalid option: expected one of "amp"')


@pytest.mark.parametrize("raw,expected", [
    ("/home/me/proj", "/home/me/proj"),
    ("/home/me/proj/", "/home/me/proj"),
    ("file:///home/me/my%20proj", "/home/me/my proj"),
    ("/home/me/a/../proj", "/home/me/proj"),
])
def test_project_root_normalisation(raw, expected):
    assert registry.normalize_root(raw) == expected
