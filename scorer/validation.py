"""Parsers of request fields: each turns a raw value into its canonical form or raises ValidationError.

The server runs every field of every request through one of these before
anything else sees it, so the engine only ever gets canonical values: 20-byte
addresses, integer pool and chain ids, finite positive amounts. Each parser
accepts any object (a field may hold anything a client sends) and raises
nothing but :class:`scorer.errors.ValidationError`, whose ``field`` is the name
the API uses; the server maps it to ``INVALID_ARGUMENT``.

Formats follow ``proto/qf/scorer/v1/scorer.proto``: addresses and recipient
ids are ``0x`` + 40 hex digits (either case, no checksum check), pool ids and
amounts are plain decimal strings (no sign, exponent or whitespace).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import PurePosixPath

from qf_sentinel.qf.eth import from_hex
from qf_sentinel.scorer.errors import ValidationError

MAX_UINT256 = 2**256 - 1
MAX_UINT64 = 2**64 - 1
#: Digits of the largest uint256: no amount or pool id needs more.
MAX_DIGITS = 78
MAX_K = 50
MAX_USER_ID_CHARS = 256

_HEX_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")
_DECIMAL_INTEGER = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_EXPERIMENT = re.compile(r"[a-z0-9_-]{1,64}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: C0 and C1 control characters (Unicode category Cc): NUL cannot be stored in text or jsonb at all, and the
#: rest have no place in a label a person reads in the audit log.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN_CHARS = 48


def address(value: object, field: str) -> bytes:
    """A 20-byte address from ``0x`` + 40 hex digits."""
    text = _string(value, field)
    if not _HEX_ADDRESS.fullmatch(text):
        raise ValidationError(field, f"expected 0x followed by 40 hex digits, got {_show(text)}")
    return from_hex(text)


def recipient_id(value: object, field: str = "recipient_id") -> bytes:
    """An Allo v2 recipient id (an address, 20 bytes)."""
    return address(value, field)


def pool_id(value: object, field: str = "pool_id") -> int:
    """An Allo pool id: a decimal string of a uint256."""
    text = _string(value, field)
    if len(text) > MAX_DIGITS or not _DECIMAL_INTEGER.fullmatch(text):
        raise ValidationError(field, f"expected a decimal integer of at most {MAX_DIGITS} digits, got {_show(text)}")
    number = int(text)
    if number > MAX_UINT256:
        raise ValidationError(field, "exceeds the largest uint256")
    return number


def chain_id(value: object, field: str = "chain_id") -> int:
    """An EIP-155 chain id: a positive uint64."""
    number = _integer(value, field)
    if not 0 < number <= MAX_UINT64:
        raise ValidationError(field, f"must be a positive 64-bit chain id, got {number}")
    return number


def amount(value: object, field: str = "amount") -> float:
    """A contribution amount in token units: a plain decimal string > 0 ("12.5"), as a float.

    No sign, exponent, whitespace, ``inf`` or ``nan``, at most
    :data:`MAX_DIGITS` digits and no more than the largest uint256: amounts are
    decimal renderings of uint256 base units, and anything else is a client bug
    or an attempt to overflow.
    """
    text = _string(value, field)
    if len(text) > MAX_DIGITS + 1 or not _DECIMAL.fullmatch(text):
        raise ValidationError(field, f"expected a plain decimal number such as '12.5', got {_show(text)}")
    if len(text.replace(".", "")) > MAX_DIGITS:
        raise ValidationError(field, f"has more than {MAX_DIGITS} digits")
    if Decimal(text) > MAX_UINT256:
        raise ValidationError(field, "exceeds the largest uint256")
    number = float(text)
    if not (math.isfinite(number) and number > 0):
        raise ValidationError(field, f"must be greater than zero, got {_show(text)}")
    return number


def k(value: object, field: str = "k") -> int:
    """How many recommendations: 1 to :data:`MAX_K`."""
    number = _integer(value, field)
    if not 1 <= number <= MAX_K:
        raise ValidationError(field, f"must be between 1 and {MAX_K}, got {number}")
    return number


def experiment_name(value: object, field: str = "experiment") -> str:
    """An experiment name: 1 to 64 of ``a-z``, ``0-9``, ``_`` and ``-``."""
    text = _string(value, field)
    if not _EXPERIMENT.fullmatch(text):
        raise ValidationError(field, f"expected 1 to 64 characters of a-z, 0-9, '_' or '-', got {_show(text)}")
    return text


def user_id(value: object, field: str = "user_id") -> str:
    """A stable user id: 1 to 256 printable characters, not only spaces."""
    text = _string(value, field)
    if not 1 <= len(text) <= MAX_USER_ID_CHARS:
        raise ValidationError(field, f"must be 1 to {MAX_USER_ID_CHARS} characters long, got {len(text)}")
    if not text.isprintable() or not text.strip():
        raise ValidationError(field, "must be printable characters, not only spaces")
    return text


def label(value: object, field: str, max_chars: int) -> str:
    """A free-form client string (a context key or value): at most ``max_chars`` characters, no control characters.

    Control characters are refused rather than stripped: the audit log must hold
    what the client sent, and PostgreSQL cannot store a NUL in text or jsonb.
    """
    text = _string(value, field)
    if len(text) > max_chars:
        raise ValidationError(field, f"is at most {max_chars} characters, got {len(text)}")
    bad = _CONTROL.search(text)
    if bad is not None:
        raise ValidationError(field, f"holds the control character U+{ord(bad.group()):04X} at {bad.start()}")
    return text


def reward(value: object, field: str = "reward") -> float:
    """An outcome reward: a finite number from 0 to 1 (1 = a conversion)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, f"expected a number, got {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValidationError(field, f"must be between 0 and 1, got {number}")
    return number


def batch_size(size: object, max_batch: int, field: str = "contributions") -> int:
    """The number of items of a batch call: 1 to ``max_batch``."""
    number = _integer(size, field)
    if not 1 <= number <= max_batch:
        raise ValidationError(field, f"must hold 1 to {max_batch} items, got {number}")
    return number


def model_version(value: object, field: str = "version") -> str | None:
    """A model version directory name, or None for an empty string (the LATEST pointer)."""
    text = _string(value, field)
    if not text:
        return None
    if not _VERSION.fullmatch(text) or PurePosixPath(text).name != text:
        raise ValidationError(field, f"expected a version directory name, got {_show(text)}")
    return text


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a string, got {type(value).__name__}")
    return value


def _integer(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"expected an integer, got {type(value).__name__}")
    return value


def _show(text: str) -> str:
    """The value for an error message: quoted, escaped, cut short (clients can send megabytes)."""
    shown = repr(text[:_SHOWN_CHARS])
    return shown + f"... ({len(text)} characters)" if len(text) > _SHOWN_CHARS else shown
