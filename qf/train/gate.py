"""The contribution gate: a model of single contributions with their point-in-time features, trained as it is used.

The sidecar decides on a contribution before it exists, from what
:class:`qf.model.live.LiveState` knows at that instant. So the training
examples here are contributions, each with the features it had just before it
happened (:func:`qf.model.live.replay_features` over the round in chain order:
no row sees a later donation), labelled by their wallet's label. Injected attack
families are placed in time inside the real round (:mod:`qf.train.injection`).

Selection and thresholds follow the donor model's rules (:mod:`qf.train.pipeline`)
with contributions in place of donors:

* every candidate of :mod:`qf.train.risk` is trained without one attack family
  and without half of the background wallets (split by wallet, so no wallet is on
  both sides), and scored on that family and the other half; the served model has
  the highest mean ROC AUC over the families' *first* contributions (a farm
  wallet usually gives once: its first contribution is the one that counts);
* rows are weighted 1/sqrt(contributions of the wallet), so a real donor with a
  hundred donations does not outweigh a hundred wallets, nor count for one;
* isotonic calibration on the held-out scores; the review threshold holds at most
  ``review_rate`` of held-out background contributions and ``first_review_rate``
  of their first contributions; the block threshold at most ``block_rate`` of both.

Wallet history only ever lowers risk (``wallet_nonce`` is monotone decreasing),
as in the donor model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.funding.graph import FundingGraph
from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.arrays import LinearModel, TreeEnsemble
from qf_sentinel.qf.model.calibration import Calibration
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.funding_features import FUNDING_FEATURES, N_FUNDING, funding_row
from qf_sentinel.qf.train import risk
from qf_sentinel.qf.train.calibration import fit_calibration, rate_threshold
from qf_sentinel.qf.train.export import from_xgboost

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
#: A family needs this many wallets to be held out.
MIN_FAMILY = 5
#: The funding stage needs this many rows with funding evidence in each class.
MIN_FUNDING_EVIDENCE = 10
SELECTION_CRITERION = (
    "highest mean ROC AUC over each held-out attack family's first contributions against held-out background "
    "wallets' first contributions (leave-one-family-out, split by wallet)"
)
MONOTONE = [-1 if name in live.MONOTONE_DECREASING else 0 for name in live.CONTRIBUTION_FEATURES]


@dataclass(frozen=True, slots=True)
class GateConfig:
    seed: int = 42
    #: most of the held-out background contributions sent to review or block, all and first ones
    review_rate: float = 0.03
    first_review_rate: float = 0.05
    #: most of them blocked (all and first ones)
    block_rate: float = 0.01
    #: a calibrated risk below this is never worth a reviewer's time
    review_floor: float = 0.05
    #: the nominal block threshold (raised until block_rate holds)
    block_threshold: float = 0.7
    candidates: tuple[str, ...] = risk.CANDIDATES


@dataclass(frozen=True, slots=True, eq=False)
class GateData:
    """One row per contribution (chain order): point-in-time features and the wallet's label."""

    x: FloatArray
    #: donor index (into the dataset's donors) of each row
    donor: IntArray
    y: BoolArray
    #: attack family, or "background"
    patterns: npt.NDArray[Any]
    first: BoolArray
    weight: FloatArray
    #: the funding features of each row (qf.model.funding_features), all 0 without funding evidence
    funding: FloatArray = field(default_factory=lambda: np.zeros((0, N_FUNDING)))

    @property
    def size(self) -> int:
        return int(self.y.size)

    @property
    def has_funding(self) -> bool:
        return bool(self.funding.shape[0] == self.size and self.funding.any())


@dataclass
class GateEvaluation:
    """Held-out scores of every candidate and the per-family figures."""

    #: candidate -> [(rows, raw held-out scores, family)]
    held_out: dict[str, list[tuple[npt.NDArray[np.intp], FloatArray, str]]] = field(default_factory=dict)
    #: family -> candidate -> {"roc_auc_first", "roc_auc", ...}
    families: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TrainedGate:
    """What ``qf train`` saves of the gate: the served model's arrays, calibration, thresholds and figures."""

    served: str
    arrays: TreeEnsemble | LinearModel
    calibration: Calibration
    thresholds: tuple[float, float]
    manifest: dict[str, Any]
    parity: float
    #: the funding stage (None without funding evidence in the training round)
    funding: TreeEnsemble | None = None


