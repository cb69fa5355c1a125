"""Local Outlier Factor of new rows against the training points, equal to scikit-learn's novelty scores.

The kernels read :class:`qf.train.export.LofArrays`; call them with its
``kernel_args()`` as keywords. A row's ``k`` nearest training points are
found by brute force (euclidean distance, summed feature by feature and then
square-rooted as scikit-learn's KD-tree does); equal distances keep the lower
training index, which is how scikit-learn's searches usually break ties too.
Then, as in ``LocalOutlierFactor.score_samples``::

    reach_j = max(d(x, p_j), k_distance[p_j])       lrd(x) = 1 / (mean_j reach_j + 1e-10)
    score_samples(x) = -mean_j lrd[p_j] / lrd(x)     decision_function(x) = score_samples(x) - offset

A row holding NaN scores NaN (scikit-learn refuses such rows).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@numba.njit(cache=True)
def score_samples_row(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray, fit_x: FloatArray, k_distance: FloatArray, lrd: FloatArray, n_neighbors: int, offset: float
) -> float:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``LocalOutlierFactor.score_samples`` of one new row: the opposite of its LOF (lower is more abnormal)."""
    k = n_neighbors
    best_squared = np.full(k, np.inf)
    best_index = np.full(k, -1, dtype=np.int64)
    for j in range(fit_x.shape[0]):
        squared = 0.0
        for f in range(fit_x.shape[1]):
            diff = x[f] - fit_x[j, f]
            squared += diff * diff
        if squared < best_squared[k - 1]:  # strict: an equal distance keeps the earlier point
            slot = k - 1
            while slot > 0 and best_squared[slot - 1] > squared:
                best_squared[slot] = best_squared[slot - 1]
                best_index[slot] = best_index[slot - 1]
                slot -= 1
            best_squared[slot] = squared
            best_index[slot] = j
    if best_index[k - 1] < 0:  # NaN in x: no distance compared below infinity
        return np.nan
    reach = 0.0
    for m in range(k):
        reach += max(math.sqrt(best_squared[m]), k_distance[best_index[m]])
    lrd_x = 1.0 / (reach / k + 1e-10)
    ratios = 0.0
    for m in range(k):
        ratios += lrd[best_index[m]] / lrd_x
    return -(ratios / k)


@numba.njit(cache=True)
def decision_function_row(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray, fit_x: FloatArray, k_distance: FloatArray, lrd: FloatArray, n_neighbors: int, offset: float
) -> float:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``LocalOutlierFactor.decision_function`` of one new row: negative for outliers."""
    return score_samples_row(x, fit_x, k_distance, lrd, n_neighbors, offset) - offset


@numba.njit(cache=True)
def score_samples_batch(  # noqa: PLR0917 - numba kernels take plain positional arrays
    X: FloatArray,  # noqa: N803 - a design matrix is X
    fit_x: FloatArray,
    k_distance: FloatArray,
    lrd: FloatArray,
    n_neighbors: int,
    offset: float,
) -> FloatArray:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``score_samples`` of every row of ``X``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = score_samples_row(X[i], fit_x, k_distance, lrd, n_neighbors, offset)
    return out


@numba.njit(cache=True)
def decision_function_batch(  # noqa: PLR0917 - numba kernels take plain positional arrays
    X: FloatArray,  # noqa: N803 - a design matrix is X
    fit_x: FloatArray,
    k_distance: FloatArray,
    lrd: FloatArray,
    n_neighbors: int,
    offset: float,
) -> FloatArray:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``decision_function`` of every row of ``X``."""
    return score_samples_batch(X, fit_x, k_distance, lrd, n_neighbors, offset) - offset
