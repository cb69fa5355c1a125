"""Exported arrays scored by the numba kernels predict what XGBoost, LightGBM and scikit-learn predict."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from qf_sentinel.qf.model.arrays import (
    COMPARE_LESS,
    COMPARE_LESS_EQUAL,
    IsolationForestArrays,
    LinearModel,
    LofArrays,
    TreeEnsemble,
)
from qf_sentinel.qf.model.errors import UnsupportedModel
from qf_sentinel.qf.model.kernels import iforest, lof, trees
from qf_sentinel.qf.train import export

N_FEATURES = 15
NAN_COLUMN = 3  # ~15% missing
ZERO_COLUMN = 4  # ~20% exact zeros (LightGBM's "Zero" missing type)
ROUNDED_COLUMNS = slice(5, 8)  # one decimal: many rows sit exactly on split values

Array = np.ndarray[Any, Any]


@dataclasses.dataclass(frozen=True)
class Data:
    x_train: Array
    y_train: Array
    x_test: Array

    @property
    def x_train_complete(self) -> Array:
        """Training rows with the missing column filled, for models that refuse NaN."""
        return np.nan_to_num(self.x_train)

    @property
    def x_test_complete(self) -> Array:
        return np.nan_to_num(self.x_test)


@pytest.fixture(scope="module")
def data() -> Data:
    x, y = make_classification(
        n_samples=4000, n_features=N_FEATURES, n_informative=8, n_redundant=3, flip_y=0.05, random_state=11
    )
    rng = np.random.default_rng(11)
    x[:, ROUNDED_COLUMNS] = np.round(x[:, ROUNDED_COLUMNS], 1)
    x[rng.random(len(x)) < 0.15, NAN_COLUMN] = np.nan
    x[rng.random(len(x)) < 0.2, ZERO_COLUMN] = 0.0
    return Data(x_train=x[:2500], y_train=y[:2500], x_test=x[2500:])


def edge_rows(base: Array, feature: Array, threshold: Array, seed: int, n_rows: int = 2000) -> Array:
    """Rows whose features sit on split thresholds or one float64/float32 step either side of them."""
    rng = np.random.default_rng(seed)
    rows = base[rng.integers(len(base), size=n_rows)].copy()
    # A threshold of +inf (scikit-learn's "only NaN goes right") has no float32 neighbours worth testing.
    usable = (feature >= 0) & (np.abs(threshold) < np.finfo(np.float32).max / 2)
    picks = rng.choice(np.flatnonzero(usable), size=(n_rows, 6))
    t = threshold[picks]
    t32 = t.astype(np.float32)
    variants = np.stack(
        [
            t,
            np.nextafter(t, -np.inf),
            np.nextafter(t, np.inf),
            t32.astype(np.float64),
            np.nextafter(t32, np.float32(-np.inf)).astype(np.float64),
            np.nextafter(t32, np.float32(np.inf)).astype(np.float64),
        ]
    )
    values = np.take_along_axis(variants, rng.integers(len(variants), size=(1, *picks.shape)), axis=0)[0]
    rows[np.arange(n_rows)[:, None], feature[picks]] = values
    return rows


def tiny_rows(base: Array, seed: int, n_rows: int = 300) -> Array:
    """Rows with values at and around LightGBM's zero threshold (1e-35f), signed zeros and subnormals."""
    rng = np.random.default_rng(seed)
    zero = export.LIGHTGBM_ZERO_THRESHOLD
    tiny = np.array(
        [0.0, -0.0, 5e-324, -5e-324, 1e-36, -1e-36, zero, -zero, np.nextafter(zero, 1.0), -np.nextafter(zero, 1.0)]
    )
    rows = base[rng.integers(len(base), size=n_rows)].copy()
    mask = rng.random(rows.shape) < 0.3
    rows[mask] = rng.choice(tiny, size=int(mask.sum()))
    return rows


def evaluation_rows(data: Data, ensemble: TreeEnsemble | IsolationForestArrays, seed: int) -> Array:
    """Held-out rows (with NaN and zeros), rows on the model's own split thresholds and rows of tiny values."""
    edges = edge_rows(data.x_test, ensemble.feature, ensemble.threshold, seed)
    return np.ascontiguousarray(np.vstack([data.x_test, edges, tiny_rows(data.x_test, seed)]))


