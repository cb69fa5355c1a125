"""Training report: every plot is a valid PNG, report.md shows the numbers and links them, output is byte-stable."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.train.evaluation import evaluate
from qf_sentinel.qf.train.report import headline, write_report
from qf_sentinel.qf.train.report_data import ReportData, SplitScores, slugify
from qf_sentinel.qf.train.rules import Rule

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THRESHOLDS = (0.4, 0.7)
SERVED = "xgboost"
# A split name that is not a safe file name on its own.
LEAVE_OUT = "leave-out/collusion ring"


def synthetic_report(n_rows: int = 300, seed: int = 3) -> ReportData:
    """Two models on three splits of 300 labelled donors, with segments, rules and the other sections filled."""
    rng = np.random.default_rng(seed)
    patterns = np.array(["honest"] * 200 + ["collusion_ring"] * 50 + ["bot_farm"] * 50)[:n_rows]
    y = (patterns != "honest").astype(np.int64)
    strength = {SERVED: 0.45, "logistic": 0.25}
    model_scores = {m: np.clip(0.25 + s * y + rng.normal(0, 0.15, n_rows), 0, 1) for m, s in strength.items()}
    split_rows = {
        "kfold": np.arange(n_rows),
        "time": np.sort(rng.choice(n_rows, 100, replace=False)),
        LEAVE_OUT: np.flatnonzero((patterns == "collusion_ring") | (np.arange(n_rows) % 4 == 0)),
    }
    scores, evaluations = [], {}
    for split, rows in split_rows.items():
        evaluations[split] = {}
        for model, score in model_scores.items():
            scores.append(SplitScores(split, model, y[rows], score[rows]))
            evaluations[split][model] = evaluate(y[rows], score[rows], THRESHOLDS, n_boot=50, seed=0).to_dict()
    clusters = np.where(patterns == "honest", 0, np.where(patterns == "bot_farm", 1, 2))
    return ReportData(
        version="2024-05-01-abc123",
        created_at="2024-05-01T12:00:00Z",
        served_model=SERVED,
        selection_criterion="Highest PR AUC on the time split among models within 0.01 ROC AUC of the best.",
        thresholds=THRESHOLDS,
        data_summary={"donors": n_rows, "labelled": n_rows, "sybils": int(y.sum()), "block_range": (100, 2000)},
        evaluations=evaluations,
        scores=scores,
        feature_importance={
            SERVED: {"n_donations": 0.4, "same_amount_share": 0.3, "account_age_blocks": 0.2, "gas_funder": 0.1},
            "logistic": {"n_donations": -1.2, "same_amount_share": 2.5, "account_age_blocks": -0.3},
        },
        served_scores=model_scores[SERVED],
        served_labels=patterns,
        pca=rng.normal(size=(n_rows, 2)) + clusters[:, None] * 3.0,
        pca_labels=patterns,
        clusters=clusters,
        cluster_silhouette={2: 0.31, 3: 0.58, 4: 0.44},
        anomaly={"isolation_forest_auc": 0.71, "lof_auc": 0.64, "consensus_flagged": 17, "consensus_precision": 0.82},
        recommendation={"k": 5, "donors_evaluated": 240, "hit_rate_cf": 0.41, "hit_rate_popularity": 0.22},
        rules=[
            Rule("0xaaa1", "0xbbb2", support=0.05, confidence=0.75, lift=6.25, donors=15),
            Rule("0xbbb2", "0xaaa1", support=0.05, confidence=0.6, lift=6.25, donors=15),
            Rule("17", "0xccc3", support=0.0333, confidence=0.5, lift=3.125, donors=10),
        ],
        notes=["The time split has only 100 held-out donors: its intervals are wide."],
    )


@pytest.fixture(scope="module")
def data() -> ReportData:
    return synthetic_report()


@pytest.fixture(scope="module")
def written(data: ReportData, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_report(tmp_path_factory.mktemp("report") / "models" / data.version, data)


def report_text(paths: list[Path]) -> str:
    [report] = [p for p in paths if p.name == "report.md"]
    return report.read_text(encoding="utf-8")


def test_every_file_is_written(written: list[Path]) -> None:
    """Curves per split (slugified name), the four other plots and report.md, all in one directory."""
    assert sorted(p.name for p in written) == sorted(
        [
            *(f"{kind}_{slug}.png" for kind in ("roc", "pr") for slug in ("kfold", "time", "leave-out-collusion-ring")),
            "calibration.png",
            "feature_importance.png",
            "score_distribution.png",
            "pca.png",
            "report.md",
        ]
    )
    assert len({p.parent for p in written}) == 1
    assert all(p.is_file() for p in written)


def test_plots_are_valid_pngs_without_a_software_stamp(written: list[Path]) -> None:
    """Each plot has the PNG signature, decodes to an RGBA image and carries no matplotlib version string."""
    for path in (p for p in written if p.suffix == ".png"):
        content = path.read_bytes()
        assert content.startswith(PNG_SIGNATURE), path.name
        assert b"Matplotlib" not in content, path.name
        image = imread(path)
        assert image.ndim == 3
        assert image.shape[0] > 100
        assert image.shape[1] > 100


def test_report_shows_the_served_models_headline(data: ReportData, written: list[Path]) -> None:
    """The headline row of each split holds the served model's ROC AUC and PR AUC as point [low, high]."""
    text = report_text(written)
    assert data.version in text
    assert data.created_at in text
    assert f"**{SERVED}**" in text
    assert data.selection_criterion in text
    headline_part = text.split("## Headline")[1].split("\n## ")[0]
    for split in data.evaluations:
        roc = data.evaluations[split][SERVED]["roc_auc"]
        pr = data.evaluations[split][SERVED]["pr_auc"]
        roc_text = f"{roc['point']:.3f} [{roc['low']:.3f}, {roc['high']:.3f}]"
        pr_text = f"{pr['point']:.3f} [{pr['low']:.3f}, {pr['high']:.3f}]"
        [row] = [line for line in headline_part.splitlines() if line.startswith(f"| {split} |")]
        assert roc_text in row
        assert pr_text in row
    # The other model appears in the comparison, not in the headline.
    assert "logistic" not in headline_part
    assert "| logistic |" in text


