"""The data-retention policy: `qf retention` once, and `qf serve` every hour (the sidecar runs it as its
retention job, :attr:`scorer.server.SidecarOptions.retention`).

It spans two components' tables -- the sidecar's audit decisions (:func:`scorer.audit.delete_expired`)
and the experiments' outcomes (:func:`qf.experiments.store.delete_older_than`) -- so it is the
application's policy, not the sidecar's. Chain data, labels and experiment assignments are never deleted.
"""

from __future__ import annotations

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.experiments import store as experiment_store
from qf_sentinel.scorer import audit as audit_log


def run_retention(database_url: str, *, audit_days: int, outcome_days: int) -> dict[str, int]:
    """Apply the retention policy once: decisions older than ``audit_days``, outcomes older than ``outcome_days``."""
    with connect(database_url) as conn:
        decisions = audit_log.delete_expired(conn, days=audit_days)
        outcomes = experiment_store.delete_older_than(conn, outcome_days)
        conn.commit()
    return {"decisions_deleted": decisions, "outcomes_deleted": outcomes}


__all__ = ["run_retention"]
