"""`qf train`: from the indexed round to a versioned model directory the scorer can load.

Steps (each a pure module; only :mod:`qf.train.dataset` touches the database):

1. donors, features and labels (:mod:`dataset`, :mod:`features`);
2. every risk candidate (:mod:`risk`) on the same three kinds of split
   (:mod:`splits`): stratified k-fold, a time split whose training features only
   use donations before the cut, and leave-one-sybil-pattern-out; metrics with
   bootstrap intervals and the gating outcome (:mod:`evaluation`);
3. the served model (best by :data:`risk.SELECTION_CRITERION`) refitted on all
   labelled donors, exported to flat arrays and checked against the library on
   every donor (parity below 1e-6 or the run fails);
4. Isolation Forest and LOF on every donor (:mod:`anomaly`), the item-item
   recommender with its hit rate (:mod:`recommend`), k-means clusters and PCA
   (:mod:`clusters`), co-donation rules (:mod:`rules`);
5. the files, manifest and report (:mod:`artifacts`, :mod:`report`).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qf.errors import DataError
from qf.train import anomaly, artifacts, evaluation, features, risk, splits
from qf.train.clusters import choose_kmeans, pca_2d
from qf.train.dataset import Dataset
from qf.train.export import IsolationForestArrays, LinearModel, LofArrays, TreeEnsemble, from_isolation_forest, from_lof
from qf.train.recommend import RecommenderArrays, donation_matrix, hit_rate_at_k
from qf.train.report import ReportData, SplitScores, headline, write_report
from qf.train.rules import top_rules

FloatArray = npt.NDArray[np.float64]
PARITY_TOLERANCE = 1e-6
LIBRARIES = ("numpy", "scipy", "scikit-learn", "xgboost-cpu", "lightgbm", "numba")
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    seed: int = 42
    folds: int = 5
    n_boot: int = 1000
    review_threshold: float = 0.4
    block_threshold: float = 0.7
    time_test_fraction: float = 0.3


@dataclass(frozen=True, slots=True)
class TrainResult:
    version_dir: Path
    manifest: dict[str, Any]
    headline: dict[str, Any]


@dataclass
class _Labelled:
    """The labelled donors' rows (indices into the donor table), features and labels."""

    rows: npt.NDArray[np.intp]
    x: FloatArray
    y: npt.NDArray[np.bool_]
    patterns: npt.NDArray[Any]


@dataclass
class _Evaluated:
    scores: list[SplitScores]
    evaluations: dict[str, dict[str, dict[str, Any]]]
    notes: list[str]


