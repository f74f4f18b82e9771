"""The consistent-hash ring: balance, movement on a join, preference lists."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from taskmaster.ring import Ring, partition_key, split_partition

MEMBERS = [f"node-{i}" for i in range(10)]
KEYS = [partition_key(f"/srv/project-{k // 4}", f"tag-{k % 4}") for k in range(20_000)]


def test_ten_members_hold_an_even_share_of_the_keys():
    ring = Ring(MEMBERS)
    held = Counter(m for k in KEYS for m in ring.preference(k, 3))
    mean = 3 * len(KEYS) / len(MEMBERS)
    assert max(held.values()) / mean <= 1.15, held
    assert min(held.values()) / mean >= 0.85, held


def test_a_join_moves_about_one_in_n_plus_one_keys_and_only_to_the_new_member():
    before, after = Ring(MEMBERS), Ring([*MEMBERS, "node-new"])
    moved = [k for k in KEYS if before.preference(k, 1) != after.preference(k, 1)]
    share = len(moved) / len(KEYS)
    assert abs(share - 1 / 11) <= 0.15 / 11, share
    assert all(after.preference(k, 1) == ["node-new"] for k in moved)


def test_preference_lists_are_distinct_members_and_the_project_partition_is_everywhere():
    ring = Ring(MEMBERS)
    for k in KEYS[:500]:
        pref = ring.preference(k, 3)
        assert len(pref) == len(set(pref)) == 3
        assert ring.walk(k)[:3] == pref
    assert sorted(ring.preference(partition_key("/srv/p", ""), 3)) == sorted(MEMBERS)
    assert Ring(["solo"]).preference(KEYS[0], 3) == ["solo"]
    assert Ring([]).preference(KEYS[0], 3) == []


def test_partition_keys_round_trip():
    assert split_partition(partition_key("/srv/a b", "feature/x")) == ("/srv/a b", "feature/x")
    assert partition_key("/p", "t") == b"d\x00/p\x00t\x00"  # the store's key prefix for the tag


names = st.lists(st.text("abcdefgh", min_size=1, max_size=6), min_size=1, max_size=8, unique=True)


@given(names, st.permutations(range(8)), st.text(max_size=10))
def test_the_ring_depends_only_on_the_set_of_members(members, order, tag):
    shuffled = [members[i] for i in order if i < len(members)]
    key = partition_key("/p", tag or "t")
    assert Ring(members).preference(key, 3) == Ring(shuffled).preference(key, 3)


@given(names, st.text(max_size=10))
def test_removing_a_member_changes_only_the_lists_it_was_in(members, tag):
    key = partition_key("/p", tag or "t")
    ring = Ring(members)
    for gone in members:
        smaller = Ring([m for m in members if m != gone]).preference(key, 3)
        full = ring.preference(key, 3)
        if gone not in full:
            assert smaller == full
        else:  # the others keep their order; the next member in the walk fills the gap
            assert [m for m in full if m != gone] == smaller[:len(full) - 1]
