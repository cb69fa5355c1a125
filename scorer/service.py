"""The gRPC service: request parsing, the engine, the audit log and the experiment store, one method per RPC.

This is the service boundary: every error the parts below raise on purpose is
mapped to a status code here and nowhere else --

=========================  ===================
ValidationError            INVALID_ARGUMENT
UnknownDonor               NOT_FOUND
UnknownExperiment          NOT_FOUND
ModelError                 FAILED_PRECONDITION
ConfigError / DataError    FAILED_PRECONDITION
NotReady                   UNAVAILABLE
DependencyDown             UNAVAILABLE (the database was found unreachable moments ago: ``scorer.breaker``)
database unreachable       UNAVAILABLE (psycopg OperationalError, pool timeout: logged and counted)
anything else              INTERNAL (logged with its traceback; the process keeps serving)
=========================  ===================

:data:`STATUS_CODES` is that table; the first class an error is an instance of wins.

Scoring runs inline on the event loop: the numba kernels take microseconds and
the model bundle and feature snapshot are immutable references taken once per
request, so a hot reload never mixes two versions in one answer. Database work
(experiments) runs in worker threads; audit rows are only queued.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import numpy as np
import psycopg
import structlog
from grpc import aio
from psycopg_pool import ConnectionPool, PoolTimeout

from qf_sentinel.qf.db import error_line
from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.experiments import store as experiment_store
from qf_sentinel.qf.experiments.errors import UnknownExperiment
from qf_sentinel.qf.model import live as live_model
from qf_sentinel.qf.model.funding_features import FUNDING_FEATURES
from qf_sentinel.scorer import engine, validation
from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb
from qf_sentinel.scorer.api.v1 import scorer_pb2_grpc
from qf_sentinel.scorer.audit import AuditLog, AuditRow
from qf_sentinel.scorer.breaker import Breaker
from qf_sentinel.scorer.errors import (
    DependencyDown,
    ModelError,
    NotReady,
    PermissionDenied,
    UnknownDonor,
    ValidationError,
)  # fmt: skip
from qf_sentinel.scorer.feature_store import FeatureStore
from qf_sentinel.scorer.interceptors import current_client, current_is_admin
from qf_sentinel.scorer.live_store import LiveStore
from qf_sentinel.scorer.metrics import ScorerMetrics
from qf_sentinel.scorer.models import ModelBundle, ModelStore
from qf_sentinel.scorer.wallet_facts import WalletFacts, WalletFactsClient

log = structlog.get_logger("scorer.service")
if TYPE_CHECKING:  # the stubs' generics are not subscriptable at run time
    Context = aio.ServicerContext[Any, Any]
else:
    Context = aio.ServicerContext
T = TypeVar("T")

LEVELS = {
    engine.RiskLevel.LOW: pb.RISK_LEVEL_LOW, engine.RiskLevel.MEDIUM: pb.RISK_LEVEL_MEDIUM,
    engine.RiskLevel.HIGH: pb.RISK_LEVEL_HIGH,
}  # fmt: skip
DECISIONS = {
    engine.Decision.APPROVE: pb.DECISION_APPROVE, engine.Decision.REVIEW: pb.DECISION_REVIEW,
    engine.Decision.BLOCK: pb.DECISION_BLOCK,
}  # fmt: skip
#: The database could not be reached (down, restarting, out of connections): UNAVAILABLE, not a bug.
UNREACHABLE = (psycopg.OperationalError, PoolTimeout)
#: While the database is unreachable, one call per this many seconds tries it; the others fail at once.
BREAKER_RETRY_SECONDS = 1.0
MAX_CONTEXT_ENTRIES = 32
MAX_CONTEXT_CHARS = 256
#: An ``observed_at`` this far past the sidecar's clock (or the newest indexed block) is still accepted: clock skew.
FUTURE_SKEW_SECONDS = 2.0


#: Error class -> status code, in order (the first match wins); the message is the error's own line.
STATUS_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (UnknownDonor, grpc.StatusCode.NOT_FOUND),
    (UnknownExperiment, grpc.StatusCode.NOT_FOUND),
    (ModelError, grpc.StatusCode.FAILED_PRECONDITION),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
    (DataError, grpc.StatusCode.FAILED_PRECONDITION),
    (NotReady, grpc.StatusCode.UNAVAILABLE),
    (DependencyDown, grpc.StatusCode.UNAVAILABLE),
)


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message an error leaves the service with (see the module docstring)."""
    for kind, code in STATUS_CODES:
        if isinstance(exc, kind):
            return code, str(exc)
    if isinstance(exc, UNREACHABLE):
        return grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry later"
    return grpc.StatusCode.INTERNAL, "internal error"


