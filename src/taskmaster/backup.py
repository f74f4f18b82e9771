"""Backup and restore of a running node: a RocksDB checkpoint carried as a tar stream.

    taskmasterd backup --server URL --to DIR [--token T]     ask a node for a backup, unpack it in DIR
    taskmasterd restore --from DIR --data-dir DIR [--name N]  prepare a data dir from such a backup

The node's side is `send` (POST /admin/backup): a checkpoint in a temporary directory inside the data
dir (the same filesystem, so SST files are hard-linked), streamed as an uncompressed tar whose first
member is MANIFEST.json, then deleted. SST blocks are compressed already; gzip would only cost CPU
that the node's writers need.

A backup holds the RocksDB store and nothing else: documents (tasks, operations, registry), hints
and claim grants. The node's name file and its last known ring stay behind (a restored node is a
new member unless told otherwise, and learns the ring by joining), and so does models.json, which
is this machine's configuration, not the cluster's data.

Identity: by default the restored data dir has no name, so the node takes a fresh one on its first
start and joins as a new member: the original may still be running, and two nodes under one name
would fight over its ring place and its clock's tie-break. `--name` gives it one; the original's
name replaces a node that is gone for good: it takes back the ring place the dead member keeps
(until membership forgets it) and the hints the others hold for it. Either way hints and grants are kept. A hint names the member that may lack a document:
handing it over again is harmless (documents merge idempotently) and, if the backed-up node is gone,
it is that member's quickest way to get it. A grant is a replica's promise not to let another agent
claim an item before a lease expires; a restored node that takes the place of the original in a tag's
majority must keep it, or two agents could hold the same task.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from . import __version__
from .storage import Store
from .storage.digest import DigestIndex

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger(__name__)

FORMAT = 1
"""Version of the backup layout (MANIFEST.json's "format"); restore refuses any other."""
MANIFEST = "MANIFEST.json"
DB = "db"
"""The store's directory, in a data dir (node.py) and in a backup alike."""
NAME_FILE = "node.json"
"""Where node.py keeps a node's name in its data dir: {"name": ...}."""
CHUNK = 256 << 10
"""Bytes read (in a worker thread) and sent per step: small enough that the loop stays responsive."""
BLOCK = 512  # a tar block
WORK_PREFIX = ".backup-"
"""The node's temporary checkpoints in its data dir: .backup-<boot>-<random>."""


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""


# ---- the node's side: POST /admin/backup -----------------------------------------------------------
async def send(request: web.Request, node: Node) -> web.StreamResponse:
    """Checkpoint the store and stream it as a tar (MANIFEST.json first); the checkpoint is deleted
    afterwards. Writes go on meanwhile: the loop stalls only for the checkpoint itself (Store.checkpoint)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _remove_stale, node.config.data_dir, node.boot)
    work = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{node.boot}-", dir=node.config.data_dir)
    started = time.monotonic()
    try:
        try:
            documents, roots = await node.store.checkpoint(os.path.join(work, DB))
            files = await loop.run_in_executor(None, _listing, work)
        except Exception as exc:  # rocksdict raises a bare Exception with RocksDB's text
            log.exception("backup checkpoint failed")
            return web.json_response({"error": f"checkpoint failed: {exc}"}, status=500)
        manifest = json.dumps({
            "format": FORMAT, "node": node.name, "version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "members": list(node.replicator.ring.members), "documents": documents,
            "partitions": {p.hex(): root.hex() for p, root in roots.items()}, "files": files,
        }, indent=2).encode()
        response = web.StreamResponse(headers={
            "Content-Type": "application/x-tar",
            "Content-Disposition": f'attachment; filename="taskmaster-{node.name}.tar"'})
        response.content_length = _archive_size([len(manifest), *files.values()])
        await response.prepare(request)
        await response.write(_header(MANIFEST, len(manifest)) + manifest + _padding(len(manifest)))
        for name, size in files.items():
            await response.write(_header(name, size))
            await _send_file(response, os.path.join(work, name), size)
            await response.write(_padding(size))
        await response.write(b"\0" * 2 * BLOCK)  # end of archive
        await response.write_eof()
        log.info("backup sent: %d documents, %d bytes in %.2f s", documents, response.content_length,
                 time.monotonic() - started)
        return response
    finally:
        await loop.run_in_executor(None, shutil.rmtree, work, True)


def _remove_stale(data_dir: str, boot: str) -> None:
    """Checkpoints an earlier process left behind (it died mid-backup): they pin deleted SST files."""
    for entry in os.scandir(data_dir):
        if entry.name.startswith(WORK_PREFIX) and not entry.name.startswith(f"{WORK_PREFIX}{boot}-"):
            shutil.rmtree(entry.path, ignore_errors=True)


def _listing(work: str) -> dict[str, int]:
    """Archive name -> size of every file of the checkpoint under `work`."""
    return {f"{DB}/{entry.name}": entry.stat().st_size
            for entry in sorted(os.scandir(os.path.join(work, DB)), key=lambda e: e.name) if entry.is_file()}


async def _send_file(response: web.StreamResponse, path: str, size: int) -> None:
    loop = asyncio.get_running_loop()
    with open(path, "rb") as f:
        sent = 0
        while sent < size:
            chunk = await loop.run_in_executor(None, f.read, min(CHUNK, size - sent))
            if not chunk:  # cannot happen to a checkpoint nobody writes to; never send a short member
                raise OSError(f"{path} ended after {sent} of {size} bytes")
            await response.write(chunk)
            sent += len(chunk)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    return info.tobuf(tarfile.USTAR_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _archive_size(sizes: list[int]) -> int:
    """Bytes of a tar of members of these sizes: a header and whole blocks each, two zero blocks."""
    return sum(BLOCK + size + (-size % BLOCK) for size in sizes) + 2 * BLOCK


# ---- the manifest -----------------------------------------------------------------------------------
def _read_manifest(directory: str) -> dict:
    """The manifest of the backup in `directory`, checked; BackupError if it is not one."""
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read())
    except FileNotFoundError:
        raise BackupError(f"{directory} is not a backup: it has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None
    return _check_manifest(manifest)


def _check_manifest(manifest) -> dict:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{MANIFEST} is not a taskmaster backup manifest of format {FORMAT}")
    files, partitions = manifest.get("files"), manifest.get("partitions")
    if (not isinstance(files, dict) or not files or not isinstance(partitions, dict)
            or not isinstance(manifest.get("documents"), int) or not isinstance(manifest.get("node"), str)):
        raise BackupError(f"{MANIFEST} lacks its files, partitions, documents or node")
    for name, size in files.items():
        _, sep, base = name.partition("/")
        # Names are joined to a directory: exactly db/<file>, nothing that climbs out of it.
        if not (sep and name.startswith(DB + "/") and base not in ("", ".", "..") and "/" not in base
                and "\\" not in base and isinstance(size, int) and size >= 0):
            raise BackupError(f"{MANIFEST} names a file it may not: {name!r}")
    return manifest


# ---- taskmasterd backup -----------------------------------------------------------------------------
def backup(server: str, target: str, token: str | None) -> dict:
    """Fetch a backup from the node at `server` into `target` (absent or empty); returns the manifest.
    Nothing is left in `target` if it fails."""
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise BackupError(f"--to {target} is not an empty directory: a backup goes into a new one")
    url = _base_url(server) + "/admin/backup"
    request = urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        raise BackupError(f"{url} refused the backup: HTTP {exc.code}: {_reason(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise BackupError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    created = not os.path.exists(target)
    try:
        with response, tarfile.open(fileobj=response, mode="r|") as archive:
            manifest = _unpack(archive, target)
    except BaseException as exc:
        _clear(target, created)
        if isinstance(exc, (tarfile.TarError, http.client.HTTPException, OSError, ValueError)):
            raise BackupError(f"the backup from {url} failed: {exc!r}") from None
        raise
    return manifest


def _unpack(archive: tarfile.TarFile, target: str) -> dict:
    manifest: dict | None = None
    seen: set[str] = set()
    for member in archive:
        if manifest is None:
            if member.name != MANIFEST or not member.isfile():
                raise BackupError(f"the archive does not begin with {MANIFEST}")
            manifest = _check_manifest(json.loads(archive.extractfile(member).read()))
            os.makedirs(os.path.join(target, DB))
            _write(os.path.join(target, MANIFEST), json.dumps(manifest, indent=2).encode())
            continue
        if not member.isfile() or manifest["files"].get(member.name) != member.size or member.name in seen:
            raise BackupError(f"the archive holds {member.name!r}, which its manifest does not list")
        seen.add(member.name)
        source = archive.extractfile(member)
        with open(os.path.join(target, member.name), "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
    if manifest is None:
        raise BackupError("the archive is empty")
    missing = sorted(set(manifest["files"]) - seen)
    if missing:
        raise BackupError(f"the archive ended without {', '.join(missing)}")
    return manifest


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _clear(directory: str, remove: bool) -> None:
    """Undo a failed backup or restore: `directory` was empty or absent before it began."""
    if remove:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)


def _base_url(server: str) -> str:
    """The node's HTTP root from what an operator has at hand: the /mcp URL it prints, or HOST:PORT."""
    url = server if "://" in server else f"http://{server}"
    url = url.rstrip("/")
    return url[: -len("/mcp")] if url.endswith("/mcp") else url


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        error = body.get("error")
        return error.get("message", str(error)) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError, OSError):
        return exc.reason


