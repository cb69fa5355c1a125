"""Time the matching formulas on Round 9's shape against straightforward numpy versions.

Builds the contributor x grant matrix of Gitcoin Round 9 (successful rows with
a positive amount, USD summed per pair: 8,131 x 641) from the file in
``data/``, then times, median of 3 after one warm-up call (numba compiles or
loads its cache there):

* standard QF (vectorised) against a per-project numpy loop;
* pairwise (numba kernel over sparse ``sqrt(C)``) against the dense numpy
  reference (``S @ S.T`` once, then one block of donor pairs per project);
* COCM, harsh and Markov, (numba kernel) against the dense transcription of
  Gitcoin's loop (every donor x every cluster for every project).

Each pair must agree to 1e-9 relative; the script prints one JSON object.
Run: ``.venv/bin/python bench/matching_speed.py``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from qf_sentinel.qf.matching.cocm import cocm_funding
from qf_sentinel.qf.matching.pairwise import pairwise_subsidies, pairwise_subsidies_reference
from qf_sentinel.qf.matching.standard import standard_qf
from tests.matching.cocm_reference import cocm_funding_reference

ROUND9 = Path(__file__).resolve().parents[1] / "data" / "gitcoin-round9-contributions.csv.xz"
REPEATS = 3


def round9_matrix() -> np.ndarray:
    """Contributor x grant matrix of summed USD over successful, positive rows."""
    rows = pd.read_csv(ROUND9, usecols=["contributor", "grant", "amount", "success"])
    rows = rows[(rows["success"].astype(str) == "True") & (rows["amount"] > 0)]
    table = rows.pivot_table(index="contributor", columns="grant", values="amount", aggfunc="sum", fill_value=0.0)
    matrix: np.ndarray = table.to_numpy(dtype=np.float64)
    return matrix


def plain_standard(matrix: np.ndarray) -> np.ndarray:
    """Standard QF one project at a time."""
    raw = np.zeros(matrix.shape[1])
    for p in range(matrix.shape[1]):
        column = matrix[:, p]
        raw[p] = max(np.sqrt(column).sum() ** 2 - column.sum(), 0.0)
    return raw


def median_seconds(function: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    result = function()  # warm-up: numba compile or cache load, BLAS threads
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    matrix = round9_matrix()
    cases: dict[str, tuple[Callable[[], np.ndarray], Callable[[], np.ndarray]]] = {
        "standard": (lambda: standard_qf(matrix)[1], lambda: plain_standard(matrix)),
        "pairwise": (lambda: pairwise_subsidies(matrix), lambda: pairwise_subsidies_reference(matrix)),
        "cocm_harsh": (
            lambda: cocm_funding(matrix, variant="harsh"),
            lambda: cocm_funding_reference(matrix, variant="harsh"),
        ),
        "cocm_markov": (
            lambda: cocm_funding(matrix, variant="markov"),
            lambda: cocm_funding_reference(matrix, variant="markov"),
        ),
    }
    report: dict[str, object] = {
        "shape": list(matrix.shape),
        "nonzero": int(np.count_nonzero(matrix)),
        "repeats": REPEATS,
    }
    for name, (fast, plain) in cases.items():
        fast_seconds, fast_result = median_seconds(fast)
        plain_seconds, plain_result = median_seconds(plain)
        np.testing.assert_allclose(fast_result, plain_result, rtol=1e-9, atol=1e-9 * float(np.abs(plain_result).max()))
        report[name] = {
            "seconds": round(fast_seconds, 4),
            "plain_seconds": round(plain_seconds, 4),
            "speedup": round(plain_seconds / fast_seconds, 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
