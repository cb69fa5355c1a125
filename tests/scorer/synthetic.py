"""A small labelled round made of numpy arrays, and real model versions trained on it without a database.

:func:`synthetic_dataset` builds a :class:`qf.model.dataset.Dataset` the way
:func:`qf.model.loader.load_dataset` would return it: honest donors spread
over time, two sybil patterns (``fan_out``: fresh wallets giving round amounts
to the same few projects in the same blocks; ``ring``: wallets giving each
other's projects identical amounts again and again), each in an early and a
late wave so the time split has both classes on both sides, and a few
unlabelled donors.

:func:`train_version` runs the real training pipeline on it (seconds);
:func:`serve_other_model` republishes a version with another candidate's
risk arrays, so every kind of served model can be tested.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qf_sentinel.qf.model import artifacts
from qf_sentinel.qf.model.arrays import LinearModel, TreeEnsemble
from qf_sentinel.qf.model.dataset import Dataset, assemble_dataset
from qf_sentinel.qf.train import risk
from qf_sentinel.qf.train.pipeline import TrainConfig, train

CHAIN_ID = 31337
CONFIG = TrainConfig(n_boot=50, folds=3, inject=False, gate=False)  # its two labelled patterns are the families
POOLS = (7, 9)  # Allo pool ids
PROJECTS_PER_POOL = 8
SECONDS_PER_BLOCK = 12
#: Keys the publish step adds to a manifest (stripped before republishing).
_PUBLISHED_KEYS = ("format_version", "version", "created_at", "content_sha256", "model_files", "files")


def recipient(pool_index: int, project: int) -> str:
    return "0x" + f"{pool_index:02x}{project:02x}".rjust(40, "a")


def project_ids() -> list[str]:
    """Every project as "pool_id:0xrecipient", pool by pool."""
    return [f"{pool}:{recipient(p, j)}" for p, pool in enumerate(POOLS) for j in range(PROJECTS_PER_POOL)]


def donor_address(i: int) -> str:
    return "0x" + f"{i:08x}".rjust(40, "d")


def synthetic_dataset(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    n_projects = len(POOLS) * PROJECTS_PER_POOL
    popular = np.linspace(3.0, 0.5, PROJECTS_PER_POOL)
    weights = np.tile(popular, len(POOLS))
    weights /= weights.sum()
    rows: list[tuple[int, int, float, int, int, int, int]] = []  # donor, project, amount, block, log, nonce, gas
    donors: list[tuple[str, bool | None, str]] = []  # address, is_sybil (None = unlabelled), pattern

    def add(label: bool | None, pattern: str, gifts: list[tuple[int, float, int]], nonce: int, gas: list[int]) -> None:
        d = len(donors)
        donors.append((donor_address(d), label, pattern))
        for n, (project, value, block) in enumerate(gifts):
            rows.append((d, project, value, block, int(rng.integers(0, 50)), nonce + n, gas[n % len(gas)]))

    for i in range(90):  # honest: a few projects by popularity, varied amounts, spread over the round
        start = int(rng.integers(1000, 3000))
        count = int(rng.integers(1, 7))
        projects = rng.choice(n_projects, size=count, p=weights)
        gifts = [
            (int(p), float(np.round(rng.lognormal(1.5, 1.0), 3)), start + int(rng.integers(0, 80))) for p in projects
        ]
        add(None if i % 9 == 0 else False, "unlabelled" if i % 9 == 0 else "honest", gifts,
            int(rng.integers(5, 400)), [int(g) for g in rng.integers(1, 50, size=count) * 10**8])  # fmt: skip
    for wave, start in enumerate((1100, 2700)):  # fan-out: two clusters of fresh wallets, same 3 projects, same blocks
        targets = [PROJECTS_PER_POOL - 1 - wave, PROJECTS_PER_POOL - 3 - wave, n_projects - 1 - wave]
        for _ in range(8):
            gifts = [(p, 1.0, start + 2 * k) for k, p in enumerate(targets)]
            add(True, "fan_out", gifts, int(rng.integers(0, 2)), [10**9])
    for wave, start in enumerate((1500, 2800)):  # ring: four wallets each, the same two projects, same amount, often
        targets = [PROJECTS_PER_POOL + 2 + wave, PROJECTS_PER_POOL + 4 + wave]
        for _ in range(4):
            gifts = [(targets[k % 2], 5.0, start + 3 * k) for k in range(6)]
            add(True, "ring", gifts, int(rng.integers(2, 20)), [2 * 10**9])

    table = pd.DataFrame(rows, columns=["donor", "project", "amount", "block", "log", "nonce", "gas"])
    table = table.sort_values(["block", "log", "donor"], kind="stable").reset_index(drop=True)
    table["log"] = table.groupby("block").cumcount()  # distinct log positions within a block
    ids = project_ids()
    labels = {a: (bool(label), pattern, "synthetic") for a, label, pattern in donors if label is not None}
    amounts = table["amount"].to_numpy(np.float64)
    return assemble_dataset(
        CHAIN_ID,
        senders=[donors[i][0] for i in table["donor"]],
        projects=[ids[j] for j in table["project"]],
        tokens=[b"t"] * len(table),
        amount=amounts,
        round_amount=(amounts % 0.5 == 0).astype(np.float64),
        time=(table["block"] * SECONDS_PER_BLOCK).to_numpy(np.float64),
        block=table["block"].to_numpy(np.int64),
        log_index=table["log"].to_numpy(np.int64),
        nonce=table["nonce"].to_numpy(np.int64),
        gas_price=table["gas"].to_numpy(np.float64),
        labels=labels,
        label_sources={"synthetic": len(labels)},
    )


def train_version(root: Path, dataset: Dataset | None = None) -> Path:
    """Train a real model version under ``root`` (it becomes LATEST); returns its directory."""
    return train(dataset or synthetic_dataset(), root, CONFIG).version_dir


def native_model(version_dir: Path, served: str) -> Any:
    """The library's own model a version saved for ``served``."""
    if served == "xgboost":
        import xgboost  # noqa: PLC0415 - only the tests that compare with the library pay for it

        booster = xgboost.Booster()
        booster.load_model(str(version_dir / "risk_xgboost.json"))
        return booster
    if served == "lightgbm":
        import lightgbm  # noqa: PLC0415

        return lightgbm.Booster(model_file=str(version_dir / "risk_lightgbm.txt"))
    import joblib  # noqa: PLC0415

    return joblib.load(version_dir / f"risk_{served}.joblib")


