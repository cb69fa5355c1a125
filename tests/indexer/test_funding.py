"""Funding discovery on a real anvil: each donor's first funder found by each method as planned, reorg-safe,
resumable within a call budget, and a node without a trace API costing nothing but native funding."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from psycopg import sql

from qf_sentinel.indexer.funding.app import build_worker
from qf_sentinel.indexer.funding.worker import FundingWorker, _task
from qf_sentinel.indexer.store import Store
from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.migrate import apply_migrations
from qf_sentinel.qf.funding.db import load_graph
from qf_sentinel.qf.funding.graph import NATIVE, ZERO_ADDRESS
from qf_sentinel.qf.funding.imports import parse_funding, store_imported
from qf_sentinel.qf.funding.sources import store_sources
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.labels import round_sources
from qf_sentinel.qf.sim.plan import RoundPlan, Token
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from qf_sentinel.qf.sim.wallets import token_mints
from tests.fixtures.chain import Chain
from tests.fixtures.rpc_proxy import FaultPolicy, FaultProxy
from tests.indexer.harness import backfill, make_indexer, settings_for, snapshot, sync
from tests.indexer.harness import close as close_indexer
from tests.indexer.live import LivePool

ROUND = {
    "honest_donors": 12, "projects_per_pool": 6, "pools": 2, "whales": 1, "fan_out_clusters": 3, "fan_out_size": 4,
    "ring_size": 3, "ring_helpers": 1, "self_donation_projects": 1, "self_donation_wallets": 3,
}  # fmt: skip
NO_TRACES = (
    "trace_filter", "trace_block", "ots_getApiLevel", "ots_searchTransactionsAfter", "ots_getInternalOperations",
)  # fmt: skip


@dataclass(frozen=True)
class FundedRound:
    plan: RoundPlan
    token: bytes
    faucet: bytes


@pytest.fixture(scope="module")
def funded_round(anvil_node: Chain) -> Iterator[FundedRound]:
    """A simulated round with every funding style, executed on the session's anvil (rolled back afterwards)."""
    snapshot_id = anvil_node.rpc.call("evm_snapshot")
    try:
        plan = plan_simulated_round(17, **ROUND)
        execute_plan(anvil_node.rpc, anvil_node.deployment, plan, anvil_node.funder_key)
        yield FundedRound(plan, bytes.fromhex(anvil_node.deployment.token[2:]),
                          bytes.fromhex(Account.from_key(anvil_node.funder_key).address[2:].lower()))  # fmt: skip
    finally:
        anvil_node.rpc.call("evm_setAutomine", [True])
        anvil_node.rpc.call("evm_revert", [snapshot_id])


@pytest.fixture
def fresh_db(pg_server_url: str) -> Iterator[str]:
    name = f"test_funding_{uuid.uuid4().hex}"
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(pg_server_url, name)
    with connect(url) as conn:
        apply_migrations(conn)
    yield url
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class SteppedClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def worker(chain: Chain, db_url: str, home: Path, *, url: str | None = None, **overrides: Any) -> FundingWorker:
    built = build_worker(settings_for(url or chain.url, chain, db_url, home, **overrides), db_url)
    built.clock = SteppedClock()
    return built


def expected(funded: FundedRound) -> dict[tuple[bytes, bytes], tuple[bytes, int]]:
    """(donor, asset) -> (funder, amount) as planned: the planned funding, and for tokens either the tokens sent
    along with it or the executor's mint (from the zero address)."""
    plan = funded.plan
    address = [bytes.fromhex(w.address[2:]) for w in plan.wallets]
    by_target = {f.target: f for f in plan.fundings}
    mints = token_mints(plan)
    out = {}
    for donor in {d.donor for d in plan.donations}:
        f = by_target[donor]
        source = funded.faucet if f.source is None else address[f.source]
        out[(address[donor], NATIVE)] = (source, f.amount)
        if any(d.donor == donor and d.token is Token.ERC20 for d in plan.donations):
            out[(address[donor], funded.token)] = (source, f.token_amount) if f.token_amount else (
                ZERO_ADDRESS, mints[donor])  # fmt: skip
    return out


def found(db_url: str, *, depth: int = 1) -> dict[tuple[bytes, bytes], tuple[bytes, int, str]]:
    with connect(db_url) as conn:
        rows = conn.execute("SELECT wallet, asset, funder, amount, method FROM qf.wallet_funding WHERE depth = %s",
                            (depth,)).fetchall()  # fmt: skip
    return {(bytes(w), bytes(a)): (bytes(f), int(amount), str(m)) for w, a, f, amount, m in rows}


