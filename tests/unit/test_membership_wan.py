"""The wan membership profile across zones, in virtual time: 3 zones at 50-150 ms round trips
(~1 ms inside a zone), the production protocol code on the seeded simulated network."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from taskmaster.membership import MembershipConfig
from taskmaster.membership.member import DEAD
from taskmaster.membership.sim_cluster import SimCluster
from taskmaster.membership.simulation import SimParams, evaluate, run, zone_rtts

WAN = MembershipConfig.wan()
LONGEST_RTT = 0.15


def test_zone_pairs_get_round_trips_spread_over_the_range():
    assert zone_rtts(3, (0.05, 0.15)) == {(0, 1): 0.05, (0, 2): 0.1, (1, 2): 0.15}
    assert zone_rtts(2, (0.05, 0.15)) == {(0, 1): 0.05} and zone_rtts(1, (0.05, 0.15)) == {}


def test_a_helpers_nack_comes_back_within_the_probe_round_across_zones():
    """The prober waits probe_timeout, the helper waits probe_timeout, plus a round trip to it."""
    assert 2 * WAN.probe_timeout + LONGEST_RTT < WAN.probe_interval
    assert WAN.probe_timeout >= 10 * LONGEST_RTT  # still far above the slowest link's round trip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_three_zones_detect_every_crash_and_a_lost_zone_with_no_false_positives(seed):
    result = run(SimParams(nodes=9, zones=3, inter_zone_rtt=(0.05, 0.15), profile="wan", loss=0.01,
                           seconds=600, seed=seed, crashes=2, joins=1, zone_outage=True))
    assert result["zones"]["pair_rtt_ms"] == {"0-1": 50.0, "0-2": 100.0, "1-2": 150.0}
    detection = result["detection"]
    # 2 crashes and the 3 nodes of a zone (a crash may have hit that zone first)
    assert detection["crashed"] >= 4 and detection["undetected"] == 0
    # The profile's bound: every member knows within 2x memberlist's model of the wan timers.
    assert detection["full_detection_s"]["p99"] <= 2 * detection["memberlist_estimate_s"], detection
    assert result["false_positives"]["deaths"] == 0 and result["false_positives"]["suspect_transitions"] == 0
    assert result["join"]["unreached"] == 0 and result["join"]["max"] <= 3.0
    assert all(evaluate(result, None).values()), evaluate(result, None)


def test_a_bigger_cluster_over_three_zones_converges_as_well():
    result = run(SimParams(nodes=45, zones=3, profile="wan", loss=0.01, seconds=400, seed=4, crashes=3, joins=2))
    assert result["detection"]["undetected"] == 0 and result["false_positives"]["deaths"] == 0
    assert all(evaluate(result, None).values()), evaluate(result, None)


def peak_health_while_a_member_is_dead(config: MembershipConfig) -> int:
    """Five members, each in its own zone 150 ms from the others; one crashes. The highest local
    health score any survivor reaches until all have declared it dead."""
    zone = {}

    def link(src, dst) -> float:
        return 0.0005 if zone[src] == zone[dst] else LONGEST_RTT / 2

    cluster = SimCluster(config, seed=5, link_delay=link)
    for i in range(5):
        zone[cluster.addr(i)] = i

    async def scenario() -> int:
        for _ in range(5):
            await cluster.add()
        await cluster.wait_for(cluster.converged, timeout=60)
        await cluster.nodes["n4"].stop()
        survivors = [cluster.nodes[f"n{i}"] for i in range(4)]
        peak = 0
        while not all(cluster.states(m.name).get("n4") == DEAD for m in survivors):
            peak = max(peak, *(m.local_health() for m in survivors))
            await asyncio.sleep(0.05)
        for m in survivors:
            await m.stop()
        return peak

    try:
        return cluster.run(scenario())
    finally:
        cluster.close()


def test_healthy_probers_of_a_dead_member_keep_a_clean_bill_of_health():
    """memberlist's 3 s wan timeout makes helpers' nacks arrive after the round: every prober of
    the dead member then blames itself. The profile's 2 s gets them back in time."""
    assert peak_health_while_a_member_is_dead(WAN) == 0
    assert peak_health_while_a_member_is_dead(replace(WAN, probe_timeout=3.0)) >= 2
