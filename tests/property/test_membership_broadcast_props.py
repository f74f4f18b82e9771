"""Broadcast queue properties, against a model of memberlist's TransmitLimitedQueue."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from taskmaster.membership.broadcast import BroadcastQueue, retransmit_limit

NAMES = st.sampled_from("abcdef")
OPS = st.lists(st.one_of(st.tuples(st.just("queue"), NAMES), st.tuples(st.just("take"), st.integers(0, 6))),
               max_size=80)
SIZE = 10


@given(ops=OPS, n=st.integers(1, 200))
def test_queue_matches_the_model(ops, n):
    """Equal-size updates: each take returns exactly the k least-sent (newest first among equals),
    never a superseded one, and nothing beyond the retransmit limit."""
    limit = retransmit_limit(2, n)
    q = BroadcastQueue(2, lambda: n)
    model: dict[str, list] = {}  # name -> [version, uid, transmits]
    version = uid = 0
    for op, arg in ops:
        if op == "queue":
            version += 1
            uid += 1
            q.queue(arg, f"{arg}{version:09d}".encode())
            model[arg] = [version, uid, 0]
        else:
            got = q.take(arg * SIZE)
            order = sorted(model.items(), key=lambda kv: (kv[1][2], -kv[1][1]))[:arg]
            assert got == [f"{name}{v[0]:09d}".encode() for name, v in order]
            for name, v in order:
                v[2] += 1
                if v[2] >= limit:
                    del model[name]
        assert len(q) == len(model)


@given(ops=st.lists(st.one_of(st.tuples(st.just("queue"), NAMES, st.integers(8, 300)),
                              st.tuples(st.just("take"), st.integers(0, 1400))), max_size=120),
       n=st.integers(1, 10_000))
def test_superseded_update_never_sent_after_its_successor_and_limit_respected(ops, n):
    limit = retransmit_limit(4, n)
    q = BroadcastQueue(4, lambda: n)
    queued: dict[str, int] = {}  # name -> newest version queued
    sent: dict[bytes, int] = {}
    version = 0
    for op, *args in ops:
        if op == "queue":
            name, size = args
            version += 1
            tag = f"{name}{version:09d}".encode()
            q.queue(name, tag + b"." * (size - len(tag)))
            queued[name] = version
        else:
            (budget,) = args
            got = q.take(budget)
            assert sum(map(len, got)) <= budget
            for data in got:
                name, v = chr(data[0]), int(data[1:10])
                assert v == queued[name], "a superseded update was sent after its successor was queued"
                sent[data] = sent.get(data, 0) + 1
                assert sent[data] <= limit
