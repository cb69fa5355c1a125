"""Co-donation association rules between projects ("donors of A also fund B").

Each donor's set of funded projects is a basket. For an ordered pair of
projects ``A -> B``, with ``N`` the donors who funded anything::

    support    = n(A and B) / N
    confidence = n(A and B) / n(A)            = P(B | A)
    lift       = confidence / (n(B) / N)      how much more often than chance

All pair counts come from one sparse product ``X.T @ X`` of the 0/1 donor x
project matrix: its diagonal is ``n(A)`` and its off-diagonal ``n(A and B)``.
The rules are a report for people (which projects share a crowd); the
recommender in :mod:`qf.train.recommend` uses the same co-donation signal as
cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from qf_sentinel.qf.errors import ConfigError, DataError

# Pairs shared by only a donor or two get huge, meaningless lifts; require a few.
DEFAULT_MIN_SUPPORT_COUNT = 5


@dataclass(frozen=True)
class Rule:
    """``antecedent -> consequent``: donors of the first also fund the second."""

    antecedent: str
    consequent: str
    support: float
    confidence: float
    lift: float
    donors: int


def top_rules(
    matrix: Any,
    project_ids: list[str],
    min_support_count: int = DEFAULT_MIN_SUPPORT_COUNT,
    top: int = 20,
) -> list[Rule]:
    """The ``top`` rules by lift, then support (then project index), among pairs with enough shared donors.

    Both directions of a pair are rules of their own: they share support and
    lift but not confidence.
    """
    if min_support_count < 1:
        raise ConfigError(f"min_support_count must be at least 1, got {min_support_count}")
    if top < 0:
        raise ConfigError(f"top must be non-negative, got {top}")
    baskets = sp.csr_array(matrix, dtype=np.float64)
    baskets.sum_duplicates()
    baskets.eliminate_zeros()
    if baskets.shape[1] != len(project_ids):
        raise DataError(f"matrix has {baskets.shape[1]} projects but {len(project_ids)} ids were given")
    baskets.data = np.ones_like(baskets.data)
    n_baskets = int(np.count_nonzero(np.diff(baskets.indptr)))
    together = sp.coo_array((baskets.T @ baskets).astype(np.int64))  # sums of 1.0: exact integers
    funders = np.asarray(together.diagonal(), dtype=np.int64)
    a = np.asarray(together.row, dtype=np.int64)
    b = np.asarray(together.col, dtype=np.int64)
    both = np.asarray(together.data, dtype=np.int64)
    keep = (a != b) & (both >= min_support_count)
    a, b, both = a[keep], b[keep], both[keep]
    # Integer numerators and denominators, one division each: equal ratios give equal floats, so ties are real.
    support = both / n_baskets if n_baskets else np.zeros(both.size)
    confidence = both / funders[a]
    lift = (both * n_baskets) / (funders[a] * funders[b])
    order = np.lexsort((b, a, -support, -lift))[:top]
    return [
        Rule(
            antecedent=project_ids[a[i]],
            consequent=project_ids[b[i]],
            support=float(support[i]),
            confidence=float(confidence[i]),
            lift=float(lift[i]),
            donors=int(both[i]),
        )
        for i in order
    ]
