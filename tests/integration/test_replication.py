"""Replication between real taskmasterd processes: any node serves any call, acknowledged writes
survive SIGKILL, partitions and empty restarts, and replicas converge to identical documents."""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import Cluster, ToolFailed, master, titles
from tests.netns import NetnsHosts

_markers = itertools.count()


async def add(client, root: str, title: str) -> dict:
    return await client.call("add_task", projectRoot=root, title=title, description="replicated")


async def writer(client, root: str, prefix: str, stop: asyncio.Event, acked: list[str], failed: list[str]):
    """Add tasks until told to stop; every acknowledged title goes to `acked`."""
    while not stop.is_set():
        title = f"{prefix}-{next(_markers)}"
        try:
            body = await add(client, root, title)
        except ToolFailed as e:
            failed.append(f"{title}: {e}")
            continue
        assert body["replicas"] >= 1
        acked.append(title)


async def test_writes_through_every_node_are_read_back_from_every_node(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 3) as c:
        clients = [c.client(i) for i in range(3)]
        bodies = await asyncio.gather(*(add(cl, root, f"from-{i}-{k}") for i, cl in enumerate(clients)
                                        for k in range(5)))
        assert all(b["replicas"] >= 2 for b in bodies), [b["replicas"] for b in bodies]
        ids = sorted(b["data"]["taskId"] for b in bodies)
        assert ids == list(range(1, 16)), "one coordinator numbers the tasks of a tag"
        expected = sorted(f"from-{i}-{k}" for i in range(3) for k in range(5))
        for cl in clients:
            assert sorted(await titles(cl, root)) == expected
        await c.wait_converged([master(root)], timeout=10)
        ring = (await c.get(1, "/cluster"))["ring"]
        assert ring["members"] == ["n0", "n1", "n2"] and ring["replicas"] == 3 and ring["hints_pending"] == 0
        coordinator = [n.name for n in c.nodes].index(c.owners(master(root))[0])
        async with c.http.get(c.nodes[coordinator].base + "/metrics") as r:
            samples = {s.name: s.value for f in text_string_to_metric_families(await r.text()) for s in f.samples}
        assert samples["taskmaster_replication_writes_total"] >= 1
        assert samples["taskmaster_replication_lag_seconds_count"] >= 2, "both replicas took a batch"
        assert samples["taskmaster_hints_pending"] == 0 and samples["taskmaster_replication_quorum_failures_total"] == 0


async def test_sigkill_of_the_coordinator_during_writes_loses_no_acknowledged_write(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 3) as c:
        coordinator = c.owners(master(root))[0]
        victim = [n.name for n in c.nodes].index(coordinator)
        writers = [i for i in range(3) if i != victim]
        stop, acked, failed = asyncio.Event(), [], []
        tasks = [asyncio.create_task(writer(c.client(i), root, f"w{i}", stop, acked, failed)) for i in writers]
        while len(acked) < 100:
            await asyncio.sleep(0.01)
        c.nodes[victim].signal(signal.SIGKILL)
        c.nodes[victim].wait()
        killed_at = len(acked)
        while len(acked) < killed_at + 100:
            await asyncio.sleep(0.01)
        c.restart(victim)
        restarted_at = len(acked)
        while len(acked) < restarted_at + 50:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*tasks)
        await c.wait_members({n.name: "alive" for n in c.nodes})
        await c.wait_converged([master(root)], timeout=20)
        for i in range(3):
            present = set(await titles(c.client(i), root))
            assert not set(acked) - present, f"acknowledged writes lost on n{i}"
        # Only calls in flight at the kill may fail, and they say their outcome is unknown.
        assert len(failed) <= 2 * len(writers), failed
        assert all("may or may not have taken effect" in f for f in failed), failed


