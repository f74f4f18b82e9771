"""taskmasterd's configuration: one precedence order (flag > environment > config file > default),
a strict TOML file, --print-config that round-trips and never shows a secret, and the subcommands."""

from __future__ import annotations

import dataclasses
import subprocess
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmaster import daemon
from taskmaster.config import OPTIONS, Config, load, render, secrets
from tests.daemon import BIN

KEY_A = "A" * 43 + "="  # base64-shaped cluster keys (validated later, by the node)
KEY_B = "B" * 43 + "="
KEY_C = "C" * 43 + "="


def parse(tmp_path, argv=(), env=None, toml: str | None = None):
    """(Config, sources, flags) for a command line, an environment and, if given, a config file."""
    argv = list(argv)
    if toml is not None:
        path = tmp_path / "taskmaster.toml"
        path.write_text(toml)
        argv = ["--config", str(path), *argv]
    return daemon.parse(argv, env or {})


def refused(capsys, tmp_path, argv=(), env=None, toml: str | None = None) -> str:
    """The one-line error taskmasterd exits 2 with."""
    with pytest.raises(SystemExit) as exc:
        parse(tmp_path, argv, env, toml)
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


# ---- precedence -----------------------------------------------------------------------------------

PRECEDENCE = [
    # (file line, env var and value, flag args, getter, value from file, from env, from flag)
    ('replicas = 5', ("TASKMASTER_REPLICAS", "all"), ["--replicas", "2"],
     lambda c: c.replicas, 5, None, 2),
    ('replicas = "all"', ("TASKMASTER_REPLICAS", "4"), ["--replicas", "all"],
     lambda c: c.replicas, None, 4, None),
    ('join = ["f1:1", "f2:2"]', ("TASKMASTER_JOIN", "e1:1, e2:2,e3:3"), ["--join", "a:1", "--join", "[::1]:9"],
     lambda c: c.join, (("f1", 1), ("f2", 2)), (("e1", 1), ("e2", 2), ("e3", 3)), (("a", 1), ("::1", 9))),
    (f'cluster_keys = ["{KEY_A}"]', ("TASKMASTER_CLUSTER_KEY", f"{KEY_B},{KEY_A}"), ["--cluster-key", KEY_C],
     lambda c: c.cluster_keys, (KEY_A,), (KEY_B, KEY_A), (KEY_C,)),
    ('data_dir = "/f"', ("TASKMASTER_DATA_DIR", "/e"), ["--data-dir", "/a"], lambda c: c.data_dir, "/f", "/e", "/a"),
    ('http = "0.0.0.0:1"', ("TASKMASTER_HTTP", "10.0.0.1:2"), ["--http", ":3"],
     lambda c: (c.http_host, c.http_port), ("0.0.0.0", 1), ("10.0.0.1", 2), ("127.0.0.1", 3)),
    ('tools = "all"', ("TASK_MASTER_TOOLS", "standard"), ["--tools", "core"], lambda c: c.tools, "all", "standard", "core"),
    ('write-quorum = 3', ("TASKMASTER_WRITE_QUORUM", "1"), ["--write-quorum", "2"],
     lambda c: c.write_quorum, 3, 1, 2),
    ('log_format = "json"', ("TASKMASTER_LOG_FORMAT", "text"), ["--log-format", "json"],
     lambda c: c.log_format, "json", "text", "json"),
    ('zone = "eu"', ("TASKMASTER_ZONE", "us"), ["--zone", "ap"], lambda c: c.zone, "eu", "us", "ap"),
    ('put_timeout = 2', ("TASKMASTER_PUT_TIMEOUT", "0.5"), ["--put-timeout", "3.5"],
     lambda c: c.put_timeout, 2.0, 0.5, 3.5),
    ('allowed_origins = ["https://f"]', ("TASKMASTER_ALLOWED_ORIGINS", "https://e1,https://e2"),
     ["--allowed-origin", "https://a"], lambda c: c.allowed_origins, ("https://f",), ("https://e1", "https://e2"),
     ("https://a",)),
    ('drain_seconds = 30', ("TASKMASTER_DRAIN_SECONDS", "1"), ["--drain-seconds", "2"],
     lambda c: c.drain_seconds, 30.0, 1.0, 2.0),
]


