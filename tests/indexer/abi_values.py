"""Hypothesis strategies of valid ABI values, for encoding logs with eth_abi."""

from __future__ import annotations

import eth_abi
from hypothesis import strategies as st

from tests.indexer.reference import registration_data

_ADDRESS = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
#: Text stored as it is (hostile text, with NUL, controls or invalid UTF-8, is test_sanitise.py's).
_TEXT = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\u061c\u200e\u200f\u202a\u202b\u202c\u202d"
                  "\u202e\u2066\u2067\u2068\u2069"),
    max_size=80,
)  # fmt: skip
_METADATA = st.tuples(st.integers(0, 2**256 - 1), _TEXT)
_REGISTRATION = st.one_of(
    st.builds(registration_data, _ADDRESS, _ADDRESS, _METADATA, st.integers(0, 2**256 - 2)),
    st.builds(  # the plain application form (UpdatedRegistration's)
        lambda a, b, m: eth_abi.encode(["address", "address", "(uint256,string)"], [a, b, m]),
        _ADDRESS, _ADDRESS, _METADATA,
    ),
    st.binary(max_size=300),
)
#: ABI type -> valid values of it.
ABI_VALUES = {
    "uint256": st.integers(0, 2**256 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "uint8": st.integers(0, 255),
    "address": _ADDRESS,
    "bytes32": st.binary(min_size=32, max_size=32),
    "(uint256,string)": _METADATA,
    "bytes": _REGISTRATION,
    "bool": st.booleans(),
    "int256": st.integers(-(2**255), 2**255 - 1),
    "int96": st.integers(-(2**95), 2**95 - 1),
    "string": _TEXT,
}
