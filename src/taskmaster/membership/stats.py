"""Counters of one membership node (read by `Membership.metrics_snapshot`)."""

from __future__ import annotations

from collections import Counter


class Stats:
    __slots__ = ("probes_sent", "probes_failed", "suspicions_raised", "suspicions_refuted",
                 "packets_sent", "packets_received", "bytes_sent", "bytes_received",
                 "streams_sent", "streams_received", "dropped")

    def __init__(self) -> None:
        self.probes_sent = self.probes_failed = 0
        self.suspicions_raised = self.suspicions_refuted = 0
        self.packets_sent = self.packets_received = self.bytes_sent = self.bytes_received = 0
        self.streams_sent = self.streams_received = 0
        self.dropped: Counter[str] = Counter()
        """Discarded input by reason: auth, unencrypted, encrypted, truncated, oversized, version,
        malformed, unexpected."""
