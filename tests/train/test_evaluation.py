"""Evaluation of risk scores: metrics against hand-written references, bootstrap intervals, gating, calibration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.train.errors import MetricError
from qf_sentinel.qf.train.evaluation import (
    Metric,
    bootstrap_ci,
    calibration_bins,
    evaluate,
    gating_outcome,
    pr_auc,
    precision_at,
    precision_recall_at,
    recall_at,
    roc_auc,
)

# --- hand-written references --------------------------------------------------


def reference_roc_auc(y: list[bool], score: list[float]) -> float:
    """Share of (sybil, non-sybil) pairs where the sybil scores higher, ties counting 1/2."""
    right, pairs = 0.0, 0
    for yi, si in zip(y, score, strict=True):
        for yj, sj in zip(y, score, strict=True):
            if yi and not yj:
                pairs += 1
                right += 1.0 if si > sj else 0.5 if si == sj else 0.0
    return right / pairs


def reference_average_precision(y: list[bool], score: list[float]) -> float:
    """Walk the distinct scores from the top: add (recall gained) x (precision) at each."""
    positives = sum(y)
    total, recall_before = 0.0, 0.0
    for threshold in sorted(set(score), reverse=True):
        flagged = [yi for yi, si in zip(y, score, strict=True) if si >= threshold]
        recall = sum(flagged) / positives
        total += (recall - recall_before) * sum(flagged) / len(flagged)
        recall_before = recall
    return total


def reference_precision_recall(y: list[bool], score: list[float], threshold: float) -> tuple[float, float]:
    hits = sum(1 for yi, si in zip(y, score, strict=True) if yi and si >= threshold)
    flagged = sum(1 for si in score if si >= threshold)
    return (hits / flagged if flagged else math.nan), (hits / sum(y) if sum(y) else math.nan)


# Scores on a coarse grid so ties, and scores exactly on a threshold, are common.
grid_scores = st.integers(0, 10).map(lambda i: i / 10)


@st.composite
def labelled_scores(draw: st.DrawFn, max_rows: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Labels with at least one sybil and one non-sybil, and risk scores in [0, 1]."""
    n = draw(st.integers(2, max_rows))
    y = draw(arrays(np.bool_, n))
    y[:2] = [True, False]
    score = draw(arrays(np.float64, n, elements=st.one_of(grid_scores, st.floats(0, 1))))
    return y, score


def _sample_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 10% sybil set whose scores separate the classes imperfectly."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.1
    y[:2] = [True, False]
    return y, np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0.0, 1.0)


# --- metrics ---------------------------------------------------------------------


def test_metrics_on_a_small_hand_checked_case() -> None:
    """Three of four pairs ranked right gives 0.75; a tie at the top counts half."""
    y = [1, 0, 1, 0]
    assert roc_auc(y, [0.9, 0.8, 0.3, 0.1]) == pytest.approx(0.75)
    assert roc_auc(y, [0.9, 0.9, 0.3, 0.1]) == pytest.approx(
        reference_roc_auc([True, False, True, False], [0.9, 0.9, 0.3, 0.1])
    )
    assert pr_auc(y, [0.9, 0.8, 0.3, 0.1]) == pytest.approx((1 / 2) * 1 + (1 / 2) * (2 / 3))
    assert precision_recall_at(y, [0.9, 0.8, 0.3, 0.1], 0.5) == (0.5, 0.5)


@given(labelled_scores())
def test_roc_auc_equals_the_pair_counting_reference(data: tuple[np.ndarray, np.ndarray]) -> None:
    """roc_auc and its resample form both equal the pair count, ties included."""
    y, score = data
    expected = reference_roc_auc(y.tolist(), score.tolist())
    assert roc_auc(y, score) == pytest.approx(expected)
    assert roc_auc.on_counts(y, score, np.ones((1, y.size)))[0] == pytest.approx(expected)


