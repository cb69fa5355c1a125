"""Replay of the real Gitcoin Grants Round 9 as a plan (``qf replay-gitcoin``).

:func:`load_round9` reads the BlockScience export shipped in ``data/`` (see
``data/README.md``) and :func:`plan_from_rows` turns its rows into a
:class:`~qf.sim.plan.RoundPlan` the executor can send to a devnet, so the
indexer and scorer can be run against a round with real donation behaviour.

How rows map to the plan:

* one ERC-20 pool (one test token stands for one USD) whose window spans the
  replayed donations plus one second; ``at_seconds`` is ``created_on`` minus
  the first replayed ``created_on``, in ``time_sequence`` order;
* one wallet per contributor, ``derive_wallet("round9", contributor)``, and one
  accepted project per grant owned by ``derive_wallet("round9-grant", grant)``;
  only contributors and grants with at least one replayed donation appear,
  contributors first, then grant owners, each in order of first donation;
* one donation per successful row with a positive amount; the USD amount is
  converted to 18-decimal token units exactly through ``Decimal`` of its text
  (three rows carry 19 decimals and are rounded half-even to the nearest unit).
  Other rows are counted in ``RoundPlan.skipped`` as ``failed``
  (``success == False``, never went through) or ``non_positive_amount``;
* every wallet is funded by the faucet with gas (``wallets.gas_allowance_wei``,
  1 ETH for all but the busiest) and, as in ``scenario``, the executor mints
  each donor exactly the sum of its ERC-20 donations (``wallets.erc20_mints``);
* ``seed`` is 0: nothing is random;
* ``labels`` is empty: nobody knows which Round 9 contributors were sybils.
  ``sybil_score`` is Gitcoin's heuristic of the time, not ground truth, and
  ``flag`` is zero on every row, so neither may be used as a label.

Malformed input raises ``DataError`` with one line naming the file, and the
``time_sequence`` of the offending row where there is one.
"""

from __future__ import annotations

import lzma
import math
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path

import numpy as np
import pandas as pd

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.sim.plan import (
    Donation,
    Funding,
    Pool,
    Project,
    RecipientStatus,
    RoundPlan,
    Token,
    Wallet,
)
from qf_sentinel.qf.sim.wallets import derive_wallet, gas_allowance_wei

#: Columns the replay reads; the file's others (``sybil_score``, ``token``,
#: ``amount_in_token``, ``flag``) are not needed and may be absent.
REQUIRED_COLUMNS = ("time_sequence", "created_on", "contributor", "grant", "amount", "success")
#: Round 9 matched with about 500,000 USD.
MATCHING_TOKENS = 500_000
TOKEN_DECIMALS = 18
CONTRIBUTOR_NAMESPACE = "round9"
GRANT_NAMESPACE = "round9-grant"

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def load_round9(path: Path, *, matching_tokens: int = MATCHING_TOKENS) -> RoundPlan:
    """Read the Round 9 contributions CSV (plain or ``.xz``) and plan its replay."""
    return plan_from_rows(read_rows(path), source=str(path), matching_tokens=matching_tokens)


