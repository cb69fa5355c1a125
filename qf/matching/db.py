"""The database edge of matching: the eligible contribution matrix in, results out.

Eligibility is the same as in ``qf.round_matching``: accepted recipients, donations
inside the pool's latest allocation window, in the pool's own token, in token units.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from qf_sentinel.qf.errors import AmbiguousChain, ConfigError, DataError
from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.matching.eligibility import Eligibility, Exclusions, eligible_contributions
from qf_sentinel.qf.matching.standard import FloatArray

IntArray = npt.NDArray[np.int64]
#: (chain id, pool id)
PoolRef = tuple[int, int]


@dataclass(frozen=True, slots=True)
class PoolDonations:
    """A pool's eligible donations, one entry per donation, before any eligibility knob.

    Eligible as in ``qf.round_matching``: to a currently accepted recipient, in
    the pool's latest allocation window, in the pool's own token. ``donors`` and
    ``projects`` are sorted; ``donor``/``project`` index them. The donations of a
    round across pools (:mod:`qf.matching.rounds`) have no single chain or pool:
    ``chain_id`` and ``pool_id`` are None and ``pools`` lists them.
    """

    chain_id: int | None
    pool_id: int | None
    pool_amount: float
    donors: list[bytes]
    projects: list[bytes]
    donor: IntArray
    project: IntArray
    #: token units (USD with ``usd``)
    amount: FloatArray
    #: per project, the addresses that count as the recipient itself (id, payout address, registrant)
    recipient_addresses: list[frozenset[bytes]]
    #: amounts are USD at donation time, across every token the pool took
    usd: bool = False
    #: donations left out because no USD price was known for them (only with ``usd``)
    unpriced: int = 0
    #: the round's name, for the donations of a round across pools
    round_name: str | None = None
    #: every (chain, pool) the donations come from
    pools: tuple[PoolRef, ...] = ()


@dataclass(frozen=True, slots=True)
class PoolRound:
    chain_id: int | None
    pool_id: int | None
    pool_amount: float
    donors: list[bytes]
    projects: list[bytes]
    #: donors x projects, token units (USD for a round or with ``usd``)
    contributions: FloatArray
    round_name: str | None = None
    pools: tuple[PoolRef, ...] = ()


def resolve_chain(conn: psycopg.Connection[Any], chain_id: int | None) -> int:
    """The chain a question is about: the one named, else the only one indexed.

    The one policy of every command and page: with several chains indexed and
    none named, :class:`qf.errors.AmbiguousChain` names them all (never a silent
    pick such as the lowest); with none indexed, a ConfigError says to index.
    """
    if chain_id is not None:
        return chain_id
    chains = [int(r[0]) for r in conn.execute("SELECT chain_id FROM qf.chains ORDER BY 1").fetchall()]
    if not chains:
        raise ConfigError("nothing is indexed yet: run `qf index` (or `make demo`) first")
    if len(chains) > 1:
        raise AmbiguousChain(chains)
    return chains[0]


def first_pool(conn: psycopg.Connection[Any], chain_id: int) -> int:
    """The lowest pool id indexed on the chain (the demo's round); ConfigError if there is none."""
    row = conn.execute("SELECT min(pool_id) FROM qf.pools WHERE chain_id = %s", (chain_id,)).fetchone()
    if row is None or row[0] is None:
        raise ConfigError(f"chain {chain_id} has no indexed pool: index a round first (`qf index`)")
    return int(row[0])


def load_donations(conn: psycopg.Connection[Any], chain_id: int, pool_id: int, *, usd: bool = False) -> PoolDonations:
    """Read a pool's eligible donations in one query over the event tables (no per-row lookups).

    With ``usd``, donations in every token count, valued in USD at donation time
    (``qf.token_price_usd``: the token's feed, else imported prices), as
    qf-calculator matches on ``amountUSD``; a donation without a price is left
    out and counted in ``unpriced``, never valued at 0.
    """
    pool = conn.execute(
        "SELECT funded, token_decimals, strategy, token, allocation_start, allocation_end FROM qf.pools "
        "WHERE chain_id = %s AND pool_id = %s",
        (chain_id, pool_id),
    ).fetchone()
    if pool is None:
        raise ConfigError(f"pool {pool_id} is not indexed on chain {chain_id}")
    kind = conn.execute(
        "SELECT kind, name FROM qf.pool_strategies WHERE chain_id = %s AND pool_id = %s", (chain_id, pool_id)
    ).fetchone()
    if kind is not None and kind[0] == "unread":
        raise DataError(f"pool {pool_id}: its strategy's kind was never read; `qf index` reads it when it starts")
    if kind is not None and kind[0] != "donation":
        what = f"a {kind[1]} ({kind[0]})" if kind[1] else f"a strategy of kind {kind[0]}"
        raise DataError(f"pool {pool_id} runs {what}: its allocations are not donations, there is nothing to match")
    if pool[1] is None:
        raise DataError(f"pool {pool_id}: the matching token's decimals are unknown")
    strategy = bytes(pool[2])
    recipients = conn.execute(
        """
        SELECT h.recipient_id, array_remove(ARRAY[g.recipient_address::bytea, g.sender::bytea], NULL)
        FROM qf.recipient_status_history h
        LEFT JOIN LATERAL (
            SELECT r.recipient_address, r.sender FROM qf.registered r
            WHERE r.chain_id = h.chain_id AND r.contract = h.contract AND r.recipient_id = h.recipient_id
            ORDER BY r.block_number, r.log_index LIMIT 1
        ) g ON true
        WHERE h.chain_id = %s AND h.contract = %s AND h.next_block_number IS NULL AND h.status = 2
        ORDER BY h.recipient_id
        """,
        (chain_id, strategy),
    ).fetchall()
    projects = [bytes(r[0]) for r in recipients]
    accepted = """
            FROM qf.allocated a
            JOIN qf.recipient_status_history h
              ON h.chain_id = a.chain_id AND h.contract = a.contract AND h.recipient_id = a.recipient_id
             AND h.next_block_number IS NULL AND h.status = 2"""
    with conn.cursor(binary=True) as cur:
        if usd:
            rows = cur.execute(
                f"""
                SELECT a.sender, a.recipient_id,
                       (a.amount / t.unit * qf.token_price_usd(a.chain_id, a.token, a.block_number, a.log_index,
                                                               a.block_time))::float8
                {accepted}
                LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
                WHERE a.chain_id = %s AND a.contract = %s AND a.block_time BETWEEN %s AND %s
                """,
                (chain_id, strategy, pool[4], pool[5]),
            ).fetchall()
        else:
            rows = cur.execute(
                f"""
                SELECT a.sender, a.recipient_id, a.amount::float8 / %s
                {accepted}
                WHERE a.chain_id = %s AND a.contract = %s AND a.token = %s AND a.block_time BETWEEN %s AND %s
                """,
                (float(10 ** int(pool[1])), chain_id, strategy, bytes(pool[3]), pool[4], pool[5]),
            ).fetchall()
    priced = [r for r in rows if r[2] is not None]
    unpriced = len(rows) - len(priced)
    senders, recipients_of, amounts = zip(*priced, strict=True) if priced else ((), (), ())
    # As 20-byte void records (numpy "S20" would drop trailing NULs, and an address may end in 00).
    donors, donor = np.unique(_as_void(senders), return_inverse=True)
    project = np.searchsorted(_as_void(projects), _as_void(recipients_of))
    return PoolDonations(
        chain_id=chain_id,
        pool_id=pool_id,
        pool_amount=float(pool[0] or 0),
        donors=[d.tobytes() for d in donors],
        projects=projects,
        donor=donor.astype(np.int64),
        project=project.astype(np.int64),
        amount=np.array(amounts, dtype=np.float64),
        recipient_addresses=[frozenset([p, *map(bytes, r[1])]) for p, r in zip(projects, recipients, strict=True)],
        usd=usd,
        unpriced=unpriced,
        pools=((chain_id, pool_id),),
    )


def _as_void(addresses: Sequence[bytes]) -> npt.NDArray[np.void]:
    """20-byte addresses as one numpy array of fixed-size raw records, sortable and exact."""
    return np.frombuffer(b"".join(addresses), dtype="V20") if addresses else np.zeros(0, dtype="V20")


def contribution_matrix(donations: PoolDonations) -> PoolRound:
    """Donors x projects totals of the donations as they are (no eligibility knob)."""
    matrix = np.zeros((len(donations.donors), len(donations.projects)))
    np.add.at(matrix, (donations.donor, donations.project), donations.amount)
    return PoolRound(
        donations.chain_id, donations.pool_id, donations.pool_amount, donations.donors, donations.projects, matrix,
        donations.round_name, donations.pools,
    )  # fmt: skip


def load_round(conn: psycopg.Connection[Any], chain_id: int, pool_id: int) -> PoolRound:
    return contribution_matrix(load_donations(conn, chain_id, pool_id))


def eligible_round(
    donations: PoolDonations, rules: Eligibility, scores: dict[bytes, float] | None = None
) -> tuple[PoolRound, Exclusions]:
    """The contribution matrix after qf-calculator's eligibility rules, and what they excluded."""
    addresses = [to_hex(d) for d in donations.donors]
    result = eligible_contributions(
        donations.donor, donations.project, donations.amount,
        n_donors=len(donations.donors), n_projects=len(donations.projects), rules=rules,
        donor_addresses=addresses,
        donor_scores=None if scores is None else np.array([scores.get(d, np.nan) for d in donations.donors]),
        project_self_addresses=[{to_hex(a) for a in group} for group in donations.recipient_addresses],
    )  # fmt: skip
    pool = PoolRound(
        donations.chain_id, donations.pool_id, donations.pool_amount, donations.donors, donations.projects,
        result.matrix, donations.round_name, donations.pools,
    )  # fmt: skip
    return pool, result.excluded


def weights_from_labels(conn: psycopg.Connection[Any], chains: Sequence[int], donors: list[bytes]) -> FloatArray:
    """Weight 0 for donors labelled sybil (any source) on any of ``chains``, 1 for everyone else."""
    sybils = {
        bytes(r[0])
        for r in conn.execute(
            "SELECT DISTINCT address FROM qf.labels WHERE chain_id = ANY(%s) AND is_sybil", (list(chains),)
        ).fetchall()
    }
    return np.array([0.0 if d in sybils else 1.0 for d in donors])


def labelled_donors(conn: psycopg.Connection[Any], chains: Sequence[int], donors: list[bytes]) -> int:
    """How many of ``donors`` carry a label (sybil or honest, any source) on any of ``chains``."""
    row = conn.execute(
        "SELECT count(DISTINCT address) FROM qf.labels WHERE chain_id = ANY(%s) AND address = ANY(%s)",
        (list(chains), donors),
    ).fetchone()
    return int(row[0]) if row else 0


def _pool_arrays(pools: Sequence[PoolRef]) -> tuple[list[int], list[int]]:
    """The pools as two parallel arrays, for ``unnest(%s::bigint[], %s::numeric[])``."""
    return [c for c, _ in pools], [p for _, p in pools]


def has_model_scores(conn: psycopg.Connection[Any], pools: Sequence[PoolRef]) -> bool:
    """Whether ``qf score`` has scored any of the pools (a latest run in ``qf.donor_risk_latest``)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM qf.donor_risk_latest r JOIN unnest(%s::bigint[], %s::numeric[]) AS x (c, p) "
        "ON x.c = r.chain_id AND x.p = r.pool_id)",
        _pool_arrays(pools),
    ).fetchone()
    return bool(row and row[0])


def weights_from_model(
    conn: psycopg.Connection[Any], chain_id: int, pool_id: int, donors: list[bytes]
) -> tuple[FloatArray, str, int]:
    """Weights from the pool's latest ``qf score`` run: ``(weights, model version, donors never scored)``.

    A donor the run did not score (it donated after the run) keeps weight 1.
    """
    return weights_from_models(conn, [(chain_id, pool_id)], donors)


def weights_from_models(
    conn: psycopg.Connection[Any], pools: Sequence[PoolRef], donors: list[bytes]
) -> tuple[FloatArray, str, int]:
    """Weights from the latest ``qf score`` run of each of the pools: ``(weights, model versions, never scored)``.

    A donor scored in several pools (a round across pools) takes the lowest weight any run gave it: a
    wallet flagged in one pool is flagged in the round. A donor no run scored keeps weight 1.
    """
    rows = conn.execute(
        "SELECT r.donor, min(r.weight), array_agg(DISTINCT r.model_version) FROM qf.donor_risk_latest r "
        "JOIN unnest(%s::bigint[], %s::numeric[]) AS x (c, p) ON x.c = r.chain_id AND x.p = r.pool_id "
        "GROUP BY r.donor",
        _pool_arrays(pools),
    ).fetchall()
    if not rows:
        if len(pools) == 1:
            pool_id = pools[0][1]
            raise ConfigError(f"pool {pool_id} has no model scores yet: run `qf score --pool {pool_id}` first")
        raise ConfigError("no pool of the round has model scores yet: run `qf score --pool N --chain-id C` first")
    weight = {bytes(r[0]): float(r[1]) for r in rows}
    versions = sorted({str(v) for r in rows for v in r[2]})
    missing = sum(1 for d in donors if d not in weight)
    return np.array([weight.get(d, 1.0) for d in donors]), ", ".join(versions), missing


def read_scores_csv(path: Path, *, unit_interval: bool = True) -> dict[bytes, float]:
    """``address,score`` rows; a header row is allowed.

    Risk scores lie in [0, 1] (``unit_interval``); Passport-style scores only
    need to be finite and non-negative.
    """
    if not path.exists():
        raise DataError(f"{path}: no such file")
    scores: dict[bytes, float] = {}
    with path.open(newline="") as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if not row or (line_number == 1 and not row[0].startswith("0x")):
                continue
            try:
                address = bytes.fromhex(row[0].strip().lower().removeprefix("0x"))
                score = float(row[1])
            except (ValueError, IndexError):
                raise DataError(f"{path}:{line_number}: expected `address,score`, got {row!r}") from None
            in_range = 0.0 <= score <= 1.0 if unit_interval else math.isfinite(score) and score >= 0.0
            if len(address) != 20 or not in_range:
                wanted = "a score in [0, 1]" if unit_interval else "a finite score >= 0"
                raise DataError(f"{path}:{line_number}: need a 20-byte address and {wanted}")
            scores[address] = score
    return scores


def project_names(conn: psycopg.Connection[Any], chain_id: int, recipients: Sequence[bytes]) -> list[str | None]:
    """The current profile name of each recipient id (a Registry anchor); None where it has none."""
    rows = conn.execute(
        "SELECT r, qf.project_name(%s, r) FROM unnest(%s::bytea[]) r", (chain_id, list(recipients))
    ).fetchall()
    names = {bytes(r): name for r, name in rows}
    return [names.get(bytes(r)) for r in recipients]


def store_run(
    conn: psycopg.Connection[Any],
    pool: PoolRound,
    *,
    method: str,
    params: dict[str, Any],
    matches: FloatArray,
    base: FloatArray | None,
    names: list[str | None] | None = None,
) -> int:
    """Write the run and its per-recipient results in one transaction; returns the run id."""
    contributors = (pool.contributions > 0).sum(axis=0)
    amounts = pool.contributions.sum(axis=0)
    if names is None:
        if pool.chain_id is None:
            raise DataError("a round's run needs its project names")
        names = project_names(conn, pool.chain_id, pool.projects)
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO qf.matching_runs (chain_id, pool_id, round, method, params, pool_amount, donors, projects) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING run_id",
            (
                pool.chain_id,
                pool.pool_id,
                pool.round_name,
                method,
                json.dumps(params),
                pool.pool_amount,
                len(pool.donors),
                len(pool.projects),
            ),
        ).fetchone()
        assert row is not None
        run_id = int(row[0])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO qf.matching_results "
                "(run_id, recipient_id, contributors, amount, match, share, base_match, project_name) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (run_id, p, int(contributors[j]), float(amounts[j]), float(matches[j]),
                     float(matches[j] / pool.pool_amount) if pool.pool_amount else 0.0,
                     None if base is None else float(base[j]), names[j])
                    for j, p in enumerate(pool.projects)
                ],
            )  # fmt: skip
    return run_id
