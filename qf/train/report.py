"""The human-readable end of a training run: ``models/<version>/report.md`` and its PNG plots.

``qf train`` gathers what it measured into a :class:`ReportData` of plain
numbers and arrays (no model objects) and :func:`write_report` turns it into
a markdown page a person can judge the model and the round by: the served
model's headline numbers with intervals, every model on every split, what the
gate would do to honest donors and sybils, the anomaly, recommendation and
segment results, the top co-donation rules (:mod:`qf.train.rules`) and the
caveats. Metrics come ready-made from :meth:`qf.train.evaluation.Evaluation.to_dict`;
only the curves and the reliability table are computed here, from the
held-out predictions in :class:`SplitScores`.

Output is deterministic: the same data gives byte-identical files, so a
report can be diffed between runs. Plots are drawn on bare
:class:`matplotlib.figure.Figure` objects with an Agg canvas, never through
pyplot, so writing a report neither needs a display nor touches the global
backend of the process that calls it. Inconsistent input raises
:class:`qf.errors.DataError`; a split that cannot be plotted (one class only)
is skipped and said so in the report's notes.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from qf.errors import DataError
from qf.train.evaluation import calibration_bins
from qf.train.rules import Rule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]

#: The split whose pooled out-of-fold predictions feed the calibration plot.
KFOLD_SPLIT = "kfold"
REPORT_NAME = "report.md"

_DPI = 100
# No "Software" chunk: the PNG bytes then depend on neither the time nor the matplotlib version string.
_PNG_METADATA: dict[str, str | None] = {"Software": None}
_TOP_FEATURES = 20
_CALIBRATION_BINS = 10
_HISTOGRAM_BINS = 40

_LABELS = {
    "isolation_forest_auc": "Isolation Forest ROC AUC against the labels",
    "lof_auc": "LOF ROC AUC against the labels",
    "consensus_flagged": "Donors flagged by both detectors",
    "consensus_precision": "Share of those that are labelled sybil",
    "hit_rate_cf": "Hit rate, collaborative filtering",
    "hit_rate_popularity": "Hit rate, popularity baseline",
    "donors_evaluated": "Donors evaluated (leave-last-out)",
    "k": "k (top-k recommendations)",
}


@dataclass(frozen=True, eq=False)
class SplitScores:
    """Held-out predictions of one model on one split: labels (1 = sybil) and risk scores in ``[0, 1]``."""

    split: str
    model: str
    y: npt.NDArray[Any]
    score: npt.NDArray[Any]

    def __post_init__(self) -> None:
        raw = np.asarray(self.y)
        if raw.ndim != 1 or (raw.dtype != np.bool_ and not np.isin(raw, (0, 1)).all()):
            raise DataError(f"{self.model} on {self.split}: labels must be a 1-D array of 0/1")
        score = np.asarray(self.score, dtype=np.float64)
        if score.shape != raw.shape:
            raise DataError(f"{self.model} on {self.split}: {raw.size} labels but scores of shape {score.shape}")
        if not np.all((score >= 0) & (score <= 1)):  # False for NaN too
            raise DataError(f"{self.model} on {self.split}: scores must be finite and in [0, 1]")
        object.__setattr__(self, "y", raw.astype(np.int64))
        object.__setattr__(self, "score", score)

    @property
    def positives(self) -> int:
        return int(np.count_nonzero(self.y))

    @property
    def has_both_classes(self) -> bool:
        return 0 < self.positives < self.y.size


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything a report shows, as plain values; see :func:`write_report` for how each part is used.

    ``evaluations`` maps split -> model -> :meth:`Evaluation.to_dict` output;
    ``served_scores``/``served_labels`` are the served model's score and the
    pattern name of each donor; ``pca``, ``pca_labels`` and ``clusters`` hold
    one row per donor of the segment analysis.
    """

    version: str
    created_at: str
    served_model: str
    selection_criterion: str
    thresholds: tuple[float, float]
    data_summary: dict[str, object]
    evaluations: dict[str, dict[str, dict[str, Any]]]
    scores: list[SplitScores]
    feature_importance: dict[str, dict[str, float]]
    served_scores: npt.NDArray[Any]
    served_labels: npt.NDArray[Any]
    pca: npt.NDArray[Any]
    pca_labels: npt.NDArray[Any]
    clusters: npt.NDArray[Any]
    cluster_silhouette: dict[int, float]
    anomaly: dict[str, object] = field(default_factory=dict)
    recommendation: dict[str, object] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        review, block = self.thresholds
        if not 0 <= review <= block <= 1:
            raise DataError(f"thresholds must satisfy 0 <= review <= block <= 1, got {self.thresholds}")
        served = np.asarray(self.served_scores, dtype=np.float64)
        served_labels = np.asarray(self.served_labels).astype(np.str_)
        if served.ndim != 1 or served_labels.shape != served.shape:
            raise DataError(f"need one label per served score ({served.shape}), got {served_labels.shape}")
        pca = np.asarray(self.pca, dtype=np.float64)
        if pca.size == 0:
            pca = pca.reshape(0, 2)
        pca_labels = np.asarray(self.pca_labels).astype(np.str_)
        clusters = np.asarray(self.clusters, dtype=np.int64)
        if pca.ndim != 2 or pca.shape[1] != 2:
            raise DataError(f"pca must have shape (n, 2), got {pca.shape}")
        if pca_labels.shape != (pca.shape[0],) or clusters.shape != (pca.shape[0],):
            raise DataError(
                f"need one label and one cluster per pca row ({pca.shape[0]}), got {pca_labels.shape}, {clusters.shape}"
            )
        for name, value in (
            ("served_scores", served),
            ("served_labels", served_labels),
            ("pca", pca),
            ("pca_labels", pca_labels),
            ("clusters", clusters),
        ):
            object.__setattr__(self, name, value)


