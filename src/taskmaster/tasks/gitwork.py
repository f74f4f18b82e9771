"""Git in a project's checkout, for the autopilot: `git` subprocesses run with asyncio (never through
a shell, never blocking the event loop). With files.py, the only module of `tasks` that does I/O.

Each step the autopilot needs is one function here (`prepare_branch`, `commit`, `tree_status`), so a
step runs whole on one node: the node that sees the checkout (cluster/gitproxy.py picks it).
Failures are `GitError`s (a TaskError) in git's own words.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import re

from .errors import TaskError

GIT_TIMEOUT = 60.0
"""Seconds one git command may take: a commit runs the repository's hooks, which can be slow."""

_SAFE_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")


class GitError(TaskError):
    """A git step failed; the message says why in words a user can act on."""


async def _run(root: str, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `git -C root args`."""
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}  # parseable output, never a prompt
    try:
        proc = await asyncio.create_subprocess_exec(
            "git", "-C", root, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL)
    except FileNotFoundError:
        raise GitError("git is not installed on this node", "GIT_MISSING") from None
    try:
        async with asyncio.timeout(GIT_TIMEOUT):
            out, err = await proc.communicate(stdin)
    except TimeoutError:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT:g} s and was stopped", "GIT_TIMEOUT") from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: no git left running behind us
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def git(root: str, *args: str, stdin: bytes | None = None) -> str:
    """stdout of `git -C root args`; GitError with git's message when it fails."""
    code, out, err = await _run(root, *args, stdin=stdin)
    if code != 0:
        raise GitError(f"git {args[0]} failed: {(err or out).strip() or f'exit code {code}'}", "GIT_FAILED")
    return out


# ---- what a checkout looks like -------------------------------------------------------------------
async def sees(root: str) -> bool:
    """Whether `root` is, on this node, inside a git work tree."""
    if not os.path.isdir(root):
        return False
    code, out, _ = await _run(root, "rev-parse", "--is-inside-work-tree")
    return code == 0 and out.strip() == "true"


async def current_branch(root: str) -> str | None:
    """The branch checked out (None on a detached HEAD)."""
    code, out, _ = await _run(root, "symbolic-ref", "--short", "-q", "HEAD")
    return out.strip() if code == 0 else None


async def tree_status(root: str) -> dict:
    """What is not committed: {clean, staged, modified, deleted, untracked} (counts of paths)."""
    out = await git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    counts = {"staged": 0, "modified": 0, "deleted": 0, "untracked": 0}
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        x, y = entry[0], entry[1]
        if x == "?":
            counts["untracked"] += 1
            continue
        if x in "RC":
            next(entries, None)  # a rename's or copy's original path follows
        if x not in " ?":
            counts["staged"] += 1
        if y == "D":
            counts["deleted"] += 1
        elif y != " ":
            counts["modified"] += 1
    return {"clean": not any(counts.values()), **counts}


def describe(status: dict) -> str:
    return (f"Staged: {status['staged']}, Modified: {status['modified']}, Deleted: {status['deleted']}, "
            f"Untracked: {status['untracked']}")


def check_files(files: list[str] | None) -> list[str] | None:
    """Paths to stage, relative to the project root and inside it (None: stage everything)."""
    if not files:
        return None
    for path in files:
        norm = posixpath.normpath(path.replace("\\", "/")) if path.strip() else ""
        if not norm or posixpath.isabs(norm) or re.match(r"^[A-Za-z]:", norm) or norm == ".." \
                or norm.startswith("../"):
            raise GitError(f'files: "{path}" is not a path inside the project root (give paths relative to '
                           "projectRoot)", "INVALID_PATH")
    return list(files)


def check_branch(branch: str) -> str:
    if not _SAFE_BRANCH.fullmatch(branch) or ".." in branch or branch.endswith(("/", ".lock")):
        raise GitError(f"not a usable branch name: {branch!r}", "INVALID_BRANCH")
    return branch


# ---- the autopilot's steps ---------------------------------------------------------------------------
async def prepare_branch(root: str, branch: str) -> dict:
    """PREFLIGHT and BRANCH_SETUP: the tree must be clean; then `branch` is checked out, created from
    HEAD if it does not exist. {branchName, created, previousBranch}."""
    check_branch(branch)
    status = await tree_status(root)
    if not status["clean"]:
        raise GitError(f"Working tree has uncommitted changes ({describe(status)}). Commit or stash them "
                       "before starting the workflow.", "DIRTY_TREE")
    previous = await current_branch(root)
    created = False
    if previous != branch:
        code, _, _ = await _run(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        created = code != 0
        await git(root, "checkout", "-q", *(["-b"] if created else []), branch)
    return {"branchName": branch, "created": created, "previousBranch": previous}


async def commit(root: str, branch: str, files: list[str] | None, message: str) -> dict:
    """Stage `files` (or every change), then commit them with `message` on `branch`, which must be
    the one checked out (never a commit on whatever branch the checkout happens to be on).
    {sha, files}."""
    files = check_files(files)
    on = await current_branch(root)
    if on != branch:
        raise GitError(f"The checkout at {root} is on {f'branch {on}' if on else 'a detached HEAD'}, not on the "
                       f"workflow's branch {branch}: check out {branch} and commit again.", "WRONG_BRANCH")
    await git(root, "add", "-A", *(["--", *files] if files else []))
    staged = [p for p in (await git(root, "diff", "--cached", "--name-only", "-z")).split("\0") if p]
    if not staged:
        raise GitError("No staged changes to commit. Make code changes before committing", "NOTHING_TO_COMMIT")
    await git(root, "commit", "-q", "-F", "-", stdin=message.encode())
    sha = (await git(root, "rev-parse", "HEAD")).strip()
    return {"sha": sha, "files": staged}
