"""The offline planner: honest heuristics, labelled, deterministic, valid for every result kind."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmaster.llm import LlmError, prompts, schemas
from taskmaster.llm.providers.offline import NAME, OfflinePlanner, answer

PRD = """# Task tracker — product requirements

## Overview
A small team task tracker. This section is context, not work.

## Core features
1. **User accounts**: sign up and log in with email and password. Must be secure.
2. Projects: users create projects and invite members.
   - invite by email
   - remove a member
3. Tasks inside projects, requires user accounts.
4. Notifications - email when a task is assigned, after 2.

## Later
- Dark mode (nice to have)
- Export to CSV, depends on the tasks inside projects

```
1. this numbered line is code, not a requirement
```
"""


def parse(prd: str, num_tasks: int = 0, next_id: int = 1, **options):
    return answer(prompts.parse_prd(prd, num_tasks=num_tasks, next_id=next_id, **options))


def by_title(result) -> dict:
    return {t["title"]: t for t in result.data["tasks"]}


# ---- parse_prd ----------------------------------------------------------------------------------
def test_structured_prd_becomes_ordered_tasks():
    result = parse(PRD)
    tasks = result.data["tasks"]
    assert [t["title"] for t in tasks] == ["User accounts", "Projects", "Tasks inside projects", "Notifications",
                                           "Dark mode (nice to have)", "Export to CSV"]
    assert [t["id"] for t in tasks] == [1, 2, 3, 4, 5, 6]
    assert all(t["status"] == "pending" and t["description"] and t["details"] and t["testStrategy"] for t in tasks)
    assert tasks[0]["description"] == "Sign up and log in with email and password."
    assert "- invite by email\n- remove a member" in tasks[1]["details"]
    assert "(PRD section: Core features)" in tasks[1]["details"]
    assert result.provider == NAME and result.usage.provider == NAME
    assert "Offline planner" in result.note and "heuristics" in result.note


def test_dependencies_follow_order_and_explicit_mentions():
    t = by_title(parse(PRD))
    assert t["User accounts"]["dependencies"] == []
    assert t["Projects"]["dependencies"] == [1]  # document order within the section
    assert t["Tasks inside projects"]["dependencies"] == [1]  # "requires user accounts"
    assert t["Notifications"]["dependencies"] == [2]  # "after 2"
    assert t["Dark mode (nice to have)"]["dependencies"] == []  # first in its section
    assert t["Export to CSV"]["dependencies"] == [3]  # "depends on the tasks inside projects"


def test_priority_words():
    t = by_title(parse(PRD, default_priority="medium"))
    assert t["User accounts"]["priority"] == "high"  # "Must be secure"
    assert t["Projects"]["priority"] == "medium"
    assert t["Dark mode (nice to have)"]["priority"] == "low"
    assert parse("1. Plain item\n2. Another item", default_priority="low").data["tasks"][0]["priority"] == "low"


def test_ids_continue_from_next_id_and_dependencies_are_remapped():
    tasks = parse(PRD, next_id=11).data["tasks"]
    assert [t["id"] for t in tasks] == list(range(11, 17))
    assert by_title(parse(PRD, next_id=11))["Notifications"]["dependencies"] == [12]


def test_num_tasks_merges_consecutive_requirements():
    tasks = parse(PRD, num_tasks=3).data["tasks"]
    assert len(tasks) == 3 and [t["id"] for t in tasks] == [1, 2, 3]
    assert tasks[0]["description"] == "Covers: User accounts; Projects"
    assert tasks[0]["priority"] == "high"  # the highest of the merged requirements
    assert all(d < t["id"] for t in tasks for d in t["dependencies"])
    assert len(parse(PRD, num_tasks=50).data["tasks"]) == 6  # nothing is invented


def test_context_sections_are_used_when_they_are_all_there_is():
    tasks = parse("## Overview\n- build the importer\n- build the exporter\n").data["tasks"]
    assert [t["title"] for t in tasks] == ["Build the importer", "Build the exporter"]


def test_headings_with_text_but_no_lists():
    prd = "Login\n=====\nUsers sign in with a magic link.\n\nBilling\n-------\nMonthly invoices.\n\n# Reports\n"
    tasks = parse(prd).data["tasks"]
    assert [t["title"] for t in tasks] == ["Login", "Billing"]
    assert tasks[0]["description"] == "Users sign in with a magic link."


def test_outline_numbers_nest():
    tasks = parse("## 1 Accounts\n1.1 Sign up\n1.1.1 Validate the email\n1.2 Log in\n").data["tasks"]
    assert [t["title"] for t in tasks] == ["Sign up", "Log in"]
    assert "- Validate the email" in tasks[0]["details"]


def test_unstructured_prd_falls_back_to_paragraphs_then_sentences():
    paragraphs = parse("Photo app\n\nUsers upload photos from the phone.\n\nAdmins delete any photo.").data["tasks"]
    assert [t["title"] for t in paragraphs] == ["Users upload photos from the phone", "Admins delete any photo"]
    sentences = parse("Users upload photos. Photos get thumbnails after upload. Users tag photos.").data["tasks"]
    assert [t["title"] for t in sentences] == ["Users upload photos", "Photos get thumbnails after upload",
                                               "Users tag photos"]
    assert sentences[1]["dependencies"] == [1]


@pytest.mark.parametrize(("prd", "titles", "deps"), [
    ("# Anforderungen\n1. Benutzerkonten: Anmeldung per E-Mail.\n2. Aufgabenlisten. Erfordert Benutzerkonten.\n"
     "3. Teilen von Listen nach 2.", ["Benutzerkonten", "Aufgabenlisten", "Teilen von Listen nach 2"], [[], [1], [2]]),
    ("# 需求\n1. 用户注册：用户可以使用邮箱注册。\n2. 任务列表：创建和删除列表。\n3. 分享功能：依赖 1",
     ["用户注册", "任务列表", "分享功能"], [[], [1], [1]]),
    ("# Exigences\n- Comptes utilisateurs\n- Listes de tâches, après comptes utilisateurs",
     ["Comptes utilisateurs", "Listes de tâches"], [[], [1]]),
])
def test_other_languages(prd, titles, deps):
    tasks = parse(prd).data["tasks"]
    assert [t["title"] for t in tasks] == titles
    assert [t["dependencies"] for t in tasks] == deps


@pytest.mark.parametrize("prd", ["", "   \n\n  ", "```\ncode only\n```"])
def test_an_empty_prd_is_a_clear_error(prd):
    with pytest.raises(LlmError, match="PRD"):
        parse(prd)


# ---- expand_task --------------------------------------------------------------------------------
TASK = {"id": 4, "title": "Payments with Stripe", "description": "Take card payments.",
        "details": "- Create a Stripe customer on signup\n- Store the payment method\n- Handle failed-payment "
                   "webhooks\n- Send receipts", "testStrategy": "Use Stripe test mode.", "status": "pending",
        "priority": "high", "dependencies": [1], "subtasks": []}


@pytest.mark.parametrize("num", [1, 2, 3, 4, 6, 9])
def test_expand_respects_num_and_links_design_implement_test(num):
    subtasks = answer(prompts.expand_task(TASK, num=num, next_subtask_id=3)).data["subtasks"]
    assert len(subtasks) == num and [s["id"] for s in subtasks] == list(range(3, 3 + num))
    for s in subtasks:
        assert all(3 <= d < s["id"] for d in s["dependencies"])
        assert len(s["title"]) >= 5 and len(s["description"]) >= 10 and len(s["details"]) >= 20
    if num >= 3:
        assert subtasks[0]["title"].startswith("Design") and subtasks[-1]["title"].startswith("Test")
        assert subtasks[-1]["dependencies"] == [s["id"] for s in subtasks[1:-1]]
        assert "Use Stripe test mode." in subtasks[-1]["details"]


def test_expand_without_num_sizes_by_the_details():
    subtasks = answer(prompts.expand_task(TASK, num=0, next_subtask_id=1, prompt="Use the official SDK")).data[
        "subtasks"]
    assert 3 <= len(subtasks) <= 6
    assert "Guidance: Use the official SDK" in subtasks[0]["details"]
    covered = "\n".join(s["details"] for s in subtasks[1:-1])
    assert all(point in covered for point in ("Create a Stripe customer", "Send receipts"))


# ---- analyze_complexity -------------------------------------------------------------------------
def test_complexity_scores_every_task_with_reasoning():
    tasks = [TASK, {"id": 1, "title": "Fix typo in README", "description": "small", "dependencies": []},
             {"id": 2, "title": "Distributed sync", "description": "Real-time replication with encryption, "
              "conflict-free merge and a custom protocol. " * 8, "dependencies": [1, 4]}]
    entries = answer(prompts.analyze_complexity(tasks)).data["complexityAnalysis"]
    scores = {e["taskId"]: e["complexityScore"] for e in entries}
    assert set(scores) == {1, 2, 4} and all(1 <= s <= 10 for s in scores.values())
    assert scores[1] < scores[4] < scores[2]
    for e in entries:
        assert e["reasoning"].startswith("Offline heuristic") and e["expansionPrompt"]
        assert 1 <= e["recommendedSubtasks"] <= 10
    hard = next(e for e in entries if e["taskId"] == 2)
    assert "encryption" in hard["reasoning"] and "1 dependents" not in hard["reasoning"]


# ---- updates, scope, add_task, research ---------------------------------------------------------
def test_update_task_records_the_request_and_applies_plain_directives():
    result = answer(prompts.update_task(TASK, 'Switch to Paddle. Set priority to low, rename to "Paddle billing"'))
    task = result.data["task"]
    assert task["id"] == 4 and task["status"] == "pending" and task["dependencies"] == [1]
    assert task["priority"] == "low" and task["title"] == "Paddle billing"
    assert task["details"].startswith(TASK["details"]) and "Switch to Paddle" in task["details"]
    assert "priority set to low" in result.note and "appended to details" in result.note


def test_bulk_update_keeps_ids_and_statuses():
    tasks = [dict(TASK, id=i, status=s) for i, s in ((4, "in-progress"), (5, "review"), (6, "pending"))]
    data = answer(prompts.update_tasks(tasks, "We now use PostgreSQL")).data["tasks"]
    assert [(t["id"], t["status"]) for t in data] == [(4, "in-progress"), (5, "review"), (6, "pending")]
    assert all("We now use PostgreSQL" in t["details"] for t in data)


def test_scope_down_keeps_the_first_points_and_lists_what_was_deferred():
    result = answer(prompts.scope_task(TASK, "down", "regular"))
    details = result.data["task"]["details"]
    assert details.startswith("- Create a Stripe customer on signup\n- Store the payment method\n")
    assert "deferred Handle failed-payment webhooks; Send receipts." in details
    assert "kept 2 of 4 points" in result.note


def test_scope_up_adds_work_by_strength():
    light = answer(prompts.scope_task(TASK, "up", "light")).data["task"]
    heavy = answer(prompts.scope_task(TASK, "up", "heavy", "support refunds")).data["task"]
    assert "input validation" in light["details"] and "monitoring" not in light["details"]
    assert "monitoring and metrics" in heavy["details"] and "Requested: support refunds" in heavy["details"]
    assert heavy["testStrategy"].startswith("Use Stripe test mode.")


def test_add_task_from_a_prompt_links_only_existing_tasks():
    existing = [TASK, {"id": 2, "title": "User accounts", "description": "Sign up"}]
    data = answer(prompts.add_task("Refunds for payments, after task 2, depends on task 99, requires the Stripe "
                                   "payments", tasks=existing, new_id=5)).data
    assert data["title"] == "Refunds for payments" and data["dependencies"] == [2, 4]
    with pytest.raises(LlmError, match="prompt"):
        answer(prompts.add_task("  ", tasks=existing, new_id=5))


def test_research_says_no_model_and_gathers_related_tasks():
    others = [{"id": 9, "title": "Deploy to staging", "description": "Kubernetes"},
              {"id": 4, "title": "Payments with Stripe", "description": "Card payments and webhooks"}]
    text = answer(prompts.research("How to verify Stripe webhooks?", candidates=others)).data["text"]
    assert text.startswith("No AI model is configured on this node")
    assert "Query: How to verify Stripe webhooks?" in text and "4: Payments with Stripe" in text
    assert "Deploy to staging" not in text


def test_text_notes_for_update_subtask_and_append():
    sub = {"id": 1, "title": "Client", "details": ""}
    for request in (prompts.update_subtask(TASK, sub, "Use idempotency keys"),
                    prompts.append_to_task(TASK, "Use idempotency keys")):
        data = answer(request).data
        assert data["text"].endswith("Use idempotency keys") and "offline planner" in data["text"]


async def test_every_result_kind_is_valid_and_labelled():
    requests = [prompts.parse_prd(PRD, num_tasks=0, next_id=1), prompts.expand_task(TASK, num=3, next_subtask_id=1),
                prompts.analyze_complexity([TASK]), prompts.update_tasks([TASK], "x"),
                prompts.update_task(TASK, "x"), prompts.append_to_task(TASK, "x"),
                prompts.scope_task(TASK, "up", "regular"), prompts.add_task("x", tasks=[TASK], new_id=5),
                prompts.research("x"), prompts.update_subtask(TASK, {"id": 1}, "x")]
    assert {r.schema for r in requests} == set(schemas.SCHEMAS)
    for request in requests:
        result = await OfflinePlanner().generate(request)
        if not schemas.is_text(request.schema):
            assert schemas.validate(request.schema, result.data) == result.data
        assert result.provider == NAME and result.note.startswith("Offline planner")


# ---- determinism and invariants (properties) ----------------------------------------------------
_line = st.one_of(
    st.text(min_size=0, max_size=40),
    st.builds(lambda n, t: f"{n}. {t}", st.integers(1, 30), st.text(min_size=1, max_size=30)),
    st.builds(lambda t: f"- {t}", st.text(min_size=1, max_size=30)),
    st.builds(lambda t: f"  - {t}", st.text(min_size=1, max_size=30)),
    st.builds(lambda h, t: f"{'#' * h} {t}", st.integers(1, 3), st.text(min_size=1, max_size=20)),
    st.sampled_from(["", "after 2", "depends on 1", "requires the first item", "Must be fast.", "```", "===",
                     "一、登录", "（2）下载", "FR-3: export"]),
)
_prds = st.lists(_line, min_size=1, max_size=25).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(prd=_prds, num_tasks=st.integers(0, 8), next_id=st.integers(1, 40))
def test_parse_prd_is_deterministic_and_well_formed(prd, num_tasks, next_id):
    try:
        first = parse(prd, num_tasks, next_id)
    except LlmError:
        with pytest.raises(LlmError):
            parse(prd, num_tasks, next_id)
        return
    assert parse(prd, num_tasks, next_id).to_dict() == first.to_dict()
    tasks = first.data["tasks"]
    assert [t["id"] for t in tasks] == list(range(next_id, next_id + len(tasks)))
    assert tasks and (num_tasks == 0 or len(tasks) <= num_tasks)
    for t in tasks:
        assert all(next_id <= d < t["id"] for d in t["dependencies"])
        assert len(set(t["dependencies"])) == len(t["dependencies"])
        assert t["title"] and t["description"]


@settings(max_examples=100, deadline=None)
@given(details=st.text(max_size=300), num=st.integers(0, 8), first=st.integers(1, 20))
def test_expand_is_deterministic_and_well_formed(details, num, first):
    task = dict(TASK, details=details)
    result = answer(prompts.expand_task(task, num=num, next_subtask_id=first))
    assert answer(prompts.expand_task(task, num=num, next_subtask_id=first)).to_dict() == result.to_dict()
    subtasks = result.data["subtasks"]
    assert num == 0 or len(subtasks) == num
    assert all(first <= d < s["id"] for s in subtasks for d in s["dependencies"])


@settings(max_examples=150, deadline=None)
@given(title=st.text(max_size=40), description=st.text(max_size=60), details=st.text(max_size=200),
       prompt=st.text(max_size=60), direction=st.sampled_from(["up", "down"]),
       strength=st.sampled_from(["light", "regular", "heavy"]), num=st.integers(0, 7))
def test_every_kind_is_deterministic_and_valid_for_any_task_text(title, description, details, prompt, direction,
                                                                  strength, num):
    task = {"id": 3, "title": title, "description": description, "details": details, "testStrategy": details[:40],
            "status": "pending", "dependencies": [1], "subtasks": [{"id": 1, "title": "kept", "status": "done"}]}
    requests = [prompts.scope_task(task, direction, strength, prompt), prompts.update_task(task, prompt),
                prompts.update_tasks([task], prompt), prompts.analyze_complexity([task]),
                prompts.research(prompt or "q", candidates=[task]), prompts.append_to_task(task, prompt),
                prompts.expand_task(task, num=num, next_subtask_id=2)]
    if prompt.strip():
        requests.append(prompts.add_task(prompt, tasks=[task], new_id=4))
    for request in requests:
        first = answer(request)
        assert answer(request).to_dict() == first.to_dict()
        if "task" in first.data:
            assert first.data["task"]["id"] == 3 and first.data["task"]["subtasks"] == task["subtasks"]
            assert first.data["task"]["subtasks"][0] is not task["subtasks"][0]
