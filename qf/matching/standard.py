"""Standard quadratic funding, pro-rata scaling to a pool and the matching cap.

Every matching method in :mod:`qf.matching` works on a contribution matrix
``C`` (donors x projects, ``C[i, p]`` = donor ``i``'s total to project ``p``,
float64, ``>= 0``). This module holds the plain QF formula and the two steps
every method shares afterwards: scale raw matches so they spend the pool, then
clamp projects to the cap the way Gitcoin does (``check_matching_cap`` in
gitcoinco/qf-calculator ``fundingutils.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]

# Relative slack when deciding whether a match sits at the cap: repeated
# rescaling leaves matches a few ulps above or below ``cap * pool``.
_CAP_RTOL = 1e-12


def as_contributions(contributions: npt.ArrayLike) -> FloatArray:
    """Validate and return ``C`` as a 2-D float64 array of finite, non-negative amounts."""
    matrix = np.asarray(contributions, dtype=np.float64)
    if matrix.ndim != 2:
        raise DataError(f"contribution matrix must be 2-D (donors x projects), got {matrix.ndim}-D")
    if not np.all(np.isfinite(matrix)):
        raise DataError("contribution matrix holds NaN or infinite amounts")
    if np.any(matrix < 0):
        raise DataError("contribution matrix holds negative amounts")
    return matrix


def standard_qf(contributions: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return ``(sqrt_sums, raw_match)``: per project ``sum_i sqrt(C_ip)`` and ``sqrt_sum**2 - sum_i C_ip``.

    The raw match is never negative in exact arithmetic; rounding can leave a
    few ulps below zero for single-donor projects, so it is clipped at 0.
    """
    matrix = as_contributions(contributions)
    sqrt_sums = np.sqrt(matrix).sum(axis=0)
    raw = sqrt_sums**2 - matrix.sum(axis=0)
    return sqrt_sums, np.maximum(raw, 0.0)


def scale_to_pool(raw: npt.ArrayLike, pool_amount: float) -> FloatArray:
    """Scale raw matches pro rata so they sum to ``pool_amount`` (all zero when ``raw`` sums to 0)."""
    values = np.asarray(raw, dtype=np.float64)
    _check_pool(pool_amount)
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise DataError("raw matches must be finite and non-negative")
    total = float(values.sum())
    if total <= 0.0:
        return np.zeros_like(values)
    return values / total * pool_amount  # divide first: pool / tiny total can overflow


def apply_cap(matches: npt.ArrayLike, pool_amount: float, cap_fraction: float) -> FloatArray:
    """Clamp every match to ``cap_fraction * pool_amount`` and hand the excess on, Gitcoin's way.

    Each pass clamps the projects above the cap and spreads their excess over
    the projects below it in proportion to their current match; passes repeat
    until no project exceeds the cap (at most one pass per project, since each
    pass caps at least one more). When no project below the cap has a positive
    match (every funded project sits at the cap), the excess has nowhere to go
    and stays unallocated: the result then sums to less than the input.
    """
    values = np.array(matches, dtype=np.float64)
    _check_pool(pool_amount)
    if not 0.0 < cap_fraction <= 1.0:
        raise ConfigError(f"cap fraction must be in (0, 1], got {cap_fraction}")
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise DataError("matches must be finite and non-negative")
    cap = cap_fraction * pool_amount
    at_cap_from = cap * (1.0 - _CAP_RTOL)
    for _ in range(values.size + 1):
        over = values > cap
        if not over.any():
            break
        excess = float((values[over] - cap).sum())
        values[over] = cap
        under = values < at_cap_from
        room = float(values[under].sum())
        if room <= 0.0:
            break
        values[under] = values[under] / room * (room + excess)  # excess / tiny room can overflow
    # Rounding can leave a just-scaled project an ulp above the cap.
    return np.minimum(values, cap)


def _check_pool(pool_amount: float) -> None:
    if not (np.isfinite(pool_amount) and pool_amount >= 0):
        raise ConfigError(f"pool amount must be finite and non-negative, got {pool_amount}")
