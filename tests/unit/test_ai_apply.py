"""The AI tools' write rules (tasks/ai_*.py) on plain transactions: how a model's validated answer
is applied — id remapping, dependency filtering, force/append, status and done-subtask
preservation, the complexity report, research saving — and that refused answers change nothing."""

from __future__ import annotations

from datetime import datetime

import pytest

from taskmaster.tasks import ai_complexity, ai_create, ai_expand, ai_research, ai_scope, ai_update
from taskmaster.tasks.ai_context import info_block, related, replace_subtasks, whole_number
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.ids import Ref
from taskmaster.tasks.state import copy_json
from taskmaster.tasks.tags import locale_date
from tests.conftest import make_tx

TS = "2026-01-02T03:04:05.000Z"


def task(i, deps=(), subs=(), status="pending", **extra):
    return {"id": i, "title": f"Task {i}", "description": f"About {i}", "details": f"Details {i}",
            "testStrategy": f"Test {i}", "status": status, "priority": "medium", "dependencies": list(deps),
            "subtasks": list(subs), **extra}


def sub(i, status="pending", deps=(), **extra):
    return {"id": i, "title": f"Sub {i}", "description": f"Sub about {i}", "details": "", "status": status,
            "dependencies": list(deps), **extra}


def tx_with(*tasks, report=None, **other_tags):
    tags = {"master": {"tasks": list(tasks), "report": report}}
    tags.update({name: {"tasks": ts} for name, ts in other_tags.items()})
    return make_tx(tags)


def answer_task(i, deps=(), **extra):
    return {"id": i, "title": f"New {i}", "description": f"Does {i}", "details": "", "testStrategy": "",
            "priority": None, "dependencies": list(deps), "status": "pending", **extra}


def answer_sub(i, deps=(), **extra):
    return {"id": i, "title": f"Step {i}", "description": f"Step {i} does", "details": f"How {i}",
            "dependencies": list(deps), "status": "pending", "testStrategy": None, **extra}


def ids(tx, tag="master"):
    return [t["id"] for t in tx.tasks(tag)]


# ---- shared helpers ------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [(None, 7), ("", 7), (" ", 7), ("0", 0), (" 12 ", 12), (3, 3)])
def test_whole_number_reads_blank_as_the_default(value, expected):
    assert whole_number(value, "num", 0, 50, 7) == expected


@pytest.mark.parametrize("value", ["abc", "-1", "51", "1.5", "1e3"])
def test_whole_number_names_the_field_when_out_of_range(value):
    with pytest.raises(TaskError, match=r"Invalid num: .*whole number from 0 to 50"):
        whole_number(value, "num", 0, 50, 7)


def test_related_ranks_by_shared_words_then_order():
    items = [{"id": 1, "title": "Login page"}, {"id": 2, "title": "Login API", "description": "user login tokens"},
             {"id": 3, "title": "Billing"}, {"id": 4, "title": "User login audit"}]
    assert [t["id"] for t in related(items, "user login", 5)] == [2, 4, 1]
    assert [t["id"] for t in related(items, "user login", 1, frozenset({2}))] == [4]
    assert related(items, "an of", 5) == []


def test_replace_subtasks_keeps_the_dict_of_ids_that_stay():
    tx = tx_with(task(1, subs=[sub(1), sub(2)]))
    mine = tx.find("master", 1)
    first, second = mine["subtasks"]
    replace_subtasks(mine, [{**sub(2), "title": "renamed"}, sub(3)])
    assert mine["subtasks"][0] is second and second["title"] == "renamed"
    assert [s["id"] for s in mine["subtasks"]] == [2, 3] and first not in mine["subtasks"]


