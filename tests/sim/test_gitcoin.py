"""The Gitcoin Round 9 replay planner: exact counts on the real file, clear errors on bad ones."""

from __future__ import annotations

import csv
import lzma
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pandas as pd
import pytest

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.sim.gitcoin import load_round9, plan_from_rows
from qf_sentinel.qf.sim.plan import RecipientStatus, RoundPlan, Token
from qf_sentinel.qf.sim.wallets import derive_wallet
from tests.sim.checks import assert_well_formed

ROUND9 = Path(__file__).resolve().parents[2] / "data" / "gitcoin-round9-contributions.csv.xz"
HEADER = "time_sequence,created_on,contributor,grant,amount,sybil_score,token,amount_in_token,success,flag"


@dataclass
class Expected:
    """What the replay must contain, computed with csv and lzma only."""

    rows: int
    failed: int
    non_positive: int
    kept: int
    contributors: list[str]
    grants: list[str]
    total_units: int
    total_usd: Decimal
    rounded_rows: int


@pytest.fixture(scope="module")
def expected() -> Expected:
    """Independent counts of the real file, without pandas."""
    rows = failed = non_positive = kept = rounded = 0
    contributors: dict[str, None] = {}
    grants: dict[str, None] = {}
    units = 0
    usd = Decimal(0)
    with lzma.open(ROUND9, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            rows += 1
            if row["success"] != "True":
                failed += 1
                continue
            amount = Decimal(row["amount"])
            if amount <= 0:
                non_positive += 1
                continue
            kept += 1
            contributors.setdefault(row["contributor"])
            grants.setdefault(row["grant"])
            exact = amount * 10**18
            unit = int(exact.to_integral_value(ROUND_HALF_EVEN))
            rounded += unit != exact
            units += unit
            usd += amount
    return Expected(rows, failed, non_positive, kept, list(contributors), list(grants), units, usd, rounded)


@pytest.fixture(scope="module")
def round9() -> RoundPlan:
    """The replay plan of the real Round 9 file."""
    return load_round9(ROUND9)


@pytest.mark.slow
def test_real_file_row_counts(round9: RoundPlan, expected: Expected) -> None:
    """All 80,354 rows are accounted for: replayed, failed or non-positive."""
    assert expected.rows == 80_354
    skipped = {"failed": expected.failed, "non_positive_amount": expected.non_positive}
    assert round9.skipped == skipped
    assert len(round9.donations) == expected.kept
    assert len(round9.donations) + sum(round9.skipped.values()) == expected.rows


@pytest.mark.slow
def test_real_file_wallets_and_projects(round9: RoundPlan, expected: Expected) -> None:
    """One wallet per contributor and one accepted, owned project per grant that was replayed."""
    contributors, grants = len(expected.contributors), len(expected.grants)
    assert len(round9.wallets) == contributors + grants
    assert len(round9.projects) == grants
    assert [p.name for p in round9.projects] == expected.grants
    assert all(p.status is RecipientStatus.ACCEPTED and p.pool == 0 for p in round9.projects)
    assert round9.wallets[0] == derive_wallet("round9", expected.contributors[0])
    assert round9.wallets[contributors] == derive_wallet("round9-grant", expected.grants[0])
    assert {round9.projects[d.project].owner for d in round9.donations} <= set(
        range(contributors, contributors + grants)
    )
    assert {d.donor for d in round9.donations} == set(range(contributors))


@pytest.mark.slow
def test_real_file_amounts_are_exact(round9: RoundPlan, expected: Expected) -> None:
    """Token units sum to the independent total, within half a unit per 19-decimal row."""
    total = sum(d.amount for d in round9.donations)
    assert total == expected.total_units
    assert abs(Decimal(total) - expected.total_usd * 10**18) <= Decimal(expected.rounded_rows) / 2
    assert all(d.token is Token.ERC20 for d in round9.donations)


@pytest.mark.slow
def test_real_file_plan_is_well_formed(round9: RoundPlan) -> None:
    """The replay satisfies every plan invariant, starts at 0 and has no labels."""
    assert_well_formed(round9)
    assert round9.donations[0].at_seconds == 0.0
    assert round9.pools[0].duration_seconds == int(round9.donations[-1].at_seconds) + 1
    assert round9.pools[0].token is Token.ERC20
    assert round9.labels == ()


def _write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    text = "\n".join([header, *lines]) + "\n"
    if path.suffix == ".xz":
        path.write_bytes(lzma.compress(text.encode()))
    else:
        path.write_text(text)
    return path


ROWS = [
    "0,2021-03-14 01:59:59.500000-07:00,aaaaaaaaaa,Grant A,2.5,1,DAI,2.5,True,0",
    "1,2021-03-14 03:00:00-06:00,bbbbbbbbbb,Grant B,0.0006371408072644999,0,ETH,0.1,True,0",
    "2,2021-03-14 03:00:01-06:00,cccccccccc,Grant A,7,0,DAI,7,False,0",
    "3,2021-03-14 03:00:02-06:00,aaaaaaaaaa,Grant B,0.0,0,DAI,0,True,0",
    "4,2021-03-14 03:00:03-06:00,aaaaaaaaaa,Grant C,-0.2,0,DAI,0,True,0",
    "5,2021-03-14 03:00:04-06:00,bbbbbbbbbb,Grant A,9.5e-05,0,ETH,0.1,True,0",
    "6,2021-03-14 03:00:05-06:00,bbbbbbbbbb,Grant B,0.0072153713500800005,0,ETH,0.1,True,0",
]


def test_small_file_maps_rows_to_donations(tmp_path: Path) -> None:
    """Kept rows become donations with exact units, across a change of UTC offset."""
    plan = load_round9(_write(tmp_path / "r.csv.xz", ROWS))
    assert plan.skipped == {"failed": 1, "non_positive_amount": 2}
    assert [(d.donor, d.project, d.amount) for d in plan.donations] == [
        (0, 0, 2_500_000_000_000_000_000),
        (1, 1, 637_140_807_264_500),  # ...499.9 rounds up
        (1, 0, 95_000_000_000_000),
        (1, 1, 7_215_371_350_080_000),  # ...000.5 rounds half-even, down to the even unit
    ]
    # Daylight saving time began: 01:59:59.5 at -07:00 is half a second before 03:00 at -06:00.
    assert [d.at_seconds for d in plan.donations] == [0.0, 0.5, 4.5, 5.5]
    assert plan.pools[0].duration_seconds == 6
    assert [p.name for p in plan.projects] == ["Grant A", "Grant B"]
    assert_well_formed(plan)


def test_rows_are_replayed_in_time_sequence_order(tmp_path: Path) -> None:
    """Shuffled rows are put back in time_sequence order."""
    shuffled = [ROWS[5], ROWS[0], ROWS[2], ROWS[1]]
    plan = load_round9(_write(tmp_path / "r.csv", shuffled))
    assert [d.amount for d in plan.donations] == [
        2_500_000_000_000_000_000,
        637_140_807_264_500,
        95_000_000_000_000,
    ]


def test_plan_from_rows_accepts_typed_frames() -> None:
    """A frame with numbers and booleans plans like the text it came from."""
    frame = pd.DataFrame(
        {
            "time_sequence": [0, 1],
            "created_on": ["2021-03-10T00:00:00Z", "2021-03-10T00:00:10Z"],
            "contributor": ["a", "b"],
            "grant": ["g", "g"],
            "amount": [0.1, 2.0],
            "success": [True, True],
        }
    )
    plan = plan_from_rows(frame)
    assert [d.amount for d in plan.donations] == [10**17, 2 * 10**18]
    assert plan.pools[0].duration_seconds == 11


def test_missing_file_raises_data_error(tmp_path: Path) -> None:
    """A path that does not exist names itself in the error."""
    path = tmp_path / "nope.csv.xz"
    with pytest.raises(DataError, match=r"nope\.csv\.xz: no such file"):
        load_round9(path)


def test_truncated_xz_raises_data_error(tmp_path: Path) -> None:
    """An xz file cut short is reported as corrupt or truncated."""
    path = tmp_path / "cut.csv.xz"
    path.write_bytes(ROUND9.read_bytes()[:20_000])
    with pytest.raises(DataError, match=r"cut\.csv\.xz: corrupt or truncated xz") as info:
        load_round9(path)
    assert "\n" not in str(info.value)


def test_not_xz_raises_data_error(tmp_path: Path) -> None:
    """Bytes that are not xz at all are reported as corrupt, naming the file."""
    path = tmp_path / "junk.csv.xz"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"junk\.csv\.xz: corrupt or truncated xz"):
        load_round9(path)


