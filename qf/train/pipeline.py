"""`qf train`: from the indexed round to a versioned model directory the scorer can load.

Steps (each a pure module; only :mod:`qf.model.dataset` touches the database):

1. the round's donations and labels (:mod:`dataset`); a real round has none or
   few, so the attack families of :mod:`qf.sim.attacks` are added to it in
   memory, labelled (:mod:`injection`); every donor without a sybil label is
   background (negative), real donors are never assumed to be anything else;
2. features (:mod:`features`): behaviour, coordination and co-donation, plus
   ``coordination_anomaly`` from an Isolation Forest fitted without labels on
   the real donors' coordination features;
3. every risk candidate (:mod:`risk`) on leave-one-family-out splits (each
   attack family held out with half the background; this selects the served
   model, :data:`risk.SELECTION_CRITERION`), and for the report on stratified
   k-fold and a time split; metrics with bootstrap intervals (:mod:`evaluation`);
4. isotonic calibration on the served model's held-out scores, thresholds that
   hold the stated background block and review rates (:mod:`calibration`), and
   the gate measured per held-out family with calibration and thresholds
   chosen without that family and on background donors they were not chosen on;
5. the served model refitted on everything, exported to flat arrays and checked
   against the library on every donor (parity below 1e-6 or the run fails);
6. Isolation Forest and LOF on every real donor (:mod:`anomaly`), the item-item
   recommender with its hit rate (:mod:`recommend`), k-means clusters and PCA
   (:mod:`clusters`), co-donation rules (:mod:`rules`);
7. the files, manifest and report (:mod:`artifacts`, :mod:`report`).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.funding.graph import FundingGraph
from qf_sentinel.qf.model import artifacts, features
from qf_sentinel.qf.model import gate as served_gate
from qf_sentinel.qf.model.arrays import (
    AnomalyScaler,
    ClusterCenters,
    IsolationForestArrays,
    LinearModel,
    LofArrays,
    TreeEnsemble,
)
from qf_sentinel.qf.model.calibration import Calibration
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.live import Contribution
from qf_sentinel.qf.sim.attacks import FAMILIES
from qf_sentinel.qf.train import anomaly, evaluation, injection, risk, splits
from qf_sentinel.qf.train import gate as contribution_gate
from qf_sentinel.qf.train.calibration import choose_thresholds, fit_calibration
from qf_sentinel.qf.train.clusters import choose_kmeans, pca_2d
from qf_sentinel.qf.train.errors import SplitError
from qf_sentinel.qf.train.export import from_isolation_forest, from_lof
from qf_sentinel.qf.train.recommend import donation_matrix, fit_recommender, hit_rate_at_k
from qf_sentinel.qf.train.report import headline, write_report
from qf_sentinel.qf.train.report_data import ReportData, SplitScores
from qf_sentinel.qf.train.rules import top_rules

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
PARITY_TOLERANCE = 1e-6
LIBRARIES = ("numpy", "scipy", "scikit-learn", "xgboost-cpu", "lightgbm", "numba", "igraph")
#: A family needs this many donors to be held out (fewer cannot give a metric worth reporting).
MIN_FAMILY = 5
FAMILY_PREFIX = "leave-out-"
POOLED = "leave-out-pooled"
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    seed: int = 42
    folds: int = 5
    n_boot: int = 1000
    #: nominal thresholds (the report's precision/recall points; block is raised until block_rate holds)
    review_threshold: float = 0.4
    block_threshold: float = 0.7
    #: the served review threshold spends the review budget (review_rate) but never goes below this
    review_floor: float = 0.05
    #: most of the held-out background the gate may block / send to review
    block_rate: float = 0.01
    review_rate: float = 0.05
    time_test_fraction: float = 0.3
    #: add the attack families of qf.sim.attacks to the round (in memory) as labelled sybils
    inject: bool = True
    families: tuple[str, ...] = FAMILIES
    #: share of the background held out in each leave-one-family-out split
    background_test_fraction: float = 0.5
    #: also evaluate stratified k-fold and the time split (for the report; they select nothing)
    in_distribution: bool = True
    #: also train the contribution gate (point-in-time model of single contributions, qf.train.gate)
    gate: bool = True


@dataclass(frozen=True, slots=True)
class TrainResult:
    version_dir: Path
    manifest: dict[str, Any]
    headline: dict[str, Any]


@dataclass
class TrainingData:
    """Every donor's features and labels (real and injected), and which donors are real."""

    dataset: Dataset
    x: FloatArray
    y: BoolArray
    patterns: npt.NDArray[Any]
    real: BoolArray
    coordination: IsolationForestArrays
    #: injected attack wallet (0x address) -> its campaign (funding is drawn per campaign)
    campaigns: dict[str, str] = field(default_factory=dict)


