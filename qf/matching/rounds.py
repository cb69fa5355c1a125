"""Rounds across chains: a name for a set of (chain, pool) that is matched as one, in USD.

``qf rounds add NAME --pool CHAIN:POOL ...`` stores a round (``qf.rounds``,
``qf.round_pools``); :func:`round_donations` reads the eligible donations of all
its pools as one round for :func:`qf.matching.service.match_round`. The
choices, following qf-calculator's ``amountUSD`` matching, where a vote is
(voter, project, amount in USD):

* every pool's eligible donations (accepted recipient, inside that pool's
  window) in every token, valued in USD at donation time
  (``qf.token_price_usd``); a donation without a price is left out and counted;
* a **donor** is an address: the same wallet on two chains is one donor (the
  calculator's ``voter``, lower-cased, has no chain);
* a **project** is a recipient id: the Registry anchor, the same on every
  chain where its owner created the same profile. Names are not used to join:
  a name is chain data anyone can copy (the calculator pivots on
  ``project_name``, which within one round is unique);
* the **matching pool** is the sum of the pools' funding, each valued in USD at
  its pool's allocation end, unless the caller states it in USD.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.matching.db import PoolDonations, PoolRef, load_donations

#: What qf.rounds.name accepts (the table's CHECK says the same).
ROUND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_POOL = re.compile(r"(\d{1,19}):(\d{1,78})", re.ASCII)


def check_name(name: str) -> str:
    if not ROUND_NAME.fullmatch(name):
        raise ConfigError(
            f"a round name is 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit; "
            f"got {name[:80]!r}"
        )
    return name


def parse_pool(text: str) -> PoolRef:
    """``CHAIN:POOL`` (``10:5``) as ``(10, 5)``."""
    found = _POOL.fullmatch(text.strip())
    if found is None:
        raise ConfigError(f"a pool is CHAIN:POOL, e.g. 10:5; got {text[:80]!r}")
    return int(found[1]), int(found[2])


def add_round(conn: psycopg.Connection[Any], name: str, pools: Sequence[PoolRef]) -> list[PoolRef]:
    """Create the round if new and add the pools (each must be indexed); every pool of the round after."""
    check_name(name)
    if not pools:
        raise ConfigError("a round needs at least one pool (--pool CHAIN:POOL)")
    for chain_id, pool_id in pools:
        row = conn.execute(
            "SELECT 1 FROM qf.pool_created WHERE chain_id = %s AND pool_id = %s", (chain_id, pool_id)
        ).fetchone()
        if row is None:
            raise ConfigError(f"pool {pool_id} is not indexed on chain {chain_id}")
    with conn.transaction():
        conn.execute("INSERT INTO qf.rounds (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO qf.round_pools (round, chain_id, pool_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(name, c, p) for c, p in pools],
            )
    return round_pools(conn, name)


def round_pools(conn: psycopg.Connection[Any], name: str) -> list[PoolRef]:
    """The round's pools, by chain and pool id; ConfigError naming the known rounds if there is no such round."""
    rows = conn.execute(
        "SELECT chain_id, pool_id FROM qf.round_pools WHERE round = %s ORDER BY chain_id, pool_id", (name,)
    ).fetchall()
    if not rows:
        known = [r[0] for r in conn.execute("SELECT name FROM qf.rounds ORDER BY name LIMIT 20").fetchall()]
        listed = ", ".join(known) if known else "none yet"
        raise ConfigError(f"no round named {name[:80]!r} (known: {listed}); `qf rounds add NAME --pool CHAIN:POOL`")
    return [(int(c), int(p)) for c, p in rows]


def list_rounds(conn: psycopg.Connection[Any]) -> list[tuple[str, list[PoolRef]]]:
    rows = conn.execute(
        "SELECT r.name, array_agg(p.chain_id ORDER BY p.chain_id, p.pool_id), "
        "array_agg(p.pool_id::numeric ORDER BY p.chain_id, p.pool_id) "
        "FROM qf.rounds r JOIN qf.round_pools p ON p.round = r.name GROUP BY r.name ORDER BY r.name"
    ).fetchall()
    return [(str(n), [(int(c), int(p)) for c, p in zip(cs, ps, strict=True)]) for n, cs, ps in rows]


