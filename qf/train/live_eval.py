"""`qf eval --live`: the contribution gate judged as it is used, one contribution at a time, before it exists.

The round is Gitcoin Round 9 as ``qf replay-gitcoin`` replays it (8,131 real
donors) with the attack families of :mod:`qf.sim.attacks` injected into its
pool in time, as ``qf eval`` builds it. For each held-out family F:

1. the gate's served candidate (chosen as ``qf train`` chooses it, by
   :func:`qf.train.gate.evaluate` and :func:`qf.train.gate.select`) is trained
   on half of the background wallets and the *other* families' wallets, with the
   point-in-time features training always uses; calibration and thresholds come
   from held-out scores without F, on a quarter of the background wallets
   (:func:`qf.train.gate.family_thresholds`);
2. the background and F are replayed in time order through a fresh
   :class:`qf.model.live.LiveState` and :class:`qf.model.gate.GateModel`, the
   objects the sidecar serves with: each contribution is featurised as of its
   time, decided, counted as an *attempt* (as the sidecar counts what it was
   asked), and *lands* (is indexed) only if approved. A held contribution never
   lands, so the round the gate sees afterwards is the round it let happen;
3. measured on the remaining quarter of the background wallets (never in
   training, never used for thresholds) and on F: real donors held (REVIEW or
   BLOCK) at their first contribution, blocked there, held at any contribution
   (share of contributions and share of donors), attack wallets approved at their
   first contribution, ROC AUC over first contributions (live scores), and the
   share of F's standard-QF matching gain that came from contributions the gate
   approved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.funding.graph import FundingGraph
from qf_sentinel.qf.matching import compute_matching
from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.arrays import TreeEnsemble
from qf_sentinel.qf.model.funding_features import funding_row
from qf_sentinel.qf.model.gate import Decision, GateModel
from qf_sentinel.qf.sim.attacks import FAMILIES, attack_campaigns, inject_with_targets
from qf_sentinel.qf.sim.gitcoin import load_round9
from qf_sentinel.qf.train import gate, risk
from qf_sentinel.qf.train.offline import BLOCK_SECONDS, START_TIME
from qf_sentinel.qf.train.plans import dataset_from_plan

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[str], None]
#: The families that leave a shape in the round (bursts, uniform amounts, exclusive recipients, rings, metronomes).
SHAPE_FAMILIES = ("fan_out_burst", "closed_ring", "one_recipient_varied", "slow_drip", "mixture")
TARGETS = {
    "background_held_first": 0.05, "background_blocked_first": 0.01, "background_held_contributions": 0.03,
    "shape_approved_first": 0.10, "imitation_approved_first": 0.50, "gain_approved_share": 1 / 3,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LiveEvalConfig:
    seed: int = 42
    families: tuple[str, ...] = FAMILIES
    gate: gate.GateConfig = field(default_factory=gate.GateConfig)
    #: draw funding trails for every wallet (qf.sim.funding) and judge the gate with its funding stage
    funding: bool = True


@dataclass(frozen=True, slots=True, eq=False)
class Replay:
    """What the gate did to each contribution of a replay (rows in the order given)."""

    score: FloatArray
    decision: npt.NDArray[np.int8]  # 0 approve, 1 review, 2 block

    @property
    def held(self) -> BoolArray:
        return np.asarray(self.decision > 0)


_CODES = {Decision.APPROVE: 0, Decision.REVIEW: 1, Decision.BLOCK: 2}


def replay_gate(
    model: GateModel, contributions: Sequence[live.Contribution], state: live.LiveState | None = None,
    funding: FundingGraph | None = None,
) -> Replay:
    """Gate each contribution in chain order as the sidecar would: features (and funding evidence) as of its
    time, decide, count the attempt; once its block is mined, the approved ones land (are indexed)."""
    state = live.LiveState() if state is None else state
    row = np.zeros(live.N_FEATURES)
    scores = np.zeros(len(contributions))
    decisions = np.zeros(len(contributions), dtype=np.int8)
    for start, stop in live.blocks(contributions):
        for i in range(start, stop):
            c = contributions[i]
            state.features(c, row)
            evidence = funding_row(funding, c, state) if funding is not None else None
            decided = model.decide(row, evidence, explain=False)
            scores[i] = decided.score
            decisions[i] = _CODES[decided.decision]
            state.attempt(c)
        for i in range(start, stop):  # the block is mined: what was approved is indexed
            if decisions[i] == 0:
                state.land(contributions[i])
    return Replay(score=scores, decision=decisions)


def run_live_eval(csv_path: Path, config: LiveEvalConfig, progress: Progress = lambda _: None) -> dict[str, Any]:
    """The whole live evaluation as a JSON-ready dict (see the module docstring)."""
    progress(f"round 9 background with {len(config.families)} attack families in time (seed {config.seed})")
    background = load_round9(csv_path)
    plan, targets = inject_with_targets(background, config.families, seed=config.seed)
    campaigns = attack_campaigns(background, config.families, seed=config.seed) if config.funding else {}
    dataset = dataset_from_plan(plan, chain_id=0, start_time=START_TIME, block_seconds=BLOCK_SECONDS)
    gate_config = _with_seed(config.gate, config.seed)
    graph: FundingGraph | None = None
    styles: dict[str, str] = {}
    if config.funding:
        progress("funding trails drawn by the simulator's models: the real donors' by its honest model (simulated), "
                 "each campaign's in its family's style, a share through exchange-like sources")  # fmt: skip
        graph, styles = gate.drawn_graph(dataset, campaigns, seed=config.seed, draw_background=True)
    progress(f"point-in-time features of {dataset.donations.size:,} contributions")
    data = gate.gate_data(dataset, graph)
    progress(f"leave-one-family-out: {len(gate_config.candidates)} candidates x {len(config.families)} families")
    evaluated = gate.evaluate(data, gate_config)
    served, mean_auc = gate.select(evaluated)
    held = evaluated.held_out[served]
    stages: dict[str, TreeEnsemble | None] = {}
    if data.has_funding:
        progress("funding stage per held-out family (the base model's log-odds cross-fitted as its offset)")
        stages = {f: gate.fit_funding_stage(served, data, gate.family_training_rows(data, f, gate_config),
                                            gate_config.seed) for f in evaluated.families}  # fmt: skip
        held = gate.with_funding(data, held, stages)
    contributions = live.contributions_of(dataset)
    train_half = gate.wallet_half(data.donor, gate_config.seed)
    measured = ~data.y & ~train_half & ~gate.calibration_half(data, gate_config)
    owner_keys = [f"1:{plan.wallets[p.owner].address}" for p in plan.projects]
    per_family: dict[str, dict[str, Any]] = {}
    for family in sorted(evaluated.families):
        progress(f"{family}: train without it, replay the round through the gate")
        in_family = data.patterns == family
        train = (~data.y & train_half) | (data.y & ~in_family)
        fitted = risk.fit(served, data.x[train], data.y[train], gate_config.seed, monotone=gate.MONOTONE,
                          weight=data.weight[train])  # fmt: skip
        calibration, (review, block) = gate.family_thresholds(data, held, family, gate_config)
        model = GateModel(risk=risk.export(served, fitted), calibration=calibration, review=review, block=block,
                          served_model=served, funding=stages.get(family))  # fmt: skip
        rows = np.flatnonzero(~data.y | in_family)
        replay = replay_gate(model, [contributions[i] for i in rows], funding=graph)
        family_targets = {owner_keys[p] for p in targets.get(family, set())}
        per_family[family] = _figures(data, dataset, rows, replay, in_family=in_family, measured=measured,
                                       targets=family_targets) | {
            "thresholds": [review, block], "funding_stage": stages.get(family) is not None,
            "by_funding": _by_funding(data, dataset, rows, replay, in_family=in_family, measured=measured,
                                      styles=styles),
        }
    return {
        "seed": config.seed,
        "served_model": served,
        "selection_mean_roc_auc_first": mean_auc,
        "contributions": int(data.size),
        "background_wallets_measured": int(np.unique(data.donor[measured]).size),
        "funding": "drawn by qf.sim.funding: real donors by the honest model (simulated), attackers by their "
                   "family's style, a share of each family's campaigns through exchange-like sources"
                   if config.funding else "none",
        "families": per_family,
        "summary": _summary(per_family),
        "targets": TARGETS,
    }


def _figures(
    data: gate.GateData, dataset: Any, rows: npt.NDArray[np.intp], replay: Replay, *, in_family: BoolArray,
    measured: BoolArray, targets: set[str],
) -> dict[str, Any]:  # fmt: skip
    first = data.first[rows]
    background = measured[rows]
    attack = in_family[rows]
    held = replay.held
    blocked = replay.decision == 2
    bg_first = background & first
    at_first = attack & first
    donors = data.donor[rows]
    held_donors = np.unique(donors[background & held])
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - training-only dependency

    labels = np.concatenate([np.zeros(int(bg_first.sum())), np.ones(int(at_first.sum()))])
    scores = np.concatenate([replay.score[bg_first], replay.score[at_first]])
    auc = float(roc_auc_score(labels, scores)) if 0 < labels.sum() < labels.size else float("nan")
    return {
        "attackers": int(at_first.sum()),
        "attackers_approved_first": float(np.mean(~held[at_first])) if at_first.any() else float("nan"),
        "attack_contributions_approved": float(np.mean(~held[attack])) if attack.any() else float("nan"),
        "roc_auc_first": auc,
        "background_wallets": int(bg_first.sum()),
        "background_held_first": float(np.mean(held[bg_first])),
        "background_blocked_first": float(np.mean(blocked[bg_first])),
        "background_held_contributions": float(np.mean(held[background])),
        "background_held_any_donor": float(held_donors.size / max(int(bg_first.sum()), 1)),
        "gain_approved_share": _gain_share(dataset, rows, ~held, attack, targets),
    }


def _by_funding(
    data: gate.GateData, dataset: Any, rows: npt.NDArray[np.intp], replay: Replay, *, in_family: BoolArray,
    measured: BoolArray, styles: dict[str, str],
) -> dict[str, dict[str, float]]:  # fmt: skip
    """The family's figures at first contributions split by how its wallets were funded (via an exchange, or by
    the attacker: no funding signal can catch the first)."""
    if not styles:
        return {}
    addresses = dataset.donors["address"].to_numpy()
    style = np.array([styles.get(str(addresses[d]), "") for d in data.donor[rows]])
    first = data.first[rows]
    background = measured[rows] & first
    out = {}
    for name, chosen in (("via_exchange", style == "via_exchange"), ("attacker_funded", style != "via_exchange")):
        attack = in_family[rows] & first & chosen
        if not attack.any():
            continue
        from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - training-only dependency

        labels = np.concatenate([np.zeros(int(background.sum())), np.ones(int(attack.sum()))])
        scores = np.concatenate([replay.score[background], replay.score[attack]])
        out[name] = {"wallets": int(attack.sum()), "approved_first": float(np.mean(~replay.held[attack])),
                     "roc_auc_first": float(roc_auc_score(labels, scores))}  # fmt: skip
    return out


def _gain_share(dataset: Any, rows: npt.NDArray[np.intp], approved: BoolArray, attack: BoolArray,
                targets: set[str]) -> float:  # fmt: skip
    """Of the attack's standard-QF gain (its targets' share beyond the clean round's), the part the gate let in."""
    d = dataset.donations
    project = d.project[rows]
    pool_of = np.array([key.partition(":")[0] for key in d.project_ids])
    pool = pool_of[project]
    main = np.bincount(np.unique(pool, return_inverse=True)[1]).argmax()
    in_pool = pool == np.unique(pool)[main]
    is_target = np.array([key in targets for key in d.project_ids])

    def shares(keep: BoolArray) -> FloatArray:
        chosen = keep & in_pool
        donors, donor_index = np.unique(d.donor[rows][chosen], return_inverse=True)
        matrix = np.zeros((donors.size, len(d.project_ids)))
        np.add.at(matrix, (donor_index, project[chosen]), np.nan_to_num(d.amount[rows][chosen]))
        columns = np.flatnonzero(matrix.any(axis=0))
        out = np.zeros(len(d.project_ids))
        if columns.size:
            out[columns] = compute_matching(matrix[:, columns], 1.0, method="standard")
        return out

    clean = shares(~attack)
    everything = shares(np.ones(rows.size, dtype=bool))
    let_in = shares(~attack | approved)
    gain_all = float(np.maximum(everything[is_target] - clean[is_target], 0.0).sum())
    gain_let_in = float(np.maximum(let_in[is_target] - clean[is_target], 0.0).sum())
    return gain_let_in / gain_all if gain_all > 0 else float("nan")


def _summary(per_family: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def worst(key: str, families: Sequence[str] | None = None) -> float:
        values = [v[key] for f, v in per_family.items() if families is None or f in families]
        return float(np.nanmax(values)) if values else float("nan")

    imitation = [f for f in per_family if f not in SHAPE_FAMILIES]
    gain_families = [f for f in per_family if f != "imitators"]
    return {
        "background_held_first": worst("background_held_first"),
        "background_blocked_first": worst("background_blocked_first"),
        "background_held_contributions": worst("background_held_contributions"),
        "background_held_any_donor": worst("background_held_any_donor"),
        "shape_approved_first": worst("attackers_approved_first", SHAPE_FAMILIES),
        "imitation_approved_first": worst("attackers_approved_first", imitation),
        "gain_approved_share": worst("gain_approved_share", gain_families),
    }


def _with_seed(config: gate.GateConfig, seed: int) -> gate.GateConfig:
    return replace(config, seed=seed)
