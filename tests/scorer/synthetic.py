"""A small labelled round made of numpy arrays, and real model versions trained on it without a database.

:func:`synthetic_dataset` builds a :class:`qf.train.dataset.Dataset` the way
:func:`qf.train.dataset.load_dataset` would return it: honest donors spread
over time, two sybil patterns (``fan_out``: fresh wallets giving round amounts
to the same few projects in the same blocks; ``ring``: wallets giving each
other's projects identical amounts again and again), each in an early and a
late wave so the time split has both classes on both sides, and a few
unlabelled donors. The SQL feature columns are computed from the donations
with the meaning ``qf.donor_features`` gives them.

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

from qf.train import artifacts, risk
from qf.train.dataset import SQL_FEATURES, Dataset, Donations
from qf.train.export import LinearModel, TreeEnsemble
from qf.train.pipeline import TrainConfig, train

CHAIN_ID = 31337
CONFIG = TrainConfig(n_boot=50, folds=3)
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
    frame = _sql_features(table, len(donors))
    frame.insert(0, "address", [a for a, _, _ in donors])
    frame["first_block"] = table.groupby("donor")["block"].min().to_numpy()
    frame["last_block"] = table.groupby("donor")["block"].max().to_numpy()
    frame["labelled"] = [label is not None for _, label, _ in donors]
    frame["is_sybil"] = [bool(label) for _, label, _ in donors]
    frame["pattern"] = [pattern for _, _, pattern in donors]
    frame["source"] = ["synthetic" if label is not None else None for _, label, _ in donors]

    ids = project_ids()
    donations = Donations(
        donor=table["donor"].to_numpy(np.int64),
        project=table["project"].to_numpy(np.int64),
        amount=table["amount"].to_numpy(np.float64),
        block=table["block"].to_numpy(np.int64),
        order=(table["block"] * 100_000 + table["log"]).to_numpy(np.int64),
        project_pool=np.repeat(np.arange(len(POOLS), dtype=np.int64), PROJECTS_PER_POOL),
        project_ids=ids,
    )
    labelled = int(frame["labelled"].sum())
    return Dataset(chain_id=CHAIN_ID, donors=frame, donations=donations, label_sources={"synthetic": labelled})


def _sql_features(table: pd.DataFrame, n_donors: int) -> pd.DataFrame:
    """The qf.donor_features columns of each donor, from its donations (one row per donor, in donor order)."""
    out: dict[str, list[float]] = {name: [] for name in SQL_FEATURES}
    same_block = table.groupby(["block", "project"])["donor"].transform("nunique") > 1
    for d in range(n_donors):
        mine = table[table["donor"] == d]
        amounts = mine["amount"].to_numpy()
        seconds = mine["block"].to_numpy() * SECONDS_PER_BLOCK
        per_project = mine.groupby("project")["amount"].sum()
        first_nonce = float(mine["nonce"].iloc[0])
        values = {
            "donation_count": len(mine),
            "total_amount": amounts.sum(),
            "mean_amount": amounts.mean(),
            "amount_stddev": amounts.std(),
            "distinct_projects": per_project.size,
            "distinct_pools": len(set(mine["project"] // PROJECTS_PER_POOL)),
            "distinct_tokens": 1.0,
            "active_seconds": float(seconds.max() - seconds.min()),
            "first_nonce": first_nonce,
            "fresh_wallet": float(first_nonce < 3),
            "median_gap_seconds": float(np.median(np.diff(seconds))) if len(mine) > 1 else np.nan,
            "round_amount_share": float(np.mean(amounts % 0.5 == 0)),
            "same_block_codonations": float(same_block[mine.index].sum()),
            "top_project_share": per_project.max() / amounts.sum(),
            "gas_price_distinct": mine["gas"].nunique(),
        }
        for name in SQL_FEATURES:
            out[name].append(float(values[name]))
    return pd.DataFrame(out)


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


def native_probability(model: Any, x: np.ndarray) -> np.ndarray:
    """P(sybil) from the library, whichever library the model belongs to."""
    kind = type(model).__module__.split(".")[0]
    if kind == "xgboost":
        import xgboost  # noqa: PLC0415

        return np.asarray(model.predict(xgboost.DMatrix(x)), dtype=np.float64)
    if kind == "lightgbm":
        return np.asarray(model.predict(x), dtype=np.float64)
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)


def republish(version_dir: Path, root: Path, *, risk_arrays: TreeEnsemble | LinearModel, served: str) -> Path:
    """A new version under ``root``: ``version_dir`` with other risk arrays and served model, hashed afresh."""
    staging = artifacts.staging_dir(root)
    shutil.copytree(version_dir, staging, dirs_exist_ok=True)
    risk_arrays.save(staging / "risk.npz")
    manifest = json.loads((staging / artifacts.MANIFEST).read_text())
    model_files = manifest["model_files"]
    manifest = {k: v for k, v in manifest.items() if k not in _PUBLISHED_KEYS} | {"served_model": served}
    (staging / artifacts.MANIFEST).unlink()
    return artifacts.publish(staging, root, manifest, model_files=model_files)


def serve_other_model(version_dir: Path, root: Path, served: str) -> Path:
    """A version serving candidate ``served``, exported from the native model the run saved for it."""
    arrays = risk.export(served, native_model(version_dir, served))
    return republish(version_dir, root, risk_arrays=arrays, served=served)
