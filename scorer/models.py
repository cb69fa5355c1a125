"""The model version being served: loaded, verified, warmed up and swapped in as one immutable bundle.

A training run (:mod:`qf.train.pipeline`) writes a version directory;
:func:`load_bundle` reads it (:func:`qf.model.bundle.read_bundle`), then runs
every numba kernel once, so the first request does not pay for compilation,
and checks that a cold-start donor gets a finite score in [0, 1]. Any problem
is a :class:`scorer.errors.ModelError` naming the version, never a server path.

:class:`ModelStore` holds the bundle being served. Readers take one reference
per request (``store.current()``) and use only that, so a concurrent
:meth:`ModelStore.swap` never mixes two versions inside one answer.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np

from qf_sentinel.qf.errors import QFError
from qf_sentinel.qf.model import artifacts
from qf_sentinel.qf.model.bundle import ModelBundle, Thresholds, read_bundle
from qf_sentinel.scorer import engine, validation
from qf_sentinel.scorer.errors import ModelError, NotReady

__all__ = ["ModelBundle", "ModelStore", "Thresholds", "load_bundle", "resolve_version"]


def load_bundle(version_dir: Path, *, thresholds: Thresholds | None = None) -> ModelBundle:
    """Verify, load, warm up and self-check a version directory; any problem raises :class:`ModelError`.

    ``thresholds`` overrides the manifest's (the server's configuration wins).
    """
    try:
        bundle = read_bundle(Path(version_dir), thresholds)
    except QFError as exc:  # verification and shape checks: the message names the version already
        raise ModelError(_scrubbed(str(exc), Path(version_dir))) from exc
    except Exception as exc:  # a bad zip, a missing key, a malformed array: whatever it is, refuse the version
        reason = _scrubbed(f"{type(exc).__name__}: {exc}", Path(version_dir))
        raise ModelError(f"cannot load model version: {reason}", version_dir=Path(version_dir)) from exc
    _warm_up_and_check(bundle)
    return bundle


def _scrubbed(message: str, version_dir: Path) -> str:
    """``message`` with the server's paths of the version replaced by its name (it reaches clients)."""
    for shown in sorted({str(version_dir.resolve()), str(version_dir)}, key=len, reverse=True):
        message = message.replace(shown, version_dir.name)
    return message


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
        return load_bundle(resolve_version(Path(root), version), thresholds=self._thresholds)


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