def handled(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Map the errors of one RPC method to status codes (see the module docstring)."""

    @functools.wraps(method)
    async def wrapper(self: ScorerService, request: Any, context: Context) -> T:
        try:
            return await method(self, request, context)
        except aio.AbortError:
            raise
        except Exception as exc:
            code, message = status_of(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.exception("rpc_failed", method=method.__name__)
            await context.abort(code, message)
            raise  # unreachable: abort raises

    return wrapper


class ScorerService(scorer_pb2_grpc.ScorerServicer):
    def __init__(
        self, *, models: ModelStore, features: FeatureStore, models_root: Path, metrics: ScorerMetrics,
        audit: AuditLog, pool: ConnectionPool[Any], max_batch: int, seed: int | None = None,
        live: LiveStore | None = None, wallets: WalletFactsClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.models = models
        self.features = features
        self.live = live
        self.wallets = wallets if wallets is not None else WalletFactsClient(None, metrics)
        self._clock = clock
        self.models_root = models_root
        self.metrics = metrics
        self.audit = audit
        self.pool = pool
        self.max_batch = max_batch
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()  # numpy generators are not thread-safe; requests run in threads
        self._reload_lock = asyncio.Lock()
        self._breakers: dict[str, Breaker] = {}  # per dependency: fail fast while it is down

    # -- scoring --------------------------------------------------------------------------------

    def _check_chain(self, bundle: ModelBundle, chain_id: int, field: str) -> None:
        if bundle.chain_id is not None and chain_id != bundle.chain_id:
            raise ValidationError(field, f"chain {chain_id} is not served (this sidecar serves {bundle.chain_id})")

    def _parse(self, bundle: ModelBundle, c: pb.Contribution, field: str) -> _Contribution:
        """Every field of a contribution, checked once; ValidationError names the first bad one."""
        parsed = _Contribution(
            donor=validation.address(c.donor, f"{field}.donor"),
            recipient=validation.recipient_id(c.recipient_id, f"{field}.recipient_id"),
            pool_id=validation.pool_id(c.pool_id, f"{field}.pool_id"),
            chain_id=validation.chain_id(c.chain_id, f"{field}.chain_id"),
            token=validation.address(c.token, f"{field}.token"),
            amount=validation.amount(c.amount, f"{field}.amount"),
            amount_text=c.amount,
            context=_context(c.context, f"{field}.context"),
            observed_at=self._observed_at(c, f"{field}.observed_at"),
        )
        self._check_chain(bundle, parsed.chain_id, f"{field}.chain_id")
        return parsed

    def _observed_at(self, c: pb.Contribution, field: str) -> float | None:
        """The admin-set time of a replayed contribution (unix seconds), or None for the sidecar's clock."""
        if not c.HasField("observed_at"):
            return None
        if not current_is_admin():
            raise PermissionDenied(field, "only an admin token may set the time of a contribution")
        at = c.observed_at.seconds + c.observed_at.nanos / 1e9
        floor = self.live.time_floor() if self.live is not None else -math.inf
        if at > max(self._clock(), floor) + FUTURE_SKEW_SECONDS:
            raise ValidationError(field, "is in the future")
        return at

    async def _score_one(
        self, bundle: ModelBundle, c: _Contribution, method: str, facts: WalletFacts | None = None
    ) -> pb.ScoreContributionResponse:
        """The gate's answer: the contribution gate on live features when the version has one, else the donor model."""
        started = time.perf_counter()
        gate, live = bundle.gate, self.live
        extra: dict[str, Any] = {}
        if gate is not None and live is not None and live.ready:
            if facts is None:
                facts = await self.wallets.lookup(c.donor)
            floor = live.time_floor()
            at = max(c.observed_at if c.observed_at is not None else self._clock(), floor)
            contribution = _live_contribution(c, at, facts)
            row, known, funding = live.observe(contribution)
            result = engine.gate(bundle, gate, self.features.current(), c.donor, row, cold_start=not known,
                                 amount=c.amount, symbol=live.symbol(c.token), funding=funding)  # fmt: skip
            names: tuple[str, ...] = gate.feature_names
            model_name = f"gate:{gate.served_model}"
            extra = dict(zip(FUNDING_FEATURES, funding.row.tolist(), strict=True)) | {
                     "wallet_nonce": facts.nonce, "wallet_is_contract": facts.is_contract,
                     "wallet_balance_wei": str(facts.balance_wei) if facts.balance_wei is not None else None,
                     "wallet_facts": facts.outcome, "observed_at": at}  # fmt: skip
        else:
            result = engine.score(bundle, self.features.current(), c.donor, c.amount)
            names, model_name = bundle.feature_names, bundle.served_model
        self.metrics.inference_seconds.labels(model=model_name).observe(time.perf_counter() - started)
        self.metrics.decisions.labels(level=result.level.value).inc()
        decision_id = str(uuid.uuid4())
        response = pb.ScoreContributionResponse(
            risk_score=result.score, level=LEVELS[result.level], decision=DECISIONS[result.decision],
            anomaly=_anomaly(result.anomaly), model_version=bundle.version, cold_start=result.cold_start,
            decision_id=decision_id,
            reasons=[pb.Reason(feature=r.feature, value=r.value, contribution=r.contribution, text=r.text)
                     for r in result.reasons],
        )  # fmt: skip
        self.audit.record(
            AuditRow(
                decision_id=decision_id, created_at=datetime.now(UTC), client=current_client(), method=method,
                model_version=bundle.version, latency_ms=(time.perf_counter() - started) * 1000,
                chain_id=c.chain_id, donor=c.donor, recipient_id=c.recipient, pool_id=c.pool_id, token=c.token,
                amount=Decimal(c.amount_text), risk_score=result.score, level=result.level.value,
                decision=result.decision.value, cold_start=result.cold_start, anomaly=_anomaly_dict(result.anomaly),
                reasons=[{"feature": r.feature, "value": r.value, "contribution": r.contribution, "text": r.text}
                         for r in result.reasons],
                features=dict(zip(names, result.features.tolist(), strict=True)) | extra,
                context=c.context,
            )
        )  # fmt: skip
        return response

    @handled
    async def ScoreContribution(  # noqa: N802
        self, request: pb.ScoreContributionRequest, context: Context
    ) -> pb.ScoreContributionResponse:
        if not request.HasField("contribution"):
            raise ValidationError("contribution", "is required")
        bundle = self.models.current()
        parsed = self._parse(bundle, request.contribution, "contribution")
        return await self._score_one(bundle, parsed, "ScoreContribution")

    @handled
    async def ScoreContributions(  # noqa: N802
        self, request: pb.ScoreContributionsRequest, context: Context
    ) -> pb.ScoreContributionsResponse:
        validation.batch_size(len(request.contributions), self.max_batch)
        bundle = self.models.current()
        # Parse everything first: a bad item fails the whole batch before anything is scored or logged.
        parsed = [self._parse(bundle, c, f"contributions[{i}]") for i, c in enumerate(request.contributions)]
        # The node lookups of a batch go out together; the items are then decided in order (each sees the last).
        facts: list[WalletFacts | None] = [None] * len(parsed)
        if bundle.gate is not None and self.live is not None:
            wallets = {c.donor for c in parsed}
            found = dict(zip(wallets, await asyncio.gather(*(self.wallets.lookup(w) for w in wallets)), strict=True))
            facts = [found[c.donor] for c in parsed]
        results = [
            await self._score_one(bundle, c, "ScoreContributions", f) for c, f in zip(parsed, facts, strict=True)
        ]
        return pb.ScoreContributionsResponse(results=results)

    @handled
    async def DetectAnomaly(  # noqa: N802
        self, request: pb.DetectAnomalyRequest, context: Context
    ) -> pb.DetectAnomalyResponse:
        started = time.perf_counter()
        donor = validation.address(request.donor, "donor")
        chain_id = validation.chain_id(request.chain_id, "chain_id")
        bundle = self.models.current()
        self._check_chain(bundle, chain_id, "chain_id")
        result = engine.detect(bundle, self.features.current(), donor)
        self.metrics.inference_seconds.labels(model="anomaly").observe(time.perf_counter() - started)
        self.audit.record(
            AuditRow(
                decision_id=str(uuid.uuid4()), created_at=datetime.now(UTC), client=current_client(),
                method="DetectAnomaly", model_version=bundle.version, chain_id=chain_id, donor=donor,
                latency_ms=(time.perf_counter() - started) * 1000, cold_start=result.cold_start,
                anomaly=_anomaly_dict(result),
            )
        )  # fmt: skip
        return pb.DetectAnomalyResponse(
            anomaly=_anomaly(result), cold_start=result.cold_start, model_version=bundle.version
        )

    @handled
    async def Recommend(self, request: pb.RecommendRequest, context: Context) -> pb.RecommendResponse:  # noqa: N802
        donor = validation.address(request.donor, "donor")
        pool_id = validation.pool_id(request.pool_id, "pool_id")
        k = validation.k(request.k, "k")
        chain_id = validation.chain_id(request.chain_id, "chain_id")
        bundle = self.models.current()
        self._check_chain(bundle, chain_id, "chain_id")
        started = time.perf_counter()
        projects, source = engine.recommend(bundle, self.features.current(), donor, pool_id, k)
        self.metrics.inference_seconds.labels(model="recommender").observe(time.perf_counter() - started)
        return pb.RecommendResponse(
            projects=[pb.RecommendedProject(recipient_id=r, score=s) for r, s in projects],
            source=source, model_version=bundle.version,
        )  # fmt: skip

    # -- experiments ------------------------------------------------------------------------------

    async def _db(self, work: Callable[..., T], *args: Any, dependency: str = "experiments") -> T:
        """``work(conn, *args)`` on a pooled connection in a worker thread, behind the dependency's breaker.

        The worker thread itself tells the breaker what it found, so a call
        whose client gave up (deadline, cancellation) still teaches it that the
        database is down; otherwise, with deadlines shorter than the pool's
        timeout, every call would wait for the pool and the breaker never open.
        """
        breaker = self._breakers.setdefault(dependency, Breaker(BREAKER_RETRY_SECONDS))
        if not breaker.allow():
            self.metrics.dependency_errors.labels(dependency=dependency).inc()
            raise DependencyDown(dependency)
        loop = asyncio.get_running_loop()
        ran = threading.Event()

        def run() -> T:
            ran.set()
            try:
                with self.pool.connection() as conn:
                    result = work(conn, *args)
            except UNREACHABLE as exc:
                loop.call_soon_threadsafe(self._unreachable, breaker, dependency, exc)
                raise
            except Exception:  # the database answered (an unknown experiment, a refused row): it is up
                loop.call_soon_threadsafe(self._reached, breaker, dependency)
                raise
            loop.call_soon_threadsafe(self._reached, breaker, dependency)
            return result

        try:
            return await asyncio.to_thread(run)
        except asyncio.CancelledError:
            if not ran.is_set():  # cancelled while queued for a thread: it will never report; free the probe
                breaker.released()
            raise

    def _unreachable(self, breaker: Breaker, dependency: str, exc: BaseException) -> None:
        self.metrics.dependency_errors.labels(dependency=dependency).inc()
        self.metrics.dependency_up.labels(dependency=dependency).set(0)
        if not breaker.is_open:
            log.warning("database_unavailable", dependency=dependency, error=error_line(exc))
        breaker.failed()

    def _reached(self, breaker: Breaker, dependency: str) -> None:
        self.metrics.dependency_up.labels(dependency=dependency).set(1)
        if breaker.is_open:
            log.info("database_recovered", dependency=dependency)
        breaker.succeeded()

    @handled
    async def AssignVariant(  # noqa: N802
        self, request: pb.AssignVariantRequest, context: Context
    ) -> pb.AssignVariantResponse:
        name = validation.experiment_name(request.experiment, "experiment")
        user = validation.user_id(request.user_id, "user_id")

        def work(conn: Any) -> tuple[str, bool, str]:
            config = experiment_store.get_experiment(conn, name)
            if config is None:
                raise UnknownExperiment(name)
            with self._rng_lock:
                rng = np.random.default_rng(self._rng.integers(2**63))
            variant, new = experiment_store.assign(conn, config, user, rng)
            return variant, new, config.policy

        variant, new, policy = await self._db(work)
        return pb.AssignVariantResponse(variant=variant, new_assignment=new, policy=policy)

    @handled
    async def RecordOutcome(  # noqa: N802
        self, request: pb.RecordOutcomeRequest, context: Context
    ) -> pb.RecordOutcomeResponse:
        name = validation.experiment_name(request.experiment, "experiment")
        user = validation.user_id(request.user_id, "user_id")
        reward = validation.reward(request.reward, "reward")
        variant = await self._db(experiment_store.record_outcome, name, user, reward)
        return pb.RecordOutcomeResponse(variant=variant)

    @handled
    async def GetExperimentStats(  # noqa: N802
        self, request: pb.GetExperimentStatsRequest, context: Context
    ) -> pb.GetExperimentStatsResponse:
        name = validation.experiment_name(request.experiment, "experiment")
        stats = await self._db(experiment_store.stats, name)
        return pb.GetExperimentStatsResponse(
            experiment=stats.experiment, policy=stats.policy, baseline=stats.baseline,
            chi_square=stats.chi_square, p_value=stats.p_value,
            variants=[
                pb.VariantStats(
                    variant=v.variant, exposures=v.exposures, conversions=v.conversions,
                    conversion_rate=v.conversion_rate, lift=v.lift, lift_ci_low=v.lift_ci_low,
                    lift_ci_high=v.lift_ci_high,
                )
                for v in stats.variants
            ],
        )  # fmt: skip

    # -- models -------------------------------------------------------------------------------------

    @handled
    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context: Context) -> pb.ModelInfo:  # noqa: N802
        bundle = self.models.current()
        snapshot = self.features.current()
        return pb.ModelInfo(
            version=bundle.version, served_model=bundle.served_model, feature_names=list(bundle.feature_names),
            review_threshold=bundle.thresholds.review, block_threshold=bundle.thresholds.block,
            trained_at=bundle.trained_at, content_sha256=bundle.content_sha256, donors_loaded=snapshot.n_donors,
            features_refreshed_at=snapshot.refreshed_at.isoformat(timespec="seconds"),
            gate_model=bundle.gate.served_model if bundle.gate else "",
            gate_feature_names=list(bundle.gate.feature_names) if bundle.gate else [],
            gate_review_threshold=bundle.gate.review if bundle.gate else 0.0,
            gate_block_threshold=bundle.gate.block if bundle.gate else 0.0,
            live_state_block=self.live.cursor[0] if self.live and self.live.cursor else 0,
        )  # fmt: skip

    @handled
    async def ReloadModels(  # noqa: N802
        self, request: pb.ReloadModelsRequest, context: Context
    ) -> pb.ReloadModelsResponse:
        version = validation.model_version(request.version, "version")
        async with self._reload_lock:
            try:
                new = await asyncio.to_thread(self.models.load, self.models_root, version)
                # The snapshot's coordination_anomaly column and project indices are the version's own: build
                # the new version's snapshot first, then swap both, so no answer mixes two versions.
                snapshot = await self._db(
                    self.features.build, new.recommender.project_ids, new.coordination_score, dependency="features"
                )
            except Exception:
                self.metrics.reloads.labels(outcome="refused").inc()
                raise
            old = self.models.swap(new)
            self.features.swap(snapshot)
        self.metrics.donors_loaded.set(snapshot.n_donors)
        self.metrics.reloads.labels(outcome="swapped").inc()
        self.metrics.set_model(new.version, new.served_model)
        log.info("model_reloaded", previous=old.version if old else None, version=new.version)
        return pb.ReloadModelsResponse(previous_version=old.version if old else "", version=new.version)


