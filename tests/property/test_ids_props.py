"""Properties of ids and the write rules: new ids, id text round trips, the one stored form of a
dependency, the parent-status rule, that removing items leaves no reference to them (and no fewer
references to anything else), and that moving an item carries every reference to it along."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st
from strategies import scaled

from taskmaster.tasks.create import add_task
from taskmaster.tasks.errors import TaskError
from taskmaster.tasks.ids import MAX_ID, Ref, parse_ref
from taskmaster.tasks.moves import move_task
from taskmaster.tasks.references import dep_target, express
from taskmaster.tasks.remove import remove_task
from taskmaster.tasks.state import copy_json
from taskmaster.tasks.status import set_task_status
from tests.conftest import make_tx

STATUSES = ["pending", "in-progress", "done", "deferred", "cancelled", "blocked", "review"]
ids = st.integers(min_value=1, max_value=MAX_ID)
refs = st.builds(Ref, ids, st.none() | ids)


# ---- id text -------------------------------------------------------------------------------------
@settings(max_examples=scaled(0.3))
@given(refs, st.sampled_from(["", " ", "  "]), st.sampled_from(["", " ", "\t"]))
def test_ref_text_round_trips(ref, left, right):
    assert parse_ref(f"{left}{ref}{right}") == ref
    assert parse_ref(ref.wire) == ref
    assert isinstance(ref.wire, int) == (ref.sub is None)


@settings(max_examples=scaled(0.3))
@given(st.text(alphabet="0123456789.-, a", max_size=8))
def test_parse_ref_accepts_exactly_canonical_ids(text):
    try:
        ref = parse_ref(text)
    except ValueError:
        parts = text.strip().split(".")
        assert not (1 <= len(parts) <= 2 and all(p.isdigit() and int(p) >= 1 for p in parts))
        return
    assert parse_ref(str(ref)) == ref and str(ref) == ".".join(str(int(p)) for p in text.strip().split("."))


@settings(max_examples=scaled(0.3))
@given(refs)
def test_express_then_read_back_is_the_same_target(target):
    stored = express(target)
    assert dep_target(stored) == target
    assert isinstance(stored, int) == (target.sub is None)  # tasks as ints, subtasks as "P.S"


@settings(max_examples=scaled(0.3))
@given(st.one_of(st.integers(-3, 2**60), st.booleans(), st.none(), st.floats(allow_nan=False),
                 st.text(alphabet="0123456789. x", max_size=8), st.builds(str, refs)))
def test_each_item_has_exactly_one_stored_form(dep):
    """Whatever is read as a reference is stored exactly as `express` writes it; all else is junk."""
    target = dep_target(dep)
    if target is not None:
        assert express(target) == dep and type(express(target)) is type(dep)
        return
    try:  # junk: the stored form of nothing, not even of what it would parse to
        candidate = parse_ref(dep)
    except ValueError:
        return
    assert not (express(candidate) == dep and type(express(candidate)) is type(dep))


# ---- new task ids --------------------------------------------------------------------------------
@settings(max_examples=scaled(0.25))
@given(st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=40),
       st.lists(st.integers(min_value=1, max_value=30), max_size=5, unique=True))
def test_new_task_id_is_max_plus_one_and_never_an_existing_id(ops, start):
    """op 0 adds a task; op k > 0 removes the k-th smallest remaining task (if any). Between
    removals the new ids run on without a gap; a removed highest id is free again (Task Master)."""
    tx = make_tx({"master": {"tasks": [{"id": i, "title": "t", "status": "pending"} for i in start]}})
    last = None  # id returned by the previous add, None after a removal
    for op in ops:
        existing = sorted(t["id"] for t in tx.tasks("master"))
        if op == 0:
            new = add_task(tx, "master", title="t", description="d")["taskId"]
            assert new == (existing[-1] if existing else 0) + 1
            assert new not in existing and tx.task("master", new)["title"] == "t"
            assert last is None or new == last + 1
            last = new
        elif len(existing) >= op:
            remove_task(tx, "master", str(existing[op - 1]))
            last = None


# ---- the parent-status rule ----------------------------------------------------------------------
def model_parent(statuses: list[str], current: str) -> str:
    done = sum(s in ("done", "completed") for s in statuses)
    if done == len(statuses):
        return "done"
    if done or "in-progress" in statuses:
        return "in-progress"
    if statuses.count("pending") == len(statuses):
        return "pending"
    return current


@settings(max_examples=scaled(0.3))
@given(st.lists(st.sampled_from(STATUSES + ["completed"]), min_size=1, max_size=6),
       st.sampled_from(STATUSES), st.data())
def test_subtask_status_recomputes_the_parent_like_the_model(statuses, parent_status, data):
    subs = [{"id": i, "title": "s", "status": s, "dependencies": []} for i, s in enumerate(statuses, 1)]
    tx = make_tx({"master": {"tasks": [{"id": 1, "title": "p", "status": parent_status, "subtasks": subs}]}})
    which = data.draw(st.integers(min_value=1, max_value=len(statuses)))
    new = data.draw(st.sampled_from(STATUSES))
    result = set_task_status(tx, "master", f"1.{which}", new)["tasks"][0]
    assert result == {"success": True, "oldStatus": statuses[which - 1], "newStatus": new, "taskId": f"1.{which}"}
    parent = tx.task("master", 1)
    after = statuses[:which - 1] + [new] + statuses[which:]
    assert [s["status"] for s in parent["subtasks"]] == after
    if new == statuses[which - 1]:
        assert not tx.work and parent["status"] == parent_status
    else:
        assert parent["status"] == model_parent(after, parent_status)


@settings(max_examples=scaled(0.1))
@given(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=4), st.sampled_from(STATUSES))
def test_parent_status_never_moves_its_subtasks(statuses, new):
    subs = [{"id": i, "title": "s", "status": s, "dependencies": []} for i, s in enumerate(statuses, 1)]
    tx = make_tx({"master": {"tasks": [{"id": 1, "title": "p", "status": "pending", "subtasks": subs}]}})
    set_task_status(tx, "master", "1", new)
    assert [s["status"] for s in tx.task("master", 1)["subtasks"]] == statuses


# ---- remove_task and references ------------------------------------------------------------------
@st.composite
def tag_with_references(draw):
    """Tasks 1..n with subtasks, whose dependencies name existing items: from tasks and subtasks
    alike, on tasks (a subtask's own parent left out, see dependencies.py) and on subtasks."""
    n = draw(st.integers(min_value=1, max_value=6))
    shape = {tid: draw(st.integers(min_value=0, max_value=3)) for tid in range(1, n + 1)}
    items = [Ref(t) for t in shape] + [Ref(t, s) for t, k in shape.items() for s in range(1, k + 1)]

    def deps_for(parent: int | None) -> list:
        return [express(target) for target in draw(st.lists(st.sampled_from(items), max_size=4))
                if target != Ref(parent)]

    tasks = [{"id": t, "title": "t", "status": "pending", "dependencies": deps_for(None),
              "subtasks": [{"id": s, "title": "s", "status": "pending", "dependencies": deps_for(t)}
                           for s in range(1, k + 1)]} for t, k in shape.items()]
    doomed = draw(st.lists(st.sampled_from(items), min_size=1, max_size=3, unique=True))
    return tasks, doomed


def reference_pairs(tasks: list[dict]) -> set[tuple[Ref, Ref]]:
    """(holder, target) for every dependency in a tag."""
    pairs = set()
    for t in tasks:
        for d in t.get("dependencies") or []:
            pairs.add((Ref(t["id"]), dep_target(d)))
        for s in t.get("subtasks") or []:
            for d in s.get("dependencies") or []:
                pairs.add((Ref(t["id"], s["id"]), dep_target(d)))
    return pairs


def gone(ref: Ref, doomed: list[Ref]) -> bool:
    return ref in doomed or Ref(ref.task) in doomed


@settings(max_examples=scaled(0.2))
@given(tag_with_references())
def test_remove_task_leaves_no_dangling_reference_and_keeps_the_rest(case):
    tasks, doomed = case
    tx = make_tx({"master": {"tasks": tasks}, "copy": {"tasks": tasks}})
    before = reference_pairs(tasks)
    remove_task(tx, "master", ",".join(map(str, doomed)))
    after = reference_pairs(tx.tasks("master"))
    assert after == {(h, t) for h, t in before if not gone(h, doomed) and not gone(t, doomed)}
    assert all(t is not None for _, t in after)
    # the other tag has every one of these ids itself: its references are its own and stay
    assert tx.tasks("copy") == [dict(t, subtasks=t["subtasks"]) for t in copy_json(tasks)]


@settings(max_examples=scaled(0.2))
@given(tag_with_references(), st.data())
def test_move_task_carries_every_reference_along(case, data):
    """After a within-tag move every dependency still names the same item under its new id, subtask
    -> task ones included; only the moved item's dependency on the parent it goes under is dropped."""
    tasks, _ = case
    items = [Ref(t["id"]) for t in tasks] + [Ref(t["id"], s["id"]) for t in tasks for s in t["subtasks"]]
    src = data.draw(st.sampled_from(items))
    dst = data.draw(st.sampled_from([Ref(100), *(Ref(t["id"], 50) for t in tasks)]))
    tx = make_tx({"master": {"tasks": tasks}})
    try:
        move_task(tx, "master", str(src), str(dst))
    except TaskError:
        assert not tx.work  # refusals (nesting, waiting on itself) change nothing
        event("refused")
        return
    event("moved")

    def new(ref: Ref) -> Ref:
        if src.sub is not None and dst.task == src.task:
            return ref  # a reorder inside the parent keeps every id
        if ref == src:
            return dst
        if src.sub is None and ref.task == src.task:
            return Ref(dst.task, ref.sub)  # a renumbered task's subtasks follow it
        return ref

    def on_own_parent(holder: Ref, target: Ref) -> bool:
        return holder.sub is not None and target == Ref(holder.task)

    expected = {(new(h), new(t)) for h, t in reference_pairs(tasks) if not on_own_parent(new(h), new(t))}
    assert reference_pairs(tx.tasks("master")) == expected