async def partition_heal(tmp_path, size: int, minority: list[int], hosts: NetnsHosts | None = None):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, size, hosts=hosts) as c:
        majority = [i for i in range(size) if i not in minority]
        await add(c.client(0), root, "before")
        await c.partition(majority, minority)
        names = {n.name for n in c.nodes}
        for side, other in ((majority, minority), (minority, majority)):
            expected = {c.nodes[i].name: "alive" for i in side} | {c.nodes[i].name: "dead" for i in other}
            await c.wait_members(expected, among=side, timeout=60)
        acked: dict[str, list] = {}
        for side in (majority, minority):
            client = c.client(side[-1])
            for k in range(20):
                title = f"side{side[0]}-{k}"
                body = await add(client, root, title)
                acked[title] = body["replicas"]
        assert all(acked[f"side{majority[0]}-{k}"] >= 2 for k in range(20)), acked
        assert all(1 <= acked[f"side{minority[0]}-{k}"] <= len(minority) for k in range(20)), acked
        assert sum(await hints_pending(c)) > 0, "writes for unreachable replicas wait as hints"
        await c.heal()
        await c.wait_members({n: "alive" for n in names}, timeout=60)
        took = await c.wait_converged([master(root)], timeout=30)
        for i in range(size):
            present = set(await titles(c.client(i), root))
            assert set(acked) | {"before"} <= present, f"n{i} misses {set(acked) - present}"
        assert await hints_pending(c) == [0] * size, "every hint handed off"
        return took


async def hints_pending(c: Cluster) -> list[int]:
    return [(await c.get(i, "/cluster"))["ring"]["hints_pending"] for i in range(len(c.nodes))]


async def test_a_2_1_partition_on_loopback_accepts_writes_on_both_sides_and_converges(tmp_path):
    await partition_heal(tmp_path, 3, [2])


@pytest.mark.skipif(not NetnsHosts.available(), reason="network namespaces need root and `ip netns`")
async def test_a_3_2_partition_between_network_namespaces_converges_after_heal(tmp_path):
    with NetnsHosts(5) as hosts:
        await partition_heal(tmp_path, 5, [3, 4], hosts)


async def test_a_node_restarted_empty_is_refilled_with_what_it_owns(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 3) as c:
        client = c.client(0)
        for k in range(30):
            await add(client, root, f"t{k}")
        await c.wait_converged([master(root)], timeout=10)
        c.nodes[2].signal(signal.SIGKILL)
        c.nodes[2].wait()
        c.restart(2, empty=True)
        took = await c.wait_converged([master(root)], timeout=20)
        digest = (await c.get(2, "/admin/digest"))
        assert digest["documents"] >= 30
        assert took < 20


async def test_ten_agents_on_three_nodes_claim_every_task_exactly_once(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 3) as c:
        for k in range(30):
            await add(c.client(0), root, f"job-{k}")
        claims: list[tuple[str, int]] = []

        async def agent(n: int) -> None:
            client = c.client(n % 3)
            name = f"agent-{n}"
            while True:
                body = await client.call("next_task", projectRoot=root, claim=True, agent=name, leaseSeconds=60)
                data = body["data"]
                if not data["claimed"]:
                    return
                task = data["nextTask"]
                assert data["lease"]["agent"] == name and task["status"] == "in-progress"
                claims.append((name, task["id"]))
                await client.call("set_task_status", projectRoot=root, id=str(task["id"]), status="done")

        await asyncio.gather(*(agent(n) for n in range(10)))
        claimed = sorted(task for _, task in claims)
        assert claimed == list(range(1, 31)), "every task claimed exactly once"
        assert len({agent for agent, _ in claims}) > 1


async def test_a_claim_is_refused_in_a_minority_partition_and_allowed_in_the_majority(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 3) as c:
        await add(c.client(0), root, "only")
        await c.partition([0, 1], [2])
        await c.wait_members({"n0": "dead", "n1": "dead", "n2": "alive"}, among=[2])
        with pytest.raises(ToolFailed, match="majority of the task's replicas"):
            await c.client(2).call("next_task", projectRoot=root, claim=True, agent="lonely")
        plain = await c.client(2).call("next_task", projectRoot=root)
        assert plain["data"]["nextTask"]["status"] == "pending", "the refused claim changed nothing"
        await c.wait_members({"n0": "alive", "n1": "alive", "n2": "dead"}, among=[0, 1])
        body = await c.client(1).call("next_task", projectRoot=root, claim=True, agent="majority")
        assert body["data"]["claimed"] and body["data"]["nextTask"]["id"] == 1
        await c.heal()


