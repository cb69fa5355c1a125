"""UI-variant experiments: who sees which variant, and what the results say.

Pure logic over plain data; `qf.experiments.store` is its database edge and
the gRPC server maps its errors to status codes. An experiment
(:class:`ExperimentConfig`) has variants such as ``baseline``, ``recommend``
and ``cluster`` and a policy for new users:

* ``hash`` -- classic A/B: :func:`hash_bucket` maps ``experiment:user_id``
  through SHA-256 into weighted buckets, the same on every process and machine;
* ``thompson`` -- Thompson sampling on Beta(1 + successes, 1 + failures)
  posteriors, rewards in [0, 1] counting as fractional successes;
* ``epsilon_greedy`` -- a uniformly random variant with probability
  ``epsilon``, else the best observed mean.

Stickiness (a user keeps their first variant whatever the policy later
prefers) is the store's job: :func:`choose_variant` is only asked about users
without a variant. :func:`experiment_stats` gives conversion rates, the lift
over the baseline with a 95% Katz log interval, and a chi-square test.

Errors: :class:`qf.errors.ConfigError` for an unusable configuration,
:class:`qf.errors.DataError` for impossible counts or rewards (the store adds
:class:`qf.experiments.errors.UnknownExperiment`).
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from statistics import NormalDist
from typing import Literal, get_args

import numpy as np
from scipy.stats import chi2_contingency

from qf_sentinel.qf.errors import ConfigError, DataError

__all__ = [
    "POLICIES",
    "ExperimentConfig",
    "ExperimentStats",
    "Policy",
    "VariantCounts",
    "VariantStats",
    "chi_square_test",
    "choose_variant",
    "experiment_stats",
    "hash_bucket",
    "lift_interval",
    "parse_policy",
    "validate_reward",
]

Policy = Literal["hash", "thompson", "epsilon_greedy"]
POLICIES: tuple[Policy, ...] = get_args(Policy)

#: Experiment and variant names; no ``:``, so ``experiment:user_id`` hashes are unambiguous.
NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
#: A user counts as converted when their best reward reaches this (a 0/1 reward is 1).
CONVERSION_THRESHOLD = 0.5
CONFIDENCE = 0.95
_Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
_NAN = math.nan


def parse_policy(value: str) -> Policy:
    """``value`` as a :data:`Policy`, or `ConfigError` listing the valid ones."""
    for policy in POLICIES:
        if value == policy:
            return policy
    raise ConfigError(f"unknown experiment policy {value!r}; expected one of {', '.join(POLICIES)}")


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """An experiment as configured; invalid ones cannot be built (`ConfigError`).

    ``weights`` (one per variant, any positive scale) apply to the ``hash``
    policy only, so giving them with a bandit policy is refused rather than
    silently ignored; without them hashing splits evenly. ``epsilon`` is used
    by ``epsilon_greedy`` only.
    """

    name: str
    variants: tuple[str, ...]
    baseline: str
    policy: Policy
    weights: tuple[float, ...] | None = None
    epsilon: float = 0.1

    def __post_init__(self) -> None:
        # Accept lists (from JSON or a database array) but store tuples: the config stays hashable.
        object.__setattr__(self, "variants", tuple(self.variants))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        _validate(self)


def _validate(config: ExperimentConfig) -> None:
    if not isinstance(config.name, str) or NAME_PATTERN.fullmatch(config.name) is None:
        raise ConfigError(f"experiment name {config.name!r} must match [a-z0-9_-]{{1,64}}")
    where = f"experiment {config.name!r}"
    for variant in config.variants:
        if not isinstance(variant, str) or NAME_PATTERN.fullmatch(variant) is None:
            raise ConfigError(f"{where}: variant name {variant!r} must match [a-z0-9_-]{{1,64}}")
    if len(set(config.variants)) != len(config.variants):
        raise ConfigError(f"{where}: variants must be distinct, got {list(config.variants)}")
    if len(config.variants) < 2:
        raise ConfigError(f"{where}: needs at least two variants, got {list(config.variants)}")
    if config.baseline not in config.variants:
        raise ConfigError(f"{where}: baseline {config.baseline!r} is not one of the variants {list(config.variants)}")
    parse_policy(config.policy)
    if config.weights is not None:
        if config.policy != "hash":
            raise ConfigError(f"{where}: weights apply to the hash policy only, not {config.policy}")
        if len(config.weights) != len(config.variants):
            raise ConfigError(
                f"{where}: {len(config.weights)} weights for {len(config.variants)} variants; give one per variant"
            )
        if not all(math.isfinite(w) and w > 0 for w in config.weights):
            raise ConfigError(f"{where}: weights must be positive numbers, got {list(config.weights)}")
    if not (isinstance(config.epsilon, int | float) and 0.0 <= config.epsilon <= 1.0):
        raise ConfigError(f"{where}: epsilon must be between 0 and 1, got {config.epsilon!r}")


@dataclass(frozen=True, slots=True)
class VariantCounts:
    """What a variant has seen so far.

    ``exposures`` are the users assigned to it. ``successes`` is what the
    bandits learn from: the sum over those users of their best reward (so a
    user counts at most once, fractionally for rewards below 1).
    ``conversions`` is what the statistics test: users whose best reward is at
    least :data:`CONVERSION_THRESHOLD`.
    """

    exposures: int
    successes: float
    conversions: int

    def __post_init__(self) -> None:
        if self.exposures < 0 or not 0 <= self.conversions <= self.exposures:
            raise DataError(f"impossible counts: {self.conversions} conversions of {self.exposures} exposures")
        if not 0.0 <= self.successes <= self.exposures:
            raise DataError(f"impossible counts: {self.successes} successes of {self.exposures} exposures")


_NO_COUNTS = VariantCounts(0, 0.0, 0)


def validate_reward(reward: float) -> float:
    """``reward`` if it is a number in [0, 1], else `DataError` (NaN included)."""
    if isinstance(reward, bool) or not isinstance(reward, int | float) or not 0.0 <= reward <= 1.0:
        raise DataError(f"reward must be a number between 0 and 1, got {reward!r}")
    return float(reward)


def hash_bucket(experiment: str, user_id: str, weights: Sequence[float]) -> int:
    """The index of the weighted bucket ``user_id`` falls into for ``experiment``.

    The first 8 bytes of SHA-256(``experiment:user_id``) as a fraction of 2**64
    pick a point in [0, 1); bucket ``i`` covers a share ``weights[i] / sum``.
    SHA-256, unlike :func:`hash`, is the same in every process, so an
    assignment can be recomputed anywhere.
    """
    if not weights or not all(math.isfinite(w) and w > 0 for w in weights):
        raise ConfigError(f"hash weights must be positive numbers, got {list(weights)}")
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    bounds = list(accumulate(weights))
    # min(): rounding may put point * total at the very top of the last bucket.
    return min(bisect_right(bounds, point * bounds[-1]), len(weights) - 1)


def choose_variant(
    config: ExperimentConfig, stats: Mapping[str, VariantCounts], rng: np.random.Generator, user_id: str
) -> str:
    """The variant a user without one gets under ``config.policy``.

    ``hash`` ignores ``stats`` and ``rng``; the bandits ignore ``user_id``. A
    variant missing from ``stats`` has seen nobody yet.
    """
    if config.policy == "hash":
        weights = config.weights or (1.0,) * len(config.variants)
        return config.variants[hash_bucket(config.name, user_id, weights)]
    counts = [stats.get(v, _NO_COUNTS) for v in config.variants]
    if config.policy == "thompson":
        # Users still waiting to convert count as failures: early on every variant is equally pessimistic.
        successes = np.array([c.successes for c in counts])
        failures = np.array([c.exposures for c in counts]) - successes
        draws = rng.beta(1.0 + successes, 1.0 + failures)
        return config.variants[int(np.argmax(draws))]
    if rng.random() < config.epsilon:
        return config.variants[int(rng.integers(len(config.variants)))]
    # An untried variant has an unknown mean: try it before trusting the others' means.
    means = np.array([c.successes / c.exposures if c.exposures else math.inf for c in counts])
    best = np.flatnonzero(means == means.max())
    # Ties (all means 0 at the start) are broken at random, not always towards the first variant.
    return config.variants[int(best[0] if len(best) == 1 else rng.choice(best))]


@dataclass(frozen=True, slots=True)
class VariantStats:
    """One variant's line of the results; rates and lifts are NaN when undefined."""

    variant: str
    exposures: int
    conversions: int
    conversion_rate: float
    lift: float
    lift_ci_low: float
    lift_ci_high: float


