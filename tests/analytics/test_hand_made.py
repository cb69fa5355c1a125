"""The analytics views on hand-made event rows: the cap by hand, and the cases a real strategy refuses."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction

import psycopg
import pytest

from qf_sentinel.qf.db import connect
from tests.analytics.events import WINDOW, EventWriter, address, refresh, units
from tests.analytics.reference import pro_rata, standard_matches

START, END = WINDOW


@pytest.fixture
def conn(migrated_db_url: str) -> Iterator[psycopg.Connection]:
    with connect(migrated_db_url) as c:
        yield c


def capped(conn: psycopg.Connection, matches: list[int | str], cap: int | str) -> list[float]:
    row = conn.execute(
        "SELECT qf.capped_matches(%s::numeric[], %s::numeric)", ([Decimal(m) for m in matches], Decimal(cap))
    ).fetchone()
    assert row is not None
    return [float(m) for m in row[0]]


def matching(conn: psycopg.Connection, pool_id: int) -> dict[bytes, tuple[float, float, float]]:
    """recipient -> (match_standard, match, match_capped) of one pool."""
    rows = conn.execute(
        "SELECT recipient_id, match_standard, match, match_capped FROM qf.round_matching WHERE pool_id = %s",
        (pool_id,),
    ).fetchall()
    return {bytes(r): (float(s), float(m), float(c)) for r, s, m, c in rows}


def test_cap_clamps_and_redistributes_in_one_pass(conn: psycopg.Connection) -> None:
    """Cap 25 on 50/30/10/6/4: two projects clamp and the excess 30 goes 15/9/6 to the rest."""
    assert capped(conn, [50, 30, 10, 6, 4], 25) == pytest.approx([25, 25, 25, 15, 10])


def test_cap_repeats_until_no_project_exceeds_it(conn: psycopg.Connection) -> None:
    """Cap 30 on 60/25/10/5: the redistribution lifts 25 to 43.75, which is clamped in a second pass."""
    assert capped(conn, [60, 25, 10, 5], 30) == pytest.approx([30, 30, 80 / 3, 40 / 3])


def test_cap_on_every_project_leaves_the_excess_unpaid(conn: psycopg.Connection) -> None:
    """When every project hits the cap there is no one to redistribute to: the rest stays in the pool."""
    assert capped(conn, [50, 50], 40) == pytest.approx([40, 40])
    assert capped(conn, [10, 0, 0], 5) == pytest.approx([5, 0, 0])


def test_cap_that_does_not_bind_changes_nothing(conn: psycopg.Connection) -> None:
    """A cap above every match, or no cap at all, returns the matches as they were."""
    assert capped(conn, [40, 35, 25], 50) == pytest.approx([40, 35, 25])
    row = conn.execute("SELECT qf.capped_matches(ARRAY[3, 1]::numeric[], NULL)").fetchone()
    assert row is not None
    assert [float(x) for x in row[0]] == [3, 1]


def test_status_nibble_reads_every_position_of_a_256_bit_row(conn: psycopg.Connection) -> None:
    """Recipient k of a row reads bits 4k..4k+3, up to the top nibble of a full uint256."""
    full_row = sum(((k % 4) + 1) << (4 * k) for k in range(64))
    got = conn.execute(
        "SELECT array_agg(qf.status_nibble(%s::numeric, k) ORDER BY k) FROM generate_series(0, 127) k",
        (full_row,),
    ).fetchone()
    assert got is not None
    assert got[0] == [(k % 4) + 1 for k in range(64)] * 2


def test_matching_counts_only_accepted_recipients_and_in_window_donations(conn: psycopg.Connection) -> None:
    """Rejected and pending recipients get no row; donations outside the window or in another token do not count."""
    w = EventWriter(conn)
    strategy = w.pool(1, funded=units(1000))
    good, other, rejected, pending = (address(n) for n in ("good", "other", "rejected", "pending"))
    for r in (good, other, rejected, pending):
        w.register(strategy, r)
    w.review(strategy, {good: 2, other: 2, rejected: 3})
    donors = [address(f"d{i}") for i in range(4)]
    w.donate(strategy, donors[0], good, units(4), at=START)
    w.donate(strategy, donors[1], good, units(1), at=END)
    w.donate(strategy, donors[2], good, units(100), at=START - 1)  # before the window
    w.donate(strategy, donors[3], good, units(100), at=END + 1)  # after the window
    w.donate(strategy, donors[2], good, units(50), at=START + 5, token=bytes.fromhex("ee" * 20))
    w.donate(strategy, donors[0], other, units(1), at=START + 10)
    w.donate(strategy, donors[1], other, units(1), at=START + 10)
    w.donate(strategy, donors[0], rejected, units(9), at=START + 20)
    w.donate(strategy, donors[1], rejected, units(9), at=START + 20)
    refresh(conn)

    got = matching(conn, 1)
    assert set(got) == {good, other}
    one = Fraction(1)
    std = standard_matches({good: {b"0": 4 * one, b"1": one}, other: {b"0": one, b"1": one}})
    assert std == {good: 4.0, other: 2.0}
    scaled = pro_rata(std, 1000.0)
    for r in (good, other):
        assert got[r] == pytest.approx((std[r], scaled[r], scaled[r]))
    flags = conn.execute(
        "SELECT amount, in_window, recipient_status FROM qf.donations WHERE recipient_id = %s ORDER BY block_number",
        ("0x" + good.hex(),),
    ).fetchall()
    assert [(float(a), i, s) for a, i, s in flags] == [
        (4, True, 2), (1, True, 2), (100, False, 2), (100, False, 2), (50, True, 2),
    ]  # fmt: skip
    statuses = conn.execute("SELECT recipient_id, status_name FROM qf.recipient_status").fetchall()
    assert {bytes(k): v for k, v in statuses} == {
        good: "accepted", other: "accepted", rejected: "rejected", pending: "pending",
    }  # fmt: skip


def test_zero_pool_gives_zero_matches_without_dividing_by_zero(conn: psycopg.Connection) -> None:
    """A pool funded with nothing, and a pool whose projects all have one donor, match 0 everywhere."""
    w = EventWriter(conn)
    empty = w.pool(1, funded=0)
    lonely = w.pool(2, funded=units(500))
    a, b = address("a"), address("b")
    for strategy in (empty, lonely):
        w.register(strategy, a)
        w.register(strategy, b)
        w.review(strategy, {a: 2, b: 2})
    w.donate(empty, address("x"), a, units(3), at=START)
    w.donate(empty, address("y"), a, units(5), at=START)
    w.donate(lonely, address("x"), a, units(3), at=START)
    w.donate(lonely, address("y"), b, units(7), at=START)
    w.donate(lonely, address("y"), b, units(2), at=START + 1)
    conn.execute("INSERT INTO qf.matching_caps VALUES (31337, 1, 10), (31337, 2, 10)")
    refresh(conn)

    empty_got = matching(conn, 1)
    assert empty_got[a][0] == pytest.approx(2 * (3 * 5) ** 0.5)
    assert [v[1:] for v in empty_got.values()] == [(0.0, 0.0), (0.0, 0.0)]
    # One donor each: (sqrt c)^2 - c is exactly zero, before any scaling.
    assert matching(conn, 2) == {a: (0.0, 0.0, 0.0), b: (0.0, 0.0, 0.0)}
    stats = conn.execute(
        "SELECT pool_id, matching_pool, match_gini, top10_match_share, donations FROM qf.round_stats ORDER BY 1"
    ).fetchall()
    assert [(int(p), float(f), g, t, n) for p, f, g, t, n in stats] == [
        (1, 0.0, pytest.approx(0.5), 1, 2),
        (2, 500.0, None, None, 3),
    ]


def test_cap_in_the_view_binds_on_several_projects(conn: psycopg.Connection) -> None:
    """With a 30% cap the two biggest projects get 30% of the pool and the others share the excess pro rata."""
    w = EventWriter(conn)
    strategy = w.pool(7, funded=units(100))
    projects = [address(f"p{i}") for i in range(4)]
    for p in projects:
        w.register(strategy, p)
    w.review(strategy, dict.fromkeys(projects, 2))
    # Two donors each, c = x and x: match = 2x, so matches are proportional to x.
    for p, x in zip(projects, (60, 25, 10, 5), strict=True):
        for d in ("d1", "d2"):
            w.donate(strategy, address(d), p, units(x), at=START + 1)
    conn.execute("INSERT INTO qf.matching_caps VALUES (31337, 7, 30)")
    refresh(conn)

    got = matching(conn, 7)
    assert [got[p][1] for p in projects] == pytest.approx([60, 25, 10, 5])
    assert [got[p][2] for p in projects] == pytest.approx([30, 30, 80 / 3, 40 / 3])
