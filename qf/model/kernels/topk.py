"""Top-k project recommendation for one donor, compiled for the scoring hot path.

The numba twin of :func:`qf.train.recommend.recommend`, reading the arrays of
:class:`qf.model.recommender.RecommenderArrays`: sum the similarity rows of the
donor's funded projects, keep the candidates of one pool the donor has not
funded, rank positive scores first and fill with popularity; a donor with no
positive score at all is ranked by popularity alone. Both sides add the rows
in ascending project order and sort stably, so they return the same projects,
bit-equal scores and the same tie-break (higher score, then lower index).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@numba.njit(cache=True)
def recommend_topk(  # noqa: PLR0917 - numba kernels take plain positional arrays
    similarity: npt.NDArray[np.floating[Any]],
    popularity: npt.NDArray[np.floating[Any]],
    project_pool: IntArray,
    history_idx: IntArray,
    pool: int,
    k: int,
) -> tuple[IntArray, FloatArray, bool]:  # pragma: no cover - compiled; equality with the reference is tested
    """``(projects, scores, used_fallback)`` for a donor who funded ``history_idx``.

    ``used_fallback`` is True when no candidate has a positive CF score, so the
    list is pure popularity (scores are popularities); otherwise CF entries
    carry their summed similarity and popularity fill entries score 0.0.
    History indices outside ``[0, n_projects)`` are ignored rather than read
    out of bounds: the kernel runs without bounds checks on server input.
    """
    funded, scores = _history_scores(similarity, history_idx)
    positive, others = _candidates(funded, scores, project_pool, pool)
    take = max(0, min(k, positive.size + others.size))
    out_idx = np.empty(take, dtype=np.int64)
    out_score = np.zeros(take)

    top = positive[np.argsort(-scores[positive], kind="mergesort")][:take]
    out_idx[: top.size] = top
    out_score[: top.size] = scores[top]
    if top.size < take:  # ``others`` holds every candidate when none is positive
        pop = popularity.astype(np.float64)
        rest = others[np.argsort(-pop[others], kind="mergesort")][: take - top.size]
        out_idx[top.size :] = rest
        if positive.size == 0:
            out_score[:] = pop[rest]
    return out_idx, out_score, positive.size == 0


@numba.njit(cache=True)
def _history_scores(
    similarity: npt.NDArray[np.floating[Any]], history_idx: IntArray
) -> tuple[npt.NDArray[np.bool_], FloatArray]:  # pragma: no cover - compiled
    """Funded mask and summed similarity rows, added in ascending project order like the reference."""
    n_projects = similarity.shape[0]
    funded = np.zeros(n_projects, dtype=np.bool_)
    for h in history_idx:
        if 0 <= h < n_projects:
            funded[h] = True
    scores = np.zeros(n_projects)
    for h in range(n_projects):
        if funded[h]:
            for p in range(n_projects):
                scores[p] += np.float64(similarity[h, p])
    return funded, scores


@numba.njit(cache=True)
def _candidates(
    funded: npt.NDArray[np.bool_], scores: FloatArray, project_pool: IntArray, pool: int
) -> tuple[IntArray, IntArray]:  # pragma: no cover - compiled
    """Unfunded projects of the pool, split into positive and non-positive score, ascending."""
    is_candidate = (project_pool == pool) & ~funded
    positive = np.flatnonzero(is_candidate & (scores > 0))
    others = np.flatnonzero(is_candidate & ~(scores > 0))
    return positive.astype(np.int64), others.astype(np.int64)
