"""Fitted models as flat numpy arrays: the serving form training exports and the kernels walk.

The sidecar scores on the request hot path with the numba kernels of
:mod:`qf.model.kernels`, which cannot call XGBoost, LightGBM or scikit-learn.
Training converts each fitted model (:mod:`qf.train.export`) into one of these
frozen dataclasses of plain arrays and saves it as one ``.npz`` file (no pickle)::

    TreeEnsemble           XGBoost, LightGBM, random forest -> qf.model.kernels.trees
    LinearModel            StandardScaler + LogisticRegression -> qf.model.kernels.trees
    IsolationForestArrays  IsolationForest -> qf.model.kernels.iforest
    LofArrays              LocalOutlierFactor(novelty=True) -> qf.model.kernels.lof

Trees are stored flat: node ``i`` of the forest splits on ``feature[i]``
(``-1`` for a leaf) and its children ``left[i]``/``right[i]`` are absolute
indices greater than ``i``, so a walk from any root always ends at a leaf
(checked on construction: the kernels do not check indices).
``value[i]`` is the leaf output for a leaf and the node's expected output
otherwise, which is what Saabas contributions need.

Only numpy is imported here: the sidecar loads models without the training
libraries. Errors: :class:`qf.model.errors.UnsupportedModel` (a :class:`qf.errors.ConfigError`
and a ``ValueError``) for arrays the kernels cannot walk or a malformed file.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.model.errors import UnsupportedModel

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

FloatArray = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]
KernelArg = npt.NDArray[Any] | int | float
PathLike = str | os.PathLike[str]

FORMAT_VERSION = 1

# How a split reads a missing value (LightGBM's three missing types; XGBoost and
# scikit-learn always behave like MISSING_NAN).
MISSING_AS_ZERO = 0  # LightGBM "None": NaN is read as 0.0 and compared as usual
MISSING_ZERO = 1  # LightGBM "Zero": 0.0 (|x| <= 1e-35f) and NaN take the default branch
MISSING_NAN = 2  # NaN takes the default branch

# LightGBM's kZeroThreshold (the float literal 1e-35f held in a double). Its predictor drops inputs with
# |x| <= kZeroThreshold as sparse zeros, so they are compared as 0.0; the "Zero" missing type uses it too.
LIGHTGBM_ZERO_THRESHOLD = float(np.float32(1e-35))

COMPARE_LESS = 0  # go left if x < threshold (XGBoost)
COMPARE_LESS_EQUAL = 1  # go left if x <= threshold (LightGBM, scikit-learn)

LINKS = ("identity", "logistic")
AGGREGATIONS = ("sum", "mean")


class TreeKernelArgs(NamedTuple):
    """What the tree kernels of :mod:`qf.model.kernels.trees` read: a :class:`TreeEnsemble` with flags as ints.

    Ints, not bools, so that every ensemble compiles to the same signature.
    """

    feature: Int32Array
    threshold: FloatArray
    left: Int32Array
    right: Int32Array
    default_left: UInt8Array
    missing_type: UInt8Array
    value: FloatArray
    roots: Int64Array
    n_features: int
    comparison: int
    float32_inputs: int
    float32_sums: int
    zero_threshold: float
    base_margin: float
    logistic: int
    mean: int


class LinearKernelArgs(NamedTuple):
    """What the ``linear_*`` kernels of :mod:`qf.model.kernels.trees` read: a :class:`LinearModel`."""

    mean: FloatArray
    scale: FloatArray
    coef: FloatArray
    intercept: float
    logistic: int


@dataclasses.dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A forest of binary trees over one output; the margin is ``base_margin`` plus the sum or mean of leaves.

    ``float32_inputs``: round x to float32 before comparing (XGBoost, scikit-learn).
    ``float32_sums``: round the running sum over trees to float32 (XGBoost).
    ``zero_threshold``: read inputs with ``|x| <= zero_threshold`` as 0.0 (LightGBM; 0.0 elsewhere).
    """

    feature: Int32Array
    threshold: FloatArray
    left: Int32Array
    right: Int32Array
    default_left: UInt8Array
    missing_type: UInt8Array
    value: FloatArray
    roots: Int64Array
    n_features: int
    comparison: int
    float32_inputs: bool
    float32_sums: bool
    zero_threshold: float
    base_margin: float
    link: str
    aggregation: str

    def __post_init__(self) -> None:
        coerce(self, feature=np.int32, left=np.int32, right=np.int32, roots=np.int64)
        coerce(self, threshold=np.float64, value=np.float64, default_left=np.uint8, missing_type=np.uint8)
        coerce_scalars(self, n_features=int, comparison=int, float32_inputs=bool, float32_sums=bool)
        coerce_scalars(self, zero_threshold=float, base_margin=float, link=str, aggregation=str)
        check_trees(self.feature, self.left, self.right, self.roots, self.n_features, self.threshold, self.value)
        check_same_length(self.feature, default_left=self.default_left, missing_type=self.missing_type)
        if not np.all(self.missing_type <= MISSING_NAN):
            raise UnsupportedModel(f"missing_type must be {MISSING_AS_ZERO}, {MISSING_ZERO} or {MISSING_NAN}")
        if self.comparison not in {COMPARE_LESS, COMPARE_LESS_EQUAL}:
            raise UnsupportedModel(f"comparison must be {COMPARE_LESS} (<) or {COMPARE_LESS_EQUAL} (<=)")
        if self.link not in LINKS or self.aggregation not in AGGREGATIONS:
            raise UnsupportedModel(f"link must be one of {LINKS} and aggregation one of {AGGREGATIONS}")

    @property
    def n_trees(self) -> int:
        return int(self.roots.size)

    def kernel_args(self) -> TreeKernelArgs:
        """The model argument of every tree kernel in :mod:`qf.model.kernels.trees`."""
        return TreeKernelArgs(
            feature=self.feature,
            threshold=self.threshold,
            left=self.left,
            right=self.right,
            default_left=self.default_left,
            missing_type=self.missing_type,
            value=self.value,
            roots=self.roots,
            n_features=self.n_features,
            comparison=self.comparison,
            float32_inputs=int(self.float32_inputs),
            float32_sums=int(self.float32_sums),
            zero_threshold=self.zero_threshold,
            base_margin=self.base_margin,
            logistic=int(self.link == "logistic"),
            mean=int(self.aggregation == "mean"),
        )

    def save(self, path: PathLike) -> None:
        save_npz(self, path)

    @classmethod
    def load(cls, path: PathLike) -> TreeEnsemble:
        return cls(**load_npz(path, cls))


