"""Real git repositories in temp dirs for the autopilot tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(root, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> str:
    """A repository on branch main with one commit and a committer configured."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.com")
    (path / "README").write_text("hello\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "init")
    return str(path)
