"""Hybrid logical clock: monotonic whatever the wall clock does, bounded drift, clamped remotes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from strategies import EPOCH_MS, FakeClock

from taskmaster.crdt.hlc import COUNTER_BITS, COUNTER_MASK, HLC, Stamp, physical

MAX_OFFSET = 500

# A wall clock that jumps forwards and backwards (NTP steps, VM pauses), and remote timestamps
# from well behind to far ahead of it.
clock_moves = st.integers(-2_000, 2_000)
remote_offsets = st.integers(-3_000, 3_000)  # ms relative to the local wall clock
events = st.lists(
    st.tuples(st.just("tick"), clock_moves) | st.tuples(st.just("now"), st.integers(1, 5))
    | st.tuples(st.just("observe"), remote_offsets, st.integers(0, COUNTER_MASK)),
    max_size=40,
)


def _ts(ms: int, counter: int = 0) -> int:
    return ms << COUNTER_BITS | counter


@given(events)
def test_timestamps_only_go_up_and_remotes_are_clamped(script):
    clock = FakeClock()
    hlc = HLC("n1", clock=clock, max_offset_ms=MAX_OFFSET)
    last = 0  # the greatest timestamp issued or accepted so far
    highest_wall = clock.ms
    clamped = 0
    for event in script:
        if event[0] == "tick":
            clock.ms += event[1]
            highest_wall = max(highest_wall, clock.ms)
        elif event[0] == "now":
            for _ in range(event[1]):
                ts = hlc.now()
                assert ts > last  # strictly increasing, even when the wall clock went back
                assert physical(ts) >= clock.ms  # never behind the wall clock
                last = ts
        else:
            remote = _ts(clock.ms + event[1], event[2])
            limit = _ts(clock.ms + MAX_OFFSET, COUNTER_MASK)
            accepted = hlc.observe(remote)
            if remote > limit:
                clamped += 1
                assert accepted == limit
            else:
                assert accepted == remote
            last = max(last, accepted)
        assert hlc.clamped == clamped
        # A remote clock cannot drag ours more than max_offset ahead of the wall clock (+1 ms for
        # the counter carry out of a clamped 0xFFFF counter).
        assert physical(last) <= highest_wall + MAX_OFFSET + 1
    assert hlc.now() > last


@given(st.integers(0, 2**40), st.integers(0, COUNTER_MASK), st.integers(1, 400))
def test_counter_carries_into_milliseconds_under_a_frozen_clock(ms, counter, calls):
    clock = FakeClock(ms)
    hlc = HLC("n1", clock=clock, max_offset_ms=MAX_OFFSET)
    start = _ts(ms, counter)
    assert hlc.observe(start) == start
    for k in range(1, calls + 1):
        ts = hlc.now()
        assert ts == start + k  # one tick of the counter, carrying into the milliseconds at 0xFFFF
        assert physical(ts) == (start + k) >> COUNTER_BITS and ts & COUNTER_MASK == (start + k) % (1 << 16)


@given(st.integers(0, 2**40), st.integers(0, 1_000))
def test_a_remote_exactly_at_the_limit_is_accepted_one_past_it_is_clamped(ms, offset):
    clock = FakeClock(ms)
    hlc = HLC("n1", clock=clock, max_offset_ms=offset)
    limit = _ts(ms + offset, COUNTER_MASK)
    assert hlc.observe(limit) == limit and hlc.clamped == 0
    assert hlc.observe(limit + 1) == limit and hlc.clamped == 1
    assert hlc.observe(limit + (1 << 30)) == limit and hlc.clamped == 2
    assert hlc.now() == limit + 1


@given(st.integers(0, 2**40), st.integers(-1_000, 1_000))
def test_observing_the_past_changes_nothing(ms, behind):
    clock = FakeClock(ms)
    hlc = HLC("n1", clock=clock)
    first = hlc.now()
    old = max(0, first - abs(behind))
    assert hlc.observe(old) == old and hlc.clamped == 0
    assert hlc.now() == first + 1


@given(st.integers(0, 2**47), st.sampled_from(["a", "b", "n1", "n2"]), st.sampled_from(["a", "b", "n1", "n2"]))
def test_stamps_order_by_time_then_node(ts, a, b):
    assert (Stamp(ts, a) < Stamp(ts + 1, b))
    assert (Stamp(ts, a) < Stamp(ts, b)) == (a < b)


def test_the_real_clock_gives_48_bit_milliseconds():
    hlc = HLC("n1")
    ts = hlc.now()
    assert physical(ts) > EPOCH_MS and ts < 1 << 64 and physical(ts) < 1 << 48
    assert hlc.stamp() > Stamp(ts, "n1")
