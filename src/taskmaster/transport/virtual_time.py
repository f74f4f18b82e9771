"""Virtual time for the simulator: an asyncio event loop whose clock jumps to the next timer.

Nothing sleeps: when no callback is ready, time advances straight to the earliest timer, so a
thousand nodes' worth of ten minutes runs as fast as the callbacks themselves. Because it is a
real asyncio loop, protocol code (timers, futures, tasks, `asyncio.sleep`, `wait_for`) runs on it
unchanged, and a run is a pure function of its seed (equal times fire in scheduling order).

`StallingClock` wraps it for one simulated slow node: while the node is stalled (its event loop
"blocked"), its timers fire late, as they would in a process that cannot run.
"""

from __future__ import annotations

import math
import random
from asyncio import base_events
from collections.abc import Callable
from heapq import heappop, heappush


class _Timer:
    """A scheduled callback (the parts of asyncio.TimerHandle that asyncio and we use)."""

    __slots__ = ("_when", "_callback", "_args", "_context", "_cancelled", "_loop")

    def __init__(self, when: float, callback: Callable, args: tuple, context, loop):
        self._when, self._callback, self._args, self._context = when, callback, args, context
        self._cancelled = False
        self._loop = loop

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled

    def when(self) -> float:
        return self._when

    def _run(self) -> None:
        try:
            if self._context is None:
                self._callback(*self._args)
            else:
                self._context.run(self._callback, *self._args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # as asyncio does: report, keep the loop running
            self._loop.call_exception_handler({"message": f"exception in timer {self._callback!r}",
                                               "exception": exc})


class VirtualTimeLoop(base_events.BaseEventLoop):
    def __init__(self, start: float = 0.0):
        super().__init__()
        self._now = start
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = 0
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._now

    def call_at(self, when, callback, *args, context=None):
        self._seq += 1
        timer = _Timer(when, callback, args, context, self)
        heappush(self._timers, (when, self._seq, timer))
        return timer

    def call_later(self, delay, callback, *args, context=None):
        return self.call_at(self._now + delay, callback, *args, context=context)

    def _run_once(self) -> None:
        ready = self._ready
        if ready:
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
            return
        if self._stopping:
            return
        timers = self._timers
        while timers:
            when, _, timer = heappop(timers)
            if timer._cancelled:
                continue
            if when > self._now:
                self._now = when
            timer._run()
            return
        raise RuntimeError("virtual time loop: nothing left to run, the awaited result can never come")

    def _process_events(self, event_list) -> None:
        pass

    def _write_to_self(self) -> None:
        pass  # single-threaded: nothing to wake


class Stall:
    """When a slow node is frozen: pauses of `pause` seconds separated by random gaps."""

    def __init__(self, rng: random.Random, pause: float = 0.5, gap: tuple[float, float] = (0.2, 1.0),
                 start: float = 0.0, until: float = math.inf):
        self._rng, self.pause, self._gap, self._until = rng, pause, gap, until
        self._next = start + rng.uniform(*gap)

    def resume_time(self, now: float) -> float:
        """`now` if the node is running at `now`, else the end of the current pause."""
        while now >= self._next + self.pause:
            self._next += self.pause + self._rng.uniform(*self._gap)
        if self._next <= now < self._until:
            return self._next + self.pause
        return now


class _StalledTimer:
    __slots__ = ("handle",)

    def cancel(self) -> None:
        self.handle.cancel()


class StallingClock:
    """The loop's clock as seen by a node that stalls: callbacks due while frozen run at resume."""

    def __init__(self, loop: VirtualTimeLoop, stall: Stall):
        self._loop, self.stall = loop, stall

    def time(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable, *args):
        return self.call_at(self._loop.time() + delay, callback, *args)

    def call_at(self, when: float, callback: Callable, *args):
        timer = _StalledTimer()
        timer.handle = self._loop.call_at(when, self._fire, timer, callback, args)
        return timer

    def _fire(self, timer: _StalledTimer, callback: Callable, args: tuple) -> None:
        now = self._loop.time()
        resume = self.stall.resume_time(now)
        if resume > now:
            timer.handle = self._loop.call_at(resume, self._fire, timer, callback, args)
        else:
            callback(*args)
