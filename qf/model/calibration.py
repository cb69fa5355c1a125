"""The serving form of risk calibration: isotonic step points applied with ``np.interp``.

That is what scikit-learn's ``IsotonicRegression.predict`` does; training fits
the points (:mod:`qf.train.calibration`) and saves them as ``calibration.npz``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.model.arrays import coerce, load_npz, save_npz
from qf_sentinel.qf.model.errors import UnsupportedModel

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
    """Isotonic map from raw model probability to calibrated probability: ``np.interp(p, x, y)``."""

    x: FloatArray
    y: FloatArray

    def __post_init__(self) -> None:
        coerce(self, x=np.float64, y=np.float64)
        if self.x.ndim != 1 or self.x.shape != self.y.shape or self.x.size < 1:
            raise UnsupportedModel("calibration needs two 1-d arrays of the same, non-zero length")
        if not (np.all(np.isfinite(self.x)) and np.all(np.isfinite(self.y))):
            raise UnsupportedModel("calibration arrays must be finite")
        if np.any(np.diff(self.x) < 0) or np.any(np.diff(self.y) < 0) or self.y.min() < 0 or self.y.max() > 1:
            raise UnsupportedModel("calibration must be non-decreasing in x and y, with y in [0, 1]")

    @classmethod
    def identity(cls) -> Calibration:
        return cls(x=np.array([0.0, 1.0]), y=np.array([0.0, 1.0]))

    def apply(self, raw: npt.ArrayLike) -> FloatArray:
        return np.asarray(np.interp(np.asarray(raw, dtype=np.float64), self.x, self.y), dtype=np.float64)

    def save(self, path: Path) -> None:
        save_npz(self, path)

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls(**load_npz(path, cls))
