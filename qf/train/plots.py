"""The PNG plots of a training report: ROC and PR curves per split, calibration, importances, scores, PCA.

Drawn on bare :class:`matplotlib.figure.Figure` objects with an Agg canvas,
never through pyplot, so writing a report neither needs a display nor touches
the global backend of the process that calls it; the PNG bytes depend on
neither the time nor the matplotlib version string (byte-identical reruns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from qf_sentinel.qf.train.evaluation import calibration_bins
from qf_sentinel.qf.train.report_data import KFOLD_SPLIT, ReportData, SplitScores, StrArray, auc, number

_DPI = 100
# No "Software" chunk: the PNG bytes then depend on neither the time nor the matplotlib version string.
_PNG_METADATA: dict[str, str | None] = {"Software": None}
_TOP_FEATURES = 20
_CALIBRATION_BINS = 10
_HISTOGRAM_BINS = 40


# --- plots ---------------------------------------------------------------------


def colour(index: int, count: int) -> tuple[float, float, float, float]:
    cmap = mpl.colormaps["tab10" if count <= 10 else "tab20"]
    rgba = cmap(index % cmap.N)
    return (float(rgba[0]), float(rgba[1]), float(rgba[2]), float(rgba[3]))


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself: the figure renders with Agg whatever the process backend
    return fig


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=_DPI, metadata=_PNG_METADATA)
    fig.clear()
    return path


def _line_width(model: str, data: ReportData) -> float:
    return 2.2 if model == data.served_model else 1.3


def roc_figure(split: str, runs: list[SplitScores], data: ReportData, colours: Mapping[str, Any]) -> Figure:
    fig = _figure(6.0, 5.0)
    ax = fig.add_subplot()
    for run in runs:
        fpr, tpr, _ = roc_curve(run.y, run.score)
        label = f"{run.model} (AUC {number(auc(data, run, 'roc_auc'))})"
        ax.plot(fpr, tpr, color=colours[run.model], linewidth=_line_width(run.model, data), label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance (AUC 0.500)")
    _square(ax, "False positive rate (honest flagged)", "True positive rate (sybils caught)")
    ax.set_title(f"ROC, split {split} ({_rows(runs[0])})")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def pr_figure(split: str, runs: list[SplitScores], data: ReportData, colours: Mapping[str, Any]) -> Figure:
    fig = _figure(6.0, 5.0)
    ax = fig.add_subplot()
    for run in runs:
        precision, recall, _ = precision_recall_curve(run.y, run.score)
        label = f"{run.model} (AP {number(auc(data, run, 'pr_auc'))})"
        ax.plot(
            recall,
            precision,
            color=colours[run.model],
            linewidth=_line_width(run.model, data),
            drawstyle="steps-post",
            label=label,
        )
    prevalence = runs[0].positives / runs[0].y.size
    chance = f"chance (sybil share {number(prevalence)})"
    ax.axhline(prevalence, color="grey", linestyle="--", linewidth=1, label=chance)
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


def calibration_figure(runs: list[SplitScores], colours: Mapping[str, Any]) -> Figure:
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


def importance_figure(importance: Mapping[str, Mapping[str, float]], models: Sequence[str]) -> Figure:
    panels = [(model, importance[model]) for model in models if importance.get(model)]
    shown = [top_features(values) for _, values in panels]
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


def top_features(values: Mapping[str, float]) -> list[tuple[str, float]]:
    """The largest importances by absolute value (ties by name)."""
    ranked = sorted(values.items(), key=lambda item: (-abs(float(item[1])), item[0]))
    return [(name, float(value)) for name, value in ranked[:_TOP_FEATURES]]


def category_order(labels: StrArray) -> list[str]:
    """Distinct labels, most frequent first (ties by name)."""
    names, counts = np.unique(labels, return_counts=True)
    return [str(name) for _, name in sorted(zip((-counts).tolist(), names.tolist(), strict=True))]


def distribution_figure(data: ReportData) -> Figure:
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot()
    order = category_order(data.served_labels)
    edges = np.linspace(0.0, 1.0, _HISTOGRAM_BINS + 1)
    for i, label in enumerate(order):
        values = data.served_scores[data.served_labels == label]
        # Shares, not counts: honest donors outnumber each sybil pattern by far, and shapes are what to compare.
        counts, _ = np.histogram(values, bins=edges)
        shares = counts / values.size
        ax.stairs(shares, edges, color=colour(i, len(order)), linewidth=1.5, label=f"{label} ({values.size})")
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


def pca_figure(data: ReportData) -> Figure:
    fig = _figure(13.0, 5.5)
    by_label, by_cluster = fig.subplots(1, 2, sharex=True, sharey=True)
    order = category_order(data.pca_labels)
    for i, label in enumerate(order):
        rows = data.pca_labels == label
        by_label.scatter(
            data.pca[rows, 0], data.pca[rows, 1], s=6, alpha=0.6, color=colour(i, len(order)), label=label
        )
    clusters = sorted(set(data.clusters.tolist()))
    for i, cluster in enumerate(clusters):
        rows = data.clusters == cluster
        by_cluster.scatter(
            data.pca[rows, 0],
            data.pca[rows, 1],
            s=6,
            alpha=0.6,
            color=colour(i, len(clusters)),
            label=f"cluster {cluster}",
        )
    for ax, title in ((by_label, "Coloured by label"), (by_cluster, "Coloured by k-means cluster")):
        ax.set_title(title)
        ax.set_xlabel("PC 1")
        ax.grid(visible=True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", markerscale=2)
    by_label.set_ylabel("PC 2")
    return fig
