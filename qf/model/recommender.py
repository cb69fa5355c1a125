"""The serving form of the recommender: item similarity, popularity and the project index, saved without pickle.

Training fits it (:func:`qf.train.recommend.fit_recommender`); the sidecar ranks
with :func:`qf.model.kernels.topk.recommend_topk` over these arrays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import DataError

Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class RecommenderArrays:
    """Everything the scoring sidecar needs to recommend, as flat arrays saved without pickle."""

    similarity: Float32Array
    popularity: Float32Array
    project_pool: IntArray
    project_ids: list[str]

    def __post_init__(self) -> None:
        n = len(self.project_ids)
        if self.similarity.shape != (n, n) or self.popularity.shape != (n,) or self.project_pool.shape != (n,):
            raise DataError(f"recommender arrays disagree on the number of projects ({n} ids)")
        object.__setattr__(self, "similarity", np.ascontiguousarray(self.similarity, dtype=np.float32))
        object.__setattr__(self, "popularity", np.ascontiguousarray(self.popularity, dtype=np.float32))
        object.__setattr__(self, "project_pool", np.ascontiguousarray(self.project_pool, dtype=np.int64))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an ``.npz`` (numpy appends the suffix when the path lacks it)."""
        np.savez(
            path,
            format_version=np.int64(_FORMAT_VERSION),
            similarity=self.similarity,
            popularity=self.popularity,
            project_pool=self.project_pool,
            project_ids=np.asarray(self.project_ids, dtype=np.str_),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RecommenderArrays:
        """Read an ``.npz`` written by :meth:`save`; object arrays are refused."""
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["format_version"])
                if version != _FORMAT_VERSION:
                    raise DataError(f"{os.fspath(path)}: recommender format {version}, expected {_FORMAT_VERSION}")
                return cls(
                    similarity=data["similarity"],
                    popularity=data["popularity"],
                    project_pool=data["project_pool"],
                    project_ids=[str(x) for x in data["project_ids"]],
                )
        except (KeyError, ValueError) as exc:
            raise DataError(f"{os.fspath(path)}: not a recommender archive ({exc})") from exc