def test_report_shows_gating_in_numbers(data: ReportData, written: list[Path]) -> None:
    """Honest donors blocked and sybils approved are given as counts of the served model's gating outcome."""
    text = report_text(written)
    gating = data.evaluations["time"][SERVED]["gating"]
    honest = gating["honest_approved"] + gating["honest_reviewed"] + gating["honest_blocked"]
    sybils = gating["sybil_approved"] + gating["sybil_reviewed"] + gating["sybil_blocked"]
    assert f"Split time: {gating['honest_blocked']} (" in text
    assert f"of {honest} honest donors would be blocked" in text
    assert f"of {sybils} sybils would be approved unseen" in text


def test_report_lists_rules_sections_and_notes(data: ReportData, written: list[Path]) -> None:
    """Rules appear as table rows; anomaly, recommendation, silhouette and the caller's notes are shown."""
    text = report_text(written)
    assert "| 0xaaa1 → 0xbbb2 | 0.050 | 0.750 | 6.250 | 15 |" in text
    assert "| 0xbbb2 → 0xaaa1 | 0.050 | 0.600 | 6.250 | 15 |" in text
    assert "| 17 → 0xccc3 | 0.033 | 0.500 | 3.125 | 10 |" in text
    assert "| Isolation Forest ROC AUC against the labels | 0.710 |" in text
    assert "0.410 (41.0%) of 240 donors" in text
    assert "| **3** | 0.580 |" in text  # three clusters in the data: the chosen k is marked
    assert data.notes[0] in text


def test_report_links_exactly_the_plots_written(written: list[Path]) -> None:
    """Every PNG in the directory is embedded with a relative link, and every image link resolves."""
    text = report_text(written)
    directory = written[0].parent
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text))
    assert linked == {p.name for p in directory.glob("*.png")}


def test_same_data_gives_identical_bytes(data: ReportData, written: list[Path], tmp_path: Path) -> None:
    """Writing the same data again, into a fresh and into the used directory, gives byte-identical files."""
    contents = {p.name: p.read_bytes() for p in written}
    fresh = write_report(tmp_path, data)
    assert {p.name: p.read_bytes() for p in fresh} == contents
    again = write_report(written[0].parent, data)
    assert {p.name: p.read_bytes() for p in again} == contents


def test_single_class_split_is_skipped_and_noted(data: ReportData, tmp_path: Path) -> None:
    """A split whose held-out rows are all sybil gets no curves and no crash; the notes say why."""
    all_sybil = [
        SplitScores("leave-out-bot_farm", model, np.ones(50), np.linspace(0.2, 0.9, 50)) for model in ("a", "b")
    ]
    one_class = dataclasses.replace(data, scores=[*data.scores, *all_sybil])
    paths = write_report(tmp_path, one_class)
    names = {p.name for p in paths}
    assert not any("bot_farm" in name or "bot-farm" in name for name in names)
    notes = report_text(paths).split("## Notes")[1]
    assert "Split leave-out-bot_farm skipped for a, b" in notes
    assert "50 held-out rows hold 50 sybils" in notes
    assert "has predictions but no evaluation" in notes


