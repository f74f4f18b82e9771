"""SWIM + Lifeguard gossip membership (hashicorp/memberlist's design, in asyncio)."""

from taskmaster.membership.config import MembershipConfig
from taskmaster.membership.member import Member
from taskmaster.membership.membership import Membership
from taskmaster.membership.pushpull import JoinError

__all__ = ["JoinError", "Member", "Membership", "MembershipConfig"]
