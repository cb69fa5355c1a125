"""The pure experiment logic: configurations, hash buckets, bandit choices and statistics."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chi2_contingency, chisquare

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.experiments.logic import (
    ExperimentConfig,
    VariantCounts,
    chi_square_test,
    choose_variant,
    experiment_stats,
    hash_bucket,
    lift_interval,
    parse_policy,
    validate_reward,
)

VARIANTS = ("baseline", "recommend", "cluster")
#: True conversion rates of the simulated stream; "recommend" is the best.
RATES = {"baseline": 0.05, "recommend": 0.10, "cluster": 0.07}


def counts_of(**rows: tuple[int, int]) -> dict[str, VariantCounts]:
    """``variant=(exposures, conversions)`` with 0/1 rewards, so successes equal conversions."""
    return {v: VariantCounts(n, float(c), c) for v, (n, c) in rows.items()}


# Configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, r"must match \[a-z0-9_-\]\{1,64\}"),
        ({"name": ""}, "must match"),
        ({"name": "x" * 65}, "must match"),
        ({"name": "a:b"}, "must match"),
        ({"variants": ("baseline",), "baseline": "baseline"}, "at least two variants"),
        ({"variants": ("baseline", "baseline")}, "distinct"),
        ({"variants": ("baseline", "Not OK")}, "variant name 'Not OK'"),
        ({"baseline": "missing"}, "baseline 'missing' is not one of the variants"),
        ({"policy": "ucb"}, "unknown experiment policy 'ucb'"),
        ({"weights": (1.0, 2.0)}, "2 weights for 3 variants"),
        ({"weights": (1.0, 0.0, 1.0)}, "weights must be positive"),
        ({"weights": (1.0, math.nan, 1.0)}, "weights must be positive"),
        ({"policy": "thompson", "weights": (1.0, 1.0, 1.0)}, "weights apply to the hash policy only"),
        ({"epsilon": 1.5}, "epsilon must be between 0 and 1"),
        ({"epsilon": math.nan}, "epsilon must be between 0 and 1"),
    ],
)
def test_invalid_configurations_are_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    """Each broken rule gives a ConfigError that says which one."""
    fields: dict[str, object] = {"name": "ui-1", "variants": VARIANTS, "baseline": "baseline", "policy": "hash"}
    fields.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig(**fields)  # type: ignore[arg-type]


def test_config_stores_sequences_as_tuples() -> None:
    """Lists from JSON or a database array become tuples, so equal configs compare equal."""
    config = ExperimentConfig("ui", ["a", "b"], "a", "hash", weights=[1, 3])  # type: ignore[arg-type]
    assert config == ExperimentConfig("ui", ("a", "b"), "a", "hash", weights=(1.0, 3.0))
    assert parse_policy("epsilon_greedy") == "epsilon_greedy"


def test_impossible_counts_and_rewards_are_data_errors() -> None:
    """More conversions than users, or a reward outside [0, 1], cannot come from real data."""
    with pytest.raises(DataError, match="5 conversions of 4 exposures"):
        VariantCounts(4, 1.0, 5)
    with pytest.raises(DataError, match="successes"):
        VariantCounts(4, 4.5, 1)
    for reward in (-0.1, 1.01, math.nan, True):
        with pytest.raises(DataError, match="reward must be a number between 0 and 1"):
            validate_reward(reward)
    assert validate_reward(1) == 1.0


# Hash assignment -------------------------------------------------------------------------


def test_hash_bucket_is_sha256_of_experiment_and_user() -> None:
    """The bucket is recomputable anywhere from the documented recipe (no per-process hash seed)."""
    for user in ("0x00000000000000000000000000000000000000aa", "alice", "ü"):
        point = int.from_bytes(hashlib.sha256(f"ui-1:{user}".encode()).digest()[:8], "big") / 2**64
        expected = 0 if point < 0.5 else (1 if point < 0.8 else 2)
        assert hash_bucket("ui-1", user, (5, 3, 2)) == expected
    # Pinned: a change of algorithm would silently reshuffle the new users of running experiments.
    assert [hash_bucket("ui-1", f"user-{i}", (5, 3, 2)) for i in range(12)] == [2, 1, 1, 1, 1, 0, 1, 2, 1, 1, 2, 1]
    # Only the shares matter, not the scale of the weights.
    assert [hash_bucket("ui-1", f"user-{i}", (0.5, 0.3, 0.2)) for i in range(200)] == [
        hash_bucket("ui-1", f"user-{i}", (50, 30, 20)) for i in range(200)
    ]


def test_hash_assignment_follows_the_weights() -> None:
    """Over 20k users the shares fit the weights (chi-square goodness of fit), not exact counts."""
    weights = (0.5, 0.3, 0.2)
    config = ExperimentConfig("ui-weights", VARIANTS, "baseline", "hash", weights=weights)
    users = 20_000
    rng = np.random.default_rng(0)
    seen = Counter(choose_variant(config, {}, rng, f"0x{i:040x}") for i in range(users))
    observed = [seen[v] for v in VARIANTS]
    expected = [w * users for w in weights]
    assert chisquare(observed, expected).pvalue > 0.001
    # ... and the fit test has power: the same counts do not fit an even split.
    assert chisquare(observed, [users / 3] * 3).pvalue < 1e-6


def test_hash_assignment_ignores_rng_and_stats() -> None:
    """The same user gets the same variant whatever the random state or the results so far."""
    config = ExperimentConfig("ui-hash", VARIANTS, "baseline", "hash")
    loud = counts_of(baseline=(1000, 0), recommend=(1000, 900), cluster=(1000, 0))
    for i in range(50):
        user = f"user-{i}"
        first = choose_variant(config, {}, np.random.default_rng(1), user)
        assert choose_variant(config, loud, np.random.default_rng(2), user) == first


def test_hash_bucket_refuses_bad_weights() -> None:
    with pytest.raises(ConfigError, match="positive"):
        hash_bucket("ui", "u", ())
    with pytest.raises(ConfigError, match="positive"):
        hash_bucket("ui", "u", (1.0, -1.0))


# Bandits ---------------------------------------------------------------------------------


def simulate(config: ExperimentConfig, seed: int, users: int = 5_000) -> list[str]:
    """Assign ``users`` one after the other, each converting at its variant's true rate before the next comes."""
    rng = np.random.default_rng(seed)
    exposures = dict.fromkeys(VARIANTS, 0)
    conversions = dict.fromkeys(VARIANTS, 0)
    chosen = []
    for i in range(users):
        seen = {v: VariantCounts(exposures[v], float(conversions[v]), conversions[v]) for v in VARIANTS}
        variant = choose_variant(config, seen, rng, f"user-{i}")
        exposures[variant] += 1
        conversions[variant] += int(rng.random() < RATES[variant])
        chosen.append(variant)
    return chosen


