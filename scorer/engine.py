"""The scoring engine: risk, anomaly and recommendations for one donor, from a model bundle and a feature snapshot.

Pure functions: given a :class:`qf.model.bundle.ModelBundle` and a
:class:`scorer.feature_store.FeatureSnapshot` (both immutable, both taken once
per request by the server) the answer depends on nothing else. The work is
done by the numba kernels of :mod:`qf.model.kernels` on flat arrays: no pandas,
scikit-learn or XGBoost on the hot path, and only a few small arrays allocated
per call (contributions, the standardised row).

A donor the snapshot does not know is a *cold start*: it is scored on
:func:`qf.model.features.cold_start_row` (no donations, unknown nonce, no
co-donors) and flagged as such, never refused.

The model scores donors (their whole indexed behaviour), not single transfers,
so a known donor gets the same score whatever it is about to give. The amount
matters only for a cold start, which is scored as a donor with this one
donation (:func:`qf.model.features.first_donation_row`); a cold start's
decision is at most REVIEW (level HIGH stays visible): no history is no
evidence, and a one-off newcomer must not be blocked outright.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.model.features import first_donation_row, signed_log1p
from qf_sentinel.qf.model.funding_features import FundingEvidence
from qf_sentinel.qf.model.funding_features import describe as describe_funding
from qf_sentinel.qf.model.gate import FUNDING_REASON, Decision, GateModel, RiskLevel, classify
from qf_sentinel.qf.model.kernels import iforest, lof, topk, trees
from qf_sentinel.qf.model.reasons import describe

if TYPE_CHECKING:
    from qf_sentinel.qf.model.bundle import ModelBundle
    from qf_sentinel.scorer.feature_store import FeatureSnapshot

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Source = Literal["cf", "popularity"]

#: How many features :attr:`RiskResult.reasons` names (after ``cold_start`` for a cold start).
N_REASONS = 3
COLD_START = "cold_start"
_NO_HISTORY = np.zeros(0, dtype=np.int64)


__all__ = ["Decision", "RiskLevel", "classify"]  # the gate's enums, re-exported for the service and the console


@dataclass(frozen=True, slots=True)
class Reason:
    """A feature that pushed the risk margin: its value, its push (positive = riskier) and the same in words."""

    feature: str
    value: float
    contribution: float
    text: str = ""


@dataclass(frozen=True, slots=True)
class AnomalyResult:
    """Both detectors on the donor: scores are ``-score_samples`` (higher = more anomalous); flags decision < 0."""

    iforest_score: float
    lof_score: float
    iforest_flag: bool
    lof_flag: bool
    consensus: bool
    cold_start: bool


@dataclass(frozen=True, slots=True)
class RiskResult:
    """The gate's answer for one donor.

    ``score`` is the calibrated risk (the model's probability through the
    version's isotonic calibration); ``margin`` is the model's raw output
    (log-odds for a logistic link), whose per-feature pushes are the reasons.
    """

    score: float
    level: RiskLevel
    decision: Decision
    reasons: tuple[Reason, ...]
    anomaly: AnomalyResult
    cold_start: bool
    margin: float
    #: the feature vector the model scored (the donor's row, or the first-donation row of a cold start)
    features: FloatArray = field(compare=False, repr=False)


def score(bundle: ModelBundle, snapshot: FeatureSnapshot, donor: bytes, amount: float) -> RiskResult:
    """Risk score, level, decision and reasons of a donor about to give ``amount``.

    A known donor is scored on its indexed history. An unknown one is scored as
    it will look once this donation is indexed (:func:`first_donation_row`: one
    donation of ``amount``), the nearest thing to what the model was trained on.
    """
    row, cold_start = donor_row(bundle, snapshot, donor)
    if cold_start:
        row = first_donation_row(amount)
        row[-1] = bundle.cold_anomaly  # coordination_anomaly: its coordination features are all 0
    return score_row(bundle, row, cold_start=cold_start)


def gate(
    bundle: ModelBundle, model: GateModel, snapshot: FeatureSnapshot, donor: bytes, row: FloatArray, *,
    cold_start: bool, amount: float, symbol: str = "", funding: FundingEvidence | None = None,
) -> RiskResult:  # fmt: skip
    """The contribution gate's answer for a row of point-in-time features (:class:`qf.model.live.LiveState`).

    The decision is the gate model's alone (a wallet's first contribution is
    judged on what is happening around it, not capped at REVIEW); the anomaly
    scores are the donor-level detectors' on the donor's indexed history, as
    :func:`detect` gives them.
    """
    decided = model.decide(row, funding.row if funding is not None else None)
    reasons = tuple(
        Reason(p.feature, p.value, p.contribution,
               describe_funding(funding) if p.feature == FUNDING_REASON and funding is not None
               else describe(p.feature, p.value, amount=amount, symbol=symbol))
        for p in decided.pushes
    )  # fmt: skip
    donor_features, unknown = donor_row(bundle, snapshot, donor)
    return RiskResult(
        score=decided.score, level=decided.level, decision=decided.decision, reasons=reasons,
        anomaly=anomaly_row(bundle, donor_features, cold_start=unknown), cold_start=cold_start,
        margin=decided.margin, features=row,
    )  # fmt: skip


def detect(bundle: ModelBundle, snapshot: FeatureSnapshot, donor: bytes) -> AnomalyResult:
    """Isolation Forest and LOF verdicts on a donor."""
    row, cold_start = donor_row(bundle, snapshot, donor)
    return anomaly_row(bundle, row, cold_start=cold_start)


def recommend(
    bundle: ModelBundle, snapshot: FeatureSnapshot, donor: bytes, pool_id: int, k: int
) -> tuple[list[tuple[str, float]], Source]:
    """Top ``k`` projects of Allo pool ``pool_id`` for a donor: ``([(recipient_id, score)], source)``.

    Projects the donor funded are never proposed. A pool the recommender
    does not know gives an empty list; a donor without history, or whose
    history links to nothing in the pool, gets the pool's most popular projects.
    """
    pool = bundle.pool_index.get(pool_id)
    if pool is None:
        return [], "popularity"
    return recommend_history(bundle, donor_history(bundle, snapshot, donor), pool, k)


# --- row level: what the public functions and the bundle's warm-up share ---------------------------------------------


def donor_row(bundle: ModelBundle, snapshot: FeatureSnapshot, donor: bytes) -> tuple[FloatArray, bool]:
    """``(feature row, cold_start)``: the snapshot's row (a view) or the cold-start row."""
    row = snapshot.index.get(donor)
    if row is None:
        return bundle.cold_row, True
    return snapshot.matrix[row], False


