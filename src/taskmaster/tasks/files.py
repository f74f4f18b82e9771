"""Task Master's files: importing a project's tasks.json, exporting one, and the generated task files.

Import reads `<root>/.taskmaster/tasks/tasks.json` (or the legacy `<root>/tasks/tasks.json`) in
either format Task Master writes — tagged `{tag: {tasks, metadata}}` or the flat
`{tasks, metadata}` (which becomes master) — and normalises what the two code paths of the
reference mix: ids "5" and 5 become 5, dependencies "3" become 3, "2.1" stays. Inside subtask P's
list Task Master writes a sibling as a bare n: we store it as "P.n", so that a bare number always
means a top-level task. A file that cannot be understood raises TaskError naming the file, and
nothing is imported.

Export writes the tagged format with 2-space indentation, which the reference loads unchanged:
siblings go back to bare numbers. Task Master's format cannot say "this subtask depends on
top-level task n" (a bare n means a sibling there), so such a subtask also gets the exact list in
`tmDependencies`, which the reference keeps untouched and our import prefers.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from .complexity import report_path
from .errors import TaskError
from .ids import MAX_ID, dep_wire, parse_ref
from .state import MASTER, ProjectTx, ProjectView

TASKS_FILE = os.path.join(".taskmaster", "tasks", "tasks.json")
LEGACY_TASKS_FILE = os.path.join("tasks", "tasks.json")
STATE_FILE = os.path.join(".taskmaster", "state.json")
LEGACY_REPORT_FILE = os.path.join("scripts", "task-complexity-report.json")
TASK_FILES_DIR = os.path.join(".taskmaster", "tasks")
EXACT_DEPS = "tmDependencies"  # a subtask's exact dependency list, when Task Master's form is ambiguous

_STATUS_MARK = {"done": " ✓", "in-progress": " ⧖", "blocked": " ⛔", "cancelled": " ✗",
                "deferred": " ⏸", "review": " 👁"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


# ---- plain JSON files ---------------------------------------------------------------------------
def resolve_path(root: str, path: str) -> str:
    """A path argument as the reference reads it: relative paths are relative to the project."""
    return os.path.normpath(os.path.join(root, os.path.expanduser(path)))


def read_json(path: str) -> Any:
    """The parsed file, None when it does not exist; TaskError when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"Cannot read {path}: {exc}", "FILE_READ_ERROR") from exc
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path} is not valid JSON: {exc}", "INVALID_JSON") from exc


