"""Prometheus metrics of one node (its own registry, so several nodes can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        self.hlc_clamped = Gauge("taskmaster_hlc_clamped", "remote timestamps clamped for being too far ahead",
                                 registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
