"""The digest index: partitions, segment math, incremental updates against a rebuild, roots."""

from __future__ import annotations

import random

import pytest

from taskmaster.crdt import Doc, encode
from taskmaster.storage import Store, doc_key
from taskmaster.storage.digest import SEGMENTS, DigestIndex, doc_hash, partition_of
from taskmaster.storage.rocks import DOC, SEP


def _contents(index: DigestIndex) -> dict:
    """Everything observable about an index."""
    return {p: (index.root(p), index.segment_hashes(p), index.entries(p, range(index.segments)))
            for p in index.partitions()} | {"len": len(index)}


def _random_items(rng: random.Random, n: int) -> dict[bytes, bytes]:
    return {doc_key(f"/p{rng.randrange(3)}", rng.choice(["", "master", "feat"]), f"t{rng.randrange(10**6)}"):
            rng.randbytes(rng.randrange(1, 40)) for _ in range(n)}


def test_partition_of_is_the_tag_prefix():
    assert partition_of(doc_key("/home/me/p", "master", "t1")) == doc_key("/home/me/p", "master", "")
    assert partition_of(doc_key("/p", "", "state")) == b"d\0/p\0\0"
    assert partition_of(doc_key("/p", "a", "")) == doc_key("/p", "a", "")  # a partition is its own prefix
    for bad in (b"", b"d", b"d\0", b"d\0/p", b"d\0/p\0master", b"h\0/p\0master\0t1", b"x\0/p\0a\0b"):
        with pytest.raises(ValueError, match="not a document key"):
            partition_of(bad)


def test_doc_hash_is_64_bits_and_depends_on_key_and_value():
    k = doc_key("/p", "a", "t1")
    assert 0 <= doc_hash(k, b"v") < 1 << 64
    assert doc_hash(k, b"v") == doc_hash(k, b"v")
    assert len({doc_hash(k, b"v"), doc_hash(k, b"w"), doc_hash(doc_key("/p", "a", "t2"), b"v")}) == 3
    # the key is length-prefixed: moving bytes between key and value changes the hash
    assert doc_hash(b"d\0p\0a\0tx", b"y") != doc_hash(b"d\0p\0a\0t", b"xy")


def test_segment_hash_is_the_xor_of_its_doc_hashes_and_root_hashes_the_segments():
    index = DigestIndex()
    items = _random_items(random.Random(1), 500)
    index.rebuild(items.items())
    for p in index.partitions():
        expected = [0] * SEGMENTS
        for key, value in items.items():
            if partition_of(key) == p:
                assert 0 <= index.segment_of(key) < SEGMENTS
                expected[index.segment_of(key)] ^= doc_hash(key, value)
        assert index.segment_hashes(p) == expected
        other = DigestIndex()
        other.rebuild((k, v) for k, v in items.items() if partition_of(k) == p)
        assert other.root(p) == index.root(p) and len(index.root(p)) == 16


def test_keys_spread_evenly_over_segments():
    index = DigestIndex()
    counts = [0] * SEGMENTS
    for i in range(10_000):
        counts[index.segment_of(doc_key("/home/me/project", "master", f"t{i:08x}"))] += 1
    mean = 10_000 / SEGMENTS
    assert max(counts) < 1.4 * mean and min(counts) > 0.6 * mean


def test_incremental_updates_agree_with_a_rebuild_in_any_order():
    rng = random.Random(7)
    keys = list(_random_items(rng, 300))
    index = DigestIndex()
    final: dict[bytes, bytes] = {}
    for _ in range(3000):  # writes, overwrites and deletes
        key = rng.choice(keys)
        value = None if rng.random() < 0.2 else rng.randbytes(rng.randrange(1, 12))
        index.update(key, value)
        if value is None:
            final.pop(key, None)
        else:
            final[key] = value
    rebuilt = DigestIndex()
    items = list(final.items())
    rng.shuffle(items)
    rebuilt.rebuild(items)
    assert _contents(index) == _contents(rebuilt)
    assert len(index) == len(final)
    assert index.partitions() == sorted({partition_of(k) for k in final})


def test_rebuild_starts_over():
    index = DigestIndex()
    index.update(doc_key("/old", "a", "t1"), b"x")
    index.rebuild([(doc_key("/new", "a", "t1"), b"y")])
    assert index.partitions() == [doc_key("/new", "a", "")] and len(index) == 1
    assert index.root(doc_key("/old", "a", "")) == index.empty_root


