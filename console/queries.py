"""What the console's pages read: one function per question, plain SQL, rows as dicts.

Every query is bounded (a page of rows, or an aggregate) and filters on
indexed columns, so a page stays quick on a full Round 9; ``bench/console_pages.py``
measures them. Addresses leave here as raw bytes; the templates format them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

Row = dict[str, Any]
QueueStatus = Literal["pending", "reviewed", "all"]
PAGE_SIZE = 50


Params = Sequence[Any] | Mapping[str, Any]


def _rows(conn: psycopg.Connection[Any], query: str, params: Params = ()) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _row(conn: psycopg.Connection[Any], query: str, params: Params = ()) -> Row | None:
    rows = _rows(conn, query, params)
    return rows[0] if rows else None


# -- rounds ----------------------------------------------------------------------------------


def indexed_chains(conn: psycopg.Connection[Any]) -> list[int]:
    return [int(r[0]) for r in conn.execute("SELECT chain_id FROM qf.chains ORDER BY 1").fetchall()]


def indexer_status(conn: psycopg.Connection[Any], chains: Sequence[int]) -> dict[int, Row]:
    """Per chain, the last block indexed, when it was mined and when the indexer last committed."""
    rows = _rows(
        conn,
        """
        SELECT c.chain_id, c.checkpoint_block, c.finalized_block, c.updated_at,
               b.block_time AS checkpoint_time,
               extract(epoch FROM now() - b.block_time) AS lag_seconds,
               extract(epoch FROM now() - c.updated_at) AS since_commit_seconds
        FROM qf.chains c
        LEFT JOIN qf.blocks b ON b.chain_id = c.chain_id AND b.number = c.checkpoint_block
        WHERE c.chain_id = ANY(%s)
        """,
        (list(chains),),
    )
    return {int(r["chain_id"]): r for r in rows}


def rounds(conn: psycopg.Connection[Any], chains: Sequence[int]) -> list[Row]:
    """Every indexed pool of the chains with its KPIs (``qf.round_stats``), its token and its owner's profile name."""
    return _rows(
        conn,
        """
        SELECT r.chain_id, r.pool_id, r.donors, r.donations, r.amount, r.mean_donation, r.fresh_wallet_donation_share,
               r.matching_pool, r.accepted_projects, r.match_gini, r.top10_match_share,
               t.symbol AS token_symbol, pr.name AS owner_name
        FROM qf.round_stats r
        LEFT JOIN qf.tokens t ON t.chain_id = r.chain_id AND t.address = r.token
        LEFT JOIN LATERAL (SELECT profile_id FROM qf.pool_created pc
                           WHERE pc.chain_id = r.chain_id AND pc.pool_id = r.pool_id LIMIT 1) pc ON true
        LEFT JOIN LATERAL (SELECT name FROM qf.profiles p
                           WHERE p.chain_id = r.chain_id AND p.profile_id = pc.profile_id LIMIT 1) pr ON true
        WHERE r.chain_id = ANY(%s)
        ORDER BY r.chain_id, r.pool_id
        """,
        (list(chains),),
    )


def round_header(conn: psycopg.Connection[Any], chain_id: int, pool_id: int) -> Row | None:
    found = [r for r in rounds(conn, [chain_id]) if int(r["pool_id"]) == pool_id]
    return found[0] if found else None


def pool_chains(conn: psycopg.Connection[Any], chains: Sequence[int], pool_id: int) -> list[int]:
    """The chains, of ``chains``, on which a pool with this id is indexed (pool ids repeat across chains)."""
    rows = conn.execute(
        "SELECT chain_id FROM qf.round_stats WHERE chain_id = ANY(%s) AND pool_id = %s ORDER BY 1",
        (list(chains), pool_id),
    ).fetchall()
    return [int(r[0]) for r in rows]


# -- named rounds (qf rounds add) --------------------------------------------------------------


def named_rounds(conn: psycopg.Connection[Any], chains: Sequence[int]) -> list[Row]:
    """Every named round whose pools are all on ``chains``: its pools and chains, counted."""
    return _rows(
        conn,
        """
        SELECT r.name, r.created_at, count(*) AS pools, count(DISTINCT p.chain_id) AS chain_count,
               array_agg(DISTINCT p.chain_id ORDER BY p.chain_id) AS chains
        FROM qf.rounds r JOIN qf.round_pools p ON p.round = r.name
        GROUP BY r.name, r.created_at
        HAVING bool_and(p.chain_id = ANY(%s))
        ORDER BY r.name
        """,
        (list(chains),),
    )


