"""Matching formulas for quadratic-funding rounds: pure functions over a contribution matrix.

Input to every formula is ``C`` (donors x projects, float64, ``C[i, p] >= 0`` =
donor ``i``'s total to project ``p``); the formula modules touch no database:

* ``standard`` -- plain QF, pro-rata scaling to the pool, Gitcoin's cap;
* ``pairwise`` -- Buterin's pairwise-bounded QF (numba kernel + numpy reference);
* ``cocm`` -- connection-oriented cluster matching as Gitcoin runs it;
* ``risk`` -- donor weights from risk scores, applied before any method;
* ``eligibility`` -- the step before ``C``: Gitcoin's rules on which
  donations count (minimum, self-donations, Passport-score scaling).

Around them, the database edge (these four do read and write it): ``db`` (a
pool's donations in, runs out), ``prices`` (USD prices imported from a CSV),
``rounds`` (named rounds across pools and chains, valued in USD) and
``service``, the one answer to "the matching of this pool or round" that
``qf matching``, the console and the demo render.

:func:`compute_matching` is the one-call facade over a matrix. Bad arguments raise
:class:`qf.errors.ConfigError`, malformed matrices :class:`qf.errors.DataError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy.typing as npt

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.matching.eligibility import Eligibility, EligibleContributions, Exclusions, eligible_contributions
from qf_sentinel.qf.matching.risk import match_delta, risk_weighted, weights_from_scores
from qf_sentinel.qf.matching.standard import FloatArray, apply_cap, as_contributions, scale_to_pool, standard_qf

if TYPE_CHECKING:
    from qf_sentinel.qf.matching.cocm import Variant, cocm
    from qf_sentinel.qf.matching.pairwise import pairwise_subsidies

Method = Literal["standard", "pairwise", "cocm", "risk-adjusted"]
METHODS: tuple[Method, ...] = ("standard", "pairwise", "cocm", "risk-adjusted")

__all__ = [
    "METHODS",
    "Eligibility",
    "EligibleContributions",
    "Exclusions",
    "Method",
    "apply_cap",
    "cocm",
    "compute_matching",
    "eligible_contributions",
    "match_delta",
    "pairwise_subsidies",
    "risk_weighted",
    "scale_to_pool",
    "standard_qf",
    "weights_from_scores",
]


def __getattr__(name: str) -> Any:
    """``cocm`` and ``pairwise_subsidies`` on first use: their modules compile numba kernels, which standard QF
    (the `qf matching` default, timed end to end) does not need."""
    if name == "cocm":
        from qf_sentinel.qf.matching.cocm import cocm  # noqa: PLC0415

        return cocm
    if name == "pairwise_subsidies":
        from qf_sentinel.qf.matching.pairwise import pairwise_subsidies  # noqa: PLC0415

        return pairwise_subsidies
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compute_matching(
    contributions: npt.ArrayLike,
    pool_amount: float,
    *,
    method: Method = "standard",
    cap_pct: float | None = None,
    pct_cocm: float = 1.0,
    pairwise_m: float | None = None,
    cocm_variant: Variant = "harsh",
    weights: npt.ArrayLike | None = None,
    exclude_uninformative_donors: bool = False,
) -> FloatArray:
    """Match amounts per project that spend ``pool_amount`` (less only when the cap strands some).

    ``weights`` (one per donor, in ``[0, 1]``) scale the donors' rows first,
    for any method; ``"risk-adjusted"`` is standard QF on the weighted matrix
    and requires them. ``cap_pct`` is the cap as a percentage of the pool
    (``10`` = 10 %), applied last. ``pairwise_m`` defaults to
    :data:`qf.matching.pairwise.DEFAULT_M`. ``cocm_variant`` defaults to ``"harsh"``,
    the setting Gitcoin's calculator uses for COCM, and COCM then gives the
    calculator's result. ``exclude_uninformative_donors=True`` brings back this
    project's earlier COCM, which left donors of one project or of every
    funded project out (not the calculator's behaviour; COCM only).
    """
    if method not in METHODS:
        raise ConfigError(f"matching method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "risk-adjusted" and weights is None:
        raise ConfigError('method "risk-adjusted" needs donor weights')
    if cap_pct is not None and not 0.0 < cap_pct <= 100.0:
        raise ConfigError(f"cap percentage must be in (0, 100], got {cap_pct}")
    matrix = as_contributions(contributions)
    if weights is not None:
        matrix = risk_weighted(matrix, weights)
    if method == "pairwise":
        from qf_sentinel.qf.matching.pairwise import DEFAULT_M, pairwise_subsidies  # noqa: PLC0415 - numba, only when asked

        m = DEFAULT_M if pairwise_m is None else pairwise_m
        matches = scale_to_pool(pairwise_subsidies(matrix, m), pool_amount)
    elif method == "cocm":
        from qf_sentinel.qf.matching.cocm import cocm  # noqa: PLC0415 - numba, only when asked

        shares = cocm(
            matrix,
            variant=cocm_variant,
            pct_cocm=pct_cocm,
            exclude_uninformative_donors=exclude_uninformative_donors,
        )
        matches = scale_to_pool(shares, pool_amount)
    else:
        matches = scale_to_pool(standard_qf(matrix)[1], pool_amount)
    if cap_pct is not None:
        matches = apply_cap(matches, pool_amount, cap_pct / 100.0)
    return matches
