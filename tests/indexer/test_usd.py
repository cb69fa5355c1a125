"""Multi-token rounds in USD: prices from the devnet's Chainlink-style feeds (AnswerUpdated, moved during the
round) or an imported CSV; amount_usd on donations, matching across tokens in USD, unpriced donations counted."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, topic0
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.matching import Eligibility, compute_matching
from qf_sentinel.qf.matching.db import eligible_round, load_donations
from qf_sentinel.qf.matching.prices import import_prices, parse_prices
from qf_sentinel.qf.sim.dvmdt import DvmdtRound
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain
from tests.indexer.harness import backfill
from tests.indexer.test_indexing import SMALL

ANSWER = topic0("AnswerUpdated(int256,uint256,uint256)")
ALLOCATED = topic0("Allocated(address,uint256,address,address,address)")


def logs(chain: Chain, address: str | list[str], topic: str) -> list[dict[str, Any]]:
    query = {"fromBlock": "0x0", "toBlock": "latest", "address": address, "topics": [topic]}
    return list(chain.rpc.call("eth_getLogs", [query]))


def position(log: dict[str, Any]) -> tuple[int, int]:
    return int(log["blockNumber"], 16), int(log["logIndex"], 16)


def price_at(answers: list[tuple[tuple[int, int], Decimal]], at: tuple[int, int]) -> Decimal | None:
    """The latest answer at or before ``at`` (answers in chain order)."""
    before = [price for where, price in answers if where <= at]
    return before[-1] if before else None


@pytest.fixture
def indexed(chain: Chain, db_url: str, tmp_path: Path) -> dict[str, Any]:
    plan = plan_simulated_round(43, **SMALL)
    result = execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key, execution=DvmdtRound)
    backfill(chain, db_url, tmp_path, log_range_blocks=40)
    feeds = chain.deployment.price_feeds
    answers = {
        token: [(position(lg), Decimal(int(lg["topics"][1], 16)) / 10**8) for lg in logs(chain, feed, ANSWER)]
        for token, feed in feeds.items()
    }
    return {"plan": plan, "result": result, "answers": answers}


def chain_usd(chain: Chain, indexed: dict[str, Any]) -> list[tuple[str, str, Decimal]]:
    """(donor, recipient, USD) of every donation, from the chain's logs alone."""
    out = []
    strategies = [p.strategy for p in indexed["result"].pools]
    for lg in logs(chain, strategies, ALLOCATED):
        data = bytes.fromhex(lg["data"][2:])
        amount = int.from_bytes(data[:32], "big")
        token = "0x" + data[44:64].hex()
        sender = "0x" + data[76:96].hex()
        price = price_at(indexed["answers"][token], position(lg))
        assert price is not None
        out.append((sender, "0x" + lg["topics"][1][-40:], Decimal(amount) / 10**18 * price))
    return out


def test_eth_moves_during_the_round_and_each_donation_is_valued_at_its_own_moment(
    chain: Chain, db_url: str, indexed: dict[str, Any]
) -> None:
    eth = [price for _, price in indexed["answers"][NATIVE_TOKEN]]
    assert len(set(eth)) > 2, "the simulator moves ETH's price"
    expected = sorted((d, r, round(usd, 6)) for d, r, usd in chain_usd(chain, indexed))
    with connect(db_url) as conn:
        stored = conn.execute("SELECT donor, recipient_id, amount_usd, token_price_usd FROM qf.donations").fetchall()
        unpriced = conn.execute("SELECT count(*) FROM qf.unpriced_donations").fetchone()
    assert sorted((d, r, round(usd, 6)) for d, r, usd, _ in stored) == expected
    assert {p for *_, p in stored} > {Decimal(1)}, "ETH donations carry ETH's price, tUSD ones 1"
    assert unpriced == (0,)


