"""Experiments in a real PostgreSQL: configuration, sticky assignment under races, outcomes, retention."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import psycopg
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.experiments.errors import UnknownExperiment
from qf_sentinel.qf.experiments.logic import (
    ExperimentConfig,
    VariantCounts,
    choose_variant,
    experiment_stats,
)
from qf_sentinel.qf.experiments.store import (
    assign,
    counts,
    delete_older_than,
    ensure_experiment,
    get_experiment,
    record_outcome,
    stats,
)

VARIANTS = ("baseline", "recommend", "cluster")
TABLES = ("experiments", "experiment_assignments", "experiment_outcomes", "experiment_variant_counts")


@pytest.fixture
def conn(migrated_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(migrated_db_url) as conn:
        yield conn


def config(name: str = "ui", policy: str = "hash", **kwargs: Any) -> ExperimentConfig:
    return ExperimentConfig(name, kwargs.pop("variants", VARIANTS), "baseline", policy, **kwargs)  # type: ignore[arg-type]


def test_every_table_and_column_is_commented(conn: psycopg.Connection[Any]) -> None:
    """The migration documents its tables, view and columns in the catalogue."""
    missing = conn.execute(
        """
        SELECT c.relname, a.attname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'qf'
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relname = ANY (%s) AND col_description(c.oid, a.attnum) IS NULL
        """,
        (list(TABLES),),
    ).fetchall()
    assert missing == []
    commented = conn.execute(
        "SELECT count(*) FROM pg_class WHERE relname = ANY (%s) AND relnamespace = 'qf'::regnamespace"
        " AND obj_description(oid, 'pg_class') IS NOT NULL",
        (list(TABLES),),
    ).fetchone()
    assert commented == (len(TABLES),)


# Configuration ---------------------------------------------------------------------------


def test_ensure_experiment_creates_then_updates(conn: psycopg.Connection[Any]) -> None:
    """The stored configuration round-trips; policy, weights and baseline may change later."""
    assert get_experiment(conn, "ui") is None
    first = config(weights=(2.0, 1.0, 1.0))
    ensure_experiment(conn, first)
    assert get_experiment(conn, "ui") == first
    assign(conn, first, "alice", np.random.default_rng(0))
    changed = ExperimentConfig("ui", VARIANTS, "cluster", "epsilon_greedy", epsilon=0.25)
    ensure_experiment(conn, changed)
    assert get_experiment(conn, "ui") == changed
    ensure_experiment(conn, changed)  # unchanged: a no-op
    assert get_experiment(conn, "ui") == changed


def test_variants_cannot_change_once_users_are_assigned(conn: psycopg.Connection[Any]) -> None:
    """Before the first assignment the variants may change; after it, that is refused."""
    ensure_experiment(conn, config())
    ensure_experiment(conn, config(variants=("baseline", "recommend")))
    assert get_experiment(conn, "ui") == config(variants=("baseline", "recommend"))
    assign(conn, config(variants=("baseline", "recommend")), "alice", np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"has 1 assigned users; its variants cannot change"):
        ensure_experiment(conn, config())
    with pytest.raises(ConfigError, match="variants cannot change"):  # the order counts too
        ensure_experiment(conn, config(variants=("recommend", "baseline")))
    assert get_experiment(conn, "ui") == config(variants=("baseline", "recommend"))


def test_assign_refuses_unknown_or_stale_configurations(conn: psycopg.Connection[Any]) -> None:
    """The experiment must be stored, with the variants the caller believes it has."""
    rng = np.random.default_rng(0)
    with pytest.raises(UnknownExperiment, match="unknown experiment 'ui'"):
        assign(conn, config(), "alice", rng)
    ensure_experiment(conn, config(variants=("baseline", "recommend")))
    with pytest.raises(ConfigError, match="reload its configuration"):
        assign(conn, config(), "alice", rng)
    with pytest.raises(DataError, match="user_id must be a non-empty string"):
        assign(conn, config(variants=("baseline", "recommend")), "", rng)
    assert counts(conn, "ui") == {"baseline": VariantCounts(0, 0.0, 0), "recommend": VariantCounts(0, 0.0, 0)}


# Sticky assignment -----------------------------------------------------------------------


def test_assignment_is_sticky(conn: psycopg.Connection[Any]) -> None:
    """A user asked twice gets the same variant, the second time as not new; hash matches the pure choice."""
    cfg = config()
    ensure_experiment(conn, cfg)
    rng = np.random.default_rng(0)
    for i in range(30):
        user = f"0x{i:040x}"
        variant, new = assign(conn, cfg, user, rng)
        assert new
        assert variant == choose_variant(cfg, {}, rng, user)
        assert assign(conn, cfg, user, rng) == (variant, False)
    assert sum(c.exposures for c in counts(conn, "ui").values()) == 30


def test_assignment_stays_when_the_policy_would_now_choose_otherwise(conn: psycopg.Connection[Any]) -> None:
    """After other users make another variant look better, and after a policy change, the user keeps theirs."""
    greedy = config(policy="epsilon_greedy", variants=("baseline", "recommend"), epsilon=0.0)
    ensure_experiment(conn, greedy)
    rng = np.random.default_rng(1)
    mine, new = assign(conn, greedy, "target", rng)
    assert new
    other = next(v for v in greedy.variants if v != mine)
    for i in range(10):
        # Ten users of the other variant who all convert; the target never does.
        conn.execute(
            "INSERT INTO qf.experiment_assignments (experiment, user_id, variant) VALUES ('ui', %s, %s)",
            (f"fan-{i}", other),
        )
        conn.commit()
        record_outcome(conn, "ui", f"fan-{i}", 1.0)
    record_outcome(conn, "ui", "target", 0.0)
    assert choose_variant(greedy, counts(conn, "ui"), rng, "newcomer") == other  # the preference did change
    assert assign(conn, greedy, "target", rng) == (mine, False)
    thompson = config(policy="thompson", variants=greedy.variants)
    ensure_experiment(conn, thompson)
    assert assign(conn, thompson, "target", rng) == (mine, False)
    assert assign(conn, thompson, "newcomer", rng) == (other, True)


def _assign_in_thread(url: str, cfg: ExperimentConfig, user: str, seed: int) -> tuple[str, bool]:
    with connect(url) as conn:
        return assign(conn, cfg, user, np.random.default_rng(seed))


def _wait_for_lock_waits(monitor: psycopg.Connection[Any], waiters: int, futures: list[Future[Any]]) -> int:
    """Poll until ``waiters`` sessions of this database wait on a lock (or a thread gave up)."""
    waiting = 0
    while waiting < waiters and not any(f.done() for f in futures):
        time.sleep(0.02)
        row = monitor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        waiting = row[0] if row else 0
    return waiting


def test_concurrent_first_requests_get_the_first_inserted_variant(migrated_db_url: str) -> None:
    """Threads that all found no assignment and chose their own variant return the one inserted first."""
    # epsilon = 1: each thread draws a uniformly random variant, so they would disagree if they could.
    cfg = config(policy="epsilon_greedy", epsilon=1.0)
    threads = 6
    with (
        connect(migrated_db_url) as holder,
        connect(migrated_db_url, autocommit=True) as monitor,
        ThreadPoolExecutor(threads) as pool,
    ):
        ensure_experiment(holder, cfg)
        with holder.transaction():
            # The first request's insert is not committed yet: the others cannot see it and must wait on it.
            first, new = assign(holder, cfg, "0xrace", np.random.default_rng(0))
            futures = [
                pool.submit(_assign_in_thread, migrated_db_url, cfg, "0xrace", seed) for seed in range(1, threads + 1)
            ]
            assert _wait_for_lock_waits(monitor, threads, futures) == threads
        results = [f.result() for f in futures]
    assert new
    assert results == [(first, False)] * threads
    with connect(migrated_db_url) as conn:
        assert sum(c.exposures for c in counts(conn, "ui").values()) == 1


def test_simultaneous_first_requests_agree(migrated_db_url: str) -> None:
    """Released together, several threads assigning one new user end with one variant and one new flag."""
    cfg = config(policy="epsilon_greedy", epsilon=1.0)
    with connect(migrated_db_url) as conn:
        ensure_experiment(conn, cfg)
    threads = 8
    barrier = threading.Barrier(threads)

    def run(seed: int) -> tuple[str, bool]:
        with connect(migrated_db_url) as conn:
            barrier.wait()
            return assign(conn, cfg, "0xsame", np.random.default_rng(seed))

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(run, range(threads)))
    assert len({variant for variant, _ in results}) == 1
    assert sum(new for _, new in results) == 1


def test_bandit_assignment_reads_the_stored_counts(conn: psycopg.Connection[Any]) -> None:
    """Thompson sampling over stored outcomes sends new users to the variant that converts."""
    cfg = config(policy="thompson", variants=("baseline", "recommend"))
    ensure_experiment(conn, cfg)
    for i in range(100):
        for variant in cfg.variants:
            conn.execute(
                "INSERT INTO qf.experiment_assignments (experiment, user_id, variant) VALUES ('ui', %s, %s)",
                (f"{variant}-{i}", variant),
            )
        conn.commit()
        record_outcome(conn, "ui", f"recommend-{i}", 1.0)
    rng = np.random.default_rng(2)
    assert {assign(conn, cfg, f"new-{i}", rng) for i in range(20)} == {("recommend", True)}


# Outcomes and statistics -----------------------------------------------------------------


def test_outcome_without_assignment_is_a_data_error(conn: psycopg.Connection[Any]) -> None:
    """Recording for a user who was never assigned says so; so do a bad reward and an unknown experiment."""
    ensure_experiment(conn, config())
    with pytest.raises(DataError, match="user 'bob' has no variant in experiment 'ui'; assign one"):
        record_outcome(conn, "ui", "bob", 1.0)
    variant, _ = assign(conn, config(), "bob", np.random.default_rng(0))
    with pytest.raises(DataError, match="reward must be a number between 0 and 1"):
        record_outcome(conn, "ui", "bob", 1.5)
    with pytest.raises(UnknownExperiment):
        record_outcome(conn, "nope", "bob", 1.0)
    assert record_outcome(conn, "ui", "bob", 1.0) == variant


def test_users_count_once_by_their_best_reward(conn: psycopg.Connection[Any]) -> None:
    """Successes sum each user's best reward; conversions count users whose best reward is >= 0.5."""
    cfg = config(variants=("baseline", "recommend"), weights=(1.0, 1e-9))  # everybody lands in baseline
    ensure_experiment(conn, cfg)
    rng = np.random.default_rng(0)
    for user in ("a", "b", "c", "d"):
        assert assign(conn, cfg, user, rng) == ("baseline", True)
    for user, reward in [("a", 1.0), ("a", 1.0), ("b", 0.3), ("b", 0.6), ("c", 0.2)]:
        record_outcome(conn, "ui", user, reward)
    seen = counts(conn, "ui")
    assert (seen["baseline"].exposures, seen["baseline"].conversions) == (4, 2)
    assert seen["baseline"].successes == pytest.approx(1.0 + 0.6 + 0.2)
    assert seen["recommend"] == VariantCounts(0, 0.0, 0)


