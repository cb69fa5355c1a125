"""Train/test splits: no leakage, no future data in training, no held-out pattern in training."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.train.errors import SplitError
from qf_sentinel.qf.train.splits import Split, check_disjoint, leave_pattern_out, stratified_kfold, time_split


def _round(honest: int = 60, whales: int = 5, fan_out: int = 12, ring: int = 9, self_donation: int = 6) -> np.ndarray:
    """Patterns of a small labelled round, shuffled so no pattern sits in one block of rows."""
    patterns = np.array(
        ["honest"] * honest
        + ["whale"] * whales
        + ["sybil_fan_out"] * fan_out
        + ["collusion_ring"] * ring
        + ["self_donation"] * self_donation
    )
    return np.random.default_rng(7).permutation(patterns)


def _is_sybil(patterns: np.ndarray) -> np.ndarray:
    return ~np.isin(patterns, ["honest", "whale"])


def _assert_clean(split: Split, n_rows: int) -> None:
    """Train and test are disjoint, in range, and nothing is both kept and counted as dropped."""
    check_disjoint(split, n_rows=n_rows)
    assert np.intersect1d(split.train, split.test).size == 0
    assert split.train.size + split.test.size + split.dropped == n_rows
    assert np.unique(split.train).size == split.train.size
    assert np.unique(split.test).size == split.test.size


# --- k-fold -----------------------------------------------------------------


def test_kfold_test_sets_partition_the_rows() -> None:
    """Every row is tested exactly once, and never in the fold that trains on it."""
    y = _is_sybil(_round())
    splits = stratified_kfold(y, k=5, seed=3)
    assert [s.name for s in splits] == [f"kfold-{i}" for i in range(1, 6)]
    for split in splits:
        _assert_clean(split, y.size)
        assert split.dropped == 0
        assert split.held_out_pattern is None
    tested = np.concatenate([s.test for s in splits])
    np.testing.assert_array_equal(np.sort(tested), np.arange(y.size))


def test_kfold_keeps_the_sybil_share_in_every_fold() -> None:
    """Stratified: each test fold holds the overall number of sybils / k, give or take one."""
    y = _is_sybil(_round())
    for split in stratified_kfold(y, k=4, seed=0):
        assert abs(int(y[split.test].sum()) - y.sum() / 4) <= 1


@given(positives=st.integers(3, 30), negatives=st.integers(3, 60), k=st.integers(2, 3), seed=st.integers(0, 2**32 - 1))
def test_kfold_is_stratified_and_leak_free_for_any_labels(positives: int, negatives: int, k: int, seed: int) -> None:
    """For any class sizes of at least k: disjoint folds covering every row once, each fold stratified."""
    y = np.random.default_rng(seed).permutation(np.array([1] * positives + [0] * negatives))
    splits = stratified_kfold(y, k=k, seed=seed)
    for split in splits:
        _assert_clean(split, y.size)
        assert abs(int(y[split.test].sum()) - positives / k) < 1
    np.testing.assert_array_equal(np.sort(np.concatenate([s.test for s in splits])), np.arange(y.size))


def test_kfold_is_reproducible_with_the_seed() -> None:
    """The same seed gives the same folds; another seed shuffles differently."""
    y = _is_sybil(_round())
    first, again, other = (stratified_kfold(y, k=5, seed=s) for s in (11, 11, 12))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.test, b.test)
    assert any(not np.array_equal(a.test, c.test) for a, c in zip(first, other, strict=True))


def test_kfold_refuses_a_class_smaller_than_k() -> None:
    """Four sybils cannot fill five folds: a clear ValueError (and DataError) naming the class."""
    y = np.array([1] * 4 + [0] * 20)
    with pytest.raises(ValueError, match="at least 5 sybil donors"):
        stratified_kfold(y, k=5)
    with pytest.raises(DataError):
        stratified_kfold(np.zeros(10), k=2)
    with pytest.raises(ConfigError):
        stratified_kfold(y, k=1)
    with pytest.raises(SplitError, match="0/1"):
        stratified_kfold(np.array([0, 1, 2, 1, 0, 1]), k=2)


# --- time split -------------------------------------------------------------


@st.composite
def _activity(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First and last donation blocks (last >= first, many ties) and labels with both classes."""
    n = draw(st.integers(4, 60))
    first = draw(arrays(np.int64, n, elements=st.integers(100, 160)))
    span = draw(arrays(np.int64, n, elements=st.one_of(st.just(0), st.integers(0, 40))))
    y = draw(arrays(np.bool_, n))
    y[:2] = [True, False]
    return first, first + span, y


