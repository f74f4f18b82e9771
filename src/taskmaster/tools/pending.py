"""Tools whose issues have not landed yet: each answers a clear tool error and changes nothing."""

from __future__ import annotations

from ..tasks.errors import TaskError
from .registry import tool

_AUTOPILOT = ("autopilot_start", "autopilot_resume", "autopilot_next", "autopilot_status",
              "autopilot_complete_phase", "autopilot_commit", "autopilot_finalize", "autopilot_abort")


def _unavailable(name: str, why: str):
    async def handler(ctx, args):
        raise TaskError(f"{name} is not available yet in taskmaster: {why}", "NOT_AVAILABLE")

    return handler


for _name in _AUTOPILOT:
    tool(_name)(_unavailable(_name, "the autopilot workflow has not landed"))