def read_rows(path: Path) -> pd.DataFrame:
    """Every cell of the CSV at ``path`` as text; compression follows the suffix."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty file, expected a CSV with a header") from exc
    except (lzma.LZMAError, EOFError) as exc:
        raise DataError(f"{path}: corrupt or truncated xz file ({_first_line(exc)})") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: not a readable CSV ({_first_line(exc)})") from exc


def plan_from_rows(
    rows: pd.DataFrame, *, source: str = "rows", matching_tokens: int = MATCHING_TOKENS
) -> RoundPlan:
    """Plan the replay of contribution ``rows``; ``source`` names them in errors."""
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise DataError(f"{source}: missing columns {', '.join(missing)}")
    rows = _parsed(rows.reset_index(drop=True), source)

    failed = ~rows["success"]
    non_positive = rows["success"] & (rows["amount_usd"] <= 0)
    kept = rows[~failed & ~non_positive]
    if kept.empty:
        raise DataError(f"{source}: no successful contribution with a positive amount")
    blank = (kept["contributor"].str.strip() == "") | (kept["grant"].str.strip() == "")
    if blank.any():
        raise DataError(
            f"{source}: row time_sequence={kept['time_sequence'][blank].iloc[0]}: empty contributor or grant"
        )

    donors, contributors = pd.factorize(kept["contributor"])
    projects, grants = pd.factorize(kept["grant"])
    at = kept["created_on"] - kept["created_on"].iloc[0]
    at_seconds = np.round(at.dt.total_seconds().to_numpy(), 3)
    amounts = _token_units(kept["amount_text"])

    wallets: list[Wallet] = [derive_wallet(CONTRIBUTOR_NAMESPACE, c) for c in contributors]
    owners_from = len(wallets)
    wallets += [derive_wallet(GRANT_NAMESPACE, g) for g in grants]
    donation_counts = np.bincount(donors, minlength=len(contributors))
    fundings = [Funding(None, i, gas_allowance_wei(int(n))) for i, n in enumerate(donation_counts)]
    fundings += [Funding(None, owners_from + j, gas_allowance_wei(1)) for j in range(len(grants))]

    return RoundPlan(
        name="gitcoin-round9",
        seed=0,
        pools=(
            Pool(
                name="gitcoin-round9",
                token=Token.ERC20,
                matching_amount=matching_tokens * 10**TOKEN_DECIMALS,
                duration_seconds=math.floor(float(at_seconds[-1])) + 1,
            ),
        ),
        wallets=tuple(wallets),
        projects=tuple(
            Project(0, str(g), owners_from + j, RecipientStatus.ACCEPTED) for j, g in enumerate(grants)
        ),
        fundings=tuple(fundings),
        donations=tuple(
            Donation(float(t), int(d), int(p), Token.ERC20, a)
            for t, d, p, a in zip(at_seconds, donors, projects, amounts, strict=True)
        ),
        labels=(),
        skipped={"failed": int(failed.sum()), "non_positive_amount": int(non_positive.sum())},
    )


def _parsed(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """Typed columns in ``time_sequence`` order; the first bad row raises ``DataError``."""
    text = rows[list(REQUIRED_COLUMNS)].astype(str)
    sequence = pd.to_numeric(text["time_sequence"], errors="coerce")
    bad = sequence.isna() | (sequence != sequence.round())
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2  # 1-based, after the header
        raise DataError(
            f"{source}: line {line}: time_sequence {text['time_sequence'][bad].iloc[0]!r} is not an integer"
        )
    repeated = sequence.duplicated()
    if repeated.any():
        raise DataError(
            f"{source}: row time_sequence={int(sequence[repeated].iloc[0])}: time_sequence repeats"
        )

    created = pd.to_datetime(text["created_on"], format="ISO8601", utc=True, errors="coerce")
    where = {"text": text, "sequence": sequence, "source": source}
    _raise_first(created.isna(), **where, column="created_on", problem="is not a date with offset")
    amount = pd.to_numeric(text["amount"], errors="coerce")
    finite = np.isfinite(amount.to_numpy(dtype=float, na_value=np.nan))
    _raise_first(~finite, **where, column="amount", problem="is not a number")
    flag = text["success"].str.strip().str.lower()
    _raise_first(~flag.isin(_TRUE | _FALSE), **where, column="success", problem="is not True or False")

    parsed = pd.DataFrame(
        {
            "time_sequence": sequence.astype("int64"),
            "created_on": created,
            "contributor": text["contributor"],
            "grant": text["grant"],
            "amount_usd": amount.astype(float),
            "amount_text": text["amount"].str.strip(),
            "success": flag.isin(_TRUE),
        }
    ).sort_values("time_sequence", kind="stable")
    backwards = parsed["created_on"].diff() < pd.Timedelta(0)
    if backwards.any():
        raise DataError(
            f"{source}: row time_sequence={parsed['time_sequence'][backwards].iloc[0]}"
            ": created_on is earlier than the row before it"
        )
    return parsed


def _raise_first(
    bad: pd.Series | np.ndarray,
    *,
    text: pd.DataFrame,
    sequence: pd.Series,
    source: str,
    column: str,
    problem: str,
) -> None:
    mask = np.asarray(bad, dtype=bool)
    if mask.any():
        i = int(mask.argmax())
        raise DataError(
            f"{source}: row time_sequence={int(sequence.iloc[i])}: {column} "
            f"{text[column].iloc[i]!r} {problem}"
        )


def _token_units(amounts: pd.Series) -> list[int]:
    """USD amounts (decimal text) as 18-decimal token units, exact up to half a unit."""
    with localcontext(prec=80):
        return [int(Decimal(a).scaleb(TOKEN_DECIMALS).to_integral_value(ROUND_HALF_EVEN)) for a in amounts]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
