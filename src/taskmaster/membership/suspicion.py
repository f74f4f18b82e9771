"""Lifeguard's dynamic suspicion timeout ("dogpile"), as memberlist's suspicion.go.

A suspicion starts at the max timeout and shrinks logarithmically toward the min with each
*independent* confirmation (another member also reporting the node suspect): a lone accuser, which
may be the sick one, waits long enough for the accused to refute; a node many peers cannot reach
is declared dead quickly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from taskmaster.transport.base import Clock, TimerHandle


def suspicion_timeouts(mult: int, max_mult: int, n: int, interval: float) -> tuple[float, float]:
    """(min, max): min = mult * max(1, log10(n)) * interval (the code's log10, not the doc's
    log(n+1)), max = max_mult * min."""
    low = mult * max(1.0, math.log10(max(n, 1))) * interval
    return low, max_mult * low


def remaining(confirmations: int, k: int, elapsed: float, low: float, high: float) -> float:
    """Time left once `confirmations` of the k expected have arrived after `elapsed` seconds."""
    frac = math.log(confirmations + 1) / math.log(k + 1)
    timeout = math.floor(1000 * (high - frac * (high - low))) / 1000  # ms steps, as memberlist
    return max(timeout, low) - elapsed


class Suspicion:
    """The timer of one suspected member; `on_timeout` declares it dead."""

    __slots__ = ("_clock", "_timer", "_on_timeout", "_seen", "k", "n", "low", "high", "start")

    def __init__(self, clock: Clock, accuser: str, k: int, low: float, high: float,
                 on_timeout: Callable[[], None]):
        self._clock = clock
        self._on_timeout = on_timeout
        self._seen = {accuser}  # the first accuser is not a confirmation
        self.k, self.n, self.low, self.high = k, 0, low, high
        self.start = clock.time()
        # With no confirmations to expect (tiny cluster) start at the min.
        self._timer: TimerHandle = clock.call_later(high if k >= 1 else low, on_timeout)

    def confirm(self, accuser: str) -> bool:
        """Count an independent accusation; True if it was new (so it is worth re-gossiping)."""
        if self.n >= self.k or accuser in self._seen:
            return False
        self._seen.add(accuser)
        self.n += 1
        left = remaining(self.n, self.k, self._clock.time() - self.start, self.low, self.high)
        self._timer.cancel()
        self._timer = self._clock.call_later(max(left, 0.0), self._on_timeout)
        return True

    def cancel(self) -> None:
        self._timer.cancel()
