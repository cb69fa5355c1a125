"""COCM: the numba kernel, the numpy blocks and the dense transcription equal qf-calculator's COCM, loop by loop."""

from __future__ import annotations

import csv
import lzma
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.matching.cocm import (
    Variant,
    cocm,
    cocm_donors,
    cocm_funding,
)
from qf_sentinel.qf.matching.standard import standard_qf
from tests.matching.cocm_reference import cocm_funding_blocks, cocm_funding_reference
from tests.matching.strategies import contribution_matrices
from tests.sim.test_gitcoin import ROUND9

VARIANTS: list[Variant] = ["markov", "harsh"]
IMPLEMENTATIONS = (cocm_funding, cocm_funding_blocks, cocm_funding_reference)

# Successful, positive Round 9 rows read for the prefix test: about 410 donors
# x 190 grants, enough single-project donors, and a loop reference in seconds.
ROUND9_PREFIX_ROWS = 2000


def qf_calculator_cocm(matrix: np.ndarray, *, harsh: bool) -> list[float]:
    """``COCM(donation_df, cluster_df=donation_df, calcstyle="markov", harsh=harsh)`` of qf-calculator, in loops.

    Same steps and names as ``fundingutils.COCM``, over lists. Sums skip terms
    that are exactly zero (a donor's empty entries, and the rows of donors who
    did not fund ``p``, whose ``C`` row and hence ``K`` row are zero in both
    variants); skipping them changes nothing but the running time.
    """
    table = [[float(x) for x in row] for row in matrix]
    n_projects_in = matrix.shape[1]
    # align(): drop wallets whose row is all zero, then projects without any donation.
    rows = [row for row in table if not all(x == 0 for x in row)]
    projects = [p for p in range(n_projects_in) if sum(row[p] for row in rows) != 0]
    donation = [[row[p] for p in projects] for row in rows]
    n, m = len(donation), len(projects)
    gave = [[g for g in range(m) if donation[i][g] > 0] for i in range(n)]
    givers = [[i for i in range(n) if donation[i][g] > 0] for g in range(m)]

    # normalized_clusters: each wallet's row divided by its total.
    normalized_clusters = [[x / sum(row) for x in row] for row in donation]
    binarized_clusters = [[1.0 if x > 0 else 0.0 for x in row] for row in donation]
    # normalized_users: cluster_df.T, each project's row (its donors) divided by its total.
    project_total = [sum(donation[i][g] for i in range(n)) for g in range(m)]
    normalized_users = [[donation[i][g] / project_total[g] for i in range(n)] for g in range(m)]
    # PJP = normalized_users . normalized_clusters
    pjp = [[0.0] * m for _ in range(m)]
    for g in range(m):
        for i in givers[g]:
            for h in gave[i]:
                pjp[g][h] += normalized_users[g][i] * normalized_clusters[i][h]
    # k_indicators = normalized_clusters . PJP, then the row-wise maximum with binarized_clusters.
    k_indicators = []
    for i in range(n):
        walk = [0.0] * m
        for g in gave[i]:
            for h in range(m):
                walk[h] += normalized_clusters[i][g] * pjp[g][h]
        k_indicators.append([max(walk[h], binarized_clusters[i][h]) for h in range(m)])

    funding = [0.0] * n_projects_in  # projects align dropped stay at 0
    for p in range(m):
        # P_prime = K.T . normalized_clusters, with K[i][g] from C[i][g] = donation[i][p].
        p_prime = [[0.0] * m for _ in range(m)]
        for i in givers[p]:
            c = donation[i][p]
            k = k_indicators[i]
            if harsh:
                big_k = [(1 - k[g]) * c for g in range(m)]
            else:
                big_k = [k[g] * math.sqrt(c) + (1 - k[g]) * c for g in range(m)]
            for h in gave[i]:
                weight = normalized_clusters[i][h]
                for g in range(m):
                    p_prime[g][h] += big_k[g] * weight
        # P = (P_prime * P_prime.T) ** 0.5 with the diagonal zeroed, summed. pandas' root of a
        # negative is NaN and .sum() skips NaN, so a product rounding left below 0 adds nothing.
        total = 0.0
        for g in range(m):
            for h in range(m):
                product = p_prime[g][h] * p_prime[h][g]
                if g != h and product >= 0:
                    total += math.sqrt(product)
        funding[projects[p]] = total
    return funding