# ---- parse_prd -----------------------------------------------------------------------------------
def test_prd_tasks_are_numbered_in_answer_order_with_only_earlier_dependencies():
    raw = [answer_task(7), answer_task(3, deps=[7, 3, 99]), answer_task(5, deps=[3, 8], status="done"),
           answer_task(8, deps=[5, 7], priority="high", status="bogus")]
    tasks = ai_create.number_prd_tasks(raw, 11, "low")
    assert [t["id"] for t in tasks] == [11, 12, 13, 14]
    # 3 -> 12 keeps 7 -> 11; drops itself and unknown 99. 5 -> 13 keeps 12; drops 8 (a later task).
    assert [t["dependencies"] for t in tasks] == [[], [11], [12], [11, 13]]
    assert [t["status"] for t in tasks] == ["pending", "pending", "done", "pending"]
    assert [t["priority"] for t in tasks] == ["low", "low", "low", "high"]
    assert all(t["subtasks"] == [] for t in tasks)


def test_prd_into_a_tag_with_tasks_is_refused_without_force_or_append():
    tx = tx_with(task(1), task(2))
    with pytest.raises(TaskError, match=r"^Tag 'master' already contains 2 tasks. Use --force to overwrite or "
                                        r"--append to add to existing tasks.$"):
        ai_create.apply_prd(tx, "master", [answer_task(1)], append=False, force=False)
    assert not tx.work


def test_prd_force_replaces_and_numbers_after_the_old_highest_id():
    tx = tx_with(task(1), task(4))
    new = ai_create.apply_prd(tx, "master", [answer_task(1), answer_task(2, deps=[1])], append=False, force=True)
    assert ids(tx) == [5, 6] == [t["id"] for t in new]
    assert tx.task("master", 6)["dependencies"] == [5]


@pytest.mark.parametrize("force", [False, True])
def test_prd_append_continues_ids_and_keeps_the_old_tasks(force):
    tx = tx_with(task(1), task(2, deps=[1]))
    ai_create.apply_prd(tx, "master", [answer_task(1), answer_task(2, deps=[1])], append=True, force=force)
    assert ids(tx) == [1, 2, 3, 4]
    assert tx.task("master", 2)["dependencies"] == [1] and tx.task("master", 4)["dependencies"] == [3]


def test_prd_creates_a_missing_tag_and_refuses_invalid_names():
    tx = tx_with(task(1))
    ai_create.apply_prd(tx, "feature-x", [answer_task(1)], append=False, force=False)
    assert ids(tx, "feature-x") == [1] and ids(tx) == [1]
    assert tx.metadata("feature-x")["description"] == "Tasks for feature-x context"
    for bad, message in (("bad name!", "can only contain letters"), ("main", "reserved")):
        fresh = tx_with()
        with pytest.raises(TaskError, match=message):
            ai_create.apply_prd(fresh, bad, [answer_task(1)], append=False, force=False)
        assert not fresh.work


# ---- add_task ------------------------------------------------------------------------------------
def test_new_task_keeps_named_and_proposed_dependencies_that_exist():
    tx = tx_with(task(1), task(2, subs=[sub(1)]), task(3))
    answer = {"title": " Audit log ", "description": "Record changes", "details": "d", "testStrategy": "t",
              "dependencies": [3, 42]}
    new = ai_create.apply_new_task(tx, "master", answer, requested=[Ref(1), Ref(2, 1), Ref(9), Ref(2, 5)],
                                   priority="HIGH")
    assert new == {"id": 4, "title": "Audit log", "description": "Record changes", "details": "d",
                   "testStrategy": "t", "status": "pending", "dependencies": [1, 3, "2.1"], "priority": "high",
                   "subtasks": []}
    assert tx.task("master", 4) == new
    assert ai_create.apply_new_task(tx, "master", answer, requested=[], priority="urgent")["priority"] == "medium"


# ---- expand --------------------------------------------------------------------------------------
def test_expandable_task_refuses_missing_and_done_tasks():
    tx = tx_with(task(1, status="done"), task(2, status="completed"))
    with pytest.raises(TaskError, match="^Task with ID 9 not found$"):
        ai_expand.expandable_task(tx, "master", 9)
    with pytest.raises(TaskError, match="^Task 1 is already marked as done and cannot be expanded$"):
        ai_expand.expandable_task(tx, "master", 1)
    with pytest.raises(TaskError, match="completed"):
        ai_expand.expandable_task(tx, "master", 2)


