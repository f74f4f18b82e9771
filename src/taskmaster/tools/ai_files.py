"""The project files the AI tools read and write on the node that answers: the PRD, research's
context files and project tree, the saved research and the complexity report file. Blocking: call
them through asyncio.to_thread.
"""

from __future__ import annotations

import os

from ..tasks import files
from ..tasks.errors import TaskError

MAX_CONTEXT_FILE_BYTES = 100_000  # of each research `filePaths` file
TREE_DEPTH, TREE_ENTRIES = 3, 200  # research's project tree
_TREE_SKIP = frozenset({"node_modules", "__pycache__", "venv", "dist", "build"})


def read_prd(root: str, name: str, limit: int) -> str:
    """parse_prd's `input` (relative to the project, or absolute) as text; clear errors for a missing,
    oversized, binary or empty file."""
    path = files.resolve_path(root, name)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise TaskError(f"Input PRD file not found at resolved path: {path}", "FILE_NOT_FOUND") from None
    if size > limit:
        raise TaskError(f"The PRD (input: {path}) is {size} bytes, over the limit of {limit} bytes for one "
                        "parse_prd call: split it into parts (append mode adds each part's tasks)", "INPUT_TOO_LARGE")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise TaskError(f"Input file {path} is not UTF-8 text", "INVALID_INPUT") from None
    except OSError as exc:
        raise TaskError(f"Cannot read input file {path}: {exc.strerror}", "FILE_READ_ERROR") from None
    if not text.strip():
        raise TaskError(f"Input file {path} is empty or could not be read.", "EMPTY_INPUT")
    return text


def write_report_file(root: str, path: str, report: dict, explicit: bool) -> bool:
    """Also write Task Master's report file: where `output` says, or beside an existing .taskmaster
    directory. The stored report is the truth; a file that cannot be written only goes unwritten."""
    if not os.path.isdir(root) or (not explicit and not os.path.isdir(os.path.join(root, ".taskmaster"))):
        return False  # a project this node has no directory for gets no files
    try:
        files.write_json(path, report)
    except TaskError:
        return False
    return True


def context_files(root: str, paths: str | None) -> dict[str, str]:
    """research's `filePaths` (relative to the project, or absolute), read: the first
    MAX_CONTEXT_FILE_BYTES of each."""
    contents = {}
    for name in (p.strip() for p in (paths or "").split(",")):
        if not name:
            continue
        path = files.resolve_path(root, name)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_CONTEXT_FILE_BYTES + 1)
        except FileNotFoundError:
            raise TaskError(f"filePaths: file not found: {name}", "FILE_NOT_FOUND") from None
        except OSError as exc:
            raise TaskError(f"filePaths: cannot read {name}: {exc.strerror}", "FILE_READ_ERROR") from None
        text = raw[:MAX_CONTEXT_FILE_BYTES].decode("utf-8", errors="replace")
        contents[name] = text + (f"\n[... cut at {MAX_CONTEXT_FILE_BYTES} bytes]" if len(raw) > MAX_CONTEXT_FILE_BYTES
                                 else "")
    return contents


def project_tree(root: str) -> str:
    """The project's files and directories, TREE_DEPTH deep and at most TREE_ENTRIES lines, hidden and
    dependency/build directories left out."""
    lines: list[str] = []

    def walk(directory: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if len(lines) >= TREE_ENTRIES:
                return
            if entry.name.startswith(".") or entry.name in _TREE_SKIP:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            lines.append("  " * depth + entry.name + ("/" if is_dir else ""))
            if is_dir and depth + 1 < TREE_DEPTH:
                walk(entry.path, depth + 1)

    walk(root, 0)
    return "\n".join(lines)


def write_text(root: str, directory: str, name: str, content: str) -> str:
    """Write a file under the project atomically; returns its path."""
    if not os.path.isdir(root):
        raise TaskError(f"Project root {root} does not exist or is not a directory on this node",
                        "INVALID_PROJECT_ROOT")
    folder = os.path.join(root, directory)
    path = os.path.join(folder, name)
    try:
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except OSError as exc:
        raise TaskError(f"Cannot write {path}: {exc.strerror}", "WRITE_ERROR") from None
    return path
