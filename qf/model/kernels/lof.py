"""Local Outlier Factor of new rows against the training points, with neighbourhoods that include every tie.

The kernels read :class:`qf.model.arrays.LofArrays`; call them with its
``kernel_args()`` as keywords. The rule is Breunig et al.'s (2000) definition,
which does not depend on how equal distances are ordered, so neither on the
order of the training rows::

    s(x, p)      squared euclidean distance, summed feature by feature in float64 (this exact order)
    s_k(x)       the k-th smallest s(x, p) over the training points, duplicates counted
    N(x)         every training point p with s(x, p) <= s_k(x): k points, or more when distances tie
    reach(x, p)  max(sqrt(s(x, p)), k_distance[p])
    lrd(x)       1 / (mean over N(x) of reach(x, p) + 1e-10)
    score_samples(x) = -mean over N(x) of lrd[p] / lrd(x)      decision_function(x) = score_samples(x) - offset

``k_distance`` and ``lrd`` of the training points follow the same rule among
the other training points (:func:`qf.train.export.lof_densities`). Where no
distance ties at a k-th neighbour, ``N(x)`` holds exactly ``k`` points and this
is scikit-learn's ``LocalOutlierFactor(novelty=True)`` to rounding; where
distances tie, scikit-learn keeps whichever tied points its search returns
first. Both sides decide ties on the same float64 sums, which is why the sum
order above is part of the contract (``qf.train.export`` reproduces it in numpy).

A row holding NaN or an infinity scores NaN (scikit-learn refuses such rows).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@numba.njit(cache=True)
def squared_distances(x: FloatArray, fit_x: FloatArray, out: FloatArray) -> None:  # pragma: no cover - compiled
    """``out[j] = s(x, fit_x[j])``, summed over the features in order (the contract's float64 arithmetic)."""
    for j in range(fit_x.shape[0]):
        squared = 0.0
        for f in range(fit_x.shape[1]):
            diff = x[f] - fit_x[j, f]
            squared += diff * diff
        out[j] = squared


@numba.njit(cache=True)
def kth_smallest(values: FloatArray, k: int) -> float:  # pragma: no cover - compiled
    """The ``k``-th smallest value, duplicates counted; ``inf`` when fewer than ``k`` values are below infinity."""
    best = np.full(k, np.inf)
    for value in values:
        if value < best[k - 1]:  # an equal value would not change the k-th smallest; NaN is never below
            slot = k - 1
            while slot > 0 and best[slot - 1] > value:
                best[slot] = best[slot - 1]
                slot -= 1
            best[slot] = value
    return float(best[k - 1])


@numba.njit(cache=True)
def score_samples_row(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray, fit_x: FloatArray, k_distance: FloatArray, lrd: FloatArray, n_neighbors: int, offset: float
) -> float:  # pragma: no cover - compiled; tested against scikit-learn and a loop reference
    """``score_samples`` of one new row: the opposite of its LOF (lower is more abnormal)."""
    squared = np.empty(fit_x.shape[0])
    squared_distances(x, fit_x, squared)
    radius = kth_smallest(squared, n_neighbors)
    if not radius < np.inf:  # NaN or infinity in x
        return np.nan
    reach = 0.0
    density = 0.0
    members = 0
    for j in range(fit_x.shape[0]):
        if squared[j] <= radius:
            reach += max(math.sqrt(squared[j]), k_distance[j])
            density += lrd[j]
            members += 1
    lrd_x = 1.0 / (reach / members + 1e-10)
    return -(density / members / lrd_x)


@numba.njit(cache=True)
def decision_function_row(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray, fit_x: FloatArray, k_distance: FloatArray, lrd: FloatArray, n_neighbors: int, offset: float
) -> float:  # pragma: no cover - compiled
    """``decision_function`` of one new row: negative for outliers."""
    return score_samples_row(x, fit_x, k_distance, lrd, n_neighbors, offset) - offset


@numba.njit(cache=True)
def score_samples_batch(  # noqa: PLR0917 - numba kernels take plain positional arrays
    X: FloatArray,  # noqa: N803 - a design matrix is X
    fit_x: FloatArray,
    k_distance: FloatArray,
    lrd: FloatArray,
    n_neighbors: int,
    offset: float,
) -> FloatArray:  # pragma: no cover - compiled
    """``score_samples`` of every row of ``X``, each exactly :func:`score_samples_row`."""
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
) -> FloatArray:  # pragma: no cover - compiled
    """``decision_function`` of every row of ``X``."""
    return score_samples_batch(X, fit_x, k_distance, lrd, n_neighbors, offset) - offset
