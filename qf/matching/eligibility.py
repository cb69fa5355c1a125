"""Which donations count towards matching: Gitcoin's eligibility rules as pure logic.

This is the step before every formula in :mod:`qf.matching`: it turns a
round's donations into the donors x projects contribution matrix ``C`` the
formulas take. It follows ``apply_voting_eligibility`` and ``pivot_votes`` in
``fundingutils.py`` and ``load_data`` in ``Home.py`` of
github.com/gitcoinco/qf-calculator. Each rule is optional (see
:class:`Eligibility`) and, as there, is decided per donation, before the
donations of a donor to a project are summed:

* **minimum donation** -- a donation with ``amount < min_donation`` counts 0
  (the calculator's ``low_amount``). The threshold is in the unit of the
  amounts (the calculator compares USD; callers here pass pool-token units);
  a donation exactly at the minimum counts;
* **self-donation** -- a donation whose donor is one of the project's "self"
  addresses counts 0. The calculator compares the donor with the payout
  address only; the caller here passes, per project, every address it
  considers the project itself (recipient id, payout address, profile owners);
* **score scaling** -- a donor's amounts are multiplied by
  ``np.interp(score, [score_lower, score_upper], [0.5, 1.0])``: 1 above
  ``score_upper``, 0 (excluded) below ``score_lower``. When both thresholds
  are equal, a score at the threshold keeps the full amount (``np.interp``
  returns its right end there). **A donor without a score is scored 0**, as
  the calculator's ``fillna(0)`` does, so it is excluded whenever
  ``score_lower > 0``.

Nothing here reads a database or a file; addresses are compared exactly as
given, so pass them in the project's canonical form (lower-case hex).
Bad rule values raise :class:`qf.errors.ConfigError`, malformed donations
:class:`qf.errors.DataError`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.matching.standard import FloatArray

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# The calculator's scale: half the amount at score_lower, all of it at score_upper.
_SCALE_AT_THRESHOLDS = (0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The eligibility rules of a matching run; the defaults count every donation in full."""

    min_donation: float | None = None
    exclude_self: bool = False
    score_lower: float | None = None
    score_upper: float | None = None

    def __post_init__(self) -> None:
        if self.min_donation is not None:
            object.__setattr__(self, "min_donation", _threshold(self.min_donation, "minimum donation"))
        if not isinstance(self.exclude_self, bool):
            raise ConfigError(f"exclude_self must be true or false, got {self.exclude_self!r}")
        if (self.score_lower is None) != (self.score_upper is None):
            raise ConfigError("score scaling needs both score_lower and score_upper, or neither")
        if self.score_lower is not None and self.score_upper is not None:
            lower = _threshold(self.score_lower, "score_lower")
            upper = _threshold(self.score_upper, "score_upper")
            if lower > upper:
                raise ConfigError(f"score_lower ({lower}) must not exceed score_upper ({upper})")
            object.__setattr__(self, "score_lower", lower)
            object.__setattr__(self, "score_upper", upper)

    @property
    def scales_by_score(self) -> bool:
        """Whether donor scores are needed (both thresholds set)."""
        return self.score_lower is not None

    def params(self) -> dict[str, float | bool | None]:
        """The rules as a JSON-able dict, for ``qf.matching_runs.params``."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Exclusions:
    """What the rules left out, counted for the run's report.

    A donation can fail several rules at once; each count is per rule, and
    ``excluded`` counts every donation that ends up counting 0 once.
    """

    donations: int  # donations read
    below_minimum: int  # amount < min_donation
    self_donations: int  # donor is one of the project's own addresses
    low_score: int  # donor scored below score_lower (a missing score counts as 0)
    excluded: int  # donations counting 0 for any of the reasons above
    scaled: int  # donations kept at a factor below 1 (score between the thresholds)
    donors_unscored: int  # donors with donations but no score, scored 0
    donors_low_score: int  # donors with donations who scored below score_lower
    amount_total: float  # sum of the donations as given
    amount_counted: float  # sum of the resulting matrix

    def as_dict(self) -> dict[str, int | float]:
        """The counts as a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EligibleContributions:
    """The donors x projects matrix after the rules, and what they left out."""

    matrix: FloatArray
    excluded: Exclusions