@dataclass
class Evaluated:
    scores: list[SplitScores]
    evaluations: dict[str, dict[str, evaluation.EvaluationDict]]
    notes: list[str]
    #: model -> (rows of the donors held out, held-out score, split name) over every leave-out split
    held_out: dict[str, list[tuple[npt.NDArray[np.intp], FloatArray, str]]] = field(default_factory=dict)


def train(  # noqa: PLR0915 - one run, step by step; each step is a function of its own
    dataset: Dataset, root: Path, config: TrainConfig, progress: Progress = lambda _: None,
    funding: FundingGraph | None = None, *, elsewhere: Sequence[Contribution] = (),
) -> TrainResult:
    """``funding`` is what the index found of the round's funding (``qf.funding.db.load_graph``), if anything;
    ``elsewhere`` the other indexed chains' donations (``qf.model.loader.load_elsewhere``), the donors' history
    there as the sidecar counts it."""
    data = prepare(dataset, config, progress)
    y = data.y
    if y.all() or not y.any():
        raise DataError(
            f"training needs sybils and background donors; chain {dataset.chain_id} has {int(y.sum())} sybils "
            f"among {y.size} donors (`qf simulate` and `qf labels import` add labels; injection adds attacks)"
        )
    progress(f"evaluating {len(risk.CANDIDATES)} models on {y.size} donors ({int(y.sum())} sybil)")
    evaluated = evaluate_candidates(data, config)
    served, generalisation = select_served(evaluated)
    progress(f"served model: {served} (mean held-out-family ROC AUC {generalisation:.3f})")
    add_intervals(evaluated, served, config)

    calibration, (review, block), gate = calibrate_gate(data, evaluated.held_out[served], config)
    progress(f"calibrated; thresholds review {review:.3f}, block {block:.3f}")

    staging = artifacts.staging_dir(root)
    model_files: list[str] = []
    importance: dict[str, dict[str, float]] = {}
    finals: dict[str, Any] = {}
    for name in risk.CANDIDATES:
        finals[name] = risk.fit(name, data.x, y, config.seed)
        importance[name] = risk.importance(name, finals[name], features.FEATURE_NAMES)
        model_files.append(risk.save_native(name, finals[name], staging))
    arrays = risk.export(served, finals[served])
    served_scores = risk.predict(finals[served], data.x)
    parity = {"risk": _max_diff(_kernel_risk(arrays, data.x), served_scores)}
    arrays.save(staging / "risk.npz")
    calibration.save(staging / "calibration.npz")
    data.coordination.save(staging / "coordination.npz")
    model_files += ["risk.npz", "calibration.npz", "coordination.npz"]

    real = np.flatnonzero(data.real)
    x_real = data.x[real]
    progress(f"anomaly models on {real.size} donors")
    detectors = anomaly.fit(x_real, config.seed)
    z_real = detectors.scaler.transform(x_real)
    parity |= _save_anomaly(detectors, z_real, staging)
    model_files += ["isolation_forest.npz", "lof.npz", "anomaly_scaler.npz"]
    labelled_real = real[data.dataset.donors["labelled"].to_numpy()[real]]
    anomaly_summary = anomaly.sanity_check(
        {k: v[np.searchsorted(real, labelled_real)] for k, v in anomaly.scores(detectors, x_real).items()},
        y[labelled_real],
    )
    gate_section: dict[str, Any] | None = None
    if config.gate:
        progress(f"contribution gate: point-in-time features of {data.dataset.donations.size} contributions")
        graph, funding_note = _training_funding(data, dataset, funding, config.seed)
        rows = contribution_gate.gate_data(data.dataset, graph, elsewhere)
        trained = contribution_gate.train_gate(data.dataset, contribution_gate.GateConfig(seed=config.seed), rows)
        trained.arrays.save(staging / served_gate.RISK_FILE)
        trained.calibration.save(staging / served_gate.CALIBRATION_FILE)
        model_files += [served_gate.RISK_FILE, served_gate.CALIBRATION_FILE]
        if trained.funding is not None:
            trained.funding.save(staging / served_gate.FUNDING_FILE)
            model_files.append(served_gate.FUNDING_FILE)
        parity["gate"] = trained.parity
        gate_section = trained.manifest | {"funding_source": funding_note, "donations_elsewhere": len(elsewhere)}
        progress(f"gate: {trained.served} (mean held-out first-contribution ROC AUC "
                 f"{trained.manifest['mean_held_out_roc_auc_first']:.3f}); thresholds review "
                 f"{trained.thresholds[0]:.3f}, block {trained.thresholds[1]:.3f}")  # fmt: skip
    bad = {k: v for k, v in parity.items() if not v <= PARITY_TOLERANCE}
    if bad:
        raise DataError(f"exported arrays disagree with the libraries beyond {PARITY_TOLERANCE}: {bad}")

    progress("recommender, clusters and co-donation rules")
    d = dataset.donations
    matrix = donation_matrix(d.donor, d.project, d.amount, n_donors=len(dataset.donors), n_projects=len(d.project_ids))
    fit_recommender(matrix, d.project_pool, d.project_ids).save(staging / "recommender.npz")
    hits = hit_rate_at_k(d.donor, d.project, d.order, d.project_pool, k=5)
    clusters = choose_kmeans(z_real, seed=config.seed)
    ClusterCenters(clusters.centers).save(staging / "clusters.npz")
    model_files += ["recommender.npz", "clusters.npz"]
    coords, _ = pca_2d(z_real, seed=config.seed)

    summary = _data_summary(data)
    manifest = {
        "chain_id": dataset.chain_id,
        "served_model": served,
        "selection_criterion": risk.SELECTION_CRITERION,
        "feature_names": list(features.FEATURE_NAMES),
        "fill_values": features.FILL_VALUES,
        "thresholds": {"review": review, "block": block},
        "threshold_policy": {
            "nominal": {"review": config.review_threshold, "block": config.block_threshold},
            "background_block_rate": config.block_rate, "background_review_rate": config.review_rate,
            "review_floor": config.review_floor,
            "rule": "block: the nominal block threshold, raised until at most block_rate of the held-out background "
                    "is above it; review: the lowest threshold sending at most review_rate of it to review or "
                    "block, never below review_floor",
        },
        "calibration": "isotonic on held-out leave-one-family-out scores (calibration.npz: np.interp(p, x, y))",
        "coordination": "Isolation Forest on signed_log1p of the coordination features of the real donors "
                        "(coordination.npz), its -score_samples is the coordination_anomaly feature",
        "gate": gate,
        "anomaly": {"transform": "signed_log1p then (z - mean) / scale (anomaly_scaler.npz)", "flag": "decision < 0",
                    "lof": "fitted on the distinct rows; every tie at the k-th distance is a neighbour"},
        "training_data": summary,
        "config": {"seed": config.seed, "folds": config.folds, "n_boot": config.n_boot, "inject": config.inject,
                   "families": list(config.families)},
        "metrics": {s: {m: _brief(e) for m, e in per.items()} for s, per in evaluated.evaluations.items()},
        "anomaly_check": anomaly_summary,
        "recommendation": hits,
        "clusters": {"k": clusters.k, "silhouette": {str(k): v for k, v in clusters.silhouette.items()}},
        "parity_max_abs_diff": parity,
        "libraries": _library_versions(),
        "notes": evaluated.notes,
    }  # fmt: skip
    if gate_section is not None:
        manifest[served_gate.MANIFEST_KEY] = gate_section
    version_dir = artifacts.publish(staging, root, manifest, model_files=model_files)
    manifest = artifacts.read_manifest(version_dir)
    held = evaluated.held_out[served]
    report = ReportData(
        version=str(manifest["version"]),
        created_at=str(manifest["created_at"]),
        served_model=served,
        selection_criterion=risk.SELECTION_CRITERION,
        thresholds=(review, block),
        data_summary=summary,
        evaluations=evaluated.evaluations,
        scores=evaluated.scores,
        feature_importance=importance,
        # Held-out scores (each donor scored by a model that never saw its family): in-sample ones would flatter.
        served_scores=calibration.apply(np.concatenate([s for _, s, _ in held])),
        served_labels=data.patterns[np.concatenate([r for r, _, _ in held])],
        pca=coords,
        pca_labels=data.patterns[real],
        clusters=clusters.labels,
        cluster_silhouette=clusters.silhouette,
        anomaly=dict(anomaly_summary),
        recommendation=dict(hits),
        rules=top_rules(matrix, d.project_ids),
        notes=evaluated.notes,
    )
    write_report(version_dir, report)
    return TrainResult(version_dir=version_dir, manifest=manifest, headline=headline(report) | {"gate": gate})