def test_root_changes_iff_content_changes():
    index = DigestIndex()
    p = doc_key("/p", "a", "")
    k1, k2 = doc_key("/p", "a", "t1"), doc_key("/p", "a", "t2")
    empty = index.root(p)
    assert empty == index.empty_root == DigestIndex().root(b"d\0unknown\0x\0")
    index.update(k1, b"one")
    r1 = index.root(p)
    index.update(k1, b"one")  # the same value again: nothing changes
    assert index.root(p) == r1 and len(index) == 1
    index.update(k2, b"two")
    r12 = index.root(p)
    index.update(k1, b"ONE")
    r1b = index.root(p)
    assert len({empty, r1, r12, r1b}) == 4
    index.update(k1, b"one")
    assert index.root(p) == r12  # back to the same content, back to the same root
    index.update(k2, None)
    assert index.root(p) == r1
    index.update(k1, None)
    assert index.root(p) == empty and index.partitions() == [] and len(index) == 0
    index.update(k1, None)  # deleting an absent key is a no-op
    assert len(index) == 0


def test_partitions_are_independent():
    index = DigestIndex()
    a, b = doc_key("/p", "a", ""), doc_key("/p", "b", "")
    index.update(doc_key("/p", "a", "t1"), b"x")
    before = index.root(a)
    index.update(doc_key("/p", "b", "t1"), b"x")
    index.update(doc_key("/p", "ab", "t1"), b"x")
    assert index.root(a) == before != index.root(b)
    assert index.partitions() == [a, doc_key("/p", "ab", ""), b]


def test_entries_cover_each_document_once_by_segment():
    index = DigestIndex()
    items = _random_items(random.Random(3), 400)
    index.rebuild(items.items())
    for p in index.partitions():
        mine = {k: doc_hash(k, v) for k, v in items.items() if partition_of(k) == p}
        assert index.entries(p, range(SEGMENTS)) == mine
        per_segment = [index.entries(p, [s]) for s in range(SEGMENTS)]
        assert sum(len(e) for e in per_segment) == len(mine)
        for s, entries in enumerate(per_segment):
            assert all(index.segment_of(k) == s for k in entries)
        assert index.entries(p, [1, 5]) == per_segment[1] | per_segment[5]
        assert index.entries(p, []) == {} and index.entries(p, [SEGMENTS + 3]) == {}
    assert index.entries(b"d\0none\0x\0", range(SEGMENTS)) == {}


def test_segment_hashes_are_copies():
    index = DigestIndex()
    index.update(doc_key("/p", "a", "t1"), b"x")
    p = doc_key("/p", "a", "")
    index.segment_hashes(p)[0] ^= 12345
    index.segment_hashes(p).clear()
    assert sum(1 for h in index.segment_hashes(p) if h) == 1
    assert index.segment_hashes(b"d\0none\0x\0") == [0] * SEGMENTS


def test_other_keys_are_ignored_and_segment_count_is_a_parameter():
    index = DigestIndex(segments=8)
    index.update(b"h\0hint", b"x")
    index.update(DOC, b"x")
    assert len(index) == 0 and index.partitions() == []
    index.update(doc_key("/p", "a", "t1"), b"x")
    assert len(index.segment_hashes(doc_key("/p", "a", ""))) == 8
    assert index.empty_root != DigestIndex().empty_root  # roots only compare between equal shapes
    with pytest.raises(ValueError):
        DigestIndex(segments=0)


def test_an_index_rebuilt_from_a_real_store_matches_one_kept_on_every_write(tmp_path):
    store = Store(str(tmp_path / "db"))
    try:
        live = DigestIndex()
        rng = random.Random(5)
        for batch in range(20):
            items: dict[bytes, bytes | None] = {}
            for i in range(rng.randrange(1, 30)):
                key = doc_key("/proj", rng.choice(["master", "feat"]), f"t{rng.randrange(60)}")
                items[key] = encode(Doc().set("title", f"v{batch}.{i}", batch * 100 + i, "n1"))
            store.write(items)
            for key, value in items.items():
                live.update(key, value)
        store.write({b"z\0other": b"not a document"})
        rebuilt = DigestIndex()
        rebuilt.rebuild(store.scan(DOC + SEP))
        assert _contents(rebuilt) == _contents(live) and len(live) > 40
    finally:
        store.close()
