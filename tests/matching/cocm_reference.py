"""Two plain numpy COCM implementations the numba kernel (:func:`qf.matching.cocm.cocm_funding`) must equal.

``cocm_funding_blocks`` works per project on the block of clusters its donors
touch; ``cocm_funding_reference`` is the dense transcription of the reference
loop (every donor and every cluster for every project), the baseline of
``bench/matching_speed.py``. Test and benchmark code, not served.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.matching.cocm import Variant, check_variant, similarity
from qf_sentinel.qf.matching.standard import FloatArray, as_contributions


def cocm_funding_blocks(
    contributions: npt.ArrayLike, *, variant: Variant = "harsh", exclude_uninformative_donors: bool = False
) -> FloatArray:
    """Plain numpy COCM funding: per project, one dense block over the clusters its donors touch."""
    matrix = as_contributions(contributions)
    check_variant(variant)
    funding = np.zeros(matrix.shape[1])
    donors, weights, closeness = similarity(matrix, exclude_uninformative_donors)
    if donors.shape[0] == 0:
        return funding
    for p in np.flatnonzero(donors.any(axis=0)):
        givers = np.flatnonzero(donors[:, p])
        amounts = donors[givers, p][:, None]
        touched = np.flatnonzero(weights[givers].any(axis=0))
        k = closeness[np.ix_(givers, touched)]
        spread = (1.0 - k) * amounts if variant == "harsh" else k * np.sqrt(amounts) + (1.0 - k) * amounts
        pair = spread.T @ weights[np.ix_(givers, touched)]
        subsidy = np.sqrt(np.maximum(pair * pair.T, 0.0))
        funding[p] = float(subsidy.sum() - np.trace(subsidy))
    return funding


def cocm_funding_reference(
    contributions: npt.ArrayLike, *, variant: Variant = "harsh", exclude_uninformative_donors: bool = False
) -> FloatArray:
    """Dense transcription of the reference loop: every donor and every cluster for every project.

    Projects nobody gave to stay in: their weight column is zero, so every
    product involving them is 0, as if ``align`` had dropped them.
    """
    matrix = as_contributions(contributions)
    check_variant(variant)
    funding = np.zeros(matrix.shape[1])
    donors, weights, closeness = similarity(matrix, exclude_uninformative_donors)
    if donors.shape[0] == 0:
        return funding
    for p in range(matrix.shape[1]):
        amounts = donors[:, p][:, None]
        if variant == "harsh":
            spread = (1.0 - closeness) * amounts
        else:
            spread = closeness * np.sqrt(amounts) + (1.0 - closeness) * amounts
        pair = spread.T @ weights
        subsidy = np.sqrt(np.maximum(pair * pair.T, 0.0))
        np.fill_diagonal(subsidy, 0.0)
        funding[p] = float(subsidy.sum())
    return funding
