"""Recommendations: hand-checked cosine, ranking rules, kernel parity and a leak-free offline evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.model.kernels.topk import recommend_topk
from qf_sentinel.qf.model.recommender import RecommenderArrays
from qf_sentinel.qf.train.recommend import (
    Weighting,
    donation_matrix,
    fit_recommender,
    hit_rate_at_k,
    holdout_last,
    item_similarity,
    popularity,
    recommend,
)

# Four donors, three projects A, B, C (one repeat donation: donor 1 gives to C twice).
DONOR = np.array([0, 0, 1, 1, 1, 2, 2, 3])
PROJECT = np.array([0, 1, 0, 2, 2, 1, 2, 0])
AMOUNT = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 2.0, 1.0, 3.0])


def loop_cosine(columns: list[list[float]]) -> list[list[float]]:
    """Cosine between every pair of columns written with loops, self-similarity zero."""
    n = len(columns)
    out = [[0.0] * n for _ in range(n)]
    for a in range(n):
        for b in range(n):
            dot = sum(x * y for x, y in zip(columns[a], columns[b], strict=True))
            norm = math.sqrt(sum(x * x for x in columns[a])) * math.sqrt(sum(y * y for y in columns[b]))
            if a != b and norm > 0:
                out[a][b] = dot / norm
    return out


def test_donation_matrix_sums_repeat_donations() -> None:
    """Two donations from one donor to one project become one cell holding their sum."""
    matrix = donation_matrix(DONOR, PROJECT, AMOUNT)
    assert matrix.shape == (4, 3)
    assert matrix.toarray().tolist() == [[1, 1, 0], [1, 0, 4], [0, 2, 1], [3, 0, 0]]


def test_donation_matrix_rejects_bad_rows() -> None:
    """Negative amounts and indices beyond the requested shape are data errors."""
    with pytest.raises(DataError):
        donation_matrix([0], [0], [-1.0])
    with pytest.raises(DataError):
        donation_matrix([0], [3], [1.0], n_projects=3)


def test_binary_cosine_by_hand() -> None:
    """A = {0,1,3}, B = {0,2}, C = {1,2}: cos(A,B) = cos(A,C) = 1/sqrt(6), cos(B,C) = 1/2."""
    similarity = item_similarity(donation_matrix(DONOR, PROJECT, AMOUNT))
    r6 = 1 / math.sqrt(6)
    assert similarity.dtype == np.float32
    np.testing.assert_allclose(similarity, [[0, r6, r6], [r6, 0, 0.5], [r6, 0.5, 0]], rtol=1e-6)


def test_log_amount_cosine_matches_loops() -> None:
    """log_amount weighting is the cosine of log1p(summed amount) columns."""
    dense = donation_matrix(DONOR, PROJECT, AMOUNT).toarray()
    columns = [[math.log1p(dense[i, p]) for i in range(4)] for p in range(3)]
    similarity = item_similarity(donation_matrix(DONOR, PROJECT, AMOUNT), weighting="log_amount")
    np.testing.assert_allclose(similarity, loop_cosine(columns), rtol=1e-6)


def test_project_without_donors_has_zero_similarity() -> None:
    """An unfunded project is similar to nothing (no division by a zero norm)."""
    similarity = item_similarity(donation_matrix([0, 0], [0, 1], [1.0, 1.0], n_projects=3))
    assert similarity[2].tolist() == [0.0, 0.0, 0.0]
    assert similarity[:, 2].tolist() == [0.0, 0.0, 0.0]


def test_unknown_weighting_is_refused() -> None:
    """Only the documented weightings are accepted."""
    with pytest.raises(ConfigError):
        item_similarity(donation_matrix(DONOR, PROJECT, AMOUNT), weighting="sqrt")  # type: ignore[arg-type]


def test_popularity_counts_distinct_donors() -> None:
    """Donor 1's two gifts to C count once."""
    assert popularity(donation_matrix(DONOR, PROJECT, AMOUNT)).tolist() == [3.0, 2.0, 2.0]


