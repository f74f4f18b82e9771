"""Tags: the named task lists of a project (list, add, delete, use, rename, copy).

Task ids are per tag. `master` always exists and can be neither renamed nor deleted; new names
must match TAG_NAME_RULE and not be reserved (master, main, default, any case). Switching tags
writes the project state (currentTag, lastSwitched), which tools without a `tag` argument follow.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from datetime import datetime

from .errors import TaskError
from .model import DONE, RESERVED_TAGS, TAG_NAME_RULE, iso_now
from .next_task import next_task
from .state import MASTER, ProjectTx, ProjectView, copy_json

_NAME = re.compile(TAG_NAME_RULE)
_NAME_CHARS = "can only contain letters, numbers, hyphens, and underscores"
_RESERVED_BRANCHES = frozenset({"main", "master", "develop", "dev", "head"})
_BRANCH_NAME_LIMIT = 50
_MASTER_DESCRIPTION = "Tasks live here by default"


def locale_date() -> str:
    """Today as Task Master writes it in descriptions (JavaScript's en-US toLocaleDateString)."""
    today = datetime.now()
    return f"{today.month}/{today.day}/{today.year}"


def new_tag_metadata(description: str) -> dict:
    """The metadata of a tag created now."""
    now = iso_now()
    return {"created": now, "updated": now, "description": description}


# ---- name rules ----------------------------------------------------------------------------------
def check_new_name(view: ProjectView, name: str, field: str, who: str = "Tag") -> None:
    """Refuse `name` for a new tag: invalid characters, reserved, or taken. `field` names the argument."""
    if not _NAME.fullmatch(name):
        raise TaskError(f'{who} name {_NAME_CHARS} ({field}: "{name}")', "INVALID_TAG_NAME")
    if name.lower() in RESERVED_TAGS:
        raise TaskError(f'"{name}" is a reserved tag name ({field})', "RESERVED_TAG_NAME")
    if view.has_tag(name):
        raise TaskError(f'{who} "{name}" already exists', "TAG_EXISTS")


def _check_existing(view: ProjectView, name: str, field: str, who: str = "Tag") -> None:
    if view.has_tag(name):
        return
    if not _NAME.fullmatch(name):
        raise TaskError(f'{who} name is not valid ({field}: "{name}"): a tag name {_NAME_CHARS}',
                        "INVALID_TAG_NAME")
    raise TaskError(f'{who} "{name}" does not exist', "TAG_NOT_FOUND")


def _switch(tx: ProjectTx, name: str) -> None:
    state = tx.edit_state()
    state["currentTag"] = name
    state["lastSwitched"] = iso_now()


def _copy_tasks(tx: ProjectTx, source: str, target: str) -> int:
    tasks = list(tx.tasks(source))
    for task in tasks:
        tx.add(target, copy_json(task))
    return len(tasks)


# ---- list ----------------------------------------------------------------------------------------
def list_tags(view: ProjectView, show_metadata: bool = False) -> dict:
    """Every tag with its counts: the current tag first, then by name."""
    current = view.current_tag
    names = sorted(view.tag_names(), key=lambda n: (n != current, n.lower(), n))
    tags = [_tag_summary(view, name, current, show_metadata) for name in names]
    return {"tags": tags, "currentTag": current, "totalTags": len(tags),
            "message": f"Found {len(tags)} tag(s)"}


def _tag_summary(view: ProjectView, name: str, current: str, show_metadata: bool) -> dict:
    tasks = view.tasks(name)
    metadata = view.metadata(name)
    subtasks = [sub for task in tasks for sub in task.get("subtasks") or []]
    summary = {
        "name": name,
        "isCurrent": name == current,
        "taskCount": len(tasks),
        "completedTasks": sum(1 for t in tasks if t.get("status") in DONE),
        "statusBreakdown": dict(Counter(t.get("status") or "pending" for t in tasks)),
        "subtaskCounts": {"totalSubtasks": len(subtasks),
                          "subtasksByStatus": dict(Counter(s.get("status") or "pending" for s in subtasks))},
        "created": metadata.get("created") or "Unknown",
        "description": metadata.get("description") or (
            _MASTER_DESCRIPTION if name == MASTER else "No description"),
    }
    if show_metadata:
        summary["metadata"] = metadata
    return summary


# ---- add -----------------------------------------------------------------------------------------
def add_tag(tx: ProjectTx, name: str, *, copy_from_current: bool = False, copy_from_tag: str | None = None,
            description: str | None = None) -> dict:
    """Create an empty tag, or a copy of the current tag or of `copy_from_tag`. Does not switch."""
    check_new_name(tx, name, "name")
    created = _create(tx, name, copy_from_current, copy_from_tag,
                      description or f"Tag created on {locale_date()}")
    return {**created, "message": f'Successfully created tag "{name}"'}


def add_tag_from_branch(tx: ProjectTx, branch: str, *, copy_from_current: bool = False,
                        copy_from_tag: str | None = None, description: str | None = None) -> dict:
    """Create the tag named after a git branch and remember the branch -> tag mapping."""
    name = tag_name_for_branch(branch)
    check_new_name(tx, name, "fromBranch")
    created = _create(tx, name, copy_from_current, copy_from_tag,
                      description or f'Tag created from git branch "{branch}"')
    tx.edit_state().setdefault("branchTagMapping", {})[branch] = name
    return {"branchName": branch, **created, "mappingUpdated": True,
            "message": f'Successfully created tag "{name}" from git branch "{branch}"'}


def _create(tx: ProjectTx, name: str, copy_from_current: bool, copy_from_tag: str | None,
            description: str) -> dict:
    tx.create_tag(name, new_tag_metadata(description))
    source = copy_from_tag or (tx.current_tag if copy_from_current else None)
    result = {"tagName": name, "created": True, "tasksCopied": 0, "sourceTag": source,
              "description": description}
    if source is not None:
        result["tasksCopied"] = _copy_tasks(tx, source, name)
        if copy_from_tag and result["tasksCopied"] == 0:
            result["warning"] = f'Source tag "{copy_from_tag}" not found or has no tasks'
    return result


def tag_name_for_branch(branch: str) -> str:
    """Task Master's tag name for a git branch: [^A-Za-z0-9_-] -> '-', trimmed, lowercase, <= 50."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", branch).strip("-")
    name = re.sub(r"-+", "-", name).lower()[:_BRANCH_NAME_LIMIT]
    if branch.lower() in _RESERVED_BRANCHES or not name:
        raise TaskError(f'Branch "{branch}" cannot be converted to a valid tag name', "INVALID_BRANCH")
    return name


def current_branch(root: str) -> str:
    """The git branch checked out in `root`. Runs git: call it off the event loop."""
    try:
        run = subprocess.run(["git", "-C", root, "symbolic-ref", "--short", "-q", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TaskError(f"Cannot use fromBranch option: git failed ({exc})", "NOT_GIT_REPO") from None
    if run.returncode == 0 and run.stdout.strip():
        return run.stdout.strip()
    if run.returncode == 1:  # a repository with a detached HEAD
        raise TaskError("Could not determine current git branch.", "NO_CURRENT_BRANCH")
    raise TaskError("Not in a git repository. Cannot use fromBranch option.", "NOT_GIT_REPO")


# ---- delete, use, rename, copy -------------------------------------------------------------------
def delete_tag(tx: ProjectTx, name: str) -> dict:
    """Delete a tag and its tasks; deleting the current tag switches to master."""
    if name == MASTER:
        raise TaskError('Cannot delete the "master" tag', "MASTER_TAG")
    _check_existing(tx, name, "name")
    was_current = tx.current_tag == name
    count = len(tx.tasks(name))
    tx.delete_tag(name)
    if was_current:
        _switch(tx, MASTER)
    return {"tagName": name, "deleted": True, "tasksDeleted": count, "wasCurrentTag": was_current,
            "switchedToMaster": was_current, "message": f'Successfully deleted tag "{name}"'}


def use_tag(tx: ProjectTx, name: str) -> dict:
    """Make `name` the current tag."""
    _check_existing(tx, name, "name")
    previous = tx.current_tag
    _switch(tx, name)
    return {"tagName": name, "currentTag": name, "previousTag": previous, "switched": True,
            "taskCount": len(tx.tasks(name)), "nextTask": next_task(tx, name)["nextTask"],
            "message": f'Successfully switched to tag "{name}"'}


def rename_tag(tx: ProjectTx, old: str, new: str) -> dict:
    """Give a tag a new name (tasks, metadata and complexity report move; state follows)."""
    if old == MASTER:
        raise TaskError('Cannot rename the "master" tag', "MASTER_TAG")
    _check_existing(tx, old, "oldName")
    check_new_name(tx, new, "newName", "New tag")
    metadata = copy_json(tx.metadata(old))
    metadata["renamed"] = {"from": old, "date": iso_now()}
    report = tx.report(old)
    was_current = tx.current_tag == old
    tx.create_tag(new, metadata)
    count = _copy_tasks(tx, old, new)
    if report is not None:
        tx.set_report(new, copy_json(report))
    tx.delete_tag(old)
    if was_current:
        _switch(tx, new)
    return {"oldName": old, "newName": new, "renamed": True, "taskCount": count,
            "wasCurrentTag": was_current, "isCurrentTag": was_current,
            "message": f'Successfully renamed tag from "{old}" to "{new}"'}


def copy_tag(tx: ProjectTx, source: str, target: str, description: str | None = None) -> dict:
    """Create `target` as a deep copy of `source`'s tasks. Does not switch."""
    _check_existing(tx, source, "sourceName", "Source tag")
    check_new_name(tx, target, "targetName", "Target tag")
    description = description or f'Copy of "{source}" created on {locale_date()}'
    metadata = new_tag_metadata(description)
    metadata["copiedFrom"] = {"tag": source, "date": metadata["created"]}
    tx.create_tag(target, metadata)
    count = _copy_tasks(tx, source, target)
    return {"sourceName": source, "targetName": target, "copied": True, "tasksCopied": count,
            "description": description,
            "message": f'Successfully copied tag from "{source}" to "{target}"'}