def margins(ensemble: TreeEnsemble, x: Array) -> Array:
    return np.asarray(trees.margin_batch(x, ensemble.kernel_args()))


def scores(ensemble: TreeEnsemble, x: Array) -> Array:
    return np.asarray(trees.score_batch(x, ensemble.kernel_args()))


# --- fitted models (module scope: each is trained once) -------------------------------------------------------------


@pytest.fixture(scope="module")
def xgb_model(data: Data) -> xgb.XGBClassifier:
    model = xgb.XGBClassifier(n_estimators=80, max_depth=5, learning_rate=0.3, random_state=0, n_jobs=2)
    return model.fit(data.x_train, data.y_train)


@pytest.fixture(scope="module")
def lgb_model(data: Data) -> lgb.LGBMClassifier:
    model = lgb.LGBMClassifier(n_estimators=60, num_leaves=24, random_state=0, n_jobs=2, verbose=-1)
    return model.fit(data.x_train, data.y_train)


@pytest.fixture(scope="module")
def forest(data: Data) -> RandomForestClassifier:
    model = RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0)
    return model.fit(data.x_train, data.y_train)


@pytest.fixture(scope="module", params=[(0.6, "auto"), (1.0, 0.05)], ids=["feature-subsets", "all-features"])
def isolation(data: Data, request: pytest.FixtureRequest) -> IsolationForest:
    max_features, contamination = request.param
    model = IsolationForest(
        n_estimators=100, max_samples=256, max_features=max_features, contamination=contamination, random_state=0
    )
    return model.fit(data.x_train)


@pytest.fixture(scope="module")
def lof_model(data: Data) -> LocalOutlierFactor:
    return LocalOutlierFactor(n_neighbors=20, novelty=True).fit(data.x_train_complete)


@pytest.fixture(scope="module")
def logistic(data: Data) -> Any:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000))
    return model.fit(data.x_train_complete, data.y_train)


# --- XGBoost ---------------------------------------------------------------------------------------------------------


def test_xgboost_matches_margin_and_probability(data: Data, xgb_model: xgb.XGBClassifier) -> None:
    """Margins and probabilities equal XGBoost's on NaN, zeros and values on the float32 split points."""
    ensemble = export.from_xgboost(xgb_model)
    x = evaluation_rows(data, ensemble, seed=1)
    np.testing.assert_allclose(margins(ensemble, x), xgb_model.predict(x, output_margin=True), rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores(ensemble, x), xgb_model.predict_proba(x)[:, 1], rtol=0, atol=1e-6)


def test_xgboost_edge_rows_detect_wrong_comparison(data: Data, xgb_model: xgb.XGBClassifier) -> None:
    """The edge rows tell ``<`` from ``<=`` and float32 from float64 inputs, so the parity above means something."""
    ensemble = export.from_xgboost(xgb_model)
    x = evaluation_rows(data, ensemble, seed=1)
    native = xgb_model.predict(x, output_margin=True)
    for wrong in (
        dataclasses.replace(ensemble, comparison=COMPARE_LESS_EQUAL),
        dataclasses.replace(ensemble, float32_inputs=False),
    ):
        assert np.max(np.abs(margins(wrong, x) - native)) > 1e-3


def test_xgboost_saabas_equals_approx_contribs(data: Data, xgb_model: xgb.XGBClassifier) -> None:
    """XGBoost's ``approx_contribs`` is Saabas: the kernel's contributions equal it, bias included."""
    ensemble = export.from_xgboost(xgb_model)
    x = evaluation_rows(data, ensemble, seed=2)[::5]
    native = xgb_model.get_booster().predict(xgb.DMatrix(x), pred_contribs=True, approx_contribs=True)
    ours = np.stack([trees.contributions_row(row, ensemble.kernel_args()) for row in x])
    np.testing.assert_allclose(ours, native, rtol=0, atol=1e-5)