@dataclass(frozen=True, slots=True)
class ExperimentStats:
    """The results of an experiment, shaped like ``GetExperimentStatsResponse``."""

    experiment: str
    policy: Policy
    baseline: str
    variants: tuple[VariantStats, ...]
    chi_square: float
    p_value: float


def lift_interval(
    conversions: int, exposures: int, baseline_conversions: int, baseline_exposures: int
) -> tuple[float, float, float]:
    """``(lift, low, high)``: rate / baseline rate - 1 with its 95% Katz log interval.

    Katz et al. (1978): log(RR) is about normal with variance
    1/x1 - 1/n1 + 1/x0 - 1/n0 (the delta method on the log of the ratio of
    two independent proportions); the interval is exp(log RR +- z SE) - 1.
    The lift is NaN when the baseline rate is 0 or undefined. The interval is
    NaN when either side has no conversion (the log is then infinite); the
    lift itself is still -1 for a variant with none against a baseline with some.
    """
    if exposures == 0 or baseline_exposures == 0 or baseline_conversions == 0:
        return _NAN, _NAN, _NAN
    lift = (conversions / exposures) / (baseline_conversions / baseline_exposures) - 1.0
    if conversions == 0:
        return lift, _NAN, _NAN
    log_ratio = math.log1p(lift)
    se = math.sqrt(1 / conversions - 1 / exposures + 1 / baseline_conversions - 1 / baseline_exposures)
    return lift, math.expm1(log_ratio - _Z * se), math.expm1(log_ratio + _Z * se)


