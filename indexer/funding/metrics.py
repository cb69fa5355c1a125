"""The funding worker's Prometheus series, in the indexer's registry when it runs inside ``qf index``.

Each chain has its own worker, so every series carries the ``chain_id`` of the worker that wrote it
(:meth:`FundingMetrics.chain` gives a worker its view). Label values are fixed words: methods,
outcomes, asset kinds; never an address.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from qf_sentinel.indexer.metrics import Labelled

PREFIX = "qf_indexer_funding"


class FundingMetrics:
    """Every series the workers of one process export (one registry, a ``chain_id`` label)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        chain = ("chain_id",)
        self.method_available = Gauge(
            f"{PREFIX}_method_available",
            "1 if the node answers the method (trace_filter, ots, trace_block for native funding; transfer_logs for "
            "ERC-20 funding), else 0; asked once per node.",
            (*chain, "method"),
            registry=r,
        )
        self.wallets = Counter(
            f"{PREFIX}_wallets_total",
            "Wallet searches recorded, by outcome (done; unavailable: no method for native funding; retry: "
            "stopped by an error or the call budget; discarded: a reorg under the search).",
            (*chain, "outcome"),
            registry=r,
        )
        self.transfers = Counter(
            f"{PREFIX}_transfers_found_total",
            "First incoming transfers found, by method and asset kind (native, token).",
            (*chain, "method", "asset"),
            registry=r,
        )
        self.rpc_requests = Counter(
            f"{PREFIX}_rpc_requests_total",
            "JSON-RPC requests of the funding worker, by method and outcome (ok, error).",
            (*chain, "method", "outcome"),
            registry=r,
        )
        self.search_seconds = Histogram(
            f"{PREFIX}_search_seconds",
            "Time to search one wallet on the node.",
            chain,
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=r,
        )
        self.skipped_entries = Counter(
            f"{PREFIX}_answer_entries_skipped_total",
            "Entries of a node's trace, Otterscan or log answers that did not read (malformed) and were left out.",
            chain,
            registry=r,
        )
        self.pending = Gauge(f"{PREFIX}_pending", "Wallets waiting for a first search or a retry.", chain, registry=r)
        self._chains: dict[int, ChainFundingMetrics] = {}
        self._lock = threading.Lock()

    def chain(self, chain_id: int) -> ChainFundingMetrics:
        """The series of one chain's worker (the same view each time it is asked for)."""
        with self._lock:
            if chain_id not in self._chains:
                self._chains[chain_id] = ChainFundingMetrics(self, chain_id)
            return self._chains[chain_id]


class ChainFundingMetrics:
    """One chain's funding series; also the RPC observer of that worker's node clients."""

    def __init__(self, families: FundingMetrics, chain_id: int) -> None:
        f, c = families, str(chain_id)
        self.chain_id = chain_id
        self.registry = f.registry
        self.method_available = Labelled(f.method_available, c)
        self.wallets = Labelled(f.wallets, c)
        self.transfers = Labelled(f.transfers, c)
        self.rpc_requests = Labelled(f.rpc_requests, c)
        self.search_seconds = f.search_seconds.labels(c)
        self.skipped_entries = f.skipped_entries.labels(c)
        self.pending = f.pending.labels(c)

    def request(self, method: str, url: str, seconds: float, ok: bool, error_kind: str | None) -> None:
        """RpcObserver: one HTTP attempt of a node client (the endpoint is not a label: the indexer counts those)."""
        del url, seconds, error_kind
        self.rpc_requests.labels(method, "ok" if ok else "error").inc()
