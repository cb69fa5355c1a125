"""Converters from fitted XGBoost, LightGBM and scikit-learn models to the serving arrays of :mod:`qf.model.arrays`.

Every converter reproduces the library's own arithmetic, not just its idea:
XGBoost and scikit-learn compare ``float32(x)`` against the split, XGBoost sums
its trees in float32 from a float32 base margin, LightGBM compares doubles,
reads inputs within 1e-35 of zero as 0.0 and has three ways of reading a
missing value. The parity tests in ``tests/train/test_parity.py`` hold the
kernels to the libraries' own predictions. LOF departs from its library only
where distances tie, where scikit-learn's answer depends on the order of the
tied points: :func:`from_lof` recomputes the training densities under the tie
rule of :mod:`qf.model.kernels.lof` (``tests/train/test_lof_ties.py``).

Each converter imports its library when it is called. A model the kernels
cannot reproduce raises :class:`qf.model.errors.UnsupportedModel`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.model.arrays import (
    COMPARE_LESS,
    COMPARE_LESS_EQUAL,
    LIGHTGBM_ZERO_THRESHOLD,
    MISSING_AS_ZERO,
    MISSING_NAN,
    MISSING_ZERO,
    FloatArray,
    Int32Array,
    Int64Array,
    IsolationForestArrays,
    LinearModel,
    LofArrays,
    TreeEnsemble,
    UInt8Array,
)
from qf_sentinel.qf.model.errors import UnsupportedModel
from qf_sentinel.qf.train.lof import lof_densities, lof_score_samples

if TYPE_CHECKING:
    from lightgbm import Booster as LightGBMBooster
    from lightgbm import LGBMModel
    from xgboost import Booster as XGBoostBooster
    from xgboost import XGBModel


# --- XGBoost ---------------------------------------------------------------------------------------------------------

_XGBOOST_LOGISTIC = frozenset({"binary:logistic", "reg:logistic"})
_XGBOOST_IDENTITY = frozenset({"binary:logitraw", "reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"})


def from_xgboost(model: XGBoostBooster | XGBModel, *, n_rounds: int | None = None) -> TreeEnsemble:
    """Export a binary or single-output XGBoost ``gbtree`` model.

    ``n_rounds=None`` keeps what the model predicts with by default: every
    round for a ``Booster``, ``best_iteration + 1`` rounds for an early-stopped
    scikit-learn wrapper.
    """
    import xgboost  # noqa: PLC0415 - training-only dependency; see the module docstring

    if isinstance(model, xgboost.XGBModel):
        if not (model.missing is None or math.isnan(model.missing)):
            raise UnsupportedModel(f"XGBoost missing={model.missing!r}: the kernels treat only NaN as missing")
        if n_rounds is None:
            try:
                n_rounds = model.best_iteration + 1
            except AttributeError:  # not early-stopped: all rounds
                n_rounds = None
        booster = model.get_booster()
    elif isinstance(model, xgboost.Booster):
        booster = model
    else:
        raise UnsupportedModel(f"expected an XGBoost Booster or XGBModel, got {type(model).__name__}")
    return from_xgboost_json(json.loads(bytes(booster.save_raw("json"))), n_rounds=n_rounds)


def from_xgboost_json(document: dict[str, Any], *, n_rounds: int | None = None) -> TreeEnsemble:
    """Export the JSON model of ``Booster.save_raw("json")`` (the whole learner, not ``get_dump``)."""
    learner = document["learner"]
    booster = learner["gradient_booster"]
    if booster["name"] != "gbtree":
        raise UnsupportedModel(f"XGBoost booster {booster['name']!r} is not supported (gbtree only)")
    if "c" in learner.get("feature_types", []):  # XGBoost 3 also re-codes categories before splitting
        raise UnsupportedModel("XGBoost models with categorical features are not supported")
    params = learner["learner_model_param"]
    if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) > 1:
        raise UnsupportedModel("XGBoost models with several outputs are not supported")
    objective = learner["objective"]["name"]
    base_score = _xgboost_base_score(params["base_score"])
    if objective in _XGBOOST_LOGISTIC:
        if not 0.0 < base_score < 1.0:
            raise UnsupportedModel(f"XGBoost base_score {base_score} is not a probability")
        # XGBoost keeps base_score as a probability and takes -logf(1.0f / p - 1.0f) in float32. The
        # float64 log of the float32 ratio, rounded, is the correctly rounded logf; numpy's float32 log is not.
        one = np.float32(1.0)
        ratio = one / np.float32(base_score) - one
        base_margin = float(np.float32(-math.log(float(ratio))))
        link = "logistic"
    elif objective in _XGBOOST_IDENTITY:
        base_margin = float(np.float32(base_score))
        link = "identity"
    else:
        raise UnsupportedModel(f"XGBoost objective {objective!r} is not supported")

    model = booster["model"]
    trees = model["trees"]
    if n_rounds is not None:
        indptr = model.get("iteration_indptr") or list(range(len(trees) + 1))
        if not 1 <= n_rounds < len(indptr):
            raise UnsupportedModel(f"n_rounds must be in [1, {len(indptr) - 1}], got {n_rounds}")
        trees = trees[: indptr[n_rounds]]
    if not trees:
        raise UnsupportedModel("the XGBoost model has no trees")
    return _assemble(
        [_xgboost_tree(tree) for tree in trees],
        n_features=int(params["num_feature"]),
        comparison=COMPARE_LESS,
        float32_inputs=True,
        float32_sums=True,
        zero_threshold=0.0,
        base_margin=base_margin,
        link=link,
        aggregation="sum",
    )


def _xgboost_base_score(text: str) -> float:
    # "[5E-1]" since XGBoost 3.1 (a vector, one entry per target), "5E-1" before.
    entries = text.strip("[]").split(",")
    if len(entries) != 1:
        raise UnsupportedModel(f"XGBoost base_score {text!r} has several targets")
    return float(entries[0])


def _xgboost_tree(tree: dict[str, Any]) -> _Tree:
    if any(int(kind) != 0 for kind in tree["split_type"]):
        raise UnsupportedModel(f"XGBoost tree {tree.get('id')} has categorical splits, which are not supported")
    if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
        raise UnsupportedModel("XGBoost vector-leaf (multi-target) trees are not supported")
    left = np.asarray(tree["left_children"], dtype=np.int64)
    is_leaf = left == -1
    # Thresholds and leaves are float32 in XGBoost; the JSON text round-trips through float32.
    conditions = np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64)
    raw = _Tree(
        feature=np.where(is_leaf, -1, np.asarray(tree["split_indices"], dtype=np.int64)),
        threshold=np.where(is_leaf, 0.0, conditions),
        left=left,
        right=np.asarray(tree["right_children"], dtype=np.int64),
        default_left=np.asarray(tree["default_left"], dtype=np.uint8),
        missing_type=np.full(left.size, MISSING_NAN, dtype=np.uint8),
        value=np.where(is_leaf, conditions, 0.0),
    )
    flat = _preorder(raw)
    hessian = np.asarray(tree["sum_hessian"], dtype=np.float32).astype(np.float64)[flat.order]
    # Internal values as XGBoost's approx_contribs uses them: leaf values averaged by hessian (cover).
    value = flat.value
    for node in range(value.size - 1, -1, -1):  # preorder: children come after their parent
        if flat.feature[node] >= 0 and hessian[node] > 0:
            low, high = flat.left[node], flat.right[node]
            value[node] = (value[low] * hessian[low] + value[high] * hessian[high]) / hessian[node]
    return flat


# --- LightGBM --------------------------------------------------------------------------------------------------------

_LIGHTGBM_MISSING = {"None": MISSING_AS_ZERO, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
_LIGHTGBM_IDENTITY = frozenset({"regression", "regression_l1", "huber", "fair", "quantile", "mape"})


def from_lightgbm(model: LightGBMBooster | LGBMModel) -> TreeEnsemble:
    """Export a binary or single-output LightGBM model with numerical splits (best iteration, if any)."""
    import lightgbm  # noqa: PLC0415 - training-only dependency; see the module docstring

    if isinstance(model, lightgbm.LGBMModel):
        booster = model.booster_
    elif isinstance(model, lightgbm.Booster):
        booster = model
    else:
        raise UnsupportedModel(f"expected a LightGBM Booster or LGBMModel, got {type(model).__name__}")
    return from_lightgbm_dump(booster.dump_model())


def from_lightgbm_dump(document: dict[str, Any]) -> TreeEnsemble:
    """Export the dictionary of ``Booster.dump_model()`` (same iterations as ``Booster.predict``)."""
    if int(document.get("num_tree_per_iteration", 1)) != 1 or int(document.get("num_class", 1)) > 1:
        raise UnsupportedModel("LightGBM models with several outputs per iteration are not supported")
    name, *options = str(document["objective"]).split()
    if name == "binary" and options == ["sigmoid:1"]:
        link = "logistic"
    elif name == "cross_entropy" or (name in _LIGHTGBM_IDENTITY and "sqrt" not in options):
        link = "logistic" if name == "cross_entropy" else "identity"
    else:
        raise UnsupportedModel(f"LightGBM objective {document['objective']!r} is not supported")
    trees = document["tree_info"]
    if not trees:
        raise UnsupportedModel("the LightGBM model has no trees")
    return _assemble(
        [_lightgbm_tree(tree) for tree in trees],
        n_features=int(document["max_feature_idx"]) + 1,
        comparison=COMPARE_LESS_EQUAL,
        float32_inputs=False,
        float32_sums=False,
        zero_threshold=LIGHTGBM_ZERO_THRESHOLD,
        base_margin=0.0,  # LightGBM folds the initial score into the first tree
        link=link,
        aggregation="mean" if document.get("average_output") else "sum",
    )


def _lightgbm_tree(tree: dict[str, Any]) -> _Tree:
    if int(tree.get("num_cat", 0)) > 0:
        raise UnsupportedModel(
            f"LightGBM tree {tree.get('tree_index')} has categorical splits, which are not supported"
        )
    names = ("feature", "threshold", "left", "right", "default_left", "missing_type", "value")
    columns: dict[str, list[Any]] = {name: [] for name in names}
    stack: list[tuple[dict[str, Any], int, str]] = [(tree["tree_structure"], -1, "")]
    while stack:  # preorder, iteratively: LightGBM trees can be deeper than Python's recursion limit
        node, parent, side = stack.pop()
        index = len(columns["feature"])
        if parent >= 0:
            columns[side][parent] = index
        if "leaf_coeff" in node:
            raise UnsupportedModel("LightGBM linear trees are not supported")
        is_split = "split_index" in node
        if is_split and node["decision_type"] != "<=":
            raise UnsupportedModel(f"LightGBM split {node['decision_type']!r} (categorical) is not supported")
        columns["feature"].append(int(node["split_feature"]) if is_split else -1)
        columns["threshold"].append(float(node["threshold"]) if is_split else 0.0)
        columns["default_left"].append(bool(node["default_left"]) if is_split else False)
        columns["missing_type"].append(_LIGHTGBM_MISSING[node["missing_type"]] if is_split else MISSING_AS_ZERO)
        columns["value"].append(float(node["internal_value"] if is_split else node["leaf_value"]))
        columns["left"].append(-1)
        columns["right"].append(-1)
        if is_split:
            stack.append((node["right_child"], index, "right"))
            stack.append((node["left_child"], index, "left"))
    return _Tree(
        feature=np.asarray(columns["feature"], dtype=np.int64),
        threshold=np.asarray(columns["threshold"], dtype=np.float64),
        left=np.asarray(columns["left"], dtype=np.int64),
        right=np.asarray(columns["right"], dtype=np.int64),
        default_left=np.asarray(columns["default_left"], dtype=np.uint8),
        missing_type=np.asarray(columns["missing_type"], dtype=np.uint8),
        value=np.asarray(columns["value"], dtype=np.float64),
    )


# --- scikit-learn ----------------------------------------------------------------------------------------------------


def from_random_forest(model: Any) -> TreeEnsemble:
    """Export a binary ``RandomForestClassifier`` (or ``ExtraTreesClassifier``): the mean of P(class 1) per tree."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier  # noqa: PLC0415 - training-only

    if not isinstance(model, RandomForestClassifier | ExtraTreesClassifier):
        raise UnsupportedModel(f"expected a RandomForestClassifier, got {type(model).__name__}")
    if model.n_outputs_ != 1 or len(model.classes_) != 2:
        raise UnsupportedModel("only binary, single-output forests are supported")
    trees = []
    for estimator in model.estimators_:
        per_class = estimator.tree_.value[:, 0, :].astype(np.float64)  # class fractions (weighted counts before 1.4)
        totals = per_class.sum(axis=1)
        probability = per_class[:, 1] / np.where(totals > 0, totals, 1.0)
        trees.append(_sklearn_tree(estimator.tree_, probability, None))
    return _assemble(
        trees,
        n_features=int(model.n_features_in_),
        comparison=COMPARE_LESS_EQUAL,
        float32_inputs=True,  # scikit-learn casts X to float32, then compares with float64 thresholds
        float32_sums=False,
        zero_threshold=0.0,
        base_margin=0.0,
        link="identity",
        aggregation="mean",
    )