@dataclass(frozen=True, slots=True)
class _Contribution:
    """A checked ``Contribution``: raw bytes and numbers, plus the amount's text for the audit log (exact)."""

    donor: bytes
    recipient: bytes
    pool_id: int
    chain_id: int
    token: bytes
    amount: float
    amount_text: str
    context: dict[str, str]
    #: unix seconds set by an admin (replays), or None: the sidecar's clock
    observed_at: float | None = None


def _live_contribution(c: _Contribution, at: float, facts: WalletFacts) -> live_model.Contribution:
    """The gate's view of a checked contribution, keyed as the index keys it (``0x`` addresses, ``pool:0xrec``)."""
    return live_model.Contribution(
        donor=to_hex(c.donor), project=f"{c.pool_id}:0x{c.recipient.hex()}", pool=str(c.pool_id), amount=c.amount,
        time=at, nonce=facts.gate_nonce, round_amount=_round_amount(c.amount_text), token=c.token,
    )  # fmt: skip


def _round_amount(text: str) -> bool:
    """Whether a validated decimal amount is a multiple of 0.5, read from its digits (exact for any uint256)."""
    _, _, fraction = text.partition(".")
    return fraction.rstrip("0") in ("", "5")


def _context(values: Any, field: str) -> dict[str, str]:
    """The client's context map: bounded so it cannot bloat the audit log, and storable (no control characters)."""
    if len(values) > MAX_CONTEXT_ENTRIES:
        raise ValidationError(field, f"at most {MAX_CONTEXT_ENTRIES} entries, got {len(values)}")
    checked = {}
    for key, value in values.items():
        name = validation.label(key, f"{field} key", MAX_CONTEXT_CHARS)
        checked[name] = validation.label(value, f"{field}[{name!r}]", MAX_CONTEXT_CHARS)
    return checked


def _anomaly(result: engine.AnomalyResult) -> pb.AnomalyScores:
    return pb.AnomalyScores(
        isolation_forest=result.iforest_score, lof=result.lof_score, isolation_forest_flag=result.iforest_flag,
        lof_flag=result.lof_flag, consensus_flag=result.consensus,
    )  # fmt: skip


def _anomaly_dict(result: engine.AnomalyResult) -> dict[str, Any]:
    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {
        "isolation_forest": finite(result.iforest_score), "lof": finite(result.lof_score),
        "isolation_forest_flag": result.iforest_flag, "lof_flag": result.lof_flag, "consensus_flag": result.consensus,
    }  # fmt: skip
