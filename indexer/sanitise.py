"""What may be stored of a value read from the chain or IPFS: the indexer's rules for hostile data, in one place.

Every string, byte array and number in a log, an ``eth_call`` answer or a
metadata document was chosen by whoever deployed the contract or pinned the
file. PostgreSQL refuses some of them outright, and one refused value would
fail its whole batch on every retry, so the checkpoint would never pass it:

- ``text`` holds no NUL and no invalid UTF-8 (psycopg cannot even encode a lone
  surrogate); a btree entry holds at most 2,704 bytes (``qf.metadata_pointers``
  is keyed by the pointer);
- ``jsonb`` refuses ``\\u0000``, lone surrogate escapes, numbers beyond
  ``numeric``'s 131,072 digits before / 16,383 after the point, and nesting
  past the server's stack (and Python reads no integer over 4,300 digits);
- ``smallint``/``bigint`` columns and the ``qf.uint256`` domain have ranges.

So each value is made storable where it enters, by the pure functions here,
which the decoder (`indexer.decode`), the ``eth_call`` readers
(`indexer.fetch`, `indexer.price_feeds`) and the metadata fetcher
(`indexer.metadata.worker`) call. What can be kept is kept, changed as little
as needed (characters removed, text truncated at a documented cap, numbers
saturated); what cannot is NULL. Each function returns a `Clean`: the value and
the reasons it was changed, which the caller reports as a `Sanitised` record
(counted in ``qf_indexer_values_sanitised_total{field}``, logged once per field
and contract). No I/O here.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Generic, TypeVar

from qf_sentinel.qf.eth import from_hex

__all__ = [
    "BIGINT_MAX",
    "DECIMALS_MAX",
    "FEED_DECIMALS_MAX",
    "JSON_MAX_DEPTH",
    "JSON_MAX_INT_DIGITS",
    "SYMBOL_MAX_CHARS",
    "TEXT_MAX_CHARS",
    "TIME_MAX",
    "UINT256_MAX",
    "Clean",
    "Sanitised",
    "abi_bytes32",
    "abi_string",
    "abi_uint",
    "bounded",
    "json_document",
    "text",
    "timestamp",
]

T = TypeVar("T")

#: Longest text kept from a log (metadata pointers, profile names), in characters: at most 2,048
#: UTF-8 bytes, so a pointer fits a btree entry (2,704 bytes). A CID is under 100 characters.
TEXT_MAX_CHARS: Final = 512
#: Longest token symbol kept, in characters.
SYMBOL_MAX_CHARS: Final = 32
#: Deepest nesting of a metadata document stored as jsonb; deeper documents are stored as bytes.
JSON_MAX_DEPTH: Final = 64
#: A token's decimals is a uint8; beyond it the token's unit is unknown (NULL).
DECIMALS_MAX: Final = 255
#: ``qf.price_feeds.decimals`` holds 0..36 (a price with more decimals is not one).
FEED_DECIMALS_MAX: Final = 36
BIGINT_MAX: Final = 2**63 - 1
UINT256_MAX: Final = 2**256 - 1
#: The latest time Python's datetime (and so psycopg) represents; later block times saturate here.
TIME_MAX: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

#: Characters removed from text: NUL and the other controls (C0, DEL, C1), and the bidirectional
#: overrides and isolates that make a name display as another (``\u202e``).
_BIDI: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Most digits a metadata number keeps before the decimal point: ``numeric`` holds 131,072, but a reader
#: (Python's json, psycopg's jsonb loader among them) refuses integers of more than 4,300.
JSON_MAX_INT_DIGITS: Final = 4_300
#: ``numeric`` holds at most this many digits after the decimal point.
_NUMERIC_SCALE: Final = 16_383


@dataclass(frozen=True, slots=True)
class Clean(Generic[T]):
    """A value as it may be stored, and why it differs from what was read (empty: it does not)."""

    value: T
    reasons: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True, slots=True)
class Sanitised:
    """One stored value that differs from what was read.

    ``field`` (``table.column``) is the metric's label: a bounded set. ``subject``
    (the contract, token, block or CID it came from) is only logged.
    """

    field: str
    subject: str
    reasons: tuple[str, ...]


def _reasons(*found: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r for r in found if r))


# -- text ---------------------------------------------------------------------------------


def text(raw: bytes | str, *, max_chars: int = TEXT_MAX_CHARS) -> Clean[str]:
    """A single-line label (pointer, name, symbol) that PostgreSQL ``text`` and a terminal can hold.

    Invalid UTF-8 and lone surrogates become U+FFFD; NUL, other control
    characters and bidirectional overrides are removed; the rest is cut at
    ``max_chars``. Reasons: ``invalid_utf8``, ``surrogate``, ``nul``,
    ``control``, ``truncated``.
    """
    bad_utf8 = ""
    if isinstance(raw, bytes):
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value, bad_utf8 = raw.decode("utf-8", "replace"), "invalid_utf8"
    else:
        value = raw
    value, surrogate = _replace_surrogates(value)
    nul = "nul" if "\x00" in value else ""
    kept = "".join(c for c in value if not _is_control(c))
    control = "control" if len(kept) + value.count("\x00") < len(value) else ""
    truncated = "truncated" if len(kept) > max_chars else ""
    return Clean(kept[:max_chars], _reasons(bad_utf8, surrogate, nul, control, truncated))


def _is_control(c: str) -> bool:
    return c in _BIDI or unicodedata.category(c) == "Cc"


def _replace_surrogates(value: str) -> tuple[str, str]:
    if not any("\ud800" <= c <= "\udfff" for c in value):
        return value, ""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value), "surrogate"


def _storable_string(value: str) -> tuple[str, tuple[str, ...]]:
    """A JSON string jsonb accepts: lone surrogates as U+FFFD, NUL removed (other characters are content)."""
    value, surrogate = _replace_surrogates(value)
    if "\x00" in value:
        return value.replace("\x00", ""), _reasons(surrogate, "nul")
    return value, _reasons(surrogate)


# -- numbers ------------------------------------------------------------------------------


def bounded(value: int, low: int, high: int, *, saturate: bool) -> Clean[int | None]:
    """``value`` if within [low, high]; else the nearest bound (``saturate``) or None. Reason ``out_of_range``."""
    if low <= value <= high:
        return Clean(value)
    if saturate:
        return Clean(min(max(value, low), high), ("out_of_range",))
    return Clean(None, ("out_of_range",))


def timestamp(seconds: int) -> Clean[datetime]:
    """A block's unix time as a UTC datetime, saturated at `TIME_MAX` (a node may report any uint64)."""
    clamped = bounded(seconds, 0, int(TIME_MAX.timestamp()), saturate=True)
    assert clamped.value is not None
    return Clean(datetime.fromtimestamp(clamped.value, tz=UTC), clamped.reasons)


