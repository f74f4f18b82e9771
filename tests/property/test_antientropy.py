"""Anti-entropy between real RocksDB replicas wired to each other in-process.

Each replica is a `Store` in its own directory, a `DigestIndex` rebuilt from it, and an `AntiEntropy`
whose `call` looks up the peer's handler and awaits it, with a msgpack round trip of payload and
reply (so anything that could not cross the wire fails the test). Documents are grown with the real
`Doc` API by random operations on three replicas with partial syncs (strategies.histories and
task_histories), so replicas hold overlapping, diverged, missing and equal versions of each key.

After an exchange every replica holds, for every key, the CRDT merge of all original versions,
byte for byte, and all digest roots are equal.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import INDEX, histories, scaled, settings, task_histories

from taskmaster.crdt import Doc, decode, encode, merge
from taskmaster.replication.antientropy import LISTED_PER_DOC, AntiEntropy
from taskmaster.storage import Store, doc_key
from taskmaster.storage.digest import SEGMENTS, DigestIndex, partition_of
from taskmaster.storage.rocks import DOC, SEP

NAMES = ("a", "b", "c")
PARTITIONS = [doc_key(p, t, "") for p in ("/p1", "/p2") for t in ("master", "feat")]
KEYS = [p + d for p in PARTITIONS for d in (b"t1", b"t2", b"t3")]
UNUSED = doc_key("/p3", "master", "")  # compared too: empty on every side


def _wire(value: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False, strict_map_key=False)


class Replica:
    """A node's storage and anti-entropy, as node.py wires them (`keeps=False`: a peer that acks
    pushed documents without storing them)."""

    def __init__(self, name: str, path: str, network: dict[str, Replica], max_docs: int = 2000,
                 keeps: bool = True):
        self.name = name
        self.store = Store(path)
        self.digest = DigestIndex()
        self.network = network
        self.log: list[tuple[str, Any, Any]] = []  # (method, payload, reply) of calls made by this replica
        self.ae = AntiEntropy(self.digest, self.read, self.apply if keeps else self.discard, self.call, max_docs)
        network[name] = self

    def load(self, docs: dict[bytes, Doc]) -> None:
        if docs:
            self.store.write({key: encode(doc) for key, doc in docs.items()})
        self.digest.rebuild(self.store.scan(DOC + SEP))  # as at startup

    def read(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.store.get(key) for key in keys]

    async def apply(self, docs: list[tuple[bytes, bytes]]) -> int:
        changed: dict[bytes, bytes] = {}
        try:  # decode and merge everything before writing anything
            for key, value in docs:
                stored = self.store.get(key)
                merged = encode(merge(decode(stored) if stored is not None else Doc(), decode(value)))
                if merged != stored:
                    changed[key] = merged
        except Exception as exc:
            raise ValueError(f"not a document: {exc}") from exc
        if changed:
            self.store.write(changed)
            await self.store.durable()
            for key, value in changed.items():
                self.digest.update(key, value)
        return len(changed)

    async def discard(self, docs: list[tuple[bytes, bytes]]) -> int:
        return 0

    async def call(self, peer: str, method: str, payload: Any) -> Any:
        reply = _wire(await self.network[peer].ae.handlers[method](self.name, _wire(payload)))
        self.log.append((method, payload, reply))
        return reply

    def contents(self) -> dict[bytes, bytes]:
        return dict(self.store.scan(DOC + SEP))


class Cluster:
    """`n` replicas in temporary directories."""

    def __init__(self, n: int, max_docs: int = 2000, keeps: tuple[bool, ...] = (True, True, True)):
        self.dir = tempfile.mkdtemp(prefix="tm-ae-")
        self.network: dict[str, Replica] = {}
        self.replicas = [Replica(NAMES[i], f"{self.dir}/{NAMES[i]}", self.network, max_docs, keeps[i])
                         for i in range(n)]

    def close(self) -> None:
        for r in self.replicas:
            r.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- generated worlds: key -> each replica's version (None: the replica lacks the key) --------------
# Every key is held by at least one replica.
def _worlds(n: int) -> st.SearchStrategy[dict[bytes, list[Doc | None]]]:
    def build(draw) -> dict[bytes, list[Doc | None]]:
        world = {}
        for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=8, unique=True)):
            docs = draw(histories | task_histories).docs
            present = [draw(INDEX) % 4 != 0 for _ in range(n)]  # a replica lacks a key 1 time in 4
            if any(present):
                world[key] = [docs[i % len(docs)] if present[i] else None for i in range(n)]
        return world

    return st.composite(build)()


def _load(cluster: Cluster, world: dict[bytes, list[Doc | None]]) -> None:
    for i, replica in enumerate(cluster.replicas):
        replica.load({key: versions[i] for key, versions in world.items() if versions[i] is not None})


def _expected(world: dict[bytes, list[Doc | None]]) -> dict[bytes, bytes]:
    """Every key as the merge of all its versions."""
    return {key: encode(functools.reduce(merge, (v for v in versions if v is not None), Doc()))
            for key, versions in world.items()}


def _assert_converged(cluster: Cluster, expected: dict[bytes, bytes]) -> None:
    for replica in cluster.replicas:
        assert replica.contents() == expected, replica.name
        rebuilt = DigestIndex()
        rebuilt.rebuild(replica.store.scan(DOC + SEP))
        for p in [*PARTITIONS, UNUSED]:  # the live index agrees with the store and with the others
            assert replica.digest.root(p) == rebuilt.root(p) == cluster.replicas[0].digest.root(p)


def _assert_bounded(replica: Replica, max_docs: int) -> None:
    for method, payload, reply in replica.log:
        if method == "ae.keys":
            assert len(reply["docs"]) <= max_docs and len(reply["want"]) <= max_docs
        if method == "ae.push":
            assert len(payload["docs"]) <= max_docs


def _differing(world: dict[bytes, list[Doc | None]], i: int, j: int) -> set[bytes]:
    def stored(v: Doc | None) -> bytes | None:
        return encode(v) if v is not None else None

    return {partition_of(k) for k, versions in world.items() if stored(versions[i]) != stored(versions[j])}


async def _assert_quiet(a: Replica, b: Replica) -> None:
    """An exchange between equal replicas is one "ae.roots" call and moves nothing."""
    a.log.clear()
    again = await a.ae.exchange(b.name, [*PARTITIONS, UNUSED])
    assert [m for m, _, _ in a.log] == ["ae.roots"] and a.log[0][2] == {}
    assert (again.partitions_differing, again.docs_received, again.docs_sent, again.docs_changed_here) == (0,) * 4
    assert again.partitions_compared == len(PARTITIONS) + 1


# ---- convergence -------------------------------------------------------------------------------------
@settings(max_examples=scaled(0.1))
@given(_worlds(2), st.sampled_from([1, 2, 3, 2000]))
def test_one_exchange_makes_two_replicas_identical(world, max_docs):
    async def run():
        with Cluster(2, max_docs) as cluster:
            _load(cluster, world)
            a, b = cluster.replicas
            result = await a.ae.exchange("b", [*PARTITIONS, UNUSED])
            expected = _expected(world)
            _assert_converged(cluster, expected)
            _assert_bounded(a, max_docs)
            assert result.partitions_compared == len(PARTITIONS) + 1
            assert result.partitions_differing == len(_differing(world, 0, 1))
            assert result.docs_changed_here == sum(
                1 for k, (va, _) in world.items() if (encode(va) if va is not None else None) != expected[k])
            assert result.docs_received <= len(world) and result.docs_sent <= len(world)
            await _assert_quiet(a, b)
            await _assert_quiet(b, a)

    asyncio.run(run())


@settings(max_examples=scaled(0.1))
@given(_worlds(3), st.sampled_from([1, 3, 2000]))
def test_a_ring_of_exchanges_makes_three_replicas_identical(world, max_docs):
    async def run():
        with Cluster(3, max_docs) as cluster:
            _load(cluster, world)
            a, b, c = cluster.replicas
            for x, y in ((a, b), (b, c), (c, a)):
                await x.ae.exchange(y.name, [*PARTITIONS, UNUSED])
            _assert_converged(cluster, _expected(world))
            for r in cluster.replicas:
                _assert_bounded(r, max_docs)
            await _assert_quiet(a, c)

    asyncio.run(run())


async def test_many_differing_documents_move_in_bounded_rounds():
    """Far more differences than `max_docs`: several rounds, each within bounds, listings capped."""
    max_docs = 7
    with Cluster(2, max_docs) as cluster:
        a, b = cluster.replicas
        world: dict[bytes, list[Doc | None]] = {}
        for i in range(400):
            key = doc_key("/big", "master" if i % 2 else "feat", f"t{i}")
            mine, theirs = Doc().set("title", f"a{i}", 10 + i, "n1"), Doc().set("status", "done", 20 + i, "n2")
            world[key] = [mine if i % 3 else None, theirs.add("dependencies", i, 30, "n2") if i % 5 else None]
        world = {k: v for k, v in world.items() if v != [None, None]}
        _load(cluster, world)
        result = await a.ae.exchange("b", [doc_key("/big", "master", ""), doc_key("/big", "feat", "")])
        _assert_converged_big(cluster, _expected(world))
        _assert_bounded(a, max_docs)
        keys_calls = [(payload, reply) for method, payload, reply in a.log if method == "ae.keys"]
        assert len(keys_calls) >= len(world) / (2 * max_docs)  # many rounds, at most max_docs each way
        assert a.log[-1][0] == "ae.roots" and a.log[-1][2] == {}  # and it stopped because roots matched
        for payload, _ in keys_calls:
            sizes = [len(e) for segments in payload.values() for e in segments.values()]
            assert sum(sizes) <= LISTED_PER_DOC * max_docs or len(sizes) == 1
        assert sum(len(s) for s in keys_calls[0][0].values()) < 2 * SEGMENTS  # round 1 listed only a part
        assert result.partitions_differing == 2
        assert result.docs_received + result.docs_sent >= len(world)


def _assert_converged_big(cluster: Cluster, expected: dict[bytes, bytes]) -> None:
    a, b = cluster.replicas
    assert a.contents() == b.contents() == expected
    for p in (doc_key("/big", "master", ""), doc_key("/big", "feat", "")):
        assert a.digest.root(p) == b.digest.root(p) != a.digest.empty_root


async def test_a_peer_that_does_not_keep_what_it_is_sent_cannot_make_the_exchange_spin():
    with Cluster(2, keeps=(True, False)) as cluster:
        a, b = cluster.replicas
        docs = {doc_key("/p1", "master", f"t{i}"): Doc().set("title", str(i), 5, "n1") for i in range(5)}
        a.load(docs)
        b.load({})
        result = await a.ae.exchange("b", PARTITIONS)
        # round 1 pushes the five documents; round 2 finds the same five and nothing new: stop
        assert [m for m, _, _ in a.log] == ["ae.roots", "ae.keys", "ae.push"] * 2
        assert result.docs_sent == 10 and result.docs_received == 0
        assert b.contents() == {}


async def test_empty_partition_list_calls_nobody():
    with Cluster(2) as cluster:
        a, _ = cluster.replicas
        a.load({KEYS[0]: Doc().set("x", 1, 1, "n1")})
        result = await a.ae.exchange("b", [])
        assert a.log == [] and result.partitions_compared == 0


# ---- bad input from a peer -----------------------------------------------------------------------------
GOOD_KEY = KEYS[0]
P0 = partition_of(GOOD_KEY)


def _bad_requests(digest: DigestIndex) -> list[tuple[str, Any]]:
    seg = digest.segment_of(GOOD_KEY)
    other_key = next(k for k in (P0 + b"t%d" % i for i in range(100)) if digest.segment_of(k) != seg)
    return [
        ("ae.roots", [P0]),
        ("ae.roots", {b"h\0x": b"r"}),
        ("ae.roots", {P0 + b"t1": b"r"}),  # a document key, not a partition
        ("ae.roots", {"d\0/p1\0master\0": b"r"}),
        ("ae.roots", {P0: "root"}),
        ("ae.keys", {P0: [seg]}),
        ("ae.keys", {P0: {seg: [GOOD_KEY]}}),
        ("ae.keys", {P0: {64: {}}}),
        ("ae.keys", {P0: {-1: {}}}),
        ("ae.keys", {P0: {True: {}}}),
        ("ae.keys", {P0: {seg: {other_key: 1}}}),  # listed under the wrong segment
        ("ae.keys", {PARTITIONS[1]: {seg: {GOOD_KEY: 1}}}),  # under the wrong partition
        ("ae.keys", {P0: {seg: {GOOD_KEY: -1}}}),
        ("ae.keys", {P0: {seg: {GOOD_KEY: "1"}}}),
        ("ae.push", [[GOOD_KEY, b"x"]]),
        ("ae.push", {}),
        ("ae.push", {"docs": [[GOOD_KEY]]}),
        ("ae.push", {"docs": [[GOOD_KEY, "text"]]}),
        ("ae.push", {"docs": [[b"h\0hint", encode(Doc())]]}),
        ("ae.push", {"docs": [[GOOD_KEY, encode(Doc())], [GOOD_KEY, encode(Doc())]]}),
        ("ae.push", {"docs": [[GOOD_KEY, b"\xc1garbage"]]}),
        ("ae.push", {"docs": [[KEYS[1], encode(Doc())], [GOOD_KEY, b"\x92\x01"]]}),  # one bad value spoils all
        ("ae.push", {"docs": [[k, encode(Doc().set("x", 1, 1, "n"))] for k in KEYS[:3]]}),  # over max_docs
    ]


async def test_malformed_requests_raise_value_error_and_change_nothing():
    with Cluster(1, max_docs=2) as cluster:
        (r,) = cluster.replicas
        r.load({GOOD_KEY: Doc().set("title", "kept", 3, "n1")})
        before, root = r.contents(), r.digest.root(P0)
        for method, payload in _bad_requests(r.digest):
            with pytest.raises(ValueError):
                await r.ae.handlers[method]("peer", _wire(payload))
            assert r.contents() == before and r.digest.root(P0) == root, (method, payload)


wire_bytes = st.sampled_from([GOOD_KEY, P0, b"", b"d\0", b"\x93\x90\x90\x90", encode(Doc().set("x", 1, 1, "n"))]) \
    | st.binary(max_size=8)
wire_keys = wire_bytes | st.text(max_size=3) | st.integers(-2, 70)
wire_values = st.recursive(
    wire_bytes | st.integers(-1, 2**64 - 1) | st.text(max_size=3) | st.none() | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(wire_keys, inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def lone():
    """One replica shared by the examples below (each compares the store before and after)."""
    with Cluster(1) as cluster:
        cluster.replicas[0].load({GOOD_KEY: Doc().set("title", "kept", 3, "n1")})
        yield cluster.replicas[0]


@settings(max_examples=scaled(0.5))
@given(method=st.sampled_from(["ae.roots", "ae.keys", "ae.push"]),
       payload=wire_values | st.dictionaries(wire_keys, wire_values))
def test_any_payload_is_answered_or_refused_with_value_error(lone, method, payload):
    async def run():
        before = lone.contents()
        try:
            reply = await lone.ae.handlers[method]("peer", _wire(payload))
        except ValueError:
            assert lone.contents() == before
            return
        _wire(reply)  # whatever is answered crosses the wire
        if method != "ae.push":
            assert lone.contents() == before  # comparing never writes

    asyncio.run(run())


class Liar:
    """A responder that answers one method with a forged reply and the others truthfully."""

    def __init__(self, honest: Replica, method: str, forge):
        self.ae = SimpleNamespace(handlers=dict(honest.ae.handlers))

        async def forged(peer: str, payload: Any) -> Any:
            return forge(payload, _wire(await honest.ae.handlers[method](peer, payload)))

        self.ae.handlers[method] = forged


def _forgeries() -> list[tuple[str, Any]]:
    elsewhere = KEYS[-1]  # in a partition that was not listed
    return [
        ("ae.roots", lambda req, rep: [rep]),
        ("ae.roots", lambda req, rep: {UNUSED: [0] * 64}),  # not asked about
        ("ae.roots", lambda req, rep: {p: s[:10] for p, s in rep.items()}),
        ("ae.roots", lambda req, rep: {p: [-1] * 64 for p in rep}),
        ("ae.keys", lambda req, rep: {"docs": rep["docs"]}),
        ("ae.keys", lambda req, rep: {**rep, "docs": rep["docs"] + [[elsewhere, encode(Doc())]]}),
        ("ae.keys", lambda req, rep: {**rep, "want": rep["want"] + [elsewhere]}),
        ("ae.keys", lambda req, rep: {**rep, "docs": [[k, b"\xc1"] for k, _ in rep["docs"]]}),
        ("ae.keys", lambda req, rep: {**rep, "docs": [[k, v, v] for k, v in rep["docs"]]}),
    ]


@pytest.mark.parametrize("method, forge", _forgeries())
async def test_forged_replies_raise_value_error_and_apply_nothing(method, forge):
    with Cluster(2) as cluster:
        a, b = cluster.replicas
        a.load({KEYS[0]: Doc().set("title", "a", 3, "n1"), KEYS[1]: Doc().set("title", "a", 3, "n1")})
        b.load({KEYS[0]: Doc().set("title", "b", 4, "n2"), KEYS[2]: Doc().set("title", "b", 4, "n2")})
        before, root = a.contents(), a.digest.root(P0)
        cluster.network["b"] = Liar(b, method, forge)
        with pytest.raises(ValueError):
            await a.ae.exchange("b", PARTITIONS)
        assert a.contents() == before and a.digest.root(P0) == root
