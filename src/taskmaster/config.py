"""Every knob of a node, each with its default and why (hashicorp/memberlist's Config is the model).

`Config()` is a single node on loopback with embedded defaults: what `make run` starts.
"""

from __future__ import annotations

from dataclasses import dataclass


def split_hostport(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """"HOST:PORT", ":PORT" or "[v6]:PORT" -> (host, port). Port 0 means any free port."""
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]") or default_host
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"bad port in {value!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    return host, number


@dataclass
class Config:
    # Identity and storage
    name: str = ""
    """Node name, unique in the cluster and the HLC tie-break. Empty: generated once and kept in the
    data dir, so a restarted node is the same node."""
    data_dir: str = "./taskmaster-data"
    """RocksDB directory. One daemon per directory (RocksDB's lock enforces it)."""

    # HTTP: MCP, health, metrics
    http_host: str = "127.0.0.1"
    """Loopback by default: nobody off this machine can call tools unless told otherwise."""
    http_port: int = 7070
    token: str | None = None
    """Bearer token for /mcp. Required when http_host is not loopback (promise 4)."""
    max_body_bytes: int = 1 << 20
    """Request bodies above 1 MiB are refused with 413 before they are parsed."""
    tools: str | None = None
    """TASK_MASTER_TOOLS: core (default), standard, all, or a comma list of tool names."""
    max_prd_bytes: int = 200_000
    """parse_prd refuses a larger PRD with an error naming the input (models cannot take it anyway)."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed besides loopback ones (the MCP spec's DNS-rebinding rule)."""

    # Gossip (membership, SWIM + Lifeguard): UDP and TCP on one port
    gossip_host: str = "127.0.0.1"
    gossip_port: int = 7946
    advertise: tuple[str, int] | None = None
    """Address peers use to reach us; required when gossip binds a wildcard address."""
    join: tuple[tuple[str, int], ...] = ()
    """Members to join through; any live one will do. Empty: a one-node cluster."""
    profile: str = "lan"
    """Membership timers: lan (memberlist's LAN values), local (loopback), wan."""
    probe_interval: float | None = None
    """Override the profile's probe interval (e.g. 0.3 s for sub-2 s failure detection on loopback)."""
    cluster_keys: tuple[str, ...] = ()
    """Base64 32-byte keys; the first encrypts, all decrypt (rotation). Empty: gossip in clear."""

    # Replication (ring, quorum, node-to-node RPC)
    rpc_port: int = 0
    """Node-to-node RPC (replication, forwarded calls) on the gossip host; 0: any free port, which is
    advertised to the others in the member metadata."""
    replicas: int | None = 3
    """N, copies of each tag's documents (Dynamo's typical 3); None ("all"): a full copy everywhere."""
    write_quorum: int = 2
    """W, durable copies before a write is acknowledged (clamped to N). A minority partition still
    accepts writes and says how many copies they have."""
    put_timeout: float = 1.0
    """A replica slower than this to make a write durable counts as unreachable (the write gets a hint)."""
    join_wait: float = 5.0
    """A node started with --join holds tool calls until it has joined, at most this long: a
    restarted node answering alone would number tasks apart from the cluster."""
    antientropy_interval: float | None = None
    """Mean seconds between digest exchanges with a random peer; None: the profile's (lan 2 s,
    local 0.5 s, wan 10 s), a few probe intervals, so a heal converges in about that time."""
    operation_retention: float = 3600.0
    """Seconds a finished async operation stays readable with get_operation_status; then its
    documents are deleted on every replica, so repeated operations do not grow the store."""
    registry_tombstone_ttl: float = 600.0
    """Seconds a removed registry name keeps its tombstone (so every replica learns of the removal)
    before it is deleted."""

    # Clocks
    hlc_max_offset_ms: int = 500
    clock_offset: float = 0.0
    """Test only: this node's wall clock runs this many seconds off (clock-skew nemesis)."""
    """Remote timestamps further ahead than this are clamped (CockroachDB's max-offset)."""

    # Shutdown
    drain_seconds: float = 10.0
    """On SIGTERM, how long in-flight calls may take to finish before the node closes."""

    @property
    def http_is_loopback(self) -> bool:
        return self.http_host in ("127.0.0.1", "localhost", "::1") or self.http_host.startswith("127.")
