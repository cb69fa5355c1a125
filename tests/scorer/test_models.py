"""Model bundles: a trained version loads, warms its kernels and self-checks; a damaged one is never swapped in."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.model import artifacts, features
from qf_sentinel.qf.model.arrays import TreeEnsemble
from qf_sentinel.qf.model.kernels import iforest, lof, topk, trees
from qf_sentinel.scorer import engine
from qf_sentinel.scorer.errors import ModelError, NotReady, ValidationError
from qf_sentinel.scorer.feature_store import build_snapshot
from qf_sentinel.scorer.models import ModelStore, Thresholds, load_bundle, resolve_version
from tests.scorer.synthetic import republish, synthetic_dataset


def copy_version(version_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    copy = root / version_dir.name
    shutil.copytree(version_dir, copy)
    (root / artifacts.LATEST).write_text(version_dir.name + "\n")
    return copy


def test_bundle_loads_a_trained_version(model_dir: Path) -> None:
    """Every array of the version is loaded, named after the manifest; thresholds come from the manifest."""
    bundle = load_bundle(model_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert bundle.version == model_dir.name == manifest["version"]
    assert bundle.served_model == manifest["served_model"]
    assert bundle.feature_names == features.FEATURE_NAMES
    assert bundle.thresholds == Thresholds(manifest["thresholds"]["review"], manifest["thresholds"]["block"])
    assert bundle.thresholds.block >= 0.7
    assert bundle.chain_id == manifest["chain_id"]
    assert bundle.content_sha256 == manifest["content_sha256"]
    assert bundle.scaler_mean.shape == bundle.scaler_scale.shape == (len(features.FEATURE_NAMES),)
    assert bundle.cluster_centers.shape[1] == len(features.FEATURE_NAMES)
    assert set(bundle.pool_index) == {7, 9}
    assert all(r.startswith("0x") and len(r) == 42 for r in bundle.recipients)


def test_requests_after_load_compile_nothing(model_dir: Path) -> None:
    """The warm-up compiled each kernel for the exact argument types requests use, so no request compiles."""
    bundle = load_bundle(model_dir)
    kernels = [trees.margin_row, trees.contributions_row, trees.linear_margin_row, trees.linear_contributions_row,
               iforest.score_samples_row, lof.score_samples_row, topk.recommend_topk]  # fmt: skip
    compiled = {kernel: len(kernel.signatures) for kernel in kernels}
    dataset = synthetic_dataset()
    snapshot = build_snapshot(dataset, bundle.recommender.project_ids, refreshed_at=datetime.now(UTC))
    for donor in [*snapshot.index, b"\x01" * 20]:
        engine.score(bundle, snapshot, donor, 1.0)
        engine.recommend(bundle, snapshot, donor, 7, 5)
    assert {kernel: len(kernel.signatures) for kernel in kernels} == compiled


def test_threshold_override_wins_over_the_manifest(model_dir: Path) -> None:
    assert load_bundle(model_dir, thresholds=Thresholds(0.2, 0.9)).thresholds == Thresholds(0.2, 0.9)


@pytest.mark.parametrize(("review", "block"), [(0.8, 0.7), (-0.1, 0.5), (0.5, 1.5), (float("nan"), 0.5)])
def test_thresholds_must_be_ordered_probabilities(review: float, block: float) -> None:
    with pytest.raises(ConfigError, match="thresholds"):
        Thresholds(review, block)


def test_tampered_file_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """One changed byte in a model file fails the manifest hash check."""
    copy = copy_version(model_dir, tmp_path)
    data = bytearray((copy / "lof.npz").read_bytes())
    data[-10] ^= 0xFF
    (copy / "lof.npz").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its manifest hash"):
        load_bundle(copy)


def test_missing_file_is_refused(model_dir: Path, tmp_path: Path) -> None:
    copy = copy_version(model_dir, tmp_path)
    (copy / "recommender.npz").unlink()
    with pytest.raises(ModelError, match=r"recommender\.npz is missing"):
        load_bundle(copy)


def test_other_feature_order_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """A model trained on another feature order would read the scorer's rows wrongly: refused, even when the
    version is published (hashed and named) properly."""
    names = list(features.FEATURE_NAMES)
    names[0], names[1] = names[1], names[0]
    other = republish(model_dir, tmp_path / "models", feature_names=names)
    with pytest.raises(ModelError, match="feature names"):
        load_bundle(other)


def test_edited_manifest_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """Editing only the thresholds of a copy (the probe's way to approve a sybil) fails the content hash."""
    copy = copy_version(model_dir, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["thresholds"] = {"review": 1.0, "block": 1.0}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="content hash does not match"):
        load_bundle(copy)


def test_a_manifest_change_is_a_new_version(model_dir: Path, tmp_path: Path) -> None:
    """Thresholds are part of the content: publishing other ones gives another content hash and version name."""
    original = json.loads((model_dir / "manifest.json").read_text())
    other = republish(model_dir, tmp_path / "models", thresholds={"review": 0.9, "block": 0.95})
    bundle = load_bundle(other)
    assert bundle.content_sha256 != original["content_sha256"]
    assert bundle.version == other.name != original["version"]
    assert bundle.version.endswith("-" + bundle.content_sha256[:8])
    assert bundle.thresholds == Thresholds(0.9, 0.95)


def test_version_copied_under_another_name_is_refused(model_dir: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "models" / "20990101T000000Z-deadbeef"
    shutil.copytree(model_dir, renamed)
    with pytest.raises(ModelError, match="copied under another name"):
        load_bundle(renamed)


def test_links_out_of_the_models_root_are_refused(model_dir: Path, tmp_path: Path) -> None:
    """A version, a model file or LATEST that is a symlink resolving outside the models root is refused, and no
    error shows a server path."""
    copy = copy_version(model_dir, tmp_path)
    root = copy.parent
    outside = tmp_path / "outside"
    shutil.copytree(model_dir, outside / model_dir.name)
    (root / "etc").symlink_to("/etc")
    (root / "elsewhere").symlink_to(outside / model_dir.name)
    store = ModelStore()
    messages = []
    for name in ("etc", "elsewhere"):
        with pytest.raises(ModelError, match="link to outside the models directory") as info:
            store.load(root, name)
        messages.append(str(info.value))

    (copy / "lof.npz").rename(outside / "lof.npz")
    (copy / "lof.npz").symlink_to(outside / "lof.npz")
    with pytest.raises(ModelError, match=r"lof\.npz is a link to outside the version directory") as info:
        store.load(root, copy.name)
    messages.append(str(info.value))

    (root / artifacts.LATEST).unlink()
    (root / artifacts.LATEST).symlink_to(outside / "LATEST")
    (outside / "LATEST").write_text(copy.name + "\n")
    with pytest.raises(ModelError, match="LATEST is a link to outside") as info:
        store.load(root)
    messages.append(str(info.value))
    with pytest.raises(ModelError, match="no model version 'absent' in the models directory") as info:
        store.load(root, "absent")
    messages.append(str(info.value))
    assert not [m for m in messages if str(tmp_path) in m or "/etc" in m]


def test_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a model version"):
        load_bundle(tmp_path / "empty")


def test_model_failing_the_self_check_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """A correctly hashed version whose risk model scores a cold start outside [0, 1] is refused."""
    original = TreeEnsemble.load(model_dir / "risk.npz")
    out_of_range = TreeEnsemble(
        feature=np.array([-1]), threshold=np.zeros(1), left=np.array([-1]), right=np.array([-1]),
        default_left=np.zeros(1), missing_type=np.full(1, 2), value=np.array([3.0]), roots=np.array([0]),
        n_features=original.n_features, comparison=0, float32_inputs=False, float32_sums=False,
        zero_threshold=0.0, base_margin=0.0, link="identity", aggregation="sum",
    )  # fmt: skip
    bad = republish(model_dir, tmp_path / "models", risk_arrays=out_of_range, served="xgboost")
    assert artifacts.verify(bad)
    with pytest.raises(ModelError, match="self-check failed"):
        load_bundle(bad)


def test_store_swaps_and_keeps_the_old_bundle_on_failure(model_dir: Path, tmp_path: Path) -> None:
    """load_and_swap serves the new version only once it loaded; a bad version leaves the old one serving."""
    copy = copy_version(model_dir, tmp_path)
    root = copy.parent
    store = ModelStore()
    with pytest.raises(NotReady):
        store.current()
    previous, first = store.load_and_swap(root)  # LATEST
    assert previous is None
    assert store.current() is first
    assert first.version_dir == copy

    broken = republish(copy, root)
    (broken / "isolation_forest.npz").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"isolation_forest\.npz does not match its manifest hash"):
        store.load_and_swap(root, broken.name)
    (root / artifacts.LATEST).write_text(copy.name + "\n")
    with pytest.raises(ModelError, match="no model version"):
        store.load_and_swap(root, "absent")
    with pytest.raises(ValidationError, match="version"):
        store.load_and_swap(root, "../outside")
    assert store.current() is first

    previous, second = store.load_and_swap(root, copy.name)
    assert previous is first
    assert store.current() is second is not first


def test_store_applies_its_threshold_override_on_every_load(model_dir: Path) -> None:
    store = ModelStore(thresholds=Thresholds(0.1, 0.2))
    _, bundle = store.load_and_swap(model_dir.parent, model_dir.name)
    assert bundle.thresholds == Thresholds(0.1, 0.2)


def test_resolve_version_without_latest_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no trained model"):
        resolve_version(tmp_path, None)