def served_features(version_dir: Path, dataset: Dataset) -> np.ndarray:
    """The feature matrix as the version serves it: its own coordination model fills ``coordination_anomaly``."""
    from qf_sentinel.qf.model.arrays import IsolationForestArrays  # noqa: PLC0415
    from qf_sentinel.qf.model.features import feature_matrix  # noqa: PLC0415
    from qf_sentinel.qf.model.kernels.iforest import anomaly_scorer  # noqa: PLC0415

    forest = IsolationForestArrays.load(version_dir / "coordination.npz")
    return feature_matrix(dataset, coordination=anomaly_scorer(forest.kernel_args()))


def calibrated(version_dir: Path, probability: np.ndarray) -> np.ndarray:
    """The version's calibrated risk of raw model probabilities."""
    from qf_sentinel.qf.model.calibration import Calibration  # noqa: PLC0415

    return Calibration.load(version_dir / "calibration.npz").apply(probability)


def native_probability(model: Any, x: np.ndarray) -> np.ndarray:
    """P(sybil) from the library, whichever library the model belongs to."""
    kind = type(model).__module__.split(".")[0]
    if kind == "xgboost":
        import xgboost  # noqa: PLC0415

        return np.asarray(model.predict(xgboost.DMatrix(x)), dtype=np.float64)
    if kind == "lightgbm":
        return np.asarray(model.predict(x), dtype=np.float64)
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)


def republish(
    version_dir: Path, root: Path, *, risk_arrays: TreeEnsemble | LinearModel | None = None, served: str | None = None,
    **manifest_changes: Any,
) -> Path:  # fmt: skip
    """A new version under ``root``: ``version_dir`` with other risk arrays, served model or manifest fields,
    published (hashed and named) afresh as a training run would."""
    staging = artifacts.staging_dir(root)
    shutil.copytree(version_dir, staging, dirs_exist_ok=True)
    if risk_arrays is not None:
        risk_arrays.save(staging / "risk.npz")
    manifest = json.loads((staging / artifacts.MANIFEST).read_text())
    model_files = manifest["model_files"]
    manifest = {k: v for k, v in manifest.items() if k not in _PUBLISHED_KEYS} | manifest_changes
    if served is not None:
        manifest["served_model"] = served
    (staging / artifacts.MANIFEST).unlink()
    return artifacts.publish(staging, root, manifest, model_files=model_files)


def serve_other_model(version_dir: Path, root: Path, served: str) -> Path:
    """A version serving candidate ``served``, exported from the native model the run saved for it."""
    arrays = risk.export(served, native_model(version_dir, served))
    return republish(version_dir, root, risk_arrays=arrays, served=served)