def train(dataset: Dataset, root: Path, config: TrainConfig, progress: Progress = lambda _: None) -> TrainResult:
    donors, d = dataset.donors, dataset.donations
    x_all = _features(dataset, np.ones(d.block.size, dtype=bool))
    rows = np.flatnonzero(donors["labelled"].to_numpy())
    data = _Labelled(rows, x_all[rows], donors["is_sybil"].to_numpy()[rows], donors["pattern"].to_numpy()[rows])
    if rows.size == 0 or data.y.all() or not data.y.any():
        raise DataError(
            f"training needs labelled sybils and honest donors; chain {dataset.chain_id} has {rows.size} labelled "
            f"donors, {int(data.y.sum())} sybil (`qf simulate` writes labels; `qf labels import` adds yours)"
        )
    progress(f"evaluating {len(risk.CANDIDATES)} models on {rows.size} labelled donors ({int(data.y.sum())} sybil)")
    evaluated = _evaluate(dataset, data, config)
    kfold = evaluated.evaluations["kfold"]
    served = max(risk.CANDIDATES, key=lambda n: (kfold[n]["pr_auc"]["point"], -risk.CANDIDATES.index(n)))
    progress(f"served model: {served} (k-fold PR AUC {kfold[served]['pr_auc']['point']:.3f})")

    staging = artifacts.staging_dir(root)
    model_files: list[str] = []
    importance: dict[str, dict[str, float]] = {}
    finals: dict[str, Any] = {}
    for name in risk.CANDIDATES:
        finals[name] = risk.fit(name, data.x, data.y, config.seed)
        importance[name] = risk.importance(name, finals[name], features.FEATURE_NAMES)
        model_files.append(risk.save_native(name, finals[name], staging))
    arrays = risk.export(served, finals[served])
    served_scores = risk.predict(finals[served], x_all)
    parity = {"risk": _max_diff(_kernel_risk(arrays, x_all), served_scores)}
    arrays.save(staging / "risk.npz")
    model_files.append("risk.npz")

    progress(f"anomaly models on {len(donors)} donors")
    detectors = anomaly.fit(x_all, config.seed)
    z_all = detectors.scaler.transform(x_all)
    parity |= _save_anomaly(detectors, z_all, staging)
    model_files += ["isolation_forest.npz", "lof.npz", "anomaly_scaler.npz"]
    anomaly_summary = anomaly.sanity_check({k: v[rows] for k, v in anomaly.scores(detectors, x_all).items()}, data.y)
    bad = {k: v for k, v in parity.items() if not v <= PARITY_TOLERANCE}
    if bad:
        raise DataError(f"exported arrays disagree with the libraries beyond {PARITY_TOLERANCE}: {bad}")

    progress("recommender, clusters and co-donation rules")
    matrix = donation_matrix(d.donor, d.project, d.amount, n_donors=len(donors), n_projects=len(d.project_ids))
    RecommenderArrays.fit(matrix, d.project_pool, d.project_ids).save(staging / "recommender.npz")
    hits = hit_rate_at_k(d.donor, d.project, d.order, d.project_pool, k=5)
    clusters = choose_kmeans(z_all, seed=config.seed)
    np.savez(staging / "clusters.npz", centers=clusters.centers)
    model_files += ["recommender.npz", "clusters.npz"]
    coords, _ = pca_2d(z_all, seed=config.seed)

    summary = _data_summary(dataset, data)
    manifest = {
        "chain_id": dataset.chain_id,
        "served_model": served,
        "selection_criterion": risk.SELECTION_CRITERION,
        "feature_names": list(features.FEATURE_NAMES),
        "fill_values": features.FILL_VALUES,
        "thresholds": {"review": config.review_threshold, "block": config.block_threshold},
        "anomaly": {"transform": "signed_log1p then (z - mean) / scale (anomaly_scaler.npz)", "flag": "decision < 0"},
        "training_data": summary,
        "config": {"seed": config.seed, "folds": config.folds, "n_boot": config.n_boot},
        "metrics": {s: {m: _brief(e) for m, e in per.items()} for s, per in evaluated.evaluations.items()},
        "anomaly_check": anomaly_summary,
        "recommendation": hits,
        "clusters": {"k": clusters.k, "silhouette": {str(k): v for k, v in clusters.silhouette.items()}},
        "parity_max_abs_diff": parity,
        "libraries": _library_versions(),
        "notes": evaluated.notes,
    }
    version_dir = artifacts.publish(staging, root, manifest, model_files=model_files)
    manifest = artifacts.read_manifest(version_dir)
    report = ReportData(
        version=str(manifest["version"]),
        created_at=str(manifest["created_at"]),
        served_model=served,
        selection_criterion=risk.SELECTION_CRITERION,
        thresholds=(config.review_threshold, config.block_threshold),
        data_summary=summary,
        evaluations=evaluated.evaluations,
        scores=evaluated.scores,
        feature_importance=importance,
        # Held-out (out-of-fold) scores: in-sample ones would show a perfect separation.
        served_scores=next(s.score for s in evaluated.scores if s.split == "kfold" and s.model == served),
        served_labels=data.patterns,
        pca=coords,
        pca_labels=donors["pattern"].to_numpy(),
        clusters=clusters.labels,
        cluster_silhouette=clusters.silhouette,
        anomaly=dict(anomaly_summary),
        recommendation=dict(hits),
        rules=top_rules(matrix, d.project_ids),
        notes=evaluated.notes,
    )
    write_report(version_dir, report)
    return TrainResult(version_dir=version_dir, manifest=manifest, headline=headline(report))


def _features(dataset: Dataset, donations: npt.NDArray[np.bool_]) -> FloatArray:
    """Every donor's feature vector, the co-donation features counting only the selected donations."""
    d = dataset.donations
    graph = features.graph_features(
        d.donor[donations], d.project[donations], n_donors=len(dataset.donors), n_projects=len(d.project_ids)
    )
    return features.feature_matrix(dataset.donors, graph)