def write_json(path: str, data: Any) -> None:
    """Write atomically (temporary file, fsync, rename): readers see the old or the new file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise TaskError(f"Cannot write {path}: {exc}", "WRITE_ERROR") from exc


# ---- import ---------------------------------------------------------------------------------------
def import_project(tx: ProjectTx, path: str | None = None) -> bool:
    """Fill the project from its files; False when it has no tasks.json (nothing is changed).

    `path` names the tasks file to read (a missing one is an error); by default the project's own
    (or the legacy location). Tags in the file replace the project's tags of the same name; other
    tags are kept. The tag reports and state.json (current tag) come along.
    """
    if path is not None:
        data = read_json(path)
        if data is None:
            raise TaskError(f"No tasks file at {path}", "FILE_NOT_FOUND")
    else:
        path = os.path.join(tx.root, TASKS_FILE)
        data = read_json(path)
        if data is None:
            path = os.path.join(tx.root, LEGACY_TASKS_FILE)
            data = read_json(path)
            if data is None:
                return False
    tags = parse_tasks_file(data, path)
    if not tags:
        return False
    reports = _read_reports(tx.root, tags)
    state = read_json(os.path.join(tx.root, STATE_FILE))
    if state is not None and not isinstance(state, dict):
        raise TaskError(f"{os.path.join(tx.root, STATE_FILE)} must hold a JSON object", "INVALID_STATE_FILE")
    for name, (tasks, metadata) in tags.items():
        _replace_tag(tx, name, tasks, metadata)
        if name in reports:
            tx.set_report(name, reports[name])
    if state:
        tx.edit_state().update(state)
    return True


def parse_tasks_file(data: Any, path: str) -> dict[str, tuple[list[dict], dict]]:
    """{tag: (normalised tasks, metadata)} from a tasks.json document of either format."""
    if not isinstance(data, dict):
        raise TaskError(f"{path} is not a Task Master tasks file: expected a JSON object", "INVALID_TASKS_FILE")
    if isinstance(data.get("tasks"), list):  # the flat pre-tag format is the master tag
        metadata = data.get("metadata", data.get("meta"))
        return {MASTER: (_tasks(data["tasks"], f"{path}: tag '{MASTER}'"),
                         _metadata(metadata, path, MASTER))}
    tags = {}
    for name, body in data.items():
        if not name.strip():
            raise TaskError(f"{path}: a tag name must not be empty", "INVALID_TASKS_FILE")
        if not isinstance(body, dict) or not isinstance(body.get("tasks", []), list):
            raise TaskError(f"{path}: tag '{name}' must be an object with a \"tasks\" list",
                            "INVALID_TASKS_FILE")
        tags[name] = (_tasks(body.get("tasks", []), f"{path}: tag '{name}'"),
                      _metadata(body.get("metadata"), path, name))
    return tags


def _replace_tag(tx: ProjectTx, name: str, tasks: list[dict], metadata: dict) -> None:
    if tx.has_tag(name):
        for old in list(tx.tasks(name)):
            tx.remove(name, old)
        current = tx.edit_metadata(name)
        current.clear()
        current.update(metadata)
    else:
        tx.create_tag(name, metadata)
    for task in tasks:
        tx.add(name, task)


def _metadata(value: Any, path: str, tag: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TaskError(f"{path}: the metadata of tag '{tag}' must be an object", "INVALID_TASKS_FILE")
    return value


def _tasks(raw: list, where: str) -> list[dict]:
    tasks, seen = [], set()
    for item in raw:
        task = _task(item, where)
        if task["id"] in seen:
            raise TaskError(f"{where}: task id {task['id']} appears twice", "INVALID_TASKS_FILE")
        seen.add(task["id"])
        tasks.append(task)
    return tasks


def _task(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: every task must be an object", "INVALID_TASKS_FILE")
    task = dict(raw)
    task["id"] = _number(raw.get("id"), f"{where}: task id")
    where = f"{where}, task {task['id']}"
    task["dependencies"] = _dependencies(raw.get("dependencies"), where)
    subtasks = raw.get("subtasks")
    if subtasks is not None and not isinstance(subtasks, list):
        raise TaskError(f"{where}: \"subtasks\" must be a list", "INVALID_TASKS_FILE")
    task["subtasks"] = [_subtask(s, where, task["id"]) for s in subtasks or ()]
    return task


def _subtask(raw: Any, where: str, parent: int) -> dict:
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: every subtask must be an object", "INVALID_TASKS_FILE")
    sub = dict(raw)
    sub_id = raw.get("id")
    if isinstance(sub_id, str) and "." in sub_id:
        sub_id = sub_id.rsplit(".", 1)[1]  # a stored "5.2" means subtask 2
    sub["id"] = _number(sub_id, f"{where}: subtask id")
    where = f"{where}, subtask {sub['id']}"
    exact = sub.pop(EXACT_DEPS, None)
    if exact is not None:  # our own export: already unambiguous
        sub["dependencies"] = _dependencies(exact, where)
    else:
        sub["dependencies"] = [f"{parent}.{d}" if isinstance(d, int) else d
                               for d in _dependencies(raw.get("dependencies"), where)]
    if sub.get("parentId") == "undefined":
        del sub["parentId"]  # junk the reference's tm-core writer leaves behind
    return sub


def _number(value: Any, what: str) -> int:
    if (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and value.strip().isdigit()):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise TaskError(f"{what} must be a positive whole number, got {json.dumps(value)}",
                        "INVALID_TASKS_FILE")
    return value


def _dependencies(raw: Any, where: str) -> list[int | str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise TaskError(f"{where}: \"dependencies\" must be a list", "INVALID_TASKS_FILE")
    deps: list[int | str] = []
    for item in raw:
        dep = dep_wire(int(item) if isinstance(item, float) and item.is_integer() else item)
        try:
            if isinstance(dep, bool) or not isinstance(dep, int | str):
                raise ValueError
            parse_ref(dep)
        except ValueError:
            raise TaskError(f"{where}: invalid dependency {json.dumps(item)}", "INVALID_TASKS_FILE") from None
        if dep not in deps:
            deps.append(dep)
    return deps


def _read_reports(root: str, tags: dict) -> dict[str, dict]:
    reports = {}
    for name in tags:
        path = report_path(root, name)
        report = read_json(path)
        if report is None and name == MASTER:
            path = os.path.join(root, LEGACY_REPORT_FILE)
            report = read_json(path)
        if report is None:
            continue
        if not isinstance(report, dict):
            raise TaskError(f"{path} must hold a JSON object", "INVALID_REPORT_FILE")
        reports[name] = report
    return reports


# ---- export ---------------------------------------------------------------------------------------
def export_project(view: ProjectView) -> dict:
    """The project as a tagged tasks.json document (master first), in Task Master's conventions."""
    names = [MASTER] + [n for n in view.tag_names() if n != MASTER]
    return {name: {"tasks": [_export_task(t) for t in view.tasks(name)], "metadata": view.metadata(name)}
            for name in names}


