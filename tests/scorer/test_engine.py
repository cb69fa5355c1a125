"""The engine scores, explains, detects and recommends exactly like the libraries and references it replaces."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qf_sentinel.qf.model import features
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.kernels import iforest, lof
from qf_sentinel.qf.train import anomaly, risk
from qf_sentinel.qf.train.anomaly import Scaler
from qf_sentinel.qf.train.recommend import recommend as reference_recommend
from qf_sentinel.scorer import engine
from qf_sentinel.scorer.engine import Decision, RiskLevel
from qf_sentinel.scorer.feature_store import FeatureSnapshot, build_snapshot
from qf_sentinel.scorer.models import ModelBundle, Thresholds, load_bundle
from tests.scorer.synthetic import (
    CONFIG,
    calibrated,
    native_model,
    native_probability,
    serve_other_model,
    served_features,
)

UNKNOWN = bytes.fromhex("01" * 20)


@pytest.fixture(scope="module")
def snapshot(synthetic: Dataset, model_dir: Path) -> FeatureSnapshot:
    bundle = load_bundle(model_dir)
    return build_snapshot(synthetic, bundle.recommender.project_ids, datetime.now(UTC), bundle.coordination_score)


@pytest.fixture(scope="module")
def versions(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A version serving each candidate: the trained one as is, the others re-exported from their native files."""
    root = tmp_path_factory.mktemp("served")
    served = load_bundle(model_dir).served_model
    return {name: model_dir if name == served else serve_other_model(model_dir, root, name) for name in risk.CANDIDATES}


@pytest.fixture(scope="module")
def bundle(model_dir: Path) -> ModelBundle:
    return load_bundle(model_dir)




def native_margin(model: Any, x: np.ndarray) -> np.ndarray:
    kind = type(model).__module__.split(".")[0]
    if kind == "xgboost":
        import xgboost  # noqa: PLC0415

        return np.asarray(model.predict(xgboost.DMatrix(x), output_margin=True), dtype=np.float64)
    if kind == "lightgbm":
        return np.asarray(model.predict(x, raw_score=True), dtype=np.float64)
    if hasattr(model, "decision_function"):  # the logistic pipeline: log-odds
        return np.asarray(model.decision_function(x), dtype=np.float64)
    return native_probability(model, x)  # a random forest averages probabilities: its margin is the score


def test_snapshot_rows_are_the_training_features(
    snapshot: FeatureSnapshot, synthetic: Dataset, model_dir: Path
) -> None:
    """The feature matrix exactly as qf.train.pipeline computes it, the version's coordination column included."""
    np.testing.assert_array_equal(snapshot.matrix, served_features(model_dir, synthetic))


@pytest.mark.parametrize("served", risk.CANDIDATES)
def test_scores_equal_the_native_model(served: str, versions: dict[str, Path], snapshot: FeatureSnapshot) -> None:
    """For every known donor the engine's score is the native library's predict_proba (within 1e-6), calibrated."""
    bundle = load_bundle(versions[served])
    assert bundle.served_model == served
    native = calibrated(versions[served], native_probability(native_model(versions[served], served), snapshot.matrix))
    scores = np.array([engine.score(bundle, snapshot, donor, 1.0).score for donor in snapshot.index])
    np.testing.assert_allclose(scores, native[list(snapshot.index.values())], atol=1e-6, rtol=0)


@pytest.mark.parametrize("served", risk.CANDIDATES)
def test_contributions_add_up_to_the_native_margin(
    served: str, versions: dict[str, Path], snapshot: FeatureSnapshot
) -> None:
    """Per-feature contributions plus the bias equal the margin, which is the library's own raw output."""
    bundle = load_bundle(versions[served])
    margins = native_margin(native_model(versions[served], served), snapshot.matrix)
    for donor, row in snapshot.index.items():
        x = snapshot.matrix[row]
        result = engine.score(bundle, snapshot, donor, 1.0)
        pushes = engine.contributions(bundle, x)
        assert pushes.shape == (len(features.FEATURE_NAMES) + 1,)
        assert result.margin == pytest.approx(margins[row], abs=1e-5)
        assert pushes.sum() == pytest.approx(result.margin, abs=1e-5)
        if bundle.risk.link == "logistic":
            expected = bundle.calibration.apply(1 / (1 + math.exp(-result.margin)))
            assert result.score == pytest.approx(float(expected), abs=1e-12)


