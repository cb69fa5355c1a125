"""qf.tokens: a presented token finds exactly its owner among the configured ones, every one compared."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

import qf_sentinel.qf.tokens
from qf_sentinel.qf.tokens import lookup

TOKENS = [(b"alpha-token", "alice"), (b"beta-token", "bob"), (b"", "nobody")]


def test_finds_the_owner_of_a_configured_token() -> None:
    assert lookup(b"alpha-token", TOKENS) == "alice"
    assert lookup(b"beta-token", TOKENS) == "bob"


@pytest.mark.parametrize("presented", [b"alpha", b"alpha-token-and-more", b"ALPHA-TOKEN", b"gamma"])
def test_an_unknown_token_finds_nobody(presented: bytes) -> None:
    assert lookup(presented, TOKENS[:2]) is None


def test_nothing_configured_finds_nobody() -> None:
    assert lookup(b"anything", []) is None


def test_a_token_configured_twice_gives_the_first_owner() -> None:
    assert lookup(b"same", [(b"same", "first"), (b"same", "second")]) == "first"


def test_every_token_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the time taken does not tell which token matched."""
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(qf_sentinel.qf.tokens.hmac, "compare_digest", spy)
    assert lookup(b"alpha-token", TOKENS) == "alice"
    assert compared == [token for token, _ in TOKENS]


tokens = st.binary(min_size=1, max_size=40)


@given(table=st.dictionaries(tokens, st.integers(), max_size=12), presented=tokens)
def test_finds_exactly_the_configured_tokens(table: dict[bytes, int], presented: bytes) -> None:
    entries = list(table.items())
    for token, who in entries:
        assert lookup(token, entries) == who
    assert lookup(presented, entries) == table.get(presented)
