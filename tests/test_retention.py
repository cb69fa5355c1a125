"""Retention: `qf retention` deletes audit decisions and experiment outcomes past their age, and nothing else."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.experiments import store as experiment_store
from qf_sentinel.qf.experiments.logic import ExperimentConfig
from qf_sentinel.qf.settings import Settings
from qf_sentinel.retention import run_retention
from tests.test_cli import qf

DEFAULTS = Settings.from_env({})
CONFIG = ExperimentConfig(name="ui", variants=("baseline", "recommend"), baseline="baseline", policy="hash")


def seed(db_url: str) -> None:
    """Decisions 1, 89 and 91 days old; outcomes 10, 364 and 366 days old; chain and label rows."""
    with connect(db_url) as conn:
        for days in (1, 89, 91):
            conn.execute(
                "INSERT INTO qf.scorer_decisions (decision_id, created_at, client, method, model_version, latency_ms) "
                "VALUES (%s, now() - make_interval(days => %s), 'dapp', 'ScoreContribution', 'v1', 0.1)",
                (uuid.uuid4(), days),
            )
        experiment_store.ensure_experiment(conn, CONFIG)
        for i, days in enumerate((10, 364, 366)):
            experiment_store.assign(conn, CONFIG, f"user-{i}", np.random.default_rng(i))
            experiment_store.record_outcome(conn, "ui", f"user-{i}", 1.0)
            conn.execute(
                "UPDATE qf.experiment_outcomes SET recorded_at = now() - make_interval(days => %s) WHERE user_id = %s",
                (days, f"user-{i}"),
            )
        conn.execute("INSERT INTO qf.chains (chain_id, core, start_block) VALUES (31337, %s, 0)", (b"\x01" * 20,))
        conn.execute(
            "INSERT INTO qf.labels (chain_id, address, is_sybil, pattern, source, created_at) "
            "VALUES (31337, %s, true, 'x', 'old', now() - interval '10 years')",
            (b"\x02" * 20,),
        )
        conn.commit()


def counts(db_url: str) -> dict[str, int]:
    with connect(db_url) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM qf.{table}").fetchone()[0]  # type: ignore[index]
            for table in ("scorer_decisions", "experiment_outcomes", "experiment_assignments", "chains", "labels")
        }


def test_retention_deletes_only_rows_past_their_age(migrated_db_url: str) -> None:
    """Defaults: decisions kept 90 days, outcomes 365; assignments, chain data and labels are never deleted."""
    seed(migrated_db_url)
    deleted = retain(migrated_db_url)
    assert deleted == {"decisions_deleted": 1, "outcomes_deleted": 1}
    assert counts(migrated_db_url) == {
        "scorer_decisions": 2, "experiment_outcomes": 2, "experiment_assignments": 3, "chains": 1, "labels": 1,
    }  # fmt: skip
    assert retain(migrated_db_url) == {"decisions_deleted": 0, "outcomes_deleted": 0}


def test_retention_command_uses_the_configured_ages(migrated_db_url: str, tmp_path: Path) -> None:
    """`qf retention` with QF_AUDIT_RETENTION_DAYS=30 and QF_EXPERIMENT_RETENTION_DAYS=5 deletes more."""
    seed(migrated_db_url)
    proc = qf("retention", env={"QF_DATABASE_URL": migrated_db_url, "QF_AUDIT_RETENTION_DAYS": "30",
                                "QF_EXPERIMENT_RETENTION_DAYS": "5"}, home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = "deleted 2 decisions older than 30 days and 3 experiment outcomes older than 5 days"
    assert expected in " ".join(proc.stdout.split())
    assert counts(migrated_db_url)["scorer_decisions"] == 1


def retain(db_url: str) -> dict[str, int]:
    """The retention job with the default ages."""
    return run_retention(db_url, audit_days=DEFAULTS.audit_retention_days,
                         outcome_days=DEFAULTS.experiment_retention_days)  # fmt: skip