# -- eth_call answers ---------------------------------------------------------------------


def _answer_bytes(answer: object) -> tuple[bytes | None, str]:
    """The raw return data, or None with the reason (``no_answer``: reverted or empty; ``malformed``: not hex)."""
    if answer is None:
        return None, "no_answer"
    if not isinstance(answer, str) or answer[:2] not in ("0x", "0X"):
        return None, "malformed"
    try:
        raw = from_hex(answer)
    except ValueError:
        return None, "malformed"
    return (raw, "") if raw else (None, "no_answer")


def abi_uint(answer: object, *, max_value: int) -> Clean[int | None]:
    """An ``eth_call`` answer read as a uint (its first word, as Solidity decoders read it), if <= ``max_value``.

    ``answer`` is the hex string the node returned, or None when the call
    failed (a revert). Reasons: ``no_answer``, ``malformed`` (less than a
    word), ``out_of_range``.
    """
    raw, reason = _answer_bytes(answer)
    if raw is None:
        return Clean(None, (reason,))
    if len(raw) < 32:
        return Clean(None, ("malformed",))
    return bounded(int.from_bytes(raw[:32], "big"), 0, max_value, saturate=False)


def abi_bytes32(answer: object) -> Clean[bytes | None]:
    """An ``eth_call`` answer read as ``bytes32`` (its first word, as Solidity decoders read it).

    Reasons: ``no_answer`` (a revert, or nothing), ``malformed`` (not hex, or less than a word).
    """
    raw, reason = _answer_bytes(answer)
    if raw is None:
        return Clean(None, (reason,))
    if len(raw) < 32:
        return Clean(None, ("malformed",))
    return Clean(raw[:32])


