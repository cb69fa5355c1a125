"""Block-range planning for eth_getLogs: providers' refusals read right, and ranges that cover a span once."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qf_sentinel.indexer.errors import RangeRefused
from qf_sentinel.indexer.ranges import (
    BlockRange,
    RangeHint,
    RangePlanner,
    RangePolicy,
    is_range_error,
    parse_range_hint,
)
from qf_sentinel.qf.errors import ConfigError

# -- providers' messages ------------------------------------------------------------------

ALCHEMY = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit"
    " on the response size, or you can request any block range with a cap of 10K logs in the response."
    " Based on your parameters, this block range should work: [0x0, 0x1f3]"
)


@pytest.mark.parametrize(
    ("message", "code", "span", "hint"),
    [
        (ALCHEMY, -32602, (0, 1999), RangeHint(suggested_to=0x1F3)),
        (
            "query returned more than 10000 results. Try with this block range [0x1, 0x2AF].",
            -32005,
            (1, 5000),
            RangeHint(suggested_to=0x2AF),
        ),
        ("block range too large", -32000, (0, 9999), RangeHint()),
        ("exceed maximum block range: 5000", -32000, (0, 9999), RangeHint(max_blocks=5000)),
        ("eth_getLogs is limited to a 10,000 range", -32614, (0, 19999), RangeHint(max_blocks=10_000)),
        (
            "eth_getLogs and eth_newFilter are limited to a 10,000 blocks range",
            -32614,
            (0, 19999),
            RangeHint(max_blocks=10_000),
        ),
        ("block range is too wide", -32600, (0, 9999), RangeHint()),
        ("range too large, max 1000 blocks", -32000, (0, 9999), RangeHint(max_blocks=1000)),
        ("query timeout exceeded", -32000, (0, 9999), RangeHint()),
        ("Query returned more than 10000 results", -32005, (0, 9999), RangeHint()),
        ("response size should not greater than 10000000 bytes", -32000, (0, 9999), RangeHint()),
        ("limit exceeded", -32005, (0, 9999), RangeHint()),
        ("too many blocks", None, (0, 9999), RangeHint()),
        (
            "requested too many blocks from 0 to 20000, maximum is set to 2048",
            -32000,
            (0, 20000),
            RangeHint(max_blocks=2048),
        ),
        ("Logs matched by query exceeds limit of 10000", -32005, (0, 9999), RangeHint()),
    ],
)
def test_provider_range_refusals_are_recognised(
    message: str, code: int | None, span: tuple[int, int], hint: RangeHint
) -> None:
    """Each provider's way of refusing an eth_getLogs range gives a hint (with a range or limit if stated)."""
    assert parse_range_hint(message, code, *span) == hint
    assert is_range_error(message, code)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("daily request count exceeded, request rate limited", -32005),
        ("project ID request rate exceeded", -32005),
        ("Your app has exceeded its compute units per second capacity", 429),
        ("Too Many Requests", -32029),
        ("rate limit exceeded", -32005),
        ("execution reverted", 3),
        ("invalid argument 0: hex string without 0x prefix", -32602),
        ("header not found", -32000),
        ("missing trie node", -32000),
    ],
)
def test_other_errors_are_not_range_refusals(message: str, code: int) -> None:
    """Rate limits and other faults are not refusals: shrinking the range would not help."""
    assert parse_range_hint(message, code, 0, 1000) is None
    assert not is_range_error(message, code)


def test_bare_limit_exceeded_code_is_a_refusal() -> None:
    """EIP-1474's -32005 "limit exceeded" with an unknown wording still means ask for less."""
    assert parse_range_hint("request exceeds the node's configured bounds", -32005, 0, 10) == RangeHint()
    assert parse_range_hint("request exceeds the node's configured bounds", -32000, 0, 10) is None