def _training_funding(
    data: TrainingData, dataset: Dataset, funding: FundingGraph | None, seed: int
) -> tuple[FundingGraph, str]:
    """The funding the gate trains on: the index's for the real donors, drawn for the injected attackers; when
    the index found no funding for any real donor, drawn for them too (the simulator's honest model), so that
    funding evidence is never the attackers' alone."""
    real = [bytes.fromhex(str(a)[2:]) for a in dataset.donors["address"]]
    indexed = funding is not None and any(funding.first_funding(w, as_of=float("inf")) for w in real)
    graph, _ = contribution_gate.drawn_graph(data.dataset, data.campaigns, seed=seed, base=funding if indexed else None,
                                             draw_background=not indexed)  # fmt: skip
    if indexed:
        return graph, "real donors: the index (qf.wallet_funding); injected attackers: drawn (qf.sim.funding)"
    return graph, "simulated: the index holds no funding of the real donors, so all of it is drawn (qf.sim.funding)"


def select_served(evaluated: Evaluated) -> tuple[str, float]:
    """The candidate with the highest mean ROC AUC over the held-out families, and that mean."""
    families = {s: per for s, per in evaluated.evaluations.items() if s.startswith(FAMILY_PREFIX) and s != POOLED}
    if not families:
        raise DataError("no attack family has enough donors to be held out; the served model cannot be chosen")

    def generalisation(name: str) -> float:
        return float(np.mean([per[name]["roc_auc"]["point"] for per in families.values() if name in per]))

    served = max(risk.CANDIDATES, key=lambda n: (generalisation(n), -risk.CANDIDATES.index(n)))
    return served, generalisation(served)


