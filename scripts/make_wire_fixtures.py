"""Write tests/fixtures/wire_v1/: the bytes a protocol-1 node puts on the wire and on disk.

Run once, with the code of protocol 1, and the files were checked in: they are what a node of the
previous version sends, frozen. Tests read them and never run this script. Re-running it on a newer
checkout (`python scripts/make_wire_fixtures.py --out /tmp/x`) and comparing with the checked-in files
shows whether this code, speaking protocol 1, still writes exactly those bytes.

Everything comes from the real encoders: gossip from `membership.messages`, RPC frames captured off a
loopback connection between two real `Rpc` ends (a recording relay in between), anti-entropy from two
real `AntiEntropy` replicas exchanging over it, documents from a real `TaskService` on RocksDB. Random
inputs are pinned (AES-GCM nonces, document ids, handler timings, the clock) so that re-running gives
the same bytes, except in data_dir.tar.gz: RocksDB writes random ids of its own into its files.

The protocol-1 peer they describe is "v1-node": gossip at 127.0.0.77:7946, RPC at 127.0.0.77:7947
(a loopback alias, so a test can play that peer on real sockets).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import os
import struct
import tarfile
import tempfile
import time
from pathlib import Path
from unittest import mock

import msgpack

from taskmaster.cluster.rpc import Rpc
from taskmaster.crdt import HLC, encode
from taskmaster.crdt.taskdoc import tombstone
from taskmaster.membership import messages
from taskmaster.membership.messages import Codec
from taskmaster.replication.antientropy import AntiEntropy
from taskmaster.replication.grants import Grants
from taskmaster.storage import Store
from taskmaster.storage.digest import DigestIndex
from taskmaster.tasks import service as task_service
from taskmaster.tasks import state
from taskmaster.tasks.service import TaskService
from taskmaster.transport.auth import Keyring

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wire_v1"
TEST_KEY = bytes(range(32))  # the cluster key of the sealed fixtures (a test key, public on purpose)
NAME, GOSSIP, RPC_ADDR = "v1-node", ("127.0.0.77", 7946), ("127.0.0.77", 7947)
META = {"http": "http://127.0.0.77:7070/mcp", "version": "0.1.0", "rpc": "127.0.0.77:7947", "boot": "0badf00d"}
ROOT = "/srv/v1-project"
NOW_MS = 1_700_000_000_000
_HEADER = struct.Struct(">I")


def gossip() -> dict[str, bytes]:
    plain, sealed = Codec(None, 1400, 32 << 20), Codec(Keyring([TEST_KEY]), 1400, 32 << 20)
    one = {
        "ping": messages.ping(11, "n0"),
        "ack": messages.ack(11),
        "nack": messages.nack(12),
        "ping_req": messages.ping_req(13, "n2", ("127.0.0.1", 40002), True),
        "suspect": messages.suspect(4, "n2", NAME),
        "alive": messages.alive(1, NAME, GOSSIP, META),
        "dead": messages.dead(3, "n2", NAME),
        "leave": messages.dead(1, NAME, NAME),
    }
    out = {f"gossip_{kind}.bin": plain.encode([part]) for kind, part in one.items()}
    compound = [one["ping"], one["alive"], one["suspect"], one["dead"]]
    out["gossip_compound.bin"] = plain.encode(compound)
    out["gossip_sealed_compound.bin"] = sealed.encode(compound)
    columns = ([NAME, "v1-gone"], [GOSSIP[0], "127.0.0.78"], [GOSSIP[1], 7946],
               [META, {"http": "http://127.0.0.78:7070/mcp"}], [1, 2], [0, 3])  # alive, and one that left
    out["gossip_push_pull.bin"] = plain.encode([messages.push_pull(columns)])
    out["gossip_sealed_push_pull.bin"] = sealed.encode([messages.push_pull(columns)])
    out["gossip_reject.bin"] = Codec.reject("authentication failed: our cluster keys differ")
    return out


TASK_1 = {"id": 1, "title": "Set up the repository", "description": "git init", "details": "", "testStrategy": "",
          "status": "done", "priority": "high", "dependencies": [], "subtasks": []}
TASK_2 = {"id": 2, "title": "Write the parser", "description": "parse tasks.json", "details": "use msgpack",
          "testStrategy": "round trips", "status": "pending", "priority": "medium", "dependencies": [1],
          "subtasks": [{"id": 1, "title": "Tokens", "description": "", "details": "", "status": "done",
                        "dependencies": []},
                       {"id": 2, "title": "Grammar", "description": "", "details": "", "status": "pending",
                        "dependencies": [1]}]}


async def stored(data_dir: Path) -> tuple[bytes, dict[bytes, bytes], dict[bytes, bytes], bytes]:
    """A project a protocol-1 node wrote in two writes, restarting in between: its data dir as it was
    after the first (db/ as a .tar.gz), the batch the second replicated, every document as stored
    after both, and a claim grant record."""
    store = Store(str(data_dir / "db"))
    try:
        service = TaskService(store, HLC(NAME, clock=lambda: NOW_MS))
        await service.write(ROOT, lambda tx: (tx.add("master", dict(TASK_1)), tx.add("master", dict(TASK_2))))
    finally:
        store.close()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:  # LOG files are RocksDB's text log: not data
        for path in sorted((data_dir / "db").iterdir()):
            if not path.name.startswith("LOG"):
                info = tar.gettarinfo(str(path), f"db/{path.name}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    store = Store(str(data_dir / "db"))
    try:
        service = TaskService(store, HLC(NAME, clock=lambda: NOW_MS))
        batches: list[dict[bytes, bytes]] = []

        async def replicate(changes: dict[bytes, bytes]) -> int:
            batches.append(changes)
            return 0

        service.replicate = replicate
        await service.write(ROOT, lambda tx: tx.edit("master", tx.find("master", 2)).update(
            status="in-progress", updatedAt="2023-11-14T22:13:20.000Z"))
        grants = Grants(store, clock=lambda: 1_700_000_000.0)
        partition = b"d\x00" + ROOT.encode() + b"\x00master\x00"
        assert grants.grant(partition, "2", "agent-1", "2023-11-14T22:30:00.000Z", None)
        await store.durable()
        return archive.getvalue(), batches[0], dict(store.scan(b"d\x00")), store.get(b"g\x00" + partition + b"\x002")
    finally:
        store.close()


class Relay:
    """A TCP relay between an Rpc client and an Rpc server that keeps every frame, by direction."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.frames: list[tuple[str, bytes]] = []
        self.server: asyncio.Server | None = None
        self.links: list[asyncio.Task] = []

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return "127.0.0.1", self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.links += [asyncio.ensure_future(self._pipe("request", reader, up_writer)),
                       asyncio.ensure_future(self._pipe("reply", up_reader, writer))]

    async def _pipe(self, direction: str, reader, writer) -> None:
        try:
            while True:
                (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                body = await reader.readexactly(size)
                self.frames.append((direction, body))
                writer.write(_HEADER.pack(size) + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def take(self) -> list[tuple[str, bytes]]:
        frames, self.frames = self.frames, []
        return frames

    async def close(self) -> None:
        """After the client closed: its hang-up travels through, and every link ends."""
        await asyncio.gather(*self.links)
        self.server.close()


async def rpc(batch: dict[bytes, bytes], docs: dict[bytes, bytes]) -> dict[str, bytes]:
    """Frames of real calls: a replication batch, a forwarded tool call (with its receipt), an error,
    a claim grant, a sealed call, and one anti-entropy exchange (three calls)."""
    out: dict[str, bytes] = {}
    for keyring, prefix in ((None, "rpc_"), (Keyring([TEST_KEY]), "rpc_sealed_")):
        server = Rpc("n0", keyring)

        async def put(peer, payload):
            return len(payload["docs"])

        async def tool_call(peer, payload):
            return {"content": [{"type": "text", "text": "{}"}], "isError": False}

        async def grant(peer, payload):
            return True

        async def refuse(peer, payload):
            raise ValueError("not a document: b'x'")

        for method, handler in (("rep.put", put), ("tool.call", tool_call), ("claim.grant", grant),
                                ("rep.refuse", refuse)):
            server.register(method, handler)
        relay = Relay(("127.0.0.1", await server.start("127.0.0.1", 0)))
        addr = await relay.start()
        client = Rpc(NAME, keyring)
        put = {"docs": [[k, v] for k, v in sorted(batch.items())], "hint": None}
        if keyring is None:
            await client.call("n0", addr, "rep.put", put, 5)
            await client.call("n0", addr, "tool.call", {
                "name": "get_task", "arguments": {"id": "2", "projectRoot": ROOT}, "root": ROOT,
                "tag": "master", "strict": False}, 5, receipt_within=5)
            try:
                await client.call("n0", addr, "rep.refuse", None, 5)
            except Exception:  # the error reply is what we are after
                pass
            await client.call("n0", addr, "claim.grant", {
                "partition": b"d\x00" + ROOT.encode() + b"\x00master\x00", "item": "2", "agent": "agent-1",
                "expiresAt": "2023-11-14T22:30:00.000Z", "seen": None}, 5)
            frames = relay.take()
            names = ["request_put", "reply_put", "request_tool_call", "receipt", "reply_tool_call",
                     "request_refused", "reply_error", "request_claim_grant", "reply_claim_grant"]
        else:
            await client.call("n0", addr, "rep.put", put, 5)
            frames = relay.take()
            names = ["request_put", "reply_put"]
        assert [d for d, _ in frames] == [n.split("_")[0].replace("receipt", "reply") for n in names], frames
        out.update({f"{prefix}{name}.bin": body for name, (_, body) in zip(names, frames, strict=True)})
        await client.close()
        await relay.close()
        await server.close()
    out.update(await antientropy(docs))
    return out


async def antientropy(docs: dict[bytes, bytes]) -> dict[str, bytes]:
    """One exchange: v1-node holds the project, n0 two of its documents and a deleted task v1-node lacks."""
    mine, theirs = DigestIndex(), DigestIndex()
    held_here = dict(docs)
    held_there = {k: docs[k] for k in sorted(docs)[:2]}
    held_there[b"d\x00" + ROOT.encode() + b"\x00master\x00t0000000000000009"] = encode(
        tombstone(NOW_MS << 16, "n0"))
    mine.rebuild(held_here.items())
    theirs.rebuild(held_there.items())

    async def apply_there(pairs):
        for k, v in pairs:
            held_there[k] = v
            theirs.update(k, v)
        return len(pairs)

    async def apply_here(pairs):
        for k, v in pairs:
            held_here[k] = v
            mine.update(k, v)
        return len(pairs)

    responder = AntiEntropy(theirs, read=lambda keys: [held_there.get(k) for k in keys], apply=apply_there,
                            call=None)
    server = Rpc("n0")
    for method, handler in responder.handlers.items():
        server.register(method, handler)
    relay = Relay(("127.0.0.1", await server.start("127.0.0.1", 0)))
    addr = await relay.start()
    client = Rpc(NAME)
    initiator = AntiEntropy(mine, read=lambda keys: [held_here.get(k) for k in keys], apply=apply_here,
                            call=lambda peer, method, payload: client.call(peer, addr, method, payload, 5))
    await initiator.exchange("n0", mine.partitions())
    frames = relay.take()
    names = ["rpc_ae_roots", "rpc_ae_roots_reply", "rpc_ae_keys", "rpc_ae_keys_reply", "rpc_ae_push",
             "rpc_ae_push_reply"]
    assert len(frames) >= len(names) and mine.root(mine.partitions()[0]) == theirs.root(mine.partitions()[0])
    await client.close()
    await relay.close()
    await server.close()
    return {f"{name}.bin": body for name, (_, body) in zip(names, frames, strict=False)}


async def generate() -> dict[str, bytes]:
    out = gossip()
    with tempfile.TemporaryDirectory(prefix="wire-fixtures-") as tmp:
        data_dir, batch, docs, grant = await stored(Path(tmp))
    out["data_dir.tar.gz"] = data_dir
    out["stored_documents.bin"] = msgpack.packb(sorted(docs.items()), use_bin_type=True)
    out["stored_grant.bin"] = grant
    out.update(await rpc(batch, docs))
    return out


def pinned() -> list:
    """Fixed nonces, document ids and handler timings, so the same code writes the same bytes."""
    nonces, uids, ticks = itertools.count(1), itertools.count(1), itertools.count()

    def uid() -> str:
        return f"{next(uids):016x}"

    return [mock.patch.object(os, "urandom", lambda n: next(nonces).to_bytes(n, "big")),
            mock.patch.object(state, "new_uid", uid), mock.patch.object(task_service, "new_uid", uid),
            mock.patch.object(time, "perf_counter", lambda: next(ticks) * 0.125)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out = parser.parse_args().out
    with contextlib.ExitStack() as stack:
        for patch in pinned():
            stack.enter_context(patch)
        files = asyncio.run(generate())
    out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        (out / name).write_bytes(data)
        print(f"{name:40} {len(data):6} bytes")


if __name__ == "__main__":
    main()
