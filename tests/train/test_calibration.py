"""Calibration and thresholds: monotone, equal to scikit-learn, and holding the stated background rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.matching.risk import gate_weights
from qf_sentinel.qf.model.calibration import Calibration
from qf_sentinel.qf.model.errors import UnsupportedModel
from qf_sentinel.qf.train.calibration import choose_thresholds, fit_calibration, rate_threshold


def test_calibration_equals_isotonic_regression_and_keeps_the_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.1
    raw = np.clip(rng.normal(0.3 + 0.4 * y, 0.15), 0, 1)
    calibration, fitted = fit_calibration(raw, y)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw, y.astype(float))
    grid = np.linspace(-0.5, 1.5, 1001)
    np.testing.assert_allclose(calibration.apply(grid), reference.predict(grid), atol=1e-12)
    np.testing.assert_allclose(calibration.apply(raw), fitted, atol=1e-12)
    assert np.all(np.diff(calibration.apply(grid)) >= 0)
    calibration.save(tmp_path / "calibration.npz")
    again = Calibration.load(tmp_path / "calibration.npz")
    np.testing.assert_array_equal(again.apply(grid), calibration.apply(grid))


def test_calibrated_scores_mean_what_they_say() -> None:
    """Among held-out donors scored about p, about p are attackers (binned, large sample)."""
    rng = np.random.default_rng(1)
    y = rng.random(20000) < 0.2
    raw = 1 / (1 + np.exp(-(rng.normal(0, 1, y.size) + 2.5 * y - 1)))
    calibration, _ = fit_calibration(raw[:10000], y[:10000])
    p = calibration.apply(raw[10000:])
    for low, high in ((0.0, 0.2), (0.2, 0.5), (0.5, 1.0)):
        inside = (p >= low) & (p < high)
        assert abs(y[10000:][inside].mean() - p[inside].mean()) < 0.03


def test_one_class_or_bad_arrays_are_refused() -> None:
    with pytest.raises(DataError):
        fit_calibration([0.1, 0.2], [False, False])
    with pytest.raises(UnsupportedModel):
        Calibration(x=np.array([0.0, 1.0]), y=np.array([0.5, 0.2]))
    with pytest.raises(UnsupportedModel):
        Calibration(x=np.array([0.0, np.nan]), y=np.array([0.0, 1.0]))


@given(
    scores=st.lists(st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0]), min_size=1, max_size=300),
    rate=st.sampled_from([0.0, 0.01, 0.05, 0.2]),
)
def test_rate_threshold_holds_the_rate_and_is_the_lowest(scores: list[float], rate: float) -> None:
    values = np.array(scores)
    t = rate_threshold(values, rate)
    assert np.mean(values >= t) <= rate + 1e-12
    lower = values[values < t]
    if lower.size:  # any lower threshold at a data value would let more than the rate through
        assert np.mean(values >= lower.max()) > rate


def test_thresholds_hold_the_background_rates_and_the_nominal_block() -> None:
    rng = np.random.default_rng(2)
    background = rng.beta(1, 30, 5000)
    review, block = choose_thresholds(background, block=0.7, review_rate=0.05, block_rate=0.01)
    assert np.mean(background >= review) <= 0.05
    assert np.mean(background > block) <= 0.01
    assert block == 0.7
    assert 0.05 <= review < block
    noisy = np.concatenate([background, np.full(200, 0.9)])  # 4% of the background scores 0.9
    _, block = choose_thresholds(noisy, block=0.7, review_rate=0.05, block_rate=0.01)
    assert block > 0.9
    assert np.mean(noisy > block) <= 0.01


def test_gate_weights_leave_approved_donors_alone_and_discount_flagged_communities() -> None:
    scores = np.array([0.01, 0.02, 0.3, 0.9, 0.03, 0.5, 0.8, 0.04])
    community = np.array([0, 0, 0, 0, 1, 1, 1, -1])
    weights, share = gate_weights(scores, review=0.1, block=0.7, community=community)
    plain, _ = gate_weights(scores, review=0.1, block=0.7)
    np.testing.assert_allclose(plain, [1, 1, (0.7 - 0.3) / 0.6, 0, 1, (0.7 - 0.5) / 0.6, 0, 1])
    # community 0: half flagged -> everyone scaled by the approved half; community 1: 2/3 flagged
    np.testing.assert_allclose(share, [0.5, 0.5, 0.5, 0.5, 2 / 3, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(weights, plain * np.array([0.5, 0.5, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3, 1]))
    lonely, _ = gate_weights(np.array([0.01, 0.9]), review=0.1, block=0.7, community=np.array([0, 1]))
    assert lonely[0] == 1.0