def prepare(dataset: Dataset, config: TrainConfig, progress: Progress) -> TrainingData:
    """The training round (with injected attacks), its features and the coordination anomaly model."""
    campaigns: dict[str, str] = {}
    combined = (
        injection.inject_dataset(dataset, config.families, seed=config.seed, campaigns=campaigns)
        if config.inject else dataset
    )  # fmt: skip
    real = np.isin(combined.donors["address"].to_numpy(), dataset.donors["address"].to_numpy())
    progress(f"features of {len(combined.donors)} donors ({int((~real).sum())} injected attackers)")
    base = features.feature_matrix(combined)
    coordination = fit_coordination(base[real], config.seed)
    x = base.copy()
    x[:, -1] = features.coordination_anomaly(base, _coordination_score(coordination))
    donors = combined.donors
    return TrainingData(
        dataset=combined,
        x=np.ascontiguousarray(x),
        y=donors["is_sybil"].to_numpy(dtype=bool),
        patterns=np.where(donors["labelled"].to_numpy(), donors["pattern"].to_numpy(), "background"),
        real=real,
        coordination=coordination,
        campaigns=campaigns,
    )


def fit_coordination(x: FloatArray, seed: int) -> IsolationForestArrays:
    """The unsupervised coordination model: an Isolation Forest on the real donors' coordination features."""
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 - heavy import only when training

    forest = IsolationForest(n_estimators=200, random_state=seed, n_jobs=1).fit(features.coordination_input(x))
    arrays = from_isolation_forest(forest)
    z = features.coordination_input(x)
    diff = _max_diff(_coordination_score(arrays)(z), -forest.score_samples(z))
    if not diff <= PARITY_TOLERANCE:
        raise DataError(f"the coordination forest's arrays disagree with scikit-learn by {diff}")
    return arrays


