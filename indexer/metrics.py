"""The indexer's Prometheus metrics (served by :func:`qf.http_metrics.serve_metrics`).

Metrics live in their own registry so tests can run several indexers in one
process. One process may index several chains: each chain's series carry its
``chain_id``. Label values are bounded: chain ids of the configuration, event
names, RPC methods, endpoint indexes, ``table.column`` fields, never an address
or a hash.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from qf_sentinel.indexer.sanitise import Sanitised

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
    """Every series the indexer exports, for all the chains one process indexes.

    A series of one chain's loop carries a ``chain_id`` label (a bounded value: the chains of the
    configuration); :meth:`chain` gives the view one chain's loop, RPC clients and WebSocket
    watcher write through, with that label filled in. ``values_sanitised_total`` is shared with the
    metadata fetcher, which belongs to no chain, and has no ``chain_id``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        chain = ("chain_id",)
        self.last_block = Gauge(f"{PREFIX}_last_indexed_block", "Last block whose events are committed.", chain,
                                registry=r)  # fmt: skip
        self.head_block = Gauge(f"{PREFIX}_chain_head_block", "Chain head seen at the last poll.", chain, registry=r)
        self.blocks_behind = Gauge(f"{PREFIX}_blocks_behind", "Chain head minus last indexed block.", chain,
                                   registry=r)  # fmt: skip
        self.head_lag = Gauge(
            f"{PREFIX}_head_lag_seconds", "Now minus the timestamp of the last indexed block.", chain, registry=r
        )
        self.finalized_block = Gauge(f"{PREFIX}_finalized_block", "Highest block counted final.", chain, registry=r)
        self.events = Counter(f"{PREFIX}_events_ingested_total", "Events committed, by event.", (*chain, "event"),
                              registry=r)  # fmt: skip
        self.unknown_topics = Counter(
            f"{PREFIX}_unknown_topics_total", "Logs with unknown topic0, skipped.", chain, registry=r
        )
        self.log_queries = Counter(
            f"{PREFIX}_log_queries_total",
            "Block ranges committed, by how eth_getLogs was filtered (addresses or topics).",
            (*chain, "mode"),
            registry=r,
        )
        self.logs_dropped = Counter(
            f"{PREFIX}_logs_dropped_total",
            "Logs a topic-filtered eth_getLogs returned from contracts not indexed (or already read), dropped.",
            chain,
            registry=r,
        )
        self.decode_errors = Counter(
            f"{PREFIX}_decode_errors_total", "Known-topic logs that failed to decode.", chain, registry=r
        )
        self.reorgs = Counter(f"{PREFIX}_reorgs_total", "Reorgs detected and repaired.", chain, registry=r)
        self.chain_moved = Counter(
            f"{PREFIX}_chain_moved_total",
            "Block ranges fetched again: the chain moved during the fetch, or the node lacked a block it reported.",
            chain,
            registry=r,
        )
        self.last_reorg_depth = Gauge(f"{PREFIX}_last_reorg_depth_blocks", "Depth of the last reorg.", chain,
                                      registry=r)  # fmt: skip
        self.rpc_requests = Counter(
            f"{PREFIX}_rpc_requests_total",
            "JSON-RPC requests, by method and endpoint.",
            (*chain, "method", "endpoint"),
            registry=r,
        )
        self.rpc_errors = Counter(
            f"{PREFIX}_rpc_errors_total",
            "Failed JSON-RPC requests, by method, endpoint and kind.",
            (*chain, "method", "endpoint", "kind"),
            registry=r,
        )
        self.rpc_seconds = Histogram(
            f"{PREFIX}_rpc_request_seconds",
            "JSON-RPC request latency.",
            (*chain, "method", "endpoint"),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.range_blocks = Gauge(f"{PREFIX}_log_range_blocks", "Current eth_getLogs block span.", chain, registry=r)
        self.batch_seconds = Histogram(
            f"{PREFIX}_batch_seconds",
            "Time to fetch and commit one batch.",
            chain,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.refresh_seconds = Histogram(
            f"{PREFIX}_view_refresh_seconds",
            "Time to bring the analytics tables up to date (qf.refresh_analytics), by the chain whose loop did it.",
            chain,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.ready = Gauge(f"{PREFIX}_ready", "1 when caught up with the head, else 0.", chain, registry=r)
        self.ws_connected = Gauge(
            f"{PREFIX}_ws_connected", "1 while the newHeads WebSocket subscription is live (QF_WS_URL).", chain,
            registry=r,
        )  # fmt: skip
        self.ws_heads = Counter(f"{PREFIX}_ws_heads_total", "Block headers received over the WebSocket.", chain,
                                registry=r)  # fmt: skip
        self.ws_errors = Counter(
            f"{PREFIX}_ws_errors_total",
            "WebSocket subscription failures, by kind (connect, timeout, dropped, rpc, malformed, error); "
            "each falls back to polling until a retry succeeds.",
            (*chain, "kind"),
            registry=r,
        )
        self.wakeups = Counter(
            f"{PREFIX}_wakeups_total",
            "Caught-up waits ended, by source: newheads (a WebSocket header) or poll (the poll interval).",
            (*chain, "source"),
            registry=r,
        )
        self.is_writer = Gauge(f"{PREFIX}_is_writer", "1 when this process holds the chain's writer lock.", chain,
                               registry=r)  # fmt: skip
        self.chain_failed = Gauge(
            f"{PREFIX}_chain_failed",
            "1 when this chain's indexer stopped on an error it cannot wait out (a wrong chain id, no core contract, "
            "a reorg deeper than QF_MAX_REORG_DEPTH); the process's other chains go on.",
            chain,
            registry=r,
        )
        self.sanitised = SanitisedValues(r)
        self._chains: dict[int, ChainMetrics] = {}
        self._lock = threading.Lock()

    def chain(self, chain_id: int) -> ChainMetrics:
        """The series of one chain (the same view each time it is asked for)."""
        with self._lock:
            if chain_id not in self._chains:
                self._chains[chain_id] = ChainMetrics(self, chain_id)
            return self._chains[chain_id]


L = TypeVar("L", Counter, Gauge, Histogram)


class Labelled(Generic[L]):
    """A family whose ``chain_id`` is filled in: ``labels(*rest)`` names the remaining labels."""

    def __init__(self, family: L, chain_id: str) -> None:
        self._family: L = family
        self._chain_id = chain_id

    def labels(self, *values: str) -> L:
        child: L = self._family.labels(self._chain_id, *values)
        return child


class ChainMetrics:
    """One chain's series (see :class:`IndexerMetrics`); also the RPC observer of that chain's clients."""

    def __init__(self, families: IndexerMetrics, chain_id: int) -> None:
        f, c = families, str(chain_id)
        self.chain_id = chain_id
        self.registry = f.registry
        self.sanitised = f.sanitised
        self.last_block = f.last_block.labels(c)
        self.head_block = f.head_block.labels(c)
        self.blocks_behind = f.blocks_behind.labels(c)
        self.head_lag = f.head_lag.labels(c)
        self.finalized_block = f.finalized_block.labels(c)
        self.events = Labelled(f.events, c)
        self.unknown_topics = f.unknown_topics.labels(c)
        self.log_queries = Labelled(f.log_queries, c)
        self.logs_dropped = f.logs_dropped.labels(c)
        self.decode_errors = f.decode_errors.labels(c)
        self.reorgs = f.reorgs.labels(c)
        self.chain_moved = f.chain_moved.labels(c)
        self.last_reorg_depth = f.last_reorg_depth.labels(c)
        self.rpc_requests = Labelled(f.rpc_requests, c)
        self.rpc_errors = Labelled(f.rpc_errors, c)
        self.rpc_seconds = Labelled(f.rpc_seconds, c)
        self.range_blocks = f.range_blocks.labels(c)
        self.batch_seconds = f.batch_seconds.labels(c)
        self.refresh_seconds = f.refresh_seconds.labels(c)
        self.ready = f.ready.labels(c)
        self.ws_connected = f.ws_connected.labels(c)
        self.ws_heads = f.ws_heads.labels(c)
        self.ws_errors = Labelled(f.ws_errors, c)
        self.wakeups = Labelled(f.wakeups, c)
        self.is_writer = f.is_writer.labels(c)
        self.chain_failed = f.chain_failed.labels(c)

    def request(self, method: str, url: str, seconds: float, ok: bool, error_kind: str | None) -> None:
        """Hook for the RPC client (``RpcObserver``); ``url`` is already reduced to an endpoint label."""
        self.rpc_requests.labels(method, url).inc()
        self.rpc_seconds.labels(method, url).observe(seconds)
        if not ok:
            self.rpc_errors.labels(method, url, error_kind or "error").inc()
