"""How answers look: each view turns a tool's `data` into blocks (lines, tables, field lists), which
`Printer` prints with rich (colours, tables) on a terminal and as plain aligned text elsewhere.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

Seg = tuple[str, str]  # (text, rich style; "" for none)

STATUS_STYLE = {"done": "green", "completed": "green", "in-progress": "cyan", "pending": "yellow",
                "review": "magenta", "blocked": "red", "deferred": "dim", "cancelled": "dim strike"}
PRIORITY_STYLE = {"high": "red", "medium": "yellow", "low": "dim"}
MEMBER_STYLE = {"alive": "green", "suspect": "yellow", "dead": "red", "left": "dim"}
# get_tasks stats keys, in the order the summary names them
STAT_NAMES = (("completed", "done"), ("inProgress", "in-progress"), ("pending", "pending"),
              ("review", "review"), ("blocked", "blocked"), ("deferred", "deferred"),
              ("cancelled", "cancelled"))


@dataclass(frozen=True)
class Line:
    segs: tuple[Seg, ...] = ()


@dataclass(frozen=True)
class Grid:
    header: tuple[str, ...]
    rows: tuple[tuple[Seg, ...], ...]


@dataclass(frozen=True)
class Fields:
    pairs: tuple[tuple[str, Seg], ...]  # label, value (values may span lines)


Block = Line | Grid | Fields


def line(*parts: str | Seg) -> Line:
    return Line(tuple((p, "") if isinstance(p, str) else p for p in parts))


def status_seg(status: Any) -> Seg:
    return (str(status or ""), STATUS_STYLE.get(str(status), ""))


def priority_seg(priority: Any) -> Seg:
    return (str(priority or ""), PRIORITY_STYLE.get(str(priority), ""))


def sub_id(parent: Any, sub: dict) -> str:
    """A subtask's full id: the wire may carry "P.S" already, stored form is the bare number."""
    sid = str(sub.get("id", "?"))
    return sid if "." in sid else f"{parent}.{sid}"


def deps_text(deps: Any) -> str:
    """Dependencies are full ids on the wire (3 is task 3, "2.1" a subtask), wherever they appear."""
    return ", ".join(str(d) for d in deps) if deps else "-"


# ---- views: data -> blocks ---------------------------------------------------------------------------
def view_list(data: dict, tag: str | None) -> list[Block]:
    rows = []
    for task in data.get("tasks") or []:
        rows.append(((str(task.get("id", "?")), "bold"), (str(task.get("title", "")), ""),
                     status_seg(task.get("status")), priority_seg(task.get("priority")),
                     (deps_text(task.get("dependencies")), "")))
        for sub in task.get("subtasks") or []:
            rows.append((("  " + sub_id(task.get("id"), sub), "dim"), ("  " + str(sub.get("title", "")), ""),
                         status_seg(sub.get("status")), priority_seg(sub.get("priority")),
                         (deps_text(sub.get("dependencies")), "")))
    blocks: list[Block] = []
    if tag:
        blocks.append(line(("tag: ", "dim"), (tag, "bold")))
    if rows:
        blocks.append(Grid(("ID", "Title", "Status", "Priority", "Deps"), tuple(rows)))
    else:
        blocks.append(line(("No tasks found.", "dim")))
    blocks.append(summary_line(data.get("stats") or {}))
    return blocks


def summary_line(stats: dict) -> Line:
    parts: list[str | Seg] = [(f"{stats.get('total', 0)} tasks", "bold")]
    for key, name in STAT_NAMES:
        if stats.get(key):
            parts += [" · ", (f"{stats[key]} {name}", STATUS_STYLE.get(name, ""))]
    if "completionPercentage" in stats:
        parts.append(f" · {_percent(stats['completionPercentage'])} complete")
    subs = stats.get("subtasks")
    if isinstance(subs, dict) and subs.get("total"):
        parts.append(f" · subtasks {subs.get('completed', 0)}/{subs['total']} done")
    return line(*parts)


def _percent(value: Any) -> str:
    try:
        return f"{float(value):.0f}%"
    except (TypeError, ValueError):
        return f"{value}%"


def view_show(data: Any, tag: str | None) -> list[Block]:
    tasks = data if isinstance(data, list) else [data]
    blocks: list[Block] = []
    for i, task in enumerate(tasks):
        if i:
            blocks.append(line())
        blocks += task_detail(task)
    return blocks


