"""Isolation-forest anomaly scores of new rows, equal to scikit-learn's ``score_samples`` and ``decision_function``.

The kernels read :class:`qf.model.arrays.IsolationForestArrays`; call them with
its ``kernel_args()`` as keywords. Each leaf already holds the path length
scikit-learn charges for it (depth plus ``c(n)`` for the training samples left
in the leaf), so a row's score is ``-2 ** -(sum of path lengths / (n_trees *
c(max_samples)))``. As in scikit-learn the row is rounded to float32 before it
is compared (``x <= threshold``) and NaN follows the branch recorded at fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]

_EULER_GAMMA = float(np.euler_gamma)


@numba.njit(cache=True)
def average_path_length(n_samples: float) -> float:  # pragma: no cover - compiled; parity is tested
    """``c(n)``: mean path length of an unsuccessful search in a binary search tree of ``n`` nodes."""
    if n_samples <= 1.0:
        return 0.0
    if n_samples == 2.0:
        return 1.0
    return 2.0 * (math.log(n_samples - 1.0) + _EULER_GAMMA) - 2.0 * (n_samples - 1.0) / n_samples


@numba.njit(cache=True)
def score_samples_row(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray,
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    path_length: FloatArray,
    roots: Int64Array,
    max_samples: int,
    offset: float,
) -> float:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``IsolationForest.score_samples`` of one row: the lower, the more abnormal."""
    depth = 0.0
    for root in roots:
        node = root
        while feature[node] >= 0:
            v = np.float64(np.float32(x[feature[node]]))
            if math.isnan(v):
                node = left[node] if default_left[node] else right[node]
            elif v <= threshold[node]:
                node = left[node]
            else:
                node = right[node]
        depth += path_length[node]
    denominator = roots.size * average_path_length(float(max_samples))
    # A single training sample gives 0/0; scikit-learn sets that ratio to 1.
    ratio = depth / denominator if denominator != 0.0 else 1.0
    return -float(2.0 ** (-ratio))


@numba.njit(cache=True)
def decision_function_row(  # noqa: PLR0917
    x: FloatArray,
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    path_length: FloatArray,
    roots: Int64Array,
    max_samples: int,
    offset: float,
) -> float:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``IsolationForest.decision_function`` of one row: negative for outliers."""
    return (
        score_samples_row(x, feature, threshold, left, right, default_left, path_length, roots, max_samples, offset)
        - offset
    )


@numba.njit(cache=True)
def score_samples_batch(  # noqa: PLR0917
    X: FloatArray,  # noqa: N803 - a design matrix is X
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    path_length: FloatArray,
    roots: Int64Array,
    max_samples: int,
    offset: float,
) -> FloatArray:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``score_samples`` of every row of ``X``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = score_samples_row(
            X[i], feature, threshold, left, right, default_left, path_length, roots, max_samples, offset
        )
    return out


@numba.njit(cache=True)
def decision_function_batch(  # noqa: PLR0917
    X: FloatArray,  # noqa: N803 - a design matrix is X
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    path_length: FloatArray,
    roots: Int64Array,
    max_samples: int,
    offset: float,
) -> FloatArray:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``decision_function`` of every row of ``X``."""
    out = score_samples_batch(X, feature, threshold, left, right, default_left, path_length, roots, max_samples, offset)
    return out - offset


def anomaly_scorer(kernel_args: dict[str, Any]) -> Callable[[FloatArray], FloatArray]:
    """``-score_samples`` of each row (higher = more anomalous) with an exported forest's ``kernel_args()``.

    Training computes ``coordination_anomaly`` with this very function, and so
    does the sidecar's feature snapshot: one kernel, one number.
    """

    def score(rows: FloatArray) -> FloatArray:
        return -np.asarray(score_samples_batch(np.ascontiguousarray(rows, dtype=np.float64), **kernel_args))

    return score
