"""The lattice laws of `Doc.merge`, convergence of replicas, add-wins sets, and the wire format.

Equality of documents is byte equality of `encode`: that is the promise replicas rely on (equal
documents, equal bytes, equal digests).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    INDEX,
    NODES,
    Replicas,
    any_docs,
    covers,
    draw_task,
    draw_task_op,
    elements,
    pairs,
    registers,
    scaled,
    settings,
    shuffled,
    skews,
    strict,
    triples,
    valued_docs,
)

from taskmaster.crdt.doc import Doc, decode, encode, merge, merge_into, reg_wins
from taskmaster.crdt.taskdoc import view


@given(pairs)
def test_merge_is_commutative(docs):
    a, b = docs
    assert encode(merge(a, b)) == encode(merge(b, a))


@given(triples)
def test_merge_is_associative(docs):
    a, b, c = docs
    assert encode(merge(merge(a, b), c)) == encode(merge(a, merge(b, c)))


@given(any_docs)
def test_merge_is_idempotent(a):
    assert encode(merge(a, a)) == encode(a)
    assert encode(merge(a, Doc())) == encode(merge(Doc(), a)) == encode(a)


@given(pairs)
def test_merge_is_an_inflation(docs):
    a, b = docs
    m = merge(a, b)
    assert covers(m, a) and covers(m, b)
    assert encode(merge(m, a)) == encode(m)  # a ⊑ m in the lattice order too


@given(pairs)
def test_merge_leaves_its_arguments_alone_and_merge_into_agrees(docs):
    a, b = docs
    before_a, before_b = encode(a), encode(b)
    m = merge(a, b)
    # Changing the result in place (as a replica does with later deltas) must not reach a or b.
    merge_into(m, merge(b, a), copy_children=True)
    merge_into(m, Doc(children={k: Doc().set("z", 1, 1 << 60, "zz") for k in ("c1", "c2")}),
               copy_children=True)
    assert encode(a) == before_a and encode(b) == before_b
    target = decode(encode(a))  # a deep copy: merge_into changes children in place
    changed = merge_into(target, b)
    assert encode(target) == encode(merge(a, b))
    assert changed == (encode(target) != before_a)


@given(st.lists(registers, min_size=3, max_size=3))
def test_register_order_is_total_and_strict(regs):
    """merge picks the maximum register; that only commutes if `reg_wins` is a strict total order."""
    a, b, c = regs

    def same(x, y):
        return encode(Doc({"r": x})) == encode(Doc({"r": y}))

    assert not reg_wins(a, a)
    assert not (reg_wins(a, b) and reg_wins(b, a))
    assert reg_wins(a, b) or reg_wins(b, a) or same(a, b)
    if reg_wins(a, b) and reg_wins(b, c):
        assert reg_wins(a, c)


@given(any_docs | valued_docs)
def test_encode_decode_round_trip(a):
    data = encode(a)
    back = decode(data)
    assert encode(back) == data
    assert back == a


# ---- convergence ---------------------------------------------------------------------------------
@settings(max_examples=scaled(0.5))
@given(st.data())
def test_replicas_converge_whatever_the_delivery(data):
    """K replicas edit one task concurrently; deltas arrive in any order, interleaved with edits,
    duplicated, some replicas also swapping full states. Once every delta has reached every
    replica, all hold byte-identical documents and show the same task."""
    draw = data.draw
    k = draw(INDEX) % 4 + 2
    replicas = Replicas(k, draw(skews))
    replicas.create_everywhere(draw_task(draw))
    for _ in range(draw(INDEX) % 13):
        i, action = draw(INDEX) % k, draw(INDEX) % 6
        if action < 2:
            draw_task_op(draw, replicas, i)
        elif action < 4:
            replicas.receive(i, replicas.deltas[draw(INDEX) % len(replicas.deltas)])
        elif action == 4:
            replicas.receive(i, replicas.docs[draw(INDEX) % k])
        else:
            replicas.clock.ms += draw(INDEX) % 3 + 1
    everything = range(len(replicas.deltas))
    for i in range(k):
        order = [*everything, *(draw(INDEX) % len(everything) for _ in range(draw(INDEX) % 4))]
        for j in shuffled(draw, order):
            replicas.receive(i, replicas.deltas[j])
    reference = Doc()
    for delta in replicas.deltas:
        reference = merge(reference, delta)
    expected_bytes = encode(reference)
    expected_view = strict(view(reference))
    for i in range(k):
        assert encode(replicas.docs[i]) == expected_bytes, f"replica {NODES[i]} diverged"
        assert strict(view(replicas.docs[i])) == expected_view


# ---- add-wins set ----------------------------------------------------------------------------------
set_ops = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 2), elements),
    st.tuples(st.just("remove"), st.integers(0, 2), elements),
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("tick"), st.integers(0, 2)),
)


@given(st.lists(set_ops, max_size=30), skews)
def test_or_set_follows_the_add_wins_specification(ops, clock_skews):
    """An element is present iff one of its adds was not seen by any remove of it (add wins over a
    concurrent remove; a remove cancels what it observed). The model tracks events, not dots."""
    replicas = Replicas(3, clock_skews)
    seen_adds: list[set[tuple]] = [set() for _ in range(3)]  # (elem, add event number)
    seen_removes: list[set[int]] = [set() for _ in range(3)]
    cancels: dict[int, set[tuple]] = {}
    for n, op in enumerate(ops):
        kind, i = op[0], op[1]
        if kind == "add":
            replicas.apply(("add", i, (), "s", op[2]))
            seen_adds[i].add((op[2], n))
        elif kind == "remove":
            replicas.apply(("remove", i, (), "s", op[2]))
            cancels[n] = {a for a in seen_adds[i] if a[0] == op[2]}
            seen_removes[i].add(n)
        elif kind == "sync":
            replicas.apply(op)
            seen_adds[i] |= seen_adds[op[2]]
            seen_removes[i] |= seen_removes[op[2]]
        else:
            replicas.apply(op)
        for r in range(3):
            cancelled = set().union(*(cancels[x] for x in seen_removes[r]))
            expected = {e for e, a in seen_adds[r] if (e, a) not in cancelled}
            assert set(replicas.docs[r].members("s")) == expected
