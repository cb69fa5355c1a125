"""Funding evidence in the gate: neutral without it, only ever raising risk, point in time, in words."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qf_sentinel.qf.funding.graph import NATIVE, FundingGraph, FundingRow, KnownSource, SourceKind
from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.arrays import LinearModel
from qf_sentinel.qf.model.calibration import Calibration
from qf_sentinel.qf.model.funding_features import FUNDING_FEATURES, N_FUNDING, HexKeys, describe, evidence
from qf_sentinel.qf.model.gate import FUNDING_REASON, GateModel
from qf_sentinel.qf.train import gate
from qf_sentinel.qf.train.live_eval import replay_gate
from tests.scorer.synthetic import synthetic_dataset

EXCHANGE = b"\xe0" * 20
FARMER = b"\xfa" * 20


def wallet(i: int) -> bytes:
    return i.to_bytes(20, "big")


def funded(target: bytes, funder: bytes, time: float, amount: int = 3_141_592_653_589_793) -> FundingRow:
    return FundingRow(target, NATIVE, funder, amount, int(time // 12), time)


def graph() -> FundingGraph:
    rows = [funded(wallet(i), FARMER, 1000.0 + i) for i in range(1, 6)]
    rows += [funded(wallet(i), EXCHANGE, 500.0, 10**17) for i in range(10, 15)]
    rows += [funded(FARMER, EXCHANGE, 100.0, 10**18)]
    return FundingGraph(rows, [KnownSource(EXCHANGE, "an exchange", SourceKind.EXCHANGE, "test")])


def donors(*indices: int) -> HexKeys:
    return HexKeys({"0x" + wallet(i).hex() for i in indices})


def test_a_farm_wallet_shows_its_funder_its_peers_and_the_timing() -> None:
    found = evidence(graph(), wallet(5), at=1065.0, amount=1.0, token=None, round_donors=donors(1, 2, 3, 5),
                     project_donors=donors(1, 2))  # fmt: skip
    row = dict(zip(FUNDING_FEATURES, found.row, strict=True))
    assert row["funder_fan_out_log"] == math.log1p(3)  # 1, 2 and 3 arrived before; 5 itself is not counted
    assert row["funder_donors_here_log"] == math.log1p(2)
    assert row["funding_recency"] == 1 / (1 + 60 / 3600)
    assert row["funding_amount_fit"] == 1.0  # 0.0031... ETH: a script's exact gas, not a round amount
    assert row["funding_trail_depth"] == 1.0  # the farmer was funded by the exchange: one hop before a source
    text = describe(found)
    assert "funded 1 minutes before giving by 0xfafa" in text
    assert "which funded 3 other donors of this round, 2 of them at this project" in text


def test_no_evidence_is_exactly_zero() -> None:
    g = graph()
    kw = {"amount": 1.0, "token": None, "round_donors": donors(1, 2), "project_donors": donors(1)}
    unknown = evidence(g, wallet(99), at=5000.0, **kw)  # type: ignore[arg-type]
    by_exchange = evidence(g, wallet(11), at=5000.0, **kw)  # type: ignore[arg-type]
    before_funding = evidence(g, wallet(5), at=999.0, **kw)  # type: ignore[arg-type]
    for found in (unknown, by_exchange, before_funding):
        assert not found.row.any()
        assert describe(found) == ""
    assert not evidence(None, wallet(5), at=5000.0, **kw).row.any()  # type: ignore[arg-type]


def gated_with_funding(push_per_unit: float = 1.0) -> GateModel:
    """A gate whose funding stage is a real XGBoost model trained on a toy table, monotone increasing."""
    rng = np.random.default_rng(0)
    data = gate.GateData(
        x=rng.normal(size=(400, live.N_FEATURES)), donor=np.arange(400), y=np.arange(400) % 2 == 0,
        patterns=np.where(np.arange(400) % 2 == 0, "farm", "background"), first=np.ones(400, dtype=bool),
        weight=np.ones(400), funding=np.where(np.arange(400)[:, None] % 2 == 0, rng.random((400, N_FUNDING)), 0.0),
    )  # fmt: skip
    data.funding[1::4] = rng.random((100, N_FUNDING)) * 0.2  # some background wallets have evidence too
    stage = gate.fit_funding_stage("logistic", data, np.arange(400), seed=1)
    assert stage is not None
    n = live.N_FEATURES  # a base model whose raw risk is 0.3 for every row, calibrated as it is
    base = LinearModel(mean=np.zeros(n), scale=np.ones(n), coef=np.zeros(n), intercept=0.3, link="identity")
    return GateModel(risk=base, calibration=Calibration.identity(), review=0.4, block=0.7, served_model="constant",
                     funding=stage)  # fmt: skip


_MODEL: dict[str, GateModel] = {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 5), min_size=N_FUNDING, max_size=N_FUNDING), st.integers(0, N_FUNDING - 1),
       st.floats(0, 5))  # fmt: skip
def test_funding_evidence_only_raises_risk_and_none_changes_nothing(
    values: list[float], feature: int, more: float
) -> None:
    if "gate" not in _MODEL:  # fitted once: setdefault would fit it again for every example
        _MODEL["gate"] = gated_with_funding()
    model = _MODEL["gate"]
    row = np.zeros(live.N_FEATURES)
    base = model.probability(row)[1]
    assert base == 0.3
    assert model.probability(row, np.zeros(N_FUNDING))[1] == base  # unknown / known source: exactly as without
    f = np.array(values)
    with_evidence = model.probability(row, f)[1]
    assert with_evidence >= base
    higher = f.copy()
    higher[feature] += more
    assert model.probability(row, higher)[1] >= with_evidence  # monotone in every funding feature


def test_the_funding_push_is_a_reason() -> None:
    model = gated_with_funding()
    decided = model.decide(np.zeros(live.N_FEATURES), np.full(N_FUNDING, 3.0))
    assert decided.pushes[0].feature == FUNDING_REASON
    assert decided.pushes[0].contribution > 0
    assert decided.score > model.decide(np.zeros(live.N_FEATURES)).score


def test_training_rows_carry_funding_as_of_each_contribution() -> None:
    dataset = synthetic_dataset()
    addresses = list(dataset.donors["address"])
    sybils = [a for a, s in zip(addresses, dataset.donors["is_sybil"], strict=True) if s]
    campaigns = dict.fromkeys(sybils, "fan_out_burst-0")
    drawn, styles = gate.drawn_graph(dataset, campaigns, seed=3, draw_background=True)
    data = gate.gate_data(dataset, drawn)
    assert data.funding.shape == (data.size, N_FUNDING)
    assert data.funding.min() >= 0
    assert data.funding[data.y].any(axis=1).mean() > data.funding[~data.y].any(axis=1).mean()
    assert set(styles.values()) <= {"exchange", "personal_wallet", "direct_fan_out", "via_exchange"}
    np.testing.assert_array_equal(data.x, gate.gate_data(dataset).x)  # funding changes no other feature
    trained = gate.train_gate(dataset, gate.GateConfig(seed=1, candidates=("lightgbm", "logistic")), data)
    assert trained.funding is not None
    assert trained.manifest["funding"]["feature_names"] == list(FUNDING_FEATURES)


def test_the_live_replay_scores_with_funding() -> None:
    """replay_gate computes each contribution's funding evidence from what arrived before it."""
    g = graph()
    model = gated_with_funding()
    cs = [live.Contribution(donor="0x" + wallet(i).hex(), project="1:0x01", pool="1", amount=1.0,
                            time=1100.0 + i, block=i) for i in range(1, 6)]  # fmt: skip
    without = replay_gate(model, cs)
    with_funding = replay_gate(model, cs, funding=g)
    assert (with_funding.score >= without.score).all()
    assert with_funding.score[-1] > without.score[-1]  # the fifth farm wallet: four peers arrived before it