def test_stats_are_the_pure_statistics_of_the_stored_counts(conn: psycopg.Connection[Any]) -> None:
    """GetExperimentStats reads counts and applies experiment_stats: rates, lift, chi-square."""
    cfg = config(policy="epsilon_greedy", variants=("baseline", "recommend"))
    ensure_experiment(conn, cfg)
    with pytest.raises(UnknownExperiment):
        stats(conn, "nope")
    plan = {"baseline": (40, 4), "recommend": (50, 10)}
    for variant, (users, converted) in plan.items():
        for i in range(users):
            conn.execute(
                "INSERT INTO qf.experiment_assignments (experiment, user_id, variant) VALUES ('ui', %s, %s)",
                (f"{variant}-{i}", variant),
            )
        conn.commit()
        for i in range(converted):
            record_outcome(conn, "ui", f"{variant}-{i}", 1.0)
    result = stats(conn, "ui")
    assert result == experiment_stats(cfg, counts(conn, "ui"))
    baseline, recommend = result.variants
    assert (baseline.exposures, baseline.conversions, recommend.conversion_rate) == (40, 4, 0.2)
    assert recommend.lift == pytest.approx(1.0)
    assert not math.isnan(result.p_value)


def test_retention_deletes_only_old_outcomes(conn: psycopg.Connection[Any]) -> None:
    """Outcomes older than the retention go; newer outcomes and every assignment stay."""
    cfg = config()
    ensure_experiment(conn, cfg)
    rng = np.random.default_rng(0)
    for user in ("old", "edge", "new"):
        assign(conn, cfg, user, rng)
        record_outcome(conn, "ui", user, 1.0)
    conn.execute("UPDATE qf.experiment_outcomes SET recorded_at = now() - interval '400 days' WHERE user_id = 'old'")
    conn.execute("UPDATE qf.experiment_outcomes SET recorded_at = now() - interval '364 days' WHERE user_id = 'edge'")
    conn.commit()
    assert delete_older_than(conn, 365) == 1
    remaining = conn.execute("SELECT user_id FROM qf.experiment_outcomes ORDER BY user_id").fetchall()
    assert remaining == [("edge",), ("new",)]
    assert conn.execute("SELECT count(*) FROM qf.experiment_assignments").fetchone() == (3,)
    assert delete_older_than(conn, 365) == 0
    with pytest.raises(ConfigError, match="positive number of days"):
        delete_older_than(conn, 0)