def qf_calculator_shares(matrix: np.ndarray, cocm_funding: list[float], pct_cocm: float) -> list[float]:
    """``get_qf_matching``'s normalised funding: "COCM" when ``pct_cocm == 1`` (as Home.py picks), else "pctCOCM".

    ``cocm_funding`` is :func:`qf_calculator_cocm` of ``matrix``, passed in so it is computed once.
    """

    def normalize(funding: list[float]) -> list[float]:
        total = sum(funding)
        return funding if total == 0 else [f / total for f in funding]

    cocm_normalized = normalize(cocm_funding)
    if pct_cocm == 1:
        return normalize(cocm_normalized)
    columns = [[float(x) for x in matrix[:, p]] for p in range(matrix.shape[1])]
    std_qf_normalized = normalize([sum(math.sqrt(x) for x in col) ** 2 - sum(col) for col in columns])
    crossfade = [a * pct_cocm + b * (1 - pct_cocm) for a, b in zip(cocm_normalized, std_qf_normalized, strict=True)]
    return normalize(crossfade)


def old_exclusion_cocm(matrix: np.ndarray, variant: str) -> list[float]:
    """This project's earlier COCM, in loops: donors of one project or of every funded project removed first."""
    donors_all, projects = matrix.shape
    funded = sum(1 for p in range(projects) if any(matrix[i, p] > 0 for i in range(donors_all)))
    rows = []
    for i in range(donors_all):
        degree = sum(1 for p in range(projects) if matrix[i, p] > 0)
        if 2 <= degree < funded:
            rows.append([float(x) for x in matrix[i]])
    n = len(rows)
    if n == 0:
        return [0.0] * projects
    weight = [[x / sum(row) for x in row] for row in rows]
    totals = [sum(rows[i][g] for i in range(n)) for g in range(projects)]
    by_project = [[rows[i][g] / totals[g] if totals[g] > 0 else 0.0 for i in range(n)] for g in range(projects)]
    walk = [[sum(by_project[g][i] * weight[i][h] for i in range(n)) for h in range(projects)] for g in range(projects)]
    close = [
        [
            max(sum(weight[i][g] * walk[g][h] for g in range(projects)), 1.0 if rows[i][h] > 0 else 0.0)
            for h in range(projects)
        ]
        for i in range(n)
    ]
    funding = []
    for p in range(projects):
        spread = []
        for i in range(n):
            c = rows[i][p]
            if variant == "harsh":
                spread.append([(1 - close[i][g]) * c for g in range(projects)])
            else:
                spread.append([close[i][g] * math.sqrt(c) + (1 - close[i][g]) * c for g in range(projects)])
        pair = [[sum(spread[i][g] * weight[i][h] for i in range(n)) for h in range(projects)] for g in range(projects)]
        funding.append(
            sum(
                math.sqrt(max(pair[g][h] * pair[h][g], 0.0)) for g in range(projects) for h in range(projects) if g != h
            )
        )
    return funding


def assert_funding_equal(got: np.ndarray, expected: list[float]) -> None:
    """Equal to 1e-9, relative to each value and to the round's largest one."""
    scale = 1e-9 * (1.0 + max((abs(x) for x in expected), default=0.0))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=scale)


# A bridge: donor 0 gives to A and B, donor 1 to B and C. Worked by hand:
# W = [(.5,.5,0), (0,.5,.5)], k0 = max((.375,.5,.125), (1,1,0)) = (1,1,.125), k1 mirrored.
BRIDGE = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])

# A triangle of two-project donors (A+B, B+C, A+C) and a donor of C alone.
TRIANGLE_AND_SINGLE = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])

# Donors of one project (5 to A, 7 to C) and of every project, around the bridge, plus an empty row.
MIXED = np.vstack([BRIDGE, [[5.0, 0.0, 0.0], [0.0, 0.0, 7.0], [2.0, 3.0, 4.0], [0.0, 0.0, 0.0]]])