@pytest.mark.parametrize(
    ("span", "suggested"),
    [((0, 0x1F3), None), ((0x200, 0x400), None), ((0, 0x1F4), 0x1F3)],
)
def test_a_suggestion_is_kept_only_if_it_shrinks_the_range(span: tuple[int, int], suggested: int | None) -> None:
    """A suggested range that does not end inside the refused one is no help: dropped."""
    hint = parse_range_hint(ALCHEMY, -32602, *span)
    assert hint is not None
    assert hint.suggested_to == suggested


def test_hint_from_a_refused_range_error() -> None:
    """A RangeRefused raised by the fetch layer carries its hint; it is retriable only above one block."""
    err = RangeRefused("too big", from_block=5, to_block=9, suggested_to=6, max_blocks=3)
    assert RangeHint.of(err) == RangeHint(6, 3)
    assert err.retriable
    assert not RangeRefused("too big", from_block=5, to_block=5).retriable


# -- the planner --------------------------------------------------------------------------


def test_planner_starts_at_the_initial_size_and_stops_at_the_head() -> None:
    """2,000 blocks by default, clipped to the safe head; nothing past it."""
    planner = RangePlanner.start()
    assert planner.propose(100, 10_000) == BlockRange(100, 2099)
    assert planner.propose(9_500, 10_000) == BlockRange(9_500, 10_000)
    assert planner.propose(10_001, 10_000) is None
    assert BlockRange(3, 7).blocks == 5


def test_planner_grows_after_consecutive_successes_up_to_the_max() -> None:
    """Every grow_after successes the span doubles, never beyond max_blocks."""
    planner = RangePlanner.start(RangePolicy(initial_blocks=100, max_blocks=350, grow_after=2))
    sizes = []
    for _ in range(8):
        planner = planner.succeeded(BlockRange(0, 0))
        sizes.append(planner.size)
    assert sizes == [100, 200, 200, 350, 350, 350, 350, 350]


def test_refusal_halves_without_a_hint_and_resets_growth() -> None:
    """No hint: half the refused span; the success count starts again."""
    planner = RangePlanner.start(RangePolicy(initial_blocks=1000, grow_after=2)).succeeded(BlockRange(0, 999))
    planner = planner.refused(BlockRange(0, 999))
    assert (planner.size, planner.successes) == (500, 0)
    # Near the head the refused span may be shorter than the planned size: half of what was refused.
    assert planner.refused(BlockRange(0, 9)).size == 5


def test_refusal_follows_the_providers_suggestion() -> None:
    """A suggested end block sets the next span, even when it is more than half."""
    planner = RangePlanner.start().refused(BlockRange(0, 1999), RangeHint(suggested_to=1499))
    assert planner.propose(0, 10_000) == BlockRange(0, 1499)
    planner = RangePlanner.start().refused(BlockRange(0, 1999), RangeHint(suggested_to=0x1F3))
    assert planner.propose(0, 10_000) == BlockRange(0, 0x1F3)


def test_stated_limit_becomes_the_ceiling() -> None:
    """A provider's stated maximum caps the span from then on, growth included."""
    policy = RangePolicy(initial_blocks=2000, max_blocks=100_000, grow_after=1)
    planner = RangePlanner.start(policy).refused(BlockRange(0, 1999), RangeHint(max_blocks=500))
    assert planner.size == 500
    for _ in range(5):
        planner = planner.succeeded(BlockRange(0, 0))
    assert planner.size == 500
    # A limit above the refused span says the span was not the problem: halve, keep the limit.
    planner = RangePlanner.start(policy).refused(BlockRange(0, 1999), RangeHint(max_blocks=5000))
    assert (planner.size, planner.ceiling) == (1000, 5000)


def test_a_refused_single_block_is_a_hard_error() -> None:
    """Nothing smaller than one block can be asked for: RangeRefused, not retriable."""
    with pytest.raises(RangeRefused) as caught:
        RangePlanner.start().refused(BlockRange(7, 7), RangeHint(suggested_to=7))
    assert (caught.value.from_block, caught.value.to_block, caught.value.retriable) == (7, 7, False)


