"""The indexer's Prometheus metrics (served by :func:`qf.http_metrics.serve_metrics`).

Metrics live in their own registry so tests can run several indexers in one
process. Label values are bounded: event names, RPC methods, endpoint indexes,
``table.column`` fields, never an address or a hash.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from indexer.sanitise import Sanitised

PREFIX = "qf_indexer"
SANITISED_METRIC = f"{PREFIX}_values_sanitised_total"

log = structlog.get_logger()


class SanitisedValues:
    """Values stored other than as read (`indexer.sanitise`): counted per field, logged once per field and subject.

    A hostile token is met in every batch that names it, and a value met again
    says nothing new: the log line ``value_sanitised`` comes once per (field,
    subject) among the last ``remember`` pairs, the counter on every value. The
    indexer and its metadata fetcher share one (one counter in the registry).
    """

    def __init__(self, registry: CollectorRegistry, *, remember: int = 10_000) -> None:
        self.counter = Counter(
            SANITISED_METRIC,
            "Values read from the chain or IPFS stored changed (NUL or controls removed, truncated, saturated, "
            "repaired JSON) or as NULL / bytes because they could not be stored, by field (table.column).",
            ["field"],
            registry=registry,
        )
        self._logged: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()  # the indexer's loop and the metadata fetcher's thread both report

    def report(self, changes: Iterable[Sanitised]) -> None:
        for change in changes:
            self.counter.labels(change.field).inc()
            key = (change.field, change.subject)
            with self._lock:
                seen = key in self._logged
                self._logged[key] = None
                self._logged.move_to_end(key)
                if len(self._logged) > self._remember:
                    self._logged.popitem(last=False)
            if not seen:
                log.warning("value_sanitised", field=change.field, subject=change.subject, reasons=list(change.reasons))


class IndexerMetrics:
    """Every series the indexer exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.last_block = Gauge(f"{PREFIX}_last_indexed_block", "Last block whose events are committed.", registry=r)
        self.head_block = Gauge(f"{PREFIX}_chain_head_block", "Chain head seen at the last poll.", registry=r)
        self.blocks_behind = Gauge(f"{PREFIX}_blocks_behind", "Chain head minus last indexed block.", registry=r)
        self.head_lag = Gauge(
            f"{PREFIX}_head_lag_seconds", "Now minus the timestamp of the last indexed block.", registry=r
        )
        self.finalized_block = Gauge(f"{PREFIX}_finalized_block", "Highest block counted final.", registry=r)
        self.events = Counter(f"{PREFIX}_events_ingested_total", "Events committed, by event.", ["event"], registry=r)
        self.unknown_topics = Counter(
            f"{PREFIX}_unknown_topics_total", "Logs with unknown topic0, skipped.", registry=r
        )
        self.log_queries = Counter(
            f"{PREFIX}_log_queries_total",
            "Block ranges committed, by how eth_getLogs was filtered (addresses or topics).",
            ["mode"],
            registry=r,
        )
        self.logs_dropped = Counter(
            f"{PREFIX}_logs_dropped_total",
            "Logs a topic-filtered eth_getLogs returned from contracts not indexed (or already read), dropped.",
            registry=r,
        )
        self.decode_errors = Counter(
            f"{PREFIX}_decode_errors_total", "Known-topic logs that failed to decode.", registry=r
        )
        self.reorgs = Counter(f"{PREFIX}_reorgs_total", "Reorgs detected and repaired.", registry=r)
        self.chain_moved = Counter(
            f"{PREFIX}_chain_moved_total",
            "Block ranges fetched again: the chain moved during the fetch, or the node lacked a block it reported.",
            registry=r,
        )
        self.last_reorg_depth = Gauge(f"{PREFIX}_last_reorg_depth_blocks", "Depth of the last reorg.", registry=r)
        self.rpc_requests = Counter(
            f"{PREFIX}_rpc_requests_total",
            "JSON-RPC requests, by method and endpoint.",
            ["method", "endpoint"],
            registry=r,
        )
        self.rpc_errors = Counter(
            f"{PREFIX}_rpc_errors_total",
            "Failed JSON-RPC requests, by method, endpoint and kind.",
            ["method", "endpoint", "kind"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            f"{PREFIX}_rpc_request_seconds",
            "JSON-RPC request latency.",
            ["method", "endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.range_blocks = Gauge(f"{PREFIX}_log_range_blocks", "Current eth_getLogs block span.", registry=r)
        self.batch_seconds = Histogram(
            f"{PREFIX}_batch_seconds",
            "Time to fetch and commit one batch.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.refresh_seconds = Histogram(
            f"{PREFIX}_view_refresh_seconds",
            "Time to bring the analytics tables up to date (qf.refresh_analytics).",
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.ready = Gauge(f"{PREFIX}_ready", "1 when caught up with the head, else 0.", registry=r)
        self.ws_connected = Gauge(
            f"{PREFIX}_ws_connected", "1 while the newHeads WebSocket subscription is live (QF_WS_URL).", registry=r
        )
        self.ws_heads = Counter(f"{PREFIX}_ws_heads_total", "Block headers received over the WebSocket.", registry=r)
        self.ws_errors = Counter(
            f"{PREFIX}_ws_errors_total",
            "WebSocket subscription failures, by kind (connect, timeout, dropped, rpc, malformed, error); "
            "each falls back to polling until a retry succeeds.",
            ["kind"],
            registry=r,
        )
        self.wakeups = Counter(
            f"{PREFIX}_wakeups_total",
            "Caught-up waits ended, by source: newheads (a WebSocket header) or poll (the poll interval).",
            ["source"],
            registry=r,
        )
        self.is_writer = Gauge(f"{PREFIX}_is_writer", "1 when this process holds the chain's writer lock.", registry=r)
        self.sanitised = SanitisedValues(r)

    def request(self, method: str, url: str, seconds: float, ok: bool, error_kind: str | None) -> None:
        """Hook for the RPC client (``RpcObserver``); ``url`` is already reduced to an endpoint label."""
        self.rpc_requests.labels(method, url).inc()
        self.rpc_seconds.labels(method, url).observe(seconds)
        if not ok:
            self.rpc_errors.labels(method, url, error_kind or "error").inc()