def _coordination_score(arrays: IsolationForestArrays) -> features.CoordinationScore:
    from qf_sentinel.qf.model.kernels import iforest  # noqa: PLC0415 - numba compiles on first use

    return iforest.anomaly_scorer(arrays.kernel_args())


def evaluate_candidates(data: TrainingData, config: TrainConfig) -> Evaluated:
    """Every candidate on the leave-one-family-out splits, and (for the report) k-fold and the time split."""
    out = Evaluated(scores=[], evaluations={}, notes=[])
    thresholds = (config.review_threshold, config.block_threshold)
    x, y = data.x, data.y

    def record(split: str, model: str, truth: BoolArray, score: FloatArray) -> None:
        out.scores.append(SplitScores(split=split, model=model, y=truth.astype(np.int64), score=score))
        if truth.all() or not truth.any():
            out.notes.append(f"split {split}: test set has one class only, no metrics")
            return
        # Point estimates now; intervals once the served model is known (see _intervals).
        result = evaluation.evaluate(truth, score, thresholds, n_boot=1, seed=config.seed)
        out.evaluations.setdefault(split, {})[model] = result.to_dict()

    names, counts = np.unique(data.patterns[y], return_counts=True)
    families = [str(n) for n, c in zip(names, counts, strict=True) if c >= MIN_FAMILY]
    if len(families) < names.size:
        out.notes.append(f"families with fewer than {MIN_FAMILY} donors are never held out: "
                         + ", ".join(str(n) for n, c in zip(names, counts, strict=True) if c < MIN_FAMILY))  # fmt: skip
    held_out = splits.leave_pattern_out(
        data.patterns, y, families, test_fraction_of_honest=config.background_test_fraction, seed=config.seed
    ) if families and len(names) >= 2 else []  # fmt: skip
    if not held_out:
        out.notes.append("leave-one-family-out needs at least two attack families")
    pooled: dict[str, tuple[list[BoolArray], list[FloatArray]]] = {}
    for split in held_out:
        splits.check_disjoint(split, n_rows=y.size)
        for name in risk.CANDIDATES:
            model = risk.fit(name, x[split.train], y[split.train], config.seed)
            score = risk.predict(model, x[split.test])
            record(split.name, name, y[split.test], score)
            out.held_out.setdefault(name, []).append((split.test, score, split.name))
            truths, scores = pooled.setdefault(name, ([], []))
            truths.append(y[split.test])
            scores.append(score)
    for name, (truths, scores) in pooled.items():
        record(POOLED, name, np.concatenate(truths), np.concatenate(scores))
    if config.in_distribution:
        _in_distribution(data, config, record, out.notes)
    return out


def add_intervals(evaluated: Evaluated, served: str, config: TrainConfig) -> None:
    """Bootstrap intervals: ``n_boot`` resamples for the served model, at most 100 for the other candidates.

    The intervals of the candidates that are not served only inform the
    report; 1,000 resamples of every candidate on every split would cost most
    of a run's time on a 10k-donor round.
    """
    thresholds = (config.review_threshold, config.block_threshold)
    for run in evaluated.scores:
        if run.split not in evaluated.evaluations or run.model not in evaluated.evaluations[run.split]:
            continue
        n_boot = config.n_boot if run.model == served else min(config.n_boot, 100)
        truth = run.y.astype(bool)
        result = evaluation.evaluate(truth, run.score, thresholds, n_boot=n_boot, seed=config.seed)
        evaluated.evaluations[run.split][run.model] = result.to_dict()


