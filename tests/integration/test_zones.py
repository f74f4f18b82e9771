"""Zone-aware placement between real taskmasterd processes: 6 nodes in 3 zones, N=3, W=2. Every
tag keeps a copy in each zone, so losing a whole zone (both its nodes killed with SIGKILL) loses no
acknowledged document and leaves every tag writable from the nodes that remain."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp

from taskmaster.ring import Ring, partition_key
from tests.cluster import Cluster, titles
from tests.daemon import Daemon

ZONES = ["eu", "eu", "us", "us", "ap", "ap"]
LOST = [4, 5]  # zone "ap"
TAGS = [f"tag-{k}" for k in range(12)]


async def test_losing_a_whole_zone_loses_no_document_and_leaves_every_tag_writable(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 6, zones=ZONES) as c:
        names = [n.name for n in c.nodes]
        zone_of = dict(zip(names, ZONES, strict=True))
        body = await c.get(0, "/cluster")
        assert {m["name"]: m["zone"] for m in body["members"]} == zone_of
        for zone in ("eu", "us", "ap"):  # the daemon's ring: each zone holds one copy of every key
            assert abs(sum(m["share"] for m in body["members"] if m["zone"] == zone) - 1) < 0.001, body["members"]

        # The ring spreads each tag over the three zones; blind to zones, some tags would keep two
        # of their three copies in the zone about to be lost (so a W=2 write could live only there).
        blind = Ring(names)
        lost_names = {names[i] for i in LOST}
        assert any(len(set(blind.preference(partition_key(root, t), 3)) & lost_names) >= 2 for t in TAGS)
        for t in TAGS:
            assert sorted(zone_of[m] for m in c.owners(partition_key(root, t))) == ["ap", "eu", "us"]

        clients = [c.client(i) for i in range(6)]
        for t in TAGS:
            await clients[0].call("add_tag", projectRoot=root, name=t, description="zoned")
        acked: dict[str, list[str]] = {t: [] for t in TAGS}

        async def write(i: int, tag: str, title: str) -> None:
            body = await clients[i].call("add_task", projectRoot=root, tag=tag, title=title, description="d")
            assert body["replicas"] >= 2, body  # W=2: acknowledged with two durable copies
            acked[tag].append(title)

        await asyncio.gather(*(write(k % 6, t, f"{t}-before-{k}") for k, t in enumerate(TAGS * 2)))

        for i in LOST:  # the whole zone at once, right after the acknowledgements
            c.nodes[i].signal(signal.SIGKILL)
        for i in LOST:
            c.nodes[i].wait()

        survivors = [i for i in range(6) if i not in LOST]
        await asyncio.gather(*(write(i, t, f"{t}-after-{names[i]}") for i in survivors for t in TAGS))
        for i in survivors:
            for t in TAGS:
                assert sorted(await titles(clients[i], root, t)) == sorted(acked[t]), f"{names[i]} {t}"


async def test_the_remembered_ring_keeps_zones_and_an_older_file_without_them_still_loads(tmp_path):
    """A restarting node rebuilds the ring it last knew from ring.json until it has rejoined (here
    it never does: its seed is gone)."""
    members = ["a", "b", "c", "n0"]
    older = {"members": members}  # written before zones existed: every member in zone ""
    zoned = {"members": members, "zones": {"a": "us", "b": "us", "c": "us", "n0": "eu"}}
    for remembered, zone, alone_in_its_zone in ((older, [], False), (zoned, ["--zone", "eu"], True)):
        (tmp_path / "n0").mkdir(exist_ok=True)
        (tmp_path / "n0" / "ring.json").write_text(json.dumps(remembered))
        node = Daemon(tmp_path / "n0", "--name", "n0", "--profile", "local", "--join", "127.0.0.1:9", *zone).start()
        try:
            async with aiohttp.ClientSession() as http, http.get(node.base + "/cluster") as r:
                body = await r.json()
        finally:
            node.stop()
        assert body["ring"]["members"] == members
        me = next(m for m in body["members"] if m["name"] == "n0")
        # Alone in zone eu, n0 holds a copy of every tag; in one zone of four, about 3/4 of them.
        assert me["share"] == 1.0 if alone_in_its_zone else 0.6 < me["share"] < 0.9, me
