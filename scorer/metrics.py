"""The scoring sidecar's Prometheus metrics and its /metrics endpoint.

Own registry per server (tests run several in one process). Label values are
bounded: method names, status codes, model names, levels and configured client
names, never an address or a token. The HTTP endpoint is the indexer's
(``indexer.metrics.serve_metrics``) serving this registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "qf_scorer"
# The hot path is sub-millisecond: buckets from 100 us to 1 s.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class ScorerMetrics:
    """Every series the sidecar exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.handled = Counter(
            f"{PREFIX}_rpcs_handled_total", "RPCs handled, by method and status code.", ["method", "code"], registry=r
        )
        self.handling_seconds = Histogram(
            f"{PREFIX}_rpc_handling_seconds", "Time to handle an RPC inside the server, by method.", ["method"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_seconds = Histogram(
            f"{PREFIX}_model_inference_seconds", "Time in model kernels per call, by model.", ["model"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            f"{PREFIX}_decisions_total", "Decisions returned, by risk level.", ["level"], registry=r
        )
        self.rate_limited = Counter(
            f"{PREFIX}_rate_limited_total", "Calls refused by the per-client rate limit.", ["client"], registry=r
        )
        self.model_info = Gauge(
            f"{PREFIX}_model_info", "1 for the model version being served.", ["version", "served_model"], registry=r
        )
        self.donors_loaded = Gauge(f"{PREFIX}_donors_loaded", "Donors with features in memory.", registry=r)
        self.features_age = Gauge(
            f"{PREFIX}_features_refreshed_timestamp_seconds", "Unix time of the last feature reload.", registry=r
        )
        self.audit_queue = Gauge(f"{PREFIX}_audit_queue_depth", "Decisions waiting to be written.", registry=r)
        self.audit_written = Counter(f"{PREFIX}_audit_rows_written_total", "Audit rows written.", registry=r)
        self.audit_dropped = Counter(
            f"{PREFIX}_audit_rows_dropped_total", "Audit rows dropped: the queue was full, or left at shutdown.",
            registry=r,
        )  # fmt: skip
        self.audit_refused = Counter(
            f"{PREFIX}_audit_rows_refused_total", "Audit rows the database refused as bad data (each one logged).",
            registry=r,
        )  # fmt: skip
        self.dependency_up = Gauge(
            f"{PREFIX}_dependency_up", "1 while the last use of a dependency worked (audit, features, experiments).",
            ["dependency"], registry=r,
        )  # fmt: skip
        self.dependency_errors = Counter(
            f"{PREFIX}_dependency_errors_total", "Failed uses of a dependency (the database behind audit, features, "
            "experiments).", ["dependency"], registry=r,
        )  # fmt: skip
        self.malformed = Counter(
            f"{PREFIX}_malformed_requests_total", "Requests whose bytes are not a valid protobuf message, by method.",
            ["method"], registry=r,
        )  # fmt: skip
        self.reloads = Counter(
            f"{PREFIX}_model_reloads_total", "ReloadModels outcomes.", ["outcome"], registry=r
        )
        self.wallet_facts = Counter(
            f"{PREFIX}_wallet_facts_total", "Wallet lookups on the node (nonce, code, balance), by outcome: node, "
            "cached, timeout, error, skipped (the node was found down), off (no node configured).", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.live_state_contributions = Gauge(
            f"{PREFIX}_live_state_contributions", "Contributions in the gate's live state, by kind (landed: indexed; "
            "attempts: scored calls).", ["kind"], registry=r,
        )  # fmt: skip
        self.live_state_block = Gauge(
            f"{PREFIX}_live_state_block", "The newest indexed block the gate's live state has applied.", registry=r
        )
        self.live_state_updates = Counter(
            f"{PREFIX}_live_state_updates_total", "Live-state updates from the index, by kind (incremental: new "
            "rows applied; rebuild: the whole state reloaded, at start or after a reorg).", ["kind"], registry=r,
        )  # fmt: skip
        self.live_state_update_seconds = Histogram(
            f"{PREFIX}_live_state_update_seconds", "Time to apply one update from the index to the live state.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip

    def set_model(self, version: str, served_model: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, served_model=served_model).set(1)