def donor_history(bundle: ModelBundle, snapshot: FeatureSnapshot, donor: bytes) -> IntArray:
    """The donor's funded projects as indices into the bundle's recommender."""
    row = snapshot.index.get(donor)
    if row is None:
        return _NO_HISTORY
    funded = snapshot.funded(row)
    if snapshot.projects_key == bundle.projects_key:
        return funded
    # The model was swapped since the snapshot was built: translate by project key (the kernel skips -1).
    index = bundle.project_index
    ids = snapshot.project_ids
    return np.fromiter((index.get(ids[p], -1) for p in funded.tolist()), np.int64, funded.size)


def score_row(bundle: ModelBundle, row: FloatArray, *, cold_start: bool) -> RiskResult:
    margin = risk_margin(bundle, row)
    raw = link(margin) if bundle.risk.link == "logistic" else margin
    probability = float(np.interp(raw, bundle.calibration.x, bundle.calibration.y))
    level, decision = classify(probability, bundle.thresholds.review, bundle.thresholds.block)
    if cold_start and decision is Decision.BLOCK:
        # No history is no evidence: an unknown wallet is sent to review, never blocked outright.
        decision = Decision.REVIEW
    return RiskResult(
        score=probability,
        level=level,
        decision=decision,
        reasons=reasons(bundle, row, contributions(bundle, row), cold_start=cold_start),
        anomaly=anomaly_row(bundle, row, cold_start=cold_start),
        cold_start=cold_start,
        margin=margin,
        features=row,
    )


def risk_margin(bundle: ModelBundle, row: FloatArray) -> float:
    """The model's raw margin of one row (before the link)."""
    if bundle.linear:
        return float(trees.linear_margin_row(row, bundle.risk_args))
    return float(trees.margin_row(row, bundle.risk_args))


def contributions(bundle: ModelBundle, row: FloatArray) -> FloatArray:
    """Per-feature pushes on the margin, then the bias; they add up to :func:`risk_margin`.

    Saabas contributions for tree ensembles (for a mean of trees, such as a
    random forest, averaged the same way), ``coef * standardised x`` for the
    linear model.
    """
    if bundle.linear:
        return np.asarray(trees.linear_contributions_row(row, bundle.risk_args))
    return np.asarray(trees.contributions_row(row, bundle.risk_args))


def reasons(bundle: ModelBundle, row: FloatArray, pushes: FloatArray, *, cold_start: bool) -> tuple[Reason, ...]:
    """The features that pushed hardest: risk-raising ones first (largest first), then risk-lowering ones.

    Features with no push at all are never named. A cold start comes first as ``cold_start``.
    """
    per_feature = pushes[:-1]
    order = np.lexsort((-np.abs(per_feature), per_feature <= 0))
    chosen = [int(j) for j in order[:N_REASONS] if per_feature[j] != 0]
    named = tuple(Reason(bundle.feature_names[j], float(row[j]), float(per_feature[j])) for j in chosen)
    return (Reason(COLD_START, 1.0, 0.0), *named) if cold_start else named


def standardise(bundle: ModelBundle, row: FloatArray) -> FloatArray:
    """The detectors' view of a row: ``signed_log1p`` then the training mean and scale (as training's Scaler)."""
    return np.ascontiguousarray((signed_log1p(row) - bundle.scaler_mean) / bundle.scaler_scale)


def anomaly_row(bundle: ModelBundle, row: FloatArray, *, cold_start: bool) -> AnomalyResult:
    z = standardise(bundle, row)
    forest = float(iforest.score_samples_row(z, *bundle.iforest_args))
    neighbours = float(lof.score_samples_row(z, *bundle.lof_args))
    # decision_function = score_samples - offset, the kernels' own definition; one tree walk instead of two
    forest_flag = forest - bundle.iforest.offset < 0
    lof_flag = neighbours - bundle.lof.offset < 0
    return AnomalyResult(
        iforest_score=-forest,
        lof_score=-neighbours,
        iforest_flag=forest_flag,
        lof_flag=lof_flag,
        consensus=forest_flag and lof_flag,
        cold_start=cold_start,
    )


def recommend_history(
    bundle: ModelBundle, history: IntArray, pool: int, k: int
) -> tuple[list[tuple[str, float]], Source]:
    """Top ``k`` of recommender pool index ``pool`` for a history of project indices."""
    r = bundle.recommender
    chosen, scores, fallback = topk.recommend_topk(r.similarity, r.popularity, r.project_pool, history, pool, k)
    recipients = bundle.recipients
    items = [(recipients[p], s) for p, s in zip(chosen.tolist(), scores.tolist(), strict=True)]
    return items, "popularity" if fallback else "cf"


def link(margin: float) -> float:
    """The logistic function, without overflow for large negative margins."""
    if margin >= 0:
        return 1.0 / (1.0 + math.exp(-margin))
    e = math.exp(margin)
    return e / (1.0 + e)
