"""RocksDB store: document keys, atomic write batches, and group-committed durability.

Key layout (raw bytes, so one tag is one contiguous prefix scan):

    d \\0 <projectRoot> \\0 <tag> \\0 <docId>      a document (msgpack of crdt.encode)

Tag names never contain NUL and project roots are paths, which cannot either. The project's own
documents (current tag, settings) use the empty tag, which sorts before every real tag.

rocksdict holds the GIL during a synced put, so writes go to the WAL unsynced and `durable()` runs
one `flush_wal(sync=True)` in a thread for every writer waiting at that moment (group commit): a
write is acknowledged only after the flush that followed it has finished.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Iterator

from rocksdict import Checkpoint, Options, Rdict, ReadOptions, WriteBatch, WriteOptions

DOC = b"d"
DOC_PREFIX = b"d\x00"
WRITE_BUFFER_BYTES = 16 << 20
SEP = b"\x00"


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


class StoreLockedError(RuntimeError):
    """Another process (or store) has this data directory open."""


def doc_key(project: str, tag: str, doc_id: str) -> bytes:
    return SEP.join((DOC, project.encode(), tag.encode(), doc_id.encode()))


def project_prefix(project: str) -> bytes:
    return SEP.join((DOC, project.encode(), b""))


def split_doc_key(key: bytes) -> tuple[str, str, str]:
    _, project, tag, doc_id = key.split(SEP, 3)
    return project.decode(), tag.decode(), doc_id.decode()


class Store:
    def __init__(self, path: str, metrics=None):
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        # Task documents are small and the cache holds their materialized form: a 16 MiB memtable
        # (RocksDB's default is 64 MiB) keeps a node's memory bounded without slowing writes.
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
        try:
            self._db = Rdict(path, opts)
        except Exception as exc:  # rocksdict raises a bare Exception with RocksDB's text
            if "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"data directory {path!r} is in use by another taskmasterd (RocksDB lock held)"
                ) from exc
            raise
        self.path = path
        self._metrics = metrics
        self._unsynced = WriteOptions()
        self._unsynced.sync = False
        self._written = 0  # batches written so far
        self._synced = 0  # batches known to be on disk
        self._flushing: asyncio.Task | None = None
        self.digest = None  # a storage.digest.DigestIndex kept up to date with every document written

    # ---- reads -----------------------------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def documents(self) -> Iterator[tuple[bytes, bytes]]:
        """Every stored document (for building the digest at startup)."""
        return self.scan(DOC_PREFIX)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        ropts = ReadOptions()
        ropts.set_iterate_upper_bound(prefix[:-1] + bytes([prefix[-1] + 1]))
        yield from self._db.items(from_key=prefix, read_opt=ropts)

    # ---- writes ----------------------------------------------------------------------------------
    def write(self, items: dict[bytes, bytes | None]) -> None:
        """Write atomically (one batch; None deletes). Not durable until `durable()` returns."""
        batch = WriteBatch(raw_mode=True)
        for key, value in items.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        started = time.perf_counter()
        self._db.write(batch, self._unsynced)
        self._written += 1
        if self.digest is not None:
            for key, value in items.items():
                if key[:2] == DOC_PREFIX:
                    self.digest.update(key, value)
        if self._metrics:
            self._metrics.storage_write.observe(time.perf_counter() - started)

    async def durable(self, alone: bool = False) -> None:
        """Return once every write made before this call is on disk (fsync'd WAL).

        Callers arriving while a flush runs wait for it and, if it started before their write,
        share the next one: one fsync serves every writer that queued behind it. A caller that
        knows no other write is in flight (`alone`) flushes on the loop thread instead: nobody is
        waiting to run meanwhile, and it saves the round trip through a worker thread.
        """
        target = self._written
        if alone and self._flushing is None and self._synced < target:
            self._flush()
            self._synced = target
            return
        while self._synced < target:
            if self._flushing is None:
                self._flushing = asyncio.ensure_future(self._run_flush())
            await asyncio.shield(self._flushing)

    async def _run_flush(self) -> None:
        upto = self._written
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._flush)
            self._synced = max(self._synced, upto)
        finally:
            self._flushing = None

    def _flush(self) -> None:
        started = time.perf_counter()
        self._db.flush_wal(True)
        if self._metrics:
            self._metrics.storage_fsync.observe(time.perf_counter() - started)

    async def checkpoint(self, path: str) -> tuple[int, dict[bytes, bytes]]:
        """Write a consistent copy of the store into `path` (a new directory on this filesystem: SST
        files are hard-linked, the rest copied) while writes go on. Returns what the copy holds as
        the digest sees it: (documents, {partition: digest root}); needs `digest`.

        rocksdict holds the GIL for the whole of `create_checkpoint`, including the memtable flush it
        begins with, so it stalls the event loop wherever it runs. `flush` releases the GIL: flushing
        in a worker thread first leaves the checkpoint only the writes made since (a few ms instead of
        a flush of up to 16 MiB). The checkpoint then runs on the loop thread, since it would stall it
        anyway: no write can come between it and the digest read, which so describes the copy exactly.
        """
        await asyncio.get_running_loop().run_in_executor(None, self._db.flush)
        Checkpoint(self._db).create_checkpoint(path)
        return len(self.digest), {p: self.digest.root(p) for p in self.digest.partitions()}

    def compact_memory(self) -> None:
        """After a bulk load: move the memtable to disk and give freed heap back to the OS."""
        self._db.flush()
        _malloc_trim()

    def close(self) -> None:
        try:
            self._db.flush_wal(True)
        finally:
            self._db.close()
