"""COCM: the numba kernel, the numpy block version and the dense transcription equal a loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf.errors import ConfigError
from qf.matching.cocm import (
    Variant,
    cocm,
    cocm_donors,
    cocm_funding,
    cocm_funding_blocks,
    cocm_funding_reference,
)
from qf.matching.standard import standard_qf
from tests.matching.strategies import contribution_matrices

VARIANTS: list[Variant] = ["markov", "harsh"]


def plain_cocm(matrix: np.ndarray, variant: str) -> list[float]:
    """Gitcoin's COCM (clusters = projects, Markov closeness) written with loops, donors filtered first."""
    donors_all, projects = matrix.shape
    funded = sum(1 for p in range(projects) if any(matrix[i, p] > 0 for i in range(donors_all)))
    rows = []
    for i in range(donors_all):
        degree = sum(1 for p in range(projects) if matrix[i, p] > 0)
        if 2 <= degree < funded:
            rows.append([float(x) for x in matrix[i]])
    n = len(rows)
    if n == 0:
        return [0.0] * projects
    weight = [[x / sum(row) for x in row] for row in rows]
    totals = [sum(rows[i][g] for i in range(n)) for g in range(projects)]
    by_project = [[rows[i][g] / totals[g] if totals[g] > 0 else 0.0 for i in range(n)] for g in range(projects)]
    walk = [[sum(by_project[g][i] * weight[i][h] for i in range(n)) for h in range(projects)] for g in range(projects)]
    close = [
        [
            max(sum(weight[i][g] * walk[g][h] for g in range(projects)), 1.0 if rows[i][h] > 0 else 0.0)
            for h in range(projects)
        ]
        for i in range(n)
    ]
    funding = []
    for p in range(projects):
        spread = []
        for i in range(n):
            c = rows[i][p]
            if variant == "harsh":
                spread.append([(1 - close[i][g]) * c for g in range(projects)])
            else:
                spread.append([close[i][g] * math.sqrt(c) + (1 - close[i][g]) * c for g in range(projects)])
        pair = [[sum(spread[i][g] * weight[i][h] for i in range(n)) for h in range(projects)] for g in range(projects)]
        funding.append(
            sum(math.sqrt(pair[g][h] * pair[h][g]) for g in range(projects) for h in range(projects) if g != h)
        )
    return funding


# A bridge: donor 0 gives to A and B, donor 1 to B and C. Worked by hand:
# W = [(.5,.5,0), (0,.5,.5)], k0 = max((.375,.5,.125), (1,1,0)) = (1,1,.125), k1 mirrored.
BRIDGE = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])


def test_hand_checked_bridge_harsh() -> None:
    """Harsh: only B earns, from the A-C pair its two donors bridge: 2 * 0.875 * 0.5 = 0.875."""
    np.testing.assert_allclose(cocm_funding(BRIDGE, variant="harsh"), [0.0, 0.875, 0.0], atol=1e-12)
    np.testing.assert_allclose(cocm(BRIDGE, variant="harsh"), [0.0, 1.0, 0.0], atol=1e-12)


def test_hand_checked_bridge_markov() -> None:
    """Markov with unit gifts: K = 1 everywhere, so funding is sum_{g != h} sqrt(w_g w_h)."""
    expected = [1.0, 1.0 + 2.0 * math.sqrt(2.0), 1.0]
    np.testing.assert_allclose(cocm_funding(BRIDGE, variant="markov"), expected, rtol=1e-12)


def test_single_project_and_everywhere_donors_are_left_out() -> None:
    """Donors of one project or of every funded project do not enter COCM; the rest decide."""
    extra = np.array([[5.0, 0.0, 0.0], [0.0, 0.0, 7.0], [2.0, 3.0, 4.0], [0.0, 0.0, 0.0]])
    matrix = np.vstack([BRIDGE, extra])
    np.testing.assert_array_equal(cocm_donors(matrix), [True, True, False, False, False, False])
    for variant in VARIANTS:
        np.testing.assert_allclose(cocm_funding(matrix, variant=variant), cocm_funding(BRIDGE, variant=variant))


def test_nothing_to_match_gives_zero_shares() -> None:
    """All-zero rounds, or rounds with only single-project donors, get all-zero COCM shares."""
    np.testing.assert_array_equal(cocm(np.zeros((3, 2))), [0.0, 0.0])
    single = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 4.0]])
    np.testing.assert_array_equal(cocm(single), [0.0, 0.0])
    # The crossfade still hands the QF part out, renormalised.
    np.testing.assert_allclose(cocm(single, pct_cocm=0.5), [1.0, 0.0])


def test_bad_arguments_are_refused() -> None:
    """An unknown variant or a crossfade outside [0, 1] is a configuration error."""
    with pytest.raises(ConfigError):
        cocm(BRIDGE, variant="og")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        cocm(BRIDGE, pct_cocm=1.5)


@given(contribution_matrices(max_donors=8, max_projects=5), st.sampled_from(VARIANTS))
def test_all_implementations_equal_the_loop_reference(matrix: np.ndarray, variant: Variant) -> None:
    """Numba kernel, numpy blocks and dense transcription all equal the loop reference to 1e-9."""
    expected = plain_cocm(matrix, variant)
    scale = 1e-9 * (1 + matrix.sum())
    for implementation in (cocm_funding, cocm_funding_blocks, cocm_funding_reference):
        got = np.asarray(implementation(matrix, variant=variant))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=scale)


@given(contribution_matrices(), st.sampled_from(VARIANTS), st.floats(min_value=0.0, max_value=1.0))
def test_shares_are_a_distribution(matrix: np.ndarray, variant: Variant, pct: float) -> None:
    """Shares are non-negative and sum to 1, or are all zero."""
    shares = cocm(matrix, variant=variant, pct_cocm=pct)
    assert np.all(shares >= 0)
    assert shares.sum() == pytest.approx(1.0) or not shares.any()


@given(contribution_matrices())
def test_zero_crossfade_is_standard_qf(matrix: np.ndarray) -> None:
    """pct_cocm = 0 gives the standard QF shares."""
    _, raw = standard_qf(matrix)
    expected = raw / raw.sum() if raw.sum() > 0 else raw
    np.testing.assert_allclose(cocm(matrix, pct_cocm=0.0), expected, rtol=1e-9, atol=1e-12)


@given(contribution_matrices(), st.floats(min_value=1e-2, max_value=1e2))
def test_harsh_shares_are_scale_invariant(matrix: np.ndarray, factor: float) -> None:
    """Harsh COCM funding is linear in the amounts, so its shares ignore the currency unit."""
    funding = cocm_funding(matrix, variant="harsh")
    np.testing.assert_allclose(
        cocm_funding(matrix * factor, variant="harsh"),
        funding * factor,
        rtol=1e-9,
        atol=1e-9 * (1 + funding.sum() * factor),
    )