def _reference_cut(first: np.ndarray, fraction: float) -> int:
    """The earliest first-donation block whose share of donors starting at or after it is closest to fraction."""
    best: tuple[float, int] | None = None
    blocks: list[int] = first.tolist()
    for block in sorted(set(blocks)):
        gap = abs(sum(1 for f in first if f >= block) / len(first) - fraction)
        if best is None or gap < best[0]:
            best = (gap, block)
    assert best is not None
    return best[1]


@given(_activity(), st.floats(0.05, 0.95))
def test_time_split_never_trains_on_activity_at_or_after_the_cut(
    activity: tuple[np.ndarray, np.ndarray, np.ndarray], fraction: float
) -> None:
    """Train donors finish before the cut, test donors start at or after it, straddlers are dropped."""
    first, last, y = activity
    cut = _reference_cut(first, fraction)
    train_labels = set(y[last < cut].tolist())
    test_labels = set(y[first >= cut].tolist())
    if train_labels != {True, False} or test_labels != {True, False}:
        with pytest.raises(SplitError, match=f"at block {cut}"):
            time_split(first, last, y, test_fraction=fraction)
        return
    split = time_split(first, last, y, test_fraction=fraction)
    _assert_clean(split, y.size)
    assert split.cut_block == cut
    assert np.all(last[split.train] < cut)
    assert np.all(first[split.test] >= cut)
    np.testing.assert_array_equal(split.train, np.flatnonzero(last < cut))
    np.testing.assert_array_equal(split.test, np.flatnonzero(first >= cut))
    assert split.dropped == int(np.count_nonzero((first < cut) & (last >= cut)))


def test_time_split_cuts_near_the_asked_fraction_and_counts_the_dropped() -> None:
    """Ten donors a block apart, 30% after the cut: cut at block 7; donors 5 and 6 run past it and are dropped."""
    first = np.arange(10)
    last = first.copy()
    last[5], last[6] = 8, 7
    y = np.array([1, 0, 1, 0, 0, 1, 0, 1, 0, 1])
    split = time_split(first, last, y, test_fraction=0.3)
    assert split.cut_block == 7
    assert split.name == "time"
    np.testing.assert_array_equal(split.test, [7, 8, 9])
    np.testing.assert_array_equal(split.train, [0, 1, 2, 3, 4])
    assert split.dropped == 2


def test_time_split_refuses_a_side_without_both_classes() -> None:
    """All sybils arriving late leaves training without sybils: a SplitError naming the side and the cut."""
    first = np.arange(10)
    y = np.array([0] * 7 + [1] * 3)
    with pytest.raises(SplitError, match="train side"):
        time_split(first, first, y, test_fraction=0.3)


def test_time_split_refuses_bad_blocks_and_fractions() -> None:
    """last_block before first_block, mismatched lengths and fractions outside (0, 1) are refused."""
    y = np.array([0, 1, 0, 1])
    with pytest.raises(SplitError, match="last_block before first_block"):
        time_split([1, 2, 3, 4], [1, 2, 3, 3], y)
    with pytest.raises(SplitError):
        time_split([1, 2, 3], [1, 2, 3], y)
    with pytest.raises(ConfigError):
        time_split([1, 2, 3, 4], [1, 2, 3, 4], y, test_fraction=1.0)


# --- leave pattern out ------------------------------------------------------