def eligible_contributions(
    donor: npt.ArrayLike,
    project: npt.ArrayLike,
    amount: npt.ArrayLike,
    *,
    n_donors: int,
    n_projects: int,
    rules: Eligibility,
    donor_addresses: Sequence[str] | None = None,
    donor_scores: npt.ArrayLike | None = None,
    project_self_addresses: Sequence[Collection[str]] | None = None,
) -> EligibleContributions:
    """Apply ``rules`` to the donations and sum them into a ``n_donors x n_projects`` float64 matrix.

    Donation ``k`` is ``amount[k]`` from donor ``donor[k]`` to project
    ``project[k]`` (indexes into the per-donor and per-project inputs).
    ``donor_addresses`` and ``project_self_addresses`` are needed when
    ``rules.exclude_self``; ``donor_scores`` (one per donor, NaN or None for
    "no score") when the rules scale by score. Rows of donors whose every
    donation was excluded stay in the matrix as zeros; the formulas drop them.
    """
    donors = _indices(donor, n_donors, "donor")
    projects = _indices(project, n_projects, "project")
    amounts = np.asarray(amount, dtype=np.float64)
    if not donors.shape == projects.shape == amounts.shape:
        raise DataError(
            f"donor, project and amount must be 1-D and of one length, got {donors.shape}, "
            f"{projects.shape} and {amounts.shape}"
        )
    if not np.all(np.isfinite(amounts)) or np.any(amounts < 0):
        raise DataError("donation amounts must be finite and non-negative")

    none = np.zeros(amounts.shape, dtype=np.bool_)
    below = amounts < rules.min_donation if rules.min_donation is not None else none
    own = none
    if rules.exclude_self:
        if donor_addresses is None or project_self_addresses is None:
            raise DataError("excluding self-donations needs donor_addresses and project_self_addresses")
        own = _self_donations(donors, projects, donor_addresses, project_self_addresses, (n_donors, n_projects))
    factor = np.ones(n_donors)
    unscored = np.zeros(n_donors, dtype=np.bool_)
    if rules.score_lower is not None and rules.score_upper is not None:
        if donor_scores is None:
            raise DataError("score scaling needs donor_scores")
        factor, unscored = _score_factors(donor_scores, n_donors, rules.score_lower, rules.score_upper)
    low = factor[donors] == 0.0
    dropped = below | own | low
    counted = np.where(dropped, 0.0, amounts * factor[donors])
    matrix = np.zeros((n_donors, n_projects))
    np.add.at(matrix, (donors, projects), counted)

    gave = np.zeros(n_donors, dtype=np.bool_)
    gave[donors] = True
    excluded = Exclusions(
        donations=int(amounts.size),
        below_minimum=int(below.sum()),
        self_donations=int(own.sum()),
        low_score=int(low.sum()),
        excluded=int(dropped.sum()),
        scaled=int((~dropped & (factor[donors] < 1.0)).sum()),
        donors_unscored=int((gave & unscored).sum()),
        donors_low_score=int((gave & (factor == 0.0)).sum()),
        amount_total=float(amounts.sum()),
        amount_counted=float(matrix.sum()),
    )
    return EligibleContributions(matrix=matrix, excluded=excluded)


def _score_factors(
    donor_scores: npt.ArrayLike, n_donors: int, lower: float, upper: float
) -> tuple[FloatArray, BoolArray]:
    """Per donor: the factor its amounts are multiplied by, and whether it had no score."""
    scores = np.asarray(donor_scores, dtype=np.float64)
    if scores.shape != (n_donors,):
        raise DataError(f"donor_scores must hold one score per donor ({n_donors}), got shape {scores.shape}")
    if np.any(np.isinf(scores)):
        raise DataError("donor scores must be finite (NaN for a donor without a score)")
    unscored = np.isnan(scores)
    filled = np.where(unscored, 0.0, scores)  # the calculator's fillna(0)
    factor = np.interp(filled, [lower, upper], _SCALE_AT_THRESHOLDS)
    factor[filled > upper] = 1.0
    factor[filled < lower] = 0.0
    return factor, unscored


def _self_donations(
    donors: IntArray,
    projects: IntArray,
    donor_addresses: Sequence[str],
    project_self_addresses: Sequence[Collection[str]],
    shape: tuple[int, int],
) -> BoolArray:
    """Mask of the donations whose donor is one of the receiving project's own addresses."""
    n_donors, n_projects = shape
    if len(donor_addresses) != n_donors:
        raise DataError(f"donor_addresses must hold one address per donor ({n_donors}), got {len(donor_addresses)}")
    if len(project_self_addresses) != n_projects:
        raise DataError(
            f"project_self_addresses must hold one collection per project ({n_projects}), "
            f"got {len(project_self_addresses)}"
        )
    donor_of: dict[str, int] = {}
    for i, address in enumerate(donor_addresses):
        if donor_of.setdefault(address, i) != i:
            raise DataError(f"donor address {address} appears twice; donors must be unique")
    # Encode (donor, project) pairs as one integer so the lookup is a single np.isin.
    own_pairs = [
        donor_of[address] * n_projects + p
        for p, addresses in enumerate(project_self_addresses)
        for address in addresses
        if address in donor_of
    ]
    mask: BoolArray = np.isin(donors * n_projects + projects, np.asarray(own_pairs, dtype=np.int64))
    return mask


def _indices(values: npt.ArrayLike, size: int, what: str) -> IntArray:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
        raise DataError(f"the number of {what}s must be a non-negative integer, got {size!r}")
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(array.shape, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise DataError(f"{what} indexes must be integers, got dtype {array.dtype}")
    indices = array.astype(np.int64)
    if indices.min() < 0 or indices.max() >= size:
        raise DataError(f"{what} indexes must lie in [0, {size}), got {indices.min()}..{indices.max()}")
    return indices


def _threshold(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite, non-negative number, got {value!r}")
    return float(value)
