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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from qf.errors import DataError
from qf.model import live
from qf.model.arrays import LinearModel, TreeEnsemble
from qf.model.calibration import Calibration
from qf.model.dataset import Dataset
from qf.train import risk
from qf.train.calibration import fit_calibration, rate_threshold

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
#: A family needs this many wallets to be held out.
MIN_FAMILY = 5
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

    @property
    def size(self) -> int:
        return int(self.y.size)


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


def gate_data(dataset: Dataset) -> GateData:
    """Every donation of ``dataset`` as a training row: features as of just before it, its wallet's label."""
    x = live.replay_features(live.contributions_of(dataset))
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
        first=first, weight=1.0 / np.sqrt(counts[d.donor]),
    )  # fmt: skip


def wallet_half(donor: IntArray, seed: int) -> BoolArray:
    """A seeded half of the wallets (True = the training half of the background), by donor index."""
    n = int(donor.max()) + 1 if donor.size else 0
    halves = np.random.default_rng(seed).random(n) < 0.5
    return halves[donor]


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
    calibration, (review, block), per_family = calibrate(rows, evaluated.held_out[served], config)
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
    return TrainedGate(served=served, arrays=arrays, calibration=calibration, thresholds=(review, block),
                     manifest=manifest, parity=parity)  # fmt: skip


def _max_diff(a: FloatArray, b: FloatArray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0


def _kernel_scores(arrays: TreeEnsemble | LinearModel, x: FloatArray) -> FloatArray:
    from qf.model.kernels import trees  # noqa: PLC0415 - numba compiles on first use

    if isinstance(arrays, LinearModel):
        return np.asarray(trees.linear_score_batch(x, arrays.kernel_args()))
    return np.asarray(trees.score_batch(x, arrays.kernel_args()))
