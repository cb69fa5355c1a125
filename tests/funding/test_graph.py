"""The funding graph's point-in-time answers: first funder, trails, fan-out, clusters and facts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.funding.graph import NATIVE, FundingGraph, FundingRow, KnownSource, SourceKind

TOKEN = b"\x70" * 20
EXCHANGE = b"\xe0" * 20


def w(n: int) -> bytes:
    return n.to_bytes(20, "big")


def row(wallet: int, funder: int | bytes, time: float, *, asset: bytes = NATIVE, amount: int = 10**16,
        block: int | None = None) -> FundingRow:  # fmt: skip
    return FundingRow(w(wallet), asset, funder if isinstance(funder, bytes) else w(funder), amount,
                      int(time) if block is None else block, float(time))  # fmt: skip


EXCHANGE_SOURCE = KnownSource(EXCHANGE, "Exchange 1", SourceKind.EXCHANGE, "test")


def test_first_funding_is_unknown_before_it_happens_and_the_earliest_row_wins() -> None:
    """A funding counts from its own time on; of two rows for one wallet the earlier is the first funding."""
    graph = FundingGraph([row(1, 2, 100.0), row(1, 3, 50.0)])
    assert graph.first_funding(w(1), as_of=49.0) is None
    assert graph.first_funding(w(1), as_of=50.0) == row(1, 3, 50.0)
    assert graph.first_funding(w(1), as_of=1e9, asset=TOKEN) is None
    assert len(graph) == 1


def test_trail_follows_a_peel_chain_to_its_depth_and_stops_at_a_known_source() -> None:
    """A -> B -> C -> D: D's trail is C, B, A (each funding before the next); an exchange ends a trail."""
    rows = [row(4, 3, 300.0), row(3, 2, 200.0), row(2, 1, 100.0), row(1, EXCHANGE, 50.0)]
    graph = FundingGraph(rows, [EXCHANGE_SOURCE])
    assert [r.funder for r in graph.trail(w(4), as_of=400.0)] == [w(3), w(2), w(1)]
    assert [r.funder for r in graph.trail(w(4), as_of=400.0, max_depth=4)] == [w(3), w(2), w(1), EXCHANGE]
    assert [r.funder for r in graph.trail(w(2), as_of=400.0)] == [w(1), EXCHANGE]
    assert graph.trail(w(4), as_of=299.0) == ()
    facts = graph.facts(w(2), as_of=400.0)
    assert facts.trail_depth == 2
    assert facts.trail_source == EXCHANGE_SOURCE
    assert facts.funder_source is None


def test_a_funders_own_funding_after_it_funded_the_wallet_is_not_on_the_trail() -> None:
    """The funder's first funding must precede its funding of the wallet (it had money to give)."""
    graph = FundingGraph([row(2, 1, 100.0), row(1, 9, 150.0)])
    assert [r.funder for r in graph.trail(w(2), as_of=1000.0)] == [w(1)]


def test_cycles_end_a_trail() -> None:
    graph = FundingGraph([row(1, 2, 100.0), row(2, 1, 50.0)])
    assert [r.funder for r in graph.trail(w(1), as_of=1000.0, max_depth=5)] == [w(2), w(1)]


def test_fan_out_counts_wallets_funded_so_far_optionally_among_a_set() -> None:
    """One funder of five wallets at 10, 20, ... 50: as of 30 it had funded three; among {1, 5} one."""
    graph = FundingGraph([row(i, 99, 10.0 * i) for i in range(1, 6)])
    assert graph.fan_out(w(99), as_of=30.0) == 3
    assert graph.fan_out(w(99), as_of=30.0, among={w(1), w(5)}) == 1
    assert graph.fan_out(w(99), as_of=1e9, among={w(1), w(5)}) == 2
    assert [r.wallet for r in graph.funded(w(99), as_of=20.0)] == [w(1), w(2)]
    facts = graph.facts(w(3), as_of=35.0)
    assert facts.funder_fan_out == 3
    assert facts.seconds_since_funding == 5.0


def test_clusters_join_funders_and_wallets_but_not_through_a_known_source() -> None:
    rows = [row(1, 10, 1.0), row(2, 10, 2.0), row(3, EXCHANGE, 3.0), row(4, EXCHANGE, 4.0), row(10, 11, 0.5)]
    clusters = FundingGraph(rows, [EXCHANGE_SOURCE]).clusters(as_of=100.0)
    assert clusters[w(1)] == clusters[w(2)] == clusters[w(10)] == clusters[w(11)] == w(1)
    assert w(3) not in clusters
    assert w(4) not in clusters
    assert FundingGraph(rows).clusters(as_of=100.0)[w(3)] == FundingGraph(rows).clusters(as_of=100.0)[w(4)]
    assert w(2) not in FundingGraph(rows).clusters(as_of=1.5)


def test_facts_of_an_unknown_wallet_say_nothing() -> None:
    facts = FundingGraph([]).facts(w(1), as_of=10.0)
    assert not facts.known
    assert facts.trail_depth == 0
    assert facts.funder_fan_out == 0
    assert facts.seconds_since_funding is None
    assert facts.funder_source is None


def test_token_funding_is_asked_for_separately() -> None:
    graph = FundingGraph([row(1, 2, 10.0), row(1, 3, 20.0, asset=TOKEN)])
    assert graph.facts(w(1), as_of=30.0, token=TOKEN).token == row(1, 3, 20.0, asset=TOKEN)
    assert graph.facts(w(1), as_of=15.0, token=TOKEN).token is None


_rows = st.lists(
    st.builds(
        lambda wallet, funder, time, asset: row(wallet, funder, time, asset=asset),
        st.integers(1, 12), st.integers(1, 14), st.integers(0, 100).map(float), st.sampled_from([NATIVE, TOKEN]),
    ),
    max_size=40,
)  # fmt: skip


@given(rows=_rows, future=_rows, cut=st.integers(0, 100))
def test_nothing_after_as_of_moves_any_answer(rows: list[FundingRow], future: list[FundingRow], cut: int) -> None:
    """Rewriting everything after the cut (new rows, later than it) leaves every answer as of the cut unchanged."""
    past = [r for r in rows if r.time <= cut]
    later = [FundingRow(r.wallet, r.asset, r.funder, r.amount, cut + 1 + r.block, cut + 1.0 + r.time) for r in future]
    before, after = FundingGraph(past, [EXCHANGE_SOURCE]), FundingGraph(past + later, [EXCHANGE_SOURCE])
    donors = {w(i) for i in range(1, 8)}
    for i in range(1, 15):
        a = before.facts(w(i), as_of=float(cut), among=donors, token=TOKEN)
        b = after.facts(w(i), as_of=float(cut), among=donors, token=TOKEN)
        assert a == b
        assert before.fan_out(w(i), as_of=float(cut), asset=TOKEN) == after.fan_out(w(i), as_of=float(cut), asset=TOKEN)
    assert before.clusters(as_of=float(cut)) == after.clusters(as_of=float(cut))
