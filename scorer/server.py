"""Assembling and running the sidecar: gRPC server, health, reflection, features, audit, retention, metrics.

:class:`Sidecar` owns everything with a lifetime. ``start()`` loads the model
version (LATEST unless told otherwise) and the chain's features *before* the
port reports SERVING, so the first call is never a cold one. ``stop()`` flips
health to NOT_SERVING first (load balancers stop sending) and answers new calls
UNAVAILABLE (clients retry elsewhere or apply their fail policy; nothing is
cancelled halfway), waits ``drain_seconds``, then lets calls in flight finish
within ``grace_seconds``, flushes the audit log and closes the pools.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer
from grpc_reflection.v1alpha import reflection
from psycopg_pool import ConnectionPool

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.experiments import store as experiment_store
from qf_sentinel.qf.experiments.logic import ExperimentConfig
from qf_sentinel.qf.http_metrics import HealthState, serve_metrics
from qf_sentinel.scorer.api.v1 import scorer_pb2, scorer_pb2_grpc
from qf_sentinel.scorer.audit import AuditLog
from qf_sentinel.scorer.config import SidecarConfig
from qf_sentinel.scorer.errors import ModelError
from qf_sentinel.scorer.feature_store import FeatureSnapshot, FeatureStore
from qf_sentinel.scorer.interceptors import GatewayInterceptor
from qf_sentinel.scorer.live_store import LiveStore
from qf_sentinel.scorer.metrics import ScorerMetrics
from qf_sentinel.scorer.models import ModelStore
from qf_sentinel.scorer.service import ScorerService
from qf_sentinel.scorer.wallet_facts import WalletFactsClient

log = structlog.get_logger("scorer.server")
SERVICE_NAME = scorer_pb2.DESCRIPTOR.services_by_name["Scorer"].full_name
MAX_RECEIVE_BYTES = 1 << 20  # a full batch of contributions is far below this
MAX_SEND_BYTES = 4 << 20
RETENTION_EVERY_SECONDS = 3600.0
POOL_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2
#: Experiments every deployment has; more can be inserted into qf.experiments.
DEFAULT_EXPERIMENTS = (
    ExperimentConfig(name="project_list", variants=("baseline", "recommend", "cluster"), baseline="baseline",
                     policy="hash"),
    ExperimentConfig(name="project_list_bandit", variants=("baseline", "recommend", "cluster"), baseline="baseline",
                     policy="thompson"),
)  # fmt: skip


class RetentionJob(Protocol):
    """The retention policy the sidecar applies at start and then every hour (`qf_sentinel.retention.run_retention`
    in `qf serve`); returns the rows deleted by kind."""

    def __call__(self, database_url: str, *, audit_days: int, outcome_days: int) -> Mapping[str, int]: ...


@dataclass(frozen=True, slots=True)
class SidecarOptions:
    host: str
    port: int
    models_root: Path
    version: str | None = None
    drain_seconds: float = 0.5
    grace_seconds: float = 5.0
    metrics: bool = True
    seed: int | None = None
    #: Run with the configured ages at start and every hour; None: the sidecar deletes nothing.
    retention: RetentionJob | None = None


class Sidecar:
    def __init__(self, config: SidecarConfig, database_url: str, options: SidecarOptions) -> None:
        self.config = config
        self.database_url = database_url
        self.options = options
        self.metrics = ScorerMetrics()
        self.health_state = HealthState(stale_after_seconds=float("inf"))
        self.health = AsyncHealthServicer()
        self.models = ModelStore(thresholds=config.thresholds)
        self.features: FeatureStore | None = None
        self.live: LiveStore | None = None
        self.wallets = WalletFactsClient(
            config.wallet_rpc_url, self.metrics, budget_seconds=config.wallet_budget_seconds,
            ttl_seconds=config.wallet_cache_seconds,
        )  # fmt: skip
        self.pool: ConnectionPool[Any] | None = None
        self.audit = AuditLog(database_url, self.metrics)
        self.server: aio.Server | None = None
        self.gateway: GatewayInterceptor | None = None
        self.port = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_metrics: Any = None

    async def start(self) -> int:
        """Load, bind and serve; returns the bound port (useful with port 0)."""
        options, config = self.options, self.config
        _, bundle = await asyncio.to_thread(self.models.load_and_swap, options.models_root, options.version)
        self.metrics.set_model(bundle.version, bundle.served_model)
        if bundle.chain_id is None:
            raise ModelError(f"model version {bundle.version} does not say which chain it was trained on")
        self.features = FeatureStore(
            bundle.chain_id,
            lambda: self.models.current().recommender.project_ids,
            coordination=lambda: self.models.current().coordination_score,
        )
        features = self.features

        self.live = LiveStore(bundle.chain_id, self.metrics)
        live = self.live

        def load_features() -> None:
            with connect(self.database_url) as conn:
                snapshot = features.reload(conn)
                live.rebuild(conn)
            self.metrics.donors_loaded.set(snapshot.n_donors)
            self.metrics.features_age.set(snapshot.refreshed_at.timestamp())

        await asyncio.to_thread(load_features)
        await self.wallets.warm_up()
        # check: a connection broken by a database restart is replaced before use, not handed to a request;
        # timeout: a request waits at most POOL_TIMEOUT_SECONDS for a connection, then gets UNAVAILABLE.
        self.pool = ConnectionPool(
            self.database_url, min_size=1, max_size=4, open=False, name="scorer", timeout=POOL_TIMEOUT_SECONDS,
            check=ConnectionPool.check_connection, kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )  # fmt: skip
        await asyncio.to_thread(self.pool.open, True, 30.0)
        await asyncio.to_thread(self._ensure_experiments)
        self.audit.start()

        self.gateway = GatewayInterceptor(self.metrics, dict(config.tokens), dict(config.admin_tokens),
                                          config.rate_limit_per_minute)  # fmt: skip
        server = aio.server(
            interceptors=[self.gateway],
            maximum_concurrent_rpcs=config.max_concurrent_rpcs or None,
            options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
                     ("grpc.max_send_message_length", MAX_SEND_BYTES),
                     ("grpc.so_reuseport", 0)],
        )  # fmt: skip
        service = ScorerService(
            models=self.models, features=features, models_root=options.models_root, metrics=self.metrics,
            audit=self.audit, pool=self.pool, max_batch=config.max_batch, seed=options.seed, live=live,
            wallets=self.wallets,
        )  # fmt: skip
        scorer_pb2_grpc.add_ScorerServicer_to_server(service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        self.port = server.add_insecure_port(f"{options.host}:{options.port}")
        if self.port == 0:
            raise OSError(f"cannot bind {options.host}:{options.port}")
        await server.start()
        self.server = server
        if options.metrics and config.metrics_port:
            _, self._stop_metrics = serve_metrics(self.metrics, self.health_state, config.metrics_host,
                                          config.metrics_port)  # fmt: skip
        self._tasks = [
            asyncio.create_task(self._follow_features(), name="features"),
            asyncio.create_task(self._follow_live(), name="live-state"),
        ]
        if options.retention is not None:
            self._tasks.append(asyncio.create_task(self._retention(options.retention), name="retention"))
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health_state.tick(caught_up=True)
        log.info("scorer_started", address=f"{options.host}:{self.port}", model=bundle.version,
                 models_root=str(options.models_root),
                 donors=features.current().n_donors, chain_id=bundle.chain_id,
                 gate=bundle.gate.served_model if bundle.gate else None,
                 live_block=live.cursor[0] if live.cursor else None,
                 wallet_node=bool(self.config.wallet_rpc_url))  # fmt: skip
        return self.port

    def _ensure_experiments(self) -> None:
        assert self.pool is not None
        with self.pool.connection() as conn:
            for config in DEFAULT_EXPERIMENTS:
                if experiment_store.get_experiment(conn, config.name) is None:
                    experiment_store.ensure_experiment(conn, config)

    async def _follow_features(self) -> None:
        assert self.features is not None
        metrics = self.metrics
        up = metrics.dependency_up.labels(dependency="features")

        def reloaded(snapshot: FeatureSnapshot) -> None:
            metrics.donors_loaded.set(snapshot.n_donors)
            metrics.features_age.set(snapshot.refreshed_at.timestamp())
            up.set(1)

        def failed(exc: BaseException) -> None:
            metrics.dependency_errors.labels(dependency="features").inc()
            up.set(0)

        await self.features.follow(
            self.database_url, stop_event=self._stop, interval_seconds=self.config.feature_reload_seconds,
            on_reload=reloaded, on_error=failed,
        )  # fmt: skip

    async def _follow_live(self) -> None:
        assert self.live is not None
        metrics = self.metrics

        def failed(exc: BaseException) -> None:
            metrics.dependency_errors.labels(dependency="live_state").inc()

        await self.live.follow(self.database_url, stop_event=self._stop,
                               interval_seconds=self.config.feature_reload_seconds, on_error=failed)  # fmt: skip

    async def _retention(self, job: RetentionJob) -> None:
        """Delete expired audit rows and experiment outcomes now and then every hour."""
        while not self._stop.is_set():
            try:
                deleted = await asyncio.to_thread(
                    job, self.database_url, audit_days=self.config.audit_retention_days,
                    outcome_days=self.config.experiment_retention_days,
                )  # fmt: skip
                if any(deleted.values()):
                    log.info("retention_applied", **deleted)
            except Exception as exc:  # a failed cleanup must never stop the sidecar
                log.warning("retention_failed", error=str(exc).splitlines()[0])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RETENTION_EVERY_SECONDS)

    async def wait(self) -> None:
        await self._stop.wait()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        """NOT_SERVING and new calls UNAVAILABLE, drain, graceful stop, flush the audit log, close everything."""
        await self.health.enter_graceful_shutdown()
        if self.gateway is not None:
            self.gateway.start_draining()
        self.health_state.tick(caught_up=False)
        await asyncio.sleep(self.options.drain_seconds)
        self._stop.set()
        if self.server is not None:
            await self.server.stop(self.options.grace_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.audit.close()
        await self.wallets.close()
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)
        if self._stop_metrics is not None:
            self._stop_metrics()
        log.info("scorer_stopped")


async def serve_forever(config: SidecarConfig, database_url: str, options: SidecarOptions) -> None:
    """``qf serve``: run until SIGTERM/SIGINT, then stop gracefully."""
    import signal  # noqa: PLC0415

    sidecar = Sidecar(config, database_url, options)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sidecar.request_stop)
    try:
        await sidecar.start()
        await sidecar.wait()
    finally:
        await sidecar.stop()


__all__ = [
    "DEFAULT_EXPERIMENTS",
    "RetentionJob",
    "Sidecar",
    "SidecarConfig",
    "SidecarOptions",
    "serve_forever",
]