def gate_data(
    dataset: Dataset, graph: FundingGraph | None = None, elsewhere: Sequence[live.Contribution] = ()
) -> GateData:
    """Every donation of ``dataset`` as a training row: features as of just before it, its wallet's label.

    With a funding ``graph``, each row also gets its funding features as of that moment
    (:func:`qf.model.funding_features.evidence`, what the sidecar computes at the call). ``elsewhere``: the
    other indexed chains' donations, the donors' history there as the sidecar counts it
    (:func:`qf.model.loader.load_elsewhere`).
    """
    contributions = live.contributions_of(dataset)
    funding = np.zeros((len(contributions), N_FUNDING))

    def with_funding(i: int, c: live.Contribution, state: live.LiveState) -> None:
        funding[i] = funding_row(graph, c, state)

    x = live.replay_features(contributions, also=with_funding if graph is not None else None, elsewhere=elsewhere)
    d = dataset.donations
    donors = dataset.donors
    labelled = donors["labelled"].to_numpy(dtype=bool)
    wallet_y = donors["is_sybil"].to_numpy(dtype=bool)
    wallet_pattern = np.where(labelled & wallet_y, donors["pattern"].to_numpy(), "background")
    first = np.zeros(d.size, dtype=bool)
    _, first_rows = np.unique(d.donor, return_index=True)
    first[first_rows] = True
    counts = np.bincount(d.donor, minlength=len(donors)).astype(np.float64)
    return GateData(
        x=np.ascontiguousarray(x), donor=d.donor, y=wallet_y[d.donor], patterns=wallet_pattern[d.donor],
        first=first, weight=1.0 / np.sqrt(counts[d.donor]), funding=funding,
    )  # fmt: skip


def drawn_graph(
    dataset: Dataset, campaigns: dict[str, str], *, seed: int, base: FundingGraph | None = None,
    draw_background: bool = False,
) -> tuple[FundingGraph, dict[str, str]]:
    """A funding graph for an evaluation or training round: ``base`` (what the index found) plus funding drawn
    by the simulator's models (``qf.sim.funding``) for the injected attackers (``campaigns``: address -> campaign)
    and, with ``draw_background``, for every other donor (the honest model: a replay's real donors carry no
    funding of their own). Returns the graph and each drawn wallet's funding style."""
    from qf_sentinel.qf.sim.funding import draw_funding  # noqa: PLC0415 - the simulator's models, for evaluation rounds only

    d = dataset.donations
    addresses = dataset.donors["address"].to_numpy()
    first_time = np.full(len(addresses), np.inf)
    np.minimum.at(first_time, d.donor, d.time)
    wanted = [i for i, a in enumerate(addresses) if draw_background or str(a) in campaigns]
    donors = [bytes.fromhex(str(addresses[i])[2:]) for i in wanted]
    token = bytes.fromhex(d.token_ids[int(np.bincount(d.token).argmax())]) if d.size and d.token_ids else None
    needs = np.zeros(len(addresses))
    np.add.at(needs, d.donor, np.nan_to_num(d.amount))
    drawn = draw_funding(
        donors, [float(first_time[i]) for i in wanted], seed=seed, round_start=float(d.time.min()) if d.size else 0.0,
        campaigns={bytes.fromhex(a[2:]): c for a, c in campaigns.items()}, token=token,
        token_needs={donors[k]: int(needs[i] * 10**18) for k, i in enumerate(wanted)},
    )  # fmt: skip
    rows = [*(base.rows if base is not None else ()), *drawn.rows]
    sources = [*(base.sources if base is not None else ()), *drawn.sources]
    styles = {"0x" + w.hex(): str(style) for w, style in drawn.styles.items()}
    return FundingGraph(rows, sources), styles