@pytest.mark.parametrize(
    "policy",
    [
        {"initial_blocks": 0},
        {"initial_blocks": 10, "max_blocks": 5},
        {"grow_after": 0},
        {"grow_factor": 1},
    ],
)
def test_bad_policies_are_refused(policy: dict[str, int]) -> None:
    """A policy that could stall or never grow is a configuration error."""
    with pytest.raises(ConfigError):
        RangePolicy(**policy)


@st.composite
def hints(draw: st.DrawFn, refused: BlockRange) -> RangeHint | None:
    """What a provider might say about ``refused``, including useless suggestions."""
    kind = draw(st.sampled_from(["none", "empty", "suggested", "max", "both"]))
    if kind == "none":
        return None
    near = st.integers(refused.from_block - 3, refused.to_block + 3)
    suggested = draw(near) if kind in ("suggested", "both") else None
    limit = draw(st.integers(1, 3 * refused.blocks)) if kind in ("max", "both") else None
    return RangeHint(suggested, limit)


@settings(max_examples=300)
@given(
    data=st.data(),
    initial=st.integers(1, 300),
    max_extra=st.integers(0, 1000),
    grow_after=st.integers(1, 4),
    start=st.integers(0, 10**7),
    length=st.integers(0, 400),
)
def test_proposals_cover_the_span_exactly_once(
    data: st.DataObject, initial: int, max_extra: int, grow_after: int, start: int, length: int
) -> None:
    """Whatever the node refuses and hints, fetched ranges tile [start, head] with no gap or overlap,
    spans stay within [1, max], and the next proposal after a hint respects it."""
    policy = RangePolicy(initial_blocks=initial, max_blocks=initial + max_extra, grow_after=grow_after)
    planner = RangePlanner.start(policy)
    head = start + length
    next_block = start
    fetched: list[BlockRange] = []
    limit = policy.max_blocks
    steps = 0
    while (span := planner.propose(next_block, head)) is not None:
        steps += 1
        assert span.from_block == next_block
        assert span.to_block <= head
        assert 1 <= span.blocks <= planner.size <= limit
        if span.blocks > 1 and data.draw(st.booleans(), label="refuse"):
            hint = data.draw(hints(span), label="hint")
            planner = planner.refused(span, hint)
            following = planner.propose(next_block, head)
            assert following is not None
            assert following.blocks < span.blocks
            if hint is not None and hint.suggested_to is not None and next_block <= hint.suggested_to < span.to_block:
                assert following.to_block <= hint.suggested_to
            if hint is not None and hint.max_blocks is not None:
                limit = min(limit, hint.max_blocks)
                assert following.blocks <= hint.max_blocks
        else:
            fetched.append(span)
            planner = planner.succeeded(span)
            next_block = span.to_block + 1
            if steps < 20:  # the safe head moves on while we fetch
                head += data.draw(st.integers(0, 30), label="new blocks")
    assert next_block == head + 1
    assert fetched[0].from_block == start
    assert all(b.from_block == a.to_block + 1 for a, b in pairwise(fetched))
    assert fetched[-1].to_block == head


@given(st.integers(1, 10**5), st.integers(0, 10**6))
def test_refusals_alone_reach_a_single_block_and_stop(size: int, start: int) -> None:
    """A node that refuses everything ends in RangeRefused after a bounded number of halvings."""
    planner = RangePlanner.start(RangePolicy(initial_blocks=size, max_blocks=10**5))
    for _ in range(size.bit_length() + 1):
        span = planner.propose(start, start + 10**6)
        assert span is not None
        if span.blocks == 1:
            with pytest.raises(RangeRefused):
                planner.refused(span)
            return
        planner = planner.refused(span)
    pytest.fail("the planner kept proposing more than one block")