def pool_amount_usd(conn: psycopg.Connection[Any], chain_id: int, pool_id: int) -> float:
    """The pool's funding in USD at its allocation end: the token's feed answer at or before the pool's last
    donation by then, else the latest imported price at or before the end."""
    row = conn.execute(
        """
        SELECT p.funded, p.allocation_end,
               p.funded * qf.token_price_usd(p.chain_id, p.token, b.block_number, 2147483647, p.allocation_end)
        FROM qf.pools p
        LEFT JOIN LATERAL (
            SELECT max(a.block_number) AS block_number FROM qf.allocated a
            WHERE a.chain_id = p.chain_id AND a.contract = p.strategy AND a.block_time <= p.allocation_end
        ) b ON true
        WHERE p.chain_id = %s AND p.pool_id = %s
        """,
        (chain_id, pool_id),
    ).fetchone()
    if row is None:
        raise ConfigError(f"pool {pool_id} is not indexed on chain {chain_id}")
    funded, end, usd = row
    if funded is None or not funded:
        return 0.0
    if usd is None:
        when = "its allocation end" if end is not None else "any time (it has no allocation window)"
        raise DataError(
            f"pool {pool_id} on chain {chain_id}: no USD price of its matching token at {when}; import one "
            "(`qf prices import`) or state the matching pool in USD (--matching-usd)"
        )
    return float(usd)


def round_donations(
    conn: psycopg.Connection[Any], name: str, *, matching_usd: float | None = None
) -> PoolDonations:
    """The eligible donations of every pool of the round, in USD, as one round (see the module docstring)."""
    pools = round_pools(conn, name)
    parts = [load_donations(conn, c, p, usd=True) for c, p in pools]
    if matching_usd is not None and not (matching_usd >= 0 and np.isfinite(matching_usd)):
        raise ConfigError(f"the matching pool in USD must be a finite amount >= 0, got {matching_usd}")
    amount = matching_usd if matching_usd is not None else sum(pool_amount_usd(conn, c, p) for c, p in pools)
    donor_of = [part.donors[i] for part in parts for i in part.donor.tolist()]
    project_of = [part.projects[j] for part in parts for j in part.project.tolist()]
    donors = sorted(set(donor_of))
    projects = sorted({p for part in parts for p in part.projects})
    donor_index = {d: i for i, d in enumerate(donors)}
    project_index = {p: j for j, p in enumerate(projects)}
    selves: dict[bytes, set[bytes]] = {p: set() for p in projects}
    for part in parts:
        for project, addresses in zip(part.projects, part.recipient_addresses, strict=True):
            selves[project] |= addresses
    return PoolDonations(
        chain_id=None,
        pool_id=None,
        pool_amount=float(amount),
        donors=donors,
        projects=projects,
        donor=np.array([donor_index[d] for d in donor_of], dtype=np.int64),
        project=np.array([project_index[p] for p in project_of], dtype=np.int64),
        amount=np.concatenate([part.amount for part in parts]) if parts else np.zeros(0),
        recipient_addresses=[frozenset(selves[p]) for p in projects],
        usd=True,
        unpriced=sum(part.unpriced for part in parts),
        round_name=name,
        pools=tuple(pools),
    )


def round_project_names(
    conn: psycopg.Connection[Any], pools: Sequence[PoolRef], recipients: Sequence[bytes]
) -> list[str | None]:
    """Each recipient's current profile name on the first chain of the round (by chain id) that has one."""
    rows = conn.execute(
        "SELECT DISTINCT ON (r) r, qf.project_name(c, r) FROM unnest(%s::bigint[]) c, unnest(%s::bytea[]) r "
        "WHERE qf.project_name(c, r) IS NOT NULL ORDER BY r, c",
        (sorted({c for c, _ in pools}), list(recipients)),
    ).fetchall()
    names = {bytes(r): str(n) for r, n in rows}
    return [names.get(bytes(r)) for r in recipients]