def from_isolation_forest(model: Any) -> IsolationForestArrays:
    """Export an ``IsolationForest``; its kernel equals ``score_samples`` and ``decision_function``."""
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 - training-only dependency

    if not isinstance(model, IsolationForest):
        raise UnsupportedModel(f"expected an IsolationForest, got {type(model).__name__}")
    n_features = int(model.n_features_in_)
    # scikit-learn indexes X by the tree's feature subset only when it drew fewer than all features.
    subsampled = int(model._max_features) != n_features  # the attribute scikit-learn itself tests
    trees = []
    for estimator, features in zip(model.estimators_, model.estimators_features_, strict=True):
        tree = estimator.tree_
        depth = tree.compute_node_depths()  # the root has depth 1, as in _decision_path_lengths
        leaf_path = depth + average_path_length(tree.n_node_samples) - 1.0
        trees.append(_sklearn_tree(tree, leaf_path, np.asarray(features) if subsampled else None))
    flat = _concatenate(trees)
    return IsolationForestArrays(
        feature=flat.feature,
        threshold=flat.threshold,
        left=flat.left,
        right=flat.right,
        default_left=flat.default_left,
        path_length=flat.value,
        roots=flat.roots,
        n_features=n_features,
        max_samples=int(model.max_samples_),
        offset=float(model.offset_),
    )