async def test_a_restarted_node_that_cannot_rejoin_keeps_its_ring_and_hints_its_writes(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 3) as c:
        for k in range(3):
            await add(c.client(0), root, f"t{k}")
        await c.wait_converged([master(root)], timeout=10)
        for i in (0, 1):  # the others do not reach it either (they would probe it back into the cluster)
            await c.isolate(i, ["n2"])
        c.nodes[2].signal(signal.SIGKILL)
        c.nodes[2].wait()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            nowhere = f"127.0.0.1:{s.getsockname()[1]}"
        c.restart(2, join=nowhere)
        started = time.monotonic()
        body = await add(c.client(2), root, "written alone")
        assert time.monotonic() - started >= 4, "held while it tried to rejoin (join_wait)"
        assert body["replicas"] == 1, "one durable copy, said so; the others get hints"
        ring = (await c.get(2, "/cluster"))["ring"]
        assert ring["members"] == ["n0", "n1", "n2"] and ring["hints_pending"] >= 1
        # Healed, the others reconnect to it (memberlist's reconnect of dead members) and the hints flow.
        await c.heal()
        await c.wait_members({"n0": "alive", "n1": "alive", "n2": "alive"}, timeout=60)
        await c.wait_converged([master(root)], timeout=20)
        assert "written alone" in await titles(c.client(0), root)


async def test_invariants_broken_on_two_sides_of_a_partition_are_repaired_visibly_after_heal(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 3) as c:
        for k in range(1, 5):
            await add(c.client(0), root, f"t{k}")
        await c.wait_converged([master(root)], timeout=10)
        await c.partition([0, 1], [2])
        await c.wait_members({"n0": "dead", "n1": "dead", "n2": "alive"}, among=[2])
        await c.wait_members({"n0": "alive", "n1": "alive", "n2": "dead"}, among=[0, 1])
        a, b = c.client(0), c.client(2)
        assert (await add(a, root, "new on A"))["data"]["taskId"] == 5
        assert (await add(b, root, "new on B"))["data"]["taskId"] == 5
        await a.call("add_dependency", projectRoot=root, id="2", dependsOn="1")
        await b.call("add_dependency", projectRoot=root, id="1", dependsOn="2")
        await a.call("remove_task", projectRoot=root, id="3", confirm=True)
        await b.call("add_subtask", projectRoot=root, id="3", title="added under a deleted task")
        await c.heal()
        await c.wait_members({"n0": "alive", "n1": "alive", "n2": "alive"}, timeout=60)

        async def repaired(i: int) -> dict | None:
            tasks = (await c.client(i).call("get_tasks", projectRoot=root))["data"]["tasks"]
            by_title = {t["title"]: t for t in tasks}
            ids = [t["id"] for t in tasks]
            if len(ids) != len(set(ids)) or {"new on A", "new on B", "t3"} - by_title.keys():
                return None
            if "2" in map(str, by_title["t1"]["dependencies"]) and "1" in map(str, by_title["t2"]["dependencies"]):
                return None
            return by_title

        deadline = time.monotonic() + 30
        while (tasks := await repaired(0)) is None:
            assert time.monotonic() < deadline, "not repaired"
            await asyncio.sleep(0.1)
        await c.wait_converged([master(root)], timeout=20)
        for i in range(3):
            assert await repaired(i) is not None
        assert [s["title"] for s in tasks["t3"]["subtasks"]] == ["added under a deleted task"]
        kinds = {r["kind"] for t in tasks.values() for r in (t.get("metadata") or {}).get("repairs", [])}
        assert kinds == {"duplicate-id", "cycle", "deleted-parent"}, kinds
        report = (await c.client(1).call("validate_dependencies", projectRoot=root))["data"]
        assert {r["kind"] for r in report["repairs"]} == kinds


