"""The served model as the console shows it: the version ``qf serve`` loads, its manifest's headline figures.

Read from the models directory (``LATEST`` and the version's ``manifest.json``);
the figures are the served model's on every evaluated split, held-out attack
families first, because those are the ones that say whether the gate generalises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qf_sentinel.qf.errors import QFError
from qf_sentinel.qf.model.artifacts import latest, read_manifest

#: Plot files the model page may serve from a version directory.
PLOT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\.png$")


@dataclass(frozen=True, slots=True)
class ModelView:
    version: str
    directory: Path
    manifest: dict[str, Any]
    #: per split: the served model's figures (split, n, positives, roc, pr, gating rates)
    splits: list[dict[str, Any]]
    plots: list[str]

    @property
    def headline_plots(self) -> list[str]:
        """Plots of the whole model (calibration, importance, scores): shown open."""
        return [p for p in self.plots if not _per_split(p)]

    @property
    def split_plots(self) -> list[str]:
        """One precision-recall and one ROC plot per split: dozens, so folded away."""
        return [p for p in self.plots if _per_split(p)]


def _per_split(name: str) -> bool:
    return name.startswith(("pr_", "roc_"))


def served_model(models_dir: Path) -> ModelView | None:
    """The latest version, or None when nothing is trained yet; an unreadable one raises ConfigError/DataError."""
    if not (models_dir / "LATEST").exists():
        return None
    directory = latest(models_dir)
    manifest = read_manifest(directory)
    served = manifest.get("served_model")
    splits = []
    metrics = manifest.get("metrics", {})
    for split in sorted(metrics, key=lambda s: (not s.startswith("leave-out"), s)):
        figures = metrics[split].get(served) if isinstance(metrics[split], dict) else None
        if not isinstance(figures, dict):
            continue
        gating = figures.get("gating", {})
        splits.append({
            "split": split, "n": figures.get("n"), "positives": figures.get("positives"),
            "roc_auc": figures.get("roc_auc"), "pr_auc": figures.get("pr_auc"),
            "honest_blocked_rate": gating.get("honest_blocked_rate"),
            "honest_review_rate": gating.get("honest_review_rate"),
            "sybil_approved_rate": gating.get("sybil_approved_rate"),
        })  # fmt: skip
    plots = sorted(p.name for p in directory.glob("*.png") if PLOT_NAME.match(p.name))
    return ModelView(str(manifest.get("version", directory.name)), directory, manifest, splits, plots)


def plot_path(models_dir: Path, name: str) -> Path | None:
    """A plot of the served version by file name; None for anything else (no path tricks).

    Each image of the model page asks for one, so this reads the LATEST pointer only, not the manifest.
    """
    if not PLOT_NAME.match(name):
        return None
    try:
        path = latest(models_dir) / name  # the name has no separator: it stays in the version directory
    except QFError:
        return None
    return path if path.is_file() else None