def chi_square_test(conversions: Sequence[int], exposures: Sequence[int]) -> tuple[float, float]:
    """``(chi2, p)`` of independence of variant and conversion; NaN for a degenerate table.

    The table is variants x (converted, not converted), without Yates'
    correction. A variant with no exposures, or a column of zeros (nobody or
    everybody converted), leaves expected counts of 0 and no test to make.
    """
    table = np.array([[c, n - c] for c, n in zip(conversions, exposures, strict=True)], dtype=np.float64)
    if len(table) < 2 or not (table.sum(axis=1) > 0).all() or not (table.sum(axis=0) > 0).all():
        return _NAN, _NAN
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def experiment_stats(config: ExperimentConfig, counts: Mapping[str, VariantCounts]) -> ExperimentStats:
    """Per-variant exposures, conversions and lift over the baseline, and the chi-square test.

    Variants come in the order of ``config.variants``; those missing from
    ``counts`` have no exposures. The baseline's lift is 0 by definition.
    """
    rows = [counts.get(v, _NO_COUNTS) for v in config.variants]
    base = counts.get(config.baseline, _NO_COUNTS)
    variants = []
    for variant, row in zip(config.variants, rows, strict=True):
        rate = row.conversions / row.exposures if row.exposures else _NAN
        if variant == config.baseline:
            lift = (0.0, 0.0, 0.0)
        else:
            lift = lift_interval(row.conversions, row.exposures, base.conversions, base.exposures)
        variants.append(VariantStats(variant, row.exposures, row.conversions, rate, *lift))
    chi2, p_value = chi_square_test([r.conversions for r in rows], [r.exposures for r in rows])
    return ExperimentStats(config.name, config.policy, config.baseline, tuple(variants), chi2, p_value)