@dataclasses.dataclass(frozen=True, eq=False)
class IsolationForestArrays:
    """Isolation trees whose leaves hold the path length ``depth + c(n_samples_in_leaf)``, as scikit-learn adds it.

    Feature indices are already mapped through each tree's feature subset
    (``estimators_features_``), so the kernel reads the full row.
    """

    feature: Int32Array
    threshold: FloatArray
    left: Int32Array
    right: Int32Array
    default_left: UInt8Array
    path_length: FloatArray
    roots: Int64Array
    n_features: int
    max_samples: int
    offset: float

    def __post_init__(self) -> None:
        coerce(self, feature=np.int32, left=np.int32, right=np.int32, roots=np.int64)
        coerce(self, threshold=np.float64, path_length=np.float64, default_left=np.uint8)
        coerce_scalars(self, n_features=int, max_samples=int, offset=float)
        check_trees(self.feature, self.left, self.right, self.roots, self.n_features, self.threshold, self.path_length)
        check_same_length(self.feature, default_left=self.default_left)
        if self.max_samples < 1:
            raise UnsupportedModel(f"max_samples must be positive, got {self.max_samples}")

    def kernel_args(self) -> dict[str, KernelArg]:
        """Keyword arguments of every kernel in :mod:`qf.model.kernels.iforest`."""
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "left": self.left,
            "right": self.right,
            "default_left": self.default_left,
            "path_length": self.path_length,
            "roots": self.roots,
            "max_samples": self.max_samples,
            "offset": self.offset,
        }

    def save(self, path: PathLike) -> None:
        save_npz(self, path)

    @classmethod
    def load(cls, path: PathLike) -> IsolationForestArrays:
        return cls(**load_npz(path, cls))


