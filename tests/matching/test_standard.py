"""Standard QF, pro-rata scaling and the Gitcoin cap against hand-checked rounds and loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.matching.standard import apply_cap, scale_to_pool, standard_qf
from tests.matching.strategies import contribution_matrices


def plain_standard_qf(matrix: np.ndarray) -> list[float]:
    """Standard QF written with loops: (sum of square roots)^2 minus the sum, per project."""
    raw = []
    for p in range(matrix.shape[1]):
        root_sum = 0.0
        total = 0.0
        for i in range(matrix.shape[0]):
            root_sum += math.sqrt(matrix[i, p])
            total += matrix[i, p]
        raw.append(max(root_sum**2 - total, 0.0))
    return raw


def plain_cap(matches: list[float], cap: float) -> list[float]:
    """Gitcoin's cap loop written element by element."""
    values = list(matches)
    while any(v > cap * (1 + 1e-12) for v in values):
        excess = sum(v - cap for v in values if v > cap)
        values = [min(v, cap) for v in values]
        room = sum(v for v in values if v < cap * (1 - 1e-12))
        if room <= 0:
            break
        values = [v / room * (room + excess) if v < cap * (1 - 1e-12) else v for v in values]
    return [min(v, cap) for v in values]


def test_hand_checked_round() -> None:
    """Four donors of 1 earn a raw match of 12; one donor of 16 earns 0."""
    matrix = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 16]], dtype=np.float64)
    sqrt_sums, raw = standard_qf(matrix)
    np.testing.assert_allclose(sqrt_sums, [4.0, 4.0])
    np.testing.assert_allclose(raw, [12.0, 0.0])
    np.testing.assert_allclose(scale_to_pool(raw, 600.0), [600.0, 0.0])


def test_all_zero_matrix_matches_nothing() -> None:
    """A round without contributions gets zero raw match and zero scaled match."""
    _, raw = standard_qf(np.zeros((3, 4)))
    np.testing.assert_array_equal(raw, np.zeros(4))
    np.testing.assert_array_equal(scale_to_pool(raw, 1000.0), np.zeros(4))


def test_zero_pool_pays_nothing() -> None:
    """Scaling to an empty pool pays every project zero, capped or not."""
    matches = scale_to_pool([3.0, 1.0], 0.0)
    np.testing.assert_array_equal(matches, [0.0, 0.0])
    np.testing.assert_array_equal(apply_cap(matches, 0.0, 0.5), [0.0, 0.0])


def test_cap_binding_on_several_projects() -> None:
    """Two projects over a 30 % cap are clamped and their excess goes pro rata to the rest."""
    matches = np.array([50.0, 35.0, 10.0, 5.0])
    capped = apply_cap(matches, 100.0, 0.30)
    # 25 excess over 15 of room: x(1 + 25/15) = 26.67 and 13.33, both under the cap.
    np.testing.assert_allclose(capped, [30.0, 30.0, 10.0 * 40 / 15, 5.0 * 40 / 15])
    assert capped.sum() == pytest.approx(100.0)


def test_cap_cascades_until_nothing_exceeds() -> None:
    """Redistribution that pushes another project over the cap triggers another pass."""
    matches = np.array([60.0, 24.0, 16.0])
    capped = apply_cap(matches, 100.0, 0.4)
    # pass 1: 20 excess over 40 of room -> 36, 24; pass 2 has nothing over 40.
    np.testing.assert_allclose(capped, [40.0, 36.0, 24.0])
    capped = apply_cap(np.array([50.0, 30.0, 20.0]), 100.0, 0.35)
    # 15 over 50 of room -> 39, 26; then 4 over 26 -> 35, 30.
    np.testing.assert_allclose(capped, [35.0, 35.0, 30.0])


def test_cap_strands_leftover_when_every_project_is_capped() -> None:
    """With every funded project at the cap the excess stays unallocated."""
    capped = apply_cap(np.array([70.0, 30.0, 0.0]), 100.0, 0.25)
    np.testing.assert_allclose(capped, [25.0, 25.0, 0.0])


def test_bad_input_is_refused() -> None:
    """Negative amounts, a 1-D matrix, a bad cap or pool raise the package errors."""
    with pytest.raises(DataError):
        standard_qf(np.array([[1.0, -1.0]]))
    with pytest.raises(DataError):
        standard_qf(np.array([1.0, 2.0]))
    with pytest.raises(ConfigError):
        apply_cap(np.array([1.0]), 10.0, 0.0)
    with pytest.raises(ConfigError):
        scale_to_pool(np.array([1.0]), -1.0)


@given(contribution_matrices())
def test_standard_equals_loop_reference(matrix: np.ndarray) -> None:
    """The vectorised formula equals the loop reference and is never negative."""
    _, raw = standard_qf(matrix)
    assert np.all(raw >= 0)
    np.testing.assert_allclose(raw, plain_standard_qf(matrix), rtol=1e-9, atol=1e-9 * (1 + matrix.sum()))


@given(contribution_matrices(), st.floats(min_value=1e-3, max_value=1e3))
def test_standard_is_scale_invariant(matrix: np.ndarray, factor: float) -> None:
    """Multiplying every contribution by t multiplies raw matches by t and leaves scaled matches alone."""
    _, raw = standard_qf(matrix)
    _, scaled_raw = standard_qf(matrix * factor)
    np.testing.assert_allclose(scaled_raw, raw * factor, rtol=1e-9, atol=1e-9 * (1 + raw.max() * factor))
    if raw.sum() > 1e-6 * matrix.sum():
        np.testing.assert_allclose(scale_to_pool(scaled_raw, 1.0), scale_to_pool(raw, 1.0), rtol=1e-6, atol=1e-9)


@given(st.lists(st.floats(min_value=0.01, max_value=1e4), min_size=1, max_size=6), st.integers(0, 5))
def test_single_donor_project_gets_zero(amounts: list[float], project: int) -> None:
    """A project funded by one donor gets raw 0 under standard QF, however much it received."""
    matrix = np.zeros((len(amounts), 6))
    matrix[:, (project + 1) % 6] = amounts  # some other project with many donors
    matrix[0, project] += 123.0 if project != (project + 1) % 6 else 0.0
    _, raw = standard_qf(matrix)
    assert raw[project] == pytest.approx(0.0, abs=1e-9)


@given(
    st.lists(st.floats(min_value=0.0, max_value=1e4), min_size=1, max_size=12),
    st.floats(min_value=0.01, max_value=1.0),
)
def test_cap_is_never_exceeded_and_total_is_kept(matches: list[float], cap_fraction: float) -> None:
    """No project ends above the cap; the total is kept whenever the funded projects can hold it."""
    pool = 1000.0
    scaled = scale_to_pool(matches, pool)
    capped = apply_cap(scaled, pool, cap_fraction)
    cap = cap_fraction * pool
    assert np.all(capped <= cap)
    assert np.all(capped >= 0)
    np.testing.assert_allclose(capped, plain_cap(list(scaled), cap), rtol=1e-9, atol=1e-9)
    if np.count_nonzero(scaled) * cap >= scaled.sum():
        assert capped.sum() == pytest.approx(scaled.sum(), rel=1e-9, abs=1e-9)
    else:
        assert capped.sum() <= scaled.sum() + 1e-9