def _in_distribution(data: TrainingData, config: TrainConfig, record: Callable[..., None], notes: list[str]) -> None:
    """Stratified k-fold and the time split: how well the models fit the round they were trained on."""
    x, y = data.x, data.y
    folds = splits.stratified_kfold(y, k=config.folds, seed=config.seed)
    for name in risk.CANDIDATES:
        oof = np.full(y.size, np.nan)
        for split in folds:
            splits.check_disjoint(split, n_rows=y.size)
            model = risk.fit(name, x[split.train], y[split.train], config.seed)
            oof[split.test] = risk.predict(model, x[split.test])
        record("kfold", name, y, oof)
    donors = data.dataset.donors
    try:
        cut = splits.time_split(
            donors["first_block"].to_numpy(), donors["last_block"].to_numpy(), y,
            test_fraction=config.time_test_fraction,
        )  # fmt: skip
    except SplitError as exc:
        notes.append(f"time split not evaluated: {exc}")
        return
    splits.check_disjoint(cut, n_rows=y.size)
    assert cut.cut_block is not None
    x_train = time_split_features(data.dataset, cut.cut_block, _coordination_score(data.coordination))[cut.train]
    notes.append(
        f"time split: cut at block {cut.cut_block}; train {cut.train.size} donors active only before it, "
        f"test {cut.test.size} first seen at or after it, {cut.dropped} straddling donors left out"
    )
    for name in risk.CANDIDATES:
        model = risk.fit(name, x_train, y[cut.train], config.seed)
        record("time", name, y[cut.test], risk.predict(model, x[cut.test]))


def calibrate_gate(
    data: TrainingData, held: list[tuple[npt.NDArray[np.intp], FloatArray, str]], config: TrainConfig
) -> tuple[Calibration, tuple[float, float], dict[str, Any]]:
    """Calibration and thresholds from every held-out score, and the gate measured honestly per family.

    For the gate figures of family F, calibration and thresholds are refitted
    without F's donors and on one half of the held-out background, then
    applied to F and to the other half (so no figure is measured on what set it).
    """
    rows = np.concatenate([r for r, _, _ in held])
    raw = np.concatenate([s for _, s, _ in held])
    split_of = np.concatenate([np.full(r.size, name) for r, _, name in held])
    y = data.y[rows]
    calibration, calibrated = fit_calibration(raw, y)
    review, block = choose_thresholds(
        calibrated[~y], block=config.block_threshold, review_rate=config.review_rate, block_rate=config.block_rate,
        review_floor=config.review_floor,
    )  # fmt: skip
    half = (rows % 2).astype(bool)  # background donors: half set thresholds, the other half is measured
    per_family: dict[str, dict[str, Any]] = {}
    background_rates: list[tuple[float, float]] = []
    for name in sorted(set(split_of.tolist())):
        family = data.patterns[rows[(split_of == name) & y][0]] if ((split_of == name) & y).any() else name
        fit_rows = (split_of != name) & (y | half)
        if not (y[fit_rows].any() and (~y[fit_rows]).any()):
            continue
        cal, cal_scores = fit_calibration(raw[fit_rows], y[fit_rows])
        r, b = choose_thresholds(
            cal_scores[~y[fit_rows]], block=config.block_threshold, review_rate=config.review_rate,
            block_rate=config.block_rate, review_floor=config.review_floor,
        )  # fmt: skip
        held_attackers = cal.apply(raw[(split_of == name) & y])
        background = cal.apply(raw[(split_of == name) & ~y & ~half])
        per_family[str(family)] = {
            "attackers": int(held_attackers.size),
            "attackers_approved": float(np.mean(held_attackers < r)) if held_attackers.size else float("nan"),
            "attackers_blocked": float(np.mean(held_attackers > b)) if held_attackers.size else float("nan"),
            "background": int(background.size),
            "background_blocked": float(np.mean(background > b)),
            "background_review": float(np.mean((background >= r) & (background <= b))),
            "thresholds": [r, b],
        }
        background_rates.append((per_family[str(family)]["background_blocked"],
                                 per_family[str(family)]["background_review"]))  # fmt: skip
    attackers = sum(int(v["attackers"]) for v in per_family.values())
    gate = {
        "thresholds": {"review": review, "block": block},
        "families": per_family,
        "attackers_approved": (
            sum(float(v["attackers_approved"]) * int(v["attackers"]) for v in per_family.values()) / attackers
            if attackers
            else None
        ),
        "background_blocked": float(np.mean([b for b, _ in background_rates])) if background_rates else None,
        "background_review": float(np.mean([r for _, r in background_rates])) if background_rates else None,
    }
    return calibration, (review, block), gate