def test_empty_sections_are_noted_not_drawn(data: ReportData, tmp_path: Path) -> None:
    """Without kfold predictions, importances, served scores or segment rows, those plots are left out and noted."""
    bare = dataclasses.replace(
        data,
        scores=[run for run in data.scores if run.split != "kfold"],
        feature_importance={},
        served_scores=np.empty(0),
        served_labels=np.empty(0, dtype=str),
        pca=np.empty((0, 2)),
        pca_labels=np.empty(0, dtype=str),
        clusters=np.empty(0, dtype=np.int64),
        cluster_silhouette={},
        anomaly={},
        recommendation={},
        rules=[],
    )
    paths = write_report(tmp_path, bare)
    names = {p.name for p in paths}
    assert names.isdisjoint({"calibration.png", "feature_importance.png", "score_distribution.png", "pca.png"})
    text = report_text(paths)
    assert "No calibration plot" in text
    assert "No pair of projects shares enough donors." in text
    assert set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)) == {p.name for p in tmp_path.glob("*.png")}


def test_headline_returns_the_served_models_numbers(data: ReportData) -> None:
    """headline() gives per split the served model's intervals and the threshold metrics, JSON-ready."""
    result = headline(data)
    assert result["served_model"] == SERVED
    assert result["thresholds"] == {"review": 0.4, "block": 0.7}
    assert list(result["splits"]) == list(data.evaluations)
    time = result["splits"]["time"]
    evaluation = data.evaluations["time"][SERVED]
    assert time["roc_auc"] == evaluation["roc_auc"]
    assert time["n"] == 100
    assert time["precision_at_block"] == evaluation["at_thresholds"][1]["precision"]
    assert time["recall_at_review"] == evaluation["at_thresholds"][0]["recall"]
    assert time["honest_blocked_rate"] == evaluation["gating"]["honest_blocked_rate"]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("kfold", "kfold"),
        ("leave-out-collusion_ring", "leave-out-collusion_ring"),
        ("Leave out/../Ring #2", "leave-out-ring-2"),
        ("../", "split"),
        ("", "split"),
    ],
)
def test_slugify_gives_safe_file_names(name: str, slug: str) -> None:
    """Slugs use only lower-case letters, digits, '-' and '_', and are never empty."""
    assert slugify(name) == slug


def test_split_names_with_the_same_slug_get_distinct_files(data: ReportData, tmp_path: Path) -> None:
    """Two splits that slugify alike ("a/b", "a b") still get one pair of plots each."""
    twins = [dataclasses.replace(run, split=name) for name in ("a/b", "a b") for run in data.scores[:2]]
    paths = write_report(tmp_path, dataclasses.replace(data, scores=[*data.scores, *twins]))
    names = {p.name for p in paths}
    assert {"roc_a-b.png", "roc_a-b-2.png", "pr_a-b.png", "pr_a-b-2.png"} <= names


def test_inconsistent_inputs_are_rejected(data: ReportData) -> None:
    """Mismatched lengths, labels other than 0/1, scores outside [0, 1] and bad thresholds raise DataError."""
    with pytest.raises(DataError, match="labels"):
        SplitScores("kfold", "m", np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(DataError, match="scores"):
        SplitScores("kfold", "m", np.array([0, 1]), np.array([0.1, 1.5]))
    with pytest.raises(DataError, match="2 labels"):
        SplitScores("kfold", "m", np.array([0, 1]), np.array([0.1]))
    with pytest.raises(DataError, match="one label per served score"):
        dataclasses.replace(data, served_labels=data.served_labels[:-1])
    with pytest.raises(DataError, match="pca"):
        dataclasses.replace(data, clusters=data.clusters[:-1])
    with pytest.raises(DataError, match="thresholds"):
        dataclasses.replace(data, thresholds=(0.8, 0.5))


@pytest.mark.integration
def test_writing_needs_no_pyplot(tmp_path: Path) -> None:
    """A report is drawn without importing pyplot, so no GUI backend or global figure state is involved."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from tests.train.test_report import synthetic_report
        from qf_sentinel.qf.train.report import write_report
        write_report(Path({str(tmp_path)!r}), synthetic_report())
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        """
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report.md").is_file()