# ---- taskmasterd restore ----------------------------------------------------------------------------
def restore(source: str, data_dir: str, name: str | None) -> dict:
    """Prepare `data_dir` (absent or empty) from the backup in `source`, and check that the store
    opens and holds exactly what the manifest says. Returns the manifest. Nothing is left in
    `data_dir` if it fails."""
    manifest = _read_manifest(source)
    for file, size in manifest["files"].items():
        path = os.path.join(source, file)
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            raise BackupError(f"{path} is missing or not the size the manifest gives ({size} bytes)")
    if os.path.exists(data_dir) and (not os.path.isdir(data_dir) or os.listdir(data_dir)):
        raise BackupError(f"--data-dir {data_dir} is not an empty directory: restore never overwrites a node")
    created = not os.path.exists(data_dir)
    try:
        os.makedirs(os.path.join(data_dir, DB))
        for file in manifest["files"]:
            shutil.copyfile(os.path.join(source, file), os.path.join(data_dir, file))
        if name:
            _write(os.path.join(data_dir, NAME_FILE), json.dumps({"name": name}).encode())
        _verify(os.path.join(data_dir, DB), manifest)
    except BaseException:
        _clear(data_dir, created)
        raise
    return manifest


def _verify(path: str, manifest: dict) -> None:
    """Open the restored store and compare its documents with the manifest's digest."""
    try:
        store = Store(path)
    except Exception as exc:  # rocksdict raises a bare Exception with RocksDB's text
        raise BackupError(f"the restored store does not open: {exc}") from None
    try:
        digest = DigestIndex()
        digest.rebuild(store.documents())
    finally:
        store.close()
    roots = {p.hex(): digest.root(p).hex() for p in digest.partitions()}
    if len(digest) != manifest["documents"] or roots != manifest["partitions"]:
        differ = sorted(p for p in set(roots) | set(manifest["partitions"])
                        if roots.get(p) != manifest["partitions"].get(p))
        raise BackupError(f"the restored store holds {len(digest)} documents, the manifest says "
                          f"{manifest['documents']}; {len(differ)} partitions differ from the manifest's digest")


