"""The contribution gate as served: point-in-time features in, calibrated risk, decision and reasons out.

One :class:`GateModel` is what a model version's ``gate_*.npz`` files hold
(:func:`load_gate`); :meth:`GateModel.decide` is the whole decision, used by the
sidecar (:mod:`scorer.engine`) and by ``qf eval --live`` (:mod:`qf.train.live_eval`)
alike, so the evaluation measures exactly what the sidecar would answer. The
features come from :class:`qf.model.live.LiveState`; the numbers from the numba
kernels of :mod:`qf.model.kernels.trees`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.arrays import LinearModel, TreeEnsemble
from qf_sentinel.qf.model.calibration import Calibration
from qf_sentinel.qf.model.funding_features import FUNDING_FEATURES, N_FUNDING
from qf_sentinel.qf.model.kernels import trees

FloatArray = npt.NDArray[np.float64]
RISK_FILE = "gate_risk.npz"
CALIBRATION_FILE = "gate_calibration.npz"
FUNDING_FILE = "gate_funding.npz"
#: The reason a funding push is reported under (its text comes from qf.model.funding_features.describe).
FUNDING_REASON = "funding"
MANIFEST_KEY = "contribution_gate"
#: How many features a decision names as its reasons.
N_REASONS = 3


class RiskLevel(enum.Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class Decision(enum.Enum):
    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    BLOCK = "BLOCK"


@dataclass(frozen=True, slots=True)
class Push:
    """A feature that pushed the risk margin: its value and its push (positive = riskier)."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True, slots=True)
class GateDecision:
    score: float
    level: RiskLevel
    decision: Decision
    margin: float
    pushes: tuple[Push, ...]


def classify(probability: float, review: float, block: float) -> tuple[RiskLevel, Decision]:
    """Below ``review`` approve, up to ``block`` (inclusive) review, above block; a NaN score blocks."""
    if probability < review:
        return RiskLevel.LOW, Decision.APPROVE
    if probability <= block:
        return RiskLevel.MEDIUM, Decision.REVIEW
    return RiskLevel.HIGH, Decision.BLOCK


