"""Margin, score and per-feature contributions of additive models: tree ensembles and the linear baseline.

The kernels read the flat arrays of :class:`qf.train.export.TreeEnsemble`
and :class:`qf.train.export.LinearModel`; call them with the model's
``kernel_args()`` as keywords, e.g. ``score_batch(X, **ensemble.kernel_args())``.
``X`` is a 2-D float64 array, ``x`` one row; NaN marks a missing value.

A tree kernel reproduces the library the ensemble came from: the split
comparison (``<`` for XGBoost, ``<=`` otherwise), the float32 rounding of the
input before it is compared (XGBoost, scikit-learn), XGBoost's float32 running
sum over trees, LightGBM reading inputs within 1e-35 of zero as 0.0 and its
three ways of reading a missing value.

Contributions follow Saabas: walking a row's path, each split credits its
feature with the change in the node's expected value; the last entry is the
bias (root values plus ``base_margin``). Contributions and bias add up to the
margin. For the linear model they are ``coef * standardised x``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from qf.train.export import COMPARE_LESS, LIGHTGBM_ZERO_THRESHOLD, MISSING_AS_ZERO, MISSING_ZERO

FloatArray = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]


@numba.njit(cache=True)
def _child(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray,
    node: int,
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    missing_type: UInt8Array,
    comparison: int,
    float32_inputs: int,
    zero_threshold: float,
) -> int:  # pragma: no cover - compiled; parity with the libraries is tested
    """The child of split ``node`` that row ``x`` goes to."""
    v = x[feature[node]]
    if float32_inputs:
        v = np.float64(np.float32(v))
    if abs(v) <= zero_threshold:
        v = 0.0
    kind = missing_type[node]
    if math.isnan(v):
        if kind != MISSING_AS_ZERO:
            return int(left[node] if default_left[node] else right[node])
        v = 0.0
    if kind == MISSING_ZERO and -LIGHTGBM_ZERO_THRESHOLD <= v <= LIGHTGBM_ZERO_THRESHOLD:
        return int(left[node] if default_left[node] else right[node])
    go_left = v < threshold[node] if comparison == COMPARE_LESS else v <= threshold[node]
    return int(left[node] if go_left else right[node])


@numba.njit(cache=True)
def margin_row(  # noqa: PLR0917
    x: FloatArray,
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    missing_type: UInt8Array,
    value: FloatArray,
    roots: Int64Array,
    n_features: int,
    comparison: int,
    float32_inputs: int,
    float32_sums: int,
    zero_threshold: float,
    base_margin: float,
    logistic: int,
    mean: int,
) -> float:  # pragma: no cover - compiled; parity with the libraries is tested
    """Raw margin of one row: ``base_margin`` plus the sum (or mean) of its leaves."""
    total = 0.0 if mean else base_margin
    for root in roots:
        node = root
        while feature[node] >= 0:
            node = _child(
                x,
                node,
                feature,
                threshold,
                left,
                right,
                default_left,
                missing_type,
                comparison,
                float32_inputs,
                zero_threshold,
            )
        total += value[node]
        if float32_sums:  # float64 then float32 rounds a sum of two float32 values exactly as float32 would
            total = np.float64(np.float32(total))
    if mean:
        total = base_margin + total / roots.size
    return total


@numba.njit(cache=True)
def score_row(  # noqa: PLR0917
    x: FloatArray,
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    missing_type: UInt8Array,
    value: FloatArray,
    roots: Int64Array,
    n_features: int,
    comparison: int,
    float32_inputs: int,
    float32_sums: int,
    zero_threshold: float,
    base_margin: float,
    logistic: int,
    mean: int,
) -> float:  # pragma: no cover - compiled; parity with the libraries is tested
    """Final score of one row: the margin through the link (a probability for a logistic link)."""
    margin = margin_row(
        x, feature, threshold, left, right, default_left, missing_type, value, roots,
        n_features, comparison, float32_inputs, float32_sums, zero_threshold, base_margin, logistic, mean,
    )  # fmt: skip
    return 1.0 / (1.0 + math.exp(-margin)) if logistic else margin


@numba.njit(cache=True)
def margin_batch(  # noqa: PLR0917
    X: FloatArray,  # noqa: N803 - a design matrix is X
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    missing_type: UInt8Array,
    value: FloatArray,
    roots: Int64Array,
    n_features: int,
    comparison: int,
    float32_inputs: int,
    float32_sums: int,
    zero_threshold: float,
    base_margin: float,
    logistic: int,
    mean: int,
) -> FloatArray:  # pragma: no cover - compiled; parity with the libraries is tested
    """Raw margin of every row of ``X``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = margin_row(
            X[i], feature, threshold, left, right, default_left, missing_type, value, roots,
            n_features, comparison, float32_inputs, float32_sums, zero_threshold, base_margin, logistic, mean,
        )  # fmt: skip
    return out