def _export_task(task: dict) -> dict:
    if not task.get("subtasks"):
        return task  # nothing to translate: share the cached dict (read only)
    out = dict(task)
    out["subtasks"] = [_export_subtask(task["id"], s) for s in task["subtasks"]]
    return out


def _export_subtask(parent: int, sub: dict) -> dict:
    deps = sub.get("dependencies") or []
    out = dict(sub)
    prefix = f"{parent}."
    out["dependencies"] = [int(d[len(prefix):]) if isinstance(d, str) and d.startswith(prefix) else d
                           for d in deps]
    if any(isinstance(d, int) for d in deps):
        out[EXACT_DEPS] = list(deps)
    return out


def write_tasks_json(view: ProjectView, path: str) -> dict:
    """Export the project to `path` atomically; returns what was written."""
    data = export_project(view)
    write_json(path, data)
    return {"path": path, "tags": len(data), "tasks": sum(len(body["tasks"]) for body in data.values())}


# ---- generated task files -------------------------------------------------------------------------
def generate_task_files(tasks: list[dict], tag: str, directory: str) -> dict:
    """One markdown file per task of the tag in `directory`; files of the tag's vanished tasks go."""
    try:
        os.makedirs(directory, exist_ok=True)
        removed = 0
        if tasks:
            removed = _remove_orphans(directory, tag, {t["id"] for t in tasks})
            status_of = {t["id"]: t.get("status") for t in tasks}
            for task in tasks:
                with open(os.path.join(directory, task_filename(task["id"], tag)), "w", encoding="utf-8") as f:
                    f.write(task_markdown(task, status_of))
    except OSError as exc:
        raise TaskError(f"Failed to generate task files: {exc}", "WRITE_ERROR") from exc
    return {"message": f"Successfully generated {len(tasks)} task file(s)", "count": len(tasks),
            "directory": directory, "orphanedFilesRemoved": removed}


def task_filename(task_id: int, tag: str) -> str:
    if tag == MASTER:
        return f"task_{task_id:03d}.md"
    return f"task_{task_id:03d}_{_UNSAFE.sub('-', tag)}.md"


def _remove_orphans(directory: str, tag: str, ids: set[int]) -> int:
    suffix = "" if tag == MASTER else "_" + re.escape(_UNSAFE.sub("-", tag))
    pattern = re.compile(rf"^task_(\d+){suffix}\.md$")
    removed = 0
    for name in os.listdir(directory):
        m = pattern.match(name)
        if m and int(m.group(1)) not in ids:
            os.unlink(os.path.join(directory, name))
            removed += 1
    return removed


def task_markdown(task: dict, status_of: dict[int, str | None]) -> str:
    """The task file's text, in the layout of the reference's generator."""
    deps = ", ".join(f"{d}{_STATUS_MARK.get(status_of.get(d), '')}" if isinstance(d, int) else str(d)
                     for d in task.get("dependencies") or ())
    lines = [
        f"# Task ID: {task['id']}\n",
        f"**Title:** {task.get('title', '')}\n",
        f"**Status:** {task.get('status') or 'pending'}\n",
        f"**Dependencies:** {deps or 'None'}\n",
        f"**Priority:** {task.get('priority') or 'medium'}\n",
        f"**Description:** {task.get('description') or ''}\n",
        "**Details:**\n",
        f"{task.get('details') or 'No details provided.'}\n",
        "**Test Strategy:**\n",
        f"{task.get('testStrategy') or 'No test strategy provided.'}",
    ]
    text = "\n".join(lines) + "\n"
    subtasks = task.get("subtasks") or []
    if subtasks:
        text += "\n## Subtasks\n" + "".join(_subtask_markdown(task["id"], s) for s in subtasks)
    return re.sub(r"\n{3,}", "\n\n", text)


def _subtask_markdown(parent_id: int, sub: dict) -> str:
    deps = ", ".join(str(d) for d in sub.get("dependencies") or ())
    text = (f"\n### {parent_id}.{sub['id']}. {sub.get('title', '')}\n\n"
            f"**Status:** {sub.get('status') or 'pending'}  \n"
            f"**Dependencies:** {deps or 'None'}  \n\n")
    if sub.get("description"):
        text += f"{sub['description']}\n"
    if sub.get("details"):
        text += f"\n**Details:**\n\n{sub['details']}\n"
    return text
