"""Replication: coordinator, hinted handoff and anti-entropy between the replicas of a partition."""
