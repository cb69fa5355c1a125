"""A reviewer's verdict: checked from the form, then appended to ``qf.review_log`` and written to ``qf.labels``.

Both writes are one transaction, so a verdict is in the log and in the labels
or in neither. The form names the verdict the reviewer saw as current
(``expected``, empty for none); if another verdict landed since (a double
submit, or a second reviewer on the same donor) the write is refused with who
answered and when, and nothing changes. The log's unique indexes make the same
check hold between concurrent transactions.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.eth import address
from qf_sentinel.qf.labels import ImportedLabel, import_labels

Verdict = Literal["sybil", "honest"]
MAX_COMMENT = 2000


class ReviewError(DataError):
    """A verdict that cannot be recorded as submitted; nothing was written."""


class ReviewConflict(ReviewError):
    """The donor's current verdict is not the one the reviewer saw."""


@dataclass(frozen=True, slots=True)
class VerdictForm:
    donor: bytes
    verdict: Verdict
    comment: str
    #: the current verdict's review id the reviewer saw (None: no verdict yet)
    expected: int | None
    decision_id: uuid.UUID | None
    #: the chain the verdict is about (None: a form that names none; the console's only chain then)
    chain_id: int | None = None


@dataclass(frozen=True, slots=True)
class CurrentVerdict:
    review_id: int
    verdict: Verdict
    reviewer: str
    created_at: datetime


def parse_verdict(form: Mapping[str, Any]) -> VerdictForm:
    """The verdict a form submits, or ReviewError saying which field is wrong."""
    try:
        donor = address(str(form.get("donor", "")).strip())
    except ValueError:
        raise ReviewError("the form names no valid donor address (0x and 40 hex digits)") from None
    verdict = str(form.get("verdict", ""))
    if verdict not in ("sybil", "honest"):
        raise ReviewError("choose a verdict: sybil or honest")
    comment = str(form.get("comment", "")).strip()
    if "\x00" in comment:
        raise ReviewError("the comment must not contain NUL characters")
    if len(comment) > MAX_COMMENT:
        raise ReviewError(f"the comment is {len(comment):,} characters; at most {MAX_COMMENT:,}")
    expected_text = str(form.get("expected", "")).strip()
    try:
        expected = int(expected_text) if expected_text else None
    except ValueError:
        raise ReviewError("the form's current-verdict field was altered; reload the page") from None
    decision_text = str(form.get("decision_id", "")).strip()
    try:
        decision_id = uuid.UUID(decision_text) if decision_text else None
    except ValueError:
        raise ReviewError("the form's decision id was altered; reload the page") from None
    chain_text = str(form.get("chain", "")).strip()
    try:
        chain_id = int(chain_text) if chain_text else None
    except ValueError:
        raise ReviewError("the form's chain field was altered; reload the page") from None
    if chain_id is not None and not 0 < chain_id < 2**63:
        raise ReviewError("the form's chain field was altered; reload the page")
    return VerdictForm(donor, verdict, comment, expected, decision_id, chain_id)  # type: ignore[arg-type]  # checked above


def current_verdict(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> CurrentVerdict | None:
    row = conn.execute(
        "SELECT review_id, verdict, reviewer, created_at FROM qf.review_verdicts WHERE chain_id = %s AND donor = %s",
        (chain_id, donor),
    ).fetchone()
    return None if row is None else CurrentVerdict(int(row[0]), row[1], row[2], row[3])


def record_verdict(conn: psycopg.Connection[Any], chain_id: int, form: VerdictForm, reviewer: str) -> int:
    """Append the verdict and label the donor (source = the reviewer's name); returns the new review id."""
    try:
        with conn.transaction():
            known = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM qf.donor_features WHERE chain_id = %s AND donor = %s)"
                " OR EXISTS (SELECT 1 FROM qf.scorer_decisions WHERE chain_id = %s AND donor = %s)",
                (chain_id, form.donor, chain_id, form.donor),
            ).fetchone()
            if not (known and known[0]):
                raise ReviewError(f"0x{form.donor.hex()} is not a donor of chain {chain_id}: nothing recorded")
            if form.decision_id is not None and conn.execute(
                "SELECT 1 FROM qf.scorer_decisions WHERE decision_id = %s AND chain_id = %s AND donor = %s",
                (form.decision_id, chain_id, form.donor),
            ).fetchone() is None:
                raise ReviewError(f"decision {form.decision_id} is not a decision about 0x{form.donor.hex()} "
                                  f"on chain {chain_id}: nothing recorded")  # fmt: skip
            current = current_verdict(conn, chain_id, form.donor)
            if (current.review_id if current else None) != form.expected:
                raise _conflict(current)
            row = conn.execute(
                "INSERT INTO qf.review_log (chain_id, donor, verdict, comment, reviewer, decision_id, supersedes) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (chain_id, form.donor, form.verdict, form.comment, reviewer, form.decision_id, form.expected),
            ).fetchone()
            assert row is not None
            review_id = int(row[0])
            # The same upsert as `qf labels import` (a savepoint inside this transaction).
            sybil = form.verdict == "sybil"
            label = ImportedLabel(form.donor, sybil, "reviewed_sybil" if sybil else "honest", reviewer)
            import_labels(conn, chain_id, [label], run_id=f"review-{review_id}")
    except pg_errors.UniqueViolation:
        # Another transaction recorded a verdict between our check and our insert.
        raise _conflict(current_verdict(conn, chain_id, form.donor)) from None
    return review_id


def _conflict(current: CurrentVerdict | None) -> ReviewConflict:
    if current is None:
        return ReviewConflict("the verdict you changed is no longer current; reload the page: nothing recorded")
    when = current.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return ReviewConflict(
        f"already reviewed: {current.verdict} by {current.reviewer} at {when}. Nothing recorded; "
        "reload to see it and change it if you disagree"
    )
