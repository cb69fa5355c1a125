"""Item-to-item project recommendations from co-donation, and their offline evaluation.

A donor is described by the projects they funded; two projects are similar
when the same donors fund both (cosine between the project columns of the
donor x project matrix, either 0/1 or ``log1p(amount)``). A donor's candidates
are scored by summing their similarity to every project the donor already
funded, restricted to one pool and never repeating a funded project. Donors
whose history links to nothing fall back to popularity (distinct donors per
project), and short CF lists are filled from it.

:func:`recommend` is the plain numpy reference; the scoring sidecar runs the
same ranking in :func:`qf.model.kernels.topk.recommend_topk` over the arrays of
:class:`qf.model.recommender.RecommenderArrays`, which :func:`fit_recommender` builds. Ranking is
deterministic: higher score first, then lower project index.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.model.recommender import Float32Array, IntArray, RecommenderArrays

Weighting = Literal["binary", "log_amount"]
WEIGHTINGS: tuple[Weighting, ...] = ("binary", "log_amount")
Source = Literal["cf", "popularity"]

FloatArray = npt.NDArray[np.float64]


def donation_matrix(
    donor: npt.ArrayLike,
    project: npt.ArrayLike,
    amount: npt.ArrayLike,
    *,
    n_donors: int | None = None,
    n_projects: int | None = None,
) -> Any:
    """Donor x project CSR matrix of summed amounts (repeat donations to a project add up)."""
    donors = _as_index(donor, "donor")
    projects = _as_index(project, "project")
    amounts = np.asarray(amount, dtype=np.float64)
    if not donors.shape == projects.shape == amounts.shape:
        raise DataError("donor, project and amount arrays must have the same length")
    if not np.all(np.isfinite(amounts)) or np.any(amounts < 0):
        raise DataError("donation amounts must be finite and non-negative")
    rows = n_donors if n_donors is not None else int(donors.max(initial=-1)) + 1
    cols = n_projects if n_projects is not None else int(projects.max(initial=-1)) + 1
    if donors.size and (donors.max() >= rows or projects.max() >= cols):
        raise DataError(f"donation indices exceed the matrix shape ({rows} donors x {cols} projects)")
    matrix = sp.csr_array((amounts, (donors, projects)), shape=(rows, cols))
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def item_similarity(matrix: Any, *, weighting: Weighting = "binary") -> Float32Array:
    """Dense project x project cosine similarity of the matrix columns, diagonal zeroed.

    ``log_amount`` weighs each donor-project cell by ``log1p(amount)`` so a
    whale's many small test donations do not dominate, while large gifts
    still count more than tiny ones.
    """
    weights = _weighted(matrix, weighting)
    gram = (weights.T @ weights).toarray()
    norms = np.sqrt(np.diag(gram))
    outer = np.outer(norms, norms)
    similarity = np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0)
    np.fill_diagonal(similarity, 0.0)
    return np.asarray(similarity, dtype=np.float32)


def popularity(matrix: Any) -> Float32Array:
    """Distinct donors per project: the fallback score when co-donation says nothing."""
    cells = sp.csr_array(matrix, dtype=np.float64)
    cells.sum_duplicates()
    cells.eliminate_zeros()
    return np.bincount(cells.indices, minlength=cells.shape[1]).astype(np.float32)


def recommend(
    history_projects: npt.ArrayLike,
    similarity: npt.NDArray[np.floating[Any]],
    popularity: npt.NDArray[np.floating[Any]],
    project_pool: npt.ArrayLike,
    *,
    pool: int,
    k: int,
) -> tuple[IntArray, FloatArray, Source]:
    """Top ``k`` projects of ``pool`` the donor has not funded: ``(projects, scores, source)``.

    With source ``"cf"`` the first entries carry their positive summed
    similarity; when fewer than ``k`` are positive the rest are filled by
    popularity and scored 0.0. With source ``"popularity"`` (empty history, or
    a history whose neighbours lie outside the pool) every entry is ranked and
    scored by popularity.
    """
    pools = np.asarray(project_pool, dtype=np.int64)
    n_projects = pools.size
    if similarity.shape != (n_projects, n_projects) or popularity.shape != (n_projects,):
        raise DataError(f"similarity must be {n_projects}x{n_projects} and popularity {n_projects} long")
    history = np.unique(_as_index(history_projects, "history"))
    if history.size and history[-1] >= n_projects:
        raise DataError(f"history holds project {history[-1]} of {n_projects}")
    funded = np.zeros(n_projects, dtype=np.bool_)
    funded[history] = True
    candidates = np.flatnonzero((pools == pool) & ~funded)
    take = max(0, min(k, candidates.size))

    scores = np.zeros(n_projects)
    for h in history:  # one row at a time, ascending: the kernel adds in the same order
        scores += similarity[h].astype(np.float64)
    positive = candidates[scores[candidates] > 0]
    pop = popularity.astype(np.float64)
    if positive.size == 0:
        chosen = _ranked(candidates, pop)[:take]
        return chosen, pop[chosen], "popularity"
    top = _ranked(positive, scores)[:take]
    rest = _ranked(candidates[~(scores[candidates] > 0)], pop)[: take - top.size]  # NaN counts as not positive
    chosen = np.concatenate([top, rest])
    return chosen, np.concatenate([scores[top], np.zeros(rest.size)]), "cf"


def hit_rate_at_k(
    donor: npt.ArrayLike,
    project: npt.ArrayLike,
    order: npt.ArrayLike,
    project_pool: npt.ArrayLike,
    k: int = 5,
    *,
    amount: npt.ArrayLike | None = None,
    weighting: Weighting = "binary",
) -> dict[str, float]:
    """Leave-last-out hit rate of CF and of the popularity baseline.

    Every donor with at least two distinct projects hides the project of
    their last donation (highest order key); all of that donor's rows to the
    project are removed, so the answer is not simply "already funded". One
    model is fitted on everything else and each hidden project is looked for
    in the top ``k`` of its own pool. The baseline ranks the same candidates
    (pool, minus history) by popularity alone.
    """
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting == "log_amount" and amount is None:
        raise ConfigError("log_amount weighting needs the donation amounts")
    donors = _as_index(donor, "donor")
    projects = _as_index(project, "project")
    pools = np.asarray(project_pool, dtype=np.int64)
    amounts = np.ones(donors.size) if amount is None else np.asarray(amount, dtype=np.float64)

    evaluated, hidden, keep = holdout_last(donors, projects, order)
    n_donors = int(donors.max(initial=-1)) + 1
    matrix = donation_matrix(donors[keep], projects[keep], amounts[keep], n_donors=n_donors, n_projects=pools.size)
    similarity = item_similarity(matrix, weighting=weighting)
    pop = popularity(matrix)
    no_similarity = np.zeros_like(similarity)

    hits_cf = hits_pop = 0
    for d, target in zip(evaluated.tolist(), hidden.tolist(), strict=True):
        history = matrix.indices[matrix.indptr[d] : matrix.indptr[d + 1]]
        pool = int(pools[target])
        cf, _, _ = recommend(history, similarity, pop, pools, pool=pool, k=k)
        baseline, _, _ = recommend(history, no_similarity, pop, pools, pool=pool, k=k)
        hits_cf += int(target in cf)
        hits_pop += int(target in baseline)
    n = evaluated.size
    return {
        "k": k,
        "donors_evaluated": n,
        "hit_rate_cf": hits_cf / n if n else float("nan"),
        "hit_rate_popularity": hits_pop / n if n else float("nan"),
    }


def holdout_last(
    donor: npt.ArrayLike, project: npt.ArrayLike, order: npt.ArrayLike
) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
    """``(donors, hidden_projects, keep_mask)`` of the leave-last-out split.

    Only donors with two or more distinct projects are held out, so each keeps
    a non-empty history. ``keep_mask`` drops every row from a held-out donor to
    their hidden project. Equal order keys fall back to row position.
    """
    donors = _as_index(donor, "donor")
    projects = _as_index(project, "project")
    keys = np.asarray(order, dtype=np.int64)
    if not donors.shape == projects.shape == keys.shape:
        raise DataError("donor, project and order arrays must have the same length")
    if donors.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.bool_)
    by_donor = np.lexsort((np.arange(donors.size), keys, donors))
    last_row = by_donor[np.r_[donors[by_donor][1:] != donors[by_donor][:-1], True]]
    pairs = np.unique(np.stack([donors, projects], axis=1), axis=0)
    distinct = np.bincount(pairs[:, 0], minlength=int(donors.max()) + 1)
    last_row = last_row[distinct[donors[last_row]] >= 2]
    evaluated, hidden = donors[last_row], projects[last_row]
    hidden_of = np.full(distinct.size, -1, dtype=np.int64)
    hidden_of[evaluated] = hidden
    keep = hidden_of[donors] != projects
    return evaluated, hidden, keep


def _weighted(matrix: Any, weighting: Weighting) -> Any:
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    weights = sp.csr_array(matrix, dtype=np.float64)
    weights.sum_duplicates()
    weights.eliminate_zeros()
    if np.any(weights.data < 0):
        raise DataError("donation matrix holds negative amounts")
    weights.data = np.ones_like(weights.data) if weighting == "binary" else np.log1p(weights.data)
    return weights


def _ranked(candidates: IntArray, keys: FloatArray) -> IntArray:
    """Candidates (ascending indices) by key descending; the stable sort keeps lower indices first on ties."""
    return candidates[np.argsort(-keys[candidates], kind="stable")]


def _as_index(values: npt.ArrayLike, name: str) -> IntArray:
    index = np.asarray(values, dtype=np.int64).reshape(-1)
    if index.size and index.min() < 0:
        raise DataError(f"{name} indices must be non-negative")
    return index


def fit_recommender(
    matrix: Any, project_pool: npt.ArrayLike, project_ids: list[str], *, weighting: Weighting = "binary"
) -> RecommenderArrays:
    """Fit similarity and popularity on a donor x project matrix."""
    return RecommenderArrays(
        similarity=item_similarity(matrix, weighting=weighting),
        popularity=popularity(matrix),
        project_pool=np.asarray(project_pool, dtype=np.int64),
        project_ids=list(project_ids),
    )
