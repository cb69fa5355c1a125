"""Honest numbers for a sybil-risk score on a test set: metrics with intervals, gating, calibration.

Given labels ``y`` (``True``/1 = sybil) and risk scores (higher = riskier) of
the test rows of a :class:`qf.train.splits.Split`, this module reports:

* ranking quality -- :data:`roc_auc` and :data:`pr_auc` (average precision,
  whose chance level is the sybil share, not 0.5);
* precision and recall of flagging at a threshold (:func:`precision_recall_at`);
* percentile-bootstrap intervals for any of these (:func:`bootstrap_ci`), so a
  small test set shows how little it proves;
* what the gate would do to honest donors and sybils (:func:`gating_outcome`);
* a reliability table (:func:`calibration_bins`).

:func:`evaluate` bundles them into a JSON-ready :class:`Evaluation`. The
metrics given as :class:`Metric` objects carry a vectorised form over
resample counts, so a 1000-resample bootstrap costs a few array passes, not
1000 scikit-learn calls. Bad arguments raise :class:`qf.errors.ConfigError`,
unusable labels or scores :class:`MetricError` (a :class:`qf.errors.DataError`
and a :class:`ValueError`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, TypedDict, cast

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.train.errors import MetricError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]

#: ``(labels, scores, counts)`` -> one metric value per row of ``counts`` (resamples x rows).
CountsMetric = Callable[[BoolArray, FloatArray, FloatArray], FloatArray]

# Resamples are drawn in chunks of about this many (resample, row) cells, so
# the few float64 work arrays per chunk stay around 100 MB whatever n_boot is.
_CHUNK_CELLS = 1 << 21


class IntervalDict(TypedDict):
    """A :class:`ConfidenceInterval` as JSON (NaN as None)."""

    point: float | None
    low: float | None
    high: float | None


class ThresholdDict(TypedDict):
    threshold: float
    precision: IntervalDict
    recall: IntervalDict


class GatingDict(TypedDict):
    """A :class:`GatingOutcome` as JSON: the counts, ``n`` and the three rates (None when undefined)."""

    review_threshold: float
    block_threshold: float
    honest_approved: int
    honest_reviewed: int
    honest_blocked: int
    sybil_approved: int
    sybil_reviewed: int
    sybil_blocked: int
    n: int
    honest_blocked_rate: float | None
    honest_review_rate: float | None
    sybil_approved_rate: float | None


class BootstrapDict(TypedDict):
    n_boot: int
    seed: int
    alpha: float


class EvaluationDict(TypedDict):
    """:meth:`Evaluation.to_dict`: one model on one split, what the report and the README read."""

    n: int
    positives: int
    prevalence: float | None
    roc_auc: IntervalDict
    pr_auc: IntervalDict
    at_thresholds: list[ThresholdDict]
    gating: GatingDict
    bootstrap: BootstrapDict


class ConfidenceInterval(NamedTuple):
    point: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric of ``(y, score)`` that can also be computed on many bootstrap resamples at once.

    ``on_counts`` takes, per resample, how many times each row was drawn and
    must equal the metric of the resampled rows; the tests hold every metric
    here to that.
    """

    name: str
    reference: Callable[[BoolArray, FloatArray], float]
    on_counts: CountsMetric
    needs_both_classes: bool = True

    def __call__(self, y: npt.ArrayLike, score: npt.ArrayLike) -> float:
        labels, scores = _validated(y, score, both_classes=self.needs_both_classes)
        return self.reference(labels, scores)


def precision_recall_at(y: npt.ArrayLike, score: npt.ArrayLike, threshold: float) -> tuple[float, float]:
    """Precision and recall of flagging every donor with ``score >= threshold``.

    ``>=`` is scikit-learn's convention for thresholds. Precision is NaN when
    nothing is flagged, recall NaN when there are no sybils.
    """
    labels, scores = _validated(y, score, both_classes=False)
    flagged = scores >= threshold
    hits = int(np.count_nonzero(flagged & labels))
    n_flagged = int(np.count_nonzero(flagged))
    positives = int(np.count_nonzero(labels))
    precision = hits / n_flagged if n_flagged else math.nan
    recall = hits / positives if positives else math.nan
    return precision, recall


def _sklearn_roc_auc(labels: BoolArray, scores: FloatArray) -> float:
    return float(roc_auc_score(labels, scores))


def _sklearn_average_precision(labels: BoolArray, scores: FloatArray) -> float:
    return float(average_precision_score(labels, scores))