@given(labelled_scores())
def test_pr_auc_equals_the_threshold_walk_reference(data: tuple[np.ndarray, np.ndarray]) -> None:
    """pr_auc and its resample form both equal average precision walked by hand."""
    y, score = data
    expected = reference_average_precision(y.tolist(), score.tolist())
    assert pr_auc(y, score) == pytest.approx(expected)
    assert pr_auc.on_counts(y, score, np.ones((1, y.size)))[0] == pytest.approx(expected)


@given(labelled_scores(), st.sampled_from([0.0, 0.3, 0.4, 0.7, 1.0]))
def test_precision_recall_at_equals_the_reference(data: tuple[np.ndarray, np.ndarray], threshold: float) -> None:
    """Flagging is score >= threshold; undefined precision (nothing flagged) is NaN."""
    y, score = data
    expected = reference_precision_recall(y.tolist(), score.tolist(), threshold)
    np.testing.assert_allclose(precision_recall_at(y, score, threshold), expected)
    np.testing.assert_allclose(precision_at(threshold)(y, score), expected[0])
    np.testing.assert_allclose(recall_at(threshold)(y, score), expected[1])


def test_a_score_on_the_threshold_is_flagged() -> None:
    """A sybil scored exactly 0.7 counts as caught at threshold 0.7."""
    assert precision_recall_at([1, 0], [0.7, 0.2], 0.7) == (1.0, 1.0)
    assert math.isnan(precision_recall_at([1, 0], [0.5, 0.2], 0.7)[0])


@given(labelled_scores(max_rows=12), st.data())
def test_resample_forms_equal_the_metric_on_repeated_rows(
    data: tuple[np.ndarray, np.ndarray], draw: st.DataObject
) -> None:
    """Counting a row k times in on_counts is the same as repeating it k times, for every Metric."""
    y, score = data
    counts = draw.draw(arrays(np.int64, (3, y.size), elements=st.integers(0, 3)))
    counts[:, :2] = np.maximum(counts[:, :2], 1)  # each resample keeps both classes
    for metric in (roc_auc, pr_auc, precision_at(0.4), recall_at(0.7)):
        got = metric.on_counts(y, score, counts.astype(np.float64))
        for b in range(counts.shape[0]):
            rows = np.repeat(np.arange(y.size), counts[b])
            np.testing.assert_allclose(got[b], metric(y[rows], score[rows]), err_msg=metric.name)


