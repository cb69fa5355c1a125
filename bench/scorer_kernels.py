"""The scorer's numba hot path against the native libraries, in-process, in the same run.

    .venv/bin/python bench/scorer_kernels.py [--rows 20000] [--repeats 2000]

A seeded synthetic problem (18 features, like the served feature vector, 20,000
rows, 20% positives). Fitted once each: XGBoost and LightGBM with 100 trees of
depth 6, scikit-learn's Isolation Forest with 200 trees, and an item-item
similarity over 600 projects. Timed, median of ``--repeats`` calls after a
warm-up (numba compiles or loads its cache there):

* single row: ``trees.score_row`` vs XGBoost ``inplace_predict`` and LightGBM
  ``predict`` on one row; ``iforest.score_samples_row`` vs ``score_samples``;
  ``topk.recommend_topk`` vs a straightforward numpy top-k;
* batch: rows/s of ``trees.score_batch`` vs the libraries' batch predict.

Every pair is checked to agree (1e-6) before it is timed. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.datasets import make_classification
from sklearn.ensemble import IsolationForest
from xgboost import XGBClassifier

from qf_sentinel.qf.model.kernels import iforest, topk, trees
from qf_sentinel.qf.train.export import from_isolation_forest, from_lightgbm, from_xgboost


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def numpy_topk(similarity: np.ndarray, popularity: np.ndarray, pool_of: np.ndarray, history: np.ndarray,
               pool: int, k: int) -> np.ndarray:  # fmt: skip
    """The straightforward version: score every project, mask, argsort."""
    scores = similarity[history].sum(axis=0).astype(np.float64)
    scores[history] = -np.inf
    scores[pool_of != pool] = -np.inf
    order = np.lexsort((np.arange(scores.size), -scores))
    return order[:k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    x, y = make_classification(n_samples=args.rows, n_features=18, n_informative=10, weights=[0.8], random_state=0)
    row = np.ascontiguousarray(x[0])
    out: dict[str, Any] = {"rows": args.rows, "repeats": args.repeats}

    xgb = XGBClassifier(n_estimators=100, max_depth=6, tree_method="hist", n_jobs=1, random_state=0).fit(x, y)
    lgbm = LGBMClassifier(n_estimators=100, max_depth=6, num_leaves=63, n_jobs=1, verbose=-1, random_state=0).fit(x, y)
    forest = IsolationForest(n_estimators=200, random_state=0, n_jobs=1).fit(x)
    booster = xgb.get_booster()
    for name, model, exported, native_row, native_batch in (
        ("xgboost", xgb, from_xgboost(xgb), lambda: booster.inplace_predict(row[None, :]),
         lambda: booster.inplace_predict(x)),
        ("lightgbm", lgbm, from_lightgbm(lgbm), lambda: lgbm.booster_.predict(row[None, :]),
         lambda: lgbm.booster_.predict(x)),
    ):  # fmt: skip
        # The plain tuple, as the sidecar passes it (see qf.model.kernels.trees).
        kernel_args = tuple(exported.kernel_args())
        np.testing.assert_allclose(trees.score_batch(x, kernel_args), model.predict_proba(x)[:, 1], atol=1e-6)
        kernel_row = median_seconds(lambda a=kernel_args: trees.score_row(row, a), args.repeats)
        lib_row = median_seconds(native_row, args.repeats)
        kernel_batch = median_seconds(lambda a=kernel_args: trees.score_batch(x, a), 20)
        lib_batch = median_seconds(native_batch, 20)
        out[name] = {
            "single_row_us": {"numba": kernel_row * 1e6, "library": lib_row * 1e6, "speedup": lib_row / kernel_row},
            "batch_rows_per_s": {
                "numba": args.rows / kernel_batch,
                "library": args.rows / lib_batch,
                "speedup": lib_batch / kernel_batch,
            },
        }

    iso = from_isolation_forest(forest)
    iso_args: dict[str, Any] = iso.kernel_args()
    np.testing.assert_allclose(iforest.score_samples_batch(x[:2000], **iso_args), forest.score_samples(x[:2000]),
                               atol=1e-9)  # fmt: skip
    iso_positional = tuple(iso_args.values())
    kernel = median_seconds(lambda: iforest.score_samples_row(row, *iso_positional), args.repeats)
    lib = median_seconds(lambda: forest.score_samples(row[None, :]), max(50, args.repeats // 20))
    out["isolation_forest"] = {"single_row_us": {"numba": kernel * 1e6, "library": lib * 1e6, "speedup": lib / kernel}}

    rng = np.random.default_rng(0)
    projects = 600
    similarity = rng.random((projects, projects), dtype=np.float32) * (rng.random((projects, projects)) < 0.05)
    similarity = np.ascontiguousarray((similarity + similarity.T) / 2, dtype=np.float32)
    np.fill_diagonal(similarity, 0.0)
    popularity = rng.integers(0, 500, projects).astype(np.float32)
    pool_of = (np.arange(projects) % 3).astype(np.int64)
    history = np.array([3, 17, 42, 99, 150], dtype=np.int64)
    got, _, _ = topk.recommend_topk(similarity, popularity, pool_of, history, 0, 5)
    want = numpy_topk(similarity, popularity, pool_of, history, 0, 5)
    assert list(got) == list(want), (got, want)
    kernel = median_seconds(lambda: topk.recommend_topk(similarity, popularity, pool_of, history, 0, 5), args.repeats)
    lib = median_seconds(lambda: numpy_topk(similarity, popularity, pool_of, history, 0, 5), args.repeats)
    out["topk"] = {"single_call_us": {"numba": kernel * 1e6, "numpy": lib * 1e6, "speedup": lib / kernel}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
