"""RocksDB store: key layout and prefix scans, atomic batches, group commit, the directory lock."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from taskmaster.storage import Store, StoreLockedError, doc_key, project_prefix, split_doc_key


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "db"))
    yield s
    s.close()


def _keys(store: Store, prefix: bytes) -> list[tuple[str, str, str]]:
    return [split_doc_key(k) for k, _ in store.scan(prefix)]


def test_a_tag_is_one_prefix_scan_and_neighbours_do_not_bleed(store):
    docs = [("/p", "", "state"), ("/p", "a", "meta"), ("/p", "a", "t1"), ("/p", "a", "t2"),
            ("/p", "ab", "t1"), ("/p", "a-b", "t1"), ("/p", "b", "t1"), ("/p2", "a", "t1"),
            ("/", "a", "t1"), ("/p/q", "a", "t1"), ("/p", "é", "t1")]
    store.write({doc_key(*d): repr(d).encode() for d in docs})
    tag_a = doc_key("/p", "a", "")  # the tag's prefix: everything up to its docId
    assert _keys(store, tag_a) == [("/p", "a", "meta"), ("/p", "a", "t1"), ("/p", "a", "t2")]
    assert _keys(store, doc_key("/p", "ab", "")) == [("/p", "ab", "t1")]
    assert _keys(store, doc_key("/p", "é", "")) == [("/p", "é", "t1")]
    project = _keys(store, project_prefix("/p"))
    assert sorted(project) == sorted(d for d in docs if d[0] == "/p")
    assert project[0] == ("/p", "", "state")  # the project's own documents sort first
    assert _keys(store, project_prefix("/p2")) == [("/p2", "a", "t1")]
    assert all(v == repr(split_doc_key(k)).encode() for k, v in store.scan(project_prefix("/p")))


def test_doc_keys_round_trip():
    for parts in [("/home/me/proj", "master", "t0123abcd"), ("/", "", "state"), ("C:\\x y", "feat-1", "meta"),
                  ("/ünï/cödé", "tag_é", "report")]:
        assert split_doc_key(doc_key(*parts)) == parts


def test_a_batch_is_atomic_and_none_deletes(store):
    store.write({b"k1": b"1", b"k2": b"2"})
    store.write({b"k1": None, b"k2": b"two", b"k3": b"3"})
    assert (store.get(b"k1"), store.get(b"k2"), store.get(b"k3")) == (None, b"two", b"3")


async def test_acknowledged_writes_survive_a_reopen(tmp_path):
    path = str(tmp_path / "db")
    store = Store(path)
    for i in range(20):
        store.write({doc_key("/p", "master", f"t{i}"): b"x%d" % i})
    await store.durable()
    store.close()
    again = Store(path)
    try:
        assert [v for _, v in again.scan(project_prefix("/p"))] == sorted(b"x%d" % i for i in range(20))
    finally:
        again.close()


async def test_group_commit_flushes_once_for_many_writers_and_never_acknowledges_early(store, monkeypatch):
    flushes: list[int] = []  # for each finished flush: how many writes had been made when it started
    real_flush = store._flush

    def counted_flush():
        started_after = store._written
        real_flush()
        flushes.append(started_after)

    monkeypatch.setattr(store, "_flush", counted_flush)
    writers, rounds = 40, 3

    async def writer(n: int) -> None:
        for r in range(rounds):
            store.write({doc_key("/p", "master", f"w{n}-{r}"): b"v"})
            mine = store._written  # the sequence number of this write
            await store.durable()
            # Acknowledged only once a flush that started after this write has finished.
            assert any(started >= mine for started in flushes), (n, r, mine, flushes)
            await asyncio.sleep(0)  # let the others interleave their next writes

    await asyncio.gather(*(writer(n) for n in range(writers)))
    assert 0 < len(flushes) < writers  # one fsync served many writers
    assert len(list(store.scan(project_prefix("/p")))) == writers * rounds


async def test_durable_without_new_writes_does_not_flush(store, monkeypatch):
    calls = []
    monkeypatch.setattr(store, "_flush", lambda: calls.append(1))
    await store.durable()
    assert calls == []
    store.write({b"k": b"v"})
    await store.durable()
    await store.durable()
    assert calls == [1]


async def test_a_failed_flush_fails_its_waiters_and_the_next_call_retries(store, monkeypatch):
    real_flush = store._flush
    failures = [OSError("disk full")]

    def flaky():
        if failures:
            raise failures.pop()
        real_flush()

    monkeypatch.setattr(store, "_flush", flaky)
    store.write({b"k": b"v"})
    results = await asyncio.gather(store.durable(), store.durable(), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    await store.durable()  # retried: no longer failing
    assert store._synced == store._written


def test_a_second_open_of_the_same_directory_is_refused(tmp_path):
    path = str(tmp_path / "db")
    first = Store(path)
    try:
        with pytest.raises(StoreLockedError, match="in use"):
            Store(path)
        # Another process (a second taskmasterd) is refused too.
        code = (f"from taskmaster.storage import Store, StoreLockedError\n"
                f"try:\n    Store({path!r})\nexcept StoreLockedError as e:\n    print('locked:', e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.stdout.startswith("locked:") and "in use" in out.stdout, out.stderr
    finally:
        first.close()
    Store(path).close()  # free again once closed
