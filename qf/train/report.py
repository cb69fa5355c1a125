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
report can be diffed between runs. The input is :mod:`qf.train.report_data`
(checked there), the plots are :mod:`qf.train.plots`; this module decides what
is drawn and writes the markdown. A split that cannot be plotted (one class
only) is skipped and said so in the report's notes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qf_sentinel.qf.train.plots import (
    calibration_figure,
    category_order,
    colour,
    distribution_figure,
    importance_figure,
    pca_figure,
    pr_figure,
    roc_figure,
    save,
)  # fmt: skip
from qf_sentinel.qf.train.report_data import (
    KFOLD_SPLIT,
    ReportData,
    SplitScores,
    as_float,
    at_threshold,
    model_order,
    number,
    scores_by_split,
    unique_slugs,
)  # fmt: skip

REPORT_NAME = "report.md"

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
        at_review, at_block = at_threshold(evaluation, review), at_threshold(evaluation, block)
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
    models = model_order(data)
    colours = {model: colour(i, len(models)) for i, model in enumerate(models)}
    by_split = scores_by_split(data.scores)
    curves = _write_curves(directory, data, by_split, colours, notes)
    written = [directory / name for pair in curves.values() for name in pair]

    kfold = [run for run in by_split.get(KFOLD_SPLIT, []) if run.y.size]
    plots: list[tuple[str, Callable[[], Figure] | None, str]] = [
        (
            "calibration",
            (lambda: calibration_figure(kfold, colours)) if kfold else None,
            f"No calibration plot: there are no `{KFOLD_SPLIT}` (pooled out-of-fold) predictions.",
        ),
        (
            "feature_importance",
            (lambda: importance_figure(data.feature_importance, models))
            if any(data.feature_importance.values())
            else None,
            "No feature-importance plot: no model reported importances.",
        ),
        (
            "score_distribution",
            (lambda: distribution_figure(data)) if data.served_scores.size else None,
            "No score-distribution plot: the served model scored no donors.",
        ),
        (
            "pca",
            (lambda: pca_figure(data)) if data.pca.shape[0] else None,
            "No PCA plot: the segment analysis has no rows.",
        ),
    ]
    images: dict[str, str] = {}
    for name, draw, missing in plots:
        if draw is None:
            notes.append(missing)
            continue
        written.append(save(draw(), directory / f"{name}.png"))
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
    slugs = unique_slugs(list(dict.fromkeys([*data.evaluations, *by_split])))
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
            save(roc_figure(split, plottable, data, colours), directory / roc_name)
            save(pr_figure(split, plottable, data, colours), directory / pr_name)
            curves[split] = (roc_name, pr_name)
    return curves


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
        at_review, at_block = at_threshold(evaluation, review), at_threshold(evaluation, block)
        rows.append(
            [
                split,
                number(evaluation.get("n")),
                number(evaluation.get("positives")),
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
            at_review, at_block = at_threshold(evaluation, review), at_threshold(evaluation, block)
            rows.append(
                [
                    f"**{model}** (served)" if model == data.served_model else model,
                    _ci(evaluation.get("roc_auc")),
                    _ci(evaluation.get("pr_auc")),
                    number(_point(at_review.get("precision") if at_review else None)),
                    number(_point(at_review.get("recall") if at_review else None)),
                    number(_point(at_block.get("precision") if at_block else None)),
                    number(_point(at_block.get("recall") if at_block else None)),
                ]
            )
        if rows:
            first = next(iter(by_model.values()))
            section.append(
                f"{number(first.get('n'))} rows, {number(first.get('positives'))} sybil "
                f"(sybil share {number(first.get('prevalence'))})."
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
        served = by_model.get(data.served_model)
        gating = served.get("gating") if served is not None else None
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
            [f"**{k}**" if k == chosen else str(k), number(score)]
            for k, score in sorted(data.cluster_silhouette.items())
        ]
        section.append(_table(["k", "Silhouette"], rows))
    if data.clusters.size:
        rows = []
        for cluster in sorted(set(data.clusters.tolist())):
            members = data.pca_labels[data.clusters == cluster]
            top = category_order(members)[0]
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
            number(rule.support),
            number(rule.confidence),
            number(rule.lift),
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


def _point(entry: object) -> object:
    return entry.get("point") if isinstance(entry, Mapping) else None


def _ci(entry: object) -> str:
    """``point [low, high]`` of a ``{point, low, high}`` entry."""
    if not isinstance(entry, Mapping) or entry.get("point") is None:
        return "n/a"
    return f"{number(entry['point'])} [{number(entry.get('low'))}, {number(entry.get('high'))}]"


def _percent(share: float, decimals: int = 1) -> str:
    return f"{100 * share:.{decimals}f}%"


def _share(count: int, total: int) -> str:
    return f"{count} ({_percent(count / total)})" if total else str(count)


def _rate(value: object) -> str:
    share = as_float(value)
    return "n/a" if share is None else f"{number(share)} ({_percent(share)})"


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
    return number(value)