def test_hand_checked_bridge_harsh() -> None:
    """Harsh: only B earns, from the A-C pair its two donors bridge: 2 * 0.875 * 0.5 = 0.875."""
    np.testing.assert_allclose(cocm_funding(BRIDGE, variant="harsh"), [0.0, 0.875, 0.0], atol=1e-12)
    np.testing.assert_allclose(cocm(BRIDGE, variant="harsh"), [0.0, 1.0, 0.0], atol=1e-12)


def test_hand_checked_bridge_markov() -> None:
    """Markov with unit gifts: K = 1 everywhere, so funding is sum_{g != h} sqrt(w_g w_h)."""
    expected = [1.0, 1.0 + 2.0 * math.sqrt(2.0), 1.0]
    np.testing.assert_allclose(cocm_funding(BRIDGE, variant="markov"), expected, rtol=1e-12)


def test_single_project_donor_changes_harsh_funding_by_hand() -> None:
    """A donor of C alone dilutes C's walk row, PJP[C] = (1/6, 1/6, 2/3), and so moves every project.

    Worked by hand: k for the A+C donor towards B is (PJP[A][B] + PJP[C][B]) / 2 = 5/24,
    so A and B each get 2 * sqrt(19/48 * 3/8), and C gets 2 * 19/48 from the A-B pair.
    Without that donor (the old exclusion) the triangle is symmetric: 0.75 each.
    """
    expected = [2 * math.sqrt(19 / 48 * 3 / 8), 2 * math.sqrt(19 / 48 * 3 / 8), 19 / 24]
    for implementation in IMPLEMENTATIONS:
        np.testing.assert_allclose(implementation(TRIANGLE_AND_SINGLE, variant="harsh"), expected, rtol=1e-12)
    np.testing.assert_allclose(qf_calculator_cocm(TRIANGLE_AND_SINGLE, harsh=True), expected, rtol=1e-12)
    old = cocm_funding(TRIANGLE_AND_SINGLE, variant="harsh", exclude_uninformative_donors=True)
    np.testing.assert_allclose(old, [0.75, 0.75, 0.75], rtol=1e-12)
    assert cocm(TRIANGLE_AND_SINGLE)[2] == pytest.approx(19 / 24 / (4 * math.sqrt(19 / 48 * 3 / 8) + 19 / 24))


def test_markov_pays_a_round_of_only_uninformative_donors() -> None:
    """Donors of A+B (every project) and of A alone: the old exclusion leaves nothing, markov pays (sqrt 3, 1).

    By hand: W = [(.5, .5), (1, 0)], PJP = [(.75, .25), (.5, .5)], k = [(1, 1), (1, .25)],
    so K = 1 everywhere and P'[A, B] = .5 with P'[B, A] = 1.5 for A, .5 and .5 for B.
    """
    matrix = np.array([[1.0, 1.0], [1.0, 0.0]])
    for implementation in IMPLEMENTATIONS:
        np.testing.assert_allclose(implementation(matrix, variant="markov"), [math.sqrt(3.0), 1.0], rtol=1e-12)
        np.testing.assert_array_equal(implementation(matrix, variant="harsh"), [0.0, 0.0])
    np.testing.assert_array_equal(cocm(matrix, variant="markov", exclude_uninformative_donors=True), [0.0, 0.0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_single_and_all_project_donors_count_as_in_qf_calculator(variant: Variant) -> None:
    """With donors of one project and of every project, all versions equal the loop reference, not the old one."""
    expected = qf_calculator_cocm(MIXED, harsh=variant == "harsh")
    for implementation in IMPLEMENTATIONS:
        assert_funding_equal(implementation(MIXED, variant=variant), expected)
    old = old_exclusion_cocm(MIXED, variant)
    assert np.abs(np.asarray(expected) - np.asarray(old)).max() > 0.05 * max(expected)
    for implementation in IMPLEMENTATIONS:
        assert_funding_equal(implementation(MIXED, variant=variant, exclude_uninformative_donors=True), old)
    np.testing.assert_array_equal(cocm_donors(MIXED), [True, True, False, False, False, False])


@pytest.mark.parametrize("variant", VARIANTS)
def test_empty_projects_get_zero_and_change_nothing(variant: Variant) -> None:
    """An accepted project nobody gave to gets 0, and the others get what they get without it."""
    with_empty = np.insert(MIXED, 1, 0.0, axis=1)
    for implementation in IMPLEMENTATIONS:
        funding = implementation(with_empty, variant=variant)
        assert funding[1] == 0.0
        np.testing.assert_allclose(np.delete(funding, 1), implementation(MIXED, variant=variant), rtol=1e-12)
    shares = cocm(with_empty, variant=variant, pct_cocm=0.5)
    assert shares[1] == 0.0
    np.testing.assert_allclose(np.delete(shares, 1), cocm(MIXED, variant=variant, pct_cocm=0.5), rtol=1e-12)


def test_nothing_to_match_gives_zero_shares() -> None:
    """All-zero rounds, or rounds where every donor gave to one project only, get all-zero COCM shares."""
    np.testing.assert_array_equal(cocm(np.zeros((3, 2))), [0.0, 0.0])
    np.testing.assert_array_equal(cocm(np.zeros((0, 2))), [0.0, 0.0])
    single = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 4.0]])
    for variant in VARIANTS:
        np.testing.assert_array_equal(cocm(single, variant=variant), [0.0, 0.0])
    # The crossfade still hands the QF part out, renormalised.
    np.testing.assert_allclose(cocm(single, pct_cocm=0.5), [1.0, 0.0])


