"""The funding worker's Prometheus series, in the indexer's registry when it runs inside ``qf index``.

Label values are fixed words: methods, outcomes, asset kinds; never an address.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "qf_indexer_funding"


class FundingMetrics:
    """Every series the worker exports; also the RPC observer of its node clients."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.method_available = Gauge(
            f"{PREFIX}_method_available",
            "1 if the node answers the method (trace_filter, ots, trace_block for native funding; transfer_logs for "
            "ERC-20 funding), else 0; asked once per node.",
            ["method"],
            registry=r,
        )
        self.wallets = Counter(
            f"{PREFIX}_wallets_total",
            "Wallet searches recorded, by outcome (done; unavailable: no method for native funding; retry: "
            "stopped by an error or the call budget; discarded: a reorg under the search).",
            ["outcome"],
            registry=r,
        )
        self.transfers = Counter(
            f"{PREFIX}_transfers_found_total",
            "First incoming transfers found, by method and asset kind (native, token).",
            ["method", "asset"],
            registry=r,
        )
        self.rpc_requests = Counter(
            f"{PREFIX}_rpc_requests_total",
            "JSON-RPC requests of the funding worker, by method and outcome (ok, error).",
            ["method", "outcome"],
            registry=r,
        )
        self.search_seconds = Histogram(
            f"{PREFIX}_search_seconds",
            "Time to search one wallet on the node.",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=r,
        )
        self.skipped_entries = Counter(
            f"{PREFIX}_answer_entries_skipped_total",
            "Entries of a node's trace, Otterscan or log answers that did not read (malformed) and were left out.",
            registry=r,
        )
        self.pending = Gauge(f"{PREFIX}_pending", "Wallets waiting for a first search or a retry.", registry=r)

    def request(self, method: str, url: str, seconds: float, ok: bool, error_kind: str | None) -> None:
        """RpcObserver: one HTTP attempt of a node client (the endpoint is not a label: the indexer counts those)."""
        del url, seconds, error_kind
        self.rpc_requests.labels(method, "ok" if ok else "error").inc()
