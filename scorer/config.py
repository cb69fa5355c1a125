"""The sidecar's part of the configuration, taken from the settings once at its edge.

:class:`SidecarConfig` is what a deployment configures (tokens, limits,
thresholds, retention, the metrics port); ``scorer.server.SidecarOptions`` is
what one invocation asks for (address, models root, version). Nothing below
the server reads :class:`qf.settings.Settings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from qf_sentinel.qf.model.bundle import Thresholds
from qf_sentinel.qf.settings import Settings


@dataclass(frozen=True, slots=True)
class SidecarConfig:
    tokens: Mapping[str, str] = field(repr=False)
    admin_tokens: Mapping[str, str] = field(repr=False)
    rate_limit_per_minute: float
    max_batch: int
    max_concurrent_rpcs: int
    #: the configured cut-offs, or None to use each model version's own
    thresholds: Thresholds | None
    feature_reload_seconds: float
    metrics_host: str
    metrics_port: int
    audit_retention_days: int
    experiment_retention_days: int
    #: the node wallet facts are read from (None: never; every call's facts are unknown)
    wallet_rpc_url: str | None = None
    wallet_budget_seconds: float = 0.025
    wallet_cache_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SidecarConfig:
        review, block = settings.scorer_review_threshold, settings.scorer_block_threshold
        return cls(
            tokens=settings.scorer_tokens,
            admin_tokens=settings.scorer_admin_tokens,
            rate_limit_per_minute=settings.scorer_rate_limit_per_minute,
            max_batch=settings.scorer_max_batch,
            max_concurrent_rpcs=settings.scorer_max_concurrent_rpcs,
            thresholds=Thresholds(review, block) if review is not None and block is not None else None,
            feature_reload_seconds=settings.scorer_feature_reload_seconds,
            metrics_host=settings.metrics_host,
            metrics_port=settings.scorer_metrics_port,
            audit_retention_days=settings.audit_retention_days,
            experiment_retention_days=settings.experiment_retention_days,
            wallet_rpc_url=settings.scorer_rpc_url or (settings.rpc_urls[0] if settings.rpc_urls else None),
            wallet_budget_seconds=settings.scorer_wallet_budget_ms / 1000.0,
            wallet_cache_seconds=settings.scorer_wallet_cache_seconds,
        )

    def with_(self, **changes: Any) -> SidecarConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)
