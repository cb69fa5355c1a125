"""Eligibility: the donations that count equal a row-by-row transcription of qf-calculator's rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.matching.eligibility import Eligibility, EligibleContributions, eligible_contributions

DONORS = ["0xalice", "0xbob", "0xcarol", "0xdave", "0xerin"]
# Project 0 is paid to 0xpay0 and owned by 0xowner0; project 1's profile is owned by erin.
PROJECT_SELF = [{"0xproject0", "0xpay0", "0xowner0"}, {"0xproject1", "0xpay1", "0xerin"}]
# Passport scores; dave has none.
SCORES = [15.0, 25.0, 20.0, None, 30.0]

# (donor, project, amount): alice twice to 0, bob exactly at a minimum of 1, carol below it,
# dave unscored, erin to her own project and elsewhere.
DONATIONS = [
    (0, 0, 0.5),
    (0, 0, 0.5),
    (0, 1, 2.0),
    (1, 0, 1.0),
    (1, 1, 3.0),
    (2, 1, 0.99),
    (2, 0, 4.0),
    (3, 0, 5.0),
    (4, 1, 6.0),
    (4, 0, 7.0),
]


def calculator_rules(
    donations: list[tuple[int, int, float]],
    *,
    min_donation: float | None,
    exclude_self: bool,
    score_lower: float | None,
    score_upper: float | None,
    scores: list[float | None] = SCORES,
) -> np.ndarray:
    """apply_voting_eligibility then pivot_votes of qf-calculator, one vote at a time.

    A rule that is off takes the calculator's "nothing to check" setting: a
    threshold of 0, and for scores its sybilDefense "none" (every score 1,
    both thresholds 0). Self-votes compare the voter with the project's self
    addresses instead of the payout address alone.
    """
    threshold = 0.0 if min_donation is None else min_donation
    if score_lower is None or score_upper is None:
        scores, score_lower, score_upper = [1.0] * len(DONORS), 0.0, 0.0
    matrix = np.zeros((len(DONORS), len(PROJECT_SELF)))
    for voter, project, amount_usd in donations:
        raw_score = scores[voter]
        raw_score = 0.0 if raw_score is None else raw_score  # df["rawScore"].fillna(0)
        self_vote = exclude_self and DONORS[voter] in PROJECT_SELF[project]
        low_score = raw_score < score_lower
        low_amount = amount_usd < threshold
        base_vote = not low_amount and not low_score and not self_vote
        scaled = amount_usd * float(np.interp(raw_score, [score_lower, score_upper], [0.5, 1.0]))
        if raw_score > score_upper:
            scaled = amount_usd
        if not base_vote:
            scaled = 0.0
        matrix[voter, project] += scaled  # pivot_table(aggfunc="sum", fill_value=0)
    return matrix


def run(
    rules: Eligibility, donations: list[tuple[int, int, float]] = DONATIONS, scores: list[float | None] = SCORES
) -> EligibleContributions:
    donor, project, amount = zip(*donations, strict=True) if donations else ((), (), ())
    return eligible_contributions(
        np.array(donor, dtype=np.int64),
        np.array(project, dtype=np.int64),
        np.array(amount, dtype=np.float64),
        n_donors=len(DONORS),
        n_projects=len(PROJECT_SELF),
        rules=rules,
        donor_addresses=DONORS,
        donor_scores=[math.nan if s is None else s for s in scores],
        project_self_addresses=PROJECT_SELF,
    )


def expected_for(rules: Eligibility, scores: list[float | None] = SCORES) -> np.ndarray:
    return calculator_rules(
        DONATIONS,
        min_donation=rules.min_donation,
        exclude_self=rules.exclude_self,
        score_lower=rules.score_lower,
        score_upper=rules.score_upper,
        scores=scores,
    )


def test_no_rules_sum_every_donation() -> None:
    """With the defaults every donation counts in full, summed per donor and project."""
    result = run(Eligibility())
    expected = [[1.0, 2.0], [1.0, 3.0], [4.0, 0.99], [5.0, 0.0], [7.0, 6.0]]
    np.testing.assert_allclose(result.matrix, expected)
    assert result.excluded.excluded == 0
    assert result.excluded.amount_counted == pytest.approx(sum(a for _, _, a in DONATIONS))


def test_minimum_applies_per_donation_before_summing() -> None:
    """Alice's two 0.5 gifts sum to 1 but each is below the minimum; bob's gift exactly at it counts."""
    rules = Eligibility(min_donation=1.0)
    result = run(rules)
    np.testing.assert_allclose(result.matrix, expected_for(rules))
    assert result.matrix[0, 0] == 0.0
    assert result.matrix[1, 0] == 1.0
    assert result.matrix[2, 1] == 0.0
    assert result.excluded.below_minimum == 3


def test_self_donation_is_excluded_only_where_it_is_self() -> None:
    """Erin's gift to the project she owns counts 0; her gift to another project counts."""
    rules = Eligibility(exclude_self=True)
    result = run(rules)
    np.testing.assert_allclose(result.matrix, expected_for(rules))
    assert result.matrix[4, 1] == 0.0
    assert result.matrix[4, 0] == 7.0
    assert result.excluded.self_donations == 1


