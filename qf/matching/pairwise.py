"""Pairwise-bounded quadratic funding (Buterin, "Pairwise coordination subsidies", 2019).

Standard QF pays every pair of donors of a project ``S_ip * S_jp`` (with
``S = sqrt(C)``): ``(sum_i S_ip)**2 - sum_i C_ip = sum_{i != j} S_ip S_jp``.
Pairwise matching damps each pair by how much the two donors already give
together across the whole round::

    k_ij = M / (M + sum_p S_ip S_jp)        subsidy_p = sum_{i != j} k_ij S_ip S_jp

so a pair that co-funds many projects earns little anywhere. ``M`` is in the
contribution unit; as ``M -> inf`` the result tends to standard QF and at
``M = 0`` every subsidy is zero. The default ``M = 0.01`` is the one
gitcoinco/qf-calculator uses (``fundingutils.pairwise``).

The overlap ``sum_p S_ip S_jp`` is the donor x donor matrix ``S @ S.T``. Round 9
has 8,131 donors, so the dense matrix alone is half a gigabyte while it is
mostly zeros; the fast path (:func:`pairwise_subsidies`) computes it one row
at a time inside a numba kernel walking the sparse ``S`` and never stores it.
:func:`pairwise_subsidies_reference` is the plain numpy formula (dense overlap,
one block of donor pairs per project) the kernel must equal. Subsidies are
unscaled: spend the pool with :func:`qf.matching.standard.scale_to_pool`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.matching.standard import FloatArray, as_contributions

try:  # scipy builds the sparse index faster; numpy's nonzero gives the same arrays.
    import scipy.sparse as _sparse
except ImportError:  # pragma: no cover - scipy is a declared dependency
    _sparse = None

IntArray = npt.NDArray[np.int64]

DEFAULT_M = 0.01


def pairwise_subsidies(contributions: npt.ArrayLike, m: float = DEFAULT_M) -> FloatArray:
    """Return the unscaled pairwise subsidy of every project (numba kernel over sparse ``sqrt(C)``)."""
    matrix = as_contributions(contributions)
    _check_m(m)
    n_projects = matrix.shape[1]
    donors = matrix[matrix.any(axis=1)]
    if donors.shape[0] < 2:
        return np.zeros(n_projects)
    row_ptr, row_proj, row_amount = compressed(donors)
    col_ptr, col_donor, col_amount = compressed(donors.T)
    return _pairwise_kernel(
        row_ptr, row_proj, np.sqrt(row_amount), col_ptr, col_donor, np.sqrt(col_amount), float(m), n_projects
    )


def pairwise_subsidies_reference(contributions: npt.ArrayLike, m: float = DEFAULT_M) -> FloatArray:
    """Plain numpy pairwise subsidies: dense ``S @ S.T``, then one block of donor pairs per project."""
    matrix = as_contributions(contributions)
    _check_m(m)
    sqrt = np.sqrt(matrix[matrix.any(axis=1)])
    overlap = sqrt @ sqrt.T
    with np.errstate(invalid="ignore"):
        k = m / (m + overlap)  # 0/0 only for pairs sharing no project, which never pay
    subsidies = np.zeros(matrix.shape[1])
    for p in range(matrix.shape[1]):
        givers = np.flatnonzero(sqrt[:, p])
        s = sqrt[givers, p]
        block = k[np.ix_(givers, givers)]
        subsidies[p] = s @ block @ s - float(np.sum(np.diag(block) * s * s))
    return subsidies


def compressed(matrix: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
    """CSR arrays ``(indptr, indices, data)`` of a dense matrix, indices sorted within each row."""
    if _sparse is not None:
        csr = _sparse.csr_matrix(matrix)
        csr.sort_indices()
        return (
            csr.indptr.astype(np.int64),
            csr.indices.astype(np.int64),
            csr.data.astype(np.float64),
        )
    rows, cols = np.nonzero(matrix)  # row-major order: sorted by row, then column
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=matrix.shape[0]), out=indptr[1:])
    return indptr, cols.astype(np.int64), matrix[rows, cols]


@numba.njit(cache=True)
def _pairwise_kernel(  # noqa: PLR0917 - numba kernels take plain positional arrays
    row_ptr: IntArray,
    row_proj: IntArray,
    row_sqrt: FloatArray,
    col_ptr: IntArray,
    col_donor: IntArray,
    col_sqrt: FloatArray,
    m: float,
    n_projects: int,
) -> FloatArray:  # pragma: no cover - compiled; equality with the reference is tested
    """Subsidies from sparse ``S`` (CSR by donor and by project), overlap row by row.

    For each donor ``i`` a scratch vector gathers row ``i`` of ``S @ S.T`` over
    the later donors ``j > i`` that share a project with ``i``; a second walk
    over the same (i, p, j) triples adds ``2 k_ij S_ip S_jp`` (both orders of
    the pair) and a third clears the scratch. Work is ``sum_p n_p**2 / 2``.
    """
    n_donors = row_ptr.size - 1
    overlap = np.zeros(n_donors)
    subsidies = np.zeros(n_projects)
    for i in range(n_donors):
        for a in range(row_ptr[i], row_ptr[i + 1]):
            p = row_proj[a]
            s_ip = row_sqrt[a]
            start = col_ptr[p] + np.searchsorted(col_donor[col_ptr[p] : col_ptr[p + 1]], i, side="right")
            for b in range(start, col_ptr[p + 1]):
                overlap[col_donor[b]] += s_ip * col_sqrt[b]
        for a in range(row_ptr[i], row_ptr[i + 1]):
            p = row_proj[a]
            s_ip = row_sqrt[a]
            start = col_ptr[p] + np.searchsorted(col_donor[col_ptr[p] : col_ptr[p + 1]], i, side="right")
            total = 0.0
            for b in range(start, col_ptr[p + 1]):
                total += m / (m + overlap[col_donor[b]]) * col_sqrt[b]
            subsidies[p] += 2.0 * s_ip * total
        for a in range(row_ptr[i], row_ptr[i + 1]):
            p = row_proj[a]
            start = col_ptr[p] + np.searchsorted(col_donor[col_ptr[p] : col_ptr[p + 1]], i, side="right")
            for b in range(start, col_ptr[p + 1]):
                overlap[col_donor[b]] = 0.0
    return subsidies


def _check_m(m: float) -> None:
    if not (math.isfinite(m) and m >= 0):
        raise ConfigError(f"pairwise M must be finite and non-negative, got {m}")