@pytest.mark.parametrize("line, env, flag, get, from_file, from_env, from_flag", PRECEDENCE)
def test_flag_beats_environment_beats_file_beats_default(tmp_path, line, env, flag, get, from_file, from_env,
                                                         from_flag):
    key = line.split("=")[0].strip().replace("-", "_")
    default = get(Config())
    assert get(parse(tmp_path)[0]) == default
    config, sources, _ = parse(tmp_path, toml=line)
    assert get(config) == from_file != default and sources[key] == "file"
    config, sources, _ = parse(tmp_path, env=dict([env]), toml=line)
    assert get(config) == from_env and sources[key] == f"env {env[0]}"
    config, sources, _ = parse(tmp_path, flag, env=dict([env]), toml=line)
    assert get(config) == from_flag and sources[key] == "flag"


def test_an_empty_variable_counts_as_unset_and_the_config_file_can_come_from_the_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('name = "from-file"\n')
    config, sources, flags = daemon.parse([], {"TASKMASTER_CONFIG": str(path), "TASKMASTER_NAME": " "})
    assert config.name == "from-file" and sources["name"] == "file" and flags.config == str(path)
    other = tmp_path / "other.toml"
    other.write_text('name = "from-flag-file"\n')
    assert daemon.parse(["--config", str(other)], {"TASKMASTER_CONFIG": str(path)})[0].name == "from-flag-file"


def test_no_config_file_is_read_unless_named(tmp_path, monkeypatch):
    (tmp_path / "taskmaster.toml").write_text('name = "implicit"\n')
    monkeypatch.chdir(tmp_path)
    assert daemon.parse([], {})[0].name == ""


def test_every_option_is_a_flag_a_variable_and_a_file_key():
    p = daemon.build_parser()
    flags = {s for a in p._actions for s in a.option_strings}
    for opt in OPTIONS:
        assert opt.flag in flags
        assert opt.env.startswith(("TASKMASTER_", "TASK_MASTER_"))
        assert opt.key.replace("-", "_") in opt.names()
    assert len({o.env for o in OPTIONS}) == len(OPTIONS)
    fields = {f.name for f in dataclasses.fields(Config)}
    assert {f for o in OPTIONS for f in (o.fields or (o.key,))} <= fields


# ---- a strict file --------------------------------------------------------------------------------