def test_payout_address_counts_as_self() -> None:
    """A donation from the project's payout address is a self-donation too."""
    donors = ["0xpay0", "0xbob"]
    result = eligible_contributions(
        [0, 1],
        [0, 0],
        [2.0, 3.0],
        n_donors=2,
        n_projects=1,
        rules=Eligibility(exclude_self=True),
        donor_addresses=donors,
        project_self_addresses=[PROJECT_SELF[0]],
    )
    np.testing.assert_array_equal(result.matrix, [[0.0], [3.0]])


def test_scores_scale_between_the_thresholds() -> None:
    """Lower 15, upper 25: a score at 15 keeps half, 20 three quarters, at 25 or above all; no score is 0."""
    rules = Eligibility(score_lower=15.0, score_upper=25.0)
    result = run(rules)
    np.testing.assert_allclose(result.matrix, expected_for(rules))
    np.testing.assert_allclose(result.matrix, [[0.5, 1.0], [1.0, 3.0], [3.0, 0.7425], [0.0, 0.0], [7.0, 6.0]])
    assert result.excluded.donors_unscored == 1
    assert result.excluded.donors_low_score == 1
    assert result.excluded.low_score == 1
    assert result.excluded.scaled == 5  # alice's three and carol's two


def test_score_just_below_lower_is_excluded() -> None:
    """A score a hair under score_lower counts 0, not half."""
    scores: list[float | None] = [14.999, 25.0, 20.0, None, 30.0]
    rules = Eligibility(score_lower=15.0, score_upper=25.0)
    result = run(rules, scores=scores)
    np.testing.assert_allclose(result.matrix, expected_for(rules, scores))
    assert not result.matrix[0].any()


def test_equal_thresholds_keep_the_full_amount_at_the_threshold() -> None:
    """lower == upper == 25 (the calculator's Avalanche setting): 25 keeps everything, 20 and no score nothing."""
    rules = Eligibility(score_lower=25.0, score_upper=25.0)
    result = run(rules)
    np.testing.assert_allclose(result.matrix, expected_for(rules))
    np.testing.assert_allclose(result.matrix, [[0.0, 0.0], [1.0, 3.0], [0.0, 0.0], [0.0, 0.0], [7.0, 6.0]])


def test_zero_thresholds_keep_unscored_donors() -> None:
    """lower == upper == 0: a missing score is 0, which is not below 0, so the donor counts in full."""
    rules = Eligibility(score_lower=0.0, score_upper=0.0)
    result = run(rules)
    np.testing.assert_allclose(result.matrix, expected_for(rules))
    assert result.matrix[3, 0] == 5.0
    assert result.excluded.donors_unscored == 1
    assert result.excluded.low_score == 0


def test_all_rules_together_and_their_counts() -> None:
    """Every knob on at once equals the transcription, and each donation is counted once in ``excluded``."""
    rules = Eligibility(min_donation=1.0, exclude_self=True, score_lower=15.0, score_upper=25.0)
    result = run(rules)
    np.testing.assert_allclose(result.matrix, expected_for(rules))
    counts = result.excluded.as_dict()
    assert counts == {
        "donations": 10,
        "below_minimum": 3,  # alice 0.5 twice, carol 0.99
        "self_donations": 1,  # erin to project 1
        "low_score": 1,  # dave, unscored
        "excluded": 5,
        "scaled": 2,  # alice's 2.0 and carol's 4.0, the others being excluded or at full score
        "donors_unscored": 1,
        "donors_low_score": 1,
        "amount_total": pytest.approx(29.99),
        "amount_counted": pytest.approx(1.0 + 1.0 + 3.0 + 3.0 + 7.0),
    }
    json.dumps(counts)