def task_detail(task: dict, prefix: Seg = ("", "")) -> list[Block]:
    tid = str(task.get("id", "?"))
    is_sub = bool(task.get("isSubtask")) or "." in tid
    blocks: list[Block] = [line(prefix, (f"{'Subtask' if is_sub else 'Task'} {tid}: ", "bold"),
                                (str(task.get("title", "")), "bold"))]
    pairs: list[tuple[str, Seg]] = [("Status", status_seg(task.get("status")))]
    if task.get("priority"):
        pairs.append(("Priority", priority_seg(task["priority"])))
    parent = task.get("parentTask")
    if isinstance(parent, dict):
        pairs.append(("Parent", (f"{parent.get('id')}: {parent.get('title', '')}", "")))
    pairs.append(("Dependencies", (deps_text(task.get("dependencies")), "")))
    for key, label in (("description", "Description"), ("details", "Details"), ("testStrategy", "Test strategy")):
        if task.get(key):
            pairs.append((label, (str(task[key]), "")))
    if task.get("complexityScore") is not None:
        pairs.append(("Complexity", (str(task["complexityScore"]), "")))
    blocks.append(Fields(tuple(pairs)))
    subs = task.get("subtasks") or []
    if subs:
        blocks.append(line(("Subtasks", "bold")))
        blocks.append(Grid(("ID", "Title", "Status", "Deps"), tuple(
            ((sub_id(tid, s), ""), (str(s.get("title", "")), ""), status_seg(s.get("status")),
             (deps_text(s.get("dependencies")), "")) for s in subs)))
    return blocks


def view_next(data: dict, tag: str | None) -> list[Block]:
    task = data.get("nextTask")
    if not task:
        return [line(str(data.get("message") or "No eligible next task found."))]
    return task_detail(task, prefix=("Next: ", "bold green"))


def view_tags(data: dict, tag: str | None) -> list[Block]:
    tags = data.get("tags") or []
    with_meta = any("metadata" in t for t in tags)
    header = ("", "Tag", "Tasks", "Done", "Subtasks", "Description") + (("Created",) if with_meta else ())
    rows = []
    for t in tags:
        subs = t.get("subtaskCounts") or {}
        row = (("*" if t.get("isCurrent") else "", "bold green"),
               (str(t.get("name", "")), "bold" if t.get("isCurrent") else ""),
               (str(t.get("taskCount", 0)), ""), (str(t.get("completedTasks", 0)), "green"),
               (str(subs.get("totalSubtasks", 0)), ""), (str(t.get("description") or ""), "dim"))
        if with_meta:
            row += ((str(t.get("created") or (t.get("metadata") or {}).get("created") or ""), "dim"),)
        rows.append(row)
    current = data.get("currentTag")
    return [Grid(header, tuple(rows)), line(f"{len(tags)} tags", f" · current: {current}" if current else "")]


def view_use_tag(data: dict, tag: str | None) -> list[Block]:
    if data.get("message"):
        return [line(str(data["message"]))]
    name = data.get("currentTag") or tag
    count = data.get("taskCount")
    return [line("Switched to tag ", (str(name), "bold"), f" ({count} tasks)" if count is not None else "")]


def view_subtask(data: Any, tag: str | None) -> list[Block]:
    if isinstance(data, dict) and data.get("message"):
        return [line(str(data["message"]))]
    sub = data.get("subtask", data) if isinstance(data, dict) else None
    if isinstance(sub, dict) and "id" in sub:
        return [line("Added subtask ", (sub_id(sub.get("parentTaskId", "?"), sub), "bold"), ": ",
                     str(sub.get("title", "")))]
    return view_message(data, tag)


def view_generate(data: Any, tag: str | None) -> list[Block]:
    if isinstance(data, dict) and not data.get("message") and "count" in data:
        where = data.get("directory") or data.get("outputDir") or ""
        return [line(f"Generated {data['count']} task files", f" in {where}" if where else "")]
    return view_message(data, tag)


def _count(value: Any) -> int | Any:
    return len(value) if isinstance(value, list | dict) else value


def view_export(data: dict, tag: str | None) -> list[Block]:
    return [line(f"Exported {_count(data.get('tasks'))} tasks in {_count(data.get('tags'))} tags to ",
                 (str(data.get("path", "")), "bold"))]


def view_import(data: dict, tag: str | None) -> list[Block]:
    return [line(f"Imported {_count(data.get('tasks'))} tasks in {_count(data.get('tags'))} tags")]