# Seeds are fixed; on 60 seeds Thompson sampling always converged (>= 84% of the last 1000 on
# "recommend") and epsilon-greedy in 95% of them (it can lock onto "cluster" early).
@pytest.mark.parametrize(("policy", "seed"), [("thompson", 1), ("thompson", 2), ("epsilon_greedy", 1)])
def test_bandits_converge_to_the_best_variant(policy: str, seed: int) -> None:
    """With true rates 5% / 10% / 7%, the 10% variant gets most of the last 1,000 of 5,000 users."""
    config = ExperimentConfig("ui-bandit", VARIANTS, "baseline", parse_policy(policy))
    last = Counter(simulate(config, seed)[-1000:])
    assert last["recommend"] > 500, last
    assert last.most_common(1)[0][0] == "recommend"


def test_thompson_samples_from_the_beta_posteriors() -> None:
    """The share of draws a variant wins matches Beta(1 + successes, 1 + failures) draws done by hand."""
    config = ExperimentConfig("ui-ts", ("a", "b"), "a", "thompson")
    seen = {"a": VariantCounts(20, 4.0, 4), "b": VariantCounts(20, 6.5, 6)}
    rng = np.random.default_rng(3)
    wins_b = sum(choose_variant(config, seen, rng, "u") == "b" for _ in range(4000)) / 4000
    reference = np.random.default_rng(4)
    a = reference.beta(1 + 4.0, 1 + 16.0, size=200_000)
    b = reference.beta(1 + 6.5, 1 + 13.5, size=200_000)
    p = float((b > a).mean())
    assert abs(wins_b - p) < 4 * math.sqrt(p * (1 - p) / 4000)


def test_epsilon_greedy_explores_with_probability_epsilon() -> None:
    """epsilon=0 always exploits; untried variants are tried first; epsilon=1 is uniform."""
    seen = counts_of(baseline=(100, 5), recommend=(100, 10), cluster=(100, 7))
    greedy = ExperimentConfig("ui-eg", VARIANTS, "baseline", "epsilon_greedy", epsilon=0.0)
    rng = np.random.default_rng(5)
    assert {choose_variant(greedy, seen, rng, "u") for _ in range(200)} == {"recommend"}
    untried = counts_of(baseline=(100, 5), recommend=(100, 10))
    assert choose_variant(greedy, untried, rng, "u") == "cluster"
    # All tied at the start: ties go to any of them, not always the first.
    assert {choose_variant(greedy, {}, rng, "u") for _ in range(200)} == set(VARIANTS)
    uniform = ExperimentConfig("ui-eg", VARIANTS, "baseline", "epsilon_greedy", epsilon=1.0)
    picks = Counter(choose_variant(uniform, seen, rng, "u") for _ in range(3000))
    assert chisquare([picks[v] for v in VARIANTS]).pvalue > 0.001


# Statistics ------------------------------------------------------------------------------


