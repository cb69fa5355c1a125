"""compute_matching: every method spends the pool, honours the cap and refuses bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.matching import METHODS, compute_matching
from qf_sentinel.qf.matching.cocm import cocm
from tests.matching.strategies import contribution_matrices

# Five projects, donors overlapping so that every method has something to match.
ROUND = np.array(
    [
        [1.0, 2.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 3.0, 0.0, 0.0],
        [0.0, 1.0, 1.0, 1.0, 0.0],
        [4.0, 0.0, 0.0, 1.0, 1.0],
        [0.0, 0.0, 2.0, 0.0, 2.0],
        [9.0, 0.0, 0.0, 0.0, 0.0],
    ]
)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_spends_the_pool(method: str) -> None:
    """Each method pays non-negative matches summing to the pool."""
    weights = np.ones(ROUND.shape[0]) if method == "risk-adjusted" else None
    matches = compute_matching(ROUND, 1000.0, method=method, weights=weights)  # type: ignore[arg-type]
    assert np.all(matches >= 0)
    assert matches.sum() == pytest.approx(1000.0)


@pytest.mark.parametrize("method", METHODS)
def test_cap_applies_to_every_method(method: str) -> None:
    """With a 25 % cap no project gets more than 250 of 1000 and the pool is still spent."""
    weights = np.ones(ROUND.shape[0]) if method == "risk-adjusted" else None
    matches = compute_matching(ROUND, 1000.0, method=method, cap_pct=25, weights=weights)  # type: ignore[arg-type]
    assert matches.max() <= 250.0
    assert matches.sum() == pytest.approx(1000.0)


def test_cocm_matches_are_shares_times_pool() -> None:
    """The facade's COCM is the crossfaded shares times the pool."""
    matches = compute_matching(ROUND, 500.0, method="cocm", pct_cocm=0.3, cocm_variant="markov")
    np.testing.assert_allclose(matches, 500.0 * cocm(ROUND, variant="markov", pct_cocm=0.3))


def test_cocm_default_is_qf_calculators_and_counts_every_donor() -> None:
    """Default COCM is harsh over every donor (the single-project donor of A included), as in qf-calculator."""
    matches = compute_matching(ROUND, 500.0, method="cocm", pct_cocm=0.5)
    np.testing.assert_allclose(matches, 500.0 * cocm(ROUND, variant="harsh", pct_cocm=0.5))
    with_single = compute_matching(ROUND, 500.0, method="cocm")
    without_single = compute_matching(ROUND[:-1], 500.0, method="cocm")
    assert np.abs(with_single - without_single).max() > 1.0


def test_old_exclusion_is_threaded_through() -> None:
    """exclude_uninformative_donors=True gives the old COCM, where the single-project donor changes nothing."""
    old = compute_matching(ROUND, 500.0, method="cocm", exclude_uninformative_donors=True)
    np.testing.assert_allclose(old, 500.0 * cocm(ROUND, exclude_uninformative_donors=True))
    np.testing.assert_allclose(old, compute_matching(ROUND[:-1], 500.0, method="cocm"), rtol=1e-12)
    assert np.abs(old - compute_matching(ROUND, 500.0, method="cocm")).max() > 1.0


def test_zero_pool_and_empty_round() -> None:
    """A zero pool or an all-zero matrix pays nothing."""
    np.testing.assert_array_equal(compute_matching(ROUND, 0.0, method="pairwise", cap_pct=10), np.zeros(5))
    np.testing.assert_array_equal(compute_matching(np.zeros((2, 3)), 100.0, method="cocm"), np.zeros(3))


def test_bad_arguments_are_refused() -> None:
    """Unknown methods, a missing weight vector and a cap outside (0, 100] raise ConfigError."""
    with pytest.raises(ConfigError):
        compute_matching(ROUND, 1.0, method="quadratic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        compute_matching(ROUND, 1.0, method="risk-adjusted")
    with pytest.raises(ConfigError):
        compute_matching(ROUND, 1.0, cap_pct=0)


@given(contribution_matrices(), st.sampled_from(METHODS), st.floats(min_value=1.0, max_value=100.0))
def test_matches_never_exceed_pool_or_cap(matrix: np.ndarray, method: str, cap_pct: float) -> None:
    """Any method, any cap: matches are non-negative, each within the cap, together within the pool."""
    weights = np.full(matrix.shape[0], 0.5) if method == "risk-adjusted" else None
    matches = compute_matching(matrix, 100.0, method=method, cap_pct=cap_pct, weights=weights)  # type: ignore[arg-type]
    assert np.all(matches >= 0)
    assert np.all(matches <= cap_pct + 1e-9)
    assert matches.sum() <= 100.0 + 1e-9