def view_cluster(data: dict, tag: str | None) -> list[Block]:
    """GET /cluster: a header (size, states, zones, N/W, this node), one row per member (this node
    marked *), then this node's own figures."""
    me = data.get("self")
    members = data.get("members") or []
    ring = data.get("ring") or {}
    rows = tuple((("*" if m.get("name") == me else "", "bold green"),
                  (str(m.get("name", "")), "bold" if m.get("name") == me else ""),
                  (str(m.get("zone") or "-"), ""),
                  (str(m.get("state", "")), MEMBER_STYLE.get(str(m.get("state")), "")),
                  (str((m.get("meta") or {}).get("version") or "-"), "dim"), (str(m.get("http") or "-"), "dim"),
                  (_share(m.get("share")), ""), health_seg(m, me)) for m in members)
    counts = Counter(str(m.get("state")) for m in members)
    zones = {m.get("zone") for m in members if m.get("state") != "left"} - {None, ""}
    header: list[str | Seg] = [(f"{len(members)} member{'' if len(members) == 1 else 's'}", "bold")]
    for state, count in counts.items():
        header += [" · ", (f"{count} {state}", MEMBER_STYLE.get(state, ""))]
    header.append(f" · {len(zones)} zone{'' if len(zones) == 1 else 's'}" if zones else " · no zones set")
    if ring:
        header.append(f" · N={ring.get('replicas')} W={ring.get('write_quorum')}")
    header.append(f" · this node {me}")
    blocks: list[Block] = [line(*header),
                           Grid(("", "Name", "Zone", "State", "Version", "HTTP", "Share", "Health"), rows)]
    figures = [f"local health {(data.get('health') or {}).get('lhm', 0)}"]
    if ring:
        figures += [f"hints pending {ring.get('hints_pending', 0)}", f"{ring.get('vnodes')} vnodes per member"]
    blocks.append(line((" · ".join(figures), "dim")))
    unwell = unwell_members(data)
    if unwell:
        blocks.append(line((f"not alive: {', '.join(unwell)}", "bold red")))
    return blocks


def unwell_members(data: dict) -> list[str]:
    """Members membership holds suspect or dead (one that left did so on purpose)."""
    return [str(m.get("name")) for m in data.get("members") or [] if m.get("state") in ("suspect", "dead")]


def _share(share: Any) -> str:
    """A member's ring share: the fraction of the keys it holds a replica of."""
    return f"{share * 100:.1f}%" if isinstance(share, int | float) else "-"


def health_seg(member: dict, me: Any) -> Seg:
    """What this node knows of a member beyond its state: can it reach it, how far away it is, and
    how many writes it holds for it (hints) until it can deliver them."""
    health = member.get("health") or {}
    state, hints, rtt = member.get("state"), health.get("hints") or 0, health.get("rtt_ms")
    problems = []
    if state in ("alive", "suspect") and health.get("reachable") is False:
        problems.append("unreachable")
    if hints:
        problems.append(f"{hints} hint{'' if hints == 1 else 's'} pending")
    if problems:
        return (", ".join(problems), "yellow" if state == "alive" else "red")
    latency = "" if member.get("name") == me or rtt is None else f" ({rtt:.1f} ms)"
    if state == "alive":
        return ("ok" + latency, "green")
    if state == "suspect":  # membership doubts it, yet calls still get through
        return ("reachable" + latency, "yellow")
    return ("down" if state == "dead" else "-", "red" if state == "dead" else "dim")


OPERATION_STYLE = {"queued": "yellow", "in_progress": "cyan", "completed": "green", "failed": "red"}


def view_ops(data: dict, tag: str | None) -> list[Block]:
    """GET /operations: one row per operation, oldest first; ages are counted on the daemon's clock."""
    now = _time(data.get("now"))
    rows = tuple(((str(o.get("operationId", "")), "bold"), (str(o.get("kind") or "-"), ""),
                  (str(o.get("projectRoot") or "-"), ""), (str(o.get("tag") or "-"), ""),
                  (str(o.get("status", "")), OPERATION_STYLE.get(str(o.get("status")), "")),
                  (str(o.get("runner") or "-"), ""), (_clock(_time(o.get("startedAt")), now), "dim"),
                  (_progress(o.get("progress")), ""), (_age(_time(o.get("createdAt")), now), ""))
                 for o in data.get("operations") or [])
    finished = bool(data.get("all"))
    blocks: list[Block] = []
    if rows:
        blocks.append(Grid(("ID", "Kind", "Project", "Tag", "State", "Runner", "Started", "Progress", "Age"),
                           rows))
        blocks.append(line(f"{len(rows)} operation{'' if len(rows) == 1 else 's'}",
                           "" if finished else " running"))
    else:
        blocks.append(line(("No operations kept." if finished else "No operations running.", "dim")))
    missing = data.get("missing") or []
    if missing:
        blocks.append(line((f"did not answer: {', '.join(map(str, missing))} "
                            "(operations only they hold are not listed)", "yellow")))
    return blocks


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _clock(at: datetime | None, now: datetime | None) -> str:
    """A moment as the time of day (UTC), with its date when that is not the daemon's today."""
    if at is None:
        return "-"
    return at.strftime("%H:%M:%S" if now is not None and at.date() == now.date() else "%Y-%m-%d %H:%M")


