"""Backup and restore with real processes: `taskmasterd backup` of a node that keeps taking writes,
`taskmasterd restore` into a new data dir, a node started on it serves every task acknowledged before
the backup began, then joins the cluster and converges; bad input changes nothing."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
from pathlib import Path

import aiohttp

from taskmaster import backup
from taskmaster.storage import Store, doc_key
from taskmaster.storage.digest import DigestIndex
from tests.cluster import BASE_ARGS, TOKEN, Cluster, master, titles
from tests.daemon import BIN, Daemon
from tests.jsonrpc_client import McpHttp

SEEDED = 300
TASKMASTERD = str(BIN / "taskmasterd")
_titles = itertools.count()


def seed(root: Path, n: int) -> list[str]:
    """A tasks.json the node imports on the first call; returns the titles."""
    tasks = [{"id": i, "title": f"seeded {i}", "description": "d", "details": "x" * 100, "status": "pending",
              "priority": "medium", "dependencies": [], "subtasks": []} for i in range(1, n + 1)]
    (root / ".taskmaster" / "tasks").mkdir(parents=True)
    (root / ".taskmaster" / "tasks" / "tasks.json").write_text(json.dumps({"master": {"tasks": tasks}}))
    return [t["title"] for t in tasks]


async def cli(*args: str) -> tuple[int, str, str]:
    """`taskmasterd backup|restore ...` in its own process, while this loop keeps running the writer."""
    proc = await asyncio.create_subprocess_exec(TASKMASTERD, *args,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                env={k: v for k, v in os.environ.items() if k != "TASKMASTER_TOKEN"})
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def writer(client: McpHttp, root: str, stop: asyncio.Event, acked: list[str]) -> None:
    while not stop.is_set():
        title = f"written {next(_titles)}"
        await client.call("add_task", projectRoot=root, title=title, description="during the backup")
        acked.append(title)


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_checkpoint_holds_exactly_what_its_digest_says_while_writes_go_on(tmp_path):
    store = Store(str(tmp_path / "db"))
    store.digest = DigestIndex()
    stop = asyncio.Event()

    async def write() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            store.write({doc_key("/p", f"t{i % 7}", str(i % 300)): f"v{i}".encode()})
            await store.durable()

    writing = asyncio.create_task(write())
    try:
        for n in range(4):
            await wait_for(lambda n=n: len(store.digest) > 40 * (n + 1))
            documents, roots = await store.checkpoint(str(tmp_path / f"cp{n}"))
            copy = Store(str(tmp_path / f"cp{n}"))
            rebuilt = DigestIndex()
            rebuilt.rebuild(copy.documents())
            copy.close()
            assert (len(rebuilt), {p: rebuilt.root(p) for p in rebuilt.partitions()}) == (documents, roots)
    finally:
        stop.set()
        await writing
        store.close()


async def test_backup_of_a_node_taking_writes_restores_a_node_that_serves_it_and_rejoins(tmp_path):
    root_path = tmp_path / "project"
    seeded = seed(root_path, SEEDED)
    root = str(root_path)
    out = tmp_path / "backup"
    async with Cluster(tmp_path, 2) as c:
        assert sorted(await titles(c.client(0), root)) == sorted(seeded)  # imported
        stop, acked = asyncio.Event(), []
        writing = asyncio.create_task(writer(c.client(0), root, stop, acked))
        await wait_for(lambda: len(acked) >= 5)
        before = list(acked)  # acknowledged (W=2: durable on both nodes) before the backup began
        code, stdout, stderr = await cli("backup", "--server", c.nodes[1].url, "--to", str(out), "--token", TOKEN)
        during = len(acked) - len(before)
        await wait_for(lambda: len(acked) >= len(before) + during + 3)  # the node still takes writes
        stop.set()
        await writing
        assert code == 0, stderr
        manifest = json.loads((out / "MANIFEST.json").read_text())
        assert manifest["node"] == "n1" and manifest["members"] == ["n0", "n1"]
        assert stdout.startswith(f"backup of n1: {manifest['documents']} documents, ")
        assert sorted(os.listdir(out / "db")) == sorted(f.split("/", 1)[1] for f in manifest["files"])
        assert not [f for f in os.listdir(c.nodes[1].data_dir) if f.startswith(".backup-")], "checkpoint deleted"

        data = tmp_path / "restored"
        code, stdout, stderr = await cli("restore", "--from", str(out), "--data-dir", str(data))
        assert code == 0, stderr
        assert f"restored {manifest['documents']} documents of n1" in stdout and "fresh name" in stdout

        # Alone first: what it serves comes from the backup, not from the cluster.
        alone = Daemon(data, *BASE_ARGS).start()
        try:
            assert alone.name not in ("n0", "n1"), "a restored node does not take the original's name"
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                async with http.get(alone.base + "/admin/digest") as r:
                    digest = await r.json()
                assert digest == {"partitions": manifest["partitions"], "documents": manifest["documents"]}
                restored = set(await titles(McpHttp(alone.url, http, TOKEN), root))
        finally:
            alone.stop()
        assert restored.issuperset(seeded + before)
        assert restored <= set(seeded + acked)

        # Then into the cluster, under the name it took on its first start.
        node = Daemon(data, *BASE_ARGS, "--join", c.nodes[0].gossip).start()
        c.nodes.append(node)
        assert node.name == alone.name
        await c.wait_members({"n0": "alive", "n1": "alive", node.name: "alive"})
        await c.client(2).call("add_task", projectRoot=root, title="after the restore", description="x")
        await c.wait_converged([master(root)], timeout=15)
        expected = set(seeded + acked + ["after the restore"])
        for i in range(3):
            assert set(await titles(c.client(i), root)) == expected


async def test_bad_input_gets_a_clear_error_and_writes_nothing(tmp_path, capsys):
    d = Daemon(tmp_path / "node", *BASE_ARGS).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(d.base + "/admin/backup", headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with http.post(d.base + "/admin/backup", headers={"Origin": "https://evil.example"}) as r:
                assert r.status == 403

        def run(*argv: str) -> tuple[int, str]:
            code = backup.main(list(argv))
            return code, capsys.readouterr().err

        target = tmp_path / "out"
        code, err = run("backup", "--server", d.url, "--to", str(target), "--token", "wrong")
        assert code == 1 and "HTTP 401" in err and "Authorization: Bearer" in err
        assert not target.exists()

        target.mkdir()
        (target / "keep").write_text("mine")
        code, err = run("backup", "--server", d.url, "--to", str(target), "--token", TOKEN)
        assert code == 1 and "not an empty directory" in err
        assert os.listdir(target) == ["keep"] and (target / "keep").read_text() == "mine"

        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        code, err = run("backup", "--server", f"127.0.0.1:{closed}", "--to", str(tmp_path / "none"))
        assert code == 1 and "cannot reach http://127.0.0.1:" in err and not (tmp_path / "none").exists()

        stale = Path(d.data_dir) / ".backup-0ld-x" / "db"  # an earlier process died mid-backup
        stale.mkdir(parents=True)
        (stale / "000001.sst").write_bytes(b"pinned")
        good = tmp_path / "good"
        assert run("backup", "--server", d.base, "--to", str(good), "--token", TOKEN)[0] == 0
        assert not [f for f in os.listdir(d.data_dir) if f.startswith(".backup-")], "stale checkpoints removed"
    finally:
        d.stop()

    data = tmp_path / "data"
    code, err = run("restore", "--from", str(target), "--data-dir", str(data))
    assert code == 1 and "has no MANIFEST.json" in err and not data.exists()

    code, err = run("restore", "--from", str(good), "--data-dir", str(target))
    assert code == 1 and "not an empty directory" in err and os.listdir(target) == ["keep"]

    manifest = json.loads((good / "MANIFEST.json").read_text())
    for change, message in ((lambda m: m["files"].update({"db/../../escape": 1}), "names a file it may not"),
                            (lambda m: m.update(format=99), "not a taskmaster backup manifest"),
                            (lambda m: m.update(documents=m["documents"] + 1), "the manifest says"),
                            (lambda m: m["files"].update({"db/CURRENT": 1}), "not the size the manifest gives")):
        tampered = json.loads(json.dumps(manifest))
        change(tampered)
        (good / "MANIFEST.json").write_text(json.dumps(tampered))
        code, err = run("restore", "--from", str(good), "--data-dir", str(data))
        assert code == 1 and message in err, err
        assert not data.exists(), "a failed restore leaves nothing behind"

    # The backed-up node is gone: a node restored under its name takes its place.
    (good / "MANIFEST.json").write_text(json.dumps(manifest))
    code = backup.main(["restore", "--from", str(good), "--data-dir", str(data), "--name", d.name])
    assert code == 0 and f"as node {d.name} (the backed-up node's name" in capsys.readouterr().out
    node = Daemon(data, *BASE_ARGS).start()
    try:
        assert node.name == d.name
    finally:
        node.stop()