def test_bad_arguments_are_refused() -> None:
    """An unknown variant or a crossfade outside [0, 1] is a configuration error."""
    with pytest.raises(ConfigError):
        cocm(BRIDGE, variant="og")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        cocm(BRIDGE, pct_cocm=1.5)


@given(contribution_matrices(max_donors=8, max_projects=5), st.sampled_from(VARIANTS))
def test_all_implementations_equal_qf_calculator(matrix: np.ndarray, variant: Variant) -> None:
    """Numba kernel, numpy blocks and dense transcription all equal the loop reference to 1e-9."""
    expected = qf_calculator_cocm(matrix, harsh=variant == "harsh")
    for implementation in IMPLEMENTATIONS:
        assert_funding_equal(implementation(matrix, variant=variant), expected)


@given(
    contribution_matrices(max_donors=8, max_projects=5),
    st.sampled_from(VARIANTS),
    st.sampled_from([1.0, 0.75, 0.5, 0.25]) | st.floats(min_value=0.0, max_value=1.0),
)
def test_shares_equal_qf_calculator(matrix: np.ndarray, variant: Variant, pct: float) -> None:
    """The crossfaded, renormalised shares equal get_qf_matching's to 1e-9.

    Rounds whose whole standard-QF total is rounding noise (no project with two
    donors: each sqrt(c)**2 - c is +-1e-16) are left out of the crossfade
    check: the calculator normalises that noise into shares, we clip it to 0.
    """
    qf_total = sum(sum(math.sqrt(x) for x in matrix[:, p]) ** 2 - matrix[:, p].sum() for p in range(matrix.shape[1]))
    assume(pct == 1 or abs(qf_total) > 1e-9 * (1.0 + matrix.sum()))
    expected = qf_calculator_shares(matrix, qf_calculator_cocm(matrix, harsh=variant == "harsh"), pct)
    np.testing.assert_allclose(cocm(matrix, variant=variant, pct_cocm=pct), expected, rtol=1e-9, atol=1e-9)


@given(contribution_matrices(max_donors=8, max_projects=5), st.sampled_from(VARIANTS))
def test_old_exclusion_equals_its_loop_reference(matrix: np.ndarray, variant: Variant) -> None:
    """exclude_uninformative_donors=True still gives the project's earlier COCM, in every implementation."""
    expected = old_exclusion_cocm(matrix, variant)
    for implementation in IMPLEMENTATIONS:
        assert_funding_equal(implementation(matrix, variant=variant, exclude_uninformative_donors=True), expected)