def named_round_pools(conn: psycopg.Connection[Any], name: str) -> list[Row]:
    """The round's pools by chain, with their KPIs and token (empty: no such round)."""
    return _rows(
        conn,
        """
        SELECT p.chain_id, p.pool_id, s.donors, s.donations, s.amount, s.matching_pool, t.symbol AS token_symbol
        FROM qf.round_pools p
        LEFT JOIN qf.round_stats s ON s.chain_id = p.chain_id AND s.pool_id = p.pool_id
        LEFT JOIN qf.tokens t ON t.chain_id = s.chain_id AND t.address = s.token
        WHERE p.round = %s
        ORDER BY p.chain_id, p.pool_id
        """,
        (name,),
    )


def project_chains(conn: psycopg.Connection[Any], name: str) -> dict[bytes, tuple[int, ...]]:
    """Per recipient id, the chains where the round's pools accept it and it received donations."""
    rows = conn.execute(
        """
        SELECT h.recipient_id, array_agg(DISTINCT p.chain_id ORDER BY p.chain_id)
        FROM qf.round_pools p
        JOIN qf.pools q ON q.chain_id = p.chain_id AND q.pool_id = p.pool_id
        JOIN qf.recipient_status_history h ON h.chain_id = p.chain_id AND h.contract = q.strategy
             AND h.next_block_number IS NULL AND h.status = 2
        WHERE p.round = %s AND EXISTS (SELECT 1 FROM qf.project_totals t WHERE t.chain_id = p.chain_id
                                       AND t.pool_id = p.pool_id AND t.recipient_id = h.recipient_id)
        GROUP BY h.recipient_id
        """,
        (name,),
    ).fetchall()
    return {bytes(r): tuple(int(c) for c in cs) for r, cs in rows}


def pool_tokens(conn: psycopg.Connection[Any], chain_id: int, pool_id: int) -> list[Row]:
    """Donations to the pool by token, from the maintained per-project totals (the donations view would
    price every row of the pool)."""
    return _rows(
        conn,
        """
        SELECT t.symbol AS token_symbol, d.donations
        FROM (SELECT token, sum(donations) AS donations FROM qf.project_totals
              WHERE chain_id = %s AND pool_id = %s GROUP BY token) d
        LEFT JOIN qf.tokens t ON t.chain_id = %s AND t.address = d.token
        ORDER BY d.donations DESC
        """,
        (chain_id, pool_id, chain_id),
    )


# -- flagged donors --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DonorFilter:
    pool_id: int | None = None
    decision: str | None = None  # APPROVE, REVIEW or BLOCK
    pattern: str | None = None  # a label pattern (ring, fan_out, reviewed_sybil, honest...)
    project: bytes | None = None  # a recipient id the donor gave to
    offset: int = 0


def scored_pools(conn: psycopg.Connection[Any], chains: Sequence[int]) -> list[Row]:
    """Pools with batch scores (``qf score``): the model version and how many donors it flagged."""
    return _rows(
        conn,
        """
        SELECT chain_id, pool_id, model_version, max(scored_at) AS scored_at, count(*) AS donors,
               count(*) FILTER (WHERE decision <> 'APPROVE') AS flagged
        FROM qf.donor_risk_latest WHERE chain_id = ANY(%s)
        GROUP BY chain_id, pool_id, model_version ORDER BY chain_id, pool_id
        """,
        (list(chains),),
    )


def label_patterns(conn: psycopg.Connection[Any], chains: Sequence[int]) -> list[str]:
    rows = conn.execute("SELECT DISTINCT pattern FROM qf.labels WHERE chain_id = ANY(%s) ORDER BY 1", (list(chains),))
    return [r[0] for r in rows.fetchall()]


