"""Request field parsers accept the documented formats, name the field when they refuse, and raise nothing else."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.scorer import validation
from qf_sentinel.scorer.errors import ValidationError

ADDRESS = "0x" + "Ab" * 20


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ADDRESS, bytes.fromhex("ab" * 20)),
        ("0x" + "00" * 20, bytes(20)),
        ("0X" + "FF" * 20, b"\xff" * 20),
    ],
)
def test_address_accepts_hex_of_either_case(value: str, expected: bytes) -> None:
    assert validation.address(value, "donor") == expected


@pytest.mark.parametrize(
    "value",
    ["", "0x", "ab" * 20, "0x" + "ab" * 19, "0x" + "ab" * 21, "0x" + "zz" * 20, " 0x" + "ab" * 20,
     "0x" + "ab" * 20 + "\n", "0x" + "ab" * 19 + "٠١", None, 12, b"0x" + b"ab" * 20],
)  # fmt: skip
def test_address_rejects_anything_else(value: object) -> None:
    with pytest.raises(ValidationError) as error:
        validation.address(value, "contribution.donor")
    assert error.value.field == "contribution.donor"
    assert str(error.value).startswith("contribution.donor: ")


def test_recipient_id_is_an_address() -> None:
    assert validation.recipient_id(ADDRESS) == bytes.fromhex("ab" * 20)
    with pytest.raises(ValidationError, match=r"^recipient_id: "):
        validation.recipient_id("0x1234")


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("1", 1), ("007", 7), (str(2**256 - 1), 2**256 - 1)])
def test_pool_id_accepts_uint256_decimals(value: str, expected: int) -> None:
    assert validation.pool_id(value) == expected


@pytest.mark.parametrize("value", ["", "-1", "+1", "1.0", "1e3", "0x10", " 1", "1_000", str(2**256), "9" * 79, "١", 5])
def test_pool_id_rejects_anything_else(value: object) -> None:
    with pytest.raises(ValidationError, match=r"^pool_id: "):
        validation.pool_id(value)


@pytest.mark.parametrize(("value", "ok"), [(1, True), (31337, True), (2**64 - 1, True), (0, False), (-1, False),
                                          (2**64, False), (True, False), (1.0, False), ("1", False)])  # fmt: skip
def test_chain_id(value: object, ok: bool) -> None:
    if ok:
        assert validation.chain_id(value) == value
    else:
        with pytest.raises(ValidationError, match=r"^chain_id: "):
            validation.chain_id(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12.5", 12.5), ("1", 1.0), ("0.000001", 1e-6), (".5", 0.5), ("5.", 5.0), (str(2**256 - 1), float(2**256 - 1)),
     ("0." + "0" * 76 + "1", 1e-77)],
)  # fmt: skip
def test_amount_accepts_plain_positive_decimals(value: str, expected: float) -> None:
    assert validation.amount(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "0", "0.0", "-1", "+1", "1e5", "1e999", "1E-3", "inf", "Infinity", "nan", "NaN", "1,5", " 1", "1 ",
     "1.2.3", ".", "0x10", "9" * 79, "1." + "0" * 78, "١", 1.5, None, "9" * 78, str(2**256), str(2**256 - 1) + ".5"],
)  # fmt: skip
def test_amount_rejects_anything_else(value: object) -> None:
    with pytest.raises(ValidationError, match=r"^amount: "):
        validation.amount(value)


@pytest.mark.parametrize(("value", "ok"), [(1, True), (50, True), (0, False), (51, False), (-3, False), ("5", False)])
def test_k(value: object, ok: bool) -> None:
    if ok:
        assert validation.k(value) == value
    else:
        with pytest.raises(ValidationError, match=r"^k: "):
            validation.k(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("checkout_v2", True), ("a", True), ("x" * 64, True), ("", False), ("x" * 65, False), ("Upper", False),
     ("sp ace", False), ("é", False)],
)  # fmt: skip
def test_experiment_name(value: str, ok: bool) -> None:
    if ok:
        assert validation.experiment_name(value) == value
    else:
        with pytest.raises(ValidationError, match=r"^experiment: "):
            validation.experiment_name(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(ADDRESS, True), ("user 42", True), ("ü" * 256, True), ("", False), ("x" * 257, False), ("   ", False),
     ("a\nb", False), ("a\x00", False)],
)  # fmt: skip
def test_user_id(value: str, ok: bool) -> None:
    if ok:
        assert validation.user_id(value) == value
    else:
        with pytest.raises(ValidationError, match=r"^user_id: "):
            validation.user_id(value)


@pytest.mark.parametrize(("value", "ok"), [(0.0, True), (1.0, True), (0.25, True), (1, True), (-0.01, False),
                                          (1.01, False), (math.nan, False), (math.inf, False), (True, False),
                                          ("1", False)])  # fmt: skip
def test_reward(value: object, ok: bool) -> None:
    if ok:
        assert validation.reward(value) == value
    else:
        with pytest.raises(ValidationError, match=r"^reward: "):
            validation.reward(value)


def test_batch_size() -> None:
    assert validation.batch_size(100, 100) == 100
    for size in (0, 101):
        with pytest.raises(ValidationError, match=r"^contributions: must hold 1 to 100 items"):
            validation.batch_size(size, 100)


@pytest.mark.parametrize(("value", "expected"), [("", None), ("20250101T000000Z-abcdef01",) * 2])
def test_model_version_accepts_names_and_empty(value: str, expected: str | None) -> None:
    assert validation.model_version(value) == expected


@pytest.mark.parametrize("value", ["..", ".", "../x", "a/b", "/abs", ".staging-1", "a\\b", "x" * 129])
def test_model_version_rejects_paths(value: str) -> None:
    with pytest.raises(ValidationError, match=r"^version: "):
        validation.model_version(value)


PARSERS: list[Callable[[Any], object]] = [
    lambda v: validation.address(v, "donor"),
    validation.recipient_id,
    validation.pool_id,
    validation.chain_id,
    validation.amount,
    validation.k,
    validation.experiment_name,
    validation.user_id,
    validation.reward,
    lambda v: validation.batch_size(v, 100),
    validation.model_version,
]
ANYTHING = st.one_of(
    st.text(), st.text(alphabet="0123456789.eE+-xX abcdefABCDEF"), st.integers(), st.floats(), st.none(),
    st.booleans(), st.binary(), st.lists(st.integers(), max_size=3), st.decimals(allow_nan=True),
)  # fmt: skip


@given(value=ANYTHING, parser=st.sampled_from(PARSERS))
def test_parsers_raise_only_validation_errors(value: object, parser: Callable[[Any], object]) -> None:
    """Whatever a client sends, a parser returns a value or raises ValidationError: never anything else."""
    error: ValidationError | None = None
    try:
        parser(value)
    except ValidationError as exc:
        error = exc
    if error is not None:
        assert error.field
        assert str(error).startswith(f"{error.field}: ")


@given(st.binary(min_size=20, max_size=20), st.booleans())
def test_address_round_trip(raw: bytes, upper: bool) -> None:
    text = "0x" + (raw.hex().upper() if upper else raw.hex())
    assert validation.address(text, "donor") == raw


@given(st.decimals(min_value=Decimal("1e-30"), max_value=Decimal("1e40"), allow_nan=False, places=12))
def test_positive_decimals_parse_to_their_float(value: Decimal) -> None:
    """Any positive amount written as a plain decimal (no exponent) parses to the nearest float."""
    text = format(value, "f")
    if Decimal(text) <= 0:
        return
    assert validation.amount(text) == float(text)


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "tab\there", "line\n", "\x7f", "\x9b", "bell\x07"])
def test_label_refuses_control_characters(text: str) -> None:
    """A NUL cannot be stored in text or jsonb (it once cost other clients their audit rows); no control character
    is let through."""
    with pytest.raises(ValidationError, match=r"^contribution\.context\['k'\]: holds the control character U\+"):
        validation.label(text, "contribution.context['k']", 256)


@pytest.mark.parametrize("text", ["", "plain", "ünïcødé ✓", "emoji 🎉", "quote \" and \\ backslash", "x" * 256])
def test_label_keeps_printable_text_as_sent(text: str) -> None:
    assert validation.label(text, "k", 256) == text


def test_label_is_bounded() -> None:
    with pytest.raises(ValidationError, match="at most 256 characters, got 257"):
        validation.label("x" * 257, "k", 256)