def _tie_groups(scores: FloatArray, *, descending: bool) -> tuple[IndexArray, IndexArray]:
    """Row order by score and the start of each run of equal scores in that order."""
    order = np.argsort(-scores if descending else scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return order, starts


def _class_weights_per_group(
    labels: BoolArray, scores: FloatArray, counts: FloatArray, *, descending: bool
) -> tuple[FloatArray, FloatArray]:
    """Drawn sybils and non-sybils per distinct score (resamples x groups), groups in score order."""
    order, starts = _tie_groups(scores, descending=descending)
    drawn = counts[:, order]
    is_sybil = labels[order]
    return np.add.reduceat(drawn * is_sybil, starts, axis=1), np.add.reduceat(drawn * ~is_sybil, starts, axis=1)


def _ratio(numerator: npt.NDArray[Any], denominator: npt.NDArray[Any]) -> FloatArray:
    """Elementwise ``numerator / denominator``, NaN where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    result: FloatArray = np.divide(numerator, denominator, out=out, where=denominator > 0)
    return result


def _roc_auc_counts(labels: BoolArray, scores: FloatArray, counts: FloatArray) -> FloatArray:
    """Mann-Whitney form: the share of (sybil, non-sybil) pairs ranked right, ties counting 1/2."""
    sybils, honest = _class_weights_per_group(labels, scores, counts, descending=False)
    honest_below = np.cumsum(honest, axis=1) - honest
    pairs_right = (sybils * (honest_below + 0.5 * honest)).sum(axis=1)
    return _ratio(pairs_right, sybils.sum(axis=1) * honest.sum(axis=1))


def _average_precision_counts(labels: BoolArray, scores: FloatArray, counts: FloatArray) -> FloatArray:
    """Sum over distinct thresholds of (recall gained) x (precision there), as scikit-learn defines it."""
    sybils, honest = _class_weights_per_group(labels, scores, counts, descending=True)
    true_pos = np.cumsum(sybils, axis=1)
    precision = np.nan_to_num(_ratio(true_pos, true_pos + np.cumsum(honest, axis=1)))
    return _ratio((sybils * precision).sum(axis=1), sybils.sum(axis=1))


#: Area under the ROC curve (scikit-learn for one value, rank counts for resamples).
roc_auc = Metric("roc_auc", _sklearn_roc_auc, _roc_auc_counts)
#: Average precision, the usual estimate of the area under the precision-recall curve.
pr_auc = Metric("pr_auc", _sklearn_average_precision, _average_precision_counts)


def precision_at(threshold: float) -> Metric:
    """Precision of flagging ``score >= threshold``, as a :class:`Metric` for :func:`bootstrap_ci`."""

    def on_counts(labels: BoolArray, scores: FloatArray, counts: FloatArray) -> FloatArray:
        flagged = scores >= threshold
        return _ratio(counts @ (flagged & labels).astype(np.float64), counts @ flagged.astype(np.float64))

    return Metric(
        f"precision@{threshold}",
        lambda labels, scores: precision_recall_at(labels, scores, threshold)[0],
        on_counts,
        needs_both_classes=False,
    )


def recall_at(threshold: float) -> Metric:
    """Recall of flagging ``score >= threshold``, as a :class:`Metric` for :func:`bootstrap_ci`."""

    def on_counts(labels: BoolArray, scores: FloatArray, counts: FloatArray) -> FloatArray:
        caught = (scores >= threshold) & labels
        return _ratio(counts @ caught.astype(np.float64), counts @ labels.astype(np.float64))

    return Metric(
        f"recall@{threshold}",
        lambda labels, scores: precision_recall_at(labels, scores, threshold)[1],
        on_counts,
        needs_both_classes=False,
    )


def bootstrap_ci(
    metric_fn: Callable[[BoolArray, FloatArray], float],
    y: npt.ArrayLike,
    score: npt.ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    stratified: bool = True,
) -> ConfidenceInterval:
    """The metric on all rows and its ``1 - alpha`` percentile-bootstrap interval.

    Stratified resampling draws sybils and non-sybils separately, each as many
    as there are, so every resample keeps the test set's class balance; plain
    resampling draws rows as they come and skips resamples holding one class
    only. Resamples where the metric is undefined (NaN, e.g. precision with
    nothing flagged) are skipped too. A :class:`Metric` is computed on all
    resamples at once; any other ``metric_fn(y, score) -> float`` is called
    once per resample. The same seed gives the same resamples for every
    metric, so intervals from one :func:`evaluate` call are coherent.
    """
    if n_boot < 1:
        raise ConfigError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    labels, scores = _validated(y, score, both_classes=True)
    point = float(metric_fn(labels, scores))

    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // labels.size)
    values: list[FloatArray] = []
    for start in range(0, n_boot, chunk):
        rows = _resample_rows(labels, min(chunk, n_boot - start), rng, stratified=stratified)
        sybils_drawn = labels[rows].sum(axis=1)
        rows = rows[(sybils_drawn > 0) & (sybils_drawn < rows.shape[1])]
        if isinstance(metric_fn, Metric):
            values.append(metric_fn.on_counts(labels, scores, _draw_counts(rows, labels.size)))
        else:
            values.append(np.array([metric_fn(labels[r], scores[r]) for r in rows], dtype=np.float64))
    resampled = np.concatenate(values)
    resampled = resampled[np.isfinite(resampled)]
    if resampled.size == 0:
        raise MetricError(f"the metric is undefined on all {n_boot} bootstrap resamples")
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(point, float(low), float(high))


def _resample_rows(labels: BoolArray, n_resamples: int, rng: np.random.Generator, *, stratified: bool) -> IndexArray:
    """Row indices drawn with replacement, one resample per row of the result."""
    if not stratified:
        return rng.integers(0, labels.size, size=(n_resamples, labels.size)).astype(np.intp)
    parts = []
    for members in (np.flatnonzero(labels), np.flatnonzero(~labels)):
        parts.append(members[rng.integers(0, members.size, size=(n_resamples, members.size))])
    return np.concatenate(parts, axis=1)


def _draw_counts(rows: IndexArray, n_rows: int) -> FloatArray:
    """How many times each row was drawn, per resample (resamples x rows)."""
    offsets = np.arange(rows.shape[0])[:, None] * n_rows
    flat = np.bincount((rows + offsets).ravel(), minlength=rows.shape[0] * n_rows)
    return flat.reshape(rows.shape[0], n_rows).astype(np.float64)


@dataclass(frozen=True, slots=True)
class GatingOutcome:
    """What the gate does to each class: approve, send to human review, or block.

    A score exactly on either threshold goes to review: every boundary case
    reaches a person, and blocking needs a score strictly above the block
    threshold.
    """

    review_threshold: float
    block_threshold: float
    honest_approved: int
    honest_reviewed: int
    honest_blocked: int
    sybil_approved: int
    sybil_reviewed: int
    sybil_blocked: int

    @property
    def honest(self) -> int:
        return self.honest_approved + self.honest_reviewed + self.honest_blocked

    @property
    def sybils(self) -> int:
        return self.sybil_approved + self.sybil_reviewed + self.sybil_blocked

    @property
    def n(self) -> int:
        return self.honest + self.sybils

    @property
    def honest_blocked_rate(self) -> float:
        """Honest donors wrongly blocked, the cost a round cares most about; NaN without honest donors."""
        return self.honest_blocked / self.honest if self.honest else math.nan

    @property
    def honest_review_rate(self) -> float:
        """Honest donors sent to review: the reviewers' workload and the donors' friction."""
        return self.honest_reviewed / self.honest if self.honest else math.nan

    @property
    def sybil_approved_rate(self) -> float:
        """Sybils that pass unseen; NaN without sybils."""
        return self.sybil_approved / self.sybils if self.sybils else math.nan

    def to_dict(self) -> GatingDict:
        counts = asdict(self)
        rates = {
            "honest_blocked_rate": self.honest_blocked_rate,
            "honest_review_rate": self.honest_review_rate,
            "sybil_approved_rate": self.sybil_approved_rate,
        }
        return cast(GatingDict, _json_ready_dict({**counts, "n": self.n, **rates}))


def gating_outcome(
    y: npt.ArrayLike, score: npt.ArrayLike, review_threshold: float = 0.4, block_threshold: float = 0.7
) -> GatingOutcome:
    """Approve below ``review_threshold``, block above ``block_threshold``, review in between (both ends)."""
    if review_threshold > block_threshold:
        raise ConfigError(f"review threshold {review_threshold} is above block threshold {block_threshold}")
    labels, scores = _validated(y, score, both_classes=False)
    approved = scores < review_threshold
    blocked = scores > block_threshold
    reviewed = ~approved & ~blocked

    def count(decision: BoolArray, sybil: bool) -> int:
        return int(np.count_nonzero(decision & (labels == sybil)))

    return GatingOutcome(
        review_threshold,
        block_threshold,
        honest_approved=count(approved, False),
        honest_reviewed=count(reviewed, False),
        honest_blocked=count(blocked, False),
        sybil_approved=count(approved, True),
        sybil_reviewed=count(reviewed, True),
        sybil_blocked=count(blocked, True),
    )


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    threshold: float
    precision: ConfidenceInterval
    recall: ConfidenceInterval


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything :func:`evaluate` measured on one test set; ``to_dict`` is JSON-ready (NaN as null)."""

    n: int
    positives: int
    roc_auc: ConfidenceInterval
    pr_auc: ConfidenceInterval
    at_thresholds: tuple[ThresholdResult, ...]
    gating: GatingOutcome
    n_boot: int
    seed: int
    alpha: float

    def to_dict(self) -> EvaluationDict:
        return cast(
            EvaluationDict,
            _json_ready_dict(
                {
                    "n": self.n,
                    "positives": self.positives,
                    "prevalence": self.positives / self.n,
                    "roc_auc": self.roc_auc._asdict(),
                    "pr_auc": self.pr_auc._asdict(),
                    "at_thresholds": [
                        {"threshold": t.threshold, "precision": t.precision._asdict(), "recall": t.recall._asdict()}
                        for t in self.at_thresholds
                    ],
                    "gating": self.gating.to_dict(),
                    "bootstrap": {"n_boot": self.n_boot, "seed": self.seed, "alpha": self.alpha},
                }
            ),
        )


def evaluate(
    y: npt.ArrayLike,
    score: npt.ArrayLike,
    thresholds: tuple[float, float] = (0.4, 0.7),
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Evaluation:
    """ROC AUC, PR AUC, precision and recall at each threshold (all with stratified-bootstrap intervals) and gating.

    ``thresholds`` are the gate's ``(review, block)`` thresholds. Precision and
    recall flag ``score >= threshold`` while the gate blocks only above the
    block threshold, so a score of exactly that value counts as flagged here
    and as reviewed in ``gating``.
    """
    labels, scores = _validated(y, score, both_classes=True)

    def interval(metric: Metric) -> ConfidenceInterval:
        # Precision is undefined when no score reaches the threshold: reported as NaN (null in JSON).
        try:
            return bootstrap_ci(metric, labels, scores, n_boot=n_boot, seed=seed, alpha=alpha)
        except MetricError:
            return ConfidenceInterval(float(metric(labels, scores)), math.nan, math.nan)

    return Evaluation(
        n=labels.size,
        positives=int(np.count_nonzero(labels)),
        roc_auc=interval(roc_auc),
        pr_auc=interval(pr_auc),
        at_thresholds=tuple(ThresholdResult(t, interval(precision_at(t)), interval(recall_at(t))) for t in thresholds),
        gating=gating_outcome(labels, scores, *thresholds),
        n_boot=n_boot,
        seed=seed,
        alpha=alpha,
    )


@dataclass(frozen=True, slots=True, eq=False)
class CalibrationBins:
    """A reliability table: per score bin, the mean score, the observed sybil rate and the row count.

    Bin ``i`` holds scores with ``i <= score * n_bins < i + 1`` (a score of 1
    goes to the last bin); empty bins have NaN means.
    """

    edges: FloatArray
    mean_predicted: FloatArray
    observed_rate: FloatArray
    count: npt.NDArray[np.int64]

    def to_dict(self) -> dict[str, Any]:
        return _json_ready_dict(
            {
                "edges": self.edges.tolist(),
                "mean_predicted": self.mean_predicted.tolist(),
                "observed_rate": self.observed_rate.tolist(),
                "count": self.count.tolist(),
            }
        )


def calibration_bins(y: npt.ArrayLike, score: npt.ArrayLike, n_bins: int = 10) -> CalibrationBins:
    """Equal-width bins over ``[0, 1]`` for a reliability plot; scores must lie in ``[0, 1]``."""
    if n_bins < 1:
        raise ConfigError(f"n_bins must be at least 1, got {n_bins}")
    labels, scores = _validated(y, score, both_classes=False)
    if np.any((scores < 0) | (scores > 1)):
        raise MetricError("calibration needs scores in [0, 1]")
    bins = np.minimum((scores * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    mean_predicted = _ratio(np.bincount(bins, weights=scores, minlength=n_bins), count.astype(np.float64))
    observed_rate = _ratio(np.bincount(bins, weights=labels, minlength=n_bins), count.astype(np.float64))
    return CalibrationBins(np.arange(n_bins + 1) / n_bins, mean_predicted, observed_rate, count)


def _validated(y: npt.ArrayLike, score: npt.ArrayLike, *, both_classes: bool) -> tuple[BoolArray, FloatArray]:
    """Labels as bool (from booleans or 0/1) and scores as finite float64, one per row."""
    raw = np.asarray(y)
    if raw.ndim != 1:
        raise MetricError(f"labels must be 1-D, got {raw.ndim}-D")
    if raw.dtype != np.bool_ and not np.isin(raw, (0, 1)).all():
        raise MetricError("labels must be booleans or 0/1")
    labels = raw.astype(np.bool_)
    scores = np.asarray(score, dtype=np.float64)
    if scores.shape != labels.shape:
        raise MetricError(f"need one score per label ({labels.size}), got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise MetricError("scores hold NaN or infinite values")
    if both_classes:
        positives = int(np.count_nonzero(labels))
        if positives in {0, labels.size}:
            raise MetricError(f"need both sybil and non-sybil rows, got {positives} of {labels.size} sybil")
    return labels, scores


def _json_ready_dict(value: dict[str, Any]) -> dict[str, Any]:
    ready: dict[str, Any] = _json_ready(value)
    return ready


def _json_ready(value: Any) -> Any:
    """``value`` with every NaN float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return value
