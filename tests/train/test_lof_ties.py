"""LOF with duplicate rows and equal distances: one tie rule in the export, the kernel and the training check.

The reference here is written from Breunig et al.'s definitions with plain
numpy, one row at a time: the k-distance neighbourhood of a point is every
other point no farther than its k-th nearest one. Fit-side arrays, kernel
scores and the numpy reference of :mod:`qf.train.anomaly` must all equal it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

from qf_sentinel.qf.model.arrays import LofArrays
from qf_sentinel.qf.model.kernels import lof
from qf_sentinel.qf.train import anomaly, export, pipeline
from qf_sentinel.qf.train import lof as lof_training

Array = np.ndarray[Any, Any]


@dataclasses.dataclass(frozen=True)
class Reference:
    k_distance: Array
    lrd: Array
    members: list[Array]  # each training point's neighbours, ascending
    score_samples: Array  # of the queries


def squared_to(row: Array, points: Array) -> Array:
    """Squared distances from ``row`` to every point, summed feature by feature as the kernel does."""
    squared = np.zeros(len(points))
    for f in range(points.shape[1]):
        diff = row[f] - points[:, f]
        squared += diff * diff
    return squared


def reference(fit_x: Array, n_neighbors: int, queries: Array) -> Reference:
    """Breunig et al.'s LOF (plus scikit-learn's 1e-10), every tie at the k-th distance inside the neighbourhood."""
    n = len(fit_x)
    k_distance = np.empty(n)
    members, reach_to = [], []
    for i in range(n):
        squared = squared_to(fit_x[i], fit_x)
        squared[i] = np.inf  # a point is not its own neighbour
        k_squared = np.sort(squared)[n_neighbors - 1]
        members.append(np.flatnonzero(squared <= k_squared))
        reach_to.append(np.sqrt(squared[members[-1]]))
        k_distance[i] = math.sqrt(k_squared)
    lrd = np.array(
        [1.0 / (np.mean(np.maximum(d, k_distance[m])) + 1e-10) for m, d in zip(members, reach_to, strict=True)]
    )
    scores = np.empty(len(queries))
    for q, row in enumerate(queries):
        squared = squared_to(row, fit_x)
        near = np.flatnonzero(squared <= np.sort(squared)[n_neighbors - 1])
        lrd_row = 1.0 / (np.mean(np.maximum(np.sqrt(squared[near]), k_distance[near])) + 1e-10)
        scores[q] = -np.mean(lrd[near] / lrd_row)
    return Reference(k_distance, lrd, members, scores)


def lattice(side: int, dims: int) -> Array:
    """Integer grid points: distinct points at many exactly equal distances."""
    axes = np.meshgrid(*[np.arange(side, dtype=np.float64)] * dims, indexing="ij")
    return np.stack(axes, axis=-1).reshape(-1, dims)


def kernel_scores(arrays: LofArrays, x: Array) -> Array:
    return np.asarray(lof.score_samples_batch(np.ascontiguousarray(x), **arrays.kernel_args()))


def assert_equal_scores(actual: Array, expected: Array) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def crowded() -> Array:
    """A lattice, 2000 copies of one of its points, 600 of two others, and a few off-grid points."""
    grid = lattice(6, 3)
    rng = np.random.default_rng(3)
    return np.vstack([grid, np.repeat(grid[[7]], 2000, axis=0), np.repeat(grid[[40, 90]], 300, axis=0),
                      rng.uniform(-1.0, 6.0, size=(60, 3))])  # fmt: skip


@pytest.fixture(scope="module")
def queries(crowded: Array) -> Array:
    """Training rows (duplicates included), half-way points, random and far rows."""
    rng = np.random.default_rng(4)
    grid = lattice(6, 3)
    return np.vstack(
        [crowded[::7], grid + 0.5, grid[:50] + np.array([0.5, 0.0, 0.0]), rng.uniform(-3.0, 9.0, size=(200, 3))]
    )


# --- the rule, on the raw rows (duplicates kept) --------------------------------------------------------------------


def test_kernel_equals_reference_with_thousands_of_duplicates(crowded: Array, queries: Array) -> None:
    """Fitted on rows with thousands of copies (k-distance 0, lrd 1e10), export and kernel still follow the rule."""
    model = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(crowded)
    arrays = export.from_lof(model)
    expected = reference(crowded, 20, queries)
    np.testing.assert_array_equal(arrays.k_distance, expected.k_distance)
    np.testing.assert_allclose(arrays.lrd, expected.lrd, rtol=1e-12)
    assert arrays.lrd.max() == pytest.approx(1e10)  # the pathology the distinct fit below removes
    assert_equal_scores(kernel_scores(arrays, queries), expected.score_samples)


def test_neighbourhoods_hold_every_tie(crowded: Array) -> None:
    """The exported neighbourhoods are exactly the reference's sets, however many points tie at the k-th distance."""
    neighbourhoods = lof_training.lof_neighbourhoods(crowded, 20)
    expected = reference(crowded, 20, crowded[:0])
    sizes = neighbourhoods.sizes
    assert sizes.max() > 1000  # a copy of a duplicated row has every other copy at distance 0
    assert (sizes > 20).mean() > 0.5
    for i in range(0, len(crowded), 3):
        found = neighbourhoods.indices[neighbourhoods.indptr[i] : neighbourhoods.indptr[i + 1]]
        np.testing.assert_array_equal(found, expected.members[i])
    np.testing.assert_array_equal(np.sqrt(neighbourhoods.radius), expected.k_distance)


