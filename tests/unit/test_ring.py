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


# ---- zones -------------------------------------------------------------------------------------------

zone_maps = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=6), st.sampled_from(["", "x", "y", "z", "w"]),
                            min_size=1, max_size=9)
keys = st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=10).map(
    lambda tag: partition_key("/p", tag or "t"))


def zone_rank_order(members: dict[str, str], key: bytes) -> list[str]:
    """The specification: the plain ring order (zones ignored), stably sorted by how many members
    of the same zone come before each member in it."""
    seen: dict[str, int] = {}
    ranks = {}
    for name in Ring(members.keys()).walk(key):
        ranks[name] = seen.get(members[name], 0)
        seen[members[name]] = ranks[name] + 1
    return sorted(ranks, key=ranks.__getitem__)


@given(zone_maps, keys, st.integers(0, 10))
def test_the_first_n_replicas_cover_as_many_zones_as_they_can(members, key, n):
    ring = Ring(members)
    pref = ring.preference(key, n)
    assert len(pref) == len(set(pref)) == min(n, len(members))
    assert len({members[m] for m in pref}) == min(n, len(set(members.values())))
    assert pref == zone_rank_order(members, key)[:n] == ring.walk(key)[:n]


@given(zone_maps, keys)
def test_one_zone_is_the_plain_ring_and_zones_do_not_depend_on_order(members, key):
    assert Ring(dict.fromkeys(members, "dc1")).walk(key) == Ring(members.keys()).walk(key)
    reordered = dict(sorted(members.items(), reverse=True))
    assert Ring(reordered).preference(key, 3) == Ring(members).preference(key, 3)
    assert Ring(members).zones == dict(sorted(members.items()))


@given(zone_maps, keys, st.text("ijk", min_size=1, max_size=4), st.data())
def test_a_member_joining_a_known_zone_only_takes_keys(members, key, new, data):
    new = "new-" + new
    zone = data.draw(st.sampled_from(sorted(set(members.values()))))
    before, after = Ring(members), Ring({**members, new: zone})
    for n in range(1, len(members) + 2):
        assert set(after.preference(key, n)) - set(before.preference(key, n)) <= {new}


@given(zone_maps, keys)
def test_fallbacks_beyond_the_preference_list_also_spread_over_zones(members, key):
    """The coordinator's stand-ins come after the preference list in the walk: every prefix of
    the walk has as many zones as a prefix that long can have."""
    walk = Ring(members).walk(key)
    sizes = Counter(members.values())
    for i in range(1, len(walk) + 1):
        count = Counter(members[m] for m in walk[:i])
        # No zone is two members ahead of another, unless that other has no member left.
        assert all(count[a] <= count[b] + 1 or count[b] == sizes[b] for a in sizes for b in sizes), walk[:i]


ZONED = {f"{zone}-{i}": zone for zone in ("eu", "us", "ap") for i in range(4)}


def test_three_zones_each_hold_one_copy_of_every_key_spread_evenly_inside_the_zone():
    ring = Ring(ZONED)
    held = Counter()
    for k in KEYS:
        pref = ring.preference(k, 3)
        assert sorted(ZONED[m] for m in pref) == ["ap", "eu", "us"]
        held.update(pref)
    mean = len(KEYS) / 4  # each zone's copies over its 4 members
    assert max(held.values()) / mean <= 1.15 and min(held.values()) / mean >= 0.85, held
    share = ring.share(3)
    assert abs(sum(share.values()) - 3) < 0.01
    assert all(abs(share[m] - held[m] / len(KEYS)) < 0.02 for m in ZONED), (share, held)


def test_a_zone_of_one_member_holds_a_copy_of_everything_and_a_lost_zone_leaves_two():
    members = {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "c1": "c"}
    ring = Ring(members)
    assert ring.share(3)["b1"] == ring.share(3)["c1"] == 1.0
    for k in KEYS[:2000]:
        pref = ring.preference(k, 3)
        for zone in "abc":
            assert sum(members[m] != zone for m in pref) == 2  # any zone lost: two copies remain
    assert Ring([]).share(3) == {} and Ring(["solo"]).share(3) == {"solo": 1.0}
