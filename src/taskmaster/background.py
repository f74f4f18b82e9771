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