def _age(at: datetime | None, now: datetime | None) -> str:
    if at is None or now is None:
        return "-"
    return duration((now - at).total_seconds())


def duration(seconds: float) -> str:
    """12s, 3m04s, 1h02m, 2d03h: two units at most, as `ps`/`kubectl` print ages."""
    s = max(0, int(seconds))
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            return f"{s // size}{unit}{(s % size) // sub_size:02d}{sub}"
    return f"{s}s"


def _progress(progress: Any) -> str:
    if isinstance(progress, dict) and "done" in progress:
        return f"{progress['done']}/{progress.get('total', '?')}"
    return "-"


def view_autopilot(data: Any, tag: str | None) -> list[Block]:
    """The workflow: where it is (task, branch, phase, subtask, progress) and what comes next."""
    if not isinstance(data, dict) or "phase" not in data:
        return view_message(data, tag)
    sub, done = data.get("currentSubtask"), data.get("progress") or {}
    pairs = [("Task", (f"{data.get('taskId')} {data.get('taskTitle') or ''}".rstrip(), "bold")),
             ("Branch", (str(data.get("branchName") or "-"), "")),
             ("Phase", (" / ".join(str(p) for p in (data.get("phase"), data.get("tddPhase")) if p), "cyan")),
             ("Progress", (f"{done.get('completed', 0)}/{done.get('total', 0)} subtasks", ""))]
    if isinstance(sub, dict):
        pairs.append(("Subtask", (f"{sub.get('id')} {sub.get('title') or ''} (attempt {sub.get('attempts', 0)} of "
                                  f"{sub.get('maxAttempts', '?')})", "")))
    for sub in data.get("subtasks") or ():
        status = str(sub.get("status") or "")
        pairs.append((f"  {sub.get('id')}", (f"{status} · {sub.get('title') or ''}", STATUS_STYLE.get(status, ""))))
    if data.get("ranOn") or data.get("gitNode"):
        pairs.append(("Git on", (str(data.get("ranOn") or data.get("gitNode")), "dim")))
    blocks: list[Block] = [line(data["message"])] if isinstance(data.get("message"), str) else []
    blocks.append(Fields(tuple(pairs)))
    steps = data.get("nextSteps") or data.get("actionDescription")
    if steps:
        blocks.append(line(("Next: ", "bold green"), str(steps)))
    return blocks


def view_message(data: Any, tag: str | None) -> list[Block]:
    """Write tools answer with a `message`; anything else is shown as indented JSON."""
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return [line(data["message"])]
    return [line(text) for text in json.dumps(data, indent=2, ensure_ascii=False).split("\n")]


VIEWS = {"list": view_list, "show": view_show, "next": view_next, "tags": view_tags, "use_tag": view_use_tag,
         "subtask": view_subtask, "generate": view_generate, "export": view_export, "import": view_import,
         "cluster": view_cluster, "ops": view_ops, "autopilot": view_autopilot, "message": view_message}


# ---- printing --------------------------------------------------------------------------------------
class Printer:
    """Prints blocks: rich on a terminal, plain text (no escape codes, no wrapping) otherwise."""

    def __init__(self, out: TextIO, rich: bool | None = None):
        self.out = out
        self.rich = out.isatty() if rich is None else rich

    def print(self, blocks: list[Block]) -> None:
        if self.rich:
            self._print_rich(blocks)
        else:
            self.out.write("".join(plain(b) + "\n" for b in blocks))

    def _print_rich(self, blocks: list[Block]) -> None:
        from rich import box
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(file=self.out, highlight=False, soft_wrap=False, force_terminal=True)
        for block in blocks:
            if isinstance(block, Line):
                console.print(Text.assemble(*block.segs))
            elif isinstance(block, Grid):
                table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
                for name in block.header:
                    table.add_column(name, overflow="fold", ratio=3 if name in ("Title", "Description") else None)
                for row in block.rows:
                    table.add_row(*(Text(text, style=style) for text, style in row))
                console.print(table)
            else:
                table = Table.grid(padding=(0, 2))
                table.add_column(style="bold", no_wrap=True)
                table.add_column(overflow="fold")
                for label, (text, style) in block.pairs:
                    table.add_row(label, Text(text, style=style))
                console.print(table)


def plain(block: Block) -> str:
    if isinstance(block, Line):
        return "".join(text for text, _ in block.segs)
    if isinstance(block, Fields):
        width = max(len(label) for label, _ in block.pairs) + 2
        return "\n".join((f"{label}:".ljust(width) + text.replace("\n", "\n" + " " * width)).rstrip()
                         for label, (text, _) in block.pairs)
    cells = [list(block.header)] + [[" ".join(text.split("\n")) for text, _ in row] for row in block.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(block.header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