@pytest.mark.parametrize("text", ["4.1", "1,2"])
def test_task_ref_takes_one_task(text):
    with pytest.raises(TaskError, match="Expected a single task ID"):
        ai_expand.task_ref(text)


def test_subtask_count_prefers_num_then_the_report_then_the_default():
    report = {"complexityAnalysis": [{"taskId": "2", "recommendedSubtasks": 7}, {"taskId": 3}]}
    assert ai_expand.subtask_count(0, report, 2, 5) == 0
    assert ai_expand.subtask_count(None, report, 2, 5) == 7
    assert ai_expand.subtask_count(None, report, 3, 5) == 5
    assert ai_expand.subtask_count(None, None, 2, 4) == 4


def test_numbered_subtasks_keep_only_earlier_sibling_dependencies_and_respect_the_limit():
    raw = [answer_sub(5), answer_sub(6, deps=[5, 6, 7]), answer_sub(7, deps=[6, 2, 40]), answer_sub(8)]
    subs = ai_expand.number_subtasks(raw, parent=4, start=3, limit=3, siblings=frozenset({2}))
    assert [s["id"] for s in subs] == [3, 4, 5]
    assert [s["dependencies"] for s in subs] == [[], ["4.3"], ["4.2", "4.4"]]
    assert all(s["status"] == "pending" and s["testStrategy"] == "" for s in subs)


def test_expansion_with_force_replaces_subtasks_and_drops_references_to_them():
    tx = tx_with(task(1, subs=[sub(1), sub(2)]), task(2, deps=["1.2", 1]),
                 other=[task(1, subs=[sub(2)]), task(2, deps=["1.2"])])
    expanded, added = ai_expand.apply_expansion(tx, "master", 1, [answer_sub(1), answer_sub(2, deps=[1])],
                                                force=True)
    assert added == 2 and [s["title"] for s in expanded["subtasks"]] == ["Step 1", "Step 2"]
    assert expanded["subtasks"][1]["dependencies"] == ["1.1"]
    assert tx.task("master", 2)["dependencies"] == [1]
    assert tx.task("other", 2)["dependencies"] == ["1.2"]  # another tag's own subtask 1.2


def test_expansion_refuses_a_task_that_got_subtasks_meanwhile():
    tx = tx_with(task(1, subs=[sub(1)]))
    with pytest.raises(TaskError, match="got subtasks while its expansion was being generated"):
        ai_expand.apply_expansion(tx, "master", 1, [answer_sub(1)], force=False)
    assert not tx.work


def test_expand_all_candidates_and_per_task_outcomes():
    tx = tx_with(task(1), task(2, status="in-progress"), task(3, status="done"), task(4, subs=[sub(1)]),
                 task(5, status="blocked"))
    assert [t["id"] for t in ai_expand.expand_all_candidates(tx, "master", False)] == [1, 2]
    assert [t["id"] for t in ai_expand.expand_all_candidates(tx, "master", True)] == [1, 2, 4]
    outcome = ai_expand.apply_expansions(tx, "master", [(1, [answer_sub(1)], 0), (3, [answer_sub(1)], 0),
                                                        (4, [answer_sub(1)], 0), (9, [answer_sub(1)], 0)],
                                         force=False)
    assert outcome["expanded"] == [{"taskId": 1, "subtasksAdded": 1}]
    assert [f["taskId"] for f in outcome["failed"]] == [3, 9] and [s["taskId"] for s in outcome["skipped"]] == [4]
    assert tx.task("master", 4)["subtasks"] == [sub(1)]


