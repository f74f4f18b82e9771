"""`task-master` against a real taskmasterd process: every command, --json output, exit codes,
environment settings, plain and terminal rendering. The first block needs no daemon (parsing, views).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from taskmaster.cli import run
from taskmaster.cli.client import admin_base, tool_error_message
from taskmaster.cli.commands import DEFAULT_SERVER, Request, UsageError, parse, settings
from taskmaster.cli.render import Printer, plain, view_list, view_show
from taskmaster.tools.registry import error_text
from tests.cluster import TOKEN, Cluster
from tests.fakes.llm_servers import FakeLlmServer, Reply
from tests.fakes.llm_setup import tasks_json
from tests.gitrepo import git, make_repo
from tests.integration.test_operations_processes import configure_model, status_until

BIN = Path(sys.executable).parent
DAEMON = str(BIN / "taskmasterd")
CLI = str(BIN / "task-master")
READY = re.compile(r"^taskmasterd ready name=\S+ http=(\S+) gossip=\S+$")
START_DEADLINE = 15.0
ANSI = "\x1b["
# The CLI and the daemon must not pick these up from the developer's shell.
ENV = {k: v for k, v in os.environ.items()
       if k not in ("TASKMASTER_SERVER", "TASKMASTER_TOKEN", "TASK_MASTER_PROJECT_ROOT", "TASK_MASTER_TOOLS")}


# ---- without a daemon: parsing, settings, views ---------------------------------------------------------
def request(*argv: str) -> Request:
    return parse(list(argv))[0]


@pytest.mark.parametrize("argv, expected", [
    (["list"], Request("get_tasks", {"withSubtasks": False}, "list")),
    (["ls", "-s", "done,review", "--with-subtasks", "-t", "feat"],
     Request("get_tasks", {"status": "done,review", "withSubtasks": True, "tag": "feat"}, "list")),
    (["show", "3,4.1", "-s", "done"], Request("get_task", {"id": "3,4.1", "status": "done"}, "show")),
    (["show", "--id", "2", "--tag", "x"], Request("get_task", {"id": "2", "tag": "x"}, "show")),
    (["next", "--tag", "x"], Request("next_task", {"tag": "x"}, "next")),
    (["set-status", "1,2", "done"], Request("set_task_status", {"id": "1,2", "status": "done"})),
    (["status", "--id", "1.2", "--status", "review"], Request("set_task_status", {"id": "1.2", "status": "review"})),
    (["add-task", "--title", "T", "--description", "D", "--details", "x", "--test-strategy", "y",
      "--dependencies", "1,2", "--priority", "high"],
     Request("add_task", {"title": "T", "description": "D", "details": "x", "testStrategy": "y",
                          "dependencies": "1,2", "priority": "high"})),
    (["add-subtask", "--parent", "4", "-t", "S", "-d", "D", "--dependencies", "4.1", "-s", "done"],
     Request("add_subtask", {"id": "4", "title": "S", "description": "D", "dependencies": "4.1",
                             "status": "done", "skipGenerate": True}, "subtask")),
    (["add-subtask", "-p", "4", "-i", "7", "--generate"],
     Request("add_subtask", {"id": "4", "taskId": "7", "skipGenerate": False}, "subtask")),
    (["add-dependency", "--id", "3", "--depends-on", "1.2"], Request("add_dependency", {"id": "3", "dependsOn": "1.2"})),
    (["remove-dependency", "-i", "3", "-d", "1"], Request("remove_dependency", {"id": "3", "dependsOn": "1"})),
    (["move", "--from", "2,3", "--to", "8,9"], Request("move_task", {"from": "2,3", "to": "8,9"})),
    (["move", "--from", "2", "--from-tag", "a", "--to-tag", "b", "--with-dependencies"],
     Request("move_task", {"from": "2", "fromTag": "a", "toTag": "b", "withDependencies": True})),
    (["tags"], Request("list_tags", {}, "tags")),
    (["tags", "--show-metadata"], Request("list_tags", {"showMetadata": True}, "tags")),
    (["tags", "add", "feat", "--copy-from", "master", "--description", "d"],
     Request("add_tag", {"name": "feat", "copyFromTag": "master", "description": "d"})),
    (["tags", "add", "feat", "--copy"], Request("add_tag", {"name": "feat", "copyFromCurrent": True})),
    (["tags", "use", "feat"], Request("use_tag", {"name": "feat"}, "use_tag")),
    (["tags", "remove", "feat"], Request("delete_tag", {"name": "feat", "yes": True})),
    (["tags", "rename", "a", "b"], Request("rename_tag", {"oldName": "a", "newName": "b"})),
    (["tags", "copy", "a", "b"], Request("copy_tag", {"sourceName": "a", "targetName": "b"})),
    (["use-tag", "feat"], Request("use_tag", {"name": "feat"}, "use_tag")),
    (["generate", "--output", "/abs/out"], Request("generate", {"output": "/abs/out"}, "generate")),
    (["export"], Request("/admin/export", {}, "export", admin=True)),
    (["import", "--input", "/abs/t.json"], Request("/admin/import", {"input": "/abs/t.json"}, "import", admin=True)),
    (["autopilot", "start", "3", "--max-attempts", "5", "--force"],
     Request("autopilot_start", {"taskId": "3", "maxAttempts": 5, "force": True}, "autopilot")),
    (["autopilot", "complete", "--results", '{"total": 2, "passed": 1, "failed": 1}'],
     Request("autopilot_complete_phase", {"testResults": {"total": 2, "passed": 1, "failed": 1}}, "autopilot")),
    (["autopilot", "commit", "--files", "a.py, b.py", "-m", "feat: x"],
     Request("autopilot_commit", {"files": ["a.py", "b.py"], "customMessage": "feat: x"}, "autopilot")),
    (["autopilot", "status"], Request("autopilot_status", {}, "autopilot")),
    (["autopilot", "abort"], Request("autopilot_abort", {}, "autopilot")),
])
def test_commands_map_to_tool_calls(argv, expected):
    assert request(*argv) == expected


def test_relative_paths_are_made_absolute_here(tmp_path, monkeypatch):
    # The daemon's working directory is not the user's: paths travel absolute.
    monkeypatch.chdir(tmp_path)
    assert request("generate", "-o", "docs").args["output"] == str(tmp_path / "docs")
    assert request("export", "-o", "out.json").args["output"] == str(tmp_path / "out.json")


@pytest.mark.parametrize("argv, message", [
    (["show"], "a task id is required"),
    (["show", "1", "--id", "2"], "given twice"),
    (["set-status", "1"], "a status is required"),
    (["move", "--from", "1"], "--to is required"),
    (["move", "--from", "1", "--from-tag", "a"], "both --from-tag and --to-tag"),
    (["add-subtask", "--parent", "1"], "--title"),
    (["tags", "add", "x", "--copy", "--copy-from", "y"], "not both"),
])
def test_incomplete_commands_are_usage_errors(argv, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse(argv)


def test_connection_flags_work_before_and_after_the_command():
    ns = parse(["--server", "http://a/mcp", "list", "--json", "--project", "/p"])[1]
    assert (ns.server, ns.json, ns.project) == ("http://a/mcp", True, "/p")
    ns = parse(["--json", "--token", "t", "tags", "add", "x"])[1]
    assert (ns.json, ns.token) == (True, "t")


def test_settings_flags_over_environment_over_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bare = parse(["list"])[1]
    assert settings(bare, {}) == settings(bare, {}).__class__(DEFAULT_SERVER, None, str(tmp_path), False)
    env = {"TASKMASTER_SERVER": "http://e/mcp", "TASKMASTER_TOKEN": "et", "TASK_MASTER_PROJECT_ROOT": "/envp"}
    got = settings(bare, env)
    assert (got.server, got.token, got.project) == ("http://e/mcp", "et", "/envp")
    flagged = parse(["--server", "http://f/mcp", "--token", "ft", "--project", "rel", "list"])[1]
    got = settings(flagged, env)
    assert (got.server, got.token, got.project) == ("http://f/mcp", "ft", str(tmp_path / "rel"))


def test_admin_base_drops_the_mcp_path():
    assert admin_base("http://127.0.0.1:7070/mcp") == "http://127.0.0.1:7070"
    assert admin_base("http://h:1/mcp/") == "http://h:1"
    assert admin_base("http://h:1/x") == "http://h:1/x"


@example(message="ends like a trailer\nName: x", tag="master")
@example(message="Version: 1", tag=None)
@given(message=st.text(min_size=1), tag=st.one_of(st.none(), st.text(min_size=1, alphabet="abc-_1")))
def test_tool_error_message_recovers_the_servers_message(message, tag):
    assert tool_error_message(error_text(message, tag)) == message


TASKS = {"tasks": [
    {"id": 1, "title": "Set up", "status": "done", "priority": "high", "dependencies": [],
     "subtasks": [{"id": 1, "title": "Repo", "status": "done", "dependencies": []},
                  {"id": 2, "title": "CI", "status": "pending", "dependencies": ["1.1"]}]},
    {"id": 2, "title": "Build\nthe thing", "status": "in-progress", "priority": "medium",
     "dependencies": [1, "1.2"], "subtasks": []},
], "stats": {"total": 2, "completed": 1, "inProgress": 1, "completionPercentage": 50,
             "subtasks": {"total": 2, "completed": 1}}}


def test_plain_list_is_aligned_text_without_escape_codes():
    out = io.StringIO()
    Printer(out, rich=False).print(view_list(TASKS, "master"))
    text = out.getvalue()
    assert ANSI not in text
    lines = text.splitlines()
    assert lines[0] == "tag: master"
    assert lines[1].split() == ["ID", "Title", "Status", "Priority", "Deps"]
    status_col = lines[1].index("Status")
    assert [ln[status_col:].split()[0] for ln in lines[2:6]] == ["done", "done", "pending", "in-progress"]
    assert lines[4].split() == ["1.2", "CI", "pending", "1.1"]
    assert "Build the thing" in lines[5] and lines[5].rstrip().endswith("1, 1.2")
    assert lines[6] == "2 tasks · 1 done · 1 in-progress · 50% complete · subtasks 1/2 done"
    assert all(ln == ln.rstrip() for ln in lines)


def test_rich_rendering_colours_statuses():
    out = io.StringIO()
    Printer(out, rich=True).print(view_list(TASKS, "master"))
    assert ANSI in out.getvalue() and "Set up" in out.getvalue()


def test_show_renders_fields_and_subtasks():
    task = dict(TASKS["tasks"][0], description="Do it", details="line one\nline two")
    text = "\n".join(plain(b) for b in view_show(task, None))
    assert text.startswith("Task 1: Set up")
    assert re.search(r"^Details:\s+line one\n\s+line two$", text, re.M)
    assert re.search(r"^1\.2\s+CI\s+pending\s+1\.1$", text, re.M)


# ---- against a real daemon ---------------------------------------------------------------------------
class Daemon:
    def __init__(self, data_dir: Path, *extra: str):
        self.log = data_dir / "daemon.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [DAEMON, "--data-dir", str(data_dir), "--http", "127.0.0.1:0", "--bind", "127.0.0.1:0", *extra],
                stdout=subprocess.PIPE, stderr=log, env=ENV, text=True)
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + START_DEADLINE
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not sel.select(left):
                    continue
                out = self.proc.stdout.readline()
                if not out:  # exited before getting ready
                    break
                if m := READY.match(out.strip()):
                    return m.group(1)
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        pytest.fail(f"taskmasterd did not get ready (exit {self.proc.returncode}):\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("daemon"), "--tools", "all")
    yield d
    assert d.stop() == 0, d.log.read_text()[-3000:]


def cli(*args: str, server: str | None = None, project: Path | None = None, cwd: Path | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    argv = [CLI]
    if server:
        argv += ["--server", server]
    if project:
        argv += ["--project", str(project)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60, cwd=cwd,
                          env=ENV if env is None else env)


@pytest.fixture
def tm(daemon, tmp_path):
    """Run the CLI on a fresh project; `tm(...)` returns the process, `tm.json(...)` the parsed data."""
    project = tmp_path / "project"
    project.mkdir()

    class Runner:
        root = project
        server = daemon.url

        def __call__(self, *args: str) -> subprocess.CompletedProcess:
            return cli(*args, server=daemon.url, project=project)

        def json(self, *args: str):
            p = self(*args, "--json")
            assert p.returncode == 0, p.stderr
            assert "\n" not in p.stdout.rstrip("\n")  # one compact line for scripts
            return json.loads(p.stdout)

    return Runner()


def add_tasks(tm, *titles: str) -> list[int]:
    """Set-up calls run the CLI in-process (same code as the console script, no interpreter start-up)."""
    ids = []
    for title in titles:
        out, err = io.StringIO(), io.StringIO()
        code = run(["--server", tm.server, "--project", str(tm.root), "add-task", "--title", title,
                    "--description", f"about {title}", "--json"], out, err)
        assert code == 0, err.getvalue()
        ids.append(json.loads(out.getvalue())["taskId"])
    return ids


def test_add_task_list_and_show(tm):
    assert add_tasks(tm, "Alpha") == [1]
    added = tm.json("add-task", "--title", "Beta", "--description", "b", "--details", "dd",
                    "--test-strategy", "ts", "--dependencies", "1", "--priority", "high")
    assert added["taskId"] == 2
    data = tm.json("list")
    assert [(t["id"], t["title"], t["status"]) for t in data["tasks"]] == [(1, "Alpha", "pending"),
                                                                           (2, "Beta", "pending")]
    assert data["stats"]["total"] == 2
    beta = tm.json("show", "2")
    assert (beta["priority"], beta["dependencies"], beta["details"], beta["testStrategy"]) == \
        ("high", [1], "dd", "ts")
    assert [t["id"] for t in tm.json("show", "2,1")] == [2, 1]


def test_set_status_both_forms_and_status_filter(tm):
    add_tasks(tm, "A", "B", "C")
    assert tm.json("set-status", "1", "done")["tasks"][0]["newStatus"] == "done"
    tm.json("set-status", "--id", "2,3", "--status", "in-progress")
    tm.json("status", "3", "review")
    assert [t["id"] for t in tm.json("list", "-s", "done")["tasks"]] == [1]
    assert [t["id"] for t in tm.json("list", "--status", "in-progress,review")["tasks"]] == [2, 3]


def test_next_follows_dependencies(tm):
    add_tasks(tm, "First")
    tm.json("add-task", "--title", "Second", "--description", "s", "--dependencies", "1", "--priority", "high")
    assert tm.json("next")["nextTask"]["id"] == 1
    tm.json("set-status", "1", "done")
    assert tm.json("next")["nextTask"]["id"] == 2
    tm.json("set-status", "2", "done")
    assert tm.json("next")["nextTask"] is None


def test_add_subtask_and_list_with_subtasks(tm):
    add_tasks(tm, "Parent", "Loose")
    tm.json("add-subtask", "--parent", "1", "-t", "Child", "-d", "c", "--details", "cd")
    tm.json("add-subtask", "-p", "1", "-t", "Child 2", "--dependencies", "1.1", "-s", "in-progress")
    tm.json("add-subtask", "--parent", "1", "--task-id", "2")
    subs = tm.json("list", "--with-subtasks")["tasks"][0]["subtasks"]
    assert [(s["title"], s["status"]) for s in subs] == [("Child", "pending"), ("Child 2", "in-progress"),
                                                        ("Loose", "pending")]
    assert [t["id"] for t in tm.json("list")["tasks"]] == [1]  # task 2 became subtask 1.3
    assert tm.json("list")["tasks"][0]["subtasks"] == []  # like the reference CLI: no subtasks unless asked
    assert tm.json("show", "1.2")["title"] == "Child 2"


def test_add_and_remove_dependency(tm):
    add_tasks(tm, "A", "B")
    tm.json("add-dependency", "--id", "2", "--depends-on", "1")
    assert tm.json("show", "2")["dependencies"] == [1]
    tm.json("remove-dependency", "-i", "2", "-d", "1")
    assert tm.json("show", "2")["dependencies"] == []


def test_move_within_and_across_tags(tm):
    add_tasks(tm, "A", "B")
    tm.json("move", "--from", "2", "--to", "7")
    assert [t["id"] for t in tm.json("list")["tasks"]] == [1, 7]
    tm.json("tags", "add", "other")
    tm.json("move", "--from", "7", "--from-tag", "master", "--to-tag", "other")
    assert [t["title"] for t in tm.json("list", "--tag", "other")["tasks"]] == ["B"]
    assert [t["id"] for t in tm.json("list")["tasks"]] == [1]


def test_tags_lifecycle(tm):
    add_tasks(tm, "A")
    tm.json("tags", "add", "feat", "--copy-from", "master", "--description", "feature work")
    tags = {t["name"]: t for t in tm.json("tags")["tags"]}
    assert set(tags) == {"master", "feat"} and tags["feat"]["taskCount"] == 1
    tm.json("tags", "use", "feat")
    assert tm.json("tags")["currentTag"] == "feat"
    assert tm.json("add-task", "--title", "F", "--description", "f")["taskId"] == 2  # lands in feat
    tm.json("use-tag", "master")
    assert [t["id"] for t in tm.json("list")["tasks"]] == [1]
    tm.json("tags", "rename", "feat", "feature")
    tm.json("tags", "copy", "feature", "backup")
    assert {t["name"] for t in tm.json("tags")["tags"]} == {"master", "feature", "backup"}
    tm.json("tags", "remove", "backup")
    assert {t["name"] for t in tm.json("tags")["tags"]} == {"master", "feature"}
    assert [t["title"] for t in tm.json("list", "--tag", "feature")["tasks"]] == ["A", "F"]


def test_generate_writes_task_files(tm, tmp_path):
    add_tasks(tm, "A", "B")
    out = tmp_path / "generated"
    tm.json("generate", "--output", str(out))
    assert sorted(p.name for p in out.glob("task_*.md")) == ["task_001.md", "task_002.md"]
    assert "A" in (out / "task_001.md").read_text()


def test_export_then_import_into_another_project(tm, daemon, tmp_path):
    add_tasks(tm, "A", "B")
    tm.json("set-status", "2", "done")
    exported = tmp_path / "export" / "tasks.json"
    answer = tm.json("export", "--output", str(exported))
    assert answer["path"] == str(exported)
    on_disk = json.loads(exported.read_text())
    assert [t["title"] for t in on_disk["master"]["tasks"]] == ["A", "B"]

    other = tmp_path / "other"
    other.mkdir()
    p = cli("import", "--input", str(exported), "--json", server=daemon.url, project=other)
    assert p.returncode == 0, p.stderr
    p = cli("list", "--json", server=daemon.url, project=other)
    assert [(t["title"], t["status"]) for t in json.loads(p.stdout)["tasks"]] == [("A", "pending"),
                                                                                  ("B", "done")]


def test_human_output_when_piped_is_plain_text(tm):
    add_tasks(tm, "Readable title")
    p = tm("list")
    assert p.returncode == 0, p.stderr
    assert ANSI not in p.stdout
    assert re.search(r"^1\s+Readable title\s+pending\s+medium\s+-$", p.stdout, re.M)
    p = tm("show", "1")
    assert p.stdout.startswith("Task 1: Readable title") and "about Readable title" in p.stdout
    assert tm("next").stdout.startswith("Next: Task 1: Readable title")
    assert tm("tags").returncode == 0


def test_human_output_on_a_terminal_uses_rich(tm):
    add_tasks(tm, "Coloured")
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run([CLI, "--server", tm.server, "--project", str(tm.root), "list"],
                              stdout=secondary, stderr=subprocess.PIPE, env=ENV, timeout=60)
        os.close(secondary)
        secondary = -1
        text = read_all(primary)
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert proc.returncode == 0, proc.stderr
    assert ANSI in text and "Coloured" in text


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the writer side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_project_defaults_to_the_working_directory_and_env_settings(daemon, tmp_path):
    project = tmp_path / "cwdproject"
    project.mkdir()
    p = cli("add-task", "--title", "Here", "--description", "h", "--json", server=daemon.url, cwd=project)
    assert p.returncode == 0, p.stderr
    env = dict(ENV, TASKMASTER_SERVER=daemon.url, TASK_MASTER_PROJECT_ROOT=str(project))
    p = cli("list", "--json", env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert [t["title"] for t in json.loads(p.stdout)["tasks"]] == ["Here"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_daemon_exits_3_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    for args in (["list"], ["export"]):
        p = cli(*args, server=url, project=tmp_path)
        assert p.returncode == 3, p.stderr
        assert "127.0.0.1" in p.stderr and "make run" in p.stderr and p.stdout == ""


def test_tool_errors_exit_1_with_the_message(tm):
    add_tasks(tm, "A")
    p = tm("show", "99", "--json")
    assert p.returncode == 1 and p.stdout == ""
    assert "99" in p.stderr and "Version:" not in p.stderr
    p = tm("add-dependency", "--id", "1", "--depends-on", "1")
    assert p.returncode == 1 and p.stderr.strip()
    assert tm.json("show", "1")["dependencies"] == []


def test_jsonrpc_errors_exit_1_with_the_message(tm):
    add_tasks(tm, "A")
    p = tm("set-status", "1", "finished")
    assert p.returncode == 1 and "status" in p.stderr
    p = tm("show", "1..2")
    assert p.returncode == 1 and "Invalid task ID format" in p.stderr
    assert tm.json("show", "1")["status"] == "pending"


def test_usage_errors_exit_2(tm):
    for args in (["no-such-command"], ["add-task", "--title", "only"], ["move", "--from", "1"], ["show"],
                 ["set-status", "1"], []):
        p = tm(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert "error" in p.stderr and p.stdout == ""


def test_default_daemon_with_a_token(tmp_path):
    """As `taskmasterd --token T` starts by default: the token is needed, and only the core tools exist."""
    (tmp_path / "secured").mkdir()
    d = Daemon(tmp_path / "secured", "--token", "s3cret")
    try:
        project = tmp_path / "p"
        project.mkdir()
        p = cli("list", server=d.url, project=project)
        assert p.returncode == 1 and "token" in p.stderr
        p = cli("list", "--json", "--token", "wrong", server=d.url, project=project)
        assert p.returncode == 1 and "token" in p.stderr
        p = cli("list", "--json", "--token", "s3cret", server=d.url, project=project)
        assert p.returncode == 0, p.stderr
        p = cli("list", "--json", server=d.url, project=project, env=dict(ENV, TASKMASTER_TOKEN="s3cret"))
        assert p.returncode == 0, p.stderr
        # add_dependency is not in the core tier: the message says how to get it
        p = cli("add-dependency", "--id", "1", "--depends-on", "2", "--token", "s3cret", server=d.url,
                project=project)
        assert p.returncode == 1 and "--tools all" in p.stderr, p.stderr
    finally:
        assert d.stop() == 0


# ---- task-master cluster and ops ----------------------------------------------------------------------
def test_cluster_is_a_get_of_the_cluster_endpoint():
    assert request("cluster") == Request("/cluster", view="cluster", admin=True, method="GET")


def test_cluster_against_a_daemon_table_and_json(daemon):
    p = cli("cluster", "--json", server=daemon.url)
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert {"self", "members", "health", "ring", "services"} <= set(body) and body["health"] == {"lhm": 0}
    assert body["services"] == [], "no model configured: nothing registered"
    assert body["ring"]["members"] == [body["self"]] and body["ring"]["replicas"] == 3
    [me] = body["members"]
    assert me["name"] == body["self"] and me["state"] == "alive" and me["http"] == daemon.url
    assert me["incarnation"] >= 1 and re.fullmatch(r"127\.0\.0\.1:\d+", me["gossip"])
    assert me["share"] == 1.0 and me["health"] == {"reachable": True, "hints": 0, "rtt_ms": None}
    p = cli("cluster", server=daemon.url)
    assert p.returncode == 0 and ANSI not in p.stdout, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"1 member · 1 alive · no zones set · N=3 W=2 · this node {me['name']}"
    assert re.fullmatch(rf"\*\s+{re.escape(me['name'])}\s+-\s+alive\s+{re.escape(me['meta']['version'])}\s+"
                        rf"{re.escape(daemon.url)}\s+100\.0%\s+ok", lines[2]), p.stdout
    assert lines[3] == "local health 0 · hints pending 0 · 128 vnodes per member"
    p = cli("cluster", server=f"http://127.0.0.1:{closed_port()}/mcp")
    assert p.returncode == 3 and "cannot reach taskmasterd" in p.stderr


# ---- against a cluster of real processes -------------------------------------------------------------------
ZONES = ("east", "west", "west")


class ZonedCluster(Cluster):
    def node(self, i: int, *extra: str):
        return super().node(i, "--zone", ZONES[i], *extra)


def cluster_cli(c: Cluster, i: int, *args: str) -> subprocess.CompletedProcess:
    """The CLI against node i, in-process (the console script's code without an interpreter start-up;
    call it in a thread: it runs its own event loop)."""
    out, err = io.StringIO(), io.StringIO()
    code = run([*args, "--server", c.nodes[i].url, "--token", TOKEN], out, err)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


async def test_cluster_on_three_nodes_in_two_zones(tmp_path):
    async with ZonedCluster(tmp_path, 3, "--replicas", "2") as c:
        names = [n.name for n in c.nodes]
        p = await asyncio.to_thread(cluster_cli, c, 1, "cluster", "--json")
        assert p.returncode == 0, p.stderr
        members = {m["name"]: m for m in json.loads(p.stdout)["members"]}
        assert sorted(members) == names and {m["zone"] for m in members.values()} == set(ZONES)
        assert all(m["health"]["reachable"] for m in members.values())
        shares = {name: m["share"] for name, m in members.items()}
        assert abs(sum(shares.values()) - 2) < 1e-3, shares  # N=2: two replicas of every key
        assert shares[names[0]] == 1.0, "the only member of its zone holds a copy of every key"
        p = await asyncio.to_thread(cluster_cli, c, 1, "cluster")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert lines[0] == f"3 members · 3 alive · 2 zones · N=2 W=2 · this node {names[1]}"
        for name, zone in zip(names, ZONES, strict=True):
            share = f"{shares[name] * 100:.1f}%"
            assert re.search(rf"^\*?\s+{name}\s+{zone}\s+alive\s+\S+\s+\S+\s+{re.escape(share)}\s+ok\b",
                             p.stdout, re.M), p.stdout

        c.nodes[2].signal(signal.SIGKILL)
        c.nodes[2].wait()
        await c.wait_members({names[2]: "dead"}, among=[0, 1])
        p = await asyncio.to_thread(cluster_cli, c, 0, "cluster")
        assert p.returncode == 4, "a dead member: the table, and exit code 4"
        assert re.search(rf"^\s+{names[2]}\s+west\s+dead\s.*\sdown$", p.stdout, re.M), p.stdout
        assert p.stdout.splitlines()[-1] == f"not alive: {names[2]}"
        p = await asyncio.to_thread(cluster_cli, c, 0, "cluster", "--json")
        assert p.returncode == 4 and json.loads(p.stdout)["self"] == names[0]


class GatedLlm(FakeLlmServer):
    """Answers each model request once the test opens the gate."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, latency=1.0, **kwargs)
        self.gate = asyncio.Event()

    async def _pause(self, seconds: float) -> None:
        await self.gate.wait()