def test_leave_pattern_out_never_trains_on_the_held_out_pattern() -> None:
    """One split per sybil pattern: all its donors in test, none in train, the other patterns in train."""
    patterns = _round()
    y = _is_sybil(patterns)
    splits = leave_pattern_out(patterns, y, seed=5)
    assert [s.held_out_pattern for s in splits] == ["collusion_ring", "self_donation", "sybil_fan_out"]
    for split in splits:
        _assert_clean(split, y.size)
        held_out = split.held_out_pattern
        assert split.name == f"leave-out-{held_out}"
        assert held_out not in set(patterns[split.train].tolist())
        np.testing.assert_array_equal(
            np.flatnonzero(patterns == held_out), np.intersect1d(split.test, np.flatnonzero(y))
        )
        other_sybil_patterns = set(patterns[y].tolist()) - {held_out}
        assert set(patterns[split.train].tolist()) >= other_sybil_patterns | {"honest", "whale"}


def test_leave_pattern_out_tests_on_a_shared_sample_of_honest_donors() -> None:
    """The honest test sample is about the asked fraction of each non-sybil pattern, the same in every split."""
    patterns = _round(honest=60, whales=5)
    y = _is_sybil(patterns)
    splits = leave_pattern_out(patterns, y, test_fraction_of_honest=0.3)
    honest_tests = [s.test[~y[s.test]] for s in splits]
    for rows in honest_tests[1:]:
        np.testing.assert_array_equal(rows, honest_tests[0])
    assert np.count_nonzero(patterns[honest_tests[0]] == "honest") == 18
    assert np.count_nonzero(patterns[honest_tests[0]] == "whale") == 2


def test_leave_pattern_out_is_reproducible_with_the_seed() -> None:
    """The same seed draws the same honest test donors; another seed draws others."""
    patterns = _round()
    y = _is_sybil(patterns)
    first, again, other = (leave_pattern_out(patterns, y, seed=s)[0].test for s in (2, 2, 3))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_leave_pattern_out_can_hold_out_chosen_patterns_only() -> None:
    """Given sybil_patterns, only those are held out; the rest of the sybils always train."""
    patterns = _round()
    y = _is_sybil(patterns)
    (split,) = leave_pattern_out(patterns, y, sybil_patterns=["collusion_ring"])
    assert split.held_out_pattern == "collusion_ring"
    assert set(patterns[split.train][y[split.train]].tolist()) == {"sybil_fan_out", "self_donation"}


def test_leave_pattern_out_refuses_what_it_cannot_split() -> None:
    """A lone sybil pattern (train would have no sybils), an unknown or mislabelled pattern: clear errors."""
    patterns = _round()
    y = _is_sybil(patterns)
    lone = np.where(y, "sybil_fan_out", patterns)
    with pytest.raises(SplitError, match="train side"):
        leave_pattern_out(lone, y)
    with pytest.raises(SplitError, match="no donors"):
        leave_pattern_out(patterns, y, sybil_patterns=["airdrop_farm"])
    with pytest.raises(SplitError, match="labelled non-sybil"):
        leave_pattern_out(patterns, y, sybil_patterns=["whale"])
    with pytest.raises(SplitError, match="one pattern per donor"):
        leave_pattern_out(patterns[:-1], y)
    with pytest.raises(ConfigError):
        leave_pattern_out(patterns, y, test_fraction_of_honest=0.0)


# --- the leakage guard ------------------------------------------------------


def test_check_disjoint_catches_shared_and_out_of_range_rows() -> None:
    """A row in both sets, or an index past the data, raises; a clean split passes."""
    check_disjoint(Split("ok", np.array([0, 1]), np.array([2])), n_rows=3)
    with pytest.raises(SplitError, match=r"1 rows in both train and test, e\.g\. \[1\]"):
        check_disjoint(Split("leaky", np.array([0, 1]), np.array([1, 2])))
    with pytest.raises(ValueError, match="outside"):
        check_disjoint(Split("past the end", np.array([0, 1]), np.array([3])), n_rows=3)


def test_split_indices_are_sorted_and_read_only() -> None:
    """A Split cannot be changed after the leakage check: its arrays refuse writes."""
    split = Split("s", np.array([3, 1]), np.array([2, 0]))
    np.testing.assert_array_equal(split.train, [1, 3])
    with pytest.raises(ValueError, match="read-only"):
        split.train[0] = 2
