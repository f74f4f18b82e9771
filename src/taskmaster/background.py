"""Background tasks a component owns: started with `spawn`, all cancelled and awaited by `stop`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine


class Background:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)  # held here: the loop keeps only weak references
        task.add_done_callback(self.tasks.discard)
        return task

    async def stop(self, *others: asyncio.Task) -> None:
        """Cancel every task (and `others`) and wait until they have all ended."""
        pending = [*self.tasks, *others]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def woken_or_after(wake: asyncio.Event, seconds: float) -> None:
    """Wait until `wake` is set or `seconds` pass, then clear it: the pace of a periodic loop that
    can also be nudged. (Not asyncio.wait_for: on 3.11 it can swallow the cancel that stops the loop.)"""
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        pass
    wake.clear()