def index_round(funded: FundedRound, chain: Chain, db_url: str, home: Path, url: str | None = None) -> None:
    backfill(chain, db_url, home, **({"rpc_urls": url} if url else {}))
    with connect(db_url) as conn:
        store_sources(conn, round_sources(funded.plan, 31337, "0x" + funded.faucet.hex()))


@pytest.mark.parametrize(("methods", "max_calls"), [("trace_filter", 64), ("ots", 64), ("trace_block", 4000)])
def test_every_donors_first_funding_is_found_as_planned(
    funded_round: FundedRound, anvil_node: Chain, fresh_db: str, tmp_path: Path, methods: str, max_calls: int
) -> None:
    """Each method alone finds, for every donor, the planned first funder and amount of ETH and of its token."""
    index_round(funded_round, anvil_node, fresh_db, tmp_path)
    w = worker(anvil_node, fresh_db, tmp_path, funding_methods=(methods,), funding_max_calls=max_calls)
    try:
        w.drain()
    finally:
        w.close()
    got = found(fresh_db)
    want = expected(funded_round)
    assert {k: v[:2] for k, v in got.items() if k in want} == want
    native_methods = {m for (_, asset), (_, _, m) in got.items() if asset == NATIVE}
    assert native_methods == {methods}
    assert {m for (_, asset), (_, _, m) in got.items() if asset != NATIVE} == {"transfer_logs"}
    with connect(fresh_db) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM qf.funding_wallets GROUP BY 1").fetchall())
    assert statuses == {"done": statuses["done"]}


def test_the_view_and_the_graph_show_fan_out_peel_chains_and_exchanges(
    funded_round: FundedRound, anvil_node: Chain, fresh_db: str, tmp_path: Path
) -> None:
    """A direct fan-out's funder has funded the cluster's other donors; a peel chain's last hop has a trail of three;
    a via-exchange sybil's funder is a labelled exchange, where the trail stops."""
    index_round(funded_round, anvil_node, fresh_db, tmp_path)
    w = worker(anvil_node, fresh_db, tmp_path)
    try:
        w.drain()
    finally:
        w.close()
    styles = {label.address: label.funding for label in funded_round.plan.labels}
    with connect(fresh_db) as conn:
        rows = conn.execute("SELECT donor, funder_label, funder_kind, funder_other_donors, trail_depth, "
                            "seconds_before_first_donation FROM qf.donor_funding").fetchall()  # fmt: skip
        graph = load_graph(conn, 31337)
    view = {r[0]: r[1:] for r in rows}
    direct = [a for a, s in styles.items() if s == "direct_fan_out"]
    assert {view[a][2] for a in direct} == {len(direct) - 1}
    assert all(2 * 60 <= view[a][4] <= 30 * 60 + 60 for a in direct)
    via = [a for a, s in styles.items() if s == "via_exchange"]
    assert {view[a][1] for a in via} == {"exchange"}
    assert all(view[a][3] == 1 for a in via)
    assert max(view[a][3] for a, s in styles.items() if s == "peel_chain") == 3
    honest = [a for a, s in styles.items() if s == "exchange"]
    assert all(view[a][1] == "exchange" for a in honest)
    last = max(float(graph.first_funding(bytes.fromhex(a[2:]), as_of=1e12).time) for a in via)  # type: ignore[union-attr]
    facts = graph.facts(bytes.fromhex(via[0][2:]), as_of=last)
    assert facts.funder_source is not None
    assert facts.trail_depth == 1


def test_a_node_without_a_trace_api_leaves_native_funding_to_an_import(
    funded_round: FundedRound, anvil_node: Chain, fresh_db: str, second_db: str, tmp_path: Path,
    fault_proxy: Any,
) -> None:  # fmt: skip
    """Through a node that answers "method not found" to trace_* and ots_*, events index exactly as directly,
    tokens' funding is still found from logs, native funding is marked unavailable, and an import fills it."""
    proxy: FaultProxy = fault_proxy(anvil_node.url, FaultPolicy(unknown_methods=NO_TRACES))
    index_round(funded_round, anvil_node, fresh_db, tmp_path, url=proxy.url)
    backfill(anvil_node, second_db, tmp_path / "direct")
    assert snapshot(fresh_db) == snapshot(second_db)
    w = worker(anvil_node, fresh_db, tmp_path, url=proxy.url)
    try:
        w.drain()
        assert w.capabilities is not None
        assert w.capabilities.native == ()
        gauge = w.metrics.registry.get_sample_value("qf_indexer_funding_method_available",
                                                    {"chain_id": str(w.store.chain_id), "method": "trace_filter"})
        assert gauge == 0
    finally:
        w.close()
    got, want = found(fresh_db), expected(funded_round)
    assert not [k for k in got if k[1] == NATIVE]
    assert {k: v[:2] for k, v in got.items()} == {k: v for k, v in want.items() if k[1] != NATIVE}
    with connect(fresh_db) as conn:
        statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM qf.funding_wallets").fetchall()}
        assert statuses == {"unavailable"}
        donor, (funder, amount) = next((k[0], v) for k, v in want.items() if k[1] == NATIVE)
        csv = tmp_path / "first_funders.csv"
        csv.write_text(f"address,funder,amount,block,time,chain\n0x{donor.hex()},0x{funder.hex()},{amount},5,1000,31337\n")
        assert store_imported(conn, parse_funding(csv)) == 1
    assert found(fresh_db)[(donor, NATIVE)] == (funder, amount, "import")