def time_split_features(dataset: Dataset, cut_block: int, coordination: features.CoordinationScore) -> FloatArray:
    """Features as they were before ``cut_block``: every feature from earlier donations only.

    A training donor of the time split has only pre-cut donations, but the
    coordination and co-donation features also look at other donors, so all
    are recomputed without any donation at or after the cut.
    """
    return features.feature_matrix(dataset, dataset.donations.block < cut_block, coordination=coordination)


def _save_anomaly(detectors: anomaly.AnomalyModels, z: FloatArray, directory: Path) -> dict[str, float]:
    """Export both detectors and the scaler; returns their parity with the libraries.

    LOF is held to two references: on every row, the numpy reference of the
    tie rule (:class:`anomaly.DistinctLof`, which keeps its own densities, so a
    wrong export shows); on the rows where no distance ties, scikit-learn's own
    ``decision_function`` (elsewhere it depends on the order of tied points).
    """
    forest = from_isolation_forest(detectors.isolation_forest)
    lof = from_lof(detectors.lof.estimator)
    forest.save(directory / "isolation_forest.npz")
    lof.save(directory / "lof.npz")
    AnomalyScaler(detectors.scaler.mean, detectors.scaler.scale).save(directory / "anomaly_scaler.npz")
    neighbours = _kernel_lof(lof, z)
    tie_free = detectors.lof.tie_free(z)
    library = detectors.lof.estimator.decision_function(z[tie_free]) if tie_free.any() else np.zeros(0)
    return {
        "isolation_forest": _max_diff(_kernel_iforest(forest, z), detectors.isolation_forest.decision_function(z)),
        "lof": _max_diff(neighbours, detectors.lof.decision_function(z)),
        "lof_scikit_learn": _max_diff(neighbours[tie_free], library),
    }


def _data_summary(data: TrainingData) -> dict[str, Any]:
    dataset = data.dataset
    d = dataset.donations
    counts = dataset.donors.loc[dataset.donors["labelled"], "pattern"].value_counts().sort_index()
    return {
        "chain_id": dataset.chain_id,
        "donors": len(dataset.donors),
        "real_donors": int(data.real.sum()),
        "injected_attackers": int((~data.real).sum()),
        "labelled": int(dataset.donors["labelled"].sum()),
        "sybils": int(data.y.sum()),
        "patterns": {str(k): int(v) for k, v in counts.items()},
        "projects": len(d.project_ids),
        "donations": int(d.donor.size),
        "block_range": [int(d.block.min()), int(d.block.max())] if d.block.size else None,
        "label_sources": dataset.label_sources,
    }


def _library_versions() -> dict[str, str]:
    return {lib: importlib.metadata.version(lib) for lib in LIBRARIES} | {"python": platform.python_version()}


def _brief(result: evaluation.EvaluationDict) -> dict[str, Any]:
    return {k: result[k] for k in ("roc_auc", "pr_auc", "gating", "n", "positives") if k in result}


def _max_diff(a: FloatArray, b: FloatArray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0


def _kernel_risk(arrays: TreeEnsemble | LinearModel, x: FloatArray) -> FloatArray:
    from qf_sentinel.qf.model.kernels import trees  # noqa: PLC0415 - numba compiles on first use

    if isinstance(arrays, LinearModel):
        return np.asarray(trees.linear_score_batch(x, arrays.kernel_args()))
    return np.asarray(trees.score_batch(x, arrays.kernel_args()))


def _kernel_iforest(arrays: IsolationForestArrays, z: FloatArray) -> FloatArray:
    from qf_sentinel.qf.model.kernels import iforest  # noqa: PLC0415

    args: dict[str, Any] = arrays.kernel_args()
    return np.asarray(iforest.decision_function_batch(z, **args))


def _kernel_lof(arrays: LofArrays, z: FloatArray) -> FloatArray:
    from qf_sentinel.qf.model.kernels import lof  # noqa: PLC0415

    args: dict[str, Any] = arrays.kernel_args()
    return np.asarray(lof.decision_function_batch(z, **args))