# Five projects, two pools; similarity and popularity written out by hand.
SIM = np.array(
    [
        [0.0, 0.9, 0.0, 0.2, 0.0],
        [0.9, 0.0, 0.5, 0.0, 0.0],
        [0.0, 0.5, 0.0, 0.0, 0.7],
        [0.2, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.7, 0.0, 0.0],
    ],
    dtype=np.float32,
)
POP = np.array([5.0, 1.0, 4.0, 4.0, 9.0], dtype=np.float32)
POOLS = np.array([0, 0, 0, 0, 1], dtype=np.int64)


def test_cf_sums_similarity_and_excludes_funded() -> None:
    """History {0, 2}: project 1 scores 0.9 + 0.5, project 3 scores 0.2; funded 0 and 2 never come back."""
    projects, scores, source = recommend([0, 2], SIM, POP, POOLS, pool=0, k=5)
    assert source == "cf"
    assert projects.tolist() == [1, 3]
    np.testing.assert_allclose(scores, [1.4, 0.2], rtol=1e-6)


def test_pool_restriction() -> None:
    """Project 4 is the strongest neighbour of project 2 but lives in pool 1."""
    projects, _, _ = recommend([2], SIM, POP, POOLS, pool=0, k=1)
    assert projects.tolist() == [1]
    projects, _, _ = recommend([2], SIM, POP, POOLS, pool=1, k=1)
    assert projects.tolist() == [4]


def test_popularity_fallback_without_history() -> None:
    """No history: the pool ranked by popularity, ties (projects 2 and 3) to the lower index."""
    projects, scores, source = recommend([], SIM, POP, POOLS, pool=0, k=3)
    assert source == "popularity"
    assert projects.tolist() == [0, 2, 3]
    assert scores.tolist() == [5.0, 4.0, 4.0]


def test_fill_with_popularity_after_cf() -> None:
    """History {3}: only project 0 has a positive score; the rest of k comes by popularity, scored 0."""
    projects, scores, source = recommend([3], SIM, POP, POOLS, pool=0, k=3)
    assert source == "cf"
    assert projects.tolist() == [0, 2, 1]
    np.testing.assert_allclose(scores, [0.2, 0.0, 0.0], rtol=1e-6)


def test_history_linked_only_outside_pool_is_popularity() -> None:
    """History {4} links only to project 2 in pool 0, so pool 1 has no positive candidate left."""
    projects, _, source = recommend([4], SIM, POP, POOLS, pool=1, k=3)
    assert projects.tolist() == []
    assert source == "popularity"
    projects, _, source = recommend([4], SIM, POP, POOLS, pool=0, k=2)
    assert (projects.tolist(), source) == ([2, 0], "cf")


def test_recommend_rejects_unknown_projects() -> None:
    """A history index beyond the catalogue is a data error in the reference."""
    with pytest.raises(DataError):
        recommend([7], SIM, POP, POOLS, pool=0, k=2)


def test_kernel_ignores_out_of_range_history() -> None:
    """The compiled kernel skips indices it cannot read instead of reading past the array."""
    idx, score, fallback = recommend_topk(SIM, POP, POOLS, np.array([-1, 0, 99], dtype=np.int64), 0, 5)
    expected, expected_scores, source = recommend([0], SIM, POP, POOLS, pool=0, k=5)
    assert idx.tolist() == expected.tolist()
    assert score.tolist() == expected_scores.tolist()
    assert fallback == (source == "popularity")


WEIGHTING_CHOICES: list[Weighting] = ["binary", "log_amount"]


