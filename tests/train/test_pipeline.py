"""`qf train` end to end on a simulated, indexed, labelled round: a verified, reproducible model version."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.model import artifacts, features
from qf_sentinel.qf.model.arrays import LinearModel, TreeEnsemble
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.kernels import trees
from qf_sentinel.qf.model.loader import load_dataset
from qf_sentinel.qf.train import risk
from qf_sentinel.qf.train.pipeline import TrainConfig, TrainResult, prepare, time_split_features, train
from tests.fixtures.rounds import CHAIN_ID, LabelledRound

CONFIG = TrainConfig(seed=7, folds=5, n_boot=200)


@pytest.fixture(scope="module")
def dataset(labelled_round: LabelledRound) -> Dataset:
    with connect(labelled_round.db_url) as conn:
        return load_dataset(conn, CHAIN_ID)


@pytest.fixture(scope="module")
def trained(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(dataset, tmp_path_factory.mktemp("models"), CONFIG)


def test_dataset_has_every_labelled_donor(dataset: Dataset, labelled_round: LabelledRound) -> None:
    """Each donor of the round is a row; the simulator's sybils are labelled sybil with their pattern."""
    truth = {label.address.lower(): label for label in labelled_round.plan.labels}
    donors = dataset.donors
    assert set(donors["address"]) <= set(truth)
    for address, is_sybil, pattern in donors[["address", "is_sybil", "pattern"]].itertuples(index=False):
        assert (is_sybil, pattern) == (truth[address].is_sybil, truth[address].pattern)
    assert donors["is_sybil"].sum() > 20
    assert dataset.donations.size == len(labelled_round.plan.donations)


def test_version_directory_verifies_and_is_latest(trained: TrainResult) -> None:
    """Every file is in the manifest with its hash; LATEST points to the new version."""
    manifest = artifacts.verify(trained.version_dir)
    assert artifacts.latest(trained.version_dir.parent) == trained.version_dir
    assert manifest["served_model"] in risk.CANDIDATES
    assert manifest["feature_names"] == list(features.FEATURE_NAMES)
    assert {"risk.npz", "isolation_forest.npz", "lof.npz", "recommender.npz", "risk_xgboost.json",
            "risk_lightgbm.txt"} <= set(manifest["model_files"])  # fmt: skip
    assert max(manifest["parity_max_abs_diff"].values()) <= 1e-6
    assert (trained.version_dir / "report.md").is_file()
    assert set(manifest["metrics"]) >= {"kfold", "time"}
    assert any(split.startswith("leave-out-") for split in manifest["metrics"])


def test_tampered_file_fails_verification(trained: TrainResult, tmp_path: Path) -> None:
    """A changed byte in a model file is refused (the scorer will not load it)."""
    copy = tmp_path / trained.version_dir.name
    shutil.copytree(trained.version_dir, copy)
    data = bytearray((copy / "risk.npz").read_bytes())
    data[-10] ^= 0xFF
    (copy / "risk.npz").write_bytes(bytes(data))
    with pytest.raises(Exception, match="does not match its manifest hash"):
        artifacts.verify(copy)


def test_served_arrays_predict_like_the_library(trained: TrainResult, dataset: Dataset) -> None:
    """The exported risk.npz, run by the scorer's kernel, gives the native model's probabilities on the round
    it was trained on (the indexed donors plus the injected attacks, features as training computes them)."""
    served = trained.manifest["served_model"]
    data = prepare(dataset, CONFIG, lambda _: None)
    assert (~data.real).sum() > 0, "attacks were injected"
    assert data.dataset.donors.loc[~data.real, "source"].eq("injected").all()
    x = data.x
    if served in ("logistic",):
        arrays: TreeEnsemble | LinearModel = LinearModel.load(trained.version_dir / "risk.npz")
        kernel = trees.linear_score_batch(x, arrays.kernel_args())
    else:
        arrays = TreeEnsemble.load(trained.version_dir / "risk.npz")
        kernel = trees.score_batch(x, arrays.kernel_args())
    native = risk.predict(risk.fit(served, x, data.y, CONFIG.seed), x)
    np.testing.assert_allclose(kernel, native, atol=1e-6, rtol=0)


