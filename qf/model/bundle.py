"""A model version as one immutable bundle of plain arrays: what the engine reads on every request.

:func:`read_bundle` turns a version directory (:mod:`qf.model.artifacts`) into a
:class:`ModelBundle`, refusing anything that cannot be served exactly: a file
whose hash differs from the manifest, a model file the manifest does not cover,
a feature order other than :data:`qf.model.features.FEATURE_NAMES`, arrays of
the wrong width. The fields the hot path needs (kernel arguments in each
kernel's parameter order, the pool and project indices, the cold-start row)
are derived here once, so no request builds a dictionary. Warming the kernels
up and the serving checks are the sidecar's (:mod:`scorer.models`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.model import artifacts, features
from qf_sentinel.qf.model.arrays import (
    AnomalyScaler,
    ClusterCenters,
    IsolationForestArrays,
    LinearModel,
    LofArrays,
    TreeEnsemble,
)  # fmt: skip
from qf_sentinel.qf.model.calibration import Calibration
from qf_sentinel.qf.model.gate import GateModel, load_gate
from qf_sentinel.qf.model.kernels import iforest, lof
from qf_sentinel.qf.model.recommender import RecommenderArrays

FloatArray = npt.NDArray[np.float64]


def projects_key(project_ids: Sequence[str]) -> str:
    """A fingerprint of a recommender's project list: snapshot and model agree on indices iff keys are equal."""
    digest = hashlib.sha256()
    for key in project_ids:
        digest.update(key.encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Risk score cut-offs: below ``review`` approve, up to ``block`` review, above ``block`` block."""

    review: float
    block: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.review) and math.isfinite(self.block) and 0.0 <= self.review <= self.block <= 1.0):
            raise ConfigError(f"thresholds need 0 <= review <= block <= 1, got {self.review} and {self.block}")


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """Everything one model version serves with, as plain arrays; build it with :meth:`load`.

    The arrays are shared, not copied, by every request: never write to them.
    The fields after ``feature_names`` are derived once at load time so the
    hot path does no dictionary building or argument marshalling.
    """

    version: str
    version_dir: Path
    manifest: Mapping[str, Any]
    served_model: str
    risk: TreeEnsemble | LinearModel
    #: raw model probability -> calibrated risk
    calibration: Calibration
    #: the unsupervised coordination model behind the ``coordination_anomaly`` feature
    coordination: IsolationForestArrays
    iforest: IsolationForestArrays
    lof: LofArrays
    scaler_mean: FloatArray
    scaler_scale: FloatArray
    recommender: RecommenderArrays
    cluster_centers: FloatArray
    thresholds: Thresholds
    feature_names: tuple[str, ...]
    #: the risk model's kernel argument as a plain tuple (typed in C by numba, see qf.model.kernels.trees)
    risk_args: tuple[Any, ...] = field(repr=False)
    #: positional arguments after the row, in each anomaly kernel's own parameter order
    iforest_args: tuple[Any, ...] = field(repr=False)
    lof_args: tuple[Any, ...] = field(repr=False)
    #: Allo pool id -> pool index of ``recommender.project_pool``
    pool_index: Mapping[int, int] = field(repr=False)
    #: "pool_id:0xrecipient" -> project index, and the 0x recipient id of each project index
    project_index: Mapping[str, int] = field(repr=False)
    recipients: tuple[str, ...] = field(repr=False)
    projects_key: str = field(repr=False)
    cold_row: FloatArray = field(repr=False)
    #: ``coordination_anomaly`` of full feature rows, by the exported kernel (what training used)
    coordination_score: features.CoordinationScore = field(repr=False)
    #: that column for a donor never seen (its coordination features are all 0, whatever it gives)
    cold_anomaly: float = field(repr=False)
    #: the contribution gate (point-in-time model); None for a version trained before it existed
    gate: GateModel | None = field(default=None, repr=False)

    @property
    def linear(self) -> bool:
        return isinstance(self.risk, LinearModel)

    @property
    def chain_id(self) -> int | None:
        chain = self.manifest.get("chain_id")
        return int(chain) if chain is not None else None

    @property
    def content_sha256(self) -> str:
        return str(self.manifest.get("content_sha256", ""))

    @property
    def trained_at(self) -> str:
        return str(self.manifest.get("created_at", ""))


def read_bundle(version_dir: Path, override: Thresholds | None = None) -> ModelBundle:
    """Verify a version directory and read it into a bundle; ``override`` replaces the manifest's thresholds.

    Raises :class:`qf.errors.DataError` naming the version for anything that
    does not fit (and lets a malformed file's own error through).
    """
    manifest = artifacts.verify(version_dir)

    def fail(message: str) -> DataError:
        return DataError(f"{version_dir.name}: {message}")

    names = tuple(manifest.get("feature_names", ()))
    if names != features.FEATURE_NAMES:
        raise fail(f"feature names {list(names)} differ from the scorer's {list(features.FEATURE_NAMES)}")
    covered = set(manifest.get("model_files", ()))
    missing = [name for name in artifacts.MODEL_FILES if name not in covered]
    if missing:
        raise fail(f"the manifest's model files do not include {', '.join(missing)}")

    served = str(manifest.get("served_model", ""))
    risk_file = version_dir / "risk.npz"
    risk: TreeEnsemble | LinearModel = (
        LinearModel.load(risk_file) if served == "logistic" else TreeEnsemble.load(risk_file)
    )
    calibration = Calibration.load(version_dir / "calibration.npz")
    coordination = IsolationForestArrays.load(version_dir / "coordination.npz")
    forest = IsolationForestArrays.load(version_dir / "isolation_forest.npz")
    neighbours = LofArrays.load(version_dir / "lof.npz")
    scaler = AnomalyScaler.load(version_dir / "anomaly_scaler.npz")
    centers = ClusterCenters.load(version_dir / "clusters.npz")
    recommender = RecommenderArrays.load(version_dir / "recommender.npz")

    width = len(features.FEATURE_NAMES)
    widths = {
        "risk.npz": risk.n_features,
        "isolation_forest.npz": forest.n_features,
        "lof.npz": neighbours.n_features,
        "anomaly_scaler.npz": scaler.n_features,
        "clusters.npz": centers.n_features,
    }
    wrong = {name: n for name, n in widths.items() if n != width}
    if coordination.n_features != len(features.COORDINATION_COLUMNS):
        wrong["coordination.npz"] = coordination.n_features
    if wrong:
        raise fail(f"arrays of the wrong width (expected {width} features): {wrong}")

    configured_override = override is not None
    if override is None:
        configured = manifest.get("thresholds") or {}
        override = Thresholds(float(configured["review"]), float(configured["block"]))

    pool_index, recipients = _pools(recommender)
    coordination_score = iforest.anomaly_scorer(coordination.kernel_args())
    cold_row = features.cold_start_row()
    cold_anomaly = float(features.coordination_anomaly(cold_row, coordination_score)[0])
    cold_row[-1] = cold_anomaly
    return ModelBundle(
        version=str(manifest.get("version", version_dir.name)),
        version_dir=version_dir,
        manifest=manifest,
        served_model=served,
        risk=risk,
        calibration=calibration,
        coordination=coordination,
        iforest=forest,
        lof=neighbours,
        scaler_mean=scaler.mean,
        scaler_scale=scaler.scale,
        recommender=recommender,
        cluster_centers=centers.centers,
        thresholds=override,
        feature_names=names,
        risk_args=tuple(risk.kernel_args()),
        iforest_args=_positional(iforest.score_samples_row, forest),
        lof_args=_positional(lof.score_samples_row, neighbours),
        pool_index=pool_index,
        project_index={key: i for i, key in enumerate(recommender.project_ids)},
        recipients=recipients,
        projects_key=projects_key(recommender.project_ids),
        cold_row=cold_row,
        coordination_score=coordination_score,
        cold_anomaly=cold_anomaly,
        gate=_with_thresholds(load_gate(version_dir, dict(manifest)), override if configured_override else None),
    )


def _with_thresholds(gate: GateModel | None, thresholds: Thresholds | None) -> GateModel | None:
    """The gate with the server's configured thresholds (QF_SCORER_*_THRESHOLD), which win over the manifest's."""
    if gate is None or thresholds is None:
        return gate
    return dataclasses.replace(gate, review=thresholds.review, block=thresholds.block)


def _positional(kernel: Callable[..., Any], arrays: Any) -> tuple[Any, ...]:
    """``arrays.kernel_args()`` in the kernel's parameter order (after the row), checked by name."""
    args: dict[str, Any] = arrays.kernel_args()
    names = list(inspect.signature(getattr(kernel, "py_func", kernel)).parameters)[1:]
    if set(names) != set(args):
        raise ValueError(f"{type(arrays).__name__} arguments {sorted(args)} do not fit the kernel's {names}")
    return tuple(args[name] for name in names)


def _pools(recommender: RecommenderArrays) -> tuple[dict[int, int], tuple[str, ...]]:
    """Allo pool id -> recommender pool index, and each project's recipient id, from "pool_id:0xrecipient" keys."""
    pools: dict[int, int] = {}
    recipients = []
    for key, pool in zip(recommender.project_ids, recommender.project_pool.tolist(), strict=True):
        pool_id, sep, recipient = key.partition(":")
        if not sep or not pool_id.isdigit() or not recipient.startswith("0x"):
            raise ValueError(f"recommender project id {key!r} is not 'pool_id:0xrecipient'")
        if pools.setdefault(int(pool_id), pool) != pool:
            raise ValueError(f"pool {pool_id} maps to two recommender pools")
        recipients.append(recipient)
    return pools, tuple(recipients)
