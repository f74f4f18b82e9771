"""analyze_project_complexity: a model's scores turned into the tag's complexity report.

As the reference: the active tasks (pending, blocked, in-progress) are analysed, narrowed by `ids`
or by the range `from`..`to` (defaults: 1 and the highest id); a task the model left out gets the
reference's default entry (score 5, 3 subtasks); entries of tasks not analysed this time are kept
(before the new ones), and `meta` records the run. When a filter matches nothing, an existing
report is returned as it is. The report is stored with the tag (complexity.py reads it) in Task
Master's shape.

Deliberate differences: answers about tasks that were not asked for are ignored (the reference
stored them), and kept entries of tasks that no longer exist are dropped.
"""

from __future__ import annotations

from .errors import TaskError
from .references import refs_or_error
from .state import ProjectTx, ProjectView

ACTIVE = frozenset({"pending", "blocked", "in-progress"})
HIGH, MEDIUM = 8, 5  # score bands of the answer's summary, as the reference


def parse_task_ids(text: str | None) -> list[int] | None:
    """The `ids` argument: a comma list of task ids (None when blank)."""
    if text is None or not str(text).strip():
        return None
    refs = refs_or_error(text)
    subtasks = [str(r) for r in refs if r.sub is not None]
    if subtasks:
        raise TaskError(f"Complexity is analysed for tasks, not subtasks: {', '.join(subtasks)}", "INVALID_TASK_ID")
    return [r.task for r in refs]


def analysis_targets(view: ProjectView, tag: str, ids: list[int] | None = None, first: int | None = None,
                     last: int | None = None) -> list[dict]:
    every = view.tasks(tag)
    if not every:
        raise TaskError(f"No tasks found in tag '{tag}' to analyze", "NO_TASKS")
    active = [t for t in every if str(t.get("status") or "pending").lower() in ACTIVE]
    if ids:
        wanted = set(ids)
        return [t for t in active if t["id"] in wanted]
    if first is not None or last is not None:
        low = first if first is not None else 1
        high = last if last is not None else every[-1]["id"]
        return [t for t in active if low <= t["id"] <= high]
    return active


def default_entry(task: dict) -> dict:
    title = task.get("title") or ""
    return {"taskId": task["id"], "taskTitle": title, "complexityScore": 5, "recommendedSubtasks": 3,
            "expansionPrompt": f"Break down this task with a focus on {title.lower()}.",
            "reasoning": "Automatically added due to missing analysis in AI response."}


def store_analysis(tx: ProjectTx, tag: str, analysed: list[int], answer: list[dict], *, threshold: float,
                   research: bool, project_name: str, now: str) -> dict:
    """Merge the model's entries for the `analysed` task ids into the tag's report and store it."""
    tasks = [t for t in (tx.task(tag, i) for i in analysed) if t is not None]
    asked = {t["id"]: t for t in tasks}
    answered: dict[int, dict] = {}
    for entry in answer:
        task = asked.get(entry["taskId"])
        if task is not None and entry["taskId"] not in answered:
            answered[entry["taskId"]] = {
                "taskId": entry["taskId"], "taskTitle": entry.get("taskTitle") or task.get("title") or "",
                "complexityScore": entry["complexityScore"], "recommendedSubtasks": entry["recommendedSubtasks"],
                "expansionPrompt": entry["expansionPrompt"], "reasoning": entry["reasoning"]}
    fresh = [answered.get(t["id"]) or default_entry(t) for t in tasks]
    previous = (tx.report(tag) or {}).get("complexityAnalysis")
    kept = [e for e in previous if isinstance(e, dict) and _entry_id(e) not in asked
            and tx.task(tag, _entry_id(e)) is not None] if isinstance(previous, list) else []
    entries = [*kept, *fresh]
    report = {"meta": {"generatedAt": now, "tasksAnalyzed": len(tasks), "totalTasks": len(tx.tasks(tag)),
                       "analysisCount": len(entries), "thresholdScore": threshold, "projectName": project_name,
                       "usedResearch": research},
              "complexityAnalysis": entries}
    tx.set_report(tag, report)
    return report


def report_summary(report: dict) -> dict:
    scores = [_score(e) for e in report.get("complexityAnalysis") or ()]
    return {"taskCount": len(scores), "highComplexityTasks": sum(s >= HIGH for s in scores),
            "mediumComplexityTasks": sum(MEDIUM <= s < HIGH for s in scores),
            "lowComplexityTasks": sum(s < MEDIUM for s in scores)}


def _entry_id(entry: dict) -> int | None:
    """A stored entry's task id (reports written by either reference code path hold 5 or "5")."""
    value = entry.get("taskId")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _score(entry) -> float:
    value = entry.get("complexityScore") if isinstance(entry, dict) else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0
