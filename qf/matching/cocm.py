"""Connection-oriented cluster matching (COCM), exactly as Gitcoin's calculator runs it.

The mechanism is from Miller, Weyl and Erichsen, "Beyond Collusion Resistance:
Leveraging Social Information for Plural Funding and Voting" (2022). This
module follows Gitcoin's own implementation, ``COCM`` and ``get_qf_matching``
in ``fundingutils.py`` of github.com/gitcoinco/qf-calculator, with the same
wiring Gitcoin uses for its rounds: ``cluster_df = donation_matrix``, so the
clusters are the projects and a donor's weight in each cluster is its share of
its own total giving. As the calculator's ``align`` does, donors who gave
nothing are dropped, and projects nobody gave to get 0. With ``W`` the
row-normalised matrix, ``U`` the column-normalised one (each project's donors,
weighted by amount) and ``B`` the 0/1 "gave to" matrix:

* Markov similarity: ``k = max(W @ (U.T @ W), B)`` -- how close donor ``i`` is
  to project ``g`` after a donor -> project -> donor -> project walk, and 1
  for projects the donor funded itself;
* per project ``p``, each donor's contribution ``c = C[i, p]`` is spread over
  the clusters as ``K[i, g] = (1 - k) c`` (``variant="harsh"``, the
  calculator's ``harsh=True`` and the default here, which gives a donor
  nothing towards the clusters it is already close to) or
  ``K[i, g] = k sqrt(c) + (1 - k) c`` (``variant="markov"``, ``harsh=False``);
* ``P'[g, h] = sum_i K[i, g] W[i, h]`` and the project's COCM funding is
  ``sum_{g != h} sqrt(P'[g, h] P'[h, g])``; a product that rounding leaves
  below zero adds nothing (pandas' square root gives NaN there and its sum
  skips NaN);
* funding is normalised to shares and crossfaded with standard-QF shares,
  ``pct_cocm * cocm + (1 - pct_cocm) * qf`` (``pctCOCM``), then normalised
  again as ``get_qf_matching`` does.

Every donor with a nonzero row takes part, including those who gave to one
project only or to every funded project. In the harsh variant such donors
add nothing to a ``P'`` pair directly (an all-project donor's spread is 0; a
single-project donor's lands in ``P'[g, p]``, whose partner ``P'[p, g]`` is 0
because ``k = 1`` on ``p`` for all of ``p``'s donors), but their amounts shape
``U``, hence the similarity of every donor they share a project with; in the
markov variant they add to ``P'`` as well. The calculator's page says COCM
"ignores" such donors; its code does not, and this module follows the code.

``exclude_uninformative_donors=True`` restores this project's *earlier*
behaviour, which is not the calculator's: donors of exactly one project or of
every funded project are removed before anything is computed (they still
count in the QF shares of the crossfade). On Gitcoin Round 9 that moves a
project by up to about 7e-6 of the pool (harsh; L1 distance 1.1e-4).

When nothing can be matched the shares are all zero, as the calculator's
``normalize`` leaves them. One difference remains, in rounding only: the QF
part of the crossfade is clipped at 0 per project (:func:`standard_qf`), where
the calculator keeps a single-donor project's ``sqrt(c)**2 - c = -1e-16``;
that matters only when the round's whole QF total is such noise, which the
calculator would then normalise into shares.

Only the clusters a project's donors touch can get a nonzero ``P'`` entry,
so :func:`cocm_funding` (a numba kernel over the sparse weights) works on that
block alone. Two plain numpy versions it must equal (a per-project block and
the dense transcription of the reference loop) live with the tests
(``tests/matching/cocm_reference.py``), which ``bench/matching_speed.py`` also
uses as its baseline.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.matching.pairwise import IntArray, compressed
from qf_sentinel.qf.matching.standard import FloatArray, as_contributions, standard_qf

try:  # scipy multiplies the sparse weights faster; numpy's dense products give the same arrays.
    import scipy.sparse as _sparse
except ImportError:  # pragma: no cover - scipy is a declared dependency
    _sparse = None

Variant = Literal["markov", "harsh"]
VARIANTS: tuple[Variant, ...] = ("markov", "harsh")

BoolArray = npt.NDArray[np.bool_]


def cocm(
    contributions: npt.ArrayLike,
    *,
    variant: Variant = "harsh",
    pct_cocm: float = 1.0,
    exclude_uninformative_donors: bool = False,
) -> FloatArray:
    """Return each project's share of the pool (sums to 1, or all zero when nothing can be matched)."""
    if not 0.0 <= pct_cocm <= 1.0:
        raise ConfigError(f"pct_cocm must be in [0, 1], got {pct_cocm}")
    matrix = as_contributions(contributions)
    funding = cocm_funding(matrix, variant=variant, exclude_uninformative_donors=exclude_uninformative_donors)
    blend = pct_cocm * _normalise(funding)
    if pct_cocm < 1.0:
        blend = blend + (1.0 - pct_cocm) * _normalise(standard_qf(matrix)[1])
    return _normalise(blend)


def cocm_funding(
    contributions: npt.ArrayLike, *, variant: Variant = "harsh", exclude_uninformative_donors: bool = False
) -> FloatArray:
    """Unnormalised COCM funding per project (numba kernel over the sparse donor rows)."""
    matrix = as_contributions(contributions)
    check_variant(variant)
    donors, weights, closeness = similarity(matrix, exclude_uninformative_donors)
    if donors.shape[0] == 0:
        return np.zeros(matrix.shape[1])
    row_ptr, row_proj, row_weight = compressed(weights)
    col_ptr, col_donor, col_amount = compressed(donors.T)
    return _cocm_kernel(row_ptr, row_proj, row_weight, col_ptr, col_donor, col_amount, closeness, variant == "harsh")