def abi_string(answer: object, *, max_chars: int = SYMBOL_MAX_CHARS) -> Clean[str | None]:
    """An ``eth_call`` answer read as an ABI ``string``, or as ``bytes32`` text (old tokens: MKR, SAI).

    The string is made storable by `text`; an empty one is None, not a
    change. Reasons: ``no_answer``, ``malformed`` (an offset or length
    outside the answer), and those of `text`.
    """
    raw, reason = _answer_bytes(answer)
    if raw is None:
        return Clean(None, (reason,))
    if len(raw) == 32:  # bytes32, NUL-padded on the right
        payload = raw.rstrip(b"\x00")
    else:
        if len(raw) < 64:
            return Clean(None, ("malformed",))
        offset = int.from_bytes(raw[:32], "big")
        if offset > len(raw) - 32:
            return Clean(None, ("malformed",))
        length = int.from_bytes(raw[offset : offset + 32], "big")
        if length > len(raw) - offset - 32:
            return Clean(None, ("malformed",))
        payload = raw[offset + 32 : offset + 32 + length]
    cleaned = text(payload, max_chars=max_chars)
    return Clean(cleaned.value or None, cleaned.reasons)


# -- metadata documents -------------------------------------------------------------------


#: Stands for ``NaN``/``Infinity``, which Python's json reads and PostgreSQL's does not: not JSON.
_NOT_JSON: Final = object()


def _not_json(name: str) -> object:
    del name
    return _NOT_JSON


def json_document(content: bytes, *, max_depth: int = JSON_MAX_DEPTH) -> Clean[str | None]:
    """The JSON text to store as jsonb, or None: store the bytes (not JSON, or not storable as jsonb).

    JSON that jsonb would refuse is repaired where that loses little: NUL
    removed from strings and keys, lone surrogates replaced by U+FFFD, numbers
    ``numeric`` cannot hold (or of more than `JSON_MAX_INT_DIGITS` digits)
    replaced by null. A document nested deeper than ``max_depth`` is stored as
    bytes. Reasons: ``nul``, ``surrogate``, ``out_of_range``, ``too_deep``. A
    document that is not JSON at all (an image, plain text) is None with no
    reason: bytes are what it is.
    """
    document = _parse(content)
    if document is _NOT_JSON:
        return Clean(None)
    if document is _TOO_DEEP or _depth(document) > max_depth:
        return Clean(None, ("too_deep",))
    found: list[str] = []
    cleaned = _clean_json(document, found)
    if "not_json" in found:
        return Clean(None)
    if not found:
        return Clean(content.decode("utf-8"))
    return Clean(_dump(cleaned), _reasons(*found))


#: `_parse` could not read the document: too deep for Python's own parser.
_TOO_DEEP: Final = object()


def _parse(content: bytes) -> object:
    """The document with numbers as Decimal (exactly as written), `_NOT_JSON`, or `_TOO_DEEP`."""
    try:
        return json.loads(content.decode("utf-8"), parse_int=Decimal, parse_float=Decimal, parse_constant=_not_json)
    except RecursionError:
        return _TOO_DEEP
    except ValueError:  # not UTF-8 (UnicodeDecodeError is one), not JSON
        return _NOT_JSON


def _depth(document: object) -> int:
    deepest = 0
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _clean_json(node: object, found: list[str]) -> object:
    """The document with what jsonb refuses repaired; each repair's reason appended to ``found``."""
    if isinstance(node, list):
        return [_clean_json(item, found) for item in node]
    if isinstance(node, dict):
        out = {}
        for key, item in node.items():
            clean_key, reasons = _storable_string(key)
            found.extend(reasons)
            out[clean_key] = _clean_json(item, found)
        return out
    return _clean_scalar(node, found)


def _clean_scalar(node: object, found: list[str]) -> object:
    if isinstance(node, str):
        value, reasons = _storable_string(node)
        found.extend(reasons)
        return value
    if node is _NOT_JSON:
        found.append("not_json")
        return None
    if isinstance(node, Decimal) and not _numeric_holds(node):
        found.append("out_of_range")
        return None
    return node  # a number numeric holds, True, False, None


def _numeric_holds(number: Decimal) -> bool:
    """Whether jsonb's ``numeric`` holds this number as written, and its readers read it back."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: NaN and Infinity never get here
    if -exponent > _NUMERIC_SCALE:
        return False
    return number.is_zero() or number.adjusted() < JSON_MAX_INT_DIGITS


def _dump(node: object) -> str:
    """JSON text of a cleaned document (numbers exactly as read: json.dumps cannot write a Decimal)."""
    if isinstance(node, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_dump(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_dump(v) for v in node) + "]"
    if isinstance(node, Decimal):
        return str(node)
    return json.dumps(node, ensure_ascii=False)