def test_params_are_json_and_numbers_are_floats() -> None:
    """params() is a plain JSON-able dict; integer thresholds come back as floats."""
    rules = Eligibility(min_donation=1, exclude_self=True, score_lower=15, score_upper=25)
    params = rules.params()
    assert params == {"min_donation": 1.0, "exclude_self": True, "score_lower": 15.0, "score_upper": 25.0}
    assert all(type(params[k]) is float for k in ("min_donation", "score_lower", "score_upper"))
    assert json.loads(json.dumps(params)) == params
    assert Eligibility().params() == {
        "min_donation": None,
        "exclude_self": False,
        "score_lower": None,
        "score_upper": None,
    }
    assert rules.scales_by_score
    assert not Eligibility(min_donation=1.0).scales_by_score


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_donation": -1.0},
        {"min_donation": math.nan},
        {"min_donation": math.inf},
        {"min_donation": True},
        {"min_donation": "1"},
        {"exclude_self": 1},
        {"score_lower": 25.0, "score_upper": 15.0},
        {"score_lower": 15.0},
        {"score_upper": 25.0},
        {"score_lower": -1.0, "score_upper": 25.0},
        {"score_lower": 15.0, "score_upper": math.inf},
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object]) -> None:
    """Negative or non-finite thresholds, lower above upper, or half a score range are configuration errors."""
    with pytest.raises(ConfigError):
        Eligibility(**kwargs)  # type: ignore[arg-type]


def test_malformed_donations_are_refused() -> None:
    """Indexes out of range, ragged arrays, negative amounts and missing per-donor inputs are data errors."""
    base = {"n_donors": 2, "n_projects": 1, "rules": Eligibility()}
    with pytest.raises(DataError):
        eligible_contributions([0, 2], [0, 0], [1.0, 1.0], **base)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        eligible_contributions([0, 1], [0], [1.0, 1.0], **base)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        eligible_contributions([0, 1], [0, 0], [1.0, -1.0], **base)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        eligible_contributions([0.0, 1.0], [0, 0], [1.0, 1.0], **base)  # type: ignore[arg-type]
    scoring = {"n_donors": 2, "n_projects": 1, "rules": Eligibility(score_lower=1.0, score_upper=2.0)}
    with pytest.raises(DataError):
        eligible_contributions([0], [0], [1.0], **scoring)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        eligible_contributions([0], [0], [1.0], donor_scores=[1.0], **scoring)  # type: ignore[arg-type]
    selfish = {"n_donors": 2, "n_projects": 1, "rules": Eligibility(exclude_self=True)}
    with pytest.raises(DataError):
        eligible_contributions([0], [0], [1.0], donor_addresses=["0xa", "0xb"], **selfish)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        eligible_contributions(
            [0],
            [0],
            [1.0],
            donor_addresses=["0xa", "0xa"],
            project_self_addresses=[set()],
            **selfish,  # type: ignore[arg-type]
        )


def test_no_donations_give_an_empty_matrix() -> None:
    """A round without donations yields a zero matrix of the requested shape."""
    result = run(Eligibility(min_donation=1.0, exclude_self=True, score_lower=1.0, score_upper=2.0), donations=[])
    np.testing.assert_array_equal(result.matrix, np.zeros((len(DONORS), len(PROJECT_SELF))))
    assert result.excluded.donations == 0


donations = st.lists(
    st.tuples(
        st.integers(0, len(DONORS) - 1),
        st.integers(0, len(PROJECT_SELF) - 1),
        st.sampled_from([0.0, 0.5, 1.0, 2.5]) | st.floats(0.0, 100.0),
    ),
    max_size=20,
)
scores = st.lists(st.none() | st.sampled_from([0.0, 15.0, 25.0]) | st.floats(0.0, 60.0), min_size=5, max_size=5)
thresholds = st.none() | st.tuples(st.floats(0.0, 40.0), st.floats(0.0, 40.0)).map(sorted)


@given(donations, scores, st.none() | st.sampled_from([0.0, 1.0]) | st.floats(0.0, 50.0), st.booleans(), thresholds)
def test_any_donations_equal_the_transcription(
    gifts: list[tuple[int, int, float]],
    donor_scores: list[float | None],
    min_donation: float | None,
    exclude_self: bool,
    score_range: list[float] | None,
) -> None:
    """For any donations, scores and rules, the matrix equals the calculator's rules vote by vote."""
    lower, upper = (None, None) if score_range is None else score_range
    rules = Eligibility(min_donation=min_donation, exclude_self=exclude_self, score_lower=lower, score_upper=upper)
    result = run(rules, donations=gifts, scores=donor_scores)
    expected = calculator_rules(
        gifts,
        min_donation=min_donation,
        exclude_self=exclude_self,
        score_lower=lower,
        score_upper=upper,
        scores=donor_scores,
    )
    np.testing.assert_allclose(result.matrix, expected, rtol=1e-12, atol=1e-12)
    assert result.excluded.excluded <= result.excluded.donations == len(gifts)
    assert result.excluded.amount_counted == pytest.approx(float(expected.sum()))
