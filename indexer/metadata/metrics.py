"""The metadata fetcher's Prometheus series, in the indexer's registry (so on its ``/metrics``).

Gateway labels are the configured gateways' ``scheme://host:port`` (a bounded
set chosen by the operator, never a CID); the other labels are fixed words.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

PREFIX = "qf_indexer_metadata"


class MetadataMetrics:
    """Every series the fetcher exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.blocks_fetched = Counter(
            f"{PREFIX}_blocks_fetched_total", "IPFS blocks received from a gateway, by gateway.", ["gateway"],
            registry=r,
        )  # fmt: skip
        self.blocks_verified = Counter(
            f"{PREFIX}_blocks_verified_total", "Blocks whose bytes hash to their CID, by gateway.", ["gateway"],
            registry=r,
        )  # fmt: skip
        self.blocks_rejected = Counter(
            f"{PREFIX}_blocks_rejected_total",
            "Blocks rejected because they do not hash to their CID (a lying gateway), by gateway.",
            ["gateway"],
            registry=r,
        )
        self.gateway_errors = Counter(
            f"{PREFIX}_gateway_errors_total",
            "Gateway requests that brought no block, by gateway and kind (timeout, connect, http_NNN, too_large).",
            ["gateway", "kind"],
            registry=r,
        )
        self.stored = Counter(
            f"{PREFIX}_documents_stored_total", "Verified documents stored, by format (json, bytes).", ["format"],
            registry=r,
        )  # fmt: skip
        self.failures = Counter(
            f"{PREFIX}_failures_total",
            "Pointer fetches that failed, by reason (unavailable, mismatch: retried; invalid_pointer, malformed, "
            "too_large: not).",
            ["reason"],
            registry=r,
        )
        self.skipped = Counter(
            f"{PREFIX}_skipped_total", "Pointers not fetched because their protocol is not IPFS (1).", registry=r
        )
        self.pending = Gauge(
            f"{PREFIX}_pending", "Pointers waiting for a first fetch or a retry (the backlog).", registry=r
        )
