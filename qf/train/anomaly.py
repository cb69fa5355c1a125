"""Unsupervised anomaly models on the donor features: Isolation Forest, Local Outlier Factor, consensus.

They never see the labels: they answer "is this donor unlike the others",
which still works when attackers change tactics and the risk model has no
label for them. Labels only serve as a sanity check (AUC of the anomaly score).

Both models see the same view of a donor: :func:`qf.train.features.signed_log1p`
of the feature vector, standardised with the training mean and scale (kept as
arrays, so the scorer applies exactly the same transform). A donor is flagged by
a model when its ``decision_function`` is below 0 (scikit-learn's own offset),
and by the consensus when both models flag it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qf.train.features import signed_log1p

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Scaler:
    mean: FloatArray
    scale: FloatArray

    @classmethod
    def fit(cls, x: FloatArray) -> Scaler:
        z = signed_log1p(x)
        scale = z.std(axis=0)
        scale[scale == 0] = 1.0
        return cls(mean=z.mean(axis=0), scale=scale)

    def transform(self, x: npt.ArrayLike) -> FloatArray:
        return (signed_log1p(x) - self.mean) / self.scale


@dataclass(frozen=True, slots=True)
class AnomalyModels:
    scaler: Scaler
    isolation_forest: Any
    lof: Any


def fit(x: FloatArray, seed: int, *, n_neighbors: int = 20) -> AnomalyModels:
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 - heavy import only when training
    from sklearn.neighbors import LocalOutlierFactor  # noqa: PLC0415

    scaler = Scaler.fit(x)
    z = scaler.transform(x)
    forest = IsolationForest(n_estimators=200, random_state=seed, n_jobs=1).fit(z)
    lof = LocalOutlierFactor(n_neighbors=min(n_neighbors, max(1, len(z) - 1)), novelty=True).fit(z)
    return AnomalyModels(scaler=scaler, isolation_forest=forest, lof=lof)


def scores(models: AnomalyModels, x: npt.ArrayLike) -> dict[str, FloatArray]:
    """Anomaly scores (higher = more anomalous) and flags per model, plus the consensus flag."""
    z = models.scaler.transform(x)
    forest = models.isolation_forest.decision_function(z)
    lof = models.lof.decision_function(z)
    return {
        "isolation_forest": -models.isolation_forest.score_samples(z),
        "lof": -models.lof.score_samples(z),
        "isolation_forest_flag": (forest < 0).astype(np.float64),
        "lof_flag": (lof < 0).astype(np.float64),
        "consensus_flag": ((forest < 0) & (lof < 0)).astype(np.float64),
    }


def sanity_check(result: dict[str, FloatArray], y: npt.NDArray[np.bool_]) -> dict[str, float | int | None]:
    """How well each anomaly score separates the labelled sybils (not a training signal)."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    both = 0 < y.sum() < len(y)
    flagged = result["consensus_flag"] > 0
    return {
        "isolation_forest_auc": float(roc_auc_score(y, result["isolation_forest"])) if both else None,
        "lof_auc": float(roc_auc_score(y, result["lof"])) if both else None,
        "consensus_flagged": int(flagged.sum()),
        "consensus_precision": float(y[flagged].mean()) if flagged.any() else None,
        "consensus_recall": float(flagged[y].mean()) if y.any() else None,
    }
