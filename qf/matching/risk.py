"""Risk-adjusted matching: down-weight donors by a sybil-risk score, then match as usual.

A score in ``[0, 1]`` (higher = riskier, e.g. the scorer's output) becomes a
weight in ``[0, 1]`` by :func:`weights_from_scores`; :func:`risk_weighted`
multiplies each donor's row of the contribution matrix by its weight, and any
method of :mod:`qf.matching` then runs on the weighted matrix. Scaling the
contributions, not the matches, is how Gitcoin applies Passport scores
(``apply_voting_eligibility`` in gitcoinco/qf-calculator scales ``amountUSD``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.matching.standard import FloatArray, as_contributions

WeightMode = Literal["linear", "exclude"]


def weights_from_scores(
    scores: npt.ArrayLike,
    *,
    threshold: float | None = None,
    mode: WeightMode = "linear",
) -> FloatArray:
    """Turn risk scores in ``[0, 1]`` into donor weights.

    ``"linear"``: weight ``1 - score``, and 0 for scores above ``threshold``
    when one is given. ``"exclude"``: weight 0 above ``threshold`` (required),
    1 otherwise.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise DataError(f"scores must be 1-D (one per donor), got {values.ndim}-D")
    if not np.all((values >= 0) & (values <= 1)):
        raise DataError("scores must lie in [0, 1]")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
    if mode == "linear":
        weights = 1.0 - values
    elif mode == "exclude":
        if threshold is None:
            raise ConfigError('mode "exclude" needs a threshold')
        weights = np.ones_like(values)
    else:
        raise ConfigError(f'weight mode must be "linear" or "exclude", got {mode!r}')
    if threshold is not None:
        weights[values > threshold] = 0.0
    return weights


#: A community most of whose donors the gate flags is discounted as a whole from this share on.
COMMUNITY_FLAGGED_SHARE = 0.5


def gate_weights(
    scores: npt.ArrayLike,
    *,
    review: float,
    block: float,
    community: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Donor weights from the served model's calibrated risk and thresholds; ``(weights, community flagged share)``.

    Designed to take from attackers without reshaping honest funding: a donor
    the gate approves keeps weight 1 (so the background, at most 5% of which
    the thresholds let the gate question, is untouched), a reviewed one falls
    linearly from 1 at ``review`` to 0 at ``block``, a blocked one has 0. A
    campaign's wallets the gate let through share its community with the ones
    it caught: where at least :data:`COMMUNITY_FLAGGED_SHARE` of a community's
    donors are not approved, every member's weight is also scaled by the share
    approved (``community``: one community id per donor; -1 = none).
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or not np.all((values >= 0) & (values <= 1)):
        raise DataError("scores must be a 1-D array in [0, 1]")
    if not 0.0 <= review <= block <= 1.0:
        raise ConfigError(f"need 0 <= review <= block <= 1, got {review} and {block}")
    span = max(block - review, 1e-12)
    weights = np.clip((block - values) / span, 0.0, 1.0)
    weights[values < review] = 1.0
    flagged_share = np.zeros_like(values)
    if community is not None:
        groups = np.asarray(community, dtype=np.int64)
        if groups.shape != values.shape:
            raise DataError("need one community per donor")
        known = groups >= 0
        if known.any():
            _, inverse = np.unique(groups[known], return_inverse=True)
            flagged = np.bincount(inverse, weights=(values[known] >= review).astype(np.float64))
            share = flagged / np.bincount(inverse)
            flagged_share[known] = share[inverse]
            discount = np.where(flagged_share >= COMMUNITY_FLAGGED_SHARE, 1.0 - flagged_share, 1.0)
            weights = weights * discount
    return weights, flagged_share


def risk_weighted(contributions: npt.ArrayLike, weights: npt.ArrayLike) -> FloatArray:
    """Scale each donor's row of ``C`` by its weight in ``[0, 1]`` (0 excludes the donor)."""
    matrix = as_contributions(contributions)
    values = np.asarray(weights, dtype=np.float64)
    if values.shape != (matrix.shape[0],):
        raise DataError(f"need one weight per donor ({matrix.shape[0]}), got shape {values.shape}")
    if not np.all((values >= 0) & (values <= 1)):
        raise DataError("weights must lie in [0, 1]")
    return matrix * values[:, None]


def match_delta(base: npt.ArrayLike, adjusted: npt.ArrayLike) -> FloatArray:
    """Per project, how much the adjusted match differs from the base one (``adjusted - base``)."""
    before = np.asarray(base, dtype=np.float64)
    after = np.asarray(adjusted, dtype=np.float64)
    if before.shape != after.shape:
        raise DataError(f"match vectors differ in shape: {before.shape} vs {after.shape}")
    return after - before