def slugify(name: str) -> str:
    """A file-name-safe form of ``name``: lower-case ASCII letters, digits, ``_`` and ``-``, never empty."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return slug or "split"


def headline(data: ReportData) -> dict[str, Any]:
    """The served model's numbers on every evaluated split, JSON-ready, for the README and the CLI.

    Per split: rows, sybils, ``roc_auc`` and ``pr_auc`` as ``{point, low, high}``,
    precision and recall at the review and block thresholds (same form, or
    ``None`` if not evaluated there) and the gate's rates.
    """
    review, block = data.thresholds
    splits: dict[str, Any] = {}
    for split, by_model in data.evaluations.items():
        evaluation = by_model.get(data.served_model)
        if evaluation is None:
            continue
        gating = evaluation.get("gating", {})
        at_review, at_block = _at_threshold(evaluation, review), _at_threshold(evaluation, block)
        splits[split] = {
            "n": evaluation.get("n"),
            "positives": evaluation.get("positives"),
            "roc_auc": evaluation.get("roc_auc"),
            "pr_auc": evaluation.get("pr_auc"),
            "precision_at_review": at_review.get("precision") if at_review else None,
            "recall_at_review": at_review.get("recall") if at_review else None,
            "precision_at_block": at_block.get("precision") if at_block else None,
            "recall_at_block": at_block.get("recall") if at_block else None,
            "honest_blocked_rate": gating.get("honest_blocked_rate"),
            "honest_review_rate": gating.get("honest_review_rate"),
            "sybil_approved_rate": gating.get("sybil_approved_rate"),
        }
    return {
        "version": data.version,
        "served_model": data.served_model,
        "thresholds": {"review": review, "block": block},
        "splits": splits,
    }


def write_report(directory: Path, data: ReportData) -> list[Path]:
    """Write the plots and ``report.md`` into ``directory`` (created if missing); return their paths.

    Files: ``roc_<split>.png`` and ``pr_<split>.png`` per split with two
    classes, ``calibration.png`` (the :data:`KFOLD_SPLIT` split),
    ``feature_importance.png``, ``score_distribution.png``, ``pca.png``, then
    ``report.md``. A plot without data is left out and the reason added to
    the notes; the report links exactly the plots written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    models = _model_order(data)
    colours = {model: _colour(i, len(models)) for i, model in enumerate(models)}
    by_split = _scores_by_split(data.scores)
    curves = _write_curves(directory, data, by_split, colours, notes)
    written = [directory / name for pair in curves.values() for name in pair]

    kfold = [run for run in by_split.get(KFOLD_SPLIT, []) if run.y.size]
    plots: list[tuple[str, Callable[[], Figure] | None, str]] = [
        (
            "calibration",
            (lambda: _calibration_figure(kfold, colours)) if kfold else None,
            f"No calibration plot: there are no `{KFOLD_SPLIT}` (pooled out-of-fold) predictions.",
        ),
        (
            "feature_importance",
            (lambda: _importance_figure(data.feature_importance, models))
            if any(data.feature_importance.values())
            else None,
            "No feature-importance plot: no model reported importances.",
        ),
        (
            "score_distribution",
            (lambda: _distribution_figure(data)) if data.served_scores.size else None,
            "No score-distribution plot: the served model scored no donors.",
        ),
        (
            "pca",
            (lambda: _pca_figure(data)) if data.pca.shape[0] else None,
            "No PCA plot: the segment analysis has no rows.",
        ),
    ]
    images: dict[str, str] = {}
    for name, draw, missing in plots:
        if draw is None:
            notes.append(missing)
            continue
        written.append(_save(draw(), directory / f"{name}.png"))
        images[name] = f"{name}.png"

    report = directory / REPORT_NAME
    report.write_text(_markdown(data, models, curves, images, notes), encoding="utf-8", newline="\n")
    written.append(report)
    return written