@st.composite
def recommender_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Small sparse random rounds: integer amounts (so cosine ties occur), up to three pools, any history and k."""
    n_donors = draw(st.integers(1, 12))
    n_projects = draw(st.integers(1, 12))
    cells = st.sampled_from([0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 5.0])
    amounts = draw(arrays(np.float64, (n_donors, n_projects), elements=cells))
    rows, cols = np.nonzero(amounts)
    matrix = donation_matrix(rows, cols, amounts[rows, cols], n_donors=n_donors, n_projects=n_projects)
    weighting = draw(st.sampled_from(WEIGHTING_CHOICES))
    pools = draw(arrays(np.int64, n_projects, elements=st.integers(0, 2)))
    history = draw(arrays(np.int64, draw(st.integers(0, 4)), elements=st.integers(0, n_projects - 1)))
    return (
        item_similarity(matrix, weighting=weighting),
        popularity(matrix),
        pools,
        history,
        draw(st.integers(0, 2)),
        draw(st.integers(0, 9)),
    )


@given(recommender_cases())
def test_kernel_equals_reference(case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]) -> None:
    """recommend_topk returns the reference's projects, bit-equal scores and fallback flag."""
    similarity, pop, pools, history, pool, k = case
    expected, expected_scores, source = recommend(history, similarity, pop, pools, pool=pool, k=k)
    idx, score, fallback = recommend_topk(similarity, pop, pools, history, pool, k)
    assert idx.dtype == np.int64
    assert idx.tolist() == expected.tolist()
    assert score.tolist() == expected_scores.tolist()
    assert fallback == (source == "popularity")


@pytest.mark.parametrize("weighting", WEIGHTING_CHOICES)
def test_kernel_equals_reference_on_sparse_rounds(weighting: Weighting) -> None:
    """200 seeded sparse rounds (about a third need popularity fill after CF): kernel and reference agree."""
    rng = np.random.default_rng(11)
    sources = set()
    for _ in range(200):
        n_projects, n_donors = int(rng.integers(5, 25)), int(rng.integers(5, 40))
        dense = (rng.random((n_donors, n_projects)) < 0.08) * rng.integers(1, 4, (n_donors, n_projects))
        rows, cols = np.nonzero(dense)
        matrix = donation_matrix(rows, cols, dense[rows, cols], n_donors=n_donors, n_projects=n_projects)
        similarity, pop = item_similarity(matrix, weighting=weighting), popularity(matrix)
        pools = rng.integers(0, 3, n_projects).astype(np.int64)
        history = rng.integers(0, n_projects, int(rng.integers(0, 4))).astype(np.int64)
        pool, k = int(rng.integers(0, 3)), int(rng.integers(1, 15))
        expected, expected_scores, source = recommend(history, similarity, pop, pools, pool=pool, k=k)
        idx, score, fallback = recommend_topk(similarity, pop, pools, history, pool, k)
        assert idx.tolist() == expected.tolist()
        assert score.tolist() == expected_scores.tolist()
        assert fallback == (source == "popularity")
        sources.add((source, bool(expected_scores.size and expected_scores[-1] == 0)))
    assert ("cf", True) in sources  # the fill path was exercised
    assert ("popularity", False) in sources


@given(recommender_cases())
def test_reference_invariants(case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]) -> None:
    """Every recommendation is new, in the pool, unique, and the list is as long as it can be."""
    similarity, pop, pools, history, pool, k = case
    projects, scores, _ = recommend(history, similarity, pop, pools, pool=pool, k=k)
    candidates = set(np.flatnonzero(pools == pool).tolist()) - set(history.tolist())
    assert set(projects.tolist()) <= candidates
    assert len(set(projects.tolist())) == projects.size == min(k, len(candidates))
    assert scores.shape == projects.shape


def test_hit_rate_cf_beats_popularity_by_hand() -> None:
    """Each of four donors' last project is their strongest co-donation neighbour; popular D is never it.

    Donors 0 and 1 fund A, B then C; donor 2 A, C then B; donor 3 B, C then A;
    donors 4-8 fund only D. With the last rows hidden, A = {0,1,2},
    B = {0,1,3}, C = {2,3}: every hidden project tops its donor's CF list,
    while popularity always offers D.
    """
    rows = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 2), (2, 1), (3, 1), (3, 2), (3, 0)]
    rows += [(d, 3) for d in range(4, 9)]
    donor = np.array([d for d, _ in rows])
    project = np.array([p for _, p in rows])
    order = np.arange(len(rows)) * 100_000
    result = hit_rate_at_k(donor, project, order, np.zeros(4, dtype=np.int64), k=1)
    assert result == {"k": 1, "donors_evaluated": 4, "hit_rate_cf": 1.0, "hit_rate_popularity": 0.0}


