"""Ground truth of a simulated round: to ``qf.labels`` and to a CSV file, and its known sources.

Training reads the table; the file is for people and for other tools (it also
names each donor's funding pattern, ``qf.sim.funding.Style``). Writing is
idempotent per (chain, address, source): re-running a simulation replaces its
labels instead of duplicating them. The faucet a round is funded from and the
round's exchange-like accounts are known sources on the chain it ran on
(:func:`round_sources`, stored with ``qf.funding.sources.store_sources``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import psycopg

from qf_sentinel.qf.csvsafe import safe_row
from qf_sentinel.qf.eth import from_hex
from qf_sentinel.qf.funding.graph import KnownSource, SourceKind
from qf_sentinel.qf.funding.sources import ChainSource
from qf_sentinel.qf.sim.plan import Label, RoundPlan

COLUMNS = ("address", "is_sybil", "pattern", "funding", "source")


def write_labels_file(path: Path, labels: Sequence[Label], *, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for label in labels:
            writer.writerow(safe_row((label.address, str(label.is_sybil).lower(), label.pattern, label.funding,
                                      source)))


def round_sources(plan: RoundPlan, chain_id: int, faucet: str) -> list[ChainSource]:
    """The faucet (``faucet``, 0x address) and the plan's exchange-like accounts as known sources of ``chain_id``."""
    where = f"qf simulate / qf replay-gitcoin, plan {plan.name}"
    sources = [ChainSource(chain_id, KnownSource(from_hex(faucet), "devnet faucet (simulation funder)",
                                                 SourceKind.FAUCET, where))]  # fmt: skip
    for s in plan.sources:
        address = from_hex(plan.wallets[s.wallet].address)
        sources.append(ChainSource(chain_id, KnownSource(address, s.label, SourceKind(s.kind), where)))
    return sources


def store_labels(
    conn: psycopg.Connection, chain_id: int, labels: Sequence[Label], *, source: str, run_id: str
) -> int:
    """Upsert labels in one transaction; returns how many rows were written."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE incoming_labels (address bytea, is_sybil boolean, pattern text) ON COMMIT DROP"
        )
        with cur.copy("COPY incoming_labels (address, is_sybil, pattern) FROM STDIN") as copy:
            for label in labels:
                copy.write_row((from_hex(label.address), label.is_sybil, label.pattern))
        cur.execute(
            """
            INSERT INTO qf.labels (chain_id, address, is_sybil, pattern, source, run_id)
            SELECT %(chain_id)s, address, is_sybil, pattern, %(source)s, %(run_id)s FROM incoming_labels
            ON CONFLICT (chain_id, address, source) DO UPDATE
               SET is_sybil = EXCLUDED.is_sybil, pattern = EXCLUDED.pattern,
                   run_id = EXCLUDED.run_id, created_at = now()
            """,
            {"chain_id": chain_id, "source": source, "run_id": run_id},
        )
        return cur.rowcount