def cocm_donors(contributions: npt.ArrayLike) -> BoolArray:
    """Mask of the donors the old exclusion keeps: those who gave to more than one but not every funded project.

    Only ``exclude_uninformative_donors=True`` uses it; by default every donor
    with a nonzero row takes part, as in the calculator.
    """
    matrix = as_contributions(contributions)
    projects_funded = int(matrix.any(axis=0).sum())
    degree = (matrix > 0).sum(axis=1)
    mask: BoolArray = (degree >= 2) & (degree < projects_funded)
    return mask


def similarity(matrix: FloatArray, exclude_uninformative_donors: bool) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(C, W, k)`` over the donors COCM uses: their rows, row-normalised weights and Markov closeness.

    Those donors are every nonzero row (the calculator's ``align``), or the
    :func:`cocm_donors` subset under the old exclusion.
    """
    keep = cocm_donors(matrix) if exclude_uninformative_donors else matrix.any(axis=1)
    donors = matrix[keep]
    if donors.shape[0] == 0:
        return donors, donors, donors
    weights = donors / donors.sum(axis=1, keepdims=True)
    closeness = _walk(donors, weights)
    gave_donor, gave_project = np.nonzero(donors)
    closeness[gave_donor, gave_project] = np.maximum(closeness[gave_donor, gave_project], 1.0)
    return donors, weights, closeness


def _walk(donors: FloatArray, weights: FloatArray) -> FloatArray:
    """``W @ PJP`` with ``PJP = U.T @ W``: where a donor -> project -> donor -> project walk ends.

    ``PJP[g]`` is project ``g``'s donors' weights, each by its share of ``g``'s
    total; projects nobody gave to get a zero row (the reference's
    ``if any(row) else 0``). Taken as sparse x sparse, then sparse x dense
    products: half the time of the dense ones on Round 9.
    """
    totals = donors.sum(axis=0)[:, None]
    if _sparse is None:  # pragma: no cover - scipy is a declared dependency
        gathered = donors.T @ weights
        walk_step = np.divide(gathered, totals, out=np.zeros_like(gathered), where=totals > 0)
        dense: FloatArray = weights @ walk_step
        return dense
    sparse_weights = _sparse.csr_matrix(weights)
    gathered = (_sparse.csr_matrix(donors).T @ sparse_weights).toarray()
    walk_step = np.divide(gathered, totals, out=np.zeros_like(gathered), where=totals > 0)
    walked: FloatArray = np.asarray(sparse_weights @ walk_step)
    return walked


@numba.njit(cache=True, parallel=True)
def _cocm_kernel(  # noqa: PLR0917 - numba kernels take plain positional arrays
    row_ptr: IntArray,
    row_proj: IntArray,
    row_weight: FloatArray,
    col_ptr: IntArray,
    col_donor: IntArray,
    col_amount: FloatArray,
    closeness: FloatArray,
    harsh: bool,
) -> FloatArray:  # pragma: no cover - compiled; equality with the numpy versions is tested
    """COCM funding from the sparse weights (CSR by donor) and amounts (CSR by project), projects in parallel."""
    n_projects = col_ptr.size - 1
    funding = np.zeros(n_projects)
    for p in numba.prange(n_projects):
        funding[p] = _cocm_project(p, row_ptr, row_proj, row_weight, col_ptr, col_donor, col_amount, closeness, harsh)
    return funding


@numba.njit(cache=True)
def _cocm_project(  # noqa: PLR0917 - numba kernels take plain positional arrays
    p: int,
    row_ptr: IntArray,
    row_proj: IntArray,
    row_weight: FloatArray,
    col_ptr: IntArray,
    col_donor: IntArray,
    col_amount: FloatArray,
    closeness: FloatArray,
    harsh: bool,
) -> float:  # pragma: no cover - compiled; equality with the numpy versions is tested
    """One project's COCM funding.

    ``P'`` is built transposed over the clusters the project's donors touch
    (``pair_t[h, g]``), one donor's spread row per nonzero weight, so the work
    is ``sum_i degree_i * touched`` instead of a dense donors x clusters product.
    """
    n_projects = col_ptr.size - 1
    local = np.full(n_projects, -1, dtype=np.int64)
    touched = np.empty(n_projects, dtype=np.int64)
    n_touched = 0
    for b in range(col_ptr[p], col_ptr[p + 1]):
        i = col_donor[b]
        for a in range(row_ptr[i], row_ptr[i + 1]):
            g = row_proj[a]
            if local[g] < 0:
                local[g] = n_touched
                touched[n_touched] = g
                n_touched += 1
    pair_t = np.zeros((n_touched, n_touched))
    spread = np.empty(n_touched)
    for b in range(col_ptr[p], col_ptr[p + 1]):
        i = col_donor[b]
        c = col_amount[b]
        root = np.sqrt(c)
        for t in range(n_touched):
            k = closeness[i, touched[t]]
            spread[t] = (1.0 - k) * c if harsh else k * root + (1.0 - k) * c
        for a in range(row_ptr[i], row_ptr[i + 1]):
            h = local[row_proj[a]]
            w = row_weight[a]
            for t in range(n_touched):
                pair_t[h, t] += w * spread[t]
    total = 0.0
    for g in range(n_touched):
        for h in range(g + 1, n_touched):
            product = pair_t[g, h] * pair_t[h, g]
            if product > 0.0:  # rounding can leave it a hair below 0; the reference's sum skips that NaN
                total += 2.0 * np.sqrt(product)
    return total


def _normalise(values: FloatArray) -> FloatArray:
    total = float(values.sum())
    if total <= 0.0:
        return np.zeros_like(values)
    return values / total


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"COCM variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