def test_scores_do_not_depend_on_the_order_of_training_rows(crowded: Array, queries: Array) -> None:
    """Shuffling the training rows changes scikit-learn's scores (ties), not the exported ones."""
    order = np.random.default_rng(5).permutation(len(crowded))
    models = [LocalOutlierFactor(n_neighbors=20, novelty=True).fit(x) for x in (crowded, crowded[order])]
    library = [m.decision_function(queries) for m in models]
    assert np.max(np.abs(library[0] - library[1])) > 1e-3
    ours = [kernel_scores(export.from_lof(m), queries) for m in models]
    np.testing.assert_allclose(ours[0], ours[1], rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(*[st.integers(0, 3)] * 3), min_size=4, max_size=60),
    n_neighbors=st.integers(1, 12),
    offsets=st.lists(st.tuples(*[st.sampled_from([-0.5, 0.0, 0.5, 1.0])] * 3), min_size=1, max_size=20),
)
def test_kernel_equals_reference_on_small_grids(
    points: list[tuple[int, ...]], n_neighbors: int, offsets: list[tuple[float, ...]]
) -> None:
    """On any small integer data set (duplicates and ties everywhere), kernel and export follow the rule."""
    fit_x = np.asarray(points, dtype=np.float64)
    k = min(n_neighbors, len(fit_x) - 1)
    arrays = export.from_lof(LocalOutlierFactor(n_neighbors=k, novelty=True).fit(fit_x))
    shifted = np.asarray(offsets)[: len(fit_x)]
    x = np.vstack([fit_x, fit_x[: len(shifted)] + shifted])
    expected = reference(fit_x, k, x)
    np.testing.assert_array_equal(arrays.k_distance, expected.k_distance)
    np.testing.assert_allclose(arrays.lrd, expected.lrd, rtol=1e-12)
    assert_equal_scores(kernel_scores(arrays, x), expected.score_samples)


def test_rows_that_cannot_be_scored_score_nan(crowded: Array) -> None:
    """NaN or an infinity in a row gives NaN, as the old kernel did (scikit-learn refuses such rows)."""
    arrays = export.from_lof(LocalOutlierFactor(n_neighbors=5, novelty=True).fit(crowded[:300]))
    rows = np.array([[np.nan, 0.0, 0.0], [0.0, np.inf, 0.0], [1.0, 1.0, 1.0]])
    scores = kernel_scores(arrays, rows)
    assert np.isnan(scores[:2]).all()
    assert np.isfinite(scores[2])