def fit_funding_stage(served: str, data: GateData, rows: npt.NDArray[np.intp], seed: int) -> TreeEnsemble | None:
    """The funding stage trained on ``rows``: XGBoost on the funding features, monotone increasing in each, with
    the base model's *cross-fitted* log-odds as its offset (each row's base score from a model that did not see
    its wallet), so it learns what funding adds beyond what the base model already says. None when the rows hold
    too little funding evidence of both classes to learn from."""
    from xgboost import XGBClassifier  # noqa: PLC0415 - training-only dependency

    evidence_rows = data.funding[rows].any(axis=1)
    y = data.y[rows]
    if (y & evidence_rows).sum() < MIN_FUNDING_EVIDENCE or (~y & evidence_rows).sum() < MIN_FUNDING_EVIDENCE:
        return None
    fold = wallet_half(data.donor, seed + 7)[rows]
    offset = np.zeros(rows.size)
    for side in (True, False):
        fit_on, score_on = rows[fold == side], rows[fold != side]
        base = risk.fit(served, data.x[fit_on], data.y[fit_on], seed, monotone=MONOTONE, weight=data.weight[fit_on])
        p = np.clip(risk.predict(base, data.x[score_on]), 1e-6, 1 - 1e-6)
        offset[fold != side] = np.log(p / (1 - p))
    model = XGBClassifier(
        n_estimators=100, max_depth=3, learning_rate=0.1, min_child_weight=5.0, reg_lambda=5.0, tree_method="hist",
        objective="binary:logistic", random_state=seed, n_jobs=risk.THREADS,
        monotone_constraints=(1,) * N_FUNDING,
    )  # fmt: skip
    model.fit(data.funding[rows], y.astype(np.int64), sample_weight=data.weight[rows], base_margin=offset)
    return from_xgboost(model)


def with_funding(
    data: GateData, held: list[tuple[npt.NDArray[np.intp], FloatArray, str]], stages: dict[str, TreeEnsemble | None]
) -> list[tuple[npt.NDArray[np.intp], FloatArray, str]]:
    """Held-out raw scores raised by each family's funding stage (trained without that family)."""
    out = []
    for rows, raw, family in held:
        stage = stages.get(family)
        if stage is None:
            out.append((rows, raw, family))
            continue
        push = funding_pushes(stage, data.funding[rows])
        out.append((rows, combine_many(raw, push), family))
    return out


def funding_pushes(stage: TreeEnsemble, funding: FloatArray) -> FloatArray:
    """g(f) - g(0) for each row (0 where a row has no evidence), as the served kernel computes it."""
    from qf_sentinel.qf.model.kernels import trees  # noqa: PLC0415 - numba compiles on first use

    args = stage.kernel_args()
    zero = float(trees.margin_row(np.zeros(N_FUNDING), args))
    margins = np.asarray(trees.margin_batch(np.ascontiguousarray(funding), args)) - zero
    return np.where(funding.any(axis=1), np.maximum(margins, 0.0), 0.0)


def combine_many(raw: FloatArray, push: FloatArray) -> FloatArray:
    """:func:`qf.model.gate.combine` over arrays."""
    p = np.clip(raw, 1e-9, 1 - 1e-9)
    out = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + push)))
    return np.where(push > 0, out, raw)


def wallet_half(donor: IntArray, seed: int) -> BoolArray:
    """A seeded half of the wallets (True = the training half of the background), by donor index."""
    n = int(donor.max()) + 1 if donor.size else 0
    halves = np.random.default_rng(seed).random(n) < 0.5
    return halves[donor]


def family_training_rows(data: GateData, family: str, config: GateConfig) -> npt.NDArray[np.intp]:
    """The rows a model held out of ``family`` trains on: half the background wallets and the other families."""
    return np.flatnonzero((~data.y & wallet_half(data.donor, config.seed)) | (data.y & (data.patterns != family)))


def evaluate(data: GateData, config: GateConfig) -> GateEvaluation:
    """Every candidate, leave-one-family-out by wallet (see the module docstring)."""
    out = GateEvaluation()
    y = data.y
    names, counts = np.unique(data.patterns[y & data.first], return_counts=True)
    families = [str(n) for n, c in zip(names, counts, strict=True) if c >= MIN_FAMILY]
    if len(families) < 2:
        raise DataError(f"the gate needs at least two attack families of {MIN_FAMILY}+ wallets, got {families}")
    train_half = wallet_half(data.donor, config.seed)
    background = ~y
    for family in families:
        in_family = data.patterns == family
        train = (background & train_half) | (y & ~in_family)
        test = np.flatnonzero((background & ~train_half) | in_family)
        for name in config.candidates:
            model = risk.fit(name, data.x[train], y[train], config.seed, monotone=MONOTONE, weight=data.weight[train])
            score = risk.predict(model, data.x[test])
            out.held_out.setdefault(name, []).append((test, score, family))
            out.families.setdefault(family, {})[name] = figures(y[test], score, data.first[test])
    return out


