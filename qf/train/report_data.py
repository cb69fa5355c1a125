"""What a training report shows, as plain values: the held-out scores of every model on every split, and the rest.

``qf train`` fills a :class:`ReportData` (no model objects); :mod:`qf.train.plots`
draws from it and :mod:`qf.train.report` writes the page. Inconsistent input
raises :class:`qf.errors.DataError` here, at construction.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.train.evaluation import EvaluationDict
from qf_sentinel.qf.train.rules import Rule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]

#: The split whose pooled out-of-fold predictions feed the calibration plot.
KFOLD_SPLIT = "kfold"


@dataclass(frozen=True, eq=False)
class SplitScores:
    """Held-out predictions of one model on one split: labels (1 = sybil) and risk scores in ``[0, 1]``."""

    split: str
    model: str
    y: npt.NDArray[Any]
    score: npt.NDArray[Any]

    def __post_init__(self) -> None:
        raw = np.asarray(self.y)
        if raw.ndim != 1 or (raw.dtype != np.bool_ and not np.isin(raw, (0, 1)).all()):
            raise DataError(f"{self.model} on {self.split}: labels must be a 1-D array of 0/1")
        score = np.asarray(self.score, dtype=np.float64)
        if score.shape != raw.shape:
            raise DataError(f"{self.model} on {self.split}: {raw.size} labels but scores of shape {score.shape}")
        if not np.all((score >= 0) & (score <= 1)):  # False for NaN too
            raise DataError(f"{self.model} on {self.split}: scores must be finite and in [0, 1]")
        object.__setattr__(self, "y", raw.astype(np.int64))
        object.__setattr__(self, "score", score)

    @property
    def positives(self) -> int:
        return int(np.count_nonzero(self.y))

    @property
    def has_both_classes(self) -> bool:
        return 0 < self.positives < self.y.size


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything a report shows, as plain values; see :func:`write_report` for how each part is used.

    ``evaluations`` maps split -> model -> :meth:`Evaluation.to_dict` output;
    ``served_scores``/``served_labels`` are the served model's score and the
    pattern name of each donor; ``pca``, ``pca_labels`` and ``clusters`` hold
    one row per donor of the segment analysis.
    """

    version: str
    created_at: str
    served_model: str
    selection_criterion: str
    thresholds: tuple[float, float]
    data_summary: dict[str, object]
    evaluations: dict[str, dict[str, EvaluationDict]]
    scores: list[SplitScores]
    feature_importance: dict[str, dict[str, float]]
    served_scores: npt.NDArray[Any]
    served_labels: npt.NDArray[Any]
    pca: npt.NDArray[Any]
    pca_labels: npt.NDArray[Any]
    clusters: npt.NDArray[Any]
    cluster_silhouette: dict[int, float]
    anomaly: dict[str, object] = field(default_factory=dict)
    recommendation: dict[str, object] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        review, block = self.thresholds
        if not 0 <= review <= block <= 1:
            raise DataError(f"thresholds must satisfy 0 <= review <= block <= 1, got {self.thresholds}")
        served = np.asarray(self.served_scores, dtype=np.float64)
        served_labels = np.asarray(self.served_labels).astype(np.str_)
        if served.ndim != 1 or served_labels.shape != served.shape:
            raise DataError(f"need one label per served score ({served.shape}), got {served_labels.shape}")
        pca = np.asarray(self.pca, dtype=np.float64)
        if pca.size == 0:
            pca = pca.reshape(0, 2)
        pca_labels = np.asarray(self.pca_labels).astype(np.str_)
        clusters = np.asarray(self.clusters, dtype=np.int64)
        if pca.ndim != 2 or pca.shape[1] != 2:
            raise DataError(f"pca must have shape (n, 2), got {pca.shape}")
        if pca_labels.shape != (pca.shape[0],) or clusters.shape != (pca.shape[0],):
            raise DataError(
                f"need one label and one cluster per pca row ({pca.shape[0]}), got {pca_labels.shape}, {clusters.shape}"
            )
        for name, value in (
            ("served_scores", served),
            ("served_labels", served_labels),
            ("pca", pca),
            ("pca_labels", pca_labels),
            ("clusters", clusters),
        ):
            object.__setattr__(self, name, value)


def slugify(name: str) -> str:
    """A file-name-safe form of ``name``: lower-case ASCII letters, digits, ``_`` and ``-``, never empty."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return slug or "split"


# --- inputs --------------------------------------------------------------------


def model_order(data: ReportData) -> list[str]:
    """The served model first, then the others in the order they first appear."""
    seen = [data.served_model]
    for by_model in data.evaluations.values():
        seen.extend(by_model)
    seen.extend(run.model for run in data.scores)
    seen.extend(data.feature_importance)
    return list(dict.fromkeys(seen))


def scores_by_split(scores: Iterable[SplitScores]) -> dict[str, list[SplitScores]]:
    by_split: dict[str, list[SplitScores]] = {}
    for run in scores:
        by_split.setdefault(run.split, []).append(run)
    return by_split


def unique_slugs(names: Sequence[str]) -> dict[str, str]:
    """A distinct slug per name, in order: a name whose slug is taken gets ``-2``, ``-3``, ..."""
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = slug = slugify(name)
        suffix = 2
        while slug in taken:
            slug, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(slug)
        slugs[name] = slug
    return slugs


def at_threshold(evaluation: Mapping[str, Any], threshold: float) -> Mapping[str, Any] | None:
    for entry in evaluation.get("at_thresholds", ()):
        if math.isclose(float(entry["threshold"]), threshold):
            result: Mapping[str, Any] = entry
            return result
    return None


def auc(data: ReportData, run: SplitScores, key: Literal["roc_auc", "pr_auc"]) -> float:
    """The AUC the evaluation reported for this run, or computed here if it has none."""
    evaluation = data.evaluations.get(run.split, {}).get(run.model)
    entry = evaluation.get(key) if evaluation is not None else None
    point = entry.get("point") if isinstance(entry, Mapping) else None
    if point is not None:
        return float(point)
    metric = roc_auc_score if key == "roc_auc" else average_precision_score
    return float(metric(run.y, run.score))


def as_float(value: object) -> float | None:
    """``value`` as a float if it is a real number (not a bool) and not NaN."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    real = float(value)
    return None if math.isnan(real) else real


def number(value: object) -> str:
    """Integers as they are, other numbers to 3 decimals, missing or NaN as ``n/a``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    real = as_float(value)
    if real is not None:
        text = f"{real:.3f}"
        return "0.000" if text == "-0.000" else text
    return "n/a" if value is None or isinstance(value, numbers.Real) else str(value)