def _write_curves(
    directory: Path,
    data: ReportData,
    by_split: Mapping[str, list[SplitScores]],
    colours: Mapping[str, Any],
    notes: list[str],
) -> dict[str, tuple[str, str]]:
    """Write the ROC and PR plots of every split with two classes; ``split -> (roc file, pr file)``.

    What cannot be plotted or was not evaluated is appended to ``notes``.
    """
    slugs = _unique_slugs(list(dict.fromkeys([*data.evaluations, *by_split])))
    curves: dict[str, tuple[str, str]] = {}
    for split, runs in by_split.items():
        plottable = [run for run in runs if run.has_both_classes]
        one_class = [run for run in runs if not run.has_both_classes]
        if one_class:
            notes.append(
                f"Split {_cell(split)} skipped for {', '.join(run.model for run in one_class)}: no ROC/PR curve, "
                f"its {one_class[0].y.size} held-out rows hold {one_class[0].positives} sybils and ranking "
                "metrics need both classes."
            )
        if split not in data.evaluations:
            notes.append(f"Split {_cell(split)} has predictions but no evaluation, so no metrics or intervals.")
        elif data.served_model not in data.evaluations[split]:
            notes.append(f"Split {_cell(split)}: the served model {_cell(data.served_model)} was not evaluated.")
        if plottable:
            roc_name, pr_name = f"roc_{slugs[split]}.png", f"pr_{slugs[split]}.png"
            _save(_roc_figure(split, plottable, data, colours), directory / roc_name)
            _save(_pr_figure(split, plottable, data, colours), directory / pr_name)
            curves[split] = (roc_name, pr_name)
    return curves


# --- inputs --------------------------------------------------------------------


def _model_order(data: ReportData) -> list[str]:
    """The served model first, then the others in the order they first appear."""
    seen = [data.served_model]
    for by_model in data.evaluations.values():
        seen.extend(by_model)
    seen.extend(run.model for run in data.scores)
    seen.extend(data.feature_importance)
    return list(dict.fromkeys(seen))


def _scores_by_split(scores: Iterable[SplitScores]) -> dict[str, list[SplitScores]]:
    by_split: dict[str, list[SplitScores]] = {}
    for run in scores:
        by_split.setdefault(run.split, []).append(run)
    return by_split


def _unique_slugs(names: Sequence[str]) -> dict[str, str]:
    """A distinct slug per name, in order: a name whose slug is taken gets ``-2``, ``-3``, ..."""
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = slug = slugify(name)
        suffix = 2
        while slug in taken:
            slug, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(slug)
        slugs[name] = slug
    return slugs


def _at_threshold(evaluation: Mapping[str, Any], threshold: float) -> Mapping[str, Any] | None:
    for entry in evaluation.get("at_thresholds", ()):
        if math.isclose(float(entry["threshold"]), threshold):
            result: Mapping[str, Any] = entry
            return result
    return None


