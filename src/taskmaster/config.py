"""Every knob of a node, each with its default and why (hashicorp/memberlist's Config is the model).

`Config()` is a single node on loopback with embedded defaults: what `make run` starts.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


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
    zone: str = ""
    """Zone (datacenter, rack) of this node, gossiped in its metadata: a key's replicas are spread
    over as many zones as exist. Empty: one unnamed zone."""

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
    """Remote timestamps further ahead than this are clamped (CockroachDB's max-offset)."""
    clock_offset: float = 0.0
    """Test only: this node's wall clock runs this many seconds off (clock-skew nemesis)."""

    # Shutdown
    drain_seconds: float = 10.0
    """On SIGTERM, how long in-flight calls may take to finish before the node closes."""

    # Logs (stderr)
    log_level: str = "info"
    log_format: str = "text"
    """text: one human line per record; json: one JSON object per line (ts, level, logger, event, msg)."""

    @property
    def http_is_loopback(self) -> bool:
        return self.http_host in ("127.0.0.1", "localhost", "::1") or self.http_host.startswith("127.")


# ---- Where a value comes from: flag > environment > config file > embedded default ----------------
# One table (OPTIONS) names every option once; the flags, the TASKMASTER_* variables, the TOML file's
# keys and --print-config are all derived from it, so they cannot drift apart.

ENV_CONFIG = "TASKMASTER_CONFIG"


class ConfigError(ValueError):
    """A value that cannot be used, named by where it came from (flag, variable, or file and key)."""


def join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _toml_string(text: str) -> str:
    # JSON's escapes are a subset of TOML's basic-string escapes; DEL is the one control character
    # JSON leaves raw and TOML does not accept.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


@dataclass(frozen=True)
class Kind:
    """How an option's text (a flag, a variable) becomes a value, which TOML types the file may use
    for it, and how a value is written back as TOML."""

    what: str
    """Named in type errors: "a string", "an integer", ..."""
    parse: Callable[[str], Any]
    """Raises ValueError with a short reason."""
    toml: tuple[type, ...] = (str,)
    render: Callable[[Any], str] = _toml_string
    none_is_value: bool = False
    """None is a value this kind writes (replicas "all"), not "unset"."""


def _at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if n < low or (high is not None and n > high):
            raise ValueError(f"must be at least {low}" if high is None else f"must be {low}..{high}")
        return n
    return parse


def _positive_number(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not x > 0 or x == float("inf"):
        raise ValueError(f"must be a positive number, not {text!r}")
    return x


def _replicas(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"takes a number or 'all', not {text!r}") from None
    if n < 1:
        raise ValueError("must be at least 1")
    return n


def _choice(*values: str) -> Kind:
    def parse(text: str) -> str:
        if text.lower() not in values:
            raise ValueError(f"must be one of {', '.join(values)}, not {text!r}")
        return text.lower()
    return Kind(f"one of {', '.join(values)}", parse)


TEXT = Kind("a string", str)
OPTIONAL_TEXT = Kind("a string", lambda text: text or None)
ADDRESS = Kind("a HOST:PORT string", split_hostport, render=lambda hp: _toml_string(join_hostport(*hp)))
REPLICAS = Kind("a number or \"all\"", _replicas, (int, str), lambda n: '"all"' if n is None else str(n), True)
POSITIVE = Kind("an integer", _at_least(1), (int,), str)
PORT = Kind("an integer", _at_least(0, 65535), (int,), str)
SECONDS = Kind("a number", _positive_number, (int, float), repr)


@dataclass(frozen=True)
class Option:
    """One knob a user can set by flag, environment variable or config file key."""

    key: str
    """Its key in the config file (dashes work too) and, unless `fields` says otherwise, its Config field."""
    kind: Kind
    help: str
    metavar: str | None = None
    many: bool = False
    """Repeatable flag, comma-separated variable, TOML array; a tuple in Config."""
    secret: bool = False
    """Never printed or logged."""
    fields: tuple[str, ...] = ()
    """The Config fields one value sets, when it is several (HOST:PORT -> host, port)."""
    flag_name: str = ""
    env_name: str = ""

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        return self.env_name or "TASKMASTER_" + self.key.upper()

    def names(self) -> set[str]:
        """Spellings accepted as file keys: the key and the flag's name, with dashes or underscores."""
        bare = (self.key, self.flag[2:])
        return {n.replace("-", "_") for n in bare} | {n.replace("_", "-") for n in bare}

    def get(self, config: Config) -> Any:
        if self.fields:
            return tuple(getattr(config, f) for f in self.fields)
        return getattr(config, self.key)

    def set(self, config: Config, value: Any) -> None:
        if self.fields:
            for f, v in zip(self.fields, value, strict=True):
                setattr(config, f, v)
        else:
            setattr(config, self.key, value)

    def render(self, value: Any) -> str:
        if self.many:
            return "[" + ", ".join(self.kind.render(v) for v in value) + "]"
        return self.kind.render(value)


OPTIONS: tuple[Option, ...] = (
    Option("data_dir", TEXT, "RocksDB data directory and the node's identity", "DIR"),
    Option("name", TEXT, "node name, unique in the cluster (default: generated once, kept in the data dir)"),
    Option("zone", TEXT, "zone (datacenter) of this node: replicas spread over zones (default: none)"),
    Option("http", ADDRESS, "MCP/HTTP address (port 0 = any free port)", "HOST:PORT",
           fields=("http_host", "http_port")),
    Option("token", OPTIONAL_TEXT, "bearer token for /mcp (required when --http is not loopback)", "T",
           secret=True),
    Option("tools", OPTIONAL_TEXT, "tool tier: core (default), standard, all, or a comma list", "TIER",
           env_name="TASK_MASTER_TOOLS"),
    Option("max_body_bytes", POSITIVE, "request bodies larger than this are refused with 413", "BYTES"),
    Option("max_prd_bytes", POSITIVE, "parse_prd refuses a larger PRD with an error naming the input", "BYTES"),
    Option("allowed_origins", TEXT, "an Origin allowed besides loopback ones (repeatable)", "ORIGIN",
           many=True, flag_name="--allowed-origin"),
    Option("bind", ADDRESS, "gossip address (port 0 = any free port)", "HOST:PORT",
           fields=("gossip_host", "gossip_port")),
    Option("advertise", ADDRESS, "gossip address peers should use (needed when --bind is a wildcard such "
           "as 0.0.0.0)", "HOST:PORT"),
    Option("join", ADDRESS, "gossip address of a member to join through (repeatable; any live one will do)",
           "HOST:PORT", many=True),
    Option("profile", _choice("lan", "local", "wan"), "membership timers: lan (memberlist's LAN values), "
           "local (loopback), wan", "lan|local|wan"),
    Option("probe_interval", SECONDS, "override the profile's probe interval (e.g. 0.3 for sub-2 s failure "
           "detection)", "SECONDS"),
    Option("cluster_keys", TEXT, "32-byte key (base64) that authenticates and encrypts gossip and RPC; "
           "repeat to accept several during a rotation (the first encrypts)", "BASE64", many=True,
           secret=True, flag_name="--cluster-key", env_name="TASKMASTER_CLUSTER_KEY"),
    Option("replicas", REPLICAS, "copies of each tag's tasks; 'all' keeps a full copy on every node", "N|all"),
    Option("write_quorum", POSITIVE, "durable copies before a write is acknowledged (clamped to N)", "W"),
    Option("rpc_port", PORT, "node-to-node RPC port on the --bind host (0: any free port, advertised)", "PORT"),
    Option("put_timeout", SECONDS, "a replica slower than this to make a write durable counts as unreachable "
           "(the write gets a hint)", "SECONDS"),
    Option("join_wait", SECONDS, "with --join, hold tool calls until joined, at most this long", "SECONDS"),
    Option("antientropy_interval", SECONDS, "mean seconds between digest exchanges with a random peer "
           "(default: the profile's: lan 2, local 0.5, wan 10)", "SECONDS"),
    Option("operation_retention", SECONDS, "seconds a finished async operation stays readable", "SECONDS"),
    Option("registry_tombstone_ttl", SECONDS, "seconds a removed registry name keeps its tombstone", "SECONDS"),
    Option("hlc_max_offset_ms", POSITIVE, "remote clocks further ahead than this are clamped", "MS"),
    Option("drain_seconds", SECONDS, "on SIGTERM, how long in-flight calls may take to finish", "SECONDS"),
    Option("log_level", _choice("debug", "info", "warning", "error", "critical"), "log level",
           "debug|info|warning|error"),
    Option("log_format", _choice("text", "json"), "text (human) or json (one object per line)", "text|json"),
)

Sources = dict[str, str]
"""Option key -> where its value came from: "flag", "env NAME", "file" or "default"."""


def load(flags: Mapping[str, Any], env: Mapping[str, str], path: str | None) -> tuple[Config, Sources]:
    """The Config for these flags (option key -> text, or list of texts for a repeatable option; only
    the flags given), environment and config file: each option from the first of them that sets it.
    An empty variable counts as unset. Raises ConfigError naming the flag, variable or file and key."""
    in_file = read_file(path) if path else {}
    config, sources = Config(), {}
    for opt in OPTIONS:
        env_text = env.get(opt.env, "").strip()
        if opt.key in flags:
            source, where, texts = "flag", f"argument {opt.flag}", flags[opt.key]
        elif env_text:
            source = where = f"env {opt.env}"
            texts = [t.strip() for t in env_text.split(",") if t.strip()] if opt.many else env_text
        elif opt.key in in_file:
            source, where = "file", f"{path}: {opt.key}"
            texts = _toml_texts(opt, in_file[opt.key], where)
        else:
            sources[opt.key] = "default"
            continue
        try:
            value = tuple(opt.kind.parse(t) for t in texts) if opt.many else opt.kind.parse(texts)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        opt.set(config, value)
        sources[opt.key] = source
    return config, sources


def _toml_texts(opt: Option, value: Any, where: str) -> str | list[str]:
    """A file value as the text a flag would give, once its TOML type is checked; the same parser
    then validates every source alike."""
    def text(v: Any) -> str:
        if not isinstance(v, opt.kind.toml) or isinstance(v, bool):
            shown = "" if opt.secret else f" {v!r}"
            raise ConfigError(f"{where}: expected {opt.kind.what}, got {_toml_type(v)}{shown}")
        return str(v)
    if not opt.many:
        return text(value)
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected an array of {opt.kind.what} values, got {_toml_type(value)}")
    return [text(v) for v in value]


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
             dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__}")


def read_file(path: str) -> dict[str, Any]:
    """The file's options by key; refuses unknown keys and a key given twice (two spellings)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    by_name = {name: opt for opt in OPTIONS for name in opt.names()}
    found: dict[str, Any] = {}
    for name, value in data.items():
        opt = by_name.get(name)
        if opt is None:
            known = ", ".join(o.key for o in OPTIONS)
            raise ConfigError(f"{path}: unknown key {name!r} (known keys: {known})")
        if opt.key in found:
            raise ConfigError(f"{path}: {opt.key} is set twice")
        found[opt.key] = value
    return found


def secrets(config: Config) -> list[str]:
    """The values of the secret options (for the logs to mask)."""
    found = []
    for opt in (o for o in OPTIONS if o.secret):
        value = opt.get(config)
        found += list(value) if opt.many else [value] if value else []
    return found


def render(config: Config, sources: Sources, path: str | None = None) -> str:
    """The config in effect as TOML that --config accepts, each line saying where its value came from.
    Secrets are never printed: their lines are comments, so give them again (variable or file)."""
    lines = ["# taskmasterd configuration in effect: flag > environment > config file > default",
             f"# config file: {path}" if path else "# config file: none", ""]
    for opt in OPTIONS:
        value, source = opt.get(config), sources.get(opt.key, "default")
        if (value is None and not opt.kind.none_is_value) or (opt.secret and not value):
            lines.append(f"# {opt.key} = (unset)  # {source}")
        elif opt.secret:
            hidden = '["<redacted>"' + ', "<redacted>"' * (len(value) - 1) + "]" if opt.many else '"<redacted>"'
            lines.append(f"# {opt.key} = {hidden}  # {source}; secret, not printed")
        else:
            lines.append(f"{opt.key} = {opt.render(value)}  # {source}")
    return "\n".join(lines) + "\n"