def test_a_small_call_budget_stops_searches_that_resume_where_they_stopped(
    funded_round: FundedRound, anvil_node: Chain, fresh_db: str, second_db: str, tmp_path: Path
) -> None:
    """With 20 calls per wallet, trace_block searches (a call per block) stop early, keep how far they got and
    what they found, and, retried later, end with the rows an unbounded search finds."""
    index_round(funded_round, anvil_node, fresh_db, tmp_path)
    index_round(funded_round, anvil_node, second_db, tmp_path / "ref")
    # trace_block searches go wallet by wallet, a call per block (trace_filter and logs search a batch at once).
    reference = worker(anvil_node, second_db, tmp_path, funding_max_calls=4000, funding_methods=("trace_block",))
    small = worker(anvil_node, fresh_db, tmp_path, funding_max_calls=20, funding_methods=("trace_block",))
    try:
        reference.drain()
        small.drain()
        with connect(fresh_db) as conn:
            stopped = conn.execute(
                "SELECT count(*) FROM qf.funding_wallets WHERE status = 'pending' "
                "AND last_error LIKE '%%calls are spent%%' AND searched_to_block > 0"
            ).fetchone()
        assert stopped is not None
        assert stopped[0] > 0, "stopped searches keep how far they got"
        assert len(found(fresh_db)) < len(found(second_db))
        for _ in range(200):
            small.clock.now += timedelta(hours=2)  # type: ignore[attr-defined]
            if not small.drain():
                break
    finally:
        reference.close()
        small.close()
    assert found(fresh_db) == found(second_db)
    assert found(fresh_db, depth=2) == found(second_db, depth=2)


def test_a_reorg_replaces_a_funding_and_a_search_claimed_before_it_is_discarded(
    chain: Chain, fresh_db: str, tmp_path: Path
) -> None:
    """A wallet funded, then donating; the funding's block is reorganised away and replaced by another funder's:
    the indexer's rollback deletes the row, a search claimed before the reorg is not stored, and the next search
    finds the new funder in the new block."""
    pool = LivePool(chain)
    rpc = chain.rpc
    wallet = Account.create().address.lower()
    first_funder, second_funder = pool.donors[0], pool.donors[1]
    rpc.call("eth_sendTransaction", [{"from": first_funder, "to": wallet, "value": hex(10**18)}])
    funded_block = rpc.block_number()
    rpc.call("anvil_impersonateAccount", [wallet])  # anvil lists it in eth_accounts until told to stop
    pool.donate(wallet, pool.recipients[0], 10**15)
    indexer = make_indexer(chain, fresh_db, tmp_path)
    try:
        sync(indexer)
        w = worker(chain, fresh_db, tmp_path)
        try:
            w.drain()
            key = (bytes.fromhex(wallet[2:]), NATIVE)
            assert found(fresh_db)[key][:2] == (bytes.fromhex(first_funder[2:]), 10**18)
            with connect(fresh_db) as conn:  # ask again, as the sidecar would: claimed now, recorded after the reorg
                conn.execute("UPDATE qf.funding_wallets SET status = 'pending', searched_to_block = NULL")
                conn.execute("DELETE FROM qf.wallet_funding")
                conn.commit()
            rollbacks = w.store.rollbacks()
            checkpoint = w.store.checkpoint()
            assert checkpoint is not None
            claimed = w.store.claim(w.clock(), limit=10, lease_until=w.clock() + timedelta(minutes=5))
            stale = [w._search(replace_task(c, checkpoint)) for c in claimed]
            depth = rpc.block_number() - funded_block + 1
            replacement = [{"from": second_funder, "to": wallet, "value": hex(2 * 10**18)}, 0]
            rpc.call("anvil_reorg", [depth, [replacement, [pool.donation(wallet, pool.recipients[0], 10**15), 1]]])
            sync(indexer)
            recorded = w.store.record(stale, rollbacks=rollbacks, now=w.clock(), retry_at=[w.clock()] * len(stale),
                                      max_depth=3)  # fmt: skip
            assert recorded.discarded == len(stale)
            assert key not in found(fresh_db)
            w.drain()
        finally:
            w.close()
    finally:
        close_indexer(indexer)
        rpc.call("anvil_stopImpersonatingAccount", [wallet])
    funder, amount, _ = found(fresh_db)[key]
    assert (funder, amount) == (bytes.fromhex(second_funder[2:]), 2 * 10**18)
    with connect(fresh_db) as conn:
        row = conn.execute(
            "SELECT block_number, block_hash FROM qf.wallet_funding WHERE wallet = %s", (key[0],)
        ).fetchone()
    assert row is not None
    assert bytes(row[1]) == bytes.fromhex(rpc.call("eth_getBlockByNumber", [hex(row[0]), False])["hash"][2:])


