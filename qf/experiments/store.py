"""The database edge of experiments: configurations, sticky assignments and outcomes in PostgreSQL.

The tables are those of ``sql/008_experiments.sql``; the choices are made by
the pure `qf.experiments.logic`. Every function takes a psycopg connection and
runs in its own transaction (a savepoint if the caller has one open), so the
server decides about pooling and may run these blocking calls in a thread
pool. Connections must use READ COMMITTED (psycopg's default): that is what
lets a user's concurrent first requests agree on the variant that was
inserted first.

Counting rules (also in the view ``qf.experiment_variant_counts``): an
exposure is an assigned user; a user's outcomes count once, by their best
reward -- summed as the bandits' ``successes``, and as a ``conversion`` for
the statistics when it is at least 0.5.

Errors: `qf.errors.ConfigError` for configurations (``UnknownExperiment``
when the name is not configured), `qf.errors.DataError` for bad user ids and
rewards, or an outcome of a user who was never assigned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.experiments.errors import UnknownExperiment
from qf_sentinel.qf.experiments.logic import (
    ExperimentConfig,
    ExperimentStats,
    VariantCounts,
    choose_variant,
    experiment_stats,
    parse_policy,
    validate_reward,
)

__all__ = [
    "OUTCOME_RETENTION_DAYS",
    "assign",
    "counts",
    "delete_older_than",
    "ensure_experiment",
    "get_experiment",
    "record_outcome",
    "stats",
]

#: Experiment outcomes are kept a year by default; assignments are kept for good (they are the stickiness).
OUTCOME_RETENTION_DAYS = 365
#: Longer ids are not ids: refuse them before they reach an index.
MAX_USER_ID_LENGTH = 256

_SELECT_EXPERIMENT = "SELECT name, variants, baseline, policy, weights, epsilon FROM qf.experiments WHERE name = %s"


def ensure_experiment(conn: psycopg.Connection[Any], config: ExperimentConfig) -> None:
    """Create the experiment or update it to ``config``.

    Baseline, policy, weights and epsilon may change at any time (assigned
    users keep their variant). The variants, order included, may change only
    while nobody is assigned; otherwise `ConfigError`: start a new experiment.
    """
    with conn.transaction():
        if get_experiment(conn, config.name) == config:
            return
        inserted = conn.execute(
            """
            INSERT INTO qf.experiments (name, variants, baseline, policy, weights, epsilon)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (name) DO NOTHING
            RETURNING name
            """,
            _row(config),
        ).fetchone()
        if inserted is not None:
            return
        # FOR UPDATE conflicts with the FOR KEY SHARE lock `assign` holds: no assignment can slip in meanwhile.
        row = conn.execute(_SELECT_EXPERIMENT + " FOR UPDATE", (config.name,)).fetchone()
        if row is None:  # deleted since; impossible in practice, and not worth a retry loop
            raise ConfigError(f"experiment {config.name!r} was deleted while being updated; try again")
        current = _config(row)
        if current.variants != config.variants:
            assigned = conn.execute(
                "SELECT count(*) FROM qf.experiment_assignments WHERE experiment = %s", (config.name,)
            ).fetchone()
            if assigned is not None and assigned[0] > 0:
                raise ConfigError(
                    f"experiment {config.name!r} has {assigned[0]} assigned users; its variants cannot change from "
                    f"{list(current.variants)} to {list(config.variants)} (start a new experiment instead)"
                )
        conn.execute(
            """
            UPDATE qf.experiments SET variants = %s, baseline = %s, policy = %s, weights = %s, epsilon = %s
            WHERE name = %s
            """,
            (*_row(config)[1:], config.name),
        )


def get_experiment(conn: psycopg.Connection[Any], name: str) -> ExperimentConfig | None:
    """The experiment's configuration, or None if there is none by that name."""
    with conn.transaction():
        row = conn.execute(_SELECT_EXPERIMENT, (name,)).fetchone()
    return None if row is None else _config(row)