@numba.njit(cache=True)
def score_batch(  # noqa: PLR0917
    X: FloatArray,  # noqa: N803 - a design matrix is X
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    missing_type: UInt8Array,
    value: FloatArray,
    roots: Int64Array,
    n_features: int,
    comparison: int,
    float32_inputs: int,
    float32_sums: int,
    zero_threshold: float,
    base_margin: float,
    logistic: int,
    mean: int,
) -> FloatArray:  # pragma: no cover - compiled; parity with the libraries is tested
    """Final score of every row of ``X``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = score_row(
            X[i], feature, threshold, left, right, default_left, missing_type, value, roots,
            n_features, comparison, float32_inputs, float32_sums, zero_threshold, base_margin, logistic, mean,
        )  # fmt: skip
    return out


@numba.njit(cache=True)
def contributions_row(  # noqa: PLR0917
    x: FloatArray,
    feature: Int32Array,
    threshold: FloatArray,
    left: Int32Array,
    right: Int32Array,
    default_left: UInt8Array,
    missing_type: UInt8Array,
    value: FloatArray,
    roots: Int64Array,
    n_features: int,
    comparison: int,
    float32_inputs: int,
    float32_sums: int,
    zero_threshold: float,
    base_margin: float,
    logistic: int,
    mean: int,
) -> FloatArray:  # pragma: no cover - compiled; parity with XGBoost's approx_contribs is tested
    """Saabas contributions of one row to its margin: ``n_features`` entries, then the bias."""
    out = np.zeros(n_features + 1)
    for root in roots:
        node = root
        out[n_features] += value[node]
        while feature[node] >= 0:
            child = _child(
                x,
                node,
                feature,
                threshold,
                left,
                right,
                default_left,
                missing_type,
                comparison,
                float32_inputs,
                zero_threshold,
            )
            out[feature[node]] += value[child] - value[node]
            node = child
    if mean:
        out /= roots.size
    out[n_features] += base_margin
    return out


@numba.njit(cache=True)
def linear_margin_row(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray, mean: FloatArray, scale: FloatArray, coef: FloatArray, intercept: float, logistic: int
) -> float:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """``intercept + sum(coef * (x - mean) / scale)`` for one row."""
    total = 0.0
    for j in range(coef.size):
        total += coef[j] * ((x[j] - mean[j]) / scale[j])
    return total + intercept


@numba.njit(cache=True)
def linear_score_row(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray, mean: FloatArray, scale: FloatArray, coef: FloatArray, intercept: float, logistic: int
) -> float:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """The linear margin of one row through the link."""
    margin = linear_margin_row(x, mean, scale, coef, intercept, logistic)
    return 1.0 / (1.0 + math.exp(-margin)) if logistic else margin


@numba.njit(cache=True)
def linear_margin_batch(  # noqa: PLR0917 - numba kernels take plain positional arrays
    X: FloatArray,  # noqa: N803 - a design matrix is X
    mean: FloatArray,
    scale: FloatArray,
    coef: FloatArray,
    intercept: float,
    logistic: int,
) -> FloatArray:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """The linear margin of every row of ``X``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = linear_margin_row(X[i], mean, scale, coef, intercept, logistic)
    return out


@numba.njit(cache=True)
def linear_score_batch(  # noqa: PLR0917 - numba kernels take plain positional arrays
    X: FloatArray,  # noqa: N803 - a design matrix is X
    mean: FloatArray,
    scale: FloatArray,
    coef: FloatArray,
    intercept: float,
    logistic: int,
) -> FloatArray:  # pragma: no cover - compiled; parity with scikit-learn is tested
    """The linear score of every row of ``X``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = linear_score_row(X[i], mean, scale, coef, intercept, logistic)
    return out


@numba.njit(cache=True)
def linear_contributions_row(  # noqa: PLR0917 - numba kernels take plain positional arrays
    x: FloatArray, mean: FloatArray, scale: FloatArray, coef: FloatArray, intercept: float, logistic: int
) -> FloatArray:  # pragma: no cover - compiled; the sum is tested against the margin
    """``coef * standardised x`` per feature, then the intercept as the bias."""
    out = np.empty(coef.size + 1)
    for j in range(coef.size):
        out[j] = coef[j] * ((x[j] - mean[j]) / scale[j])
    out[coef.size] = intercept
    return out