def average_path_length(n_samples: npt.ArrayLike) -> FloatArray:
    """Mean path length of an unsuccessful search in a binary search tree of ``n`` nodes (scikit-learn's ``c(n)``)."""
    n = np.asarray(n_samples, dtype=np.float64)
    result = np.zeros(n.shape)
    result[n == 2] = 1.0
    many = n > 2
    result[many] = 2.0 * (np.log(n[many] - 1.0) + np.euler_gamma) - 2.0 * (n[many] - 1.0) / n[many]
    return result


def from_logistic(model: Any) -> LinearModel:
    """Export ``Pipeline([StandardScaler, LogisticRegression])`` or a bare binary ``LogisticRegression``."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - training-only dependency
    from sklearn.pipeline import Pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    scaler = None
    regression = model
    if isinstance(model, Pipeline):
        steps = [step for _, step in model.steps if step is not None and step != "passthrough"]
        if len(steps) != 2 or not isinstance(steps[0], StandardScaler):
            raise UnsupportedModel("expected Pipeline([StandardScaler, LogisticRegression])")
        scaler, regression = steps
    if not isinstance(regression, LogisticRegression):
        raise UnsupportedModel(f"expected a LogisticRegression, got {type(regression).__name__}")
    if len(regression.classes_) != 2:
        raise UnsupportedModel("only binary logistic regression is supported")
    coef = np.asarray(regression.coef_, dtype=np.float64).reshape(-1)
    mean = np.zeros(coef.size)
    scale = np.ones(coef.size)
    if scaler is not None and scaler.with_mean:
        mean = np.asarray(scaler.mean_, dtype=np.float64)
    if scaler is not None and scaler.with_std:
        scale = np.asarray(scaler.scale_, dtype=np.float64)
    return LinearModel(
        mean=mean, scale=scale, coef=coef, intercept=float(np.asarray(regression.intercept_)[0]), link="logistic"
    )


def from_lof(model: Any) -> LofArrays:
    """Export a ``LocalOutlierFactor(novelty=True)`` fitted with the euclidean metric, under the tie rule.

    The training points are scikit-learn's; their ``k_distance`` and ``lrd``
    are recomputed by :func:`lof_densities`, because scikit-learn's own lrd
    counts only the tied neighbours its search happened to return first. Where
    no distance ties they are scikit-learn's values (to rounding), and so are
    the kernel's scores. A ``contamination`` other than ``"auto"`` sets the
    offset at that percentile of the training points' scores under the same rule.
    """
    from sklearn.neighbors import LocalOutlierFactor  # noqa: PLC0415 - training-only dependency

    if not isinstance(model, LocalOutlierFactor):
        raise UnsupportedModel(f"expected a LocalOutlierFactor, got {type(model).__name__}")
    if not model.novelty:
        raise UnsupportedModel("LocalOutlierFactor must be fitted with novelty=True to score new points")
    if model.effective_metric_ != "euclidean" or model.effective_metric_params_:
        raise UnsupportedModel(f"LocalOutlierFactor metric {model.metric!r} is not supported (euclidean only)")
    fit_x = model._fit_X  # the training points scikit-learn searches
    if not isinstance(fit_x, np.ndarray):
        raise UnsupportedModel("LocalOutlierFactor fitted on a sparse matrix is not supported")
    k = int(model.n_neighbors_)
    k_distance, lrd, neighbourhoods = lof_densities(fit_x, k)
    offset = float(model.offset_)
    if model.contamination != "auto":
        training = lof_score_samples(k_distance, lrd, neighbourhoods)
        offset = float(np.percentile(training, 100.0 * model.contamination))
    return LofArrays(fit_x=fit_x, k_distance=k_distance, lrd=lrd, n_neighbors=k, offset=offset)


def _sklearn_tree(tree: Any, value: FloatArray, features: npt.NDArray[np.integer[Any]] | None) -> _Tree:
    left = np.asarray(tree.children_left, dtype=np.int64)
    is_leaf = left == -1
    feature = np.asarray(tree.feature, dtype=np.int64)
    if features is not None:  # the tree was grown on X[:, features]
        feature = np.where(is_leaf, -1, features[np.where(is_leaf, 0, feature)])
    raw = _Tree(
        feature=np.where(is_leaf, -1, feature),
        threshold=np.where(is_leaf, 0.0, np.asarray(tree.threshold, dtype=np.float64)),
        left=left,
        right=np.asarray(tree.children_right, dtype=np.int64),
        default_left=np.asarray(tree.missing_go_to_left, dtype=np.uint8),
        missing_type=np.full(left.size, MISSING_NAN, dtype=np.uint8),
        value=np.asarray(value, dtype=np.float64),
    )
    return _preorder(raw)


# --- flat layout -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Tree:
    """One tree with local node ids; ``order`` maps each node to its id in the source model."""

    feature: Int64Array
    threshold: FloatArray
    left: Int64Array
    right: Int64Array
    default_left: UInt8Array
    missing_type: UInt8Array
    value: FloatArray
    order: Int64Array | None = None


@dataclasses.dataclass
class _Forest:
    feature: Int32Array
    threshold: FloatArray
    left: Int32Array
    right: Int32Array
    default_left: UInt8Array
    missing_type: UInt8Array
    value: FloatArray
    roots: Int64Array


def _preorder(tree: _Tree) -> _Tree:
    """Renumber the nodes reachable from node 0 in preorder, so every child id exceeds its parent's."""
    order: list[int] = []
    stack = [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if tree.left[node] != -1:
            stack.append(int(tree.right[node]))
            stack.append(int(tree.left[node]))
    old = np.asarray(order, dtype=np.int64)
    new_id = np.full(tree.left.size, -1, dtype=np.int64)
    new_id[old] = np.arange(old.size)
    left, right = tree.left[old], tree.right[old]
    return _Tree(
        feature=tree.feature[old],
        threshold=tree.threshold[old],
        left=np.where(left == -1, -1, new_id[left]),
        right=np.where(left == -1, -1, new_id[right]),
        default_left=tree.default_left[old],
        missing_type=tree.missing_type[old],
        value=tree.value[old].copy(),
        order=old,
    )


def _concatenate(trees: list[_Tree]) -> _Forest:
    sizes = np.asarray([tree.feature.size for tree in trees], dtype=np.int64)
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def shifted(children: Int64Array, root: np.int64) -> Int64Array:
        return np.where(children == -1, -1, children + root)

    return _Forest(
        feature=np.concatenate([tree.feature for tree in trees]).astype(np.int32),
        threshold=np.concatenate([tree.threshold for tree in trees]),
        left=np.concatenate([shifted(t.left, r) for t, r in zip(trees, roots, strict=True)]).astype(np.int32),
        right=np.concatenate([shifted(t.right, r) for t, r in zip(trees, roots, strict=True)]).astype(np.int32),
        default_left=np.concatenate([tree.default_left for tree in trees]),
        missing_type=np.concatenate([tree.missing_type for tree in trees]),
        value=np.concatenate([tree.value for tree in trees]),
        roots=roots,
    )


def _assemble(trees: list[_Tree], **scalars: Any) -> TreeEnsemble:
    flat = _concatenate(trees)
    return TreeEnsemble(**dataclasses.asdict(flat), **scalars)