# ---- scope ---------------------------------------------------------------------------------------
def test_strength_and_targets_are_checked():
    assert ai_scope.check_strength(None) == "regular"
    with pytest.raises(TaskError, match="^Invalid strength level: huge. Must be one of: light, regular, heavy$"):
        ai_scope.check_strength("huge")
    tx = tx_with(task(1), task(2))
    assert [t["id"] for t in ai_scope.scope_targets(tx, "master", "2, 1,2")] == [2, 1]
    with pytest.raises(TaskError, match="Task with ID 7 not found"):
        ai_scope.scope_targets(tx, "master", "1,7")
    with pytest.raises(TaskError, match="not subtasks: 1.1"):
        ai_scope.scope_targets(tx, "master", "1.1")


@pytest.mark.parametrize(("direction", "strength", "kept", "pending", "score", "expected"), [
    ("up", "light", 0, 2, None, 7),      # ceil(5 * (0.8 + 0.4)) = 7: floats, in JavaScript too
    ("up", "regular", 2, 4, 5, 6),       # ceil(max(6, 2 + 6) * 1.0) = 8, minus 2 kept
    ("up", "heavy", 0, 10, 10, 23),      # ceil(max(8, 16) * 1.4) = 23
    ("down", "light", 1, 4, 6, 4),       # ceil(max(3, 1 + 4) * 0.85) = 5, minus 1 kept
    ("down", "regular", 0, 4, 8, 3),     # ceil(max(3, 2) * 0.7) = 3
    ("down", "heavy", 0, 8, 9, 1),       # max(1, ceil(max(2, 2) * 0.3)) = 1
    ("down", "regular", 5, 1, None, 1),  # never fewer than one new subtask
])
def test_new_subtask_count_follows_the_reference_formula(direction, strength, kept, pending, score, expected):
    assert ai_scope.new_subtask_count(direction, strength, kept, pending, score) == expected


def test_scope_rewrites_fields_and_replaces_only_pending_subtasks():
    subs = [sub(1, "done"), sub(2), sub(3, "in-progress", deps=["4.2"]), sub(4), sub(5, "review")]
    tx = tx_with(task(4, subs=subs, metadata={"k": 1}), task(6, deps=["4.2", "4.3"]))
    kept_dict = tx.task("master", 4)["subtasks"][0]
    answer = {"id": 4, "title": "Smaller", "description": "Less", "status": "done", "details": " ",
              "testStrategy": "Fewer tests", "priority": "low", "dependencies": [99]}
    out = ai_scope.apply_scope(tx, "master", 4, answer, [answer_sub(1), answer_sub(2, deps=[1, 3, 5])])
    assert (out["title"], out["description"], out["details"], out["testStrategy"], out["priority"]) == (
        "Smaller", "Less", "Details 4", "Fewer tests", "low")
    assert out["status"] == "pending" and out["dependencies"] == [] and out["metadata"] == {"k": 1}
    assert [(s["id"], s["status"]) for s in out["subtasks"]] == [(1, "done"), (3, "in-progress"), (5, "review"),
                                                               (6, "pending"), (7, "pending")]
    assert out["subtasks"][4]["dependencies"] == ["4.3", "4.5", "4.6"]
    assert out["subtasks"][1]["dependencies"] == []  # its dependency on replaced 4.2 went with it
    assert tx.task("master", 6)["dependencies"] == ["4.3"]
    assert tx.task("master", 4)["subtasks"][0] is not kept_dict  # a working copy ...
    assert tx.task("master", 4)["subtasks"][0] == kept_dict  # ... of the kept subtask, unchanged


