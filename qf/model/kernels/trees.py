"""Margin, score and per-feature contributions of additive models: tree ensembles and the linear baseline.

The kernels read the flat arrays of :class:`qf.model.arrays.TreeEnsemble`
and :class:`qf.model.arrays.LinearModel`; call them with the row(s) and the
model's ``kernel_args()``, e.g. ``score_batch(X, ensemble.kernel_args())``.
``X`` is a 2-D float64 array, ``x`` one row; NaN marks a missing value.

The model argument is a :class:`~qf.model.arrays.TreeKernelArgs` (or
:class:`~qf.model.arrays.LinearKernelArgs`) or the plain tuple of its fields.
The hot path passes the plain tuple: numba's dispatcher types a plain tuple in
C but a named one in Python, about 1 us more per call (measured); each entry
point rebuilds the named tuple inside compiled code, where it costs nothing.

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

from qf_sentinel.qf.model.arrays import (
    COMPARE_LESS,
    LIGHTGBM_ZERO_THRESHOLD,
    MISSING_AS_ZERO,
    MISSING_ZERO,
    KernelArg,
    LinearKernelArgs,
    TreeKernelArgs,
)

FloatArray = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]
# A model argument: the named tuple, or the plain tuple of its fields (the hot path's, see above).
TreeArgs = TreeKernelArgs | tuple[KernelArg, ...]
LinearArgs = LinearKernelArgs | tuple[KernelArg, ...]


@numba.njit(cache=True, inline="always")
def _child(x: FloatArray, node: int, m: TreeKernelArgs) -> int:  # pragma: no cover - compiled; parity is tested
    """The child of split ``node`` that row ``x`` goes to."""
    v = x[m.feature[node]]
    if m.float32_inputs:
        v = np.float64(np.float32(v))
    if abs(v) <= m.zero_threshold:
        v = 0.0
    kind = m.missing_type[node]
    if math.isnan(v):
        if kind != MISSING_AS_ZERO:
            return int(m.left[node] if m.default_left[node] else m.right[node])
        v = 0.0
    if kind == MISSING_ZERO and -LIGHTGBM_ZERO_THRESHOLD <= v <= LIGHTGBM_ZERO_THRESHOLD:
        return int(m.left[node] if m.default_left[node] else m.right[node])
    go_left = v < m.threshold[node] if m.comparison == COMPARE_LESS else v <= m.threshold[node]
    return int(m.left[node] if go_left else m.right[node])


@numba.njit(cache=True)
def _total(leaves_sum: float, m: TreeKernelArgs) -> float:  # pragma: no cover - compiled
    """The margin from the running total over trees: ``base_margin`` was its start for a sum, added here for a mean."""
    return m.base_margin + leaves_sum / m.roots.size if m.mean else leaves_sum


@numba.njit(cache=True)
def _margin_row_exact(x: FloatArray, m: TreeKernelArgs) -> float:  # pragma: no cover - compiled; parity is tested
    """Raw margin of one row, walking each tree to its leaf in turn (any row, NaN included)."""
    total = 0.0 if m.mean else m.base_margin
    for root in m.roots:
        node = root
        while m.feature[node] >= 0:
            node = _child(x, node, m)
        total += m.value[node]
        if m.float32_sums:  # float64 then float32 rounds a sum of two float32 values exactly as float32 would
            total = np.float64(np.float32(total))
    return _total(total, m)


@numba.njit(cache=True)
def margin_row(x: FloatArray, model: TreeArgs) -> float:  # pragma: no cover - compiled; parity is tested
    """Raw margin of one row: ``base_margin`` plus the sum (or mean) of its leaves.

    A NaN-free row walks all trees one level at a time (independent walks the
    CPU overlaps); a row with a NaN takes the exact per-tree walk.
    """
    m = TreeKernelArgs(*model)
    prepared = np.empty(x.size)
    if not _prepared_row(x, prepared, m.float32_inputs, m.zero_threshold):
        return _margin_row_exact(x, m)
    nodes = m.roots.copy()
    active = True
    while active:
        active = False
        for t in range(nodes.size):
            n = nodes[t]
            f = m.feature[n]
            if f >= 0:
                v = prepared[f]
                if m.missing_type[n] == MISSING_ZERO and -LIGHTGBM_ZERO_THRESHOLD <= v <= LIGHTGBM_ZERO_THRESHOLD:
                    nodes[t] = m.left[n] if m.default_left[n] else m.right[n]
                else:
                    go_left = v < m.threshold[n] if m.comparison == COMPARE_LESS else v <= m.threshold[n]
                    nodes[t] = m.left[n] if go_left else m.right[n]
                active = True
    total = 0.0 if m.mean else m.base_margin
    for t in range(nodes.size):
        total += m.value[nodes[t]]
        if m.float32_sums:  # float64 then float32 rounds a sum of two float32 values exactly as float32 would
            total = np.float64(np.float32(total))
    return _total(total, m)


@numba.njit(cache=True)
def score_row(x: FloatArray, model: TreeArgs) -> float:  # pragma: no cover - compiled; parity is tested
    """Final score of one row: the margin through the link (a probability for a logistic link)."""
    margin = margin_row(x, model)
    return 1.0 / (1.0 + math.exp(-margin)) if TreeKernelArgs(*model).logistic else margin


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
def _leaves_block(
    xb: FloatArray, nb: int, tree: int, m: TreeKernelArgs, nodes: Int64Array
) -> None:  # pragma: no cover - compiled; parity with the libraries is tested
    """Leaf of tree ``tree`` for each of ``nb`` prepared, NaN-free rows, advancing all rows one level at a time.

    The rows' walks are independent, so the CPU overlaps their memory loads
    instead of waiting on one dependent chain: the reason this is several times
    faster than walking one row to its leaf before starting the next.
    """
    feature, threshold, left, right = m.feature, m.threshold, m.left, m.right
    root = m.roots[tree]
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
                go_right = v >= threshold[n] if m.comparison == COMPARE_LESS else v > threshold[n]
                # Arithmetic select, not a branch: which way a row goes is unpredictable.
                nodes[j] = left[n] + go_right * (right[n] - left[n])
                active = True


@numba.njit(cache=True)
def _margin_block(  # noqa: PLR0917 - a block's bounds, its output and the model
    X: FloatArray,  # noqa: N803 - a design matrix is X
    start: int,
    stop: int,
    out: FloatArray,
    m: TreeKernelArgs,
    exact_only: bool,
) -> None:  # pragma: no cover - compiled; parity with the libraries is tested
    """Margins of rows ``start:stop``: the interleaved fast path for NaN-free rows, the exact walk for the rest."""
    xb = np.empty((stop - start, X.shape[1]))
    fast = np.empty(stop - start, dtype=np.int64)
    nb = 0
    for i in range(start, stop):
        if not exact_only and _prepared_row(X[i], xb[nb], m.float32_inputs, m.zero_threshold):
            fast[nb] = i
            nb += 1
        else:
            out[i] = _margin_row_exact(X[i], m)
    if nb == 0:
        return
    nodes = np.empty(nb, dtype=np.int64)
    totals = np.zeros(nb) if m.mean else np.full(nb, m.base_margin)
    for tree in range(m.roots.size):
        _leaves_block(xb, nb, tree, m, nodes)
        for j in range(nb):
            totals[j] += m.value[nodes[j]]
            if m.float32_sums:
                totals[j] = np.float64(np.float32(totals[j]))
    for j in range(nb):
        out[fast[j]] = _total(totals[j], m)


@numba.njit(cache=True)
def margin_batch(X: FloatArray, model: TreeArgs) -> FloatArray:  # noqa: N803 # pragma: no cover - compiled
    """Raw margin of every row of ``X``, in blocks of :data:`BLOCK_ROWS` rows walked together."""
    m = TreeKernelArgs(*model)
    out = np.empty(X.shape[0])
    exact_only = _needs_exact_path(m.missing_type)
    for start in range(0, X.shape[0], BLOCK_ROWS):
        _margin_block(X, start, min(start + BLOCK_ROWS, X.shape[0]), out, m, exact_only)
    return out


@numba.njit(cache=True)
def score_batch(X: FloatArray, model: TreeArgs) -> FloatArray:  # noqa: N803 # pragma: no cover - compiled
    """Final score of every row of ``X``."""
    out = margin_batch(X, model)
    if TreeKernelArgs(*model).logistic:
        for i in range(out.size):
            out[i] = 1.0 / (1.0 + math.exp(-out[i]))
    return out


@numba.njit(cache=True)
def contributions_row(x: FloatArray, model: TreeArgs) -> FloatArray:  # pragma: no cover - compiled
    """Saabas contributions of one row to its margin: ``n_features`` entries, then the bias.

    Parity with XGBoost's ``approx_contribs`` is tested.
    """
    m = TreeKernelArgs(*model)
    out = np.zeros(m.n_features + 1)
    for root in m.roots:
        node = root
        out[m.n_features] += m.value[node]
        while m.feature[node] >= 0:
            child = _child(x, node, m)
            out[m.feature[node]] += m.value[child] - m.value[node]
            node = child
    if m.mean:
        out /= m.roots.size
    out[m.n_features] += m.base_margin
    return out


@numba.njit(cache=True)
def linear_margin_row(x: FloatArray, model: LinearArgs) -> float:  # pragma: no cover - compiled
    """``intercept + sum(coef * (x - mean) / scale)`` for one row (parity with scikit-learn is tested)."""
    m = LinearKernelArgs(*model)
    total = 0.0
    for j in range(m.coef.size):
        total += m.coef[j] * ((x[j] - m.mean[j]) / m.scale[j])
    return total + m.intercept


@numba.njit(cache=True)
def linear_score_row(x: FloatArray, model: LinearArgs) -> float:  # pragma: no cover - compiled
    """The linear margin of one row through the link."""
    margin = linear_margin_row(x, model)
    return 1.0 / (1.0 + math.exp(-margin)) if LinearKernelArgs(*model).logistic else margin


@numba.njit(cache=True)
def linear_margin_batch(X: FloatArray, model: LinearArgs) -> FloatArray:  # noqa: N803 # pragma: no cover
    """The linear margin of every row of ``X``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = linear_margin_row(X[i], model)
    return out


@numba.njit(cache=True)
def linear_score_batch(X: FloatArray, model: LinearArgs) -> FloatArray:  # noqa: N803 # pragma: no cover
    """The linear score of every row of ``X``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = linear_score_row(X[i], model)
    return out


@numba.njit(cache=True)
def linear_contributions_row(x: FloatArray, model: LinearArgs) -> FloatArray:  # pragma: no cover - compiled
    """``coef * standardised x`` per feature, then the intercept as the bias (they add up to the margin)."""
    m = LinearKernelArgs(*model)
    out = np.empty(m.coef.size + 1)
    for j in range(m.coef.size):
        out[j] = m.coef[j] * ((x[j] - m.mean[j]) / m.scale[j])
    out[m.coef.size] = m.intercept
    return out