async def test_ops_lists_the_running_operation_from_another_node_then_the_finished_one(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "prd.txt").write_text("# Shop\n\n1. Browse\n2. Pay\n")
    async with GatedLlm("openai", default=Reply(tasks_json("Browse", "Pay"))) as model:
        configure_model(tmp_path, 3, model)
        async with Cluster(tmp_path, 3) as c:
            p = await asyncio.to_thread(cluster_cli, c, 2, "ops")
            assert (p.returncode, p.stdout) == (0, "No operations running.\n"), p.stderr
            started = await c.client(0).call("parse_prd", projectRoot=str(root), input="prd.txt", **{"async": True})
            op_id = started["data"]["operationId"]
            deadline = time.monotonic() + 10
            while not model.requests:  # the runner is waiting for the model: the operation is in progress
                assert time.monotonic() < deadline, "the model was never asked"
                await asyncio.sleep(0.02)

            p = await asyncio.to_thread(cluster_cli, c, 2, "ops", "--json")
            assert p.returncode == 0, p.stderr
            [op] = json.loads(p.stdout)["operations"]
            assert (op["operationId"], op["kind"], op["projectRoot"], op["tag"], op["status"]) == \
                (op_id, "parse_prd", str(root), "master", "in_progress")
            assert op["runner"] in [n.name for n in c.nodes] and op["progress"] == {"done": 0, "total": 1}
            p = await asyncio.to_thread(cluster_cli, c, 2, "ops")
            assert re.search(rf"^{op_id}\s+parse_prd\s+{re.escape(str(root))}\s+master\s+in_progress\s+"
                             rf"{op['runner']}\s+\d\d:\d\d:\d\d\s+0/1\s+\d+s$", p.stdout, re.M), p.stdout
            assert p.stdout.splitlines()[-1] == "1 operation running"

            model.gate.set()
            await status_until(c.client(1), str(root), op_id, lambda s: s["status"] == "completed", 20)
            p = await asyncio.to_thread(cluster_cli, c, 2, "ops")
            assert (p.returncode, p.stdout) == (0, "No operations running.\n"), p.stderr
            p = await asyncio.to_thread(cluster_cli, c, 1, "ops", "--all", "--json")
            [op] = json.loads(p.stdout)["operations"]
            assert (op["operationId"], op["status"], op["progress"]) == (op_id, "completed", {"done": 1, "total": 1})
            p = await asyncio.to_thread(cluster_cli, c, 1, "ops", "--all")
            assert re.search(rf"^{op_id}\s+parse_prd\s.*\scompleted\s.*\s1/1\s", p.stdout, re.M), p.stdout