@dataclasses.dataclass(frozen=True, eq=False)
class LinearModel:
    """Standardise, then a linear margin: ``intercept + sum(coef * (x - mean) / scale)``."""

    mean: FloatArray
    scale: FloatArray
    coef: FloatArray
    intercept: float
    link: str

    def __post_init__(self) -> None:
        coerce(self, mean=np.float64, scale=np.float64, coef=np.float64)
        coerce_scalars(self, intercept=float, link=str)
        if self.coef.ndim != 1:
            raise UnsupportedModel(f"coef must be one-dimensional, got shape {self.coef.shape}")
        check_same_length(self.coef, mean=self.mean, scale=self.scale)
        if self.link not in LINKS:
            raise UnsupportedModel(f"link must be one of {LINKS}, got {self.link!r}")

    @property
    def n_features(self) -> int:
        return int(self.coef.size)

    def kernel_args(self) -> LinearKernelArgs:
        """The model argument of the ``linear_*`` kernels in :mod:`qf.model.kernels.trees`."""
        return LinearKernelArgs(self.mean, self.scale, self.coef, self.intercept, int(self.link == "logistic"))

    def save(self, path: PathLike) -> None:
        save_npz(self, path)

    @classmethod
    def load(cls, path: PathLike) -> LinearModel:
        return cls(**load_npz(path, cls))


@dataclasses.dataclass(frozen=True, eq=False)
class LofArrays:
    """What LOF needs to score a new point: the training points, their k-distances and densities (euclidean).

    ``k_distance`` and ``lrd`` follow the tie rule of :mod:`qf.model.kernels.lof`
    (every point at the k-th distance is a neighbour), see :func:`lof_densities`.
    """

    fit_x: FloatArray
    k_distance: FloatArray
    lrd: FloatArray
    n_neighbors: int
    offset: float

    def __post_init__(self) -> None:
        coerce(self, fit_x=np.float64, k_distance=np.float64, lrd=np.float64)
        coerce_scalars(self, n_neighbors=int, offset=float)
        if self.fit_x.ndim != 2:
            raise UnsupportedModel(f"fit_x must be two-dimensional, got shape {self.fit_x.shape}")
        check_same_length(self.k_distance, lrd=self.lrd)
        if self.k_distance.shape != (self.fit_x.shape[0],):
            raise UnsupportedModel("k_distance and lrd need one entry per training point")
        if not 1 <= self.n_neighbors <= self.fit_x.shape[0]:
            raise UnsupportedModel(f"n_neighbors must be in [1, {self.fit_x.shape[0]}], got {self.n_neighbors}")
        finite = np.all(np.isfinite(self.fit_x)) and np.all(np.isfinite(self.k_distance))
        if not (finite and np.all(self.k_distance >= 0) and np.all(self.lrd > 0) and np.all(np.isfinite(self.lrd))):
            raise UnsupportedModel("fit_x and k_distance must be finite, k_distance >= 0 and lrd finite and positive")

    @property
    def n_features(self) -> int:
        return int(self.fit_x.shape[1])

    def kernel_args(self) -> dict[str, KernelArg]:
        """Keyword arguments of every kernel in :mod:`qf.model.kernels.lof`."""
        return {
            "fit_x": self.fit_x,
            "k_distance": self.k_distance,
            "lrd": self.lrd,
            "n_neighbors": self.n_neighbors,
            "offset": self.offset,
        }

    def save(self, path: PathLike) -> None:
        save_npz(self, path)

    @classmethod
    def load(cls, path: PathLike) -> LofArrays:
        return cls(**load_npz(path, cls))


@dataclasses.dataclass(frozen=True, eq=False)
class AnomalyScaler:
    """The anomaly models' input standardisation: ``(signed_log1p(x) - mean) / scale``."""

    mean: FloatArray
    scale: FloatArray

    def __post_init__(self) -> None:
        coerce(self, mean=np.float64, scale=np.float64)
        check_same_length(self.mean, scale=self.scale)
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.scale)) and np.all(self.scale > 0)):
            raise UnsupportedModel("the anomaly scaler holds a non-finite mean or a non-positive scale")

    @property
    def n_features(self) -> int:
        return int(self.mean.size)

    def save(self, path: PathLike) -> None:
        save_npz(self, path)

    @classmethod
    def load(cls, path: PathLike) -> AnomalyScaler:
        return cls(**load_npz(path, cls))


