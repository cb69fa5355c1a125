"""Risk model candidates: XGBoost and LightGBM against logistic-regression and random-forest baselines.

Every candidate is built by one function from a seed and the training labels,
so each split trains the same recipe. Class imbalance is handled with class
weights, not resampling: every real donor stays in the data exactly once (no
synthetic or duplicated sybils leaking across folds), and the weights make the
minority class count as much as the majority in the loss. The price is that
scores are not calibrated to the round's base rate; the report's calibration
plot shows by how much, and the serving thresholds apply to these scores.

Wallet history may raise risk but never lower it: the trees are constrained
to be non-increasing in ``first_nonce`` and non-decreasing in ``fresh_wallet``
(:data:`MONOTONE`), and the logistic baseline does not see those two columns. A round
whose real donors are all fresh (a replay), or
attackers with aged wallets, must not teach "old wallet = sybil", and history
alone cannot make an otherwise ordinary donor look coordinated. The boosters are
regularised (at least 20 donors per leaf, half the features per tree) so that no
single feature carries the whole decision.

All candidates run with fixed seeds and a fixed thread count, so a run is
reproducible bit for bit (a requirement of the versioned artifacts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.model.arrays import LinearModel, TreeEnsemble
from qf_sentinel.qf.model.features import FEATURE_NAMES
from qf_sentinel.qf.train.export import from_lightgbm, from_logistic, from_random_forest, from_xgboost

FloatArray = npt.NDArray[np.float64]
CANDIDATES: tuple[str, ...] = ("xgboost", "lightgbm", "logistic", "random_forest")
#: The served model generalises best to attack families it was not trained on.
SELECTION_CRITERION = (
    "highest mean ROC AUC over the leave-one-family-out splits (each held-out attack family against held-out "
    "background donors, never in-distribution k-fold); ties go to the earlier of " + ", ".join(CANDIDATES)
)
#: One thread per model: with OpenMP's spin-waiting, two threads on a machine whose other core is busy made
#: one LightGBM or XGBoost fit 40x slower (measured); the runs are small enough for one core.
THREADS = 1


def monotone(feature_names: tuple[str, ...]) -> list[int]:
    """Per feature: -1 risk may not rise with it, +1 may not fall, 0 free (wallet history only raises risk)."""
    return [{"first_nonce": -1, "fresh_wallet": 1}.get(name, 0) for name in feature_names]


#: The monotone constraints of the model's feature order.
MONOTONE = monotone(FEATURE_NAMES)


def _positive_weight(y: npt.NDArray[np.bool_], weight: FloatArray | None = None) -> float:
    w = np.ones(y.size) if weight is None else weight
    positives = float(w[y].sum())
    return float(w[~y].sum()) / positives if positives else 1.0


def build(
    name: str, y: npt.NDArray[np.bool_], seed: int, *, monotone: list[int] | None = None,
    weight: FloatArray | None = None,
) -> Any:  # fmt: skip
    """An unfitted candidate, weighted for the class balance of ``y`` (under the row weights, if any).

    ``monotone`` defaults to the donor model's :data:`MONOTONE`; the contribution gate passes its own.
    """
    mono = MONOTONE if monotone is None else monotone
    if name == "xgboost":
        from xgboost import XGBClassifier  # noqa: PLC0415 - heavy import only when training

        return XGBClassifier(
            n_estimators=200, max_depth=4, learning_rate=0.08, subsample=0.8, colsample_bytree=0.5,
            min_child_weight=5.0, reg_lambda=5.0, scale_pos_weight=_positive_weight(y, weight), tree_method="hist",
            objective="binary:logistic", eval_metric="aucpr", random_state=seed, n_jobs=THREADS,
            monotone_constraints=tuple(mono),
        )  # fmt: skip
    if name == "lightgbm":
        from lightgbm import LGBMClassifier  # noqa: PLC0415

        return LGBMClassifier(
            n_estimators=200, num_leaves=15, learning_rate=0.05, subsample=0.8, subsample_freq=1,
            colsample_bytree=0.5, min_child_samples=20, reg_lambda=5.0, scale_pos_weight=_positive_weight(y, weight),
            monotone_constraints=mono, random_state=seed, n_jobs=THREADS, deterministic=True,
            force_row_wise=True, verbose=-1,
        )  # fmt: skip
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
        from sklearn.pipeline import make_pipeline  # noqa: PLC0415
        from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

        return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier  # noqa: PLC0415

        return RandomForestClassifier(
            n_estimators=100, min_samples_leaf=5, max_features="sqrt", class_weight="balanced_subsample",
            monotonic_cst=mono, random_state=seed, n_jobs=THREADS,
        )
    raise ConfigError(f"unknown risk model {name!r}; choose from {', '.join(CANDIDATES)}")


def fit(
    name: str, x: FloatArray, y: npt.NDArray[np.bool_], seed: int, *, monotone: list[int] | None = None,
    weight: FloatArray | None = None,
) -> Any:  # fmt: skip
    """Fit a candidate; ``weight`` is a per-row sample weight (the gate weighs each wallet, not each row)."""
    mono = MONOTONE if monotone is None else monotone
    model = build(name, y, seed, monotone=mono, weight=weight)
    if name == "logistic":
        # A linear model cannot be held monotone: it never sees wallet history (constant columns get weight 0).
        x = np.array(x, dtype=np.float64)
        x[:, [i for i, c in enumerate(mono) if c]] = 0.0
    if weight is None:
        model.fit(x, y.astype(np.int64))
    elif name == "logistic":
        model.fit(x, y.astype(np.int64), logisticregression__sample_weight=weight)
    else:
        model.fit(x, y.astype(np.int64), sample_weight=weight)
    return model


def predict(model: Any, x: FloatArray) -> FloatArray:
    """P(sybil) per row, from the library itself (the reference the exported arrays must match)."""
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)


def export(name: str, model: Any) -> TreeEnsemble | LinearModel:
    """The flat arrays the scorer's numba kernels evaluate."""
    exporters: dict[str, Callable[[Any], TreeEnsemble | LinearModel]] = {
        "xgboost": from_xgboost,
        "lightgbm": from_lightgbm,
        "logistic": from_logistic,
        "random_forest": from_random_forest,
    }
    return exporters[name](model)


def importance(name: str, model: Any, feature_names: tuple[str, ...]) -> dict[str, float]:
    """Feature importance normalised to sum 1: gain for the boosters, impurity for the forest, |coef| for LR."""
    if name == "logistic":
        raw = np.abs(model[-1].coef_[0])
    elif name == "xgboost":
        scores = model.get_booster().get_score(importance_type="total_gain")
        raw = np.array([scores.get(f"f{i}", 0.0) for i in range(len(feature_names))])
    elif name == "lightgbm":
        raw = np.asarray(model.booster_.feature_importance(importance_type="gain"), dtype=np.float64)
    else:
        raw = np.asarray(model.feature_importances_, dtype=np.float64)
    total = float(raw.sum())
    values = raw / total if total > 0 else raw
    return {n: float(v) for n, v in zip(feature_names, values, strict=True)}


def save_native(name: str, model: Any, directory: Any) -> str:
    """Save in the library's own format; returns the file name."""
    if name == "xgboost":
        file = "risk_xgboost.json"
        model.get_booster().save_model(str(directory / file))
    elif name == "lightgbm":
        file = "risk_lightgbm.txt"
        model.booster_.save_model(str(directory / file))
    else:
        import joblib  # noqa: PLC0415

        file = f"risk_{name}.joblib"
        joblib.dump(model, directory / file)
    return file