def test_hit_rate_never_sees_the_hidden_donation() -> None:
    """Donor 0's only link from A to B is the hidden donation itself; leaking it would make a hit.

    Donor 0 funds A then B (hidden); donors 1-3 fund C, donor 4 funds B. Fitted
    on all rows, A -> B is the donor's top CF pick; fitted without the hidden
    row there is no co-donation at all and popularity offers C.
    """
    donor = np.array([0, 0, 1, 2, 3, 4])
    project = np.array([0, 1, 2, 2, 2, 1])
    order = np.array([1, 10, 2, 3, 4, 5])
    pools = np.zeros(3, dtype=np.int64)
    leaky = donation_matrix(donor, project, np.ones(6))
    leaked, _, _ = recommend([0], item_similarity(leaky), popularity(leaky), pools, pool=0, k=1)
    assert leaked.tolist() == [1]  # the answer a leak would give

    result = hit_rate_at_k(donor, project, order, pools, k=1)
    assert result["donors_evaluated"] == 1
    assert result["hit_rate_cf"] == 0.0
    assert hit_rate_at_k(donor, project, order, pools, k=2)["hit_rate_cf"] == 1.0


def test_holdout_drops_every_row_to_the_hidden_project() -> None:
    """A repeat gift to the hidden project is hidden too; single-project donors are not evaluated."""
    donor = np.array([0, 0, 0, 1, 1, 2])
    project = np.array([1, 0, 1, 2, 2, 0])
    order = np.array([5, 6, 9, 1, 2, 3])
    evaluated, hidden, keep = holdout_last(donor, project, order)
    assert evaluated.tolist() == [0]
    assert hidden.tolist() == [1]
    assert keep.tolist() == [False, True, False, True, True, True]


def test_holdout_uses_order_key_not_row_position() -> None:
    """The hidden donation is the one with the highest order key, wherever its row is."""
    evaluated, hidden, keep = holdout_last([0, 0, 0], [2, 1, 0], [300_001, 900_000, 100_000])
    assert (evaluated.tolist(), hidden.tolist(), keep.tolist()) == ([0], [1], [True, False, True])


def test_hit_rate_with_nobody_to_evaluate() -> None:
    """Without a donor of two projects the rates are undefined (NaN) and the count says why."""
    result = hit_rate_at_k([0, 1], [0, 1], [1, 2], [0, 0])
    assert result["donors_evaluated"] == 0
    assert math.isnan(result["hit_rate_cf"])


def test_log_amount_evaluation_needs_amounts() -> None:
    """log_amount weighting without amounts is refused, with amounts it runs."""
    with pytest.raises(ConfigError):
        hit_rate_at_k([0, 0], [0, 1], [1, 2], [0, 0], weighting="log_amount")
    result = hit_rate_at_k([0, 0], [0, 1], [1, 2], [0, 0], amount=[1.0, 2.0], weighting="log_amount")
    assert result["donors_evaluated"] == 1


def test_arrays_round_trip_through_npz(tmp_path: Path) -> None:
    """save then load gives the same arrays and ids, with the dtypes the kernel expects."""
    matrix = donation_matrix(DONOR, PROJECT, AMOUNT)
    arrays_ = fit_recommender(matrix, [0, 0, 1], ["0xa", "0xb", "0xc"])
    path = f"{tmp_path}/recommender.npz"
    arrays_.save(path)
    loaded = RecommenderArrays.load(path)
    assert loaded.project_ids == ["0xa", "0xb", "0xc"]
    assert loaded.similarity.dtype == np.float32
    assert loaded.project_pool.dtype == np.int64
    np.testing.assert_array_equal(loaded.similarity, arrays_.similarity)
    np.testing.assert_array_equal(loaded.popularity, [3.0, 2.0, 2.0])
    np.testing.assert_array_equal(loaded.project_pool, [0, 0, 1])


def test_arrays_refuse_mismatched_shapes(tmp_path: Path) -> None:
    """Arrays that disagree on the project count, or a foreign archive, are data errors."""
    with pytest.raises(DataError):
        RecommenderArrays(SIM, POP, POOLS, ["a", "b"])
    path = f"{tmp_path}/other.npz"
    np.savez(path, something=np.zeros(2))
    with pytest.raises(DataError):
        RecommenderArrays.load(path)
