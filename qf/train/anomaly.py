"""Unsupervised anomaly models on the donor features: Isolation Forest, Local Outlier Factor, consensus.

They never see the labels: they answer "is this donor unlike the others",
which still works when attackers change tactics and the risk model has no
label for them. Labels only serve as a sanity check (AUC of the anomaly score).

Both models see the same view of a donor: :func:`qf.model.features.signed_log1p`
of the feature vector, standardised with the training mean and scale (kept as
arrays, so the scorer applies exactly the same transform). A donor is flagged by
a model when its ``decision_function`` is below 0 (scikit-learn's own offset),
and by the consensus when both models flag it.

LOF is fitted on the *distinct* rows, with every point at the k-th distance in
a neighbourhood (:class:`DistinctLof`): real rounds hold thousands of donors
with the same feature row (one $1 donation to one project), and there
scikit-learn's LOF has a k-distance of 0, an lrd of 1e10 and scores that
depend on which of the tied rows its search returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.model.features import signed_log1p
from qf_sentinel.qf.train.lof import lof_densities, lof_neighbourhoods, lof_score_samples

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


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
class DistinctLof:
    """Local Outlier Factor of the distinct training rows, each tie at the k-th distance a neighbour.

    Breunig et al. (2000) define LOF for data without duplicates and point to
    a "k-distinct-distance" for data with them: duplicates make the k-distance
    0 and the density infinite (scikit-learn adds 1e-10: lrd 1e10). Fitting on
    ``np.unique`` rows is that idea taken one step further (the paper would
    still count the copies inside a neighbourhood; here they count once): a
    feature row shared by thousands of donors is one point, so LOF says how
    unusual a behaviour is among the distinct behaviours, not how many donors
    share it. A donor identical to a training row is scored with that row in
    its neighbourhood at distance 0, as scikit-learn scores training rows. The
    paper's k-distance neighbourhood also holds *every* point within the
    k-distance, which makes the scores independent of the order of tied points
    (and of the training rows, which ``np.unique`` sorts anyway).

    ``estimator`` is scikit-learn's ``LocalOutlierFactor(novelty=True)`` fitted
    on those rows (what :func:`qf.train.export.from_lof` exports);
    ``k_distance`` and ``lrd`` follow the tie rule and equal scikit-learn's
    where nothing ties. :meth:`score_samples` is the numpy reference of
    :mod:`qf.model.kernels.lof`.
    """

    estimator: Any
    k_distance: FloatArray
    lrd: FloatArray
    tie_free_points: BoolArray  # training points whose lrd is scikit-learn's (their neighbourhood has no tie)

    @classmethod
    def fit(cls, z: FloatArray, n_neighbors: int = 20) -> DistinctLof:
        from sklearn.neighbors import LocalOutlierFactor  # noqa: PLC0415 - heavy import only when training

        distinct = np.unique(np.asarray(z, dtype=np.float64), axis=0)
        if len(distinct) < 2:
            raise DataError(f"LOF needs at least two distinct donor feature rows, got {len(distinct)}")
        k = min(n_neighbors, len(distinct) - 1)
        estimator = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(distinct)
        k_distance, lrd, neighbourhoods = lof_densities(estimator._fit_X, k)
        return cls(estimator=estimator, k_distance=k_distance, lrd=lrd, tie_free_points=neighbourhoods.tie_free)

    @property
    def fit_x(self) -> FloatArray:
        return np.asarray(self.estimator._fit_X, dtype=np.float64)

    @property
    def n_neighbors(self) -> int:
        return int(self.estimator.n_neighbors_)

    @property
    def offset(self) -> float:
        return float(self.estimator.offset_)  # contamination="auto": -1.5, whatever the ties

    def score_samples(self, z: npt.ArrayLike) -> FloatArray:
        """The opposite of each row's LOF (lower is more abnormal), as the scorer's kernel computes it."""
        neighbourhoods = lof_neighbourhoods(self.fit_x, self.n_neighbors, np.asarray(z, dtype=np.float64))
        return lof_score_samples(self.k_distance, self.lrd, neighbourhoods)

    def decision_function(self, z: npt.ArrayLike) -> FloatArray:
        """Negative for outliers."""
        return self.score_samples(z) - self.offset

    def tie_free(self, z: npt.ArrayLike) -> BoolArray:
        """Rows whose scikit-learn score does not depend on tie order: there it must equal :meth:`score_samples`."""
        neighbourhoods = lof_neighbourhoods(self.fit_x, self.n_neighbors, np.asarray(z, dtype=np.float64))
        points = neighbourhoods.all(self.tie_free_points[neighbourhoods.indices])
        return np.asarray(neighbourhoods.tie_free & points, dtype=bool)


@dataclass(frozen=True, slots=True)
class AnomalyModels:
    scaler: Scaler
    isolation_forest: Any
    lof: DistinctLof


def fit(x: FloatArray, seed: int, *, n_neighbors: int = 20) -> AnomalyModels:
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 - heavy import only when training

    scaler = Scaler.fit(x)
    z = scaler.transform(x)
    forest = IsolationForest(n_estimators=200, random_state=seed, n_jobs=1).fit(z)
    return AnomalyModels(scaler=scaler, isolation_forest=forest, lof=DistinctLof.fit(z, n_neighbors))


def scores(models: AnomalyModels, x: npt.ArrayLike) -> dict[str, FloatArray]:
    """Anomaly scores (higher = more anomalous) and flags per model, plus the consensus flag."""
    z = models.scaler.transform(x)
    forest = models.isolation_forest.decision_function(z)
    neighbours = models.lof.score_samples(z)
    lof = neighbours - models.lof.offset
    return {
        "isolation_forest": -models.isolation_forest.score_samples(z),
        "lof": -neighbours,
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
