"""Plain task <-> document: an edit expressed as `task_delta` materializes exactly the new task.

Dependencies are compared as sorted sets (they are stored as an OR-set); subtask order is kept.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    INDEX,
    Replicas,
    covers,
    draw_edit,
    draw_task,
    live_task_histories,
    normalized,
    plain_subtasks,
    plain_tasks,
    scaled,
    settings,
    strict,
    task_histories,
)

from taskmaster.crdt.doc import encode, merge
from taskmaster.crdt.taskdoc import task_delta, view


def _draw_new(draw, old: dict | None) -> tuple[dict, list[int | None]]:
    if old is None:  # deleted: re-create it
        new = draw_task(draw)
        return new, [None] * len(new["subtasks"])
    return draw_edit(draw, old)


@settings(max_examples=scaled(0.5))
@given(task_histories, st.data())
def test_edit_materializes_exactly_the_new_task(replicas, data):
    """view(merge(doc, task_delta(doc, view(doc), new, ...))) == new, after any history."""
    old, keys = view(replicas.docs[0])
    new, origin = _draw_new(data.draw, old)
    delta = replicas.edit_task(0, new, origin)
    got, got_keys = view(replicas.docs[0])
    assert strict(got) == strict(normalized(new))
    for j, o in enumerate(origin):  # a kept subtask keeps its identity, a new one gets a new one
        assert (got_keys[j] == keys[o]) if o is not None else (got_keys[j] not in keys)
    if old is not None:  # the delta carries exactly the task fields that changed
        changed = {k for k in old.keys() | new.keys() if k not in ("dependencies", "subtasks")
                   and (k not in old or k not in new or strict(old[k]) != strict(new[k]))}
        assert {k for k in delta.fields if not k.startswith("~")} == changed


@settings(max_examples=scaled(0.5))
@given(task_histories, st.data())
def test_delta_is_as_good_as_the_full_state(replicas, data):
    """merge(X, δ) == merge(X, s after the op) for every X that has seen s, and s ⊑ s after the op."""
    before = replicas.docs[0]
    new, origin = _draw_new(data.draw, view(before)[0])
    delta = replicas.edit_task(0, new, origin)
    after = replicas.docs[0]
    assert covers(after, before)
    assert encode(merge(before, delta)) == encode(after)
    other = replicas.docs[data.draw(INDEX, label="other") % len(replicas.docs)]
    seen = merge(before, other)  # a replica that has s and concurrent edits of its own
    assert encode(merge(seen, delta)) == encode(merge(seen, after))


@given(live_task_histories)
def test_an_unchanged_task_gives_a_delta_that_changes_nothing(replicas):
    doc = replicas.docs[0]
    old, keys = view(doc)
    ts, node = replicas.stamp(0)
    delta = task_delta(doc, old, normalized(old), keys, ts, node)
    assert not delta.fields and not delta.sets
    # Only subtask positions may be rewritten (two concurrent inserts can leave equal positions).
    assert all(set(child.fields) <= {"~pos"} and not child.sets and not child.children
               for child in delta.children.values())
    assert strict(view(merge(doc, delta))) == strict(view(doc))


@given(plain_tasks, st.lists(plain_subtasks, min_size=2, max_size=4), st.data())
def test_a_subtask_renumbered_on_one_replica_and_edited_on_another_stays_one(task, subs, data):
    """Subtask identity is its document key, not its id: A removes the first subtask and renumbers
    the rest while B edits the second one; after merging both, the second is there once, with A's
    new id and B's edit."""
    task = dict(task, subtasks=[dict(s, id=i + 1) for i, s in enumerate(subs)])
    replicas = Replicas(2, [0, 0])
    replicas.receive(1, replicas.edit_task(0, task, [None] * len(subs)))
    renumbered = [dict(s, id=i + 1) for i, s in enumerate(subs[1:])]
    replicas.edit_task(0, dict(task, subtasks=renumbered), list(range(1, len(subs))))
    title = data.draw(st.text(min_size=1, max_size=5), label="B's title") + "!"
    edited = [dict(s) for s in task["subtasks"]]
    edited[1]["title"] = title
    replicas.edit_task(1, dict(task, subtasks=edited), list(range(len(subs))))
    replicas.receive(0, replicas.docs[1])
    replicas.receive(1, replicas.docs[0])
    assert encode(replicas.docs[0]) == encode(replicas.docs[1])
    got = view(replicas.docs[0])[0]["subtasks"]
    assert [s["id"] for s in got] == list(range(1, len(subs)))
    assert got[0]["title"] == title