def _evaluate(dataset: Dataset, data: _Labelled, config: TrainConfig) -> _Evaluated:
    """Every candidate on the k-fold, time and leave-one-pattern-out splits."""
    out = _Evaluated(scores=[], evaluations={}, notes=[])
    thresholds = (config.review_threshold, config.block_threshold)
    y = data.y

    def record(split: str, model: str, truth: npt.NDArray[np.bool_], score: FloatArray) -> None:
        out.scores.append(SplitScores(split=split, model=model, y=truth.astype(np.int64), score=score))
        if truth.all() or not truth.any():
            out.notes.append(f"split {split}: test set has one class only, no metrics")
            return
        result = evaluation.evaluate(truth, score, thresholds, n_boot=config.n_boot, seed=config.seed)
        out.evaluations.setdefault(split, {})[model] = result.to_dict()

    folds = splits.stratified_kfold(y, k=config.folds, seed=config.seed)
    for name in risk.CANDIDATES:
        oof = np.full(y.size, np.nan)
        for split in folds:
            splits.check_disjoint(split, n_rows=y.size)
            model = risk.fit(name, data.x[split.train], y[split.train], config.seed)
            oof[split.test] = risk.predict(model, data.x[split.test])
        record("kfold", name, y, oof)

    donors = dataset.donors
    try:
        cut = splits.time_split(
            donors["first_block"].to_numpy()[data.rows], donors["last_block"].to_numpy()[data.rows], y,
            test_fraction=config.time_test_fraction,
        )  # fmt: skip
    except splits.SplitError as exc:
        out.notes.append(f"time split not evaluated: {exc}")
    else:
        splits.check_disjoint(cut, n_rows=y.size)
        assert cut.cut_block is not None
        x_train = time_split_features(dataset, cut.cut_block)[data.rows][cut.train]
        out.notes.append(
            f"time split: cut at block {cut.cut_block}; train {cut.train.size} donors active only before it, "
            f"test {cut.test.size} first seen at or after it, {cut.dropped} straddling donors left out"
        )
        for name in risk.CANDIDATES:
            model = risk.fit(name, x_train, y[cut.train], config.seed)
            record("time", name, y[cut.test], risk.predict(model, data.x[cut.test]))

    try:
        held_out = splits.leave_pattern_out(data.patterns, y, seed=config.seed)
    except splits.SplitError as exc:
        held_out = []
        out.notes.append(f"leave-one-pattern-out not evaluated: {exc}")
    for split in held_out:
        splits.check_disjoint(split, n_rows=y.size)
        for name in risk.CANDIDATES:
            model = risk.fit(name, data.x[split.train], y[split.train], config.seed)
            record(split.name, name, y[split.test], risk.predict(model, data.x[split.test]))
    return out


def time_split_features(dataset: Dataset, cut_block: int) -> FloatArray:
    """Features as they were before ``cut_block``: co-donation features from earlier donations only.

    The SQL features of a training donor of the time split already describe
    only its own pre-cut donations (its last donation is before the cut); the
    co-donation features also look at other donors, so they are recomputed
    without any donation at or after the cut.
    """
    return _features(dataset, dataset.donations.block < cut_block)


def _save_anomaly(detectors: anomaly.AnomalyModels, z: FloatArray, directory: Path) -> dict[str, float]:
    """Export both detectors and the scaler; returns their parity with scikit-learn."""
    forest = from_isolation_forest(detectors.isolation_forest)
    lof = from_lof(detectors.lof)
    forest.save(directory / "isolation_forest.npz")
    lof.save(directory / "lof.npz")
    np.savez(directory / "anomaly_scaler.npz", mean=detectors.scaler.mean, scale=detectors.scaler.scale)
    return {
        "isolation_forest": _max_diff(_kernel_iforest(forest, z), detectors.isolation_forest.decision_function(z)),
        "lof": _max_diff(_kernel_lof(lof, z), detectors.lof.decision_function(z)),
    }


def _data_summary(dataset: Dataset, data: _Labelled) -> dict[str, Any]:
    d = dataset.donations
    counts = dataset.donors.loc[dataset.donors["labelled"], "pattern"].value_counts().sort_index()
    return {
        "chain_id": dataset.chain_id,
        "donors": len(dataset.donors),
        "labelled": int(data.rows.size),
        "sybils": int(data.y.sum()),
        "patterns": {str(k): int(v) for k, v in counts.items()},
        "projects": len(d.project_ids),
        "donations": int(d.donor.size),
        "block_range": [int(d.block.min()), int(d.block.max())] if d.block.size else None,
        "label_sources": dataset.label_sources,
    }


def _library_versions() -> dict[str, str]:
    return {lib: importlib.metadata.version(lib) for lib in LIBRARIES} | {"python": platform.python_version()}


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("roc_auc", "pr_auc", "gating", "n", "positives") if k in result}


def _max_diff(a: FloatArray, b: FloatArray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0


def _kernel_risk(arrays: TreeEnsemble | LinearModel, x: FloatArray) -> FloatArray:
    from scorer.kernels import trees  # noqa: PLC0415 - numba compiles on first use

    args: dict[str, Any] = arrays.kernel_args()
    if isinstance(arrays, LinearModel):
        return np.asarray(trees.linear_score_batch(x, **args))
    return np.asarray(trees.score_batch(x, **args))


def _kernel_iforest(arrays: IsolationForestArrays, z: FloatArray) -> FloatArray:
    from scorer.kernels import iforest  # noqa: PLC0415

    args: dict[str, Any] = arrays.kernel_args()
    return np.asarray(iforest.decision_function_batch(z, **args))


def _kernel_lof(arrays: LofArrays, z: FloatArray) -> FloatArray:
    from scorer.kernels import lof  # noqa: PLC0415

    args: dict[str, Any] = arrays.kernel_args()
    return np.asarray(lof.decision_function_batch(z, **args))