def test_chi_square_matches_scipy_on_a_hand_table() -> None:
    """The test is scipy's chi2_contingency (no correction) on variants x (converted, not)."""
    config = ExperimentConfig("ui", VARIANTS, "baseline", "hash")
    result = experiment_stats(config, counts_of(baseline=(400, 20), recommend=(380, 41), cluster=(410, 29)))
    reference = chi2_contingency([[20, 380], [41, 339], [29, 381]], correction=False)
    assert result.chi_square == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert 0.001 < result.p_value < 0.05
    # Two variants: still no Yates correction.
    two = chi2_contingency([[1, 9], [2, 8]], correction=False)
    assert chi_square_test([1, 2], [10, 10]) == pytest.approx((two.statistic, two.pvalue))


def test_stats_per_variant_in_configured_order() -> None:
    """Rates are conversions / exposures; the baseline's lift is 0; the lift is rate ratio - 1."""
    config = ExperimentConfig("ui", VARIANTS, "recommend", "thompson")
    result = experiment_stats(config, counts_of(cluster=(200, 30), baseline=(100, 10), recommend=(200, 40)))
    assert (result.experiment, result.policy, result.baseline) == ("ui", "thompson", "recommend")
    assert [v.variant for v in result.variants] == list(VARIANTS)
    baseline, recommend, cluster = result.variants
    assert (baseline.exposures, baseline.conversions, baseline.conversion_rate) == (100, 10, 0.1)
    assert (recommend.lift, recommend.lift_ci_low, recommend.lift_ci_high) == (0.0, 0.0, 0.0)
    assert cluster.lift == pytest.approx(0.15 / 0.20 - 1)
    assert cluster.lift_ci_low < cluster.lift < cluster.lift_ci_high


def test_lift_interval_is_the_katz_log_interval() -> None:
    """exp(log RR +- 1.96 sqrt(1/x1 - 1/n1 + 1/x0 - 1/n0)) - 1, worked by hand."""
    lift, low, high = lift_interval(30, 200, 20, 250)
    rr = (30 / 200) / (20 / 250)
    se = math.sqrt(1 / 30 - 1 / 200 + 1 / 20 - 1 / 250)
    assert lift == pytest.approx(rr - 1)
    assert low == pytest.approx(rr * math.exp(-1.959963984540054 * se) - 1)
    assert high == pytest.approx(rr * math.exp(1.959963984540054 * se) - 1)


def test_lift_interval_contains_the_true_lift_on_a_big_sample() -> None:
    """200k users per arm at 5% vs 6%: the interval holds the true lift of 20% and is narrow."""
    rng = np.random.default_rng(6)
    n = 200_000
    lift, low, high = lift_interval(int(rng.binomial(n, 0.06)), n, int(rng.binomial(n, 0.05)), n)
    assert low < 0.2 < high
    assert low < lift < high
    assert high - low < 0.1
    assert low > 0  # and at this size it excludes "no lift"


def test_lift_interval_covers_about_95_percent() -> None:
    """Over 2,000 simulated experiments of 5,000 users per arm the interval misses about 5% of the time."""
    rng = np.random.default_rng(7)
    n, p0, p1 = 5_000, 0.05, 0.065
    hits = 0
    for x1, x0 in zip(rng.binomial(n, p1, size=2000), rng.binomial(n, p0, size=2000), strict=True):
        _, low, high = lift_interval(int(x1), n, int(x0), n)
        hits += low < p1 / p0 - 1 < high
    assert 0.93 < hits / 2000 < 0.97


def test_zero_rates_give_nan_not_errors() -> None:
    """A baseline without conversions has no lift; a variant without any has a lift of -1 but no interval."""
    config = ExperimentConfig("ui", VARIANTS, "baseline", "hash")
    result = experiment_stats(config, counts_of(baseline=(100, 0), recommend=(100, 5), cluster=(100, 3)))
    assert all(math.isnan(x) for x in (result.variants[1].lift, result.variants[1].lift_ci_low))
    assert not math.isnan(result.p_value)
    result = experiment_stats(config, counts_of(baseline=(100, 5), recommend=(100, 0), cluster=(100, 3)))
    recommend = result.variants[1]
    assert recommend.lift == -1.0
    assert math.isnan(recommend.lift_ci_low)
    assert math.isnan(recommend.lift_ci_high)


@pytest.mark.parametrize(
    "rows",
    [
        {},  # nobody yet
        {"baseline": (100, 5), "recommend": (100, 7)},  # "cluster" has nobody: a zero row
        {"baseline": (100, 0), "recommend": (100, 0), "cluster": (50, 0)},  # nobody converted: a zero column
        {"baseline": (10, 10), "recommend": (20, 20), "cluster": (5, 5)},  # everybody converted
    ],
)
def test_degenerate_tables_give_nan(rows: dict[str, tuple[int, int]]) -> None:
    """A table with a zero row or column has no chi-square test: NaN, not an exception."""
    config = ExperimentConfig("ui", VARIANTS, "baseline", "hash")
    result = experiment_stats(config, counts_of(**rows))
    assert math.isnan(result.chi_square)
    assert math.isnan(result.p_value)