def test_matching_across_tokens_is_computed_in_usd(chain: Chain, db_url: str, indexed: dict[str, Any]) -> None:
    """The pool's donations in both tokens, valued in USD, give the same matching as the chain's logs do."""
    with connect(db_url) as conn:
        single = load_donations(conn, 31337, 1)
        usd = load_donations(conn, 31337, 1, usd=True)
    assert usd.usd
    assert usd.unpriced == 0
    assert len(usd.amount) > len(single.amount), "--usd counts the other token too"
    round_, _ = eligible_round(usd, Eligibility(), None)
    ours = compute_matching(round_.contributions, round_.pool_amount)
    # Rebuild the same contributions matrix from the chain: accepted projects of pool 1, in its window.
    donors = ["0x" + d.hex() for d in round_.donors]
    projects = ["0x" + p.hex() for p in round_.projects]
    matrix = np.zeros((len(donors), len(projects)))
    strategy = indexed["result"].pools[0].strategy
    for lg in logs(chain, strategy, ALLOCATED):
        data = bytes.fromhex(lg["data"][2:])
        token, sender = "0x" + data[44:64].hex(), "0x" + data[76:96].hex()
        recipient = "0x" + lg["topics"][1][-40:]
        if recipient in projects:
            price = price_at(indexed["answers"][token], position(lg))
            assert price is not None
            matrix[donors.index(sender), projects.index(recipient)] += float(
                Decimal(int.from_bytes(data[:32], "big")) / 10**18 * price
            )
    np.testing.assert_allclose(round_.contributions, matrix, rtol=1e-9)
    np.testing.assert_allclose(ours, compute_matching(matrix, round_.pool_amount), rtol=1e-9)


def test_a_token_without_a_price_is_counted_not_valued_at_zero(
    chain: Chain, db_url: str, indexed: dict[str, Any], tmp_path: Path
) -> None:
    token = chain.deployment.token
    with connect(db_url) as conn:
        conn.execute("DELETE FROM qf.price_feeds WHERE token = %s", [bytes.fromhex(token[2:])])
        conn.commit()
        unpriced = conn.execute("SELECT sum(donations) FROM qf.unpriced_donations").fetchone()
        zero = conn.execute("SELECT count(*) FROM qf.donations WHERE amount_usd = 0").fetchone()
        erc20 = conn.execute("SELECT count(*) FROM qf.donations WHERE token = %s", [token]).fetchone()
        pool = load_donations(conn, 31337, 1, usd=True)
        in_pool = conn.execute("SELECT count(*) FROM qf.donations WHERE pool_id = 1 AND token = %s AND "
                               "in_window AND recipient_status = 2", [token]).fetchone()  # fmt: skip
        assert erc20 is not None
        assert erc20[0] > 0
        assert unpriced == (erc20[0],)
        assert zero == (0,)
        assert in_pool is not None
        assert pool.unpriced >= 1
        # An imported CSV prices it again, from the time given.
        csv = tmp_path / "prices.csv"
        csv.write_text(f"token,at,price_usd\n{token},2000-01-01T00:00:00Z,0.98\n")
        assert import_prices(conn, 31337, csv) == 1
        again = conn.execute("SELECT DISTINCT token_price_usd FROM qf.donations WHERE token = %s", [token]).fetchall()
        assert again == [(Decimal("0.98"),)]
        assert conn.execute("SELECT count(*) FROM qf.unpriced_donations").fetchone() == (0,)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("token,price_usd\nnative,1\n", "header"),
        ("token,at,price_usd\n0x12,1700000000,1\n", ":2:"),
        ("token,at,price_usd\nnative,2024-01-01T00:00:00,1\n", "zone"),
        ("token,at,price_usd\nnative,1700000000,-1\n", ">= 0"),
        ("token,at,price_usd\nnative,1700000000,NaN\n", "finite"),
    ],
)
def test_bad_price_files_are_refused_by_line(body: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_prices(body.splitlines(), "prices.csv")
