"""Properties of the AI tools' id and merge rules: whatever ids and dependencies a model answers,
the written tasks and subtasks are numbered contiguously, depend only on earlier items that exist
(so no cycle can appear), keep every dependency the model expressed correctly, keep done subtasks
exactly, and a complexity report holds one entry per existing analysed task."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import scaled

from taskmaster.tasks import ai_complexity, ai_create, ai_expand, ai_update
from taskmaster.tasks.state import copy_json
from tests.conftest import make_tx

small_ids = st.integers(min_value=1, max_value=40)


@st.composite
def answers(draw, max_size=12):
    """A model's list of items with distinct ids (the schema guarantees that) and arbitrary dependencies."""
    ids = draw(st.lists(small_ids, unique=True, max_size=max_size))
    return [{"id": i, "title": f"T{i}", "description": f"D{i}",
             "dependencies": draw(st.lists(st.integers(min_value=0, max_value=45), max_size=6))} for i in ids]


def expected_links(raw: list[dict], start: int) -> list[set[int]]:
    """The dependencies a correct renumbering keeps: those naming an earlier item of the answer."""
    position = {item["id"]: index for index, item in enumerate(raw)}
    return [{start + position[d] for d in item["dependencies"] if d in position and position[d] < index}
            for index, item in enumerate(raw)]


@settings(max_examples=scaled(0.25))
@given(answers(), st.integers(min_value=1, max_value=500))
def test_prd_numbering_is_contiguous_acyclic_and_faithful(raw, start):
    tasks = ai_create.number_prd_tasks(raw, start, "medium")
    assert [t["id"] for t in tasks] == list(range(start, start + len(raw)))
    for task, links in zip(tasks, expected_links(raw, start), strict=True):
        assert set(task["dependencies"]) == links and task["dependencies"] == sorted(links)
        assert all(start <= d < task["id"] for d in task["dependencies"])


@settings(max_examples=scaled(0.15))
@given(st.lists(small_ids, unique=True, max_size=8), answers(), st.booleans(), st.booleans())
def test_prd_writes_leave_a_valid_tag(existing, raw, append, force):
    tx = make_tx({"master": {"tasks": [{"id": i, "title": "old", "status": "pending", "dependencies": []}
                                       for i in existing]}})
    if existing and not (append or force):
        return  # refused (a unit test checks the refusal)
    new = ai_create.apply_prd(tx, "master", raw, append=append, force=force)
    ids = [t["id"] for t in tx.tasks("master")]
    assert len(ids) == len(set(ids)) == (len(existing) if append else 0) + len(raw)
    assert [t["id"] for t in new] == list(range(max(existing, default=0) + 1, max(existing, default=0) + 1 + len(raw)))
    for task in tx.tasks("master"):
        assert all(d in ids and d < task["id"] for d in task["dependencies"])


@settings(max_examples=scaled(0.25))
@given(answers(), st.integers(min_value=1, max_value=9), st.integers(min_value=0, max_value=6),
       st.frozensets(st.integers(min_value=1, max_value=8), max_size=4))
def test_subtask_numbering_keeps_earlier_siblings_and_kept_ones_only(raw, start, limit, siblings):
    siblings = frozenset(s for s in siblings if s < start)
    subs = ai_expand.number_subtasks(raw, parent=7, start=start, limit=limit, siblings=siblings)
    kept = raw[:limit] if limit else raw
    assert [s["id"] for s in subs] == list(range(start, start + len(kept)))
    new_ids = {item["id"] for item in kept}
    for sub, links, item in zip(subs, expected_links(kept, start), kept, strict=True):
        wanted = {f"7.{d}" for d in links} | {f"7.{d}" for d in item["dependencies"]
                                             if d in siblings and d not in new_ids}
        assert set(sub["dependencies"]) == wanted
        assert all(int(d.split(".")[1]) < sub["id"] for d in sub["dependencies"])


statuses = st.sampled_from(["pending", "done", "in-progress", "completed", "review"])


@settings(max_examples=scaled(0.25))
@given(st.lists(st.tuples(small_ids, statuses), unique_by=lambda s: s[0], max_size=6),
       st.none() | st.lists(st.fixed_dictionaries({
           "title": st.sampled_from(["a", "b", " ", ""]), "status": statuses,
           "dependencies": st.lists(st.one_of(small_ids, st.just("9.1"), st.just("3.2"), st.just("x")), max_size=4)}),
           max_size=6))
def test_rewritten_subtasks_keep_done_ones_and_only_backward_sibling_links(old, answered):
    original = {"id": 9, "title": "T", "description": "D", "status": "pending", "dependencies": [],
                "subtasks": [{"id": i, "title": f"S{i}", "description": "", "details": "", "status": s,
                              "dependencies": []} for i, s in old]}
    before = copy_json(original)
    tx = make_tx({"master": {"tasks": [original]}})
    answer = {"id": 9, "title": "T2", "description": "D2", "status": "pending", "subtasks": answered}
    merged = ai_update.merged_task(tx, "master", tx.task("master", 9), answer, "p")
    subs = merged["subtasks"]
    if answered is None:
        assert subs == before["subtasks"]
        return
    ids = [s["id"] for s in subs]
    assert ids == sorted(set(ids))
    for done in (s for s in before["subtasks"] if s["status"] in ("done", "completed")):
        assert done in subs
    rewritten = [s for s in subs if s not in before["subtasks"]]
    for sub in rewritten:
        assert all(d.startswith("9.") and int(d[2:]) < sub["id"] for d in sub["dependencies"])


@settings(max_examples=scaled(0.25))
@given(st.lists(small_ids, unique=True, min_size=1, max_size=10), st.data())
def test_a_report_holds_one_entry_per_existing_analysed_task(existing, data):
    analysed = data.draw(st.lists(st.sampled_from(existing) | small_ids, unique=True, max_size=8))
    entry_ids = st.sampled_from(existing) | small_ids
    entry = st.builds(lambda i, s: {"taskId": i, "complexityScore": s, "recommendedSubtasks": 2,
                                    "expansionPrompt": "e", "reasoning": "r"}, entry_ids, st.integers(1, 10))
    previous = {"complexityAnalysis": data.draw(st.lists(entry, unique_by=lambda e: e["taskId"], max_size=8))}
    tx = make_tx({"master": {"tasks": [{"id": i, "title": f"T{i}", "status": "pending"} for i in existing],
                             "report": previous}})
    report = ai_complexity.store_analysis(tx, "master", analysed, data.draw(st.lists(entry, max_size=10)),
                                          threshold=5, research=False, project_name="p", now="now")
    ids = [e["taskId"] for e in report["complexityAnalysis"]]
    assert len(ids) == len(set(ids)) and set(ids) <= set(existing)
    assert {i for i in analysed if i in existing} <= set(ids)
    assert report["meta"]["analysisCount"] == len(ids)