def flagged_donors(conn: psycopg.Connection[Any], chains: Sequence[int], f: DonorFilter) -> list[Row]:
    """Scored donors, riskiest first, with the model's reasons, community, latest label and current verdict.

    The pattern filter matches any of the donor's labels (the simulator's ``ring``
    and a reviewer's ``reviewed_sybil`` alike); the row shows the latest one.
    """
    return _rows(
        conn,
        """
        WITH page AS (  -- the page's donors first: features, labels and verdicts are joined to 50 rows only
            SELECT r.* FROM qf.donor_risk_latest r
            WHERE r.chain_id = ANY(%(chains)s)
              AND (%(pool)s::numeric IS NULL OR r.pool_id = %(pool)s::numeric)
              AND (%(decision)s::text IS NULL OR r.decision = %(decision)s::text)
              AND (%(pattern)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM qf.labels lp WHERE lp.chain_id = r.chain_id AND lp.address = r.donor
                      AND lp.pattern = %(pattern)s::text))
              AND (%(project)s::bytea IS NULL OR EXISTS (
                    SELECT 1 FROM qf.allocated a
                    JOIN qf.donation_strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
                    WHERE a.chain_id = r.chain_id AND a.sender = r.donor AND s.pool_id = r.pool_id
                      AND a.recipient_id = %(project)s::bytea))
            ORDER BY r.score DESC, r.donor, r.chain_id
            LIMIT %(limit)s OFFSET %(offset)s
        )
        SELECT r.chain_id, r.pool_id, r.donor, r.score, r.level, r.decision, r.reasons, r.community,
               r.community_flagged_share, r.weight, r.model_version,
               df.donation_count, df.total_amount, df.distinct_projects, df.fresh_wallet,
               l.pattern, l.is_sybil, l.source AS label_source, v.verdict, v.reviewer
        FROM page r
        LEFT JOIN qf.donor_features df ON df.chain_id = r.chain_id AND df.donor = r.donor
        LEFT JOIN LATERAL (SELECT pattern, is_sybil, source FROM qf.labels l
                           WHERE l.chain_id = r.chain_id AND l.address = r.donor
                           ORDER BY created_at DESC LIMIT 1) l ON true
        LEFT JOIN qf.review_verdicts v ON v.chain_id = r.chain_id AND v.donor = r.donor
        ORDER BY r.score DESC, r.donor, r.chain_id
        """,
        {"chains": list(chains), "pool": f.pool_id, "decision": f.decision, "pattern": f.pattern,
         "project": f.project, "limit": PAGE_SIZE, "offset": f.offset},
    )  # fmt: skip


# -- one donor's evidence --------------------------------------------------------------------


def donor_chains(conn: psycopg.Connection[Any], chains: Sequence[int], donor: bytes) -> list[Row]:
    """The chains, of ``chains``, where the address donated, was scored, asked the sidecar or was reviewed:
    per chain its donations (count, pools, USD), sidecar decisions and current verdict."""
    return _rows(
        conn,
        """
        SELECT c.chain_id, d.donations, d.pools, d.amount_usd, d.first_at, d.last_at,
               s.decisions, s.flagged, v.verdict, v.reviewer
        FROM unnest(%(chains)s::bigint[]) AS c (chain_id)
        LEFT JOIN LATERAL (SELECT count(*) AS donations, count(DISTINCT pool_id) AS pools,
                                  sum(amount_usd) AS amount_usd, min(block_time) AS first_at, max(block_time) AS last_at
                           FROM qf.donations WHERE chain_id = c.chain_id AND donor = %(hex)s) d ON true
        LEFT JOIN LATERAL (SELECT count(*) AS decisions,
                                  count(*) FILTER (WHERE decision IN ('REVIEW', 'BLOCK')) AS flagged
                           FROM qf.scorer_decisions WHERE chain_id = c.chain_id AND donor = %(donor)s) s ON true
        LEFT JOIN qf.review_verdicts v ON v.chain_id = c.chain_id AND v.donor = %(donor)s
        WHERE d.donations > 0 OR s.decisions > 0 OR v.verdict IS NOT NULL
           OR EXISTS (SELECT 1 FROM qf.donor_features f WHERE f.chain_id = c.chain_id AND f.donor = %(donor)s)
        ORDER BY c.chain_id
        """,
        {"chains": list(chains), "donor": donor, "hex": "0x" + donor.hex()},
    )