@pytest.mark.parametrize("toml, key, says", [
    ("replica = 3", "replica", "unknown key 'replica'"),
    ("[http]\nport = 1", "http", "expected a HOST:PORT string, got a table"),
    ("replicas = true", "replicas", 'expected a number or "all", got a boolean'),
    ("replicas = 0", "replicas", "must be at least 1"),
    ('replicas = "many"', "replicas", "takes a number or 'all'"),
    ('write_quorum = "2"', "write_quorum", "expected an integer, got a string"),
    ("write_quorum = 2.5", "write_quorum", "expected an integer, got a float"),
    ("rpc_port = 70000", "rpc_port", "must be 0..65535"),
    ("data_dir = 7", "data_dir", "expected a string, got an integer"),
    ('join = "a:1"', "join", "expected an array of a HOST:PORT string values, got a string"),
    ('join = ["a:1", 2]', "join", "expected a HOST:PORT string, got an integer"),
    ('join = ["nocolon"]', "join", "expected HOST:PORT"),
    ('profile = "moon"', "profile", "must be one of lan, local, wan"),
    ("probe_interval = -1", "probe_interval", "must be a positive number"),
    ('log_level = "loud"', "log_level", "must be one of debug"),
    ('data_dir = "a"\ndata-dir = "b"', "data_dir", "set twice"),
    ("replicas = ", "", "not valid TOML"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_key(capsys, tmp_path, toml, key, says):
    message = refused(capsys, tmp_path, toml=toml)
    assert message.startswith("taskmasterd: error:") and str(tmp_path / "taskmaster.toml") in message, message
    assert key in message and says in message, message


def test_a_missing_config_file_is_refused(capsys, tmp_path):
    message = refused(capsys, tmp_path, ["--config", str(tmp_path / "nope.toml")])
    assert "cannot read config file" in message and "nope.toml" in message


@pytest.mark.parametrize("env, says", [
    ({"TASKMASTER_REPLICAS": "0"}, "TASKMASTER_REPLICAS: must be at least 1"),
    ({"TASKMASTER_HTTP": "nowhere"}, "TASKMASTER_HTTP: expected HOST:PORT"),
    ({"TASKMASTER_PROFILE": "moon"}, "TASKMASTER_PROFILE: must be one of"),
])
def test_a_bad_variable_is_refused_naming_it(capsys, tmp_path, env, says):
    assert says in refused(capsys, tmp_path, env=env)


def test_a_bad_file_stops_taskmasterd_before_it_starts_anything(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("replicas = 3\nwrite_quorum = \"two\"\n")
    p = subprocess.run([str(BIN / "taskmasterd"), "--config", str(bad), "--data-dir", str(tmp_path / "d"),
                        "--http", "127.0.0.1:0", "--bind", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and p.stdout == "", p.stdout
    assert f"{bad}: write_quorum: expected an integer, got a string" in p.stderr
    assert not (tmp_path / "d").exists()  # no data dir made, nothing bound


# ---- --print-config -------------------------------------------------------------------------------

@pytest.fixture
def environ(monkeypatch):
    """The process environment without any taskmasterd variable; set some with environ(NAME=value)."""
    for name in [o.env for o in OPTIONS] + ["TASKMASTER_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    return lambda **env: [monkeypatch.setenv(k, v) for k, v in env.items()]


def printed(capsys, argv) -> str:
    """What `taskmasterd --print-config ARGV` prints; it exits 0."""
    with pytest.raises(SystemExit) as exc:
        daemon.main(["--print-config", *argv])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_print_config_round_trips_and_says_where_each_value_came_from(tmp_path, capsys, environ):
    base = tmp_path / "base.toml"
    base.write_text('zone = "eu-west"\nprobe_interval = 0.3\nlog-format = "json"\n')
    argv = ["--config", str(base), "--name", 'n "quoted" é\t1', "--replicas", "all", "--join", "a:1",
            "--join", "[fe80::1]:7946", "--http", "0.0.0.0:7070", "--write-quorum", "1", "--profile", "local"]
    env = {"TASKMASTER_DATA_DIR": "/var/lib/tm", "TASK_MASTER_TOOLS": "standard"}
    environ(**env)
    out = printed(capsys, argv)
    lines = {line.split(" = ")[0]: line for line in out.splitlines() if " = " in line and line[0] != "#"}
    assert lines["zone"] == 'zone = "eu-west"  # file'
    assert lines["replicas"] == 'replicas = "all"  # flag'
    assert lines["data_dir"] == 'data_dir = "/var/lib/tm"  # env TASKMASTER_DATA_DIR'
    assert lines["tools"] == 'tools = "standard"  # env TASK_MASTER_TOOLS'
    assert lines["rpc_port"] == "rpc_port = 0  # default"
    assert "# advertise = (unset)  # default" in out
    again = tmp_path / "printed.toml"
    again.write_text(out)
    first = daemon.parse(argv, env)[0]
    second, sources, _ = daemon.parse(["--config", str(again)], {})
    assert second == first
    assert {sources[key] for key in lines} == {"file"}


def test_print_config_never_prints_a_secret(tmp_path, capsys, environ):
    token, env_token = "flag-token-d41d8cd98f", "env-token-0cc175b9c0"
    argv = ["--token", token, "--cluster-key", KEY_A, "--cluster-key", KEY_B]
    out = printed(capsys, argv)
    assert token not in out and KEY_A not in out and KEY_B not in out
    assert '# token = "<redacted>"  # flag; secret, not printed' in out
    assert '# cluster_keys = ["<redacted>", "<redacted>"]  # flag; secret, not printed' in out
    tomllib.loads(out)  # still valid TOML
    environ(TASKMASTER_TOKEN=env_token)
    out = printed(capsys, [])
    assert env_token not in out and "# env TASKMASTER_TOKEN; secret" in out
    # Given again (by variable), the secrets complete the printed file to the same config.
    path = tmp_path / "printed.toml"
    path.write_text(printed(capsys, argv))
    env = {"TASKMASTER_TOKEN": token, "TASKMASTER_CLUSTER_KEY": f"{KEY_A},{KEY_B}"}
    assert daemon.parse(["--config", str(path)], env)[0] == daemon.parse(argv, {})[0]


texts = st.text(max_size=20)
addresses = st.tuples(st.sampled_from(["127.0.0.1", "0.0.0.0", "::1", "node-1.example", "fe80::1"]),
                      st.integers(0, 65535))


@settings(max_examples=60, deadline=None)
@given(name=texts, zone=texts, data_dir=texts.filter(bool), http=addresses, join=st.lists(addresses, max_size=3),
       replicas=st.one_of(st.none(), st.integers(1, 9)), quorum=st.integers(1, 9),
       probe=st.one_of(st.none(), st.floats(0.001, 100)), profile=st.sampled_from(["lan", "local", "wan"]))
def test_any_config_prints_to_toml_that_reads_back_the_same(tmp_path_factory, name, zone, data_dir, http, join,
                                                            replicas, quorum, probe, profile):
    config = Config(name=name, zone=zone, data_dir=data_dir, http_host=http[0], http_port=http[1],
                    join=tuple(join), replicas=replicas, write_quorum=quorum, probe_interval=probe,
                    profile=profile)
    path = tmp_path_factory.mktemp("rt") / "c.toml"
    path.write_text(render(config, {}), encoding="utf-8")
    assert load({}, {}, str(path))[0] == config


# ---- subcommands ----------------------------------------------------------------------------------

def test_help_names_the_subcommands_and_the_precedence(capsys):
    with pytest.raises(SystemExit) as exc:
        daemon.parse(["--help"], {})
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "taskmasterd backup --server URL --to DIR" in out and "taskmasterd restore --from DIR --data-dir DIR" in out
    assert "flag > environment > config file > default" in out and "--log-format text|json" in out


def test_backup_and_restore_go_to_the_backup_module(monkeypatch):
    seen = []
    monkeypatch.setattr(daemon.backup, "main", lambda argv: seen.append(argv) or 3)
    for argv in (["backup", "--server", "http://x/mcp", "--to", "d"], ["restore", "--from", "d", "--data-dir", "e"]):
        with pytest.raises(SystemExit) as exc:
            daemon.main(argv)
        assert exc.value.code == 3
    assert seen == [["backup", "--server", "http://x/mcp", "--to", "d"], ["restore", "--from", "d", "--data-dir", "e"]]


def test_the_subcommands_take_their_own_flags(capsys):
    for argv, missing in ((["backup", "--to", "d"], "--server"), (["restore", "--from", "d"], "--data-dir")):
        with pytest.raises(SystemExit) as exc:
            daemon.main(argv)
        assert exc.value.code == 2
        assert missing in capsys.readouterr().err


def test_a_secret_of_the_wrong_type_is_refused_without_showing_it(capsys, tmp_path):
    message = refused(capsys, tmp_path, toml="token = 987654321")
    assert "token: expected a string, got an integer" in message and "987654321" not in message


def test_the_secrets_of_a_config_are_the_token_and_the_cluster_keys():
    assert secrets(Config()) == []
    assert secrets(Config(token="t" * 8, cluster_keys=(KEY_A, KEY_B), name="public")) == ["t" * 8, KEY_A, KEY_B]