@given(contribution_matrices(), st.sampled_from(VARIANTS), st.floats(min_value=0.0, max_value=1.0), st.booleans())
def test_shares_are_a_distribution(matrix: np.ndarray, variant: Variant, pct: float, exclude: bool) -> None:
    """Shares are non-negative and sum to 1, or are all zero."""
    shares = cocm(matrix, variant=variant, pct_cocm=pct, exclude_uninformative_donors=exclude)
    assert np.all(shares >= 0)
    assert shares.sum() == pytest.approx(1.0) or not shares.any()


@given(contribution_matrices())
def test_zero_crossfade_is_standard_qf(matrix: np.ndarray) -> None:
    """pct_cocm = 0 gives the standard QF shares."""
    _, raw = standard_qf(matrix)
    expected = raw / raw.sum() if raw.sum() > 0 else raw
    np.testing.assert_allclose(cocm(matrix, pct_cocm=0.0), expected, rtol=1e-9, atol=1e-12)


@given(contribution_matrices(), st.floats(min_value=1e-2, max_value=1e2))
def test_harsh_shares_are_scale_invariant(matrix: np.ndarray, factor: float) -> None:
    """Harsh COCM funding is linear in the amounts, so its shares ignore the currency unit."""
    funding = cocm_funding(matrix, variant="harsh")
    np.testing.assert_allclose(
        cocm_funding(matrix * factor, variant="harsh"),
        funding * factor,
        rtol=1e-9,
        atol=1e-9 * (1 + funding.sum() * factor),
    )


@pytest.fixture(scope="module")
def round9_prefix() -> np.ndarray:
    """Donor x grant totals of the first successful, positive Round 9 rows (csv and lzma only)."""
    totals: dict[tuple[int, int], float] = {}
    donors: dict[str, int] = {}
    grants: dict[str, int] = {}
    kept = 0
    with lzma.open(ROUND9, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["success"] != "True" or float(row["amount"]) <= 0:
                continue
            key = (donors.setdefault(row["contributor"], len(donors)), grants.setdefault(row["grant"], len(grants)))
            totals[key] = totals.get(key, 0.0) + float(row["amount"])
            kept += 1
            if kept == ROUND9_PREFIX_ROWS:
                break
    matrix = np.zeros((len(donors), len(grants)))
    for (donor, grant), amount in totals.items():
        matrix[donor, grant] = amount
    return matrix


@pytest.mark.slow
def test_round9_prefix_has_uninformative_donors(round9_prefix: np.ndarray) -> None:
    """The prefix holds single-project donors, so the Round 9 checks below exercise them."""
    degree = (round9_prefix > 0).sum(axis=1)
    assert (degree == 1).sum() > 100
    assert round9_prefix.shape[1] > 150


@pytest.fixture(scope="module")
def round9_reference(round9_prefix: np.ndarray) -> dict[str, list[float]]:
    """The loop reference's funding of the prefix, per variant, computed once for the tests below."""
    return {variant: qf_calculator_cocm(round9_prefix, harsh=variant == "harsh") for variant in VARIANTS}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_round9_prefix_equals_qf_calculator(
    round9_prefix: np.ndarray, round9_reference: dict[str, list[float]], variant: Variant
) -> None:
    """On real Round 9 donations every implementation equals the loop reference; the old exclusion does not."""
    expected = round9_reference[variant]
    for implementation in IMPLEMENTATIONS:
        assert_funding_equal(implementation(round9_prefix, variant=variant), expected)
    shares = np.asarray(expected) / sum(expected)
    old = cocm(round9_prefix, variant=variant, exclude_uninformative_donors=True)
    assert np.abs(old - shares).max() > 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("pct", [1.0, 0.5])
def test_round9_prefix_shares_equal_qf_calculator(
    round9_prefix: np.ndarray, round9_reference: dict[str, list[float]], pct: float
) -> None:
    """Harsh COCM shares, alone and crossfaded half and half with QF, equal get_qf_matching's."""
    expected = qf_calculator_shares(round9_prefix, round9_reference["harsh"], pct)
    np.testing.assert_allclose(cocm(round9_prefix, pct_cocm=pct), expected, rtol=1e-9, atol=1e-12)
