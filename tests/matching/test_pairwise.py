"""Pairwise-bounded QF: numba kernel equals the numpy and loop references, and the limits in M hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.matching.pairwise import pairwise_subsidies, pairwise_subsidies_reference
from qf_sentinel.qf.matching.standard import standard_qf
from tests.matching.strategies import contribution_matrices


def plain_pairwise(matrix: np.ndarray, m: float) -> list[float]:
    """Buterin's formula with loops: every ordered pair of distinct donors of every project."""
    donors, projects = matrix.shape
    roots = [[math.sqrt(matrix[i, p]) for p in range(projects)] for i in range(donors)]
    subsidies = [0.0] * projects
    for i in range(donors):
        for j in range(donors):
            if i == j:
                continue
            overlap = sum(roots[i][p] * roots[j][p] for p in range(projects))
            if overlap == 0:
                continue
            k = m / (m + overlap)
            for p in range(projects):
                subsidies[p] += k * roots[i][p] * roots[j][p]
    return subsidies


def test_hand_checked_pair() -> None:
    """Two donors of 1 to one project with M = 1: overlap 1, k = 1/2, subsidy 2 * 1/2 = 1 (QF gives 2)."""
    matrix = np.array([[1.0], [1.0]])
    np.testing.assert_allclose(pairwise_subsidies(matrix, 1.0), [1.0])
    np.testing.assert_allclose(standard_qf(matrix)[1], [2.0])


def test_pair_co_funding_many_projects_is_damped() -> None:
    """A pair sharing two projects (overlap 2) earns k = 1/3 on each, less than a pair sharing one."""
    matrix = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(pairwise_subsidies(matrix, 1.0), [2 / 3, 2 / 3, 1.0])


def test_single_donor_and_empty_round() -> None:
    """One donor, or no contributions at all, gives zero subsidy everywhere."""
    np.testing.assert_array_equal(pairwise_subsidies(np.array([[5.0, 3.0]]), 1.0), [0.0, 0.0])
    np.testing.assert_array_equal(pairwise_subsidies(np.zeros((4, 3)), 1.0), np.zeros(3))
    np.testing.assert_array_equal(pairwise_subsidies_reference(np.zeros((4, 3)), 1.0), np.zeros(3))


def test_bad_m_is_refused() -> None:
    """A negative or infinite M is a configuration error."""
    with pytest.raises(ConfigError):
        pairwise_subsidies(np.ones((2, 2)), -1.0)
    with pytest.raises(ConfigError):
        pairwise_subsidies(np.ones((2, 2)), math.inf)


@given(contribution_matrices(), st.floats(min_value=0.0, max_value=1e4))
def test_kernel_equals_numpy_and_loop_references(matrix: np.ndarray, m: float) -> None:
    """The numba kernel equals the dense numpy reference and the loop reference to 1e-9."""
    fast = pairwise_subsidies(matrix, m)
    scale = 1e-9 * (1 + matrix.sum())
    np.testing.assert_allclose(fast, pairwise_subsidies_reference(matrix, m), rtol=1e-9, atol=scale)
    np.testing.assert_allclose(fast, plain_pairwise(matrix, m), rtol=1e-9, atol=scale)


@given(contribution_matrices(), st.floats(min_value=0.0, max_value=1e4))
def test_pairwise_is_bounded_by_standard(matrix: np.ndarray, m: float) -> None:
    """Every project's pairwise subsidy lies between 0 and its standard QF match."""
    fast = pairwise_subsidies(matrix, m)
    _, raw = standard_qf(matrix)
    assert np.all(fast >= 0)
    assert np.all(fast <= raw + 1e-9 * (1 + raw))


@given(contribution_matrices())
def test_limits_in_m(matrix: np.ndarray) -> None:
    """M = 0 pays nothing; a huge M pays the standard QF match."""
    np.testing.assert_array_equal(pairwise_subsidies(matrix, 0.0), np.zeros(matrix.shape[1]))
    _, raw = standard_qf(matrix)
    np.testing.assert_allclose(pairwise_subsidies(matrix, 1e15), raw, rtol=1e-6, atol=1e-6 * (1 + matrix.sum()))


@given(contribution_matrices(), st.floats(min_value=0.0, max_value=100.0), st.floats(min_value=1e-2, max_value=1e2))
def test_scaling_contributions_and_m_together(matrix: np.ndarray, m: float, factor: float) -> None:
    """Scaling contributions and M by t scales subsidies by t (k depends only on the ratio)."""
    scaled = pairwise_subsidies(matrix * factor, m * factor)
    np.testing.assert_allclose(
        scaled, pairwise_subsidies(matrix, m) * factor, rtol=1e-9, atol=1e-9 * (1 + matrix.sum() * factor)
    )
