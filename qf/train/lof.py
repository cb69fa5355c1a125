"""LOF neighbourhoods under the serving kernel's tie rule: what training needs to reproduce the kernel exactly.

:mod:`qf.model.kernels.lof` counts every fit point at or within the k-distance
(ties included); scikit-learn keeps exactly k, so its densities depend on the
order of tied points. These functions recompute the training densities under
the kernel's rule (``tests/train/test_lof_ties.py``), for
:func:`qf.train.export.from_lof` and :mod:`qf.train.anomaly`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.model.arrays import FloatArray, Int64Array

#: Bound on the rounding of scikit-learn's squared distances, as a fraction of the squared norms involved
#: (float64 sums are off by a few ulps of them; this allows millions). It only sets how many candidates
#: are recomputed exactly and which rows count as tie-free, never a distance.
_SEARCH_SLACK = 1e-9
_CANDIDATE_CELLS = 1 << 22  # candidate distances recomputed per chunk of rows (32 MiB of float64)


@dataclasses.dataclass(frozen=True, eq=False)
class LofNeighbourhoods:
    """The neighbourhood of each row under the tie rule of :mod:`qf.model.kernels.lof`, as CSR over the fit points.

    Row ``i`` holds the fit points ``indices[indptr[i]:indptr[i + 1]]`` (ascending)
    at squared distances ``squared[indptr[i]:indptr[i + 1]]``; ``radius[i]`` is
    its k-th smallest squared distance. ``tie_free[i]``: exactly k members and no
    other point within rounding of the k-th distance, so that any k-nearest
    search, scikit-learn's included, returns these very points.
    """

    radius: FloatArray
    indptr: Int64Array
    indices: Int64Array
    squared: FloatArray
    tie_free: npt.NDArray[np.bool_]

    @property
    def sizes(self) -> Int64Array:
        return np.diff(self.indptr)

    def mean(self, values: FloatArray) -> FloatArray:
        """The mean of ``values`` (one per member, aligned with ``indices``) over each row's members."""
        if self.radius.size == 0:
            return np.zeros(0)
        return np.add.reduceat(values, self.indptr[:-1]) / self.sizes

    def all(self, values: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Whether ``values`` (one per member) hold for every member of each row."""
        if self.radius.size == 0:
            return np.zeros(0, dtype=bool)
        return np.logical_and.reduceat(values, self.indptr[:-1])


def lof_neighbourhoods(fit_x: FloatArray, n_neighbors: int, queries: FloatArray | None = None) -> LofNeighbourhoods:
    """Neighbourhoods of ``queries`` among ``fit_x``; with ``queries=None``, of each fit point among the others.

    scikit-learn's k-nearest search proposes candidates (its distances round
    differently and it breaks ties its own way); their squared distances are
    recomputed in the kernel's order, and a row's candidates are widened until
    every point that could lie within its k-th distance is among them. Cost:
    scikit-learn's search plus O(rows x candidates x features) numpy.
    """
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415 - training-only dependency

    fit_x = np.ascontiguousarray(fit_x, dtype=np.float64)
    own = queries is None
    rows_x = fit_x if queries is None else np.ascontiguousarray(queries, dtype=np.float64)
    n, k = fit_x.shape[0], int(n_neighbors)
    if fit_x.ndim != 2 or rows_x.ndim != 2 or rows_x.shape[1] != fit_x.shape[1]:
        raise ValueError(f"queries of shape {rows_x.shape} do not fit training points of shape {fit_x.shape}")
    if not 1 <= k <= n - own:
        raise ValueError(f"n_neighbors must be in [1, {n - own}], got {k}")
    if rows_x.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return LofNeighbourhoods(np.zeros(0), np.zeros(1, dtype=np.int64), empty, np.zeros(0), np.zeros(0, dtype=bool))
    centre = fit_x.mean(axis=0)  # distances do not move with it, and scikit-learn's rounding shrinks with the norms
    fit_c, rows_c = fit_x - centre, rows_x - centre
    slack = _SEARCH_SLACK * (np.einsum("ij,ij->i", rows_c, rows_c) + np.einsum("ij,ij->i", fit_c, fit_c).max())
    search = NearestNeighbors().fit(fit_c)

    radius = np.zeros(rows_x.shape[0])
    tie_free = np.zeros(rows_x.shape[0], dtype=bool)
    found: list[tuple[Int64Array, Int64Array, FloatArray]] = []
    pending = np.arange(rows_x.shape[0])
    width = min(n, 2 * k + own)
    while pending.size:
        widen = []
        step = max(1, _CANDIDATE_CELLS // width)
        for start in range(0, pending.size, step):
            rows = pending[start : start + step]
            approx, candidates = search.kneighbors(rows_c[rows], n_neighbors=width)
            squared = _squared_distances(rows_x[rows], fit_x, candidates)
            if own:
                squared[candidates == rows[:, None]] = np.inf
            kth = np.partition(squared, k - 1, axis=1)[:, k - 1]
            band = kth + 4.0 * slack[rows]  # a point this close to the k-th distance is a tie to scikit-learn
            # Points left out are at least approx[:, -1] away to scikit-learn, so at least that minus its rounding.
            done = np.full(rows.size, width == n) | (approx[:, -1] ** 2 - slack[rows] > band)
            member = squared <= kth[:, None]
            near = (squared > kth[:, None]) & (squared <= band[:, None])
            radius[rows[done]] = kth[done]
            tie_free[rows[done]] = (member.sum(axis=1) == k)[done] & ~near.any(axis=1)[done]
            at, col = np.nonzero(member & done[:, None])
            found.append((rows[at], candidates[at, col], squared[at, col]))
            widen.append(rows[~done])
        pending = np.concatenate(widen)
        width = min(n, 4 * width)

    owners = np.concatenate([f[0] for f in found])
    points = np.concatenate([f[1] for f in found]).astype(np.int64)
    squared_all = np.concatenate([f[2] for f in found])
    order = np.lexsort((points, owners))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(owners, minlength=rows_x.shape[0]))]).astype(np.int64)
    return LofNeighbourhoods(radius, indptr, points[order], squared_all[order], tie_free)


def lof_densities(fit_x: FloatArray, n_neighbors: int) -> tuple[FloatArray, FloatArray, LofNeighbourhoods]:
    """``k_distance`` and ``lrd`` of every training point among the other training points, and its neighbourhoods."""
    neighbourhoods = lof_neighbourhoods(fit_x, n_neighbors)
    k_distance = np.sqrt(neighbourhoods.radius)
    return k_distance, _lrd(k_distance, neighbourhoods), neighbourhoods


def lof_score_samples(k_distance: FloatArray, lrd: FloatArray, neighbourhoods: LofNeighbourhoods) -> FloatArray:
    """``score_samples`` of the rows of ``neighbourhoods``, given the training points' ``k_distance`` and ``lrd``.

    The numpy reference of :func:`qf.model.kernels.lof.score_samples_row` (the
    kernel scans every point; this reads the neighbourhoods found above).
    """
    lrd_rows = _lrd(k_distance, neighbourhoods)
    return -neighbourhoods.mean(lrd[neighbourhoods.indices] / np.repeat(lrd_rows, neighbourhoods.sizes))


def _lrd(k_distance: FloatArray, neighbourhoods: LofNeighbourhoods) -> FloatArray:
    reach = np.maximum(np.sqrt(neighbourhoods.squared), k_distance[neighbourhoods.indices])
    return 1.0 / (neighbourhoods.mean(reach) + 1e-10)


def _squared_distances(rows_x: FloatArray, fit_x: FloatArray, candidates: npt.NDArray[np.intp]) -> FloatArray:
    """``s(rows_x[i], fit_x[candidates[i, j]])`` summed feature by feature, in the kernel's order."""
    squared = np.zeros(candidates.shape)
    for f in range(fit_x.shape[1]):
        diff = rows_x[:, f, None] - fit_x[:, f][candidates]
        squared += diff * diff
    return squared