def test_arrays_with_non_finite_densities_are_refused(crowded: Array) -> None:
    """A file whose densities a kernel cannot use is refused at load, before any request."""
    arrays = export.from_lof(LocalOutlierFactor(n_neighbors=5, novelty=True).fit(crowded[:300]))
    broken = arrays.lrd.copy()
    broken[3] = np.nan
    with pytest.raises(export.UnsupportedModel, match="lrd"):
        dataclasses.replace(arrays, lrd=broken)


# --- the training fit: distinct rows ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def donors() -> Array:
    """Donor-like features: small counts, 5000 identical one-donation donors, and amounts with many equal values."""
    rng = np.random.default_rng(6)
    n = 8000
    x = rng.lognormal(0.0, 1.2, size=(n, 8))
    x[:, :3] = rng.integers(1, 5, size=(n, 3))
    x[:, 3] = np.round(x[:, 3])
    x[:5000] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 2.0, 3.0]
    return x


def test_distinct_fit_removes_the_infinite_density(donors: Array) -> None:
    """Fitting on distinct rows leaves one point per feature row: k-distances above 0 and no lrd of 1e10."""
    models = anomaly.fit(donors, seed=0)
    z = models.scaler.transform(donors)
    arrays = export.from_lof(models.lof.estimator)
    assert len(arrays.fit_x) == len(np.unique(z, axis=0)) <= len(z) - 4999
    assert arrays.k_distance.min() > 0
    assert arrays.lrd.max() < 1e3
    expected = reference(arrays.fit_x, arrays.n_neighbors, z[::11])
    np.testing.assert_allclose(arrays.lrd, expected.lrd, rtol=1e-12)
    assert_equal_scores(kernel_scores(arrays, z[::11]), expected.score_samples)
    assert_equal_scores(models.lof.score_samples(z[::11]), expected.score_samples)
    raw = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(z)
    assert raw._lrd.max() == pytest.approx(1e10)