# ---- update, update_task, update_subtask ----------------------------------------------------------
def test_metadata_argument():
    assert ai_update.parse_metadata(None, False) is None and ai_update.parse_metadata(" ", False) is None
    assert ai_update.parse_metadata('{"a": 1}', True) == {"a": 1}
    with pytest.raises(TaskError, match="Metadata updates are disabled. Set TASK_MASTER_ALLOW_METADATA_UPDATES"):
        ai_update.parse_metadata('{"a": 1}', False)
    with pytest.raises(TaskError, match="^Invalid metadata JSON: .*Provide a valid JSON object string.$"):
        ai_update.parse_metadata("{a: 1}", True)
    for text in ("[1]", "null", "3"):
        with pytest.raises(TaskError, match=r"^Invalid metadata: must be a JSON object \(not null or array\)$"):
            ai_update.parse_metadata(text, True)


def test_update_targets_skip_done_tasks_and_earlier_ids():
    tx = tx_with(task(1), task(2, status="done"), task(3, status="cancelled"), task(4, status="completed"), task(5))
    assert [t["id"] for t in ai_update.update_targets(tx, "master", 2)] == [3, 5]


def test_rewrite_keeps_id_status_and_fields_the_model_left_empty():
    tx = tx_with(task(1), task(2, deps=[1], metadata={"x": 1}, updatedAt="then"), task(3, deps=[2]))
    answer = {"id": 77, "title": "Renamed", "description": "New words", "status": "done", "details": "",
              "testStrategy": None, "priority": "critical", "dependencies": [1, 3, 2, 99, "2.1", "x"]}
    merged = ai_update.merged_task(tx, "master", tx.task("master", 2), answer, "rename it")
    assert merged["id"] == 2 and merged["status"] == "pending" and merged["priority"] == "critical"
    assert (merged["title"], merged["description"], merged["details"], merged["testStrategy"]) == (
        "Renamed", "New words", "Details 2", "Test 2")
    # 3 depends on 2 (a cycle), 2 is itself, 99 and 2.1 do not exist.
    assert merged["dependencies"] == [1]
    assert merged["metadata"] == {"x": 1} and merged["updatedAt"] == "then"
    assert ai_update.merged_task(tx, "master", tx.task("master", 2), answer, "Mark the STATUS done")["status"] == "done"


def test_rewritten_subtasks_are_renumbered_and_done_ones_restored():
    original = task(5, subs=[sub(1, "done", note="keep me"), sub(2), sub(3, "completed"), sub(4)])
    tx = tx_with(original, task(6, deps=["5.4", "5.2"]))
    answered = [{"id": 9, "title": "Rewritten first", "status": "pending"},
                {"id": "5.2", "title": "Second", "dependencies": [1, "5.1", 2, 3, "4.1"], "status": "weird"},
                {"title": ""}, "junk",
                {"id": 3, "title": "Third", "dependencies": ["5.2"], "description": 4}]
    out = ai_update.apply_task_rewrite(tx, "master", 5, {"id": 5, "title": "T", "description": "D",
                                                         "status": "pending", "subtasks": answered}, "p")
    assert [(s["id"], s["title"], s["status"]) for s in out["subtasks"]] == [
        (1, "Sub 1", "done"), (2, "Second", "pending"), (3, "Sub 3", "completed")]
    assert out["subtasks"][0]["note"] == "keep me"
    assert out["subtasks"][1]["dependencies"] == ["5.1"]
    assert tx.task("master", 6)["dependencies"] == ["5.2"]  # 5.4 is gone, with the reference to it


def test_subtasks_repeated_unchanged_keep_their_stored_dependencies():
    # The offline planner repeats the stored subtasks: an int there is a top-level task, not a sibling.
    original = task(5, subs=[sub(1, deps=[3]), sub(2, deps=["5.1", 3, "4.1"])])
    tx = tx_with(task(3), task(4, subs=[sub(1)]), original)
    echo = copy_json(original["subtasks"])
    out = ai_update.apply_task_rewrite(tx, "master", 5, {"id": 5, "title": "T", "description": "D",
                                                         "status": "pending", "subtasks": echo}, "p")
    assert out["subtasks"] == original["subtasks"]
    changed = [{**echo[0], "title": "Changed"}, echo[1]]
    out = ai_update.apply_task_rewrite(tx, "master", 5, {"id": 5, "title": "T", "description": "D",
                                                         "status": "pending", "subtasks": changed}, "p")
    assert out["subtasks"][0]["dependencies"] == [] and out["subtasks"][1] == original["subtasks"][1]