def donor_features(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> Row | None:
    return _row(conn, "SELECT * FROM qf.donor_features WHERE chain_id = %s AND donor = %s", (chain_id, donor))


def donor_donations(conn: psycopg.Connection[Any], chain_id: int, donor: bytes, limit: int = 200) -> list[Row]:
    """The donor's latest donations with the project's name (index on the donor's hex address)."""
    return _rows(
        conn,
        """
        SELECT pool_id, recipient_id, project_name, token_symbol, amount, amount_usd, block_number, block_time,
               tx_hash, donor_nonce
        FROM qf.donations WHERE chain_id = %s AND donor = %s
        ORDER BY block_number DESC, log_index DESC LIMIT %s
        """,
        (chain_id, "0x" + donor.hex(), limit),
    )


NATIVE = bytes.fromhex("ee" * 20)
#: Hops of a funding trail the donor page follows (the funding worker searches this deep by default).
TRAIL_HOPS = 3
#: Co-funded donors listed on a donor page (all are counted).
CO_FUNDED_SHOWN = 30


def funding_trail(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> list[Row]:
    """The donor's first native funding, then its funder's, and so on: up to TRAIL_HOPS rows, each with the
    funder's known-source label; stops at a known source or a wallet seen before."""
    trail: list[Row] = []
    wallet, seen = donor, {donor}
    for _ in range(TRAIL_HOPS):
        row = _row(
            conn,
            """
            SELECT w.wallet, w.funder, w.amount, w.block_number, w.block_time, w.method, k.label, k.kind
            FROM qf.wallet_funding w
            LEFT JOIN qf.known_sources k ON k.chain_id = w.chain_id AND k.address = w.funder
            WHERE w.chain_id = %s AND w.wallet = %s AND w.asset = %s
            """,
            (chain_id, wallet, NATIVE),
        )
        if row is None:
            break
        trail.append(row)
        funder = bytes(row["funder"])
        if row["label"] is not None or funder in seen:
            break
        seen.add(funder)
        wallet = funder
    return trail


def co_funded(conn: psycopg.Connection[Any], chain_id: int, funder: bytes, donor: bytes) -> tuple[int, list[Row]]:
    """Other donors of the chain whose first native funder is ``funder``: how many, and the first few."""
    query = """
        FROM qf.wallet_funding w
        WHERE w.chain_id = %(chain)s AND w.funder = %(funder)s AND w.asset = %(native)s AND w.wallet <> %(donor)s
          AND EXISTS (SELECT 1 FROM qf.allocated a WHERE a.chain_id = w.chain_id AND a.sender = w.wallet)
    """
    params = {"chain": chain_id, "funder": funder, "native": NATIVE, "donor": donor}
    total = conn.execute("SELECT count(*) " + query, params).fetchone()
    shown = _rows(conn, "SELECT w.wallet, w.block_time " + query + " ORDER BY w.block_time LIMIT %(limit)s",
                  params | {"limit": CO_FUNDED_SHOWN})  # fmt: skip
    return (int(total[0]) if total else 0), shown


def donor_decisions(conn: psycopg.Connection[Any], chain_id: int, donor: bytes, limit: int = 20) -> list[Row]:
    return _rows(
        conn,
        """
        SELECT decision_id, created_at, method, client, pool_id, recipient_id, amount, risk_score, level, decision,
               cold_start, reasons, features, anomaly, model_version
        FROM qf.scorer_decisions WHERE chain_id = %s AND donor = %s
        ORDER BY created_at DESC LIMIT %s
        """,
        (chain_id, donor, limit),
    )


def donor_scores(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> list[Row]:
    return _rows(
        conn,
        "SELECT pool_id, score, level, decision, reasons, community, community_flagged_share, weight, model_version "
        "FROM qf.donor_risk_latest WHERE chain_id = %s AND donor = %s ORDER BY pool_id",
        (chain_id, donor),
    )


def donor_labels(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> list[Row]:
    return _rows(
        conn,
        "SELECT source, is_sybil, pattern, run_id, created_at FROM qf.labels "
        "WHERE chain_id = %s AND address = %s ORDER BY created_at DESC",
        (chain_id, donor),
    )


def review_history(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> list[Row]:
    return _rows(
        conn,
        "SELECT id, verdict, comment, reviewer, decision_id, supersedes, created_at FROM qf.review_log "
        "WHERE chain_id = %s AND donor = %s ORDER BY id DESC",
        (chain_id, donor),
    )


def community_members(conn: psycopg.Connection[Any], chain_id: int, pool_id: int, community: int,
                      limit: int = 30) -> list[Row]:  # fmt: skip
    return _rows(
        conn,
        "SELECT donor, score, decision FROM qf.donor_risk_latest "
        "WHERE chain_id = %s AND pool_id = %s AND community = %s ORDER BY score DESC LIMIT %s",
        (chain_id, pool_id, community, limit),
    )


# -- the review queue ------------------------------------------------------------------------


def review_queue(conn: psycopg.Connection[Any], chains: Sequence[int], status: QueueStatus,
                 offset: int = 0) -> list[Row]:  # fmt: skip
    """Donors the sidecar sent to REVIEW or BLOCK, oldest first, one row per donor and chain.

    A verdict is about a donor on a chain, so a donor's several decisions there
    are one entry: when first flagged, how often, the latest decision and its reasons.
    """
    return _rows(
        conn,
        """
        WITH flagged AS (
            SELECT chain_id, donor, min(created_at) AS first_flagged, max(created_at) AS last_flagged,
                   count(*) AS decisions, max(risk_score) AS max_risk
            FROM qf.scorer_decisions
            WHERE chain_id = ANY(%(chains)s) AND decision IN ('REVIEW', 'BLOCK') AND donor IS NOT NULL
            GROUP BY chain_id, donor
        ), page AS (  -- the page's donors first, so the latest decision is looked up 50 times, not per donor
            SELECT f.*, v.verdict, v.reviewer, v.created_at AS reviewed_at, v.review_id, v.comment
            FROM flagged f
            LEFT JOIN qf.review_verdicts v ON v.chain_id = f.chain_id AND v.donor = f.donor
            WHERE (%(status)s = 'all' OR (%(status)s = 'pending') = (v.verdict IS NULL))
            ORDER BY f.first_flagged, f.donor, f.chain_id
            LIMIT %(limit)s OFFSET %(offset)s
        )
        SELECT p.*, d.decision_id, d.decision, d.risk_score, d.level, d.reasons, d.pool_id, d.model_version
        FROM page p
        JOIN LATERAL (SELECT * FROM qf.scorer_decisions s
                      WHERE s.chain_id = p.chain_id AND s.donor = p.donor AND s.decision IN ('REVIEW', 'BLOCK')
                      ORDER BY s.created_at DESC LIMIT 1) d ON true
        ORDER BY p.first_flagged, p.donor, p.chain_id
        """,
        {"chains": list(chains), "status": status, "limit": PAGE_SIZE, "offset": offset},
    )


def queue_counts(conn: psycopg.Connection[Any], chains: Sequence[int]) -> dict[str, int]:
    row = conn.execute(
        """
        SELECT count(*) FILTER (WHERE v.verdict IS NULL), count(*) FILTER (WHERE v.verdict IS NOT NULL)
        FROM (SELECT DISTINCT chain_id, donor FROM qf.scorer_decisions
              WHERE chain_id = ANY(%s) AND decision IN ('REVIEW', 'BLOCK') AND donor IS NOT NULL) f
        LEFT JOIN qf.review_verdicts v ON v.chain_id = f.chain_id AND v.donor = f.donor
        """,
        (list(chains),),
    ).fetchone()
    assert row is not None
    return {"pending": int(row[0]), "reviewed": int(row[1])}


def latest_flag(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> Row | None:
    """The donor's latest REVIEW or BLOCK decision, the one a verdict answers."""
    return _row(
        conn,
        "SELECT decision_id, decision, risk_score, created_at FROM qf.scorer_decisions "
        "WHERE chain_id = %s AND donor = %s AND decision IN ('REVIEW', 'BLOCK') ORDER BY created_at DESC LIMIT 1",
        (chain_id, donor),
    )


# -- experiments and logins ------------------------------------------------------------------


def experiment_names(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM qf.experiments ORDER BY created_at, name").fetchall()]


def record_login(conn: psycopg.Connection[Any], name: str | None, role: str | None, ok: bool, remote: str) -> None:
    conn.execute(
        "INSERT INTO qf.console_logins (reviewer, role, ok, remote) VALUES (%s, %s, %s, %s)", (name, role, ok, remote)
    )