# ---- command line -----------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    """`taskmasterd backup ...` and `taskmasterd restore ...`: argv starts with the subcommand."""
    p = argparse.ArgumentParser(prog="taskmasterd", description="Back up a running node; restore a data dir.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backup", help="ask a running node for a consistent backup, without stopping it")
    b.add_argument("--server", required=True, metavar="URL",
                   help="the node's HTTP address (its /mcp URL, http://HOST:PORT or HOST:PORT)")
    b.add_argument("--to", required=True, metavar="DIR", help="a new or empty directory for the backup")
    b.add_argument("--token", default=os.environ.get("TASKMASTER_TOKEN"),
                   help="the node's bearer token (env TASKMASTER_TOKEN)")
    r = sub.add_parser("restore", help="prepare a data dir from a backup; then start taskmasterd on it")
    r.add_argument("--from", dest="source", required=True, metavar="DIR", help="a directory made by backup")
    r.add_argument("--data-dir", required=True, metavar="DIR", help="a new or empty data directory")
    r.add_argument("--name", help="the node's name (default: a fresh one, taken on its first start; give "
                   "the backed-up node's name only to replace a node that is gone for good)")
    a = p.parse_args(argv)
    started = time.monotonic()
    try:
        if a.command == "backup":
            m = backup(a.server, a.to, a.token)
            size = sum(m["files"].values())
            print(f"backup of {m['node']}: {m['documents']} documents, {size} bytes, "
                  f"{time.monotonic() - started:.2f} s -> {a.to}")
        else:
            m = restore(a.source, a.data_dir, a.name)
            who = f"as node {a.name}" if a.name else "under a fresh name (taken on its first start)"
            if a.name == m["node"]:
                who += f" (the backed-up node's name: start it only if {a.name} is gone for good)"
            print(f"restored {m['documents']} documents of {m['node']} into {a.data_dir} {who}, "
                  f"{time.monotonic() - started:.2f} s; start it with "
                  f"taskmasterd --data-dir {a.data_dir} --join HOST:PORT")
    except BackupError as exc:
        print(f"taskmasterd {a.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
