"""MembershipConfig: memberlist's three profiles, and validation."""

from __future__ import annotations

import inspect

import pytest

from taskmaster.membership import MembershipConfig

# (probe_interval, probe_timeout, indirect_checks, suspicion_mult, retransmit_mult, gossip_interval,
#  gossip_nodes, gossip_to_the_dead_time, push_pull_interval, tcp_timeout): anchors §1.2. Our local
#  profile departs from memberlist's on purpose: 0.3 s probes (1 s in memberlist) and LAN's
#  retransmit multiplier 4 (2), for sub-2 s detection on one host (scripts/bench_membership.py); wan
#  probes with a 2 s timeout (3 s) so helpers' nacks return within the round (MembershipConfig.wan).
PROFILES = {
    "lan": (1.0, 0.5, 3, 4, 4, 0.2, 3, 30.0, 30.0, 10.0),
    "local": (0.3, 0.1, 1, 3, 4, 0.1, 3, 15.0, 15.0, 1.0),
    "wan": (5.0, 2.0, 3, 6, 4, 0.5, 4, 60.0, 60.0, 30.0),
}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_use_their_documented_values(name):
    c = MembershipConfig.profile(name)
    assert (c.probe_interval, c.probe_timeout, c.indirect_checks, c.suspicion_mult, c.retransmit_mult,
            c.gossip_interval, c.gossip_nodes, c.gossip_to_the_dead_time, c.push_pull_interval,
            c.tcp_timeout) == PROFILES[name]
    assert (c.suspicion_max_timeout_mult, c.awareness_max_multiplier, c.packet_size) == (6, 8, 1400)
    assert c.meta_max_bytes == 512 and c.keyring == ()


def test_default_is_lan_and_overrides_apply():
    assert MembershipConfig() == MembershipConfig.lan()
    c = MembershipConfig.local(probe_interval=0.5, keyring=[b"k" * 32])
    assert c.probe_interval == 0.5 and c.probe_timeout == 0.1 and c.keyring == (b"k" * 32,)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"probe_timeout": 1.0}, "shorter than probe_interval"),
    ({"keyring": [b"short"]}, "32 bytes"),
    ({"keyring": ["a string" * 4]}, "32 bytes"),
    ({"packet_size": 100}, "512 bytes"),
])
def test_invalid_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MembershipConfig.lan(**kwargs)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="lan, local or wan"):
        MembershipConfig.profile("fast")


def test_every_knob_is_documented():
    source = inspect.getsource(MembershipConfig)
    for field in MembershipConfig.__dataclass_fields__:
        line = next(i for i, text in enumerate(source.splitlines()) if text.strip().startswith(f"{field}:"))
        following = source.splitlines()[line + 1].strip()
        assert following.startswith('"""'), f"{field} has no doc comment"