def figures(y: BoolArray, score: FloatArray, first: BoolArray) -> dict[str, float]:
    """ROC AUC over first contributions and over all of them."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - training-only dependency

    both = y.any() and (~y).any()
    both_first = y[first].any() and (~y[first]).any()
    return {
        "roc_auc": float(roc_auc_score(y, score)) if both else float("nan"),
        "roc_auc_first": float(roc_auc_score(y[first], score[first])) if both_first else float("nan"),
        "attackers": int(y[first].sum()),
    }


def select(evaluated: GateEvaluation) -> tuple[str, float]:
    """The candidate with the highest mean first-contribution ROC AUC over the held-out families."""

    def mean_auc(name: str) -> float:
        values = [per[name]["roc_auc_first"] for per in evaluated.families.values() if name in per]
        return float(np.nanmean(values)) if values else float("nan")

    names = list(next(iter(evaluated.families.values())))
    served = max(names, key=lambda n: (mean_auc(n), -names.index(n)))
    return served, mean_auc(served)


def thresholds(background: FloatArray, first: BoolArray, config: GateConfig) -> tuple[float, float]:
    """``(review, block)`` on calibrated background scores, holding every rate of :class:`GateConfig`."""
    block = max(config.block_threshold, rate_threshold(background, config.block_rate),
                rate_threshold(background[first], config.block_rate))  # fmt: skip
    review = max(config.review_floor, rate_threshold(background, config.review_rate),
                 rate_threshold(background[first], config.first_review_rate))  # fmt: skip
    return min(review, block), min(block, 1.0)


def calibrate(
    data: GateData, held: list[tuple[npt.NDArray[np.intp], FloatArray, str]], config: GateConfig
) -> tuple[Calibration, tuple[float, float], dict[str, Any]]:
    """Calibration and thresholds from the served model's held-out scores, and the gate per family.

    Per family F, the gate figures use a calibration and thresholds fitted
    without F and measured on background wallets other than those that set
    them (the held-out background is split in two by wallet), as the donor
    model's :func:`qf.train.pipeline.calibrate_gate` does.
    """
    rows = np.concatenate([r for r, _, _ in held])
    raw = np.concatenate([s for _, s, _ in held])
    family_of = np.concatenate([np.full(r.size, f) for r, _, f in held])
    y = data.y[rows]
    first = data.first[rows]
    calibration, calibrated = fit_calibration(raw, y)
    review, block = thresholds(calibrated[~y], first[~y], config)
    quarter = calibration_half(data, config)[rows]
    per_family: dict[str, Any] = {}
    for family in sorted(set(family_of.tolist())):
        cal, (r, b) = family_thresholds(data, held, family, config)
        measure = family_of == family
        attack = measure & y & first
        bg = measure & ~y & ~quarter
        attackers = cal.apply(raw[attack])
        background = cal.apply(raw[bg])
        background_first = cal.apply(raw[bg & first])
        per_family[family] = {
            "attackers": int(attack.sum()),
            "attackers_approved_first": float(np.mean(attackers < r)) if attackers.size else float("nan"),
            "background_held_first": float(np.mean(background_first >= r)),
            "background_blocked_first": float(np.mean(background_first > b)),
            "background_held": float(np.mean(background >= r)),
            "thresholds": [r, b],
        }
    return calibration, (review, block), per_family


def calibration_half(data: GateData, config: GateConfig) -> BoolArray:
    """Per row: its wallet sets per-family thresholds (True) or is measured by them (False)."""
    return wallet_half(data.donor, config.seed + 1)


def family_thresholds(
    data: GateData, held: list[tuple[npt.NDArray[np.intp], FloatArray, str]], family: str, config: GateConfig
) -> tuple[Calibration, tuple[float, float]]:
    """Calibration and ``(review, block)`` for judging ``family`` with the model trained without it.

    The calibration is fitted without the family (the other families' held-out
    attackers against one half of the held-out background wallets,
    :func:`calibration_half`); the thresholds hold their rates on *this* model's
    scores of that half, since they will be applied to this model's scores. The
    other half of the background wallets is what they are measured on.
    """
    rows = np.concatenate([r for r, _, _ in held])
    raw = np.concatenate([s for _, s, _ in held])
    family_of = np.concatenate([np.full(r.size, f) for r, _, f in held])
    y = data.y[rows]
    setting = calibration_half(data, config)[rows]
    fit_rows = (family_of != family) & (y | setting)
    cal, _ = fit_calibration(raw[fit_rows], y[fit_rows])
    own = (family_of == family) & ~y & setting
    return cal, thresholds(cal.apply(raw[own]), data.first[rows][own], config)


def train_gate(dataset: Dataset, config: GateConfig, data: GateData | None = None) -> TrainedGate:
    """Evaluate, select, calibrate, fit the served candidate on everything and export it (parity-checked)."""
    rows = gate_data(dataset) if data is None else data
    if rows.y.all() or not rows.y.any():
        raise DataError("the contribution gate needs attackers' and background contributions")
    evaluated = evaluate(rows, config)
    served, mean_auc = select(evaluated)
    held = evaluated.held_out[served]
    stage: TreeEnsemble | None = None
    funding_manifest: dict[str, Any] | None = None
    if rows.has_funding:
        stages = {family: fit_funding_stage(served, rows, family_training_rows(rows, family, config), config.seed)
                  for family in evaluated.families}  # fmt: skip
        held = with_funding(rows, held, stages)
        stage = fit_funding_stage(served, rows, np.arange(rows.size), config.seed)
        funding_manifest = {
            "feature_names": list(FUNDING_FEATURES), "monotone": "increasing in every feature",
            "rule": "log-odds of the base model plus max(0, g(f) - g(0)); g is XGBoost on the funding features "
                    "with the base model's cross-fitted log-odds as offset",
            "rows_with_evidence": int(rows.funding.any(axis=1).sum()),
        } if stage is not None else None  # fmt: skip
    calibration, (review, block), per_family = calibrate(rows, held, config)
    final = risk.fit(served, rows.x, rows.y, config.seed, monotone=MONOTONE, weight=rows.weight)
    arrays = risk.export(served, final)
    parity = _max_diff(_kernel_scores(arrays, rows.x), risk.predict(final, rows.x))
    manifest = {
        "served_model": served,
        "selection_criterion": SELECTION_CRITERION,
        "mean_held_out_roc_auc_first": mean_auc,
        "feature_names": list(live.CONTRIBUTION_FEATURES),
        "monotone_decreasing": sorted(live.MONOTONE_DECREASING),
        "thresholds": {"review": review, "block": block},
        "threshold_policy": {
            "review_rate": config.review_rate, "first_review_rate": config.first_review_rate,
            "block_rate": config.block_rate, "review_floor": config.review_floor,
            "block_threshold": config.block_threshold,
            "rule": "review: the lowest threshold sending at most review_rate of held-out background contributions "
                    "and first_review_rate of their first contributions to review or block (never below "
                    "review_floor); block: the nominal threshold raised until at most block_rate of both are above",
        },
        "families": {
            family: {"roc_auc_first": per[served]["roc_auc_first"], "roc_auc": per[served]["roc_auc"],
                     **per_family.get(family, {})}
            for family, per in evaluated.families.items()
        },
        "candidates": {
            name: float(np.nanmean([per[name]["roc_auc_first"] for per in evaluated.families.values()]))
            for name in config.candidates
        },
        "training_rows": {"contributions": rows.size, "attack_contributions": int(rows.y.sum()),
                          "wallets": int(np.unique(rows.donor).size)},
        "row_weight": "1/sqrt(contributions of the wallet)",
    }  # fmt: skip
    if funding_manifest is not None:
        manifest["funding"] = funding_manifest
    return TrainedGate(served=served, arrays=arrays, calibration=calibration, thresholds=(review, block),
                       manifest=manifest, parity=parity, funding=stage)  # fmt: skip


def _max_diff(a: FloatArray, b: FloatArray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0


def _kernel_scores(arrays: TreeEnsemble | LinearModel, x: FloatArray) -> FloatArray:
    from qf_sentinel.qf.model.kernels import trees  # noqa: PLC0415 - numba compiles on first use

    if isinstance(arrays, LinearModel):
        return np.asarray(trees.linear_score_batch(x, arrays.kernel_args()))
    return np.asarray(trees.score_batch(x, arrays.kernel_args()))