@dataclass(frozen=True, eq=False)
class GateModel:
    """The served contribution model: arrays, calibration and thresholds (review, block)."""

    risk: TreeEnsemble | LinearModel
    calibration: Calibration
    review: float
    block: float
    served_model: str
    feature_names: tuple[str, ...] = live.CONTRIBUTION_FEATURES
    #: the funding stage: a model of FUNDING_FEATURES, monotone increasing in each, whose push g(f) - g(0) is
    #: added to the base model's log-odds (None: the version has no funding stage)
    funding: TreeEnsemble | None = None

    def __post_init__(self) -> None:
        if self.risk.n_features != len(self.feature_names):
            raise DataError(f"the gate model reads {self.risk.n_features} features, not {len(self.feature_names)}")
        if not 0.0 <= self.review <= self.block <= 1.0:
            raise DataError(f"gate thresholds need 0 <= review <= block <= 1, got {self.review}, {self.block}")
        object.__setattr__(self, "_args", tuple(self.risk.kernel_args()))
        if self.funding is not None:
            if self.funding.n_features != N_FUNDING:
                raise DataError(f"the gate's funding stage reads {self.funding.n_features} features, not {N_FUNDING}")
            args: Any = tuple(self.funding.kernel_args())
            object.__setattr__(self, "_funding_args", args)
            object.__setattr__(self, "_funding_zero", float(trees.margin_row(np.zeros(N_FUNDING), args)))

    def funding_push(self, funding: FloatArray | None) -> float:
        """What funding evidence adds to the log-odds: g(f) - g(0) >= 0, exactly 0 without evidence."""
        if self.funding is None or funding is None or not funding.any():
            return 0.0
        args: Any = self._funding_args  # type: ignore[attr-defined]
        zero: float = self._funding_zero  # type: ignore[attr-defined]
        return max(0.0, float(trees.margin_row(funding, args)) - zero)

    @property
    def linear(self) -> bool:
        return isinstance(self.risk, LinearModel)

    def margin(self, row: FloatArray) -> float:
        args: Any = self._args  # type: ignore[attr-defined]
        if self.linear:
            return float(trees.linear_margin_row(row, args))
        return float(trees.margin_row(row, args))

    def raw(self, row: FloatArray, funding: FloatArray | None = None) -> tuple[float, float, float]:
        """``(margin, funding push, raw probability)`` before calibration: the base model's probability, raised
        by the funding push in log-odds when there is funding evidence."""
        margin = self.margin(row)
        raw = _logistic(margin) if self.risk.link == "logistic" else margin
        push = self.funding_push(funding)
        if push > 0.0:
            raw = combine(raw, push)
        return margin, push, raw

    def probability(self, row: FloatArray, funding: FloatArray | None = None) -> tuple[float, float]:
        """``(margin, calibrated risk)`` of one feature row (and its funding features, if any)."""
        margin, _, raw = self.raw(row, funding)
        return margin, float(np.interp(raw, self.calibration.x, self.calibration.y))

    def decide(self, row: FloatArray, funding: FloatArray | None = None, *, explain: bool = True) -> GateDecision:
        """Risk, level, decision and (with ``explain``) the features that pushed hardest, funding first if it did."""
        margin, push, raw = self.raw(row, funding)
        probability = float(np.interp(raw, self.calibration.x, self.calibration.y))
        level, decision = classify(probability, self.review, self.block)
        pushes: tuple[Push, ...] = ()
        if explain:
            pushes = self.pushes(row)
            if push > 0.0:
                pushes = (Push(FUNDING_REASON, push, push), *pushes[: N_REASONS - 1])
        return GateDecision(score=probability, level=level, decision=decision, margin=margin, pushes=pushes)

    def pushes(self, row: FloatArray) -> tuple[Push, ...]:
        """The features that pushed the margin hardest: risk-raising ones first (largest first), then lowering ones."""
        args: Any = self._args  # type: ignore[attr-defined]
        if self.linear:
            per = np.asarray(trees.linear_contributions_row(row, args))[:-1]
        else:
            per = np.asarray(trees.contributions_row(row, args))[:-1]
        order = np.lexsort((-np.abs(per), per <= 0))
        chosen = [int(j) for j in order[:N_REASONS] if per[j] != 0]
        return tuple(Push(self.feature_names[j], float(row[j]), float(per[j])) for j in chosen)


def combine(raw: float, push: float) -> float:
    """A probability raised by ``push`` in log-odds (``raw`` clipped away from 0 and 1 first)."""
    p = min(max(raw, 1e-9), 1.0 - 1e-9)
    return _logistic(math.log(p / (1.0 - p)) + push)


def load_gate(version_dir: Path, manifest: dict[str, Any]) -> GateModel | None:
    """The version's gate, or None for a version trained before the gate existed."""
    section = manifest.get(MANIFEST_KEY)
    if not section:
        return None
    names = tuple(section.get("feature_names", ()))
    if names != live.CONTRIBUTION_FEATURES:
        raise DataError(f"{version_dir.name}: gate features {list(names)} differ from the scorer's")
    served = str(section.get("served_model", ""))
    path = version_dir / RISK_FILE
    risk: TreeEnsemble | LinearModel = LinearModel.load(path) if served == "logistic" else TreeEnsemble.load(path)
    thresholds = section.get("thresholds") or {}
    funding = None
    if section.get("funding"):
        names = tuple(section["funding"].get("feature_names", ()))
        if names != FUNDING_FEATURES:
            raise DataError(f"{version_dir.name}: gate funding features {list(names)} differ from the scorer's")
        funding = TreeEnsemble.load(version_dir / FUNDING_FILE)
    return GateModel(
        risk=risk, calibration=Calibration.load(version_dir / CALIBRATION_FILE),
        review=float(thresholds["review"]), block=float(thresholds["block"]), served_model=served, funding=funding,
    )  # fmt: skip


def _logistic(margin: float) -> float:
    if margin >= 0:
        return 1.0 / (1.0 + math.exp(-margin))
    e = math.exp(margin)
    return e / (1.0 + e)