def test_autopilot_takes_a_task_through_red_green_commit_to_finalize(tm):
    make_repo(tm.root)
    [task] = add_tasks(tm, "Parser")
    for title in ("tokenize", "parse"):
        assert tm("add-subtask", "--parent", str(task), "-t", title, "-d", "-").returncode == 0

    started = tm("autopilot", "start", str(task))
    assert started.returncode == 0, started.stderr
    assert f"tm/master/task-{task}-parser" in started.stdout and "RED" in started.stdout
    red = tm.json("autopilot", "complete", "--results", '{"total": 1, "passed": 0, "failed": 1}')
    assert red["tddPhase"] == "GREEN"
    green = tm.json("autopilot", "complete", "--results", '{"total": 1, "passed": 1, "failed": 0}')
    assert green["tddPhase"] == "COMMIT"
    (tm.root / "tokenize.py").write_text("def tokenize(): ...\n")
    committed = tm.json("autopilot", "commit")
    assert git(tm.root, "log", "-1", "--format=%s").startswith(f"feat(task-{task}):")
    assert committed["progress"]["completed"] == 1
    # The second subtask's RED finds nothing failing: already implemented, completed at once.
    assert tm.json("autopilot", "complete", "--results", '{"total": 1, "passed": 1, "failed": 0}')["phase"] == "FINALIZE"
    status = tm("autopilot", "status")
    assert status.returncode == 0 and "2/2 subtasks" in status.stdout
    assert "Workflow completed" in tm("autopilot", "finalize").stdout
    assert tm("autopilot", "complete", "--results", "not json").returncode == 2
    assert tm("autopilot", "status").returncode == 1  # no workflow any more
