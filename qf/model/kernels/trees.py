"""Margin, score and per-feature contributions of additive models: tree ensembles and the linear baseline.

The kernels read the flat arrays of :class:`qf.model.arrays.TreeEnsemble`
and :class:`qf.model.arrays.LinearModel`; call them with the model's
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

from qf.model.arrays import COMPARE_LESS, LIGHTGBM_ZERO_THRESHOLD, MISSING_AS_ZERO, MISSING_ZERO

FloatArray = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]


@numba.njit(cache=True, inline="always")
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
def _margin_row_exact(  # noqa: PLR0917
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
    """Raw margin of one row, walking each tree to its leaf in turn (any row, NaN included)."""
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
    """Raw margin of one row: ``base_margin`` plus the sum (or mean) of its leaves.

    A NaN-free row walks all trees one level at a time (independent walks the
    CPU overlaps); a row with a NaN takes the exact per-tree walk.
    """
    prepared = np.empty(x.size)
    if not _prepared_row(x, prepared, float32_inputs, zero_threshold):
        return _margin_row_exact(
            x, feature, threshold, left, right, default_left, missing_type, value, roots,
            n_features, comparison, float32_inputs, float32_sums, zero_threshold, base_margin, logistic, mean,
        )  # fmt: skip
    nodes = roots.copy()
    active = True
    while active:
        active = False
        for t in range(nodes.size):
            n = nodes[t]
            f = feature[n]
            if f >= 0:
                v = prepared[f]
                if missing_type[n] == MISSING_ZERO and -LIGHTGBM_ZERO_THRESHOLD <= v <= LIGHTGBM_ZERO_THRESHOLD:
                    nodes[t] = left[n] if default_left[n] else right[n]
                else:
                    go_left = v < threshold[n] if comparison == COMPARE_LESS else v <= threshold[n]
                    nodes[t] = left[n] if go_left else right[n]
                active = True
    total = 0.0 if mean else base_margin
    for t in range(nodes.size):
        total += value[nodes[t]]
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


BLOCK_ROWS = 64


@numba.njit(cache=True)
def _needs_exact_path(missing_type: UInt8Array) -> bool:  # pragma: no cover - compiled
    """True if some split treats zero as missing (LightGBM ``zero_as_missing``): no fast path then."""
    for kind in missing_type:  # noqa: SIM110 - a plain loop compiles in numba; any() over a generator may not
        if kind == MISSING_ZERO:
            return True
    return False


@numba.njit(cache=True)
def _prepared_row(
    x: FloatArray, out: FloatArray, float32_inputs: int, zero_threshold: float
) -> bool:  # pragma: no cover - compiled
    """Write the row as the splits compare it (float32-rounded, tiny values zeroed); False if it holds a NaN."""
    for f in range(x.size):
        v = x[f]
        if math.isnan(v):
            return False
        if float32_inputs:
            v = np.float64(np.float32(v))
        if abs(v) <= zero_threshold:
            v = 0.0
        out[f] = v
    return True


@numba.njit(cache=True)
def _leaves_block(  # noqa: PLR0917
    xb: FloatArray, nb: int, tree: int, feature: Int32Array, threshold: FloatArray, left: Int32Array,
    right: Int32Array, roots: Int64Array, comparison: int, nodes: Int64Array,
) -> None:  # pragma: no cover - compiled; parity with the libraries is tested
    """Leaf of tree ``tree`` for each of ``nb`` prepared, NaN-free rows, advancing all rows one level at a time.

    The rows' walks are independent, so the CPU overlaps their memory loads
    instead of waiting on one dependent chain: the reason this is several times
    faster than walking one row to its leaf before starting the next.
    """
    root = roots[tree]
    for j in range(nb):
        nodes[j] = root
    active = True
    while active:
        active = False
        for j in range(nb):
            n = nodes[j]
            f = feature[n]
            if f >= 0:
                v = xb[j, f]
                go_right = v >= threshold[n] if comparison == COMPARE_LESS else v > threshold[n]
                # Arithmetic select, not a branch: which way a row goes is unpredictable.
                nodes[j] = left[n] + go_right * (right[n] - left[n])
                active = True


@numba.njit(cache=True)
def _margin_block(  # noqa: PLR0917
    X: FloatArray,  # noqa: N803
    start: int, stop: int, out: FloatArray, feature: Int32Array, threshold: FloatArray, left: Int32Array,
    right: Int32Array, default_left: UInt8Array, missing_type: UInt8Array, value: FloatArray, roots: Int64Array,
    n_features: int, comparison: int, float32_inputs: int, float32_sums: int, zero_threshold: float,
    base_margin: float, logistic: int, mean: int, exact_only: bool,
) -> None:  # pragma: no cover - compiled; parity with the libraries is tested
    """Margins of rows ``start:stop``: the interleaved fast path for NaN-free rows, the exact walk for the rest."""
    xb = np.empty((stop - start, X.shape[1]))
    fast = np.empty(stop - start, dtype=np.int64)
    nb = 0
    for i in range(start, stop):
        if not exact_only and _prepared_row(X[i], xb[nb], float32_inputs, zero_threshold):
            fast[nb] = i
            nb += 1
        else:
            out[i] = _margin_row_exact(
                X[i], feature, threshold, left, right, default_left, missing_type, value, roots,
                n_features, comparison, float32_inputs, float32_sums, zero_threshold, base_margin, logistic, mean,
            )  # fmt: skip
    if nb == 0:
        return
    nodes = np.empty(nb, dtype=np.int64)
    totals = np.zeros(nb) if mean else np.full(nb, base_margin)
    for tree in range(roots.size):
        _leaves_block(xb, nb, tree, feature, threshold, left, right, roots, comparison, nodes)
        for j in range(nb):
            totals[j] += value[nodes[j]]
            if float32_sums:
                totals[j] = np.float64(np.float32(totals[j]))
    for j in range(nb):
        out[fast[j]] = base_margin + totals[j] / roots.size if mean else totals[j]


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
    """Raw margin of every row of ``X``, in blocks of :data:`BLOCK_ROWS` rows walked together."""
    out = np.empty(X.shape[0])
    exact_only = _needs_exact_path(missing_type)
    for start in range(0, X.shape[0], BLOCK_ROWS):
        _margin_block(
            X, start, min(start + BLOCK_ROWS, X.shape[0]), out, feature, threshold, left, right, default_left,
            missing_type, value, roots, n_features, comparison, float32_inputs, float32_sums, zero_threshold,
            base_margin, logistic, mean, exact_only,
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
    out = margin_batch(
        X, feature, threshold, left, right, default_left, missing_type, value, roots,
        n_features, comparison, float32_inputs, float32_sums, zero_threshold, base_margin, logistic, mean,
    )  # fmt: skip
    if logistic:
        for i in range(out.size):
            out[i] = 1.0 / (1.0 + math.exp(-out[i]))
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