def test_distinct_fit_does_not_depend_on_row_order(donors: Array) -> None:
    """Shuffled donors give bit-identical exported arrays: the distinct rows are sorted, ties need no order.

    (The scaler's mean and scale may move by an ulp with the order; this holds the scaled rows fixed.)
    """
    z = anomaly.Scaler.fit(donors).transform(donors)
    order = np.random.default_rng(7).permutation(len(z))
    first, second = (export.from_lof(anomaly.DistinctLof.fit(rows).estimator) for rows in (z, z[order]))
    for field in ("fit_x", "k_distance", "lrd"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert (first.n_neighbors, first.offset) == (second.n_neighbors, second.offset)


def test_too_few_distinct_rows_is_a_data_error() -> None:
    """One distinct feature row has no neighbours: training says so instead of failing inside scikit-learn."""
    with pytest.raises(anomaly.DataError, match="distinct"):
        anomaly.DistinctLof.fit(np.ones((50, 4)))


def test_tie_free_rows_are_scikit_learn_scores() -> None:
    """Where no distance ties, the kernel is scikit-learn's LOF; the tie-free mask finds those rows, and only those."""
    rng = np.random.default_rng(8)
    z = np.vstack([rng.normal(size=(1500, 3)), lattice(5, 3) + 4.0])
    model = anomaly.DistinctLof.fit(z)
    arrays = export.from_lof(model.estimator)
    x = np.vstack([z, rng.normal(size=(500, 3)), lattice(5, 3) + 4.5])
    tie_free = model.tie_free(x)
    assert 0.5 < tie_free.mean() < 0.95
    kernel = np.asarray(lof.decision_function_batch(x, **arrays.kernel_args()))
    library = model.estimator.decision_function(x)
    np.testing.assert_allclose(kernel[tie_free], library[tie_free], rtol=0, atol=1e-9)
    assert np.abs(kernel - library)[~tie_free].max() > 1e-3
    np.testing.assert_allclose(kernel, model.decision_function(x), rtol=0, atol=1e-9)


# --- the training check ----------------------------------------------------------------------------------------------


def first_k_decision(x: Array, fit_x: Array, k_distance: Array, lrd: Array, n_neighbors: int, offset: float) -> Array:
    """The old kernel's rule: exactly k neighbours, the lower training index first among equal distances."""
    out = np.empty(len(x))
    for i, row in enumerate(x):
        squared = squared_to(row, fit_x)
        near = np.argsort(squared, kind="stable")[:n_neighbors]
        lrd_row = 1.0 / (np.mean(np.maximum(np.sqrt(squared[near]), k_distance[near])) + 1e-10)
        out[i] = -np.mean(lrd[near] / lrd_row) - offset
    return out


def detectors_on(z: Array) -> anomaly.AnomalyModels:
    """Detectors fitted on an already scaled matrix (the check only reads the detectors and ``z``)."""
    scaler = anomaly.Scaler(mean=np.zeros(z.shape[1]), scale=np.ones(z.shape[1]))
    forest = IsolationForest(n_estimators=20, random_state=0).fit(z)
    return anomaly.AnomalyModels(scaler=scaler, isolation_forest=forest, lof=anomaly.DistinctLof.fit(z))


@pytest.fixture(scope="module")
def tied_z() -> Array:
    """A scaled matrix: lattice rows (ties at most k-th distances), 3000 repeated rows, points among them and a
    separate cloud where nothing ties."""
    grid = lattice(7, 3)
    rng = np.random.default_rng(9)
    return np.vstack([grid, np.repeat(grid[:3], 1000, axis=0), grid + 0.5, rng.normal(3.0, 2.0, size=(400, 3)),
                      rng.normal(20.0, 1.0, size=(400, 3))])  # fmt: skip


def test_training_check_passes_with_ties(tied_z: Array, tmp_path: Path) -> None:
    """On tie-heavy data the exported LOF meets the check, and the saved file scores as the check saw it."""
    detectors = detectors_on(tied_z)
    parity = pipeline._save_anomaly(detectors, tied_z, tmp_path)
    assert max(parity.values()) <= pipeline.PARITY_TOLERANCE
    assert 0 < detectors.lof.tie_free(tied_z).sum() < len(tied_z)  # both references had rows to compare
    loaded = LofArrays.load(tmp_path / "lof.npz")
    np.testing.assert_allclose(
        lof.decision_function_batch(tied_z, **loaded.kernel_args()), detectors.lof.decision_function(tied_z), atol=1e-9
    )
    library = detectors.lof.estimator.decision_function(tied_z)
    assert np.max(np.abs(library - detectors.lof.decision_function(tied_z))) > 1e-3  # the old check would fail


def test_training_check_catches_the_old_tie_break(
    tied_z: Array, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel that keeps exactly k neighbours (lower index first) fails the check on tied data."""
    monkeypatch.setattr(lof, "decision_function_batch", first_k_decision)
    parity = pipeline._save_anomaly(detectors_on(tied_z), tied_z, tmp_path)
    assert parity["lof"] > 1e-3


def test_training_check_catches_wrong_arrays(tied_z: Array, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exported arrays off by 0.1% in one density, or with a training point moved, fail the check."""
    real = export.from_lof

    def nudged_density(model: LocalOutlierFactor) -> LofArrays:
        arrays = real(model)
        lrd = arrays.lrd.copy()
        lrd[17] *= 1.001
        return dataclasses.replace(arrays, lrd=lrd)

    def moved_point(model: LocalOutlierFactor) -> LofArrays:
        arrays = real(model)
        fit_x = arrays.fit_x.copy()
        fit_x[17, 0] += 1e-3
        return dataclasses.replace(arrays, fit_x=fit_x)

    detectors = detectors_on(tied_z)
    for wrong in (nudged_density, moved_point):
        monkeypatch.setattr(pipeline, "from_lof", wrong)
        assert pipeline._save_anomaly(detectors, tied_z, tmp_path)["lof"] > pipeline.PARITY_TOLERANCE
