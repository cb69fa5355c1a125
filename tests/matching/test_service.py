"""match_pool, the one answer to "the matching of this pool": its weights policy and its chain policy.

On hand-made rounds in a real PostgreSQL (:mod:`tests.analytics.events`); the
console, the CLI and the demo rendering the same result is in
``tests/console/test_one_matching.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Hashable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np
import psycopg
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import AmbiguousChain, ConfigError
from qf_sentinel.qf.matching.db import resolve_chain
from qf_sentinel.qf.matching.service import MethodOptions, ScoreFile, match_pool, store
from tests.analytics.events import CHAIN_ID, WINDOW, EventWriter, address, refresh, units
from tests.analytics.reference import pro_rata, standard_matches

START, _ = WINDOW
A, B, C = address("project-a"), address("project-b"), address("project-c")
HONEST = [address(f"honest-{i}") for i in range(3)]
SYBILS = [address(f"sybil-{i}") for i in range(3)]


@pytest.fixture
def conn(migrated_db_url: str) -> Iterator[psycopg.Connection]:
    with connect(migrated_db_url) as c:
        yield c


def hand_round(conn: psycopg.Connection, chain_id: int = CHAIN_ID, pool_id: int = 1, funded: int = 900) -> None:
    """Three honest donors spread over A and B; three sybils pile small gifts on C."""
    w = EventWriter(conn, chain_id)
    strategy = w.pool(pool_id, funded=units(funded))
    for r in (A, B, C):
        w.register(strategy, r)
    w.review(strategy, {A: 2, B: 2, C: 2})
    for i, donor in enumerate(HONEST):
        w.donate(strategy, donor, A, units(4 + i), at=START + i)
        w.donate(strategy, donor, B, units(1), at=START + 10 + i)
    for i, donor in enumerate(SYBILS):
        w.donate(strategy, donor, C, units(1), at=START + 20 + i)
    refresh(conn)


def qf_standard(gifts: Mapping[bytes, Mapping[bytes, int | Fraction]], pool: float) -> dict[Hashable, float]:
    """Standard QF by hand (exact fractions), scaled to the pool."""
    exact = {p: {d: Fraction(v) for d, v in by.items()} for p, by in gifts.items()}
    return pro_rata(standard_matches(exact), pool)


HONEST_GIFTS = {A: {d: 4 + i for i, d in enumerate(HONEST)}, B: dict.fromkeys(HONEST, 1)}


def by_project(result_matches: np.ndarray, projects: list[bytes]) -> dict[bytes, float]:
    return {p: float(m) for p, m in zip(projects, result_matches, strict=True)}


def add_sybil_labels(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO qf.labels (chain_id, address, is_sybil, pattern, source) SELECT %s, a, true, 'ring', 'test' "
        "FROM unnest(%s::bytea[]) a",
        (CHAIN_ID, SYBILS),
    )
    conn.commit()


def add_model_scores(conn: psycopg.Connection, weights: dict[bytes, float], version: str = "v-test") -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO qf.donor_risk (chain_id, pool_id, donor, model_version, score, level, decision, reasons, "
            "weight) VALUES (%s, 1, %s, %s, 0.5, 'MEDIUM', 'REVIEW', '{}', %s)",
            [(CHAIN_ID, d, version, w) for d, w in weights.items()],
        )
    conn.commit()


def test_auto_weights_take_no_weights_when_nothing_speaks_of_the_donors(conn: psycopg.Connection) -> None:
    """No score run and no label: risk-adjusted is standard QF, and says its weights came from nowhere."""
    hand_round(conn)
    result = match_pool(conn, CHAIN_ID, 1, methods=("risk-adjusted",))
    assert result.weights is not None
    assert (result.weights.source, result.weights_source, result.weights.discounted) == ("none", "none", 0)
    np.testing.assert_array_equal(result.matches["risk-adjusted"], result.matches["standard"])
    everyone = HONEST_GIFTS | {C: dict.fromkeys(SYBILS, 1)}
    assert by_project(result.matches["standard"], result.round.projects) == pytest.approx(qf_standard(everyone, 900))


def test_auto_weights_take_the_labels_then_the_model(conn: psycopg.Connection) -> None:
    """Labels once a donor of the pool has one (sybils weigh 0); the latest score run once there is one."""
    hand_round(conn)
    add_sybil_labels(conn)
    labels = match_pool(conn, CHAIN_ID, 1, methods=("risk-adjusted",))
    assert labels.weights_source == "labels"
    assert labels.weights is not None
    assert labels.weights.discounted == len(SYBILS)
    # The sybils' project has nothing left to match; the honest two share the pool as if C had no donor.
    assert by_project(labels.matches["risk-adjusted"], labels.round.projects) == pytest.approx(
        qf_standard(HONEST_GIFTS, 900) | {C: 0.0}
    )

    half = dict.fromkeys(SYBILS, 0.5) | dict.fromkeys(HONEST, 1.0)
    add_model_scores(conn, half)
    model = match_pool(conn, CHAIN_ID, 1, methods=("risk-adjusted",))
    assert model.weights_source == "model v-test"
    weighted = HONEST_GIFTS | {C: {d: Fraction(1, 2) for d in SYBILS}}
    assert by_project(model.matches["risk-adjusted"], model.round.projects) == pytest.approx(
        qf_standard(weighted, 900)  # type: ignore[arg-type]
    )
    # An explicit choice overrides the policy.
    assert match_pool(conn, CHAIN_ID, 1, methods=("risk-adjusted",), weights="labels").weights_source == "labels"
    assert match_pool(conn, CHAIN_ID, 1, methods=("risk-adjusted",), weights="none").weights_source == "none"


def test_explicit_model_weights_without_a_score_run_are_an_error(conn: psycopg.Connection) -> None:
    """`model` asked for and no `qf score` run: an error saying what to run, never a quiet fallback."""
    hand_round(conn)
    add_sybil_labels(conn)
    with pytest.raises(ConfigError, match="qf score --pool 1"):
        match_pool(conn, CHAIN_ID, 1, methods=("risk-adjusted",), weights="model")


def test_score_file_weights_and_the_stored_run(conn: psycopg.Connection, tmp_path: Path) -> None:
    """A CSV of risk scores with a threshold excludes the donors above it; the run records where weights came from."""
    hand_round(conn)
    scores = tmp_path / "risk.csv"
    scores.write_text("address,score\n" + "".join(f"0x{d.hex()},0.9\n" for d in SYBILS))
    result = match_pool(conn, CHAIN_ID, 1, methods=("risk-adjusted",), weights=ScoreFile(scores, 0.5),
                        options=MethodOptions(cap_pct=60))  # fmt: skip
    assert result.weights_source == f"scores {scores}"
    run_id = store(conn, result, "risk-adjusted")
    params, base = conn.execute(
        "SELECT r.params, array_agg(m.base_match ORDER BY m.recipient_id) FROM qf.matching_runs r "
        "JOIN qf.matching_results m USING (run_id) WHERE run_id = %s GROUP BY 1",
        (run_id,),
    ).fetchone()
    assert params["weights"] == "csv"
    assert params["discounted_donors"] == len(SYBILS)
    assert params["cap_pct"] == 60
    assert [float(b) for b in base] == pytest.approx(list(result.matches["standard"]))


def test_nothing_donated_matches_zero_under_every_method(conn: psycopg.Connection) -> None:
    """A pool with accepted projects and no donation yet: zeros, not an error from a kernel."""
    w = EventWriter(conn)
    strategy = w.pool(1, funded=units(100))
    w.register(strategy, A)
    w.review(strategy, {A: 2})
    refresh(conn)
    result = match_pool(conn, CHAIN_ID, 1, methods=("standard", "cocm", "pairwise", "risk-adjusted"))
    assert result.donors == 0
    assert {m: list(v) for m, v in result.matches.items()} == {
        m: [0.0] for m in ("standard", "cocm", "pairwise", "risk-adjusted")
    }


def add_chain(conn: psycopg.Connection, chain_id: int) -> None:
    conn.execute("INSERT INTO qf.chains (chain_id, core, start_block) VALUES (%s, %s, 0)", (chain_id, b"\1" * 20))
    conn.commit()


def test_the_chain_is_the_named_one_else_the_only_one_else_an_error_naming_them(conn: psycopg.Connection) -> None:
    """Never a silent pick: two chains indexed and none named is an error that lists both."""
    with pytest.raises(ConfigError, match="nothing is indexed"):
        resolve_chain(conn, None)
    add_chain(conn, CHAIN_ID)
    assert resolve_chain(conn, None) == CHAIN_ID
    add_chain(conn, 10)
    with pytest.raises(AmbiguousChain, match=f"10, {CHAIN_ID}") as raised:
        resolve_chain(conn, None)
    assert raised.value.chains == [10, CHAIN_ID]
    assert resolve_chain(conn, CHAIN_ID) == CHAIN_ID


def qf_cli(db_url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")}
    env |= {"QF_DATABASE_URL": db_url, "QF_HOME": str(home), "QF_LOG_FORMAT": "json"}
    return subprocess.run([sys.executable, "-m", "qf_sentinel", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


def test_qf_matching_names_the_chains_instead_of_picking_one(
    conn: psycopg.Connection, migrated_db_url: str, tmp_path: Path
) -> None:
    """Pool 1 on two chains: without --chain-id a one-line error names both; with it, that chain's pool."""
    hand_round(conn, CHAIN_ID, funded=900)
    hand_round(conn, 10, funded=300)
    add_chain(conn, CHAIN_ID)
    add_chain(conn, 10)
    refused = qf_cli(migrated_db_url, tmp_path, "matching", "--pool", "1")
    assert refused.returncode != 0
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), refused.stderr
    assert f"(10, {CHAIN_ID})" in line
    assert "--chain-id" in line
    named = qf_cli(migrated_db_url, tmp_path, "matching", "--pool", "1", "--chain-id", "10", "--format", "json")
    assert named.returncode == 0, named.stderr
    assert '"pool_amount": 300.0' in named.stdout
    assert '"chain_id": 10' in named.stdout