@dataclasses.dataclass(frozen=True, eq=False)
class ClusterCenters:
    """k-means centres of the standardised donors (one row per cluster): the donor map's communities."""

    centers: FloatArray

    def __post_init__(self) -> None:
        coerce(self, centers=np.float64)
        if self.centers.ndim != 2 or not np.all(np.isfinite(self.centers)):
            raise UnsupportedModel("cluster centres must be a finite 2-d array")

    @property
    def n_features(self) -> int:
        return int(self.centers.shape[1])

    def save(self, path: PathLike) -> None:
        save_npz(self, path)

    @classmethod
    def load(cls, path: PathLike) -> ClusterCenters:
        return cls(**load_npz(path, cls))


def check_trees(
    feature: Int32Array,
    left: Int32Array,
    right: Int32Array,
    roots: Int64Array,
    n_features: int,
    *per_node: FloatArray,
) -> None:
    """Refuse arrays a kernel could walk out of bounds or forever (kernels do not check indices)."""
    check_same_length(feature, left=left, right=right)
    for array in per_node:
        check_same_length(feature, values=array)
    n_nodes = feature.size
    if roots.size == 0 or roots.ndim != 1 or np.any((roots < 0) | (roots >= n_nodes)):
        raise UnsupportedModel("roots must be a non-empty list of node indices")
    split = feature >= 0
    index = np.arange(n_nodes)
    if np.any(feature < -1) or np.any(feature[split] >= n_features):
        raise UnsupportedModel(f"split features must be in [0, {n_features}) and -1 marks a leaf")
    for children in (left, right):
        if np.any(children[split] <= index[split]) or np.any(children[split] >= n_nodes):
            raise UnsupportedModel("each child index must exceed its parent's and stay inside the node arrays")


def check_same_length(reference: npt.NDArray[Any], **arrays: npt.NDArray[Any]) -> None:
    for name, array in arrays.items():
        if array.shape != reference.shape or reference.ndim != 1:
            raise UnsupportedModel(f"{name} has shape {array.shape}, expected {reference.shape}")


def coerce(model: object, **dtypes: type[np.generic]) -> None:
    for name, dtype in dtypes.items():
        object.__setattr__(model, name, np.ascontiguousarray(getattr(model, name), dtype=dtype))


def coerce_scalars(model: object, **kinds: type[Any]) -> None:
    for name, kind in kinds.items():
        object.__setattr__(model, name, kind(getattr(model, name)))


# --- .npz files ------------------------------------------------------------------------------------------------------


def save_npz(model: DataclassInstance, path: PathLike) -> None:
    """Write every field as an array (scalars and strings as 0-d arrays), tagged with the class name."""
    entries: dict[str, Any] = {
        field.name: np.asarray(getattr(model, field.name)) for field in dataclasses.fields(model)
    }
    entries["kind"] = np.asarray(type(model).__name__)
    entries["format_version"] = np.asarray(FORMAT_VERSION)
    with open(path, "wb") as handle:  # a file object: numpy must not append ".npz" to the name
        np.savez(handle, **entries)


def load_npz(path: PathLike, kind: type[DataclassInstance]) -> dict[str, Any]:
    """Read the fields of ``kind`` back (0-d arrays become Python scalars); the class validates them."""
    with np.load(path, allow_pickle=False) as data:
        saved_kind = str(data["kind"]) if "kind" in data else "unknown"
        if saved_kind != kind.__name__:
            raise UnsupportedModel(f"{os.fspath(path)} holds a {saved_kind}, not a {kind.__name__}")
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise UnsupportedModel(f"{os.fspath(path)} has format version {version}, not {FORMAT_VERSION}")
        fields: dict[str, Any] = {}
        for field in dataclasses.fields(kind):
            if field.name not in data:
                raise UnsupportedModel(f"{os.fspath(path)} lacks the {kind.__name__} field {field.name!r}")
            array = data[field.name]
            fields[field.name] = array.item() if array.ndim == 0 else array
        return fields