def test_rewrite_without_subtasks_keeps_them():
    tx = tx_with(task(5, subs=[sub(1), sub(2, "done")]))
    out = ai_update.apply_task_rewrite(tx, "master", 5, {"id": 5, "title": "T", "description": "D",
                                                         "status": "pending", "subtasks": None}, "p", {"m": 2})
    assert out["subtasks"] == [sub(1), sub(2, "done")] and out["metadata"] == {"m": 2}


def test_rewrite_of_a_task_done_meanwhile_is_refused():
    tx = tx_with(task(5, status="done"))
    with pytest.raises(TaskError, match="was marked done while its update was being generated"):
        ai_update.apply_task_rewrite(tx, "master", 5, {"id": 5, "title": "T", "description": "D",
                                                       "status": "pending"}, "p")
    assert not tx.work


def test_bulk_update_applies_only_asked_open_tasks():
    tx = tx_with(task(1), task(2), task(3, status="done"))
    answers = [{"id": i, "title": f"U{i}", "description": "d", "status": "pending", "dependencies": []}
               for i in (1, 2, 3, 8)]
    updated = ai_update.apply_updates(tx, "master", answers, "p", {2, 3})
    assert [t["id"] for t in updated] == [2]
    assert [t["title"] for t in tx.tasks("master")] == ["Task 1", "U2", "Task 3"]


def test_notes_are_dated_blocks_and_short_requests_mark_the_description():
    tx = tx_with(task(1, subs=[sub(1)]), task(2))
    out = ai_update.apply_task_note(tx, "master", 2, " learned X ", "short", TS, {"a": 1})
    assert out["details"] == "Details 2\n" + info_block("learned X", TS)
    assert info_block("learned X", TS) == f"<info added on {TS}>\nlearned X\n</info added on {TS}>"
    assert out["description"] == f"About 2 [Updated: {locale_date()}]" and out["metadata"] == {"a": 1}
    subtask = ai_update.apply_subtask_note(tx, "master", Ref(1, 1), "Y", "x" * 100, TS)
    assert subtask["details"] == info_block("Y", TS) and subtask["description"] == "Sub about 1"
    only_meta = ai_update.apply_subtask_note(tx, "master", Ref(1, 1), None, "", TS, {"b": 2})
    assert only_meta["metadata"] == {"b": 2} and only_meta["details"] == subtask["details"]


@pytest.mark.parametrize(("text", "message"), [
    ("3", 'Invalid subtask ID format: 3. Subtask ID must be in format "parentId.subtaskId"'),
    ("9.1", "Parent task with ID 9 not found"), ("1.7", "Subtask with ID 1.7 not found")])
def test_subtask_to_update_errors(text, message):
    with pytest.raises(TaskError, match=message):
        ai_update.subtask_to_update(tx_with(task(1, subs=[sub(1)])), "master", text)


# ---- complexity ----------------------------------------------------------------------------------
def entry(i, score=6, **extra):
    return {"taskId": i, "taskTitle": "", "complexityScore": score, "recommendedSubtasks": 4,
            "expansionPrompt": f"split {i}", "reasoning": "because", **extra}


def test_analysis_targets_filters_by_status_ids_and_range():
    tx = tx_with(task(1), task(2, status="done"), task(3, status="blocked"), task(4, status="In-Progress"),
                 task(5, status="deferred"), task(6))
    assert [t["id"] for t in ai_complexity.analysis_targets(tx, "master")] == [1, 3, 4, 6]
    assert [t["id"] for t in ai_complexity.analysis_targets(tx, "master", [6, 2, 1])] == [1, 6]
    assert [t["id"] for t in ai_complexity.analysis_targets(tx, "master", None, 3)] == [3, 4, 6]
    assert [t["id"] for t in ai_complexity.analysis_targets(tx, "master", None, None, 3)] == [1, 3]
    with pytest.raises(TaskError, match="No tasks found in tag 'master'"):
        ai_complexity.analysis_targets(tx_with(), "master")
    with pytest.raises(TaskError, match="not subtasks: 1.2"):
        ai_complexity.parse_task_ids("1,1.2")


