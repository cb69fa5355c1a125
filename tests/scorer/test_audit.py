"""The audit log on a real Postgres: a bad row costs only itself, and an outage loses nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb
from qf_sentinel.scorer.audit import AuditLog, AuditRow
from qf_sentinel.scorer.metrics import ScorerMetrics
from tests.fixtures.postgres import RestartablePostgres
from tests.scorer.harness import AUTH, running_sidecar, settings_for

CHAIN_ID = 31337


def row(**overrides: Any) -> AuditRow:
    values: dict[str, Any] = {
        "decision_id": str(uuid.uuid4()), "created_at": datetime.now(UTC), "client": "dapp",
        "method": "ScoreContribution", "model_version": "v1", "latency_ms": 0.1, "chain_id": CHAIN_ID,
        "donor": b"\x01" * 20, "amount": Decimal("5"), "risk_score": 0.1, "level": "LOW", "decision": "APPROVE",
        "context": {"page": "checkout"},
    }  # fmt: skip
    return AuditRow(**(values | overrides))


def stored(db_url: str, ids: list[str]) -> set[str]:
    with connect(db_url) as conn:
        rows = conn.execute(
            "SELECT decision_id::text FROM qf.scorer_decisions WHERE decision_id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
    return {r[0] for r in rows}


def sample(metrics: ScorerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("batch_rows", [1000, 5], ids=["one batch", "encoded backlog"])
def test_a_bad_row_costs_only_itself(migrated_db_url: str, batch_rows: int) -> None:
    """Rows the database cannot store (a NUL in jsonb, a NUL in text) sit among good ones in one batch: the good
    ones are written, the bad ones refused, logged and counted. Before, the whole batch was dropped. With batches
    of 5, every row after the fifth is queued encoded (a backlog), the bad ones among them."""
    good = [row() for _ in range(30)]
    bad = [row(context={"k": "a\x00b"}), row(client="da\x00pp")]
    metrics = ScorerMetrics()

    async def run() -> None:
        audit = AuditLog(migrated_db_url, metrics, flush_seconds=0.05, batch_rows=batch_rows)
        for r in [*good[:10], bad[0], *good[10:20], bad[1], *good[20:]]:
            audit.record(r)  # queued before the writer starts: all of them land in one batch
        audit.start()
        await audit.close()

    asyncio.run(run())
    assert stored(migrated_db_url, [r.decision_id for r in good + bad]) == {r.decision_id for r in good}
    assert sample(metrics, "qf_scorer_audit_rows_refused_total") == 2
    assert sample(metrics, "qf_scorer_audit_rows_written_total") == len(good)
    assert sample(metrics, "qf_scorer_audit_rows_dropped_total") == 0


def test_an_outage_loses_no_row(restartable_pg: RestartablePostgres) -> None:
    """Decisions recorded while Postgres is down are buffered (the queue gauge shows them) and written once it is
    back; the dependency gauge goes to 0 and back to 1. Batches of 100: most of the backlog is queued encoded."""
    metrics = ScorerMetrics()
    ids: list[str] = []
    seen: dict[str, float] = {}

    async def run() -> None:
        audit = AuditLog(restartable_pg.url, metrics, flush_seconds=0.05, batch_rows=100)
        audit.start()

        async def record(n: int) -> None:
            for _ in range(n):
                r = row()
                ids.append(r.decision_id)
                audit.record(r)
                await asyncio.sleep(0.01)

        await record(50)
        await asyncio.to_thread(restartable_pg.stop)
        await record(300)  # about 3 s of decisions with the database down
        seen["queued"] = sample(metrics, "qf_scorer_audit_queue_depth")
        seen["up"] = sample(metrics, "qf_scorer_dependency_up", dependency="audit")
        await asyncio.to_thread(restartable_pg.start)
        await record(50)
        deadline = time.monotonic() + 30
        while audit.buffered and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await audit.close()

    asyncio.run(run())
    assert seen["queued"] >= 250
    assert seen["up"] == 0
    assert sample(metrics, "qf_scorer_dependency_up", dependency="audit") == 1
    assert sample(metrics, "qf_scorer_dependency_errors_total", dependency="audit") >= 1
    assert stored(restartable_pg.url, ids) == set(ids)
    assert sample(metrics, "qf_scorer_audit_rows_dropped_total") == 0


def test_the_sidecar_rides_out_a_postgres_outage(
    restartable_pg: RestartablePostgres, model_dir: Path, tmp_path: Path
) -> None:
    """Postgres stops for a few seconds under load: scoring keeps answering from memory, experiments answer
    UNAVAILABLE (quickly, never INTERNAL) and recover, the feature follower reconnects, and every decision
    returned is in the audit log once the sidecar has stopped."""
    settings = settings_for(tmp_path, scorer_feature_reload_seconds=1.0)
    contribution = pb.Contribution(donor="0x" + "ab" * 20, recipient_id="0x" + "22" * 20, pool_id="7",
                                   chain_id=CHAIN_ID, token="0x" + "11" * 20, amount="5")  # fmt: skip
    score = pb.ScoreContributionRequest(contribution=contribution)
    assign = pb.AssignVariantRequest(experiment="project_list", user_id="outage-user")
    ids: list[str] = []
    failures: list[grpc.StatusCode] = []
    assign_codes: dict[str, set[grpc.StatusCode]] = {"down": set(), "after": set()}
    down_details: list[str] = []
    #: AssignVariant refusals once the database is back (the set in assign_codes is reset while waiting)
    refused_after: list[grpc.StatusCode] = []
    with running_sidecar(settings, restartable_pg.url, model_dir.parent) as sidecar:
        stub, metrics = sidecar.stub, sidecar.sidecar.metrics

        def calls(n: int, phase: str | None = None) -> None:
            for _ in range(n):
                try:
                    ids.append(stub.ScoreContribution(score, metadata=AUTH, timeout=5).decision_id)
                except grpc.RpcError as exc:
                    failures.append(exc.code())  # type: ignore[attr-defined]
                if phase is not None:
                    # Short deadlines while the database is down: the client gives up before the pool does.
                    timeout = 0.5 if phase == "down" else 10
                    try:
                        stub.AssignVariant(assign, metadata=AUTH, timeout=timeout)
                        assign_codes[phase].add(grpc.StatusCode.OK)
                    except grpc.RpcError as exc:
                        assign_codes[phase].add(exc.code())  # type: ignore[attr-defined]
                        if phase == "after":
                            refused_after.append(exc.code())  # type: ignore[attr-defined]
                        if phase == "down":
                            down_details.append(exc.details())  # type: ignore[attr-defined]
                time.sleep(0.005)

        calls(100)
        restartable_pg.stop()
        calls(400)
        calls(30, phase="down")
        restartable_pg.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and assign_codes["after"] != {grpc.StatusCode.OK}:
            assign_codes["after"] = set()
            calls(5, phase="after")
            time.sleep(0.2)
        while time.monotonic() < deadline and not (
            sample(metrics, "qf_scorer_dependency_up", dependency="features") == 1
            and sample(metrics, "qf_scorer_dependency_errors_total", dependency="features") >= 1
        ):
            time.sleep(0.2)
        assert sample(metrics, "qf_scorer_dependency_errors_total", dependency="experiments") >= 1
        assert sample(metrics, "qf_scorer_dependency_up", dependency="experiments") == 1
        assert sample(metrics, "qf_scorer_dependency_errors_total", dependency="features") >= 1
        assert sample(metrics, "qf_scorer_dependency_up", dependency="features") == 1
    assert failures == []
    assert assign_codes["down"] <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    # While it recovers, a refusal is UNAVAILABLE, answered: never INTERNAL, never a call left to its deadline.
    assert set(refused_after) <= {grpc.StatusCode.UNAVAILABLE}
    # Once a call has found the database down (even one whose client gave up waiting), the others fail at once
    # (no pool wait) but for one probe a second. (The soak found every call waiting for the pool, past its deadline.)
    fast = [d for d in down_details if d == "the experiments database is unavailable; retry later"]
    assert len(fast) >= 20, down_details
    assert assign_codes["after"] == {grpc.StatusCode.OK}
    assert len(ids) >= 500
    assert stored(restartable_pg.url, ids) == set(ids)