def test_xgboost_regression_and_early_stopping(data: Data) -> None:
    """An identity-link objective keeps base_score as the margin; early stopping keeps only the best rounds."""
    booster = xgb.train(
        {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.2},
        xgb.DMatrix(data.x_train, label=data.y_train * 3.0 + 1.0),
        num_boost_round=50,
    )
    ensemble = export.from_xgboost(booster)
    assert ensemble.link == "identity"
    x = evaluation_rows(data, ensemble, seed=3)
    np.testing.assert_allclose(scores(ensemble, x), booster.predict(xgb.DMatrix(x)), rtol=0, atol=1e-6)

    stopped = xgb.XGBClassifier(n_estimators=300, max_depth=3, learning_rate=0.5, early_stopping_rounds=3)
    stopped.fit(data.x_train[:1800], data.y_train[:1800], eval_set=[(data.x_train[1800:], data.y_train[1800:])])
    assert stopped.best_iteration + 1 < 300
    ensemble = export.from_xgboost(stopped)
    assert ensemble.n_trees == stopped.best_iteration + 1
    np.testing.assert_allclose(scores(ensemble, x), stopped.predict_proba(x)[:, 1], rtol=0, atol=1e-6)


# --- LightGBM --------------------------------------------------------------------------------------------------------


def test_lightgbm_matches_raw_score_and_probability(data: Data, lgb_model: lgb.LGBMClassifier) -> None:
    """Raw scores and probabilities equal LightGBM's, NaN and thresholds included."""
    ensemble = export.from_lightgbm(lgb_model)
    assert set(np.unique(ensemble.missing_type[ensemble.feature >= 0])) == {export.MISSING_AS_ZERO, export.MISSING_NAN}
    x = evaluation_rows(data, ensemble, seed=4)
    np.testing.assert_allclose(margins(ensemble, x), lgb_model.predict(x, raw_score=True), rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores(ensemble, x), lgb_model.predict_proba(x)[:, 1], rtol=0, atol=1e-6)
    for wrong in (
        dataclasses.replace(ensemble, comparison=COMPARE_LESS),
        dataclasses.replace(ensemble, zero_threshold=0.0),  # LightGBM reads |x| <= 1e-35f as 0.0
    ):
        assert np.max(np.abs(margins(wrong, x) - lgb_model.predict(x, raw_score=True))) > 1e-3


@pytest.mark.parametrize(
    ("params", "missing_type"),
    [
        ({"zero_as_missing": True}, export.MISSING_ZERO),
        ({"use_missing": False}, export.MISSING_AS_ZERO),
    ],
    ids=["zero-as-missing", "no-missing"],
)
def test_lightgbm_missing_types(data: Data, params: dict[str, Any], missing_type: int) -> None:
    """Each LightGBM missing type ("Zero": 0 and NaN go the default way; "None": NaN reads as 0) is reproduced."""
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=16, random_state=0, verbose=-1, **params)
    model.fit(data.x_train, data.y_train)
    ensemble = export.from_lightgbm(model)
    assert set(np.unique(ensemble.missing_type[ensemble.feature >= 0])) == {missing_type}
    x = evaluation_rows(data, ensemble, seed=5)
    np.testing.assert_allclose(margins(ensemble, x), model.predict(x, raw_score=True), rtol=0, atol=1e-6)


def test_lightgbm_random_forest_mode_averages(data: Data) -> None:
    """LightGBM's ``rf`` boosting averages its trees, and so does the export."""
    model = lgb.LGBMRegressor(
        boosting_type="rf", n_estimators=25, bagging_freq=1, bagging_fraction=0.7, random_state=0, verbose=-1
    )
    model.fit(data.x_train, data.y_train.astype(float))
    ensemble = export.from_lightgbm(model)
    assert (ensemble.aggregation, ensemble.link) == ("mean", "identity")
    x = evaluation_rows(data, ensemble, seed=6)
    np.testing.assert_allclose(scores(ensemble, x), model.predict(x), rtol=0, atol=1e-6)


