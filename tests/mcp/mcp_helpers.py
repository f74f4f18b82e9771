"""Constants and stand-in tools shared by the MCP protocol tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import strategies as st

from taskmaster import __version__

# Any JSON value at all (what a client could send): for the fuzzing tests of the parser and server.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)

# tools/list of task-master-ai 0.43.1, recorded from the real server (../shared/reference/tools_list.json)
REFERENCE = json.loads((Path(__file__).parent / "reference_tools_list.json").read_text())
INFO = {"name": "taskmaster", "version": __version__}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def stepping_tool(name, arguments, session):
    """A stand-in call_tool that reports `steps` progress steps through the session, as handlers do
    through ctx.progress, and says whether it could."""
    steps = arguments.get("steps", 0)
    for i in range(steps):
        if session["progress"] is not None:
            await session["progress"](i + 1, steps, None if i else "starting")
        await asyncio.sleep(0)
    return {"content": [{"type": "text", "text": f"{steps} steps, progress {session['progress'] is not None}"}]}