@settings(max_examples=scaled(0.5))
@given(st.composite(lambda draw: draw_task(draw, max_subtasks=5))(), st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=30))
def test_subtask_order_follows_every_move(task, moves):
    replicas = Replicas(1, [0])
    replicas.edit_task(0, task, [None] * len(task["subtasks"]))
    expected = list(range(len(task["subtasks"])))  # original indices, in the order they should show
    for a, b in moves:
        if not expected:
            break
        current, keys = view(replicas.docs[0])
        order = list(range(len(expected)))
        order.insert(b % len(order), order.pop(a % len(order)))
        expected = [expected[i] for i in order]
        replicas.edit_task(0, dict(current, subtasks=[current["subtasks"][i] for i in order]), order)
    got = view(replicas.docs[0])[0]["subtasks"]
    assert [strict(s) for s in got] == [strict(normalized(task)["subtasks"][i]) for i in expected]


def test_subtask_positions_are_renumbered_when_a_gap_runs_out_of_floats():
    """Moving the last subtask between the first two halves the same gap each time; after ~50 moves
    floats cannot split it any more and every position is renumbered, keeping the order right."""
    task = {"id": 1, "title": "t", "dependencies": [],
            "subtasks": [{"id": i, "title": str(i), "dependencies": []} for i in range(1, 5)]}
    replicas = Replicas(1, [0])
    replicas.edit_task(0, task, [None] * 4)
    expected = [1, 2, 3, 4]
    for _ in range(120):
        current, _ = view(replicas.docs[0])
        order = [0, 3, 1, 2]
        replicas.edit_task(0, dict(current, subtasks=[current["subtasks"][i] for i in order]), order)
        expected = [expected[i] for i in order]
        assert [s["id"] for s in view(replicas.docs[0])[0]["subtasks"]] == expected
    positions = sorted(c.get("~pos") for c in replicas.docs[0].children.values())
    assert len(set(positions)) == 4


def test_a_deleted_task_shows_as_none_and_merges_like_any_register():
    replicas = Replicas(2, [0, 0])
    task = {"id": 3, "title": "x", "dependencies": [1], "subtasks": []}
    replicas.receive(1, replicas.edit_task(0, task, []))
    replicas.edit_task(0, None, [])
    replicas.edit_task(1, dict(task, title="y"), [])  # a concurrent edit does not undelete
    replicas.receive(0, replicas.docs[1])
    replicas.receive(1, replicas.docs[0])
    assert view(replicas.docs[0]) == (None, []) == view(replicas.docs[1])
    assert encode(replicas.docs[0]) == encode(replicas.docs[1])


def test_an_edit_that_only_changes_the_json_type_or_sign_is_stored():
    """Counterexample found by test_edit_materializes_exactly_the_new_task: complexity -0.0 edited
    to 0.0 kept -0.0, because the two compare equal in Python."""
    replicas = Replicas(1)
    task = {"id": 1, "title": "t", "dependencies": [], "subtasks": [], "complexity": -0.0, "n": 1}
    replicas.edit_task(0, task, [])
    for edit in ({"complexity": 0.0}, {"n": 1.0}, {"n": True}):
        task = dict(task, **edit)
        replicas.edit_task(0, task, [])
        assert strict(view(replicas.docs[0])[0]) == strict(task)