def test_lightgbm_categorical_split_is_refused() -> None:
    """A categorical split cannot be walked by a numerical kernel: the export says so."""
    rng = np.random.default_rng(0)
    category = rng.integers(0, 5, 600)
    x = np.column_stack([category, rng.normal(size=600)]).astype(float)
    model = lgb.LGBMClassifier(n_estimators=2, num_leaves=4, min_data_per_group=5, min_child_samples=5, verbose=-1)
    model.fit(x, np.isin(category, [1, 3]).astype(int), categorical_feature=[0])
    with pytest.raises(ValueError, match="categorical"):
        export.from_lightgbm(model)


# --- scikit-learn ----------------------------------------------------------------------------------------------------


def test_random_forest_matches_predict_proba(data: Data, forest: RandomForestClassifier) -> None:
    """The mean of per-tree P(class 1) equals ``predict_proba``, with float32 inputs compared to float64 splits."""
    ensemble = export.from_random_forest(forest)
    x = evaluation_rows(data, ensemble, seed=7)
    native = forest.predict_proba(x)[:, 1]
    np.testing.assert_allclose(scores(ensemble, x), native, rtol=0, atol=1e-6)
    wrong = dataclasses.replace(ensemble, float32_inputs=False)
    assert np.max(np.abs(scores(wrong, x) - native)) > 1e-4


def test_isolation_forest_matches_scores(data: Data, isolation: IsolationForest) -> None:
    """Kernel scores equal ``score_samples`` and ``decision_function``, with and without feature subsets."""
    arrays = export.from_isolation_forest(isolation)
    x = evaluation_rows(data, arrays, seed=8)
    args = arrays.kernel_args()
    np.testing.assert_allclose(iforest.score_samples_batch(x, **args), isolation.score_samples(x), rtol=0, atol=1e-6)
    native = isolation.decision_function(x)
    np.testing.assert_allclose(iforest.decision_function_batch(x, **args), native, rtol=0, atol=1e-6)