def test_analysis_fills_gaps_ignores_strangers_and_merges_with_the_old_report():
    old = {"meta": {}, "complexityAnalysis": [entry("1", 2), entry(2, 9), entry(7, 3), "junk"]}
    tx = tx_with(task(1), task(2), task(3, title="Big Job"), report=old)
    report = ai_complexity.store_analysis(tx, "master", [2, 3], [entry(2, 8), entry(2, 1), entry(5, 4)],
                                          threshold=6, research=True, project_name="proj", now=TS)
    assert report["complexityAnalysis"] == [
        entry("1", 2),  # not analysed, still a task: kept; 7 is no task any more: dropped
        entry(2, 8, taskTitle="Task 2"),
        {"taskId": 3, "taskTitle": "Big Job", "complexityScore": 5, "recommendedSubtasks": 3,
         "expansionPrompt": "Break down this task with a focus on big job.",
         "reasoning": "Automatically added due to missing analysis in AI response."}]
    assert report["meta"] == {"generatedAt": TS, "tasksAnalyzed": 2, "totalTasks": 3, "analysisCount": 3,
                              "thresholdScore": 6, "projectName": "proj", "usedResearch": True}
    assert tx.report("master") is report
    assert ai_complexity.report_summary(report) == {"taskCount": 3, "highComplexityTasks": 1,
                                                    "mediumComplexityTasks": 1, "lowComplexityTasks": 1}


# ---- research ------------------------------------------------------------------------------------
def test_research_items_and_save_target_must_exist():
    tx = tx_with(task(1, subs=[sub(2)]), task(3))
    assert [i["id"] for i in ai_research.research_items(tx, "master", "3,1.2,3")] == [3, "1.2"]
    assert ai_research.research_items(tx, "master", " ") == []
    with pytest.raises(TaskError, match="Task with ID 9 not found"):
        ai_research.research_items(tx, "master", "1,9")
    assert ai_research.save_target(tx, "master", "1.2") == Ref(1, 2)
    with pytest.raises(TaskError, match="Subtask 1.5 not found"):
        ai_research.save_target(tx, "master", "1.5")
    with pytest.raises(TaskError, match="saveTo takes one task or subtask ID"):
        ai_research.save_target(tx, "master", "1,3")


def test_research_saved_into_a_subtask_and_into_a_file():
    now = datetime(2026, 3, 4, 15, 6, 7)
    thread = ai_research.conversation("Which DB?", "Postgres.", now)
    assert thread == (f"## Research Session - {locale_date()} 3:06:07 PM\n\n**Initial Query:** Which DB?\n\n"
                      "**Response:** Postgres.\n\n")
    tx = tx_with(task(1, subs=[sub(2)]))
    saved = ai_research.apply_research_note(tx, "master", Ref(1, 2), thread, TS)
    assert saved["id"] == "1.2" and saved["details"] == info_block(thread, TS)
    assert tx.task("master", 1)["subtasks"][0]["details"] == info_block(thread, TS)
    name, content = ai_research.research_file("What's the BEST   db -- for us?", "Postgres.", now, TS)
    assert name == "2026-03-04_whats-the-best-db-for-us.md"
    assert content.startswith('---\ntitle: Research Session\nquery: "What\'s the BEST   db -- for us?"\n')
    assert "**Response:**\n\nPostgres.\n" in content and f"timestamp: {TS}" in content
    assert ai_research.research_file("日本語", "a", now, TS)[0] == "2026-03-04_research.md"
