"""Doc semantics by example: LWW fields, add-wins sets, tombstones, children, canonical bytes.

The laws (commutativity, associativity, idempotence, convergence) are proved in
tests/property/test_crdt_laws.py; these are the cases a reader checks first, and the
counterexamples those properties found, kept as regressions.
"""

from __future__ import annotations

from taskmaster.crdt.doc import DELETED, Doc, decode, encode, latest, merge, merge_into


def test_the_later_stamp_wins_and_the_node_breaks_a_tie():
    older, newer = Doc().set("title", "old", 10, "b"), Doc().set("title", "new", 11, "a")
    assert merge(older, newer).get("title") == merge(newer, older).get("title") == "new"
    left, right = Doc().set("title", "from a", 10, "a"), Doc().set("title", "from b", 10, "b")
    assert merge(left, right).get("title") == merge(right, left).get("title") == "from b"


def test_an_unset_is_a_stamped_register_too():
    doc = merge(Doc().set("details", "x", 10, "a"), Doc().unset("details", 11, "a"))
    assert doc.get("details", "gone") == "gone" and "details" not in doc.values()
    assert merge(doc, Doc().set("details", "y", 12, "b")).get("details") == "y"
    assert merge(doc, Doc().set("details", "late", 9, "b")).get("details") is None  # an older set loses


def test_equal_stamps_with_values_equal_in_python_still_merge_to_the_same_bytes():
    """Counterexample found by test_merge_is_commutative: (0, 'b', [1]) vs (0, 'b', [1.0]) kept
    whichever side was first, because the registers compared equal in Python."""
    for x, y in [([1], [1.0]), (1, True), (0.0, -0.0), ({"k": 1}, {"k": 1.0})]:
        a, b = Doc().set("f", x, 5, "n"), Doc().set("f", y, 5, "n")
        assert encode(merge(a, b)) == encode(merge(b, a))


def test_add_wins_over_a_concurrent_remove():
    base = Doc().add("dependencies", 3, 10, "a")
    removed_on_b = merge(base, Doc().remove("dependencies", 3, base.dots("dependencies", 3)))
    readded_on_a = merge(base, Doc().add("dependencies", 3, 11, "a"))
    assert merge(removed_on_b, readded_on_a).members("dependencies") == [3]
    assert merge(readded_on_a, removed_on_b).members("dependencies") == [3]


def test_a_remove_after_an_observed_add_removes():
    doc = Doc().add("dependencies", 3, 10, "a").add("dependencies", 3, 11, "b")
    gone = merge(doc, Doc().remove("dependencies", 3, doc.dots("dependencies", 3)))
    assert gone.members("dependencies") == []
    assert merge(gone, doc).members("dependencies") == []  # re-delivering the adds changes nothing
    assert merge(gone, Doc().add("dependencies", 3, 12, "a")).members("dependencies") == [3]


def test_members_come_back_ints_then_subtask_ids_numerically_then_other_strings():
    doc = Doc()
    for n, elem in enumerate(["10.1", 12, "2.1", "x", 3, "2.10", "2.2"]):
        doc.add("dependencies", elem, n + 1, "a")
    assert doc.members("dependencies") == [3, 12, "2.1", "2.2", "2.10", "10.1", "x"]


def test_a_tombstone_merges_like_any_field():
    doc = Doc().set("title", "t", 10, "a")
    deleted = merge(doc, Doc().set(DELETED, True, 11, "a"))
    assert deleted.deleted and not doc.deleted
    concurrent_edit = merge(doc, Doc().set("title", "edited", 12, "b"))
    assert merge(deleted, concurrent_edit).deleted  # an edit does not bring it back
    assert not merge(deleted, Doc().set(DELETED, False, 13, "b")).deleted  # an explicit revive does


def test_children_merge_recursively_and_merge_changes_neither_argument():
    a = Doc()
    a.child("s1").set("title", "one", 10, "a")
    b = Doc()
    b.child("s1").set("status", "done", 11, "b")
    b.child("s2").set("title", "two", 11, "b")
    before = encode(a), encode(b)
    m = merge(a, b)
    assert m.children["s1"].values() == {"title": "one", "status": "done"}
    assert m.children["s2"].get("title") == "two"
    assert (encode(a), encode(b)) == before
    assert merge_into(m, b) is False  # nothing new
    assert merge_into(m, Doc().set("x", 1, 12, "c")) is True


def test_bytes_depend_on_content_only():
    one = Doc().set("meta", {"b": 1, "a": [{"y": 2, "x": 1}]}, 5, "n").add("s", "x", 1, "n").add("s", 2, 1, "n")
    two = Doc().add("s", 2, 1, "n").add("s", "x", 1, "n").set("meta", {"a": [{"x": 1, "y": 2}], "b": 1}, 5, "n")
    assert encode(one) == encode(two)
    assert encode(decode(encode(one))) == encode(one) and decode(encode(one)) == one


def test_dict_keys_that_look_like_subtask_ids_with_unusual_digits_encode():
    """'²'.isdigit() is True but int('²') fails: the canonical key order must not crash on it."""
    doc = Doc().set("metadata", {"².1": 1, "1.2": 2, "١.٢": 3, "x": 4}, 5, "n")
    assert decode(encode(doc)).get("metadata") == {"².1": 1, "1.2": 2, "١.٢": 3, "x": 4}


def test_latest_is_the_greatest_timestamp_anywhere():
    doc = Doc().set("a", 1, 5, "n").add("s", 1, 9, "n")
    doc.child("c").remove("s", 1, frozenset({(12, "m")}))
    assert latest(doc) == 12 and latest(Doc()) == 0
