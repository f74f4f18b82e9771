"""Prometheus metrics of one node (its own registry, so several nodes can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.tool_calls = Counter("taskmaster_tool_calls", "MCP tool calls by tool and outcome",
                                  ["tool", "outcome"], registry=r)
        self.tool_latency = Histogram("taskmaster_tool_seconds", "MCP tool call latency", ["tool"],
                                      buckets=_FAST, registry=r)
        self.rpc_errors = Counter("taskmaster_jsonrpc_errors", "JSON-RPC error answers by code",
                                  ["code"], registry=r)
        self.storage_write = Histogram("taskmaster_storage_write_seconds",
                                       "RocksDB write batch time (unsynced)", buckets=_FAST, registry=r)
        self.storage_fsync = Histogram("taskmaster_storage_fsync_seconds",
                                       "WAL flush+fsync time (one per group commit)", buckets=_FAST,
                                       registry=r)
        self.docs_written = Counter("taskmaster_documents_written", "CRDT documents written", registry=r)
        self.replication_lag = Histogram("taskmaster_replication_lag_seconds",
                                         "time from a coordinator's commit to a replica's durable copy",
                                         buckets=_FAST, registry=r)
        self.llm_tokens = Counter("taskmaster_llm_tokens", "model tokens used by AI tools answered here",
                                  ["provider", "model", "kind"], registry=r)
        self.llm_cost = Counter("taskmaster_llm_cost_usd", "model cost of AI tools answered here (price table)",
                                ["provider", "model"], registry=r)
        self.hlc_clamped = Gauge("taskmaster_hlc_clamped", "remote timestamps clamped for being too far ahead",
                                 registry=r)

    def watch_membership(self, membership) -> None:
        """Export the membership layer's counters at scrape time (it keeps its own)."""
        self.registry.register(_MembershipCollector(membership))

    def count_llm_usage(self, telemetry: dict) -> None:
        """Sum one AI call's telemetryData (the reference's usage record)."""
        provider, model = str(telemetry.get("providerName")), str(telemetry.get("modelUsed"))
        for kind, key in (("input", "inputTokens"), ("output", "outputTokens")):
            self.llm_tokens.labels(provider, model, kind).inc(telemetry.get(key) or 0)
        self.llm_cost.labels(provider, model).inc(telemetry.get("totalCost") or 0)

    def watch_replication(self, replicator) -> None:
        self.registry.register(_ReplicationCollector(replicator))

    def watch_cluster_services(self, operations, registry, models) -> None:
        """Supervised operations, the registry and model forwarding, read at scrape time."""
        self.registry.register(_ClusterServicesCollector(operations, registry, models))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _MembershipCollector:
    def __init__(self, membership):
        self.membership = membership

    def collect(self):
        if not self.membership.running:
            return
        snap = self.membership.metrics_snapshot()
        members = GaugeMetricFamily("taskmaster_members", "cluster members by state", labels=["state"])
        for state, count in snap["members"].items():
            members.add_metric([state], count)
        yield members
        dropped = CounterMetricFamily("taskmaster_gossip_packets_dropped", "gossip packets dropped by reason",
                                      labels=["reason"])
        for reason, count in snap["packets_dropped"].items():
            dropped.add_metric([reason], count)
        yield dropped
        for key, doc in (("probes_sent", "SWIM probes sent"), ("probes_failed", "SWIM probes that failed"),
                         ("suspicions_raised", "members we suspected"),
                         ("suspicions_refuted", "suspicions of us we refuted"),
                         ("packets_sent", "gossip packets sent"), ("packets_received", "gossip packets received")):
            yield CounterMetricFamily(f"taskmaster_gossip_{key}", doc, value=snap[key])
        yield GaugeMetricFamily("taskmaster_gossip_broadcast_queue", "updates waiting to be gossiped",
                                value=snap["broadcast_queue_depth"])
        yield GaugeMetricFamily("taskmaster_lhm", "Lifeguard local health multiplier (0 = healthy)",
                                value=snap["lhm"])
        yield GaugeMetricFamily("taskmaster_protocol_version", "wire protocol version this node sends (the "
                                "highest every live member decodes)", value=snap["protocol_version"])


class _ReplicationCollector:
    _COUNTERS = (("writes", "replicated write batches"),
                 ("quorum_failures", "writes acknowledged with fewer than W durable copies"),
                 ("hinted", "replica copies that went to a fallback or a local hint"),
                 ("handed_off", "hinted documents delivered to their owner"),
                 ("forwarded", "tool calls forwarded to their coordinator"),
                 ("antientropy_rounds", "digest exchanges completed"),
                 ("docs_repaired", "documents shipped or merged by anti-entropy"),
                 ("invariant_repairs", "duplicate ids, cycles and orphaned subtasks repaired after a merge"))

    def __init__(self, replicator):
        self.replicator = replicator

    def collect(self):
        rep = self.replicator
        for key, doc in self._COUNTERS:
            yield CounterMetricFamily(f"taskmaster_replication_{key}", doc, value=rep.stats[key])
        yield GaugeMetricFamily("taskmaster_hints_pending", "documents held for unreachable replicas",
                                value=len(rep.hints))
        yield CounterMetricFamily("taskmaster_faults_dropped", "packets and calls dropped by injected faults",
                                  value=rep.rpc.faults.dropped)
        stats = rep.rpc.stats
        dropped = CounterMetricFamily("taskmaster_rpc_frames_dropped", "node-to-node RPC frames dropped: of a "
                                      "protocol version this node does not decode, or otherwise invalid",
                                      labels=["reason"])
        dropped.add_metric(["version"], stats["dropped_version"])
        dropped.add_metric(["invalid"], stats["dropped"] - stats["dropped_version"])
        yield dropped


class _ClusterServicesCollector:
    def __init__(self, operations, registry, models):
        self.operations, self.registry, self.models = operations, registry, models

    def collect(self):
        ops, reg, models = self.operations, self.registry, self.models
        yield GaugeMetricFamily("taskmaster_operations_unfinished", "unfinished operation records held here",
                                value=len(ops._unfinished))
        yield GaugeMetricFamily("taskmaster_operations_running", "operations this node runs now",
                                value=len(ops._running))
        yield GaugeMetricFamily("taskmaster_operations_documents", "operation documents held here (bounded by "
                                "the retention)", value=len(ops))
        for key in ("started", "completed", "failed", "taken_over", "expired"):
            yield CounterMetricFamily(f"taskmaster_operations_{key}", f"operations {key.replace('_', ' ')} here",
                                      value=ops.stats[key])
        yield GaugeMetricFamily("taskmaster_registry_documents", "registry documents held here, tombstones "
                                "included", value=len(reg))
        for key in ("registered", "refused", "conflicts_lost", "reaped", "tombstones_deleted"):
            yield CounterMetricFamily(f"taskmaster_registry_{key}", f"registry names {key.replace('_', ' ')}",
                                      value=reg.stats[key])
        for key, doc in (("forwarded", "model calls answered by another node's provider"),
                         ("served", "model calls answered here for another node"),
                         ("forward_failures", "model calls a provider node could not be reached for")):
            yield CounterMetricFamily(f"taskmaster_llm_{key}", doc, value=models.stats[key])
        yield GaugeMetricFamily("taskmaster_llm_forwarded_in_flight", "model calls in flight on other nodes",
                                value=sum(models.inflight.values()))
