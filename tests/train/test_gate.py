"""The contribution gate's training and `qf eval --live`: rows as of each contribution, held contributions that
never land, a served model whose arrays equal the library, and the live evaluation on a Round 9 prefix."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest

from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.arrays import LinearModel
from qf_sentinel.qf.model.calibration import Calibration
from qf_sentinel.qf.model.gate import GateModel
from qf_sentinel.qf.train import gate
from qf_sentinel.qf.train.live_eval import LiveEvalConfig, replay_gate, run_live_eval
from tests.scorer.synthetic import synthetic_dataset

ROUND9 = Path(__file__).resolve().parents[2] / "data" / "gitcoin-round9-contributions.csv.xz"


def constant_gate(score: float) -> GateModel:
    """A gate whose calibrated risk is ``score`` for every row (a linear model with no weights)."""
    n = live.N_FEATURES
    arrays = LinearModel(mean=np.zeros(n), scale=np.ones(n), coef=np.zeros(n), intercept=0.0, link="identity")
    return GateModel(risk=arrays, calibration=Calibration(x=np.array([0.0, 1.0]), y=np.array([score, score])),
                     review=0.4, block=0.7, served_model="constant")  # fmt: skip


def cart(block: int, donor: str = "d") -> list[live.Contribution]:
    return [live.Contribution(donor=donor, project=f"1:0x{p:02x}", pool="1", amount=2.0, time=12.0 * block,
                              block=block) for p in range(3)]  # fmt: skip


def test_a_held_contribution_never_lands() -> None:
    """Blocked, the donor's first cart leaves no history: its next cart is still a first; approved, it is not."""
    contributions = [*cart(1), *cart(2)]
    blocked_state, approved_state = live.LiveState(), live.LiveState()
    blocked = replay_gate(constant_gate(0.9), contributions, blocked_state)
    approved = replay_gate(constant_gate(0.1), contributions, approved_state)
    assert blocked.held.all()
    assert not approved.held.any()
    assert not blocked_state.is_known("d")
    assert approved_state.is_known("d")
    probe = live.Contribution(donor="d", project="1:0x09", pool="1", amount=1.0, time=100.0)
    assert blocked_state.features(probe)[live.feature_index("donor_prior_donations")] == 0
    assert approved_state.features(probe)[live.feature_index("donor_prior_donations")] == 6
    # ... but the blocked attempts did arrive: the projects saw them
    seen = live.Contribution(donor="e", project="1:0x00", pool="1", amount=2.0, time=100.0)
    assert blocked_state.features(seen)[live.feature_index("project_arrivals_10m")] == 2


def test_gate_rows_are_the_replay_and_labels_follow_the_wallet() -> None:
    dataset = synthetic_dataset()
    data = gate.gate_data(dataset)
    np.testing.assert_array_equal(data.x, live.replay_features(live.contributions_of(dataset)))
    assert data.size == dataset.donations.size
    donors = dataset.donors
    np.testing.assert_array_equal(data.y, donors["is_sybil"].to_numpy()[dataset.donations.donor])
    assert data.first.sum() == len(donors)
    counts = np.bincount(dataset.donations.donor)
    np.testing.assert_allclose(data.weight, 1 / np.sqrt(counts[dataset.donations.donor]))


def test_train_gate_selects_calibrates_and_exports_exactly() -> None:
    dataset = synthetic_dataset()
    trained = gate.train_gate(dataset, gate.GateConfig(seed=1))
    assert trained.parity <= 1e-6
    assert trained.served in gate.risk.CANDIDATES
    manifest = trained.manifest
    assert manifest["feature_names"] == list(live.CONTRIBUTION_FEATURES)
    assert set(manifest["families"]) == {"fan_out", "ring"}
    review, block = trained.thresholds
    assert 0.05 <= review <= block <= 1.0
    for family in manifest["families"].values():
        assert 0.0 <= family["roc_auc_first"] <= 1.0


def test_thresholds_hold_every_rate() -> None:
    rng = np.random.default_rng(0)
    background = rng.random(10_000)
    first = rng.random(10_000) < 0.2
    config = gate.GateConfig(review_floor=0.0, block_threshold=0.0)
    review, block = gate.thresholds(background, first, config)
    assert np.mean(background >= review) <= config.review_rate
    assert np.mean(background[first] >= review) <= config.first_review_rate
    assert np.mean(background > block) <= config.block_rate
    assert np.mean(background[first] > block) <= config.block_rate


@pytest.fixture(scope="module")
def round9_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 12,000 rows of the Round 9 CSV (about 1,900 donors)."""
    path = tmp_path_factory.mktemp("round9") / "prefix.csv"
    with lzma.open(ROUND9, "rt") as source:
        lines = [next(source) for _ in range(12_001)]
    path.write_text("".join(lines))
    return path


@pytest.mark.slow
def test_live_evaluation_on_a_round9_prefix(round9_prefix: Path) -> None:
    """Held-out families gated one contribution at a time: the shape family is mostly held at its first
    contribution, real donors mostly approved, and every figure is where it should be."""
    families = ("fan_out_burst", "one_recipient_varied", "slow_drip", "imitators")
    config = LiveEvalConfig(seed=5, families=families, gate=gate.GateConfig(candidates=("lightgbm", "logistic")))
    result = run_live_eval(round9_prefix, config)
    rows = result["families"]
    assert set(rows) == set(config.families)
    for row in rows.values():
        for key in ("attackers_approved_first", "background_held_first", "background_blocked_first",
                    "background_held_contributions"):  # fmt: skip
            assert 0.0 <= row[key] <= 1.0
        assert row["background_blocked_first"] <= row["background_held_first"]
        assert row["attackers"] > 0
    for shape in ("fan_out_burst", "one_recipient_varied", "slow_drip"):
        assert rows[shape]["attackers_approved_first"] < 0.5
        assert rows[shape]["roc_auc_first"] > 0.8
        assert rows[shape]["gain_approved_share"] < 0.5
    assert result["summary"]["background_held_first"] < 0.05
    assert result["background_wallets_measured"] > 100
