"""`qf eval`: the sybil gate on real Round 9 donors against attack families it was not trained on.

The background is all of Gitcoin Round 9 as ``qf replay-gitcoin`` replays it
(8,131 real donors, unlabelled and not assumed honest: some were sybils); the
attack families of :mod:`qf.sim.attacks` are injected into the same pool,
deterministic by seed. The round is built in memory with
:func:`qf.train.plans.dataset_from_plan`, which gives exactly the arrays the
database path would (tested), and every feature, model, calibration and
threshold comes from the training pipeline's own functions. What is measured:

* per held-out family (:func:`qf.train.pipeline.evaluate_candidates`: trained
  without the family and without half of the background, tested on both):
  ROC and PR AUC with bootstrap intervals, and the gate (attackers approved,
  blocked; background blocked, sent to review) with calibration and thresholds
  fitted without the family and measured on background donors they were not
  fitted on (:func:`qf.train.pipeline.calibrate_gate`);
* matching, per family, on the round of the background plus that family alone:
  the attackers' gain (share of the matching pool their target projects get
  beyond what they get without the attack) under standard QF, COCM and
  risk-adjusted QF with the model's weights (:func:`qf.matching.risk.gate_weights`),
  and how far each moves honest projects' shares from clean standard QF (L1).
  The weights come from cross-fitting: each background donor is scored by a
  model that never saw it, each attacker by one that never saw its family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.matching import compute_matching
from qf_sentinel.qf.matching.risk import gate_weights
from qf_sentinel.qf.model.coordination import donor_communities
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.features import COMMUNITY_SEED
from qf_sentinel.qf.sim.attacks import FAMILIES, inject_with_targets
from qf_sentinel.qf.sim.gitcoin import load_round9
from qf_sentinel.qf.train import risk
from qf_sentinel.qf.train.calibration import fit_calibration
from qf_sentinel.qf.train.pipeline import (
    FAMILY_PREFIX,
    POOLED,
    TrainConfig,
    TrainingData,
    add_intervals,
    calibrate_gate,
    evaluate_candidates,
    prepare,
    select_served,
)
from qf_sentinel.qf.train.plans import dataset_from_plan

FloatArray = npt.NDArray[np.float64]
Progress = Callable[[str], None]
#: Where the replay's allocation window opens (2021-03-10, Round 9's start) and its block length.
START_TIME = 1_615_334_400
BLOCK_SECONDS = 120


@dataclass(frozen=True, slots=True)
class EvalConfig:
    seed: int = 42
    n_boot: int = 1000
    families: tuple[str, ...] = FAMILIES
    train: TrainConfig = field(default_factory=lambda: TrainConfig(inject=False, in_distribution=False))


def run_offline_eval(csv_path: Path, config: EvalConfig, progress: Progress = lambda _: None) -> dict[str, Any]:
    """The whole evaluation as a JSON-ready dict (see the module docstring for each figure)."""
    progress(f"round 9 background with {len(config.families)} attack families (seed {config.seed})")
    plan, targets = inject_with_targets(load_round9(csv_path), config.families, seed=config.seed)
    dataset = dataset_from_plan(plan, chain_id=0, start_time=START_TIME, block_seconds=BLOCK_SECONDS)
    train_config = replace(config.train, seed=config.seed, n_boot=config.n_boot, families=config.families)
    data = prepare(dataset, train_config, progress)
    progress(f"leave-one-family-out: {len(risk.CANDIDATES)} models x {len(config.families)} families")
    evaluated = evaluate_candidates(data, train_config)
    served, generalisation = select_served(evaluated)
    add_intervals(evaluated, served, train_config)
    progress(f"served model {served} (mean held-out ROC AUC {generalisation:.3f}); calibration and gate")
    _, (review, block), gate = calibrate_gate(data, evaluated.held_out[served], train_config)
    progress("matching: standard, COCM and risk-adjusted per family (cross-fitted weights)")
    owner_keys = [f"1:{plan.wallets[p.owner].address}" for p in plan.projects]
    target_ids = {f: {owner_keys[p] for p in projects} for f, projects in targets.items()}
    matching = _matching(data, served, train_config, target_ids, (review, block))
    per_family = {}
    for split, by_model in evaluated.evaluations.items():
        if not split.startswith(FAMILY_PREFIX) or split == POOLED:
            continue
        family = split.removeprefix(FAMILY_PREFIX)
        e = by_model[served]
        per_family[family] = {
            "roc_auc": e["roc_auc"], "pr_auc": e["pr_auc"], "n": e["n"], "attackers": e["positives"],
            "gate": gate["families"].get(family), "matching": matching.get(family),
        }  # fmt: skip
    pooled = evaluated.evaluations[POOLED][served]
    return {
        "seed": config.seed,
        "background_donors": int((~data.y).sum()),
        "attackers": int(data.y.sum()),
        "served_model": served,
        "candidates": {
            name: float(np.mean([
                per[name]["roc_auc"]["point"] for s, per in evaluated.evaluations.items()
                if s.startswith(FAMILY_PREFIX) and s != POOLED and name in per
            ]))
            for name in risk.CANDIDATES
        },
        "thresholds": {"review": review, "block": block},
        "pooled": {"roc_auc": pooled["roc_auc"], "pr_auc": pooled["pr_auc"]},
        "gate": {k: gate[k] for k in ("attackers_approved", "background_blocked", "background_review")},
        "families": per_family,
        "matching": {k: _mean(matching, k) for k in _MATCHING_KEYS},
    }  # fmt: skip


_MATCHING_KEYS = (
    "attackers_standard", "attackers_cocm", "attackers_risk_adjusted", "honest_l1_standard", "honest_l1_cocm",
    "honest_l1_risk_adjusted",
)  # fmt: skip


def _mean(per_family: dict[str, dict[str, float]], key: str) -> float:
    return float(np.mean([v[key] for v in per_family.values()])) if per_family else float("nan")


def _matching(
    data: TrainingData,
    served: str,
    config: TrainConfig,
    targets: dict[str, set[str]],
    thresholds: tuple[float, float],
) -> dict[str, dict[str, float]]:
    """Per family: attackers' gain and honest projects' L1 under standard, COCM and risk-adjusted matching."""
    y, patterns, x = data.y, data.patterns, data.x
    background = np.flatnonzero(~y)
    half = background % 2 == 0
    d = data.dataset.donations
    community = donor_communities(d, len(data.dataset.donors), seed=COMMUNITY_SEED)
    out = {}
    for family in sorted(set(patterns[y].tolist())):
        attackers = np.flatnonzero(patterns == family)
        others = np.flatnonzero(y & (patterns != family))
        raw = np.zeros(y.size)
        for fold in (True, False):
            train = np.concatenate([background[half == fold], others])
            model = risk.fit(served, x[train], y[train], config.seed)
            scored = np.concatenate([background[half != fold], attackers] if fold else [background[half != fold]])
            raw[scored] = risk.predict(model, x[scored])
        calibration, _ = fit_calibration(raw[np.concatenate([background, attackers])],
                                         y[np.concatenate([background, attackers])])  # fmt: skip
        donors = np.concatenate([background, attackers])
        scores = calibration.apply(raw[donors])
        weights, _ = gate_weights(scores, review=thresholds[0], block=thresholds[1], community=community[donors])
        out[family] = _shares(data.dataset, donors, weights, targets.get(family, set()))
    return out


def _shares(dataset: Dataset, donors: npt.NDArray[np.intp], weights: FloatArray, targets: set[str]) -> dict[str, float]:
    d = dataset.donations
    index = -np.ones(len(dataset.donors), dtype=np.int64)
    index[donors] = np.arange(donors.size)
    keep = index[d.donor] >= 0
    matrix = np.zeros((donors.size, len(d.project_ids)))
    np.add.at(matrix, (index[d.donor[keep]], d.project[keep]), np.nan_to_num(d.amount[keep]))
    attacker_rows = np.zeros(donors.size, dtype=bool)
    labelled = dataset.donors["labelled"].to_numpy()[donors]
    attacker_rows[labelled] = True
    is_target = np.array([key in targets for key in d.project_ids])

    def shares(m: FloatArray, method: str = "standard", w: FloatArray | None = None) -> FloatArray:
        used = m[:, m.any(axis=0)] if m.size else m
        columns = np.flatnonzero(m.any(axis=0))
        result = np.zeros(m.shape[1])
        if used.size:
            kwargs: dict[str, Any] = {"method": method}
            if w is not None:
                kwargs = {"method": "risk-adjusted", "weights": w}
            result[columns] = compute_matching(used, 1.0, **kwargs)
        return result

    clean = shares(matrix[~attacker_rows])
    standard = shares(matrix)
    cocm = shares(matrix, "cocm")
    adjusted = shares(matrix, w=weights)

    def gain(s: FloatArray) -> float:
        return float(np.maximum(s[is_target] - clean[is_target], 0.0).sum())

    def l1(s: FloatArray) -> float:
        return float(np.abs(s[~is_target] - clean[~is_target]).sum())

    return {
        "attackers_standard": gain(standard), "attackers_cocm": gain(cocm), "attackers_risk_adjusted": gain(adjusted),
        "honest_l1_standard": l1(standard), "honest_l1_cocm": l1(cocm), "honest_l1_risk_adjusted": l1(adjusted),
    }  # fmt: skip


def families_option(value: str | None) -> Sequence[str]:
    return FAMILIES if not value else tuple(v.strip() for v in value.split(",") if v.strip())