def test_wallet_history_never_lowers_risk(trained: TrainResult, dataset: Dataset) -> None:
    """The same donor with an old wallet never scores riskier than with a fresh one, in every candidate:
    "old wallet = sybil" cannot be learned, whatever the round."""
    data = prepare(dataset, CONFIG, lambda _: None)
    nonce, fresh = features.FEATURE_NAMES.index("first_nonce"), features.FEATURE_NAMES.index("fresh_wallet")
    for name in risk.CANDIDATES:
        model = risk.fit(name, data.x, data.y, CONFIG.seed)
        young, old = data.x.copy(), data.x.copy()
        young[:, nonce], young[:, fresh] = 0.0, 1.0
        old[:, nonce], old[:, fresh] = 500.0, 0.0
        assert np.all(risk.predict(model, old) <= risk.predict(model, young) + 1e-12), name


def test_models_separate_the_simulated_sybils(trained: TrainResult) -> None:
    """On held-out folds the served model ranks sybils above honest donors far better than chance."""
    kfold = trained.manifest["metrics"]["kfold"][trained.manifest["served_model"]]
    assert kfold["roc_auc"]["point"] > 0.8
    assert kfold["roc_auc"]["low"] <= kfold["roc_auc"]["point"] <= kfold["roc_auc"]["high"]


def test_training_is_reproducible(dataset: Dataset, trained: TrainResult, tmp_path: Path) -> None:
    """The same data and seed give the same model files, byte for byte."""
    again = train(dataset, tmp_path / "models", CONFIG)
    first, second = trained.manifest, again.manifest
    assert second["content_sha256"] == first["content_sha256"]

    def model_hashes(manifest: dict[str, Any]) -> dict[str, str]:
        return {f: manifest["files"][f] for f in manifest["model_files"]}

    assert model_hashes(second) == model_hashes(first)


def test_time_split_features_ignore_later_donations(dataset: Dataset) -> None:
    """Every feature of the time split's training rows is computed from donations before the cut only."""
    d = dataset.donations
    cut = int(np.quantile(d.block, 0.5))
    score = np.ones  # any coordination model: the same one on both sides
    before = time_split_features(dataset, cut, lambda z: score(len(z)))
    # Recompute by hand on a copy of the data without any donation at or after the cut.
    keep = d.block < cut
    shorter = replace(
        dataset.donations, **{f: getattr(d, f)[keep] for f in ("donor", "project", "amount", "round_amount", "time",
                                                              "block", "order", "nonce", "gas_price", "token")}
    )  # fmt: skip
    by_hand = features.feature_matrix(replace(dataset, donations=shorter), coordination=lambda z: score(len(z)))
    np.testing.assert_array_equal(before, by_hand)
    full = features.feature_matrix(dataset, coordination=lambda z: score(len(z)))
    graph = [features.FEATURE_NAMES.index(n) for n in features.GRAPH_FEATURES]
    assert not np.array_equal(before[:, graph], full[:, graph]), "the later donations do change the features"


def test_manifest_is_json_with_library_versions(trained: TrainResult) -> None:
    manifest = json.loads((trained.version_dir / "manifest.json").read_text())
    assert {"xgboost-cpu", "lightgbm", "scikit-learn", "numba", "igraph"} <= set(manifest["libraries"])
    thresholds = manifest["thresholds"]
    assert 0.05 <= thresholds["review"] <= thresholds["block"]
    assert thresholds["block"] >= 0.7
    gate = manifest["gate"]
    assert set(gate["families"]) >= {"sybil_fan_out", "collusion_ring", "self_donation", "imitators"}
    assert gate["background_blocked"] <= 0.05