def test_metrics_refuse_unusable_input() -> None:
    """One class only, mismatched lengths, non-binary labels and NaN scores raise a clear ValueError."""
    with pytest.raises(MetricError, match="both sybil and non-sybil"):
        roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="one score per label"):
        pr_auc([0, 1], [0.1])
    with pytest.raises(MetricError, match="0/1"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(MetricError, match="NaN"):
        precision_recall_at([0, 1], [0.1, math.nan], 0.5)


# --- bootstrap -------------------------------------------------------------------


def test_bootstrap_interval_contains_the_point_and_is_reproducible() -> None:
    """The point is the metric on all rows, inside its interval; the same seed gives the same interval."""
    y, score = _sample_data(2000, seed=1)
    for metric in (roc_auc, pr_auc, precision_at(0.4), recall_at(0.7)):
        point, low, high = bootstrap_ci(metric, y, score, n_boot=300, seed=4)
        assert point == pytest.approx(metric(y, score))
        assert low < point < high, metric.name
        assert bootstrap_ci(metric, y, score, n_boot=300, seed=4) == (point, low, high)
    assert bootstrap_ci(roc_auc, y, score, n_boot=300, seed=5) != bootstrap_ci(roc_auc, y, score, n_boot=300, seed=4)


@pytest.mark.parametrize("stratified", [True, False])
def test_bootstrap_interval_narrows_with_more_rows(stratified: bool) -> None:
    """Twenty times the rows gives a clearly narrower interval (about sqrt(20) ~ 4.5 times)."""
    widths = []
    for n in (300, 6000):
        y, score = _sample_data(n, seed=2)
        _, low, high = bootstrap_ci(roc_auc, y, score, n_boot=400, seed=0, stratified=stratified)
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


@pytest.mark.parametrize("stratified", [True, False])
def test_vectorised_and_per_resample_bootstraps_agree(stratified: bool) -> None:
    """A Metric's resample form and scikit-learn called once per resample give the same interval."""
    y, score = _sample_data(400, seed=3)
    fast = bootstrap_ci(roc_auc, y, score, n_boot=200, seed=9, stratified=stratified)
    slow = bootstrap_ci(roc_auc.reference, y, score, n_boot=200, seed=9, stratified=stratified)
    np.testing.assert_allclose(fast, slow)


def test_plain_bootstrap_skips_resamples_with_one_class() -> None:
    """With one sybil in twelve, many plain resamples lack it; the metric never sees them."""
    y = np.array([1] + [0] * 11)
    score = np.linspace(0.9, 0.0, 12)
    seen: list[int] = []

    def metric(labels: np.ndarray, scores: np.ndarray) -> float:
        seen.append(int(labels.sum()))
        return roc_auc(labels, scores)

    point, low, high = bootstrap_ci(metric, y, score, n_boot=200, seed=0, stratified=False)
    assert (point, low, high) == (1.0, 1.0, 1.0)
    assert 0 < len(seen) - 1 < 200  # the first call is the point estimate
    assert all(0 < positives < y.size for positives in seen)


def test_bootstrap_refuses_bad_settings_and_an_always_undefined_metric() -> None:
    """n_boot < 1 and alpha outside (0, 1) are config errors; NaN on every resample is a MetricError."""
    y, score = _sample_data(50, seed=0)
    with pytest.raises(ConfigError):
        bootstrap_ci(roc_auc, y, score, n_boot=0)
    with pytest.raises(ConfigError):
        bootstrap_ci(roc_auc, y, score, alpha=1.0)
    with pytest.raises(MetricError, match="undefined on all"):
        bootstrap_ci(precision_at(2.0), y, score, n_boot=20)


# --- gating ----------------------------------------------------------------------


@given(labelled_scores(), st.floats(0, 1), st.floats(0, 1))
def test_gating_counts_add_up_and_follow_the_rule(
    data: tuple[np.ndarray, np.ndarray], first: float, second: float
) -> None:
    """Every donor gets exactly one decision, as the rule written out per donor says."""
    y, score = data
    review, block = sorted((first, second))
    outcome = gating_outcome(y, score, review, block)
    assert outcome.n == y.size
    assert outcome.sybils == int(y.sum())
    expected = {(s, d): 0 for s in (True, False) for d in ("approved", "reviewed", "blocked")}
    for yi, si in zip(y.tolist(), score.tolist(), strict=True):
        decision = "approved" if si < review else "blocked" if si > block else "reviewed"
        expected[yi, decision] += 1
    for (sybil, decision), count in expected.items():
        assert getattr(outcome, f"{'sybil' if sybil else 'honest'}_{decision}") == count


def test_scores_exactly_on_a_threshold_go_to_review() -> None:
    """0.4 and 0.7 are reviewed; just below 0.4 is approved, just above 0.7 blocked."""
    score = [np.nextafter(0.4, 0), 0.4, 0.7, np.nextafter(0.7, 1)]
    outcome = gating_outcome([0, 0, 1, 1], score, 0.4, 0.7)
    assert (outcome.honest_approved, outcome.honest_reviewed, outcome.honest_blocked) == (1, 1, 0)
    assert (outcome.sybil_approved, outcome.sybil_reviewed, outcome.sybil_blocked) == (0, 1, 1)


def test_gating_rates() -> None:
    """Rates are shares of each class; a class with no donors has no rate (NaN, null in JSON)."""
    outcome = gating_outcome([0, 0, 0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9, 0.2, 0.8])
    assert outcome.honest_blocked_rate == pytest.approx(1 / 4)
    assert outcome.honest_review_rate == pytest.approx(2 / 4)
    assert outcome.sybil_approved_rate == pytest.approx(1 / 2)
    only_honest = gating_outcome([0, 0], [0.1, 0.9])
    assert math.isnan(only_honest.sybil_approved_rate)
    assert only_honest.to_dict()["sybil_approved_rate"] is None
    with pytest.raises(ConfigError):
        gating_outcome([0, 1], [0.1, 0.9], review_threshold=0.8, block_threshold=0.5)


# --- evaluate and calibration ------------------------------------------------------


def test_evaluate_reports_everything_as_strict_json() -> None:
    """The report holds n, positives, both AUCs, each threshold and the gate, with no NaN in the JSON."""
    y, score = _sample_data(500, seed=6)
    report = evaluate(y, score, n_boot=100, seed=1)
    assert report.n == 500
    assert report.positives == int(y.sum())
    assert report.roc_auc.point == pytest.approx(reference_roc_auc(y.tolist(), score.tolist()))
    assert [t.threshold for t in report.at_thresholds] == [0.4, 0.7]
    assert report.at_thresholds[1].precision == bootstrap_ci(precision_at(0.7), y, score, n_boot=100, seed=1)
    assert report.gating == gating_outcome(y, score, 0.4, 0.7)
    decoded = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert decoded["roc_auc"].keys() == {"point", "low", "high"}
    assert decoded["gating"]["n"] == 500
    assert decoded["at_thresholds"][0]["recall"]["point"] == pytest.approx(precision_recall_at(y, score, 0.4)[1])


def test_metric_objects_are_named() -> None:
    """Metric names say what and where, for reports."""
    assert isinstance(roc_auc, Metric)
    assert (roc_auc.name, pr_auc.name, precision_at(0.4).name, recall_at(0.7).name) == (
        "roc_auc",
        "pr_auc",
        "precision@0.4",
        "recall@0.7",
    )


def test_calibration_bins_by_hand() -> None:
    """Each bin holds its scores' mean and sybil share; 1.0 falls in the last bin; empty bins are NaN."""
    y = [0, 1, 0, 1, 1]
    score = [0.05, 0.15, 0.12, 0.95, 1.0]
    bins = calibration_bins(y, score, n_bins=5)
    np.testing.assert_allclose(bins.edges, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_array_equal(bins.count, [3, 0, 0, 0, 2])
    np.testing.assert_allclose(bins.mean_predicted, [(0.05 + 0.15 + 0.12) / 3, np.nan, np.nan, np.nan, 0.975])
    np.testing.assert_allclose(bins.observed_rate, [1 / 3, np.nan, np.nan, np.nan, 1.0])
    assert json.loads(json.dumps(bins.to_dict(), allow_nan=False))["observed_rate"][1] is None
    with pytest.raises(MetricError, match=r"\[0, 1\]"):
        calibration_bins([0, 1], [0.5, 1.5])


@given(labelled_scores(), st.integers(1, 12))
def test_calibration_counts_cover_every_row(data: tuple[np.ndarray, np.ndarray], n_bins: int) -> None:
    """Bin counts sum to n, and count-weighted bin means give back the overall mean score and sybil rate."""
    y, score = data
    bins = calibration_bins(y, score, n_bins=n_bins)
    assert bins.count.sum() == y.size
    filled = bins.count > 0
    assert np.all(
        (bins.mean_predicted[filled] >= bins.edges[:-1][filled] - 1e-12) & (bins.mean_predicted[filled] <= 1.0)
    )
    np.testing.assert_allclose((bins.count * bins.mean_predicted)[filled].sum(), score.sum())
    np.testing.assert_allclose((bins.count * bins.observed_rate)[filled].sum(), y.sum())
