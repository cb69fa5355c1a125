"""Train/test splits of labelled donors that do not flatter the risk model.

A random k-fold split answers "how well does the model fit this round"; the
two other splits answer the questions a round operator cares about:

* :func:`time_split` -- trained on donors seen before a cut block, tested on
  donors who arrive after it (no future data in training);
* :func:`leave_pattern_out` -- tested on a sybil pattern the model never saw,
  the closest we get to "a new attack next round".

Every split is a :class:`Split` of row indices into the caller's feature and
label arrays; :func:`check_disjoint` is the leakage guard the trainer runs on
each one. Metrics over a split's test rows live in :mod:`qf.train.evaluation`.

Bad arguments raise :class:`qf.errors.ConfigError`; labels that cannot support
the asked split raise :class:`SplitError`, a :class:`qf.errors.DataError` that
is also a :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedKFold

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.train.errors import SplitError

IndexArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class Split:
    """Row indices of one train/test split; both arrays are sorted and read-only.

    ``dropped`` counts rows in neither set (donors straddling a time cut);
    ``cut_block`` is the first block of the test period of a time split.
    """

    name: str
    train: IndexArray
    test: IndexArray
    held_out_pattern: str | None = None
    dropped: int = 0
    cut_block: int | None = None

    def __post_init__(self) -> None:
        for field in ("train", "test"):
            rows = np.sort(np.asarray(getattr(self, field), dtype=np.intp))
            rows.setflags(write=False)
            object.__setattr__(self, field, rows)


def check_disjoint(split: Split, *, n_rows: int | None = None) -> None:
    """Raise :class:`SplitError` if a row is in both train and test (or, given ``n_rows``, out of range)."""
    shared = np.intersect1d(split.train, split.test)
    if shared.size:
        raise SplitError(f"split {split.name!r}: {shared.size} rows in both train and test, e.g. {shared[:5].tolist()}")
    if n_rows is not None:
        rows = np.concatenate([split.train, split.test])
        outside = rows[(rows < 0) | (rows >= n_rows)]
        if outside.size:
            raise SplitError(f"split {split.name!r}: rows outside [0, {n_rows}), e.g. {outside[:5].tolist()}")


def stratified_kfold(y: npt.ArrayLike, k: int = 5, seed: int = 0) -> list[Split]:
    """``k`` shuffled folds (``kfold-1`` .. ``kfold-k``), each keeping the sybil share of the whole."""
    labels = _labels(y)
    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2, got {k}")
    for value, name in ((True, "sybil"), (False, "non-sybil")):
        count = int(np.count_nonzero(labels == value))
        if count < k:
            raise SplitError(f"{k}-fold split needs at least {k} {name} donors in every class, got {count}")
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(labels.size), labels)
    return [Split(f"kfold-{i}", train, test) for i, (train, test) in enumerate(folds, start=1)]


def time_split(
    first_block: npt.ArrayLike,
    last_block: npt.ArrayLike,
    y: npt.ArrayLike,
    test_fraction: float = 0.3,
) -> Split:
    """Train on donors done before a cut block, test on donors who start at or after it.

    The cut is the first-donation block that puts the share of donors starting
    at or after it closest to ``test_fraction``. Train holds donors whose
    ``last_block < cut`` (all their activity is before the cut), test those
    whose ``first_block >= cut``. Donors active on both sides of the cut are
    dropped from both sets: in train they would bring data from the test
    period, in test they would be partly seen. ``Split.dropped`` says how many.

    Only row selection is guarded here: features must also be computed from
    activity before the cut for the test to be truly out of time.
    """
    labels = _labels(y)
    first = np.asarray(first_block, dtype=np.int64)
    last = np.asarray(last_block, dtype=np.int64)
    if first.shape != labels.shape or last.shape != labels.shape:
        raise SplitError(f"need one first and last block per donor ({labels.size}), got {first.shape} and {last.shape}")
    if np.any(last < first):
        raise SplitError(f"{int(np.count_nonzero(last < first))} donors have last_block before first_block")
    _check_fraction("test_fraction", test_fraction)
    if labels.size == 0:
        raise SplitError("time split needs donors, got none")

    ordered = np.sort(first)
    candidates = np.unique(first)
    share_after = (ordered.size - np.searchsorted(ordered, candidates, side="left")) / ordered.size
    cut = int(candidates[np.argmin(np.abs(share_after - test_fraction))])

    train = np.flatnonzero(last < cut)
    test = np.flatnonzero(first >= cut)
    dropped = labels.size - train.size - test.size
    for side, rows in (("train", train), ("test", test)):
        _require_both_classes(labels[rows], f"time split at block {cut}: {side} side ({rows.size} donors)")
    return Split("time", train, test, dropped=dropped, cut_block=cut)


def leave_pattern_out(
    patterns: npt.ArrayLike,
    y: npt.ArrayLike,
    sybil_patterns: Sequence[str] | None = None,
    test_fraction_of_honest: float = 0.3,
    seed: int = 0,
) -> list[Split]:
    """One split per sybil pattern, whose donors are all in test and none in train.

    Test is the held-out pattern plus a seeded sample of ``test_fraction_of_honest``
    of the non-sybil donors, drawn per pattern (``honest``, ``whale``) so rare
    kinds of honest donor are represented; train is every other donor, the
    other sybil patterns included. The honest sample is drawn once and shared
    by all splits, so scores across held-out patterns differ by their sybils
    alone. ``sybil_patterns`` defaults to every pattern of a sybil-labelled row.
    """
    labels = _labels(y)
    names = np.asarray(patterns, dtype=np.str_)
    if names.shape != labels.shape:
        raise SplitError(f"need one pattern per donor ({labels.size}), got shape {names.shape}")
    _check_fraction("test_fraction_of_honest", test_fraction_of_honest)
    held_out = sorted(set(names[labels].tolist())) if sybil_patterns is None else list(sybil_patterns)
    if not held_out:
        raise SplitError("leave-pattern-out needs at least one sybil pattern, got none")
    for pattern in held_out:
        members = names == pattern
        if not members.any():
            raise SplitError(f"sybil pattern {pattern!r} has no donors")
        if not labels[members].all():
            raise SplitError(f"pattern {pattern!r} is held out as sybil but has donors labelled non-sybil")

    honest_test = _sample_per_pattern(names, ~labels, test_fraction_of_honest, np.random.default_rng(seed))
    if honest_test.size == 0:
        raise SplitError(f"{test_fraction_of_honest} of {int(np.count_nonzero(~labels))} non-sybil donors is none")

    splits = []
    for pattern in held_out:
        in_test = names == pattern
        in_test[honest_test] = True
        train = np.flatnonzero(~in_test)
        _require_both_classes(labels[train], f"leave-out {pattern!r}: train side ({train.size} donors)")
        splits.append(Split(f"leave-out-{pattern}", train, np.flatnonzero(in_test), held_out_pattern=pattern))
    return splits


def _labels(y: npt.ArrayLike) -> BoolArray:
    """Labels as a 1-D bool array (``True`` = sybil); only booleans or 0/1 are accepted."""
    values = np.asarray(y)
    if values.ndim != 1:
        raise SplitError(f"labels must be 1-D (one per donor), got {values.ndim}-D")
    if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
        raise SplitError("labels must be booleans or 0/1")
    return values.astype(np.bool_)


def _sample_per_pattern(
    names: npt.NDArray[np.str_], pool: BoolArray, fraction: float, rng: np.random.Generator
) -> IndexArray:
    """``round(fraction * size)`` random rows of each pattern within ``pool``, patterns in sorted order."""
    chosen = []
    for pattern in np.unique(names[pool]):
        rows = np.flatnonzero(pool & (names == pattern))
        chosen.append(rng.permutation(rows)[: round(fraction * rows.size)])
    return np.concatenate(chosen) if chosen else np.empty(0, dtype=np.intp)


def _require_both_classes(labels: BoolArray, where: str) -> None:
    positives = int(np.count_nonzero(labels))
    if positives in {0, labels.size}:
        raise SplitError(f"{where} has {positives} sybil and {labels.size - positives} non-sybil donors; need both")


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must be in (0, 1), got {value}")