def test_xgboost_contributions_are_xgboost_approx_contribs(
    versions: dict[str, Path], snapshot: FeatureSnapshot
) -> None:
    """For XGBoost, the engine's explanation is XGBoost's own Saabas attribution (approx_contribs)."""
    import xgboost  # noqa: PLC0415

    bundle = load_bundle(versions["xgboost"])
    booster = native_model(versions["xgboost"], "xgboost")
    expected = booster.predict(xgboost.DMatrix(snapshot.matrix), pred_contribs=True, approx_contribs=True)
    mine = np.array([engine.contributions(bundle, snapshot.matrix[r]) for r in range(snapshot.n_donors)])
    np.testing.assert_allclose(mine, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("served", ["xgboost", "random_forest"])
def test_reasons_are_the_strongest_pushes_riskiest_first(
    served: str, versions: dict[str, Path], snapshot: FeatureSnapshot
) -> None:
    """Reasons name up to three features: positive contributions first, each with the donor's value."""
    bundle = load_bundle(versions[served])
    for donor, row in snapshot.index.items():
        x = snapshot.matrix[row]
        pushes = engine.contributions(bundle, x)[:-1]
        reasons = engine.score(bundle, snapshot, donor, 1.0).reasons
        assert 1 <= len(reasons) <= engine.N_REASONS
        names = list(features.FEATURE_NAMES)
        for reason in reasons:
            j = names.index(reason.feature)
            assert (reason.value, reason.contribution) == (x[j], pushes[j])
        positive = np.sort(pushes[pushes > 0])[::-1][: engine.N_REASONS]
        got = [r.contribution for r in reasons]
        assert got[: positive.size] == positive.tolist()
        assert all(c < 0 for c in got[positive.size :])


def test_cold_start_donor(bundle: ModelBundle, snapshot: FeatureSnapshot) -> None:
    """An unknown donor is scored as a donor with this one donation, says so, and is at most sent to review."""
    result = engine.score(bundle, snapshot, UNKNOWN, 5.0)
    assert result.cold_start
    assert result.anomaly.cold_start
    assert result.reasons[0] == engine.Reason("cold_start", 1.0, 0.0)
    assert all(r.feature in features.FEATURE_NAMES for r in result.reasons[1:])
    row = features.first_donation_row(5.0)[None]
    row[0, -1] = features.coordination_anomaly(row, bundle.coordination_score)[0]
    assert bundle.cold_anomaly == row[0, -1] > 0
    model = native_model(bundle.version_dir, bundle.served_model)
    native = calibrated(bundle.version_dir, native_probability(model, row))
    assert result.score == pytest.approx(native[0], abs=1e-6)
    assert result.decision is not Decision.BLOCK
    assert engine.detect(bundle, snapshot, UNKNOWN).cold_start


def test_amount_does_not_change_the_score(bundle: ModelBundle, snapshot: FeatureSnapshot) -> None:
    """The model scores donors, not transfers: a known donor's score does not depend on the amount."""
    donor = next(iter(snapshot.index))
    assert engine.score(bundle, snapshot, donor, 0.01) == engine.score(bundle, snapshot, donor, 1e12)


@pytest.mark.parametrize(
    ("probability", "expected"),
    [
        (0.0, (RiskLevel.LOW, Decision.APPROVE)),
        (0.3999, (RiskLevel.LOW, Decision.APPROVE)),
        (0.4, (RiskLevel.MEDIUM, Decision.REVIEW)),
        (0.7, (RiskLevel.MEDIUM, Decision.REVIEW)),
        (0.7001, (RiskLevel.HIGH, Decision.BLOCK)),
        (1.0, (RiskLevel.HIGH, Decision.BLOCK)),
        (float("nan"), (RiskLevel.HIGH, Decision.BLOCK)),
    ],
)
def test_levels_and_decisions(probability: float, expected: tuple[RiskLevel, Decision]) -> None:
    """Below review approve, review..block inclusive review, above block block; an unscorable donor blocks."""
    assert engine.classify(probability, 0.4, 0.7) == expected


def test_decisions_follow_the_labels_and_the_thresholds(
    bundle: ModelBundle, snapshot: FeatureSnapshot, synthetic: Dataset
) -> None:
    """The trained model flags the synthetic sybils and never blocks an honest donor; thresholds move the line."""
    donors = synthetic.donors
    by_address = {bytes.fromhex(a[2:]): i for i, a in enumerate(donors["address"])}
    lenient = dataclasses.replace(bundle, thresholds=Thresholds(1.0, 1.0))
    approved = []
    for donor, i in by_address.items():
        result = engine.score(bundle, snapshot, donor, 1.0)
        if donors["labelled"][i] and donors["is_sybil"][i]:
            assert result.decision is not Decision.APPROVE
        elif donors["labelled"][i]:
            assert result.decision is not Decision.BLOCK
            approved.append(result.decision is Decision.APPROVE)
        assert engine.score(lenient, snapshot, donor, 1.0).decision in {Decision.APPROVE, Decision.REVIEW}
    assert np.mean(approved) > 0.9


def test_anomaly_scores_equal_scikit_learn(bundle: ModelBundle, snapshot: FeatureSnapshot) -> None:
    """Isolation Forest and LOF, refitted as training fits them (same data and seed), agree with the engine."""
    models = anomaly.fit(snapshot.matrix, CONFIG.seed)
    z = models.scaler.transform(snapshot.matrix)
    np.testing.assert_array_equal(bundle.scaler_mean, models.scaler.mean)
    expected_if = -models.isolation_forest.score_samples(z)
    expected_lof = -models.lof.score_samples(z)
    flags_if = models.isolation_forest.decision_function(z) < 0
    flags_lof = models.lof.decision_function(z) < 0
    assert flags_if.any()
    for donor, row in snapshot.index.items():
        result = engine.detect(bundle, snapshot, donor)
        assert result.iforest_score == pytest.approx(expected_if[row], abs=1e-9)
        assert result.lof_score == pytest.approx(expected_lof[row], abs=1e-9)
        assert (result.iforest_flag, result.lof_flag) == (flags_if[row], flags_lof[row])
        assert result.consensus == (flags_if[row] and flags_lof[row])
        assert not result.cold_start


def test_anomaly_scores_equal_the_batch_kernels(bundle: ModelBundle, snapshot: FeatureSnapshot) -> None:
    """The per-request row path equals the batch kernels over the whole snapshot, bit for bit."""
    z = Scaler(bundle.scaler_mean, bundle.scaler_scale).transform(snapshot.matrix)
    forest = iforest.decision_function_batch(z, **bundle.iforest.kernel_args())
    neighbours = -lof.score_samples_batch(z, **bundle.lof.kernel_args())
    for donor, row in snapshot.index.items():
        result = engine.detect(bundle, snapshot, donor)
        assert result.lof_score == neighbours[row]
        assert result.iforest_flag == (forest[row] < 0)


def test_recommendations_follow_the_reference(bundle: ModelBundle, snapshot: FeatureSnapshot) -> None:
    """Each donor gets the reference ranking: its pool only, never a funded project, CF when history links."""
    r = bundle.recommender
    sources = set()
    for pool_id, pool in bundle.pool_index.items():
        in_pool = {bundle.recipients[p] for p in np.flatnonzero(r.project_pool == pool)}
        for donor, row in snapshot.index.items():
            history = snapshot.funded(row)
            items, source = engine.recommend(bundle, snapshot, donor, pool_id, 5)
            chosen, scores, expected_source = reference_recommend(
                history, r.similarity, r.popularity, r.project_pool, pool=pool, k=5
            )
            assert items == [(bundle.recipients[p], s) for p, s in zip(chosen.tolist(), scores.tolist(), strict=True)]
            assert source == expected_source
            sources.add(source)
            assert {recipient for recipient, _ in items} <= in_pool
            assert not {recipient for recipient, _ in items} & {bundle.recipients[p] for p in history}
    assert "cf" in sources


def test_unknown_donor_gets_the_most_popular_projects(bundle: ModelBundle, snapshot: FeatureSnapshot) -> None:
    items, source = engine.recommend(bundle, snapshot, UNKNOWN, 9, 3)
    r = bundle.recommender
    pool = np.flatnonzero(r.project_pool == bundle.pool_index[9])
    top = pool[np.argsort(-r.popularity[pool], kind="stable")][:3]
    assert source == "popularity"
    assert items == [(bundle.recipients[p], float(r.popularity[p])) for p in top]


def test_unknown_pool_gives_nothing(bundle: ModelBundle, snapshot: FeatureSnapshot) -> None:
    donor = next(iter(snapshot.index))
    assert engine.recommend(bundle, snapshot, donor, 12345, 5) == ([], "popularity")


def test_snapshot_of_another_project_order_still_excludes_funded(
    bundle: ModelBundle, snapshot: FeatureSnapshot, synthetic: Dataset
) -> None:
    """Between a model swap and the next feature reload the engine translates histories by project key."""
    reordered = build_snapshot(synthetic, bundle.recommender.project_ids[::-1], datetime.now(UTC))
    assert reordered.projects_key != bundle.projects_key
    for donor in snapshot.index:
        for pool_id in bundle.pool_index:
            assert engine.recommend(bundle, reordered, donor, pool_id, 4) == engine.recommend(
                bundle, snapshot, donor, pool_id, 4
            )
