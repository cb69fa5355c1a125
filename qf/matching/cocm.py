"""Connection-oriented cluster matching (COCM) as Gitcoin runs it.

The mechanism is from Miller, Weyl and Erichsen, "Beyond Collusion Resistance:
Leveraging Social Information for Plural Funding and Voting" (2022). This
module follows Gitcoin's own implementation, ``COCM`` and ``get_qf_matching``
in ``fundingutils.py`` of github.com/gitcoinco/qf-calculator, with the same
wiring Gitcoin uses for its rounds: ``cluster_df = donation_matrix``, so the
clusters are the projects and a donor's weight in each cluster is its share of
its own total giving. With ``W`` that row-normalised matrix, ``U`` the
column-normalised one (each project's donors, weighted by amount) and ``B`` the
0/1 "gave to" matrix:

* Markov similarity: ``k = max(W @ (U.T @ W), B)`` -- how close donor ``i`` is
  to project ``g`` after a donor -> project -> donor -> project walk, and 1
  for projects the donor funded itself;
* per project ``p``, each donor's contribution ``c = C[i, p]`` is spread over
  the clusters as ``K[i, g] = k sqrt(c) + (1 - k) c`` (``variant="markov"``)
  or ``K[i, g] = (1 - k) c`` (``variant="harsh"``, Gitcoin's default, which
  gives a donor nothing towards the clusters it is already close to);
* ``P'[g, h] = sum_i K[i, g] W[i, h]`` and the project's COCM funding is
  ``sum_{g != h} sqrt(P'[g, h] P'[h, g])``;
* funding is normalised to shares and crossfaded with standard-QF shares,
  ``pct_cocm * cocm + (1 - pct_cocm) * qf`` (``pctCOCM``), then normalised
  again as ``get_qf_matching`` does.

Deviations, on purpose: donors who gave to exactly one project, or to every
funded project, are left out of the COCM part (they carry no information
about connections between clusters; they still count in the QF shares of the
crossfade); the reference keeps them (its ``align`` only drops empty rows).
Shares come back as all zeros when nothing can be matched, where the
reference would divide by zero.

Only the clusters a project's donors touch can get a nonzero ``P'`` entry,
so :func:`cocm_funding` (a numba kernel over the sparse weights) and
:func:`cocm_funding_blocks` (plain numpy) work on that block alone;
:func:`cocm_funding_reference` is the dense transcription of the reference
loop, kept as the baseline both must equal.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import numpy.typing as npt

from qf.errors import ConfigError
from qf.matching.pairwise import IntArray, compressed
from qf.matching.standard import FloatArray, as_contributions, standard_qf

Variant = Literal["markov", "harsh"]
VARIANTS: tuple[Variant, ...] = ("markov", "harsh")

BoolArray = npt.NDArray[np.bool_]


def cocm(
    contributions: npt.ArrayLike,
    *,
    variant: Variant = "markov",
    pct_cocm: float = 1.0,
) -> FloatArray:
    """Return each project's share of the pool (sums to 1, or all zero when nothing can be matched)."""
    if not 0.0 <= pct_cocm <= 1.0:
        raise ConfigError(f"pct_cocm must be in [0, 1], got {pct_cocm}")
    matrix = as_contributions(contributions)
    blend = pct_cocm * _normalise(cocm_funding(matrix, variant=variant))
    if pct_cocm < 1.0:
        blend = blend + (1.0 - pct_cocm) * _normalise(standard_qf(matrix)[1])
    return _normalise(blend)


def cocm_funding(contributions: npt.ArrayLike, *, variant: Variant = "markov") -> FloatArray:
    """Unnormalised COCM funding per project (numba kernel over the sparse donor rows)."""
    matrix = as_contributions(contributions)
    _check_variant(variant)
    donors, weights, closeness = _similarity(matrix)
    if donors.shape[0] == 0:
        return np.zeros(matrix.shape[1])
    row_ptr, row_proj, row_weight = compressed(weights)
    col_ptr, col_donor, col_amount = compressed(donors.T)
    return _cocm_kernel(row_ptr, row_proj, row_weight, col_ptr, col_donor, col_amount, closeness, variant == "harsh")


def cocm_funding_blocks(contributions: npt.ArrayLike, *, variant: Variant = "markov") -> FloatArray:
    """Plain numpy COCM funding: per project, one dense block over the clusters its donors touch."""
    matrix = as_contributions(contributions)
    _check_variant(variant)
    funding = np.zeros(matrix.shape[1])
    donors, weights, closeness = _similarity(matrix)
    if donors.shape[0] == 0:
        return funding
    for p in np.flatnonzero(donors.any(axis=0)):
        givers = np.flatnonzero(donors[:, p])
        amounts = donors[givers, p][:, None]
        touched = np.flatnonzero(weights[givers].any(axis=0))
        k = closeness[np.ix_(givers, touched)]
        spread = (1.0 - k) * amounts if variant == "harsh" else k * np.sqrt(amounts) + (1.0 - k) * amounts
        pair = spread.T @ weights[np.ix_(givers, touched)]
        funding[p] = float(np.sqrt(pair * pair.T).sum() - np.trace(pair))
    return funding


def cocm_funding_reference(contributions: npt.ArrayLike, *, variant: Variant = "markov") -> FloatArray:
    """Dense transcription of the reference loop: every donor and every cluster for every project."""
    matrix = as_contributions(contributions)
    _check_variant(variant)
    funding = np.zeros(matrix.shape[1])
    donors, weights, closeness = _similarity(matrix)
    if donors.shape[0] == 0:
        return funding
    for p in range(matrix.shape[1]):
        amounts = donors[:, p][:, None]
        if variant == "harsh":
            spread = (1.0 - closeness) * amounts
        else:
            spread = closeness * np.sqrt(amounts) + (1.0 - closeness) * amounts
        pair = spread.T @ weights
        subsidy = np.sqrt(pair * pair.T)
        np.fill_diagonal(subsidy, 0.0)
        funding[p] = float(subsidy.sum())
    return funding


def cocm_donors(contributions: npt.ArrayLike) -> BoolArray:
    """Mask of the donors COCM uses: those who gave to more than one but not every funded project."""
    matrix = as_contributions(contributions)
    projects_funded = int(matrix.any(axis=0).sum())
    degree = (matrix > 0).sum(axis=1)
    mask: BoolArray = (degree >= 2) & (degree < projects_funded)
    return mask


def _similarity(matrix: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(C, W, k)`` over the COCM donors: their rows, row-normalised weights and Markov closeness."""
    donors = matrix[cocm_donors(matrix)]
    if donors.shape[0] == 0:
        return donors, donors, donors
    weights = donors / donors.sum(axis=1, keepdims=True)
    project_totals = donors.sum(axis=0)
    # Projects nobody kept gave to get a zero row, as the reference's "if any(row) else 0".
    by_project = np.divide(
        donors.T, project_totals[:, None], out=np.zeros_like(donors.T), where=project_totals[:, None] > 0
    )
    closeness = np.maximum(weights @ (by_project @ weights), (donors > 0).astype(np.float64))
    return donors, weights, closeness


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
            total += 2.0 * np.sqrt(pair_t[g, h] * pair_t[h, g])
    return total


def _normalise(values: FloatArray) -> FloatArray:
    total = float(values.sum())
    if total <= 0.0:
        return np.zeros_like(values)
    return values / total


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"COCM variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