async def test_replicas_all_keeps_a_full_copy_everywhere_and_w_is_clamped_to_n(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path / "all", 4, "--replicas", "all") as c:
        body = await add(c.client(3), root, "everywhere")
        assert body["replicas"] >= 2
        await c.wait_converged([master(root)], replicas=None, timeout=10)
        assert all(master(root).hex() in d for d in await c.digests())
    async with Cluster(tmp_path / "two", 4, "--replicas", "2", "--write-quorum", "5") as c:
        for k in range(3):
            assert (await add(c.client(k), root, f"t{k}"))["replicas"] == 2, "W is clamped to N"
        await c.wait_converged([master(root)], replicas=2, timeout=10)
        holders = [i for i, d in enumerate(await c.digests()) if master(root).hex() in d]
        owners = c.owners(master(root), 2)
        coordinator_stand_ins = {[n.name for n in c.nodes].index(o) for o in owners}
        assert set(holders) == coordinator_stand_ins, "only the tag's two owners hold its documents"


async def test_admin_faults_takes_loss_and_delay_and_refuses_bad_bodies(tmp_path):
    async with Cluster(tmp_path, 2) as c:
        url = c.nodes[1].base + "/admin/faults"
        async with c.http.post(url, json={"loss": 0.5, "delayMs": 250}) as r:
            assert r.status == 200 and await r.json() == {"isolate": [], "loss": 0.5, "delayMs": 250}
        for bad in ({"loss": 2}, {"delayMs": "slow"}, {"isolate": "n0"}, ["n0"], {"loss": True}):
            async with c.http.post(url, json=bad) as r:
                assert r.status == 400 and "loss" in (await r.json())["error"]
        assert await c.get(1, "/admin/faults") == {"isolate": [], "loss": 0.5, "delayMs": 250}
        async with c.http.post(url, json={"isolate": ["n0"]}) as r:  # one aspect at a time
            assert await r.json() == {"isolate": ["n0"], "loss": 0.5, "delayMs": 250}
        async with c.http.post(url, json={"isolate": [], "loss": 0, "delayMs": 0}) as r:
            assert await r.json() == {"isolate": [], "loss": 0.0, "delayMs": 0}


async def test_a_stale_write_from_a_coordinator_resumed_after_a_pause_is_repaired(tmp_path):
    root = str(tmp_path / "project")
    async with Cluster(tmp_path, 3) as c:
        for k in range(3):
            await add(c.client(0), root, f"t{k}")
        victim = [n.name for n in c.nodes].index(c.owners(master(root))[0])
        other = (victim + 1) % 3
        c.nodes[victim].signal(signal.SIGSTOP)
        try:
            stale = asyncio.create_task(add(c.client(victim), root, "from the paused coordinator"))
            await c.wait_members({c.nodes[victim].name: "dead"}, among=[other], timeout=30)
            assert (await add(c.client(other), root, "from the new coordinator"))["data"]["taskId"] == 4
        finally:
            c.nodes[victim].signal(signal.SIGCONT)
        assert (await stale)["data"]["taskId"] == 4, "it answered from what it knew before the pause"
        deadline = time.monotonic() + 30
        while True:
            tasks = (await c.client(other).call("get_tasks", projectRoot=root))["data"]["tasks"]
            ids = [t["id"] for t in tasks]
            if len(ids) == len(set(ids)) == 5:
                break
            assert time.monotonic() < deadline, f"duplicate ids never repaired: {ids}"
            await asyncio.sleep(0.2)
        renumbered = [t for t in tasks if (t.get("metadata") or {}).get("repairs")]
        assert [r["kind"] for t in renumbered for r in t["metadata"]["repairs"]] == ["duplicate-id"]
