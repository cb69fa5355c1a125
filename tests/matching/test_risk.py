"""Risk-adjusted matching: score-to-weight rules, row weighting and the per-project delta."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.matching.risk import match_delta, risk_weighted, weights_from_scores
from qf_sentinel.qf.matching.standard import standard_qf
from tests.matching.strategies import contribution_matrices


def test_linear_and_threshold_weights() -> None:
    """Linear weights are 1 - score; a threshold zeroes the scores above it."""
    scores = [0.0, 0.25, 0.8, 1.0]
    np.testing.assert_allclose(weights_from_scores(scores), [1.0, 0.75, 0.2, 0.0])
    np.testing.assert_allclose(weights_from_scores(scores, threshold=0.5), [1.0, 0.75, 0.0, 0.0])
    np.testing.assert_allclose(weights_from_scores(scores, threshold=0.5, mode="exclude"), [1.0, 1.0, 0.0, 0.0])


def test_bad_scores_and_modes_are_refused() -> None:
    """Scores outside [0, 1], exclusion without a threshold and unknown modes raise."""
    with pytest.raises(DataError):
        weights_from_scores([1.5])
    with pytest.raises(ConfigError):
        weights_from_scores([0.5], mode="exclude")
    with pytest.raises(ConfigError):
        weights_from_scores([0.5], mode="cubic")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        risk_weighted(np.ones((2, 2)), [1.0])


def test_excluding_a_sybil_removes_its_match() -> None:
    """Weight 0 on three clone donors takes their project back to a single donor's raw 0."""
    matrix = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    weights = weights_from_scores([0.9, 0.9, 0.9, 0.0, 0.0, 0.0], threshold=0.5)
    _, base = standard_qf(matrix)
    _, adjusted = standard_qf(risk_weighted(matrix, weights))
    np.testing.assert_allclose(base, [12.0, 2.0])
    np.testing.assert_allclose(adjusted, [0.0, 2.0])
    np.testing.assert_allclose(match_delta(base, adjusted), [-12.0, 0.0])


@given(contribution_matrices(), st.data())
def test_zero_weight_equals_dropping_the_donor(matrix: np.ndarray, data: st.DataObject) -> None:
    """Weighting a donor by 0 gives the same standard QF as removing its row."""
    drop = data.draw(st.integers(0, matrix.shape[0] - 1))
    weights = np.ones(matrix.shape[0])
    weights[drop] = 0.0
    _, weighted = standard_qf(risk_weighted(matrix, weights))
    _, dropped = standard_qf(np.delete(matrix, drop, axis=0))
    np.testing.assert_allclose(weighted, dropped, rtol=1e-9, atol=1e-9 * (1 + matrix.sum()))


@given(contribution_matrices(), st.data())
def test_weights_never_raise_a_match(matrix: np.ndarray, data: st.DataObject) -> None:
    """Weights in [0, 1] can only lower each project's standard QF match."""
    weights = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=matrix.shape[0], max_size=matrix.shape[0])))
    _, base = standard_qf(matrix)
    _, adjusted = standard_qf(risk_weighted(matrix, weights))
    assert np.all(match_delta(base, adjusted) <= 1e-9 * (1 + base))
