"""Every membership knob, documented beside its default (hashicorp/memberlist's Config is the model).

`MembershipConfig()` is memberlist's DefaultLANConfig; `lan()`, `local()` and `wan()` are its three
profiles (memberlist HEAD values, anchors §1.2). Timers scale with the cluster size N as memberlist
scales them (anchors §1.3); the formulas live next to their users (suspicion.py, broadcast.py,
pushpull.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from taskmaster.transport.auth import KEY_BYTES


@dataclass(frozen=True)
class MembershipConfig:
    # Failure detection (SWIM)
    probe_interval: float = 1.0
    """Seconds between probes of one random member (round robin over a shuffled list)."""
    probe_timeout: float = 0.5
    """Wait for a direct ack before asking helpers (the 99th-percentile RTT). Not stretched by the
    local health multiplier: waiting longer does not get a lost UDP packet through."""
    indirect_checks: int = 3
    """k: helpers asked to ping the target for us when the direct ping gets no ack."""
    disable_tcp_pings: bool = False
    """When False, a failed UDP probe is also tried over TCP, so a node cut off from UDP only is
    not declared dead."""

    # Suspicion (Lifeguard dogpile)
    suspicion_mult: int = 4
    """min suspicion timeout = suspicion_mult * max(1, log10(N)) * probe_interval; the timer needs
    suspicion_mult - 2 independent confirmations to come down from max to min."""
    suspicion_max_timeout_mult: int = 6
    """max suspicion timeout = this * min. A lone (possibly unhealthy) accuser waits this long."""

    # Lifeguard self-awareness
    awareness_max_multiplier: int = 8
    """The local health score ranges over 0..this-1; a probe round lasts (score+1) intervals."""

    # Dissemination
    retransmit_mult: int = 4
    """Each update is piggybacked retransmit_mult * ceil(log10(N+1)) times (λ·log N)."""
    gossip_interval: float = 0.2
    """Seconds between gossip rounds; a round only sends when updates are queued."""
    gossip_nodes: int = 3
    """Members sent queued updates each gossip round (the fanout)."""
    gossip_to_the_dead_time: float = 30.0
    """Dead members still get gossip this long (so they can learn of it and refute), then leave the
    probe list."""

    # Anti-entropy (TCP)
    push_pull_interval: float = 30.0
    """Full state exchange with one random member; scaled up above 32 members."""
    tcp_timeout: float = 10.0
    """Deadline of one stream request (connect + request + reply)."""

    # Reconnect and memory of departed members (Serf's additions to memberlist)
    reconnect_interval: float = 30.0
    """How often the cluster tries to reach a member it declared dead (heals partitions)."""
    reconnect_timeout: float = 24 * 3600.0
    """Dead members are tried and listed this long after leaving the probe list."""
    tombstone_timeout: float = 24 * 3600.0
    """Members that left are listed (as "left") this long."""

    # Joining
    join_retries: int = 5
    """A join that reaches nobody is retried this many times before it fails."""
    join_backoff: float = 0.5
    """First wait between join attempts; doubles each retry."""
    join_max_backoff: float = 8.0
    """Longest wait between join attempts."""

    # Sizes
    packet_size: int = 1400
    """Largest UDP packet sent or accepted, envelope included (memberlist's UDPBufferSize)."""
    max_frame: int = 32 << 20
    """Largest TCP frame accepted (a push-pull carries every member: ~150 B each)."""
    meta_max_bytes: int = 512
    """Member metadata is gossiped with every alive message; larger is refused with ValueError."""

    # Security
    keyring: tuple[bytes, ...] = field(default=(), repr=False)
    """Cluster keys (32 bytes each): with any, every packet and frame is AES-GCM sealed with the
    first and opened with any of them. Empty: plaintext, and sealed input is dropped."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyring", tuple(self.keyring))
        for key in self.keyring:
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ValueError(f"cluster keys must be {KEY_BYTES} bytes")
        if self.probe_timeout >= self.probe_interval:
            raise ValueError("probe_timeout must be shorter than probe_interval")
        if self.packet_size < 512:
            raise ValueError("packet_size below 512 bytes cannot carry a full alive message")

    @classmethod
    def lan(cls, **overrides) -> MembershipConfig:
        """memberlist DefaultLANConfig: a datacenter network."""
        return cls(**overrides)

    @classmethod
    def local(cls, **overrides) -> MembershipConfig:
        """memberlist DefaultLocalConfig, but probing every 0.3 s (1 s) with a 0.1 s timeout (0.2 s)
        and retransmitting with LAN's multiplier 4 (2): on one host a round trip takes microseconds,
        and ~2 s detection of a killed node on all 10 members needs it (scripts/bench_membership.py:
        p50 1.5-1.7 s, p99 2.3 s). The timeout stays well under half the interval so a helper's nack
        (sent after its own timeout) arrives before the probe round ends; otherwise healthy nodes
        count missed nacks and raise their own health score. Lifeguard and re-announcing to stale
        accusers keep stalling nodes alive (the 60 s stall test)."""
        base = cls(probe_interval=0.3, probe_timeout=0.1, indirect_checks=1, suspicion_mult=3, retransmit_mult=4,
                   gossip_interval=0.1, gossip_to_the_dead_time=15.0, push_pull_interval=15.0,
                   tcp_timeout=1.0, reconnect_interval=5.0)
        return replace(base, **overrides)

    @classmethod
    def wan(cls, **overrides) -> MembershipConfig:
        """memberlist DefaultWANConfig, for members in several zones (datacenters), but with a 2 s
        probe timeout (3 s). A helper's nack for a dead target comes back 2 x probe_timeout + one
        round trip after the probe was sent; with 3 s that is past the 5 s round, so every healthy
        prober that meets a dead member counts all k nacks as missed and stretches its own probing
        up to 4x (the seeded simulation shows it: local health scores of 3 after a zone outage, 0
        with 2 s). 2 s still waits 13x the 150 ms round trip between zones, and a nack is back in
        time up to ~1 s of round trip. Measured with 3 zones at 50-150 ms (scripts/sim_swim.py
        --profile wan --zones 3): a crash is known to every member in ~40 s (suspicion's 30 s
        minimum dominates), with no false positives."""
        base = cls(probe_interval=5.0, probe_timeout=2.0, suspicion_mult=6, gossip_interval=0.5,
                   gossip_nodes=4, gossip_to_the_dead_time=60.0, push_pull_interval=60.0,
                   tcp_timeout=30.0)
        return replace(base, **overrides)

    @classmethod
    def profile(cls, name: str, **overrides) -> MembershipConfig:
        """The profile called `name` ("lan", "local" or "wan"), for a --profile flag."""
        makers = {"lan": cls.lan, "local": cls.local, "wan": cls.wan}
        if name not in makers:
            raise ValueError(f"unknown membership profile {name!r} (expected lan, local or wan)")
        return makers[name](**overrides)
