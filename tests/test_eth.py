"""0x hex text and bytes, converted once at the edges (qf.eth)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.eth import address, from_hex, hash32, to_hex


@given(st.binary(max_size=64))
def test_hex_round_trips(data: bytes) -> None:
    assert from_hex(to_hex(data)) == data
    assert to_hex(data) == "0x" + data.hex()


def test_fixed_sizes_are_checked() -> None:
    assert address("0x" + "Ab" * 20) == bytes.fromhex("ab" * 20)
    assert hash32("0x" + "01" * 32) == b"\x01" * 32
    for bad, parse in (("0x" + "ab" * 19, address), ("0x" + "zz" * 20, address), ("0x" + "01" * 20, hash32)):
        with pytest.raises(ValueError, match="0x and"):
            parse(bad)
