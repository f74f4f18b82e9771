"""Shared fixtures: a real RocksDB-backed TaskService in a temp dir, and pure views."""

from __future__ import annotations

import pytest

from taskmaster.crdt import HLC
from taskmaster.storage import Store
from taskmaster.tasks.service import TaskService
from taskmaster.tasks.state import ProjectTx, ProjectView

ROOT = "/tmp/taskmaster-test-project"


@pytest.fixture
def service(tmp_path):
    """A TaskService on a real RocksDB in tmp_path (no files imported)."""
    store = Store(str(tmp_path / "db"))
    svc = TaskService(store, HLC("test-node"))
    yield svc
    store.close()


def make_tx(tags: dict, state: dict | None = None, root: str = ROOT) -> ProjectTx:
    """A transaction over plain data, for pure domain tests: `{tag: {"tasks": [...]}}`."""
    return ProjectTx(ProjectView.from_plain(root, tags, state))