def test_lof_matches_novelty_scores(data: Data, lof_model: LocalOutlierFactor) -> None:
    """Without distance ties, brute-force neighbours give LOF's novelty scores exactly, training points too."""
    arrays = export.from_lof(lof_model)
    x = np.ascontiguousarray(np.vstack([data.x_test_complete, data.x_train_complete[:300], 4.0 * data.x_test[:200]]))
    x = np.nan_to_num(x)
    args = arrays.kernel_args()
    np.testing.assert_allclose(arrays.lrd, lof_model._lrd, rtol=1e-12)
    np.testing.assert_allclose(lof.score_samples_batch(x, **args), lof_model.score_samples(x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        lof.decision_function_batch(x, **args), lof_model.decision_function(x), rtol=0, atol=1e-9
    )


@pytest.mark.parametrize(
    ("n_features", "contamination"), [(18, "auto"), (30, "auto"), (15, 0.05)], ids=["brute-18", "brute-30", "offset"]
)
def test_lof_matches_other_searches_and_offsets(n_features: int, contamination: Any) -> None:
    """Parity holds when scikit-learn searches by brute force (over 15 features, as for the donor features) and
    when ``contamination`` sets the offset from the training scores."""
    x, _ = make_classification(n_samples=3000, n_features=n_features, n_informative=8, random_state=12)
    model = LocalOutlierFactor(n_neighbors=20, novelty=True, contamination=contamination).fit(x[:2000])
    assert model._fit_method == ("brute" if n_features > 15 else "kd_tree")
    arrays = export.from_lof(model)
    assert arrays.offset == pytest.approx(model.offset_, abs=1e-12)
    queries = np.ascontiguousarray(np.vstack([x[2000:], x[:300]]))
    native = model.decision_function(queries)
    np.testing.assert_allclose(lof.decision_function_batch(queries, **arrays.kernel_args()), native, rtol=0, atol=1e-9)


def test_lof_needs_euclidean_novelty(data: Data) -> None:
    """Other metrics and non-novelty LOF are refused rather than scored wrongly."""
    x = data.x_train_complete[:300]
    with pytest.raises(ValueError, match="euclidean"):
        export.from_lof(LocalOutlierFactor(n_neighbors=10, novelty=True, metric="manhattan").fit(x))
    with pytest.raises(ValueError, match="novelty"):
        export.from_lof(LocalOutlierFactor(n_neighbors=10).fit(x))


def test_logistic_matches_predict_proba(data: Data, logistic: Any) -> None:
    """Standardise-then-logistic equals the pipeline's ``predict_proba`` and ``decision_function``."""
    model = export.from_logistic(logistic)
    x = data.x_test_complete
    args = model.kernel_args()
    np.testing.assert_allclose(trees.linear_score_batch(x, args), logistic.predict_proba(x)[:, 1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(trees.linear_margin_batch(x, args), logistic.decision_function(x), rtol=0, atol=1e-6)


def test_unsupported_models_are_refused(data: Data) -> None:
    """Models the kernels cannot reproduce raise a ValueError naming the problem."""
    multiclass = xgb.XGBClassifier(n_estimators=2, max_depth=2).fit(data.x_train, np.arange(len(data.x_train)) % 3)
    with pytest.raises(ValueError, match="several outputs"):
        export.from_xgboost(multiclass)
    with pytest.raises(ValueError, match="missing"):
        export.from_xgboost(xgb.XGBClassifier(n_estimators=2, missing=0.0).fit(data.x_train, data.y_train))
    categorical = pd.DataFrame(data.x_train_complete)
    categorical[0] = pd.Categorical(np.digitize(data.x_train_complete[:, 0], [-1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="categorical"):
        export.from_xgboost(xgb.XGBClassifier(n_estimators=2, enable_categorical=True).fit(categorical, data.y_train))
    with pytest.raises(ValueError, match="RandomForestClassifier"):
        export.from_random_forest(IsolationForest(n_estimators=2).fit(data.x_train_complete))


# --- all exports -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensembles(
    xgb_model: xgb.XGBClassifier, lgb_model: lgb.LGBMClassifier, forest: RandomForestClassifier
) -> dict[str, TreeEnsemble]:
    return {
        "xgboost": export.from_xgboost(xgb_model),
        "lightgbm": export.from_lightgbm(lgb_model),
        "random_forest": export.from_random_forest(forest),
    }


@pytest.mark.parametrize(("kind", "atol"), [("xgboost", 1e-5), ("lightgbm", 1e-9), ("random_forest", 1e-9)])
def test_contributions_add_up_to_margin(data: Data, ensembles: dict[str, TreeEnsemble], kind: str, atol: float) -> None:
    """Saabas contributions plus the bias give the margin (XGBoost's margin is a float32 sum, hence its tolerance)."""
    ensemble = ensembles[kind]
    x = evaluation_rows(data, ensemble, seed=9)[::10]
    contributions = np.stack([trees.contributions_row(row, ensemble.kernel_args()) for row in x])
    assert contributions.shape == (len(x), N_FEATURES + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), margins(ensemble, x), rtol=0, atol=atol)
    assert np.count_nonzero(contributions[:, :N_FEATURES]) > len(x)


def test_linear_contributions_add_up_to_margin(data: Data, logistic: Any) -> None:
    """``coef * standardised x`` plus the intercept is the logistic margin."""
    model = export.from_logistic(logistic)
    args = model.kernel_args()
    for row in data.x_test_complete[:200]:
        contributions = trees.linear_contributions_row(row, args)
        assert contributions[-1] == model.intercept
        assert contributions.sum() == pytest.approx(trees.linear_margin_row(row, args), abs=1e-12)


def test_row_kernels_equal_batch_kernels(
    data: Data,
    ensembles: dict[str, TreeEnsemble],
    isolation: IsolationForest,
    lof_model: LocalOutlierFactor,
    logistic: Any,
) -> None:
    """The single-row kernels the request path calls give exactly the batch results."""
    x = data.x_test[:100]
    complete = data.x_test_complete[:100]
    for ensemble in ensembles.values():
        args = ensemble.kernel_args()
        assert [trees.score_row(row, args) for row in x] == list(trees.score_batch(x, args))
        assert [trees.margin_row(row, args) for row in x] == list(trees.margin_batch(x, args))
    args = export.from_isolation_forest(isolation).kernel_args()
    assert [iforest.decision_function_row(row, **args) for row in x] == list(iforest.decision_function_batch(x, **args))
    args = export.from_lof(lof_model).kernel_args()
    assert [lof.score_samples_row(row, **args) for row in complete] == list(lof.score_samples_batch(complete, **args))
    args = export.from_logistic(logistic).kernel_args()
    assert [trees.linear_score_row(row, args) for row in complete] == list(trees.linear_score_batch(complete, args))


def test_npz_round_trip_predicts_identically(
    tmp_path: Path,
    data: Data,
    ensembles: dict[str, TreeEnsemble],
    isolation: IsolationForest,
    lof_model: LocalOutlierFactor,
    logistic: Any,
) -> None:
    """Saving to ``.npz`` and loading back gives the same fields and bit-identical predictions."""
    x, complete = data.x_test, data.x_test_complete
    for name, ensemble in ensembles.items():
        ensemble.save(tmp_path / f"{name}.npz")
        loaded = TreeEnsemble.load(tmp_path / f"{name}.npz")
        assert_same_fields(ensemble, loaded)
        np.testing.assert_array_equal(scores(loaded, x), scores(ensemble, x))

    arrays = export.from_isolation_forest(isolation)
    arrays.save(tmp_path / "iforest.npz")
    loaded_forest = IsolationForestArrays.load(tmp_path / "iforest.npz")
    assert_same_fields(arrays, loaded_forest)
    np.testing.assert_array_equal(
        iforest.decision_function_batch(x, **loaded_forest.kernel_args()),
        iforest.decision_function_batch(x, **arrays.kernel_args()),
    )

    lof_arrays = export.from_lof(lof_model)
    lof_arrays.save(tmp_path / "lof.npz")
    loaded_lof = LofArrays.load(tmp_path / "lof.npz")
    assert_same_fields(lof_arrays, loaded_lof)
    np.testing.assert_array_equal(
        lof.score_samples_batch(complete, **loaded_lof.kernel_args()),
        lof.score_samples_batch(complete, **lof_arrays.kernel_args()),
    )

    linear = export.from_logistic(logistic)
    linear.save(tmp_path / "linear.npz")
    loaded_linear = LinearModel.load(tmp_path / "linear.npz")
    assert_same_fields(linear, loaded_linear)
    np.testing.assert_array_equal(
        trees.linear_score_batch(complete, loaded_linear.kernel_args()),
        trees.linear_score_batch(complete, linear.kernel_args()),
    )


def assert_same_fields(saved: Any, loaded: Any) -> None:
    for field in dataclasses.fields(saved):
        before, after = getattr(saved, field.name), getattr(loaded, field.name)
        if isinstance(before, np.ndarray):
            assert before.dtype == after.dtype
            np.testing.assert_array_equal(before, after)
        else:
            assert type(before) is type(after)
            assert before == after


def test_load_refuses_another_kind_and_unsafe_trees(tmp_path: Path, ensembles: dict[str, TreeEnsemble]) -> None:
    """A file of another kind, or trees a kernel could walk out of bounds or forever, never reach a kernel."""
    ensemble = ensembles["lightgbm"]
    ensemble.save(tmp_path / "trees.npz")
    with pytest.raises(UnsupportedModel, match="TreeEnsemble"):
        LofArrays.load(tmp_path / "trees.npz")
    split = int(np.flatnonzero(ensemble.feature >= 0)[0])
    looping = ensemble.left.copy()
    looping[split] = split
    with pytest.raises(UnsupportedModel, match="child"):
        dataclasses.replace(ensemble, left=looping)
    outside = ensemble.right.copy()
    outside[split] = ensemble.feature.size
    with pytest.raises(UnsupportedModel, match="child"):
        dataclasses.replace(ensemble, right=outside)
    unknown_feature = ensemble.feature.copy()
    unknown_feature[split] = N_FEATURES
    with pytest.raises(UnsupportedModel, match="feature"):
        dataclasses.replace(ensemble, feature=unknown_feature)
