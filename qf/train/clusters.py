"""Donor segments: k-means with k chosen by silhouette, nearest-centre assignment, 2-D PCA for plots.

Training clusters donors on their scaled behaviour features (the scaling is
the caller's: k-means distances are only meaningful on comparable units).
Only the centres leave training: :func:`assign_cluster` places a new donor
with plain numpy, so the scoring sidecar needs no scikit-learn model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from qf_sentinel.qf.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Silhouette is quadratic in the rows; above this many it is estimated on a seeded sample.
DEFAULT_SILHOUETTE_SAMPLE = 5_000


@dataclass(frozen=True, eq=False)
class ClusterModel:
    """The chosen k-means fit and the silhouette of every k that was tried."""

    k: int
    centers: FloatArray
    labels: IntArray
    silhouette: dict[int, float]
    inertia: float


def choose_kmeans(
    features_scaled: npt.ArrayLike,
    k_range: Iterable[int] = range(2, 9),
    seed: int = 0,
    sample_size: int = DEFAULT_SILHOUETTE_SAMPLE,
) -> ClusterModel:
    """Fit k-means for each k and keep the one with the highest silhouette (ties: smaller k).

    A k is skipped when the data cannot support it: silhouette needs
    ``2 <= k < n_rows`` and k-means cannot find more clusters than there are
    distinct rows.
    """
    features = _as_features(features_scaled)
    if sample_size < 2:
        raise ConfigError(f"silhouette sample size must be at least 2, got {sample_size}")
    n_rows = features.shape[0]
    n_distinct = np.unique(features, axis=0).shape[0]
    usable = sorted({k for k in k_range if 2 <= k <= min(n_rows - 1, n_distinct)})
    if not usable:
        raise DataError(f"no k in the range fits {n_rows} rows ({n_distinct} distinct)")

    silhouette: dict[int, float] = {}
    best: tuple[float, int, Any] | None = None
    for k in usable:
        fit = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(features)
        score = float(
            silhouette_score(
                features,
                fit.labels_,
                sample_size=sample_size if n_rows > sample_size else None,
                random_state=seed,
            )
        )
        silhouette[k] = score
        if best is None or score > best[0]:
            best = (score, k, fit)
    assert best is not None  # usable is not empty
    _, k, fit = best
    return ClusterModel(
        k=k,
        centers=np.asarray(fit.cluster_centers_, dtype=np.float64),
        labels=np.asarray(fit.labels_, dtype=np.int64),
        silhouette=silhouette,
        inertia=float(fit.inertia_),
    )


def assign_cluster(centers: npt.ArrayLike, x: npt.ArrayLike) -> IntArray:
    """Index of the nearest centre (Euclidean) for each row of ``x``; ties go to the lower index."""
    centres = np.asarray(centers, dtype=np.float64)
    rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if centres.ndim != 2 or rows.shape[1] != centres.shape[1]:
        raise DataError(f"rows have {rows.shape[1]} features, centres {centres.shape[-1]}")
    distances = ((rows[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    nearest: IntArray = np.argmin(distances, axis=1).astype(np.int64)
    return nearest


def pca_2d(features_scaled: npt.ArrayLike, seed: int = 0) -> tuple[FloatArray, FloatArray]:
    """``(coords [n, 2], explained_variance_ratio [2])`` for a scatter plot of the segments.

    With fewer than two features, or data without spread, the missing axes
    are zero and explain nothing, so plots keep one shape.
    """
    features = _as_features(features_scaled)
    coords = np.zeros((features.shape[0], 2))
    ratio = np.zeros(2)
    if not np.any(features.var(axis=0) > 0):
        return coords, ratio  # a ratio of zero variance is 0/0
    n_components = min(2, *features.shape)
    pca = PCA(n_components=n_components, random_state=seed)
    coords[:, :n_components] = pca.fit_transform(features)
    ratio[:n_components] = pca.explained_variance_ratio_
    return coords, ratio


def _as_features(values: npt.ArrayLike) -> FloatArray:
    features = np.asarray(values, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] == 0:
        raise DataError(f"features must be a non-empty 2-D array, got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise DataError("features hold NaN or infinite values")
    return features
