"""Migration 021: unknown-topic counts move to per-block rows, and qf.unknown_topics becomes their sums."""

from __future__ import annotations

import shutil
from pathlib import Path

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.migrate import SQL_DIR, apply_migrations

MIGRATION = "021_unknown_topics_per_block.sql"


def test_counts_from_before_keep_their_sums_where_no_reorg_reaches(db_url: str, tmp_path: Path) -> None:
    """A database with running counts upgrades in place: the same sums through the view, each kept at the lower of
    the checkpoint and the finalized block, so a rollback above it leaves them alone."""
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(SQL_DIR.glob("*.sql")):
        if path.name < MIGRATION:
            shutil.copy(path, before / path.name)
    with connect(db_url) as conn:
        apply_migrations(conn, before)
    with connect(db_url) as conn:
        conn.execute(
            "INSERT INTO qf.chains (chain_id, core, start_block, checkpoint_block, finalized_block)"
            " VALUES (1, %s, 10, 500, 450), (2, %s, 7, NULL, NULL)",
            [b"\x01" * 20, b"\x02" * 20],
        )
        conn.execute(
            "INSERT INTO qf.unknown_topics (chain_id, contract, topic0, seen) VALUES"
            " (1, %s, %s, 108), (1, %s, %s, 3), (2, %s, %s, 1)",
            [b"\xaa" * 20, b"\x01" * 32, b"\xbb" * 20, b"", b"\xaa" * 20, b"\x01" * 32],
        )
    shutil.copy(SQL_DIR / MIGRATION, before / MIGRATION)
    with connect(db_url) as conn:
        assert apply_migrations(conn, before) == [MIGRATION]
    with connect(db_url) as conn:
        assert conn.execute(
            "SELECT chain_id, contract, topic0, seen, first_block FROM qf.unknown_topics ORDER BY 1, 2"
        ).fetchall() == [
            (1, b"\xaa" * 20, b"\x01" * 32, 108, 450),
            (1, b"\xbb" * 20, b"", 3, 450),
            (2, b"\xaa" * 20, b"\x01" * 32, 1, 7),
        ]
