"""The model version being served: loaded, verified, warmed up and swapped in as one immutable bundle.

A training run (:mod:`qf.train.pipeline`) writes a version directory; this
module turns it into a :class:`ModelBundle` the engine (:mod:`scorer.engine`)
reads on every request. Loading refuses anything it cannot serve exactly:
a file whose hash differs from the manifest (:func:`qf.train.artifacts.verify`),
a model file the manifest does not cover, a feature order other than
:data:`qf.train.features.FEATURE_NAMES` (the scorer computes features in that
order), arrays of the wrong width. It then runs every numba kernel once, so
the first request does not pay for compilation, and checks that a cold-start
donor gets a finite score in [0, 1].

:class:`ModelStore` holds the bundle being served. Readers take one reference
per request (``store.current()``) and use only that, so a concurrent
:meth:`ModelStore.swap` never mixes two versions inside one answer.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qf.errors import ConfigError, QFError
from qf.train import artifacts, features
from qf.train.calibration import Calibration
from qf.train.export import IsolationForestArrays, LinearModel, LofArrays, TreeEnsemble
from qf.train.recommend import RecommenderArrays
from scorer import engine, validation
from scorer.errors import ModelError, NotReady
from scorer.feature_store import projects_key
from scorer.kernels import iforest, lof, trees

FloatArray = npt.NDArray[np.float64]

#: Files a version must hold, each covered by the manifest's content hash.
REQUIRED_FILES = (
    "risk.npz", "calibration.npz", "coordination.npz", "isolation_forest.npz", "lof.npz", "anomaly_scaler.npz",
    "recommender.npz", "clusters.npz",
)  # fmt: skip


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
    #: positional arguments after the row, in each kernel's own parameter order
    risk_args: tuple[Any, ...] = field(repr=False)
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

    @classmethod
    def load(cls, version_dir: Path, *, thresholds: Thresholds | None = None) -> ModelBundle:
        """Verify, load, warm up and self-check a version directory; any problem raises :class:`ModelError`.

        ``thresholds`` overrides the manifest's (the server's configuration wins).
        """
        try:
            bundle = _read(Path(version_dir), thresholds)
        except ModelError:
            raise
        except QFError as exc:  # verification: its message names the version already
            raise ModelError(str(exc)) from exc
        except Exception as exc:  # a bad zip, a missing key, a malformed array: whatever it is, refuse the version
            reason = f"{type(exc).__name__}: {exc}"
            for shown in sorted({str(Path(version_dir).resolve()), str(version_dir)}, key=len, reverse=True):
                reason = reason.replace(shown, Path(version_dir).name)
            raise ModelError(f"cannot load model version: {reason}", version_dir=Path(version_dir)) from exc
        _warm_up_and_check(bundle)
        return bundle

    def with_thresholds(self, thresholds: Thresholds) -> ModelBundle:
        return replace(self, thresholds=thresholds)


def _read(version_dir: Path, override: Thresholds | None) -> ModelBundle:
    manifest = artifacts.verify(version_dir)

    def fail(message: str) -> ModelError:
        return ModelError(message, version_dir=version_dir)

    names = tuple(manifest.get("feature_names", ()))
    if names != features.FEATURE_NAMES:
        raise fail(f"feature names {list(names)} differ from the scorer's {list(features.FEATURE_NAMES)}")
    covered = set(manifest.get("model_files", ()))
    missing = [name for name in REQUIRED_FILES if name not in covered]
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
    with np.load(version_dir / "anomaly_scaler.npz", allow_pickle=False) as data:
        mean = np.ascontiguousarray(data["mean"], dtype=np.float64)
        scale = np.ascontiguousarray(data["scale"], dtype=np.float64)
    with np.load(version_dir / "clusters.npz", allow_pickle=False) as data:
        centers = np.ascontiguousarray(data["centers"], dtype=np.float64)
    recommender = RecommenderArrays.load(version_dir / "recommender.npz")

    width = len(features.FEATURE_NAMES)
    widths = {
        "risk.npz": risk.n_features,
        "isolation_forest.npz": forest.n_features,
        "lof.npz": neighbours.n_features,
        "anomaly_scaler.npz": mean.size if mean.shape == scale.shape and mean.ndim == 1 else -1,
        "clusters.npz": centers.shape[1] if centers.ndim == 2 else -1,
    }
    wrong = {name: n for name, n in widths.items() if n != width}
    if coordination.n_features != len(features.COORDINATION_COLUMNS):
        wrong["coordination.npz"] = coordination.n_features
    if wrong:
        raise fail(f"arrays of the wrong width (expected {width} features): {wrong}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise fail("anomaly_scaler.npz holds a non-finite mean or a non-positive scale")

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
        scaler_mean=mean,
        scaler_scale=scale,
        recommender=recommender,
        cluster_centers=centers,
        thresholds=override,
        feature_names=names,
        risk_args=_positional(trees.linear_margin_row if isinstance(risk, LinearModel) else trees.margin_row, risk),
        iforest_args=_positional(iforest.score_samples_row, forest),
        lof_args=_positional(lof.score_samples_row, neighbours),
        pool_index=pool_index,
        project_index={key: i for i, key in enumerate(recommender.project_ids)},
        recipients=recipients,
        projects_key=projects_key(recommender.project_ids),
        cold_row=cold_row,
        coordination_score=coordination_score,
        cold_anomaly=cold_anomaly,
    )


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


def _warm_up_and_check(bundle: ModelBundle) -> None:
    """Compile every kernel the engine uses, then check a cold-start donor gets a finite score in [0, 1]."""
    try:
        engine.score_row(bundle, np.zeros(len(bundle.feature_names)), cold_start=False)
        margin = engine.risk_margin(bundle, bundle.cold_row)
        raw = engine.link(margin) if bundle.risk.link == "logistic" else margin
        result = engine.score_row(bundle, bundle.cold_row, cold_start=True)
        if bundle.recipients:
            pool = int(bundle.recommender.project_pool[0])
            engine.recommend_history(bundle, np.zeros(0, dtype=np.int64), pool, 5)
            engine.recommend_history(bundle, np.zeros(1, dtype=np.int64), pool, 5)
    except Exception as exc:  # a numba typing error or a kernel fault: refuse the version, whatever it was
        raise ModelError(f"warm-up failed: {type(exc).__name__}: {exc}", version_dir=bundle.version_dir) from exc
    checks = {
        "risk score": result.score,
        "isolation forest score": result.anomaly.iforest_score,
        "LOF score": result.anomaly.lof_score,
    }
    bad = {name: value for name, value in checks.items() if not math.isfinite(value)}
    if bad or not 0.0 <= raw <= 1.0 or not 0.0 <= result.score <= 1.0:
        raise ModelError(
            f"self-check failed: a cold-start donor scores {bad or raw} (need finite, risk in [0, 1])",
            version_dir=bundle.version_dir,
        )


class ModelStore:
    """The bundle being served; swapped atomically, read once per request."""

    def __init__(self, bundle: ModelBundle | None = None, *, thresholds: Thresholds | None = None) -> None:
        self._bundle = bundle
        self._thresholds = thresholds
        self._swap_lock = threading.Lock()
        self._load_lock = threading.Lock()  # one reload at a time: the last one asked for wins, never a mix

    def current(self) -> ModelBundle:
        """The bundle to use for one whole request (a single attribute read: no lock needed)."""
        bundle = self._bundle
        if bundle is None:
            raise NotReady("no model version is loaded yet")
        return bundle

    def swap(self, new: ModelBundle) -> ModelBundle | None:
        """Serve ``new`` from now on; returns the bundle it replaced."""
        with self._swap_lock:
            old, self._bundle = self._bundle, new
        return old

    def load_and_swap(self, root: Path, version: str | None = None) -> tuple[ModelBundle | None, ModelBundle]:
        """Load ``root/version`` (``LATEST`` when None) and swap it in; ``(previous, new)``.

        If anything fails the error propagates and the bundle being served stays.
        """
        with self._load_lock:
            bundle = self.load(root, version)
            return self.swap(bundle), bundle

    def load(self, root: Path, version: str | None = None) -> ModelBundle:
        """Load and verify ``root/version`` (``LATEST`` when None) without serving it yet."""
        return ModelBundle.load(resolve_version(Path(root), version), thresholds=self._thresholds)


def resolve_version(root: Path, version: str | None) -> Path:
    """The directory of ``version`` under ``root`` (``LATEST`` when None or empty); never outside ``root``.

    A version that is a symlink resolving outside the models root is refused,
    and errors name versions, never the server's paths.
    """
    name = validation.model_version(version or "")
    if name is None:
        try:
            return artifacts.latest(root)
        except QFError as exc:
            raise ModelError(str(exc)) from exc
    path = root / name
    if not path.is_dir():
        raise ModelError(f"no model version {name!r} in the models directory")
    if path.resolve().parent != root.resolve():
        raise ModelError(f"model version {name!r} is a link to outside the models directory")
    return path
