"""The command line: flags as the reference `task-master` CLI spells them, each command turned into
one `Request` (an MCP tool call or an admin endpoint) by a pure function, so parsing is testable
without a daemon.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_SERVER = "http://127.0.0.1:7070/mcp"


class UsageError(Exception):
    """Flags that parse but do not make a command (exit code 2)."""


@dataclass(frozen=True)
class Request:
    target: str  # MCP tool name, or admin endpoint path ("/admin/export")
    args: dict = field(default_factory=dict)  # tool arguments / endpoint body (a GET's query), projectRoot excluded
    view: str = "message"  # how render.py shows the answer
    admin: bool = False
    method: str = "POST"  # admin endpoints: a GET reads the node itself and sends no body


Builder = Callable[[argparse.Namespace], Request]


def _given(**fields) -> dict:
    """Tool arguments without the flags the user left out (the tool applies its own defaults)."""
    return {k: v for k, v in fields.items() if v is not None}


def _abspath(path: str | None) -> str | None:
    # The daemon resolves paths in its own working directory; a user means this one.
    return os.path.abspath(path) if path is not None else None


def _one(positional: str | None, flag: str | None, what: str) -> str:
    if positional is not None and flag is not None and positional != flag:
        raise UsageError(f"{what} given twice ({positional!r} and {flag!r})")
    value = positional if positional is not None else flag
    if value is None:
        raise UsageError(f"{what} is required")
    return value


# ---- parser --------------------------------------------------------------------------------------
def _connection_flags(p: argparse.ArgumentParser, top: bool) -> None:
    """--server/--token/--project/--json, accepted before or after the command name."""
    # On subcommands the default is SUPPRESS so they never overwrite what was given before the command.
    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    p.add_argument("--server", default=d(None), metavar="URL",
                   help=f"daemon MCP URL (env TASKMASTER_SERVER, default {DEFAULT_SERVER})")
    p.add_argument("--token", default=d(None), help="bearer token (env TASKMASTER_TOKEN)")
    p.add_argument("--project", default=d(None), metavar="DIR",
                   help="project root (env TASK_MASTER_PROJECT_ROOT, default the current directory)")
    p.add_argument("--json", action="store_true", default=d(False),
                   help="print the answer's data as one line of JSON")


def _tag(p: argparse.ArgumentParser, short: bool = False) -> None:
    names = ("-t", "--tag") if short else ("--tag",)
    p.add_argument(*names, help="tag to work on (default: the current tag)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="task-master", description="Task Master's everyday commands against a taskmasterd node.")
    _connection_flags(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _connection_flags(common, top=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, build: Builder, help: str, aliases: tuple[str, ...] = ()):
        p = sub.add_parser(name, parents=[common], help=help, description=help, aliases=list(aliases))
        p.set_defaults(build=build)
        return p

    p = command("list", _list, "list tasks", aliases=("ls",))
    p.add_argument("-s", "--status", help="only these statuses (comma list)")
    p.add_argument("--with-subtasks", action="store_true", help="show subtasks under their tasks")
    _tag(p, short=True)

    p = command("show", _show, "show one or more tasks or subtasks")
    p.add_argument("id", nargs="?", help="task or subtask id(s), comma list (e.g. 3,4.2)")
    p.add_argument("-i", "--id", dest="id_flag", metavar="ID", help="same as the positional id")
    p.add_argument("-s", "--status", help="only subtasks with these statuses")
    _tag(p)

    p = command("next", _next, "show the next task to work on")
    _tag(p, short=True)

    p = command("set-status", _set_status, "set the status of tasks or subtasks", aliases=("status",))
    p.add_argument("id", nargs="?", help="task or subtask id(s), comma list")
    p.add_argument("new_status", nargs="?", metavar="status",
                   help="pending, in-progress, done, review, deferred, blocked or cancelled")
    p.add_argument("-i", "--id", dest="id_flag", metavar="ID")
    p.add_argument("-s", "--status", dest="status_flag", metavar="STATUS")
    _tag(p)

    p = command("add-task", _add_task, "add a task (title and description, no AI)")
    p.add_argument("--title", required=True)
    p.add_argument("--description", required=True)
    p.add_argument("--details")
    p.add_argument("--test-strategy")
    p.add_argument("--dependencies", help="ids this task depends on (comma list)")
    p.add_argument("--priority", help="high, medium or low (default medium)")
    _tag(p)

    p = command("add-subtask", _add_subtask, "add a subtask, or turn a task into a subtask")
    p.add_argument("-p", "--parent", required=True, help="parent task id")
    p.add_argument("-i", "--task-id", help="existing task to turn into a subtask of the parent")
    p.add_argument("-t", "--title")
    p.add_argument("-d", "--description")
    p.add_argument("--details")
    p.add_argument("--dependencies", help="ids this subtask depends on (comma list)")
    p.add_argument("-s", "--status", help="initial status (default pending)")
    p.add_argument("--generate", action="store_true", help="regenerate the task files afterwards")
    _tag(p)

    for name, build, verb in (("add-dependency", _add_dependency, "add"),
                              ("remove-dependency", _remove_dependency, "remove")):
        p = command(name, build, f"{verb} a dependency")
        p.add_argument("-i", "--id", required=True, help="the task or subtask that depends")
        p.add_argument("-d", "--depends-on", required=True, help="the task or subtask it depends on")
        _tag(p)

    p = command("move", _move, "move tasks or subtasks to new ids, or to another tag")
    p.add_argument("--from", dest="from_id", required=True, metavar="ID", help="id(s) to move, comma list")
    p.add_argument("--to", dest="to_id", metavar="ID", help="destination id(s), comma list")
    p.add_argument("--from-tag", help="source tag of a cross-tag move")
    p.add_argument("--to-tag", help="target tag of a cross-tag move")
    p.add_argument("--with-dependencies", action="store_true", help="move the dependencies along")
    p.add_argument("--ignore-dependencies", action="store_true", help="drop cross-tag dependencies")
    _tag(p)

    p = command("tags", _tags, "list tags, or add/use/remove/rename/copy one")
    p.add_argument("--show-metadata", action="store_true", help="include each tag's metadata")
    tags = p.add_subparsers(dest="tags_command", metavar="ACTION")
    t = tags.add_parser("add", parents=[common], help="create a tag")
    t.add_argument("name")
    t.add_argument("--copy-from", metavar="TAG", help="copy the tasks of this tag")
    t.add_argument("--copy", action="store_true", help="copy the tasks of the current tag")
    t.add_argument("--from-branch", action="store_true", help="name the tag after the git branch")
    t.add_argument("--description")
    t = tags.add_parser("use", parents=[common], help="switch the current tag")
    t.add_argument("name")
    t = tags.add_parser("remove", parents=[common], help="delete a tag and its tasks")
    t.add_argument("name")
    t = tags.add_parser("rename", parents=[common], help="rename a tag")
    t.add_argument("old")
    t.add_argument("new")
    t = tags.add_parser("copy", parents=[common], help="copy a tag with its tasks")
    t.add_argument("source")
    t.add_argument("target")
    t.add_argument("--description")

    p = command("use-tag", _use_tag, "switch the current tag")
    p.add_argument("name")

    p = command("generate", _generate, "write one Markdown file per task")
    p.add_argument("-o", "--output", metavar="DIR", help="directory (default .taskmaster/tasks)")
    _tag(p, short=True)

    p = command("export", _export, "write the project's tasks.json from the daemon")
    p.add_argument("-o", "--output", metavar="PATH", help="file (default .taskmaster/tasks/tasks.json)")

    p = command("import", _import, "load the project's tasks.json into the daemon")
    p.add_argument("-i", "--input", metavar="PATH", help="file (default .taskmaster/tasks/tasks.json)")

    command("cluster", _cluster, "the cluster's members as the daemon sees them: zone, state, version, "
            "ring share, health (exit code 4 when a member is suspect or dead)")

    p = command("autopilot", _autopilot, "the TDD workflow of one task: RED, GREEN and COMMIT per subtask")
    steps = p.add_subparsers(dest="autopilot_step", metavar="STEP", required=True)
    s = steps.add_parser("start", parents=[common], help="start the workflow for a task (creates its branch)")
    s.add_argument("task_id", metavar="ID", help="a task id (not a subtask's)")
    s.add_argument("--max-attempts", type=int, help="GREEN attempts per subtask (default 3)")
    s.add_argument("--force", action="store_true", help="replace a workflow in progress")
    for name, help in (("next", "what to do next"), ("status", "phase, progress, subtasks, recent history"),
                       ("resume", "pick up the workflow in progress"),
                       ("finalize", "check that everything is committed and complete the workflow"),
                       ("abort", "forget the workflow (its branch and commits stay)")):
        steps.add_parser(name, parents=[common], help=help)
    s = steps.add_parser("complete", parents=[common], help="report the test results of the RED or GREEN phase")
    s.add_argument("--results", required=True, metavar="JSON",
                   help='test results: {"total": n, "passed": n, "failed": n, "skipped": n}')
    s = steps.add_parser("commit", parents=[common], help="stage and commit the subtask's work")
    s.add_argument("--files", help="files to stage, comma list (default: every change)")
    s.add_argument("-m", "--message", help="commit message instead of the generated one")

    p = command("ops", _ops, "the supervised operations (async AI tools) running anywhere in the cluster")
    p.add_argument("--all", action="store_true", help="also the finished ones the cluster still keeps")
    return parser


# ---- builders: Namespace -> Request ----------------------------------------------------------------
def _list(ns) -> Request:
    return Request("get_tasks", _given(status=ns.status, withSubtasks=ns.with_subtasks, tag=ns.tag), "list")


def _show(ns) -> Request:
    return Request("get_task", _given(id=_one(ns.id, ns.id_flag, "a task id"), status=ns.status, tag=ns.tag),
                   "show")


def _next(ns) -> Request:
    return Request("next_task", _given(tag=ns.tag), "next")


def _set_status(ns) -> Request:
    return Request("set_task_status", _given(id=_one(ns.id, ns.id_flag, "a task id"),
                                             status=_one(ns.new_status, ns.status_flag, "a status"),
                                             tag=ns.tag))


def _add_task(ns) -> Request:
    return Request("add_task", _given(title=ns.title, description=ns.description, details=ns.details,
                                      testStrategy=ns.test_strategy, dependencies=ns.dependencies,
                                      priority=ns.priority, tag=ns.tag))


def _add_subtask(ns) -> Request:
    if ns.task_id is None and ns.title is None:
        raise UsageError("give --title for a new subtask, or --task-id to turn a task into a subtask")
    # The reference CLI regenerates task files only on --generate; the MCP tool does unless told not to.
    return Request("add_subtask", _given(id=ns.parent, taskId=ns.task_id, title=ns.title,
                                         description=ns.description, details=ns.details,
                                         dependencies=ns.dependencies, status=ns.status,
                                         skipGenerate=not ns.generate, tag=ns.tag), "subtask")


def _add_dependency(ns) -> Request:
    return Request("add_dependency", _given(id=ns.id, dependsOn=ns.depends_on, tag=ns.tag))


def _remove_dependency(ns) -> Request:
    return Request("remove_dependency", _given(id=ns.id, dependsOn=ns.depends_on, tag=ns.tag))


def _move(ns) -> Request:
    if (ns.from_tag is None) != (ns.to_tag is None):
        raise UsageError("a cross-tag move needs both --from-tag and --to-tag")
    if ns.from_tag is None and ns.to_id is None:
        raise UsageError("--to is required for a move within a tag")
    return Request("move_task", _given(**{"from": ns.from_id, "to": ns.to_id}, fromTag=ns.from_tag,
                                       toTag=ns.to_tag, withDependencies=ns.with_dependencies or None,
                                       ignoreDependencies=ns.ignore_dependencies or None, tag=ns.tag))


def _tags(ns) -> Request:
    action = ns.tags_command
    if action is None:
        return Request("list_tags", _given(showMetadata=ns.show_metadata or None), "tags")
    if action == "add":
        if ns.copy and ns.copy_from:
            raise UsageError("give --copy (current tag) or --copy-from TAG, not both")
        return Request("add_tag", _given(name=ns.name, copyFromTag=ns.copy_from, copyFromCurrent=ns.copy or None,
                                         fromBranch=ns.from_branch or None, description=ns.description))
    if action == "use":
        return Request("use_tag", {"name": ns.name}, "use_tag")
    if action == "remove":
        return Request("delete_tag", {"name": ns.name, "yes": True})
    if action == "rename":
        return Request("rename_tag", {"oldName": ns.old, "newName": ns.new})
    return Request("copy_tag", _given(sourceName=ns.source, targetName=ns.target, description=ns.description))


def _use_tag(ns) -> Request:
    return Request("use_tag", {"name": ns.name}, "use_tag")


def _generate(ns) -> Request:
    return Request("generate", _given(output=_abspath(ns.output), tag=ns.tag), "generate")


def _export(ns) -> Request:
    return Request("/admin/export", _given(output=_abspath(ns.output)), "export", admin=True)


def _import(ns) -> Request:
    return Request("/admin/import", _given(input=_abspath(ns.input)), "import", admin=True)


def _cluster(ns) -> Request:
    return Request("/cluster", view="cluster", admin=True, method="GET")


def _ops(ns) -> Request:
    return Request("/operations", {"all": "1"} if ns.all else {}, "ops", admin=True, method="GET")


_AUTOPILOT_TOOLS = {"start": "autopilot_start", "next": "autopilot_next", "status": "autopilot_status",
                   "resume": "autopilot_resume", "complete": "autopilot_complete_phase",
                   "commit": "autopilot_commit", "finalize": "autopilot_finalize", "abort": "autopilot_abort"}


def _autopilot(ns) -> Request:
    step, args = ns.autopilot_step, {}
    if step == "start":
        args = _given(taskId=ns.task_id, maxAttempts=ns.max_attempts, force=ns.force or None)
    elif step == "complete":
        try:
            args = {"testResults": json.loads(ns.results)}
        except ValueError as exc:
            raise UsageError(f"--results must be JSON ({exc})") from None
    elif step == "commit":
        args = _given(files=[f.strip() for f in ns.files.split(",") if f.strip()] if ns.files else None,
                      customMessage=ns.message)
    return Request(_AUTOPILOT_TOOLS[step], args, "autopilot")


# ---- environment -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    server: str
    token: str | None
    project: str
    json: bool


def settings(ns: argparse.Namespace, env: dict | None = None) -> Settings:
    """Flags win over the environment, the environment over the defaults."""
    env = os.environ if env is None else env
    project = ns.project or env.get("TASK_MASTER_PROJECT_ROOT") or os.getcwd()
    return Settings(server=ns.server or env.get("TASKMASTER_SERVER") or DEFAULT_SERVER,
                    token=ns.token or env.get("TASKMASTER_TOKEN") or None,
                    project=os.path.abspath(project), json=ns.json)


def parse(argv: list[str] | None) -> tuple[Request, argparse.Namespace]:
    """argv -> (request, namespace). Bad flags exit 2 (argparse); bad combinations raise UsageError."""
    ns = build_parser().parse_args(argv)
    try:
        return ns.build(ns), ns
    except UsageError as exc:
        raise UsageError(f"{ns.command}: error: {exc}") from None