def assign(
    conn: psycopg.Connection[Any], config: ExperimentConfig, user_id: str, rng: np.random.Generator
) -> tuple[str, bool]:
    """``(variant, new)``: the user's variant, chosen by ``config.policy`` if they have none yet.

    A user who has a variant keeps it (``new`` is False), even if the policy
    would now prefer another. When two requests for a new user race, the
    first insert wins and both return its variant. ``config`` must match the
    stored experiment's variants (`ConfigError` if they changed meanwhile,
    `UnknownExperiment` if it was never stored).
    """
    _check_user_id(user_id)
    with conn.transaction():
        existing = _assigned_variant(conn, config.name, user_id)
        if existing is not None:
            return existing, False
        # Held until commit, so ensure_experiment cannot change the variants under this choice.
        row = conn.execute(
            "SELECT variants FROM qf.experiments WHERE name = %s FOR KEY SHARE", (config.name,)
        ).fetchone()
        if row is None:
            raise UnknownExperiment(config.name)
        if tuple(row[0]) != config.variants:
            raise ConfigError(
                f"experiment {config.name!r} now has variants {list(row[0])}, not {list(config.variants)}; "
                "reload its configuration"
            )
        seen = {} if config.policy == "hash" else counts(conn, config.name)
        variant = choose_variant(config, seen, rng, user_id)
        inserted = conn.execute(
            """
            INSERT INTO qf.experiment_assignments (experiment, user_id, variant) VALUES (%s, %s, %s)
            ON CONFLICT (experiment, user_id) DO NOTHING
            RETURNING variant
            """,
            (config.name, user_id, variant),
        ).fetchone()
        if inserted is not None:
            return variant, True
        # A concurrent request inserted first; under READ COMMITTED this new statement sees its row.
        winner = _assigned_variant(conn, config.name, user_id)
        if winner is None:  # pragma: no cover - the conflicting row was committed, so it is visible
            raise ConfigError(f"experiment {config.name!r}: lost an assignment race but cannot see the winner")
        return winner, False


def record_outcome(conn: psycopg.Connection[Any], experiment: str, user_id: str, reward: float) -> str:
    """Record a reward in [0, 1] for the user's assignment; return the variant it was credited to."""
    reward = validate_reward(reward)
    _check_user_id(user_id)
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO qf.experiment_outcomes (experiment, user_id, variant, reward)
            SELECT experiment, user_id, variant, %s FROM qf.experiment_assignments
            WHERE experiment = %s AND user_id = %s
            RETURNING variant
            """,
            (reward, experiment, user_id),
        ).fetchone()
        if row is not None:
            return str(row[0])
        if get_experiment(conn, experiment) is None:
            raise UnknownExperiment(experiment)
        raise DataError(
            f"user {user_id!r} has no variant in experiment {experiment!r}; assign one before recording an outcome"
        )


def counts(conn: psycopg.Connection[Any], experiment: str) -> dict[str, VariantCounts]:
    """Exposures, successes and conversions of every variant (zeros included); empty if no such experiment."""
    with conn.transaction():
        rows = conn.execute(
            """
            SELECT variant, exposures, successes, conversions FROM qf.experiment_variant_counts
            WHERE experiment = %s ORDER BY position
            """,
            (experiment,),
        ).fetchall()
    return {str(v): VariantCounts(int(n), float(s), int(c)) for v, n, s, c in rows}


def stats(conn: psycopg.Connection[Any], experiment: str) -> ExperimentStats:
    """Per-variant results, lift over the baseline and the chi-square test of the experiment."""
    with conn.transaction():
        config = get_experiment(conn, experiment)
        if config is None:
            raise UnknownExperiment(experiment)
        return experiment_stats(config, counts(conn, experiment))


def delete_older_than(conn: psycopg.Connection[Any], days: float = OUTCOME_RETENTION_DAYS) -> int:
    """Delete outcomes recorded more than ``days`` ago; return how many.

    Assignments stay (deleting one would let its user be reassigned), so old
    users still count as exposures; their deleted outcomes no longer count.
    """
    if not days > 0:
        raise ConfigError(f"retention must be a positive number of days, got {days!r}")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM qf.experiment_outcomes WHERE recorded_at < now() - %s * interval '1 day'", (float(days),)
        )
        return cur.rowcount


def _assigned_variant(conn: psycopg.Connection[Any], experiment: str, user_id: str) -> str | None:
    row = conn.execute(
        "SELECT variant FROM qf.experiment_assignments WHERE experiment = %s AND user_id = %s", (experiment, user_id)
    ).fetchone()
    return None if row is None else str(row[0])


def _check_user_id(user_id: str) -> None:
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID_LENGTH:
        raise DataError(f"user_id must be a non-empty string of at most {MAX_USER_ID_LENGTH} characters")


def _row(config: ExperimentConfig) -> tuple[Any, ...]:
    weights = None if config.weights is None else list(config.weights)
    return (config.name, list(config.variants), config.baseline, config.policy, weights, config.epsilon)


def _config(row: tuple[Any, ...]) -> ExperimentConfig:
    name, variants, baseline, policy, weights, epsilon = row
    return ExperimentConfig(
        name=name,
        variants=tuple(variants),
        baseline=baseline,
        policy=parse_policy(policy),
        weights=None if weights is None else tuple(weights),
        epsilon=float(epsilon),
    )
