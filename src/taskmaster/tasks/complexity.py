"""Complexity reports: one per tag, stored with the tag (`view.report(tag)`, `tx.set_report`).

A report has Task Master's shape (`{"meta": {...}, "complexityAnalysis": [{"taskId",
"complexityScore", "recommendedSubtasks", "expansionPrompt", "reasoning"}, ...]}`); answers about a
task that the report lists carry its figures. On disk it is
`.taskmaster/reports/task-complexity-report.json` for master and `..._<tag>.json` for other tags.
"""

from __future__ import annotations

import os
import re

from .errors import TaskError
from .state import MASTER, ProjectView

REPORTS_DIR = os.path.join(".taskmaster", "reports")
NO_REPORT = "No complexity report found. Run task-master analyze-complexity first."

# Report entry key -> the key an answer carries it under.
_FIELDS = (("complexityScore", "complexityScore"), ("recommendedSubtasks", "recommendedSubtasks"),
           ("expansionPrompt", "expansionPrompt"), ("reasoning", "complexityReasoning"),
           ("complexityReasoning", "complexityReasoning"))
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

# id(report) -> (report, {task id: entry}). Reports are never mutated in place (a new report is a
# new object), so an index built once per report stays valid; keeping the report alive keeps its
# id from being reused.
_indexes: dict[int, tuple[dict, dict[int, dict]]] = {}
_MAX_INDEXES = 64


def report_filename(tag: str) -> str:
    if tag == MASTER:
        return "task-complexity-report.json"
    return f"task-complexity-report_{_UNSAFE.sub('-', tag)}.json"


def report_path(root: str, tag: str) -> str:
    return os.path.join(root, REPORTS_DIR, report_filename(tag))


def get_complexity_report(view: ProjectView, tag: str) -> dict:
    """`{report, reportPath}` of the tag's report; TaskError when the tag has none."""
    report = view.report(tag)
    if report is None:
        raise TaskError(NO_REPORT, "FILE_NOT_FOUND")
    return {"report": report, "reportPath": report_path(view.root, tag)}


def complexity_of(report: dict | None, task_id: int) -> dict:
    """The report's figures for one task, keyed as answers carry them ({} when not listed)."""
    if not report:
        return {}
    entry = _index(report).get(task_id)
    if entry is None:
        return {}
    return {out: entry[key] for key, out in _FIELDS if key in entry}


def _index(report: dict) -> dict[int, dict]:
    hit = _indexes.get(id(report))
    if hit is not None and hit[0] is report:
        return hit[1]
    index: dict[int, dict] = {}
    entries = report.get("complexityAnalysis") if isinstance(report, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict):
            task_id = _as_task_id(entry.get("taskId"))
            if task_id is not None:
                index.setdefault(task_id, entry)
    if len(_indexes) >= _MAX_INDEXES:
        _indexes.clear()
    _indexes[id(report)] = (report, index)
    return index


def _as_task_id(value) -> int | None:
    # Reports written by either Task Master code path hold 5 or "5".
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
