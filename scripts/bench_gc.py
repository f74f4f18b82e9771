"""Write pauses from Python's full garbage collections on a node holding many tasks, with and
without the daemon's freeze of what survives a full collection (daemon.freeze_after_full_collection).

    python scripts/bench_gc.py [--tasks 100000] [--writes 20000]

One TaskService on a real RocksDB (in a temp dir) holds --tasks tasks over 100 tags; a loop then
writes --writes status changes, one at a time, and records each write's duration (the domain
write and the commit, without HTTP). The same writes run twice in this process: first with the
default collector (the baseline), then with the freeze hook installed; each phase ends with a\nforced full collection, the pause the next one the writes trigger would cost. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time

from taskmaster.crdt import HLC
from taskmaster.daemon import freeze_after_full_collection
from taskmaster.storage import Store
from taskmaster.tasks.service import TaskService

ROOT = "/bench/gc"
TAGS = 100


async def load(service: TaskService, tasks: int) -> None:
    per_tag = tasks // TAGS

    def fill(tx, tag):
        if tag != "master":
            tx.create_tag(tag, {})
        for i in range(1, per_tag + 1):
            tx.add(tag, {"id": i, "title": f"task {i}", "description": "d" * 40, "details": "x" * 80,
                         "testStrategy": "", "status": "pending", "priority": "medium",
                         "dependencies": [i - 1] if i > 1 else [], "subtasks": []})

    for t in range(TAGS):
        tag = "master" if t == 0 else f"t{t}"
        await service.write(ROOT, lambda tx, tag=tag: fill(tx, tag))


async def writes(service: TaskService, count: int, per_tag: int) -> list[float]:
    took = []
    for i in range(count):
        tag = "master" if i % TAGS == 0 else f"t{i % TAGS}"
        status = "done" if (i // TAGS) % 2 else "pending"
        task_id = 1 + (i // TAGS) % per_tag
        started = time.perf_counter()
        await service.write(ROOT, lambda tx, tag=tag, task_id=task_id, status=status:
                            tx.edit(tag, tx.find(tag, task_id)).update(status=status))
        took.append(time.perf_counter() - started)
    return took


def summary(took: list[float]) -> dict:
    ordered = sorted(took)
    return {"max_ms": round(ordered[-1] * 1000, 1), "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
            "over_50ms": sum(t > 0.05 for t in took)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--writes", type=int, default=20_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"{tmp}/db")
        service = TaskService(store, HLC("bench"))
        started = time.perf_counter()
        await load(service, a.tasks)
        for t in range(TAGS):  # every tag in the cache, as on a node serving them all
            service.view(ROOT).tasks("master" if t == 0 else f"t{t}")
        loaded = time.perf_counter() - started
        full: list[float] = []  # durations of the full collections, as they happen
        gc.callbacks.append(lambda phase, info: info["generation"] == 2 and full.append(time.perf_counter()))
        baseline = await writes(service, a.writes, a.tasks // TAGS)
        gc.collect()  # what the next full collection the writes trigger costs
        default_gc = {**summary(baseline), **pauses(full)}
        gc.callbacks.append(freeze_after_full_collection)
        gc.collect()  # the first full collection freezes what is loaded
        full[:] = []
        frozen = await writes(service, a.writes, a.tasks // TAGS)
        gc.collect()
        frozen_gc = {**summary(frozen), **pauses(full)}
        store.close()
    print(json.dumps({"tasks": a.tasks, "writes": a.writes, "load_s": round(loaded, 1),
                      "default_gc": default_gc, "freeze_after_full": frozen_gc,
                      "full_collection_ratio": round(frozen_gc["full_collection_ms"][-1]
                                                     / default_gc["full_collection_ms"][-1], 3)}, indent=1))


def pauses(marks: list[float]) -> dict:
    """[start, stop, start, stop, ...] -> each full collection's duration, the last one forced."""
    return {"full_collection_ms": [round((b - a) * 1000, 1) for a, b in zip(marks[::2], marks[1::2], strict=True)]}


if __name__ == "__main__":
    asyncio.run(main())