def _auc(data: ReportData, run: SplitScores, key: str) -> float:
    """The AUC the evaluation reported for this run, or computed here if it has none."""
    entry = data.evaluations.get(run.split, {}).get(run.model, {}).get(key)
    if isinstance(entry, Mapping) and entry.get("point") is not None:
        return float(entry["point"])
    metric = roc_auc_score if key == "roc_auc" else average_precision_score
    return float(metric(run.y, run.score))


# --- plots ---------------------------------------------------------------------


def _colour(index: int, count: int) -> tuple[float, float, float, float]:
    cmap = mpl.colormaps["tab10" if count <= 10 else "tab20"]
    rgba = cmap(index % cmap.N)
    return (float(rgba[0]), float(rgba[1]), float(rgba[2]), float(rgba[3]))


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself: the figure renders with Agg whatever the process backend
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=_DPI, metadata=_PNG_METADATA)
    fig.clear()
    return path


def _line_width(model: str, data: ReportData) -> float:
    return 2.2 if model == data.served_model else 1.3


def _roc_figure(split: str, runs: list[SplitScores], data: ReportData, colours: Mapping[str, Any]) -> Figure:
    fig = _figure(6.0, 5.0)
    ax = fig.add_subplot()
    for run in runs:
        fpr, tpr, _ = roc_curve(run.y, run.score)
        label = f"{run.model} (AUC {_num(_auc(data, run, 'roc_auc'))})"
        ax.plot(fpr, tpr, color=colours[run.model], linewidth=_line_width(run.model, data), label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance (AUC 0.500)")
    _square(ax, "False positive rate (honest flagged)", "True positive rate (sybils caught)")
    ax.set_title(f"ROC, split {split} ({_rows(runs[0])})")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def _pr_figure(split: str, runs: list[SplitScores], data: ReportData, colours: Mapping[str, Any]) -> Figure:
    fig = _figure(6.0, 5.0)
    ax = fig.add_subplot()
    for run in runs:
        precision, recall, _ = precision_recall_curve(run.y, run.score)
        label = f"{run.model} (AP {_num(_auc(data, run, 'pr_auc'))})"
        ax.plot(
            recall,
            precision,
            color=colours[run.model],
            linewidth=_line_width(run.model, data),
            drawstyle="steps-post",
            label=label,
        )
    prevalence = runs[0].positives / runs[0].y.size
    ax.axhline(prevalence, color="grey", linestyle="--", linewidth=1, label=f"chance (sybil share {_num(prevalence)})")
    _square(ax, "Recall (sybils caught)", "Precision (flagged that are sybil)")
    ax.set_title(f"Precision-recall, split {split} ({_rows(runs[0])})")
    ax.legend(loc="lower left", fontsize="small")
    return fig


def _rows(run: SplitScores) -> str:
    return f"{run.y.size} rows, {run.positives} sybil"


def _square(ax: Axes, xlabel: str, ylabel: str) -> None:
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(visible=True, alpha=0.3)


def _calibration_figure(runs: list[SplitScores], colours: Mapping[str, Any]) -> Figure:
    fig = _figure(6.0, 6.5)
    reliability, counts = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for run in runs:
        bins = calibration_bins(run.y, run.score, _CALIBRATION_BINS)
        filled = bins.count > 0
        reliability.plot(
            bins.mean_predicted[filled],
            bins.observed_rate[filled],
            marker="o",
            color=colours[run.model],
            label=run.model,
        )
        counts.stairs(bins.count, bins.edges, color=colours[run.model], label=run.model)
    reliability.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    reliability.set_xlim(-0.01, 1.01)
    reliability.set_ylim(-0.01, 1.01)
    reliability.set_ylabel("Observed sybil share")
    reliability.set_title(f"Calibration, split {KFOLD_SPLIT} (out-of-fold)")
    reliability.grid(visible=True, alpha=0.3)
    reliability.legend(loc="upper left", fontsize="small")
    counts.set_xlabel("Predicted risk (bin mean)")
    counts.set_ylabel("Donors per bin")
    counts.grid(visible=True, alpha=0.3)
    return fig


def _importance_figure(importance: Mapping[str, Mapping[str, float]], models: Sequence[str]) -> Figure:
    panels = [(model, importance[model]) for model in models if importance.get(model)]
    shown = [_top_features(values) for _, values in panels]
    height = max(3.0, 0.8 + 0.28 * max(len(features) for features in shown))
    fig = _figure(5.5 * len(panels), height)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (model, values), features in zip(axes, panels, shown, strict=True):
        names = [name for name, _ in features][::-1]  # largest on top
        widths = [value for _, value in features][::-1]
        colours = ["tab:blue" if value >= 0 else "tab:red" for value in widths]
        ax.barh(names, widths, color=colours)
        title = model if len(values) <= _TOP_FEATURES else f"{model} (top {_TOP_FEATURES} of {len(values)})"
        ax.set_title(title)
        ax.set_xlabel("Importance (model's own scale)")
        ax.tick_params(axis="y", labelsize="small")
        ax.grid(visible=True, axis="x", alpha=0.3)
    return fig


def _top_features(values: Mapping[str, float]) -> list[tuple[str, float]]:
    """The largest importances by absolute value (ties by name)."""
    ranked = sorted(values.items(), key=lambda item: (-abs(float(item[1])), item[0]))
    return [(name, float(value)) for name, value in ranked[:_TOP_FEATURES]]


def _category_order(labels: StrArray) -> list[str]:
    """Distinct labels, most frequent first (ties by name)."""
    names, counts = np.unique(labels, return_counts=True)
    return [str(name) for _, name in sorted(zip((-counts).tolist(), names.tolist(), strict=True))]


def _distribution_figure(data: ReportData) -> Figure:
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot()
    order = _category_order(data.served_labels)
    edges = np.linspace(0.0, 1.0, _HISTOGRAM_BINS + 1)
    for i, label in enumerate(order):
        values = data.served_scores[data.served_labels == label]
        # Shares, not counts: honest donors outnumber each sybil pattern by far, and shapes are what to compare.
        counts, _ = np.histogram(values, bins=edges)
        shares = counts / values.size
        ax.stairs(shares, edges, color=_colour(i, len(order)), linewidth=1.5, label=f"{label} ({values.size})")
    review, block = data.thresholds
    ax.axvline(review, color="dimgrey", linestyle=":", linewidth=1.5, label=f"review >= {review:g}")
    ax.axvline(block, color="black", linestyle="--", linewidth=1.2, label=f"block > {block:g}")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(f"Risk score ({data.served_model})")
    ax.set_ylabel("Share of the label's donors per bin")
    ax.set_title("Served model's scores by label (donors per label in brackets)")
    ax.grid(visible=True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig


def _pca_figure(data: ReportData) -> Figure:
    fig = _figure(13.0, 5.5)
    by_label, by_cluster = fig.subplots(1, 2, sharex=True, sharey=True)
    order = _category_order(data.pca_labels)
    for i, label in enumerate(order):
        rows = data.pca_labels == label
        by_label.scatter(
            data.pca[rows, 0], data.pca[rows, 1], s=6, alpha=0.6, color=_colour(i, len(order)), label=label
        )
    clusters = sorted(set(data.clusters.tolist()))
    for i, cluster in enumerate(clusters):
        rows = data.clusters == cluster
        by_cluster.scatter(
            data.pca[rows, 0],
            data.pca[rows, 1],
            s=6,
            alpha=0.6,
            color=_colour(i, len(clusters)),
            label=f"cluster {cluster}",
        )
    for ax, title in ((by_label, "Coloured by label"), (by_cluster, "Coloured by k-means cluster")):
        ax.set_title(title)
        ax.set_xlabel("PC 1")
        ax.grid(visible=True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", markerscale=2)
    by_label.set_ylabel("PC 2")
    return fig


# --- markdown ------------------------------------------------------------------


def _markdown(
    data: ReportData,
    models: Sequence[str],
    curves: Mapping[str, tuple[str, str]],
    images: Mapping[str, str],
    notes: Sequence[str],
) -> str:
    review, block = data.thresholds
    parts = [
        f"# Model report {_cell(data.version)}",
        f"Created {data.created_at}. Served model: **{_cell(data.served_model)}**. "
        f"The gate sends scores from {review:g} to review and blocks scores above {block:g}.",
        f"Why this model: {data.selection_criterion}",
        *_headline_section(data),
        *_data_section(data),
        *_comparison_section(data, models, curves, images),
        *_gating_section(data, images),
        *_image_section("Feature importance", images.get("feature_importance"), "Feature importance per model"),
        *_anomaly_section(data),
        *_recommendation_section(data),
        *_cluster_section(data, images),
        *_rules_section(data),
        *_notes_section(data, notes),
    ]
    return "\n\n".join(parts) + "\n"


def _headline_section(data: ReportData) -> list[str]:
    review, block = data.thresholds
    rows = []
    for split, by_model in data.evaluations.items():
        evaluation = by_model.get(data.served_model)
        if evaluation is None:
            continue
        at_review, at_block = _at_threshold(evaluation, review), _at_threshold(evaluation, block)
        rows.append(
            [
                split,
                _num(evaluation.get("n")),
                _num(evaluation.get("positives")),
                _ci(evaluation.get("roc_auc")),
                _ci(evaluation.get("pr_auc")),
                _ci(at_review.get("precision") if at_review else None),
                _ci(at_review.get("recall") if at_review else None),
                _ci(at_block.get("precision") if at_block else None),
                _ci(at_block.get("recall") if at_block else None),
            ]
        )
    section = ["## Headline", f"Served model **{_cell(data.served_model)}** on held-out donors. {_interval_note(data)}"]
    if not rows:
        return [*section, "The served model was not evaluated on any split."]
    header = [
        "Split",
        "Rows",
        "Sybils",
        "ROC AUC [CI]",
        "PR AUC [CI]",
        f"Precision, score >= {review:g}",
        f"Recall, score >= {review:g}",
        f"Precision, score >= {block:g}",
        f"Recall, score >= {block:g}",
    ]
    return [*section, _table(header, rows)]


def _interval_note(data: ReportData) -> str:
    settings = sorted(
        {
            (float(ev["bootstrap"]["alpha"]), int(ev["bootstrap"]["n_boot"]))
            for by_model in data.evaluations.values()
            for ev in by_model.values()
            if isinstance(ev.get("bootstrap"), Mapping)
        }
    )
    if not settings:
        return "Intervals are bootstrap confidence intervals."
    described = "; ".join(f"{_percent(1 - alpha, 0)} from {n_boot} resamples" for alpha, n_boot in settings)
    return f"Intervals [low, high] are stratified percentile-bootstrap intervals ({described})."


def _data_section(data: ReportData) -> list[str]:
    if not data.data_summary:
        return []
    rows = [[_label(key), _value(value)] for key, value in data.data_summary.items()]
    return ["## Data", _table(["Measure", "Value"], rows)]


def _comparison_section(
    data: ReportData, models: Sequence[str], curves: Mapping[str, tuple[str, str]], images: Mapping[str, str]
) -> list[str]:
    review, block = data.thresholds
    section = [
        "## Models compared",
        "Each model's held-out predictions on each split. PR AUC (average precision) is to be read against "
        "the split's sybil share, the PR AUC of a random score; precision and recall flag scores at or above "
        "the threshold.",
    ]
    header = [
        "Model",
        "ROC AUC [CI]",
        "PR AUC [CI]",
        f"Precision >= {review:g}",
        f"Recall >= {review:g}",
        f"Precision >= {block:g}",
        f"Recall >= {block:g}",
    ]
    for split in dict.fromkeys([*data.evaluations, *curves]):
        section.append(f"### Split {_cell(split)}")
        by_model = data.evaluations.get(split, {})
        rows = []
        for model in (m for m in models if m in by_model):
            evaluation = by_model[model]
            at_review, at_block = _at_threshold(evaluation, review), _at_threshold(evaluation, block)
            rows.append(
                [
                    f"**{model}** (served)" if model == data.served_model else model,
                    _ci(evaluation.get("roc_auc")),
                    _ci(evaluation.get("pr_auc")),
                    _num(_point(at_review.get("precision") if at_review else None)),
                    _num(_point(at_review.get("recall") if at_review else None)),
                    _num(_point(at_block.get("precision") if at_block else None)),
                    _num(_point(at_block.get("recall") if at_block else None)),
                ]
            )
        if rows:
            first = next(iter(by_model.values()))
            section.append(
                f"{_num(first.get('n'))} rows, {_num(first.get('positives'))} sybil "
                f"(sybil share {_num(first.get('prevalence'))})."
            )
            section.append(_table(header, rows))
        else:
            section.append("Not evaluated (see the notes).")
        if split in curves:
            roc, pr = curves[split]
            section.append(
                f"![ROC curves, split {_alt(split)}]({roc}) ![Precision-recall curves, split {_alt(split)}]({pr})"
            )
    if "calibration" in images:
        section += [
            "### Calibration",
            f"Reliability of the scores on the `{KFOLD_SPLIT}` out-of-fold predictions: a calibrated model's points "
            "lie on the diagonal, so a score can be read as a sybil probability.",
            f"![Calibration]({images['calibration']})",
        ]
    return section


def _gating_section(data: ReportData, images: Mapping[str, str]) -> list[str]:
    section = ["## What the gate would do on held-out donors"]
    rows, sentences = [], []
    for split, by_model in data.evaluations.items():
        gating = by_model.get(data.served_model, {}).get("gating")
        if not isinstance(gating, Mapping):
            continue
        honest = sum(int(gating[key]) for key in ("honest_approved", "honest_reviewed", "honest_blocked"))
        sybils = sum(int(gating[key]) for key in ("sybil_approved", "sybil_reviewed", "sybil_blocked"))
        blocked, reviewed = int(gating["honest_blocked"]), int(gating["honest_reviewed"])
        approved, caught = int(gating["sybil_approved"]), int(gating["sybil_blocked"])
        sentences.append(
            f"- Split {_cell(split)}: {_share(blocked, honest)} of {honest} honest donors would be blocked and "
            f"{_share(reviewed, honest)} sent to review; {_share(approved, sybils)} of {sybils} sybils would be "
            f"approved unseen and {_share(caught, sybils)} blocked."
        )
        rows.append(
            [
                split,
                str(honest),
                _share(blocked, honest),
                _share(reviewed, honest),
                str(sybils),
                _share(approved, sybils),
                _share(int(gating["sybil_reviewed"]), sybils),
                _share(caught, sybils),
            ]
        )
    if rows:
        review, block = data.thresholds
        section += [
            f"Served model **{_cell(data.served_model)}**: approve below {review:g}, review from {review:g} "
            f"to {block:g}, block above {block:g}.",
            "\n".join(sentences),
            _table(
                [
                    "Split",
                    "Honest",
                    "Honest blocked",
                    "Honest to review",
                    "Sybils",
                    "Sybils approved",
                    "Sybils to review",
                    "Sybils blocked",
                ],
                rows,
            ),
        ]
    else:
        section.append("No gating outcome: the served model was not evaluated on any split.")
    if "score_distribution" in images:
        section.append(f"![Served model's scores by label]({images['score_distribution']})")
    return section


def _image_section(title: str, image: str | None, alt: str) -> list[str]:
    return [f"## {title}", f"![{alt}]({image})"] if image else []


def _anomaly_section(data: ReportData) -> list[str]:
    section = [
        "## Anomaly detectors (sanity check)",
        "Unsupervised detectors never see the labels; their agreement with the labels only says whether the "
        "labelled sybils also look unusual.",
    ]
    if not data.anomaly:
        return [*section, "Not run."]
    rows = [[_label(key), _value(value)] for key, value in data.anomaly.items()]
    return [*section, _table(["Measure", "Value"], rows)]


def _recommendation_section(data: ReportData) -> list[str]:
    section = ["## Recommendations"]
    rec = data.recommendation
    if not rec:
        return [*section, "Not run."]
    if {"hit_rate_cf", "hit_rate_popularity"} <= rec.keys():
        section.append(
            f"Hiding each donor's last project, collaborative filtering finds it in the top {_value(rec.get('k'))} "
            f"for {_rate(rec['hit_rate_cf'])} of {_value(rec.get('donors_evaluated'))} donors, "
            f"the popularity baseline for {_rate(rec['hit_rate_popularity'])}."
        )
    rows = [[_label(key), _value(value)] for key, value in rec.items()]
    return [*section, _table(["Measure", "Value"], rows)]


def _cluster_section(data: ReportData, images: Mapping[str, str]) -> list[str]:
    section = ["## Donor segments"]
    chosen = len(np.unique(data.clusters))
    if data.cluster_silhouette:
        section.append(
            f"k-means on the scaled features found {chosen} clusters; silhouette of each k tried "
            "(higher is better separated):"
        )
        rows = [
            [f"**{k}**" if k == chosen else str(k), _num(score)] for k, score in sorted(data.cluster_silhouette.items())
        ]
        section.append(_table(["k", "Silhouette"], rows))
    if data.clusters.size:
        rows = []
        for cluster in sorted(set(data.clusters.tolist())):
            members = data.pca_labels[data.clusters == cluster]
            top = _category_order(members)[0]
            rows.append(
                [
                    str(cluster),
                    _share(members.size, data.clusters.size),
                    f"{top} ({_percent(float(np.mean(members == top)))})",
                ]
            )
        section.append(_table(["Cluster", "Donors", "Most common label"], rows, text_columns=(0, 2)))
    else:
        section.append("No donors were clustered.")
    if "pca" in images:
        section.append(f"![Donors on the first two principal components]({images['pca']})")
    return section


def _rules_section(data: ReportData) -> list[str]:
    section = ["## Co-donation rules", "Donors of the first project also fund the second, ranked by lift."]
    if not data.rules:
        return [*section, "No pair of projects shares enough donors."]
    rows = [
        [
            f"{rule.antecedent} → {rule.consequent}",
            _num(rule.support),
            _num(rule.confidence),
            _num(rule.lift),
            str(rule.donors),
        ]
        for rule in data.rules
    ]
    return [*section, _table(["Rule", "Support", "Confidence", "Lift", "Donors"], rows)]


def _notes_section(data: ReportData, generated: Sequence[str]) -> list[str]:
    notes = [*data.notes, *generated]
    if not notes:
        return []
    return ["## Notes", "\n".join(f"- {' '.join(note.split())}" for note in notes)]


# --- formatting ----------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: Iterable[int] = (0,)) -> str:
    """A markdown table, cells escaped; numbers are right-aligned, the ``text_columns`` left-aligned."""
    left = set(text_columns)
    lines = [
        "| " + " | ".join(_cell(cell) for cell in header) + " |",
        "|" + "|".join(" --- " if i in left else " ---: " for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: object) -> str:
    """``text`` on one line with pipes escaped, safe inside a markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _alt(text: str) -> str:
    return _cell(text).replace("[", "(").replace("]", ")")


def _as_float(value: object) -> float | None:
    """``value`` as a float if it is a real number (not a bool) and not NaN."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _num(value: object) -> str:
    """Integers as they are, other numbers to 3 decimals, missing or NaN as ``n/a``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    number = _as_float(value)
    if number is not None:
        text = f"{number:.3f}"
        return "0.000" if text == "-0.000" else text
    return "n/a" if value is None or isinstance(value, numbers.Real) else str(value)


def _point(entry: object) -> object:
    return entry.get("point") if isinstance(entry, Mapping) else None


def _ci(entry: object) -> str:
    """``point [low, high]`` of a ``{point, low, high}`` entry."""
    if not isinstance(entry, Mapping) or entry.get("point") is None:
        return "n/a"
    return f"{_num(entry['point'])} [{_num(entry.get('low'))}, {_num(entry.get('high'))}]"


def _percent(share: float, decimals: int = 1) -> str:
    return f"{100 * share:.{decimals}f}%"


def _share(count: int, total: int) -> str:
    return f"{count} ({_percent(count / total)})" if total else str(count)


def _rate(value: object) -> str:
    number = _as_float(value)
    return "n/a" if number is None else f"{_num(number)} ({_percent(number)})"


def _label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " ").capitalize())


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(_value(item) for item in value)
    return _num(value)