def test_binary_csv_raises_data_error(tmp_path: Path) -> None:
    """A plain file that is not UTF-8 text is not a readable CSV."""
    path = tmp_path / "bin.csv"
    path.write_bytes(b"time_sequence,created_on\n\xff\xfe\x00\x81\n")
    with pytest.raises(DataError, match=r"bin\.csv: not a readable CSV"):
        load_round9(path)


def test_empty_file_raises_data_error(tmp_path: Path) -> None:
    """An empty file is reported as such."""
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: empty file"):
        load_round9(path)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    """Every missing column the replay needs is listed in one line."""
    path = _write(
        tmp_path / "cols.csv",
        ["0,2021-03-10T00:00:00Z,a,g"],
        header="time_sequence,created_on,contributor,grant",
    )
    with pytest.raises(DataError, match=r"cols\.csv: missing columns amount, success$"):
        load_round9(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("7,not a date,a,g,1,0,DAI,1,True,0", r"row time_sequence=7: created_on 'not a date'"),
        ("7,2021-03-10 00:00:00-07:00,a,g,lots,0,DAI,1,True,0", r"time_sequence=7: amount 'lots'"),
        ("7,2021-03-10 00:00:00-07:00,a,g,,0,DAI,1,True,0", r"time_sequence=7: amount ''"),
        ("7,2021-03-10 00:00:00-07:00,a,g,inf,0,DAI,1,True,0", r"time_sequence=7: amount 'inf'"),
        ("7,2021-03-10 00:00:00-07:00,a,g,1,0,DAI,1,maybe,0", r"time_sequence=7: success"),
        ("x7,2021-03-10 00:00:00-07:00,a,g,1,0,DAI,1,True,0", r"line 3: time_sequence 'x7'"),
        ("0,2021-03-10 00:00:00-07:00,a,g,1,0,DAI,1,True,0", r"time_sequence=0: time_sequence rep"),
        ("7,2021-03-09 00:00:00-07:00,a,g,1,0,DAI,1,True,0", r"time_sequence=7: created_on is ear"),
        ("7,2021-03-10 00:00:00-07:00,,g,1,0,DAI,1,True,0", r"time_sequence=7: empty contributor"),
    ],
)
def test_bad_row_names_its_time_sequence(tmp_path: Path, row: str, message: str) -> None:
    """A malformed row raises DataError naming the file and the row."""
    good = "0,2021-03-09 12:00:00-07:00,b,g,1,0,DAI,1,True,0"
    path = _write(tmp_path / "bad.csv", [good, row])
    with pytest.raises(DataError, match=r"bad\.csv: .*" + message):
        load_round9(path)


def test_no_replayable_row_raises_data_error(tmp_path: Path) -> None:
    """A file whose rows all failed has nothing to replay."""
    path = _write(tmp_path / "failed.csv", [ROWS[2]])
    with pytest.raises(DataError, match=r"failed\.csv: no successful contribution"):
        load_round9(path)
