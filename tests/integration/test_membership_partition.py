"""A 5-node cluster on a real network (one network namespace per node, on one bridge), partitioned
2|3 with blackhole routes, then healed: each side declares the other dead, and after the heal all
five are alive again. The partition is held until the dead stop receiving gossip, so what heals it
is the membership layer's periodic reconnect to dead members (Serf's), not leftover gossip."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest

from taskmaster.membership import MembershipConfig
from tests.integration.test_membership_processes import (
    HELP,
    HTTP_TIMEOUT,
    PROFILE,
    LoggedDaemon,
    cluster_view,
    wait_views,
)
from tests.netns import NetnsHosts

pytestmark = [
    pytest.mark.skipif("--join" not in HELP, reason="taskmasterd has no --join yet"),
    pytest.mark.skipif(not NetnsHosts.available(),
                       reason=f"network namespaces need root and iproute2's `ip netns` (uid {os.geteuid()})"),
]
TOKEN = "partition-test-token"  # HTTP on a non-loopback address requires one
LOCAL = MembershipConfig.local()
DETECT_DEADLINE = 60.0  # suspicion timeout (3..18 s at 5 nodes) plus a probe round per member
HOLD = LOCAL.gossip_to_the_dead_time + 1  # after every death: the dead then get no more gossip
HEAL_DEADLINE = 4 * LOCAL.reconnect_interval + LOCAL.push_pull_interval  # a few reconnect ticks, or anti-entropy


class HostDaemon(LoggedDaemon):
    """A taskmasterd inside host `i`, gossiping and serving HTTP on the host's own address."""

    def __init__(self, hosts: NetnsHosts, i: int, data_dir, *args: str):
        addr = hosts.addr(i)
        super().__init__(data_dir, "--bind", f"{addr}:7946", "--http", f"{addr}:7070", "--token", TOKEN,
                         *PROFILE, *args)
        self.hosts, self.host = hosts, i

    def command(self) -> list[str]:
        return self.hosts.wrap(self.host, super().command())


async def test_a_2_3_partition_splits_the_cluster_and_the_heal_rejoins_it(tmp_path):
    with NetnsHosts(5) as hosts:
        ds: list[HostDaemon] = []
        try:
            for i in range(5):
                join = ["--join", f"{hosts.addr(0)}:7946"] if i else []
                ds.append(HostDaemon(hosts, i, tmp_path / f"h{i}", *join).start())
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT,
                                             headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                everyone = {d.name: "alive" for d in ds}
                converged = await wait_views(http, ds, everyone, 30)

                small, large = ds[:2], ds[2:]
                hosts.partition([0, 1], [2, 3, 4])
                split_views = [(side, {**{d.name: "alive" for d in side}, **{d.name: "dead" for d in other}})
                               for side, other in ((small, large), (large, small))]
                split = max(await asyncio.gather(*(wait_views(http, side, expected, DETECT_DEADLINE)
                                                   for side, expected in split_views)))
                # Held while the dead still get gossip; the split must not flap meanwhile.
                hold_until = asyncio.get_running_loop().time() + HOLD
                while asyncio.get_running_loop().time() < hold_until:
                    for side, expected in split_views:
                        for d in side:
                            assert await cluster_view(http, d) == expected, f"{d.name} during the partition"
                    await asyncio.sleep(0.5)

                hosts.heal()
                healed = await wait_views(http, ds, everyone, HEAL_DEADLINE)
        finally:
            for d in ds:
                d.stop()
    print(f"\nconverged in {converged:.1f} s, split seen in {split:.1f} s, healed in {healed:.1f} s")