def replace_task(claimed: Any, checkpoint: int) -> Any:
    return _task(claimed, checkpoint)


def test_rollback_keeps_imported_rows_and_sends_searched_wallets_back(fresh_db: str) -> None:
    """Store.rollback_to deletes found rows above the ancestor (not imported ones) and re-queues what was searched
    past it, from the ancestor."""
    with connect(fresh_db) as conn:
        conn.execute("INSERT INTO qf.chains (chain_id, core, start_block, checkpoint_block) VALUES (7, %s, 0, 50)",
                     (b"\x01" * 20,))  # fmt: skip
        for wallet, block, method in ((b"\x0a" * 20, 40, "trace_filter"), (b"\x0b" * 20, 10, "ots"),
                                      (b"\x0c" * 20, 45, "import")):  # fmt: skip
            conn.execute(
                "INSERT INTO qf.wallet_funding (chain_id, wallet, asset, funder, amount, block_number, block_hash, "
                "tx_hash, block_time, depth, method) VALUES (7, %s, %s, %s, 1, %s, %s, %s, now(), 1, %s)",
                (wallet, NATIVE, b"\x0f" * 20, block, None if method == "import" else b"\x01" * 32,
                 None if method == "import" else b"\x02" * 32, method),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO qf.funding_wallets (chain_id, wallet, depth, reason, until_block, searched_to_block, "
                "status) VALUES (7, %s, 1, 'donor', 50, 50, 'done')",
                (wallet,),
            )
        conn.commit()
    store = Store(fresh_db, 7, [])
    try:
        deleted = store.rollback_to(20, b"\x03" * 32)
    finally:
        store.close()
    assert deleted["wallet_funding"] == 1
    with connect(fresh_db) as conn:
        left = sorted(bytes(r[0])[:1] for r in conn.execute("SELECT wallet FROM qf.wallet_funding").fetchall())
        queue = conn.execute("SELECT DISTINCT status, searched_to_block FROM qf.funding_wallets").fetchall()
        progress = conn.execute("SELECT donors_through_block, rollbacks FROM qf.funding_progress").fetchone()
    assert left == [b"\x0b", b"\x0c"]
    assert queue == [("pending", 20)]
    assert progress == (-1, 1)


def test_a_lookup_searches_a_wallet_and_its_funders_hop_by_hop_now(
    funded_round: FundedRound, anvil_node: Chain, fresh_db: str, tmp_path: Path
) -> None:
    """`qf funding lookup` (asked about one wallet, as the sidecar may ask): the last hop of a peel chain is searched
    with the funders behind it, and nothing else is."""
    index_round(funded_round, anvil_node, fresh_db, tmp_path)
    styles = {label.address: label.funding for label in funded_round.plan.labels}
    peel = [bytes.fromhex(a[2:]) for a, s in styles.items() if s == "peel_chain"]
    w = worker(anvil_node, fresh_db, tmp_path)
    try:
        searched = sum(w.lookup([wallet]) for wallet in peel)
        with connect(fresh_db) as conn:
            graph = load_graph(conn, 31337)
            queued = conn.execute("SELECT count(*) FROM qf.funding_wallets WHERE reason = 'donor'").fetchone()
    finally:
        w.close()
    assert queued == (0,), "a lookup queues no donors"
    depths = [graph.facts(wallet, as_of=1e12).trail_depth for wallet in peel]
    assert max(depths) == 3
    assert searched >= len(peel)
