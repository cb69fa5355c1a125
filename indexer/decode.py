"""Allo v2 logs, as JSON-RPC returns them, turned into typed table rows.

Pure: no RPC, no database. The fetch layer hands in the log objects of
``eth_getLogs`` (hex strings); the store writes `DecodedLog.row` with COPY into
the table `EventSpec.table` of schema `SCHEMA` (``sql/002_events.sql``
declares one table per event, columns in the order given here).

Values are ready for psycopg: uint256 as ``int`` (``numeric(78,0)``), uint64
and uint8 as ``int``, addresses as 20 raw bytes, bytes32 and hashes as 32 raw
bytes, strings as ``str``. Hex input may be in any letter case. Strings are
whatever bytes the emitter chose: each is made storable by
`indexer.sanitise.text` (the columns changed are in `DecodedLog.sanitised`),
so no log a contract can emit fails its batch.

The data is sliced by hand rather than with ``eth_abi``: ``Allocated``, nearly
every log of a round, is five static words, and a generic decoder spends most
of its time on checksummed address strings we would only turn back into
bytes. The hand decoder is as strict as the ABI where it matters (topic count,
data length, address and small-integer padding, offsets inside the data) and
tests check it against ``eth_abi`` on real and generated logs.

A log with a known topic0 that does not fit raises `DecodeError`; an unknown
topic0 gives ``None``. ``removed`` is not looked at: ``eth_getLogs`` over a
block range returns canonical logs only, and reorgs are found by block hash
(``indexer.reorg``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from qf_sentinel.indexer.errors import DecodeError
from qf_sentinel.indexer.sanitise import text
from qf_sentinel.qf.chain.abi import ALLO_V2_EVENTS, topic0
from qf_sentinel.qf.eth import from_hex

__all__ = [
    "ALLOCATED_CONTEXT_COLUMNS",
    "COMMON_COLUMNS",
    "EMITTER_ROLES",
    "EVENTS",
    "EVENTS_BY_NAME",
    "EVENTS_BY_SIGNATURE",
    "SCHEMA",
    "TABLES",
    "TOPIC0S",
    "DecodedLog",
    "EventSpec",
    "Value",
    "decode_log",
    "pool_id_of",
    "strategy_of",
]

#: Schema of the event tables.
SCHEMA: Final = "qf"

#: Leading columns of every event table: where the log is, and who emitted it.
COMMON_COLUMNS: Final = (
    "chain_id",
    "block_number",
    "block_hash",
    "tx_hash",
    "tx_index",
    "log_index",
    "contract",
)

#: Trailing columns of ``qf.allocated`` that come from the transaction and block, not the
#: log: donor behaviour (sender, nonce as wallet age, gas habits, timing) is what the scorer reads.
ALLOCATED_CONTEXT_COLUMNS: Final = ("tx_from", "tx_nonce", "gas_price", "block_time")

#: A decoded value: what psycopg writes into the column.
Value = int | bytes | str | bool | None


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One Allo v2 event variant: its full signature, its table and its own columns, in table order.

    Real strategies overload event names (two ``Allocated`` forms carry a
    donation, a third a vote), so a log is matched by its full signature
    (topic0), never by name. Variants that carry the same fields share a table.
    ``context_columns`` follow ``columns`` in the table and are filled by the
    store from the transaction and block (only ``Allocated`` has them).
    """

    name: str
    table: str
    columns: tuple[str, ...]
    context_columns: tuple[str, ...] = ()
    #: Topics a log of this event has: topic0 plus one per indexed parameter.
    topic_count: int = 1
    #: The canonical signature, e.g. ``Allocated(address,uint256,address,address)``.
    signature: str = ""

    @property
    def table_columns(self) -> tuple[str, ...]:
        """Every column of the table, in order."""
        return COMMON_COLUMNS + self.columns + self.context_columns


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """One log as a row: its position on chain and ``values`` in `EventSpec.columns` order."""

    name: str
    table: str
    #: The variant's full signature (`EventSpec.signature`).
    signature: str
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    tx_index: int
    log_index: int
    contract: bytes
    values: tuple[Value, ...]
    #: Columns whose value differs from the log's bytes (`indexer.sanitise.text`), with the reasons.
    sanitised: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def row(self, chain_id: int) -> tuple[Value, ...]:
        """The row for COPY: `COMMON_COLUMNS` then ``values`` (context columns not included)."""
        return (
            chain_id,
            self.block_number,
            self.block_hash,
            self.tx_hash,
            self.tx_index,
            self.log_index,
            self.contract,
            *self.values,
        )


# -- reading ABI words --------------------------------------------------------------------

_ZERO12: Final = bytes(12)
_ZERO31: Final = bytes(31)
_ZERO24: Final = bytes(24)
_BIGINT_MAX: Final = 2**63 - 1
_INT_MAX: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class _Text:
    """Internal: a string's bytes as the log holds them; `decode_log` makes them storable text."""

    raw: bytes


class _Malformed(ValueError):
    """Internal: the reason a log does not fit; `decode_log` adds the context."""


def _need(data: bytes, size: int, *, exact: bool) -> None:
    if len(data) < size or (exact and len(data) != size):
        raise _Malformed(f"data has {len(data)} bytes, expected {'' if exact else 'at least '}{size}")


def _uint(data: bytes, pos: int) -> int:
    word = data[pos : pos + 32]
    if len(word) != 32:
        raise _Malformed(f"data ends inside the word at byte {pos}")
    return int.from_bytes(word, "big")


def _address(data: bytes, pos: int) -> bytes:
    word = data[pos : pos + 32]
    if len(word) != 32 or word[:12] != _ZERO12:
        raise _Malformed(f"word at byte {pos} is not an address")
    return word[12:]


def _word(data: bytes, pos: int) -> bytes:
    word = data[pos : pos + 32]
    if len(word) != 32:
        raise _Malformed(f"data ends inside the word at byte {pos}")
    return word


def _uint8(data: bytes, pos: int) -> int:
    word = data[pos : pos + 32]
    if len(word) != 32 or word[:31] != _ZERO31:
        raise _Malformed(f"word at byte {pos} is not a uint8")
    return word[31]


def _uint64(data: bytes, pos: int) -> int:
    word = data[pos : pos + 32]
    if len(word) != 32 or word[:24] != _ZERO24:
        raise _Malformed(f"word at byte {pos} is not a uint64")
    # The tables keep timestamps as bigint; beyond 2**63-1 is "never" to any reader, so saturate.
    return min(int.from_bytes(word, "big"), _BIGINT_MAX)


def _int96(data: bytes, pos: int) -> int:
    word = data[pos : pos + 32]
    if len(word) != 32:
        raise _Malformed(f"data ends inside the word at byte {pos}")
    value = int.from_bytes(word, "big", signed=True)
    if not -(2**95) <= value < 2**95:  # the upper 160 bits must extend the sign
        raise _Malformed(f"word at byte {pos} is not an int96")
    return value


def _dynamic(data: bytes, pos: int) -> bytes:
    """The length-prefixed ``bytes``/``string`` payload starting at ``pos``."""
    length = _uint(data, pos)
    end = pos + 32 + length
    if end > len(data):
        raise _Malformed(f"dynamic value at byte {pos} runs past the data ({length} bytes)")
    return data[pos + 32 : end]


def _text(raw: bytes) -> _Text:
    # A pointer is meant to be an IPFS CID and a name a name. Anyone can write any bytes into
    # them, and a bad one must not cost us the pool, the registration or the batch, so it is
    # kept, made storable by decode_log (indexer.sanitise.text).
    return _Text(raw)


def _pointer(data: bytes, at: int, base: int, head_words: int) -> int:
    """Where the offset stored at ``at`` points, for a tuple whose head of ``head_words`` words starts at ``base``.

    As eth_abi checks it: past the tuple's head and inside the data. An offset into the head makes one word
    read as two things, which is how bytes of another layout can pass for this one.
    """
    target = base + _uint(data, at)
    if target < base + 32 * head_words or target >= len(data):
        raise _Malformed(f"the offset at byte {at} points outside its tuple's tail")
    return target


def _metadata(data: bytes, pos: int) -> tuple[int, _Text]:
    """Allo's ``Metadata(uint256 protocol, string pointer)`` encoded at ``pos``."""
    protocol = _uint(data, pos)
    return protocol, _text(_dynamic(data, _pointer(data, pos + 32, pos, 2)))


def _topic_bytes(topic: str) -> bytes:
    raw = from_hex(topic)
    if len(raw) != 32 or topic[:2] not in ("0x", "0X"):
        raise _Malformed(f"topic {topic!r} is not 32 bytes of 0x-hex")
    return raw


def _topic_address(topic: str) -> bytes:
    raw = _topic_bytes(topic)
    if raw[:12] != _ZERO12:
        raise _Malformed(f"topic {topic} is not an address")
    return raw[12:]


def _topic_uint(topic: str) -> int:
    return int.from_bytes(_topic_bytes(topic), "big")


_NO_REGISTRATION: Final = (None, None, None, None)


def _registration(raw: bytes) -> tuple[bytes | None, int | None, int | None, _Text | None]:
    """(recipient_address, recipient_index, metadata protocol, pointer) from ``Registered.data``.

    Donation-voting strategies (and DirectGrantsLite, EasyRetroFunding) emit
    ``abi.encode(abi.encode(recipientId, recipientAddress, Metadata), recipientsCounter)``.
    The counter starts at 1 and the recipient's nibble in the status bitmap is
    ``counter - 1`` (``_getStatusRowColumn``; Gitcoin's indexer takes the same
    application id), which is what ``recipient_index`` holds. Other strategies
    put other things there, so a layout that does not fit gives NULLs and the
    raw bytes stay in the row.
    """
    try:
        counter = _uint(raw, 32)
        inner = _dynamic(raw, _pointer(raw, 0, 0, 2))
    except _Malformed:
        return _NO_REGISTRATION
    address, _index, protocol, pointer = _application(inner)
    if address is None or not 1 <= counter <= _BIGINT_MAX:
        return _NO_REGISTRATION
    return address, counter - 1, protocol, pointer


def _application(raw: bytes) -> tuple[bytes | None, int | None, int | None, _Text | None]:
    """The same four from ``abi.encode(recipientId, recipientAddress, Metadata)``, index unknown (None).

    ``UpdatedRegistration.data`` of the donation-voting family is this plain form.
    """
    try:
        _address(raw, 0)  # recipientId (or registry anchor): the topic already says who
        recipient_address = _address(raw, 32)
        protocol, pointer = _metadata(raw, _pointer(raw, 64, 0, 3))
    except _Malformed:
        return _NO_REGISTRATION
    return recipient_address, None, protocol, pointer


# -- one decoder per event: (topics, data) -> values in column order ----------------------

_Decoder = Callable[[Sequence[str], bytes], tuple[Value | _Text, ...]]


def _pool_created(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 4 * 32, exact=False)
    protocol, pointer = _metadata(data, _uint(data, 96))
    return (
        _topic_uint(topics[1]),
        _topic_bytes(topics[2]),
        _address(data, 0),
        _address(data, 32),
        _uint(data, 64),
        protocol,
        pointer,
    )


def _pool_funded(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 64, exact=True)
    return _topic_uint(topics[1]), _uint(data, 0), _uint(data, 32)


def _pool_metadata_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=False)
    protocol, pointer = _metadata(data, _uint(data, 0))
    return _topic_uint(topics[1]), protocol, pointer


def _registered(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 2 * 32, exact=False)
    raw = _dynamic(data, _uint(data, 0))
    return (_topic_address(topics[1]), *_registration(raw), raw, _address(data, 32))


def _updated_registration(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 3 * 32, exact=False)
    raw = _dynamic(data, _uint(data, 0))
    return (
        _topic_address(topics[1]),
        *_application(raw),
        raw,
        _address(data, 32),
        _uint8(data, 64),
    )


def _updated_registration_no_status(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 2 * 32, exact=False)
    raw = _dynamic(data, _uint(data, 0))
    return _topic_address(topics[1]), raw, _address(data, 32)


def _recipient_status_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 64, exact=True)
    return _topic_uint(topics[1]), _uint(data, 0), _address(data, 32)


def _timestamps_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 5 * 32, exact=True)
    return (
        _uint64(data, 0),
        _uint64(data, 32),
        _uint64(data, 64),
        _uint64(data, 96),
        _address(data, 128),
    )


def _allocated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 4 * 32, exact=True)
    return (
        _topic_address(topics[1]),
        _uint(data, 0),
        _address(data, 32),
        _address(data, 64),
        _address(data, 96),
    )


def _allocated_without_origin(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    """IStrategy's four-field form; ``origin`` (None here) is the transaction's sender, filled by the loop."""
    _need(data, 3 * 32, exact=True)
    return _topic_address(topics[1]), _uint(data, 0), _address(data, 32), _address(data, 64), None


def _allocation_vote(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 2 * 32, exact=True)
    return _topic_address(topics[1]), _uint8(data, 0), _address(data, 32)


def _direct_allocated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 4 * 32, exact=True)
    return _topic_bytes(topics[1]), _address(data, 0), _uint(data, 32), _address(data, 64), _address(data, 96)


def _window_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 3 * 32, exact=True)
    return _uint64(data, 0), _uint64(data, 32), _address(data, 64)


def _distribution_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 2 * 32, exact=False)
    protocol, pointer = _metadata(data, _uint(data, 32))
    return data[:32], protocol, pointer


def _distribution_metadata_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=False)
    protocol, pointer = _metadata(data, _uint(data, 0))
    return None, protocol, pointer


def _batch_payout_successful(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 0, exact=True)
    return (_topic_address(topics[1]),)


def _strategy_initialized(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 2 * 32, exact=False)
    return _uint(data, 0), _dynamic(data, _uint(data, 32)), None


def _version_initialized(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=True)
    return None, None, _uint8(data, 0)


def _pool_active(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=True)
    flag = _uint8(data, 0)
    if flag > 1:
        raise _Malformed(f"PoolActive flag is {flag}, not a bool")
    return (bool(flag),)


def _claimed(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 3 * 32, exact=True)
    return _topic_address(topics[1]), _address(data, 0), _uint(data, 32), _address(data, 64)


def _answer_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=True)
    current = int.from_bytes(_topic_bytes(topics[1]), "big", signed=True)
    return current, _topic_uint(topics[2]), _uint(data, 0)


# -- older and newer strategy versions (Gitcoin's indexer reads them; README: "Strategy kinds") --


def _allocated_with_data(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    """Allo v2.1 ``IBaseStrategy``: recipient and sender indexed; what ``_data`` holds is the strategy's."""
    _need(data, 2 * 32, exact=False)
    return _topic_address(topics[1]), _topic_address(topics[2]), _uint(data, 0), _dynamic(data, _uint(data, 32))


def _qv_votes(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    """QV strategies' ``Allocated(recipientId, votes, allocator)``: no NFT (None)."""
    _need(data, 2 * 32, exact=True)
    return _topic_address(topics[1]), _uint(data, 0), None, _address(data, 32)


def _qv_votes_with_nft(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 3 * 32, exact=True)
    return _topic_address(topics[1]), _uint(data, 0), _address(data, 32), _address(data, 64)


def _distributed_with_data(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=False)
    return _topic_address(topics[1]), _dynamic(data, _uint(data, 0))


def _distributed_flow_rate(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=True)
    return _topic_address(topics[1]), _int96(data, 0)


def _recipient_status_with_application(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 3 * 32, exact=True)
    return _topic_address(topics[1]), _uint(data, 0), _uint8(data, 32), _address(data, 64)


def _recipient_status(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    """``RecipientStatusUpdated(recipientId, status, sender)``: no application id (None)."""
    _need(data, 2 * 32, exact=True)
    return _topic_address(topics[1]), None, _uint8(data, 0), _address(data, 32)


def _registered_with_data(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=False)
    return _topic_address(topics[1]), _dynamic(data, _uint(data, 0))


def _updated_registration_with_application(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 4 * 32, exact=False)
    return (
        _topic_address(topics[1]),
        _uint(data, 0),
        _dynamic(data, _uint(data, 32)),
        _address(data, 64),
        _uint8(data, 96),
    )


def _profile_migrated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 2 * 32, exact=True)
    return _topic_bytes(topics[1]), _uint(data, 0), _topic_bytes(topics[2]), _uint(data, 32)


def _on_attested(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 3 * 32, exact=False)
    return (
        _topic_bytes(topics[1]),
        _topic_address(topics[2]),
        _uint(data, 0),
        _dynamic(data, _uint(data, 32)),
        _word(data, 64),
    )


# -- the Registry -------------------------------------------------------------------------


def _profile_created(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 5 * 32, exact=False)
    protocol, pointer = _metadata(data, _uint(data, 64))
    name = _text(_dynamic(data, _uint(data, 32)))
    return _topic_bytes(topics[1]), _uint(data, 0), name, protocol, pointer, _address(data, 96), _address(data, 128)


def _profile_name_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 2 * 32, exact=False)
    return _topic_bytes(topics[1]), _text(_dynamic(data, _uint(data, 0))), _address(data, 32)


def _profile_metadata_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=False)
    protocol, pointer = _metadata(data, _uint(data, 0))
    return _topic_bytes(topics[1]), protocol, pointer


def _profile_address_updated(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 32, exact=True)
    return _topic_bytes(topics[1]), _address(data, 0)


def _role_changed(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 0, exact=True)
    return _topic_bytes(topics[1]), _topic_address(topics[2]), _topic_address(topics[3])


def _distributed(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 3 * 32, exact=True)
    return _topic_address(topics[1]), _address(data, 0), _uint(data, 32), _address(data, 64)


def _funds_distributed(topics: Sequence[str], data: bytes) -> tuple[Value | _Text, ...]:
    _need(data, 64, exact=True)
    return _uint(data, 0), _address(data, 32), _topic_address(topics[1]), _topic_address(topics[2])


_REGISTRATION_COLUMNS: Final = (
    "recipient_id",
    "recipient_address",
    "recipient_index",
    "metadata_protocol",
    "metadata_pointer",
    "data",
    "sender",
)

_METADATA: Final = ("metadata_protocol", "metadata_pointer")
_ALLOCATED: Final = ("recipient_id", "amount", "token", "sender", "origin")
_DISTRIBUTION: Final = ("merkle_root", *_METADATA)
_INITIALIZED: Final = ("pool_id", "data", "version")
_ROLE: Final = ("role", "account", "sender")
_QV_VOTES: Final = ("recipient_id", "votes", "nft", "allocator")
_STATUS_SET: Final = ("recipient_id", "application_id", "status", "sender")


def _spec(
    signature: str, table: str, columns: tuple[str, ...], topic_count: int, *, context: tuple[str, ...] = ()
) -> EventSpec:
    return EventSpec(signature.partition("(")[0], table, columns, context, topic_count, signature)


#: Every variant the indexer reads: the Allo v2 core and Registry, the events of the
#: strategies in ``@allo-team/allo-v2-sdk``, every event Gitcoin's current indexer subscribes to
#: (``tests/fixtures/reference/grants_stack_indexer_events.txt``, checked against this list), and
#: the price feeds' answers.
_SPECS: Final[tuple[tuple[EventSpec, _Decoder], ...]] = (
    # -- the core
    (_spec(ALLO_V2_EVENTS["PoolCreated"], "pool_created",
           ("pool_id", "profile_id", "strategy", "token", "amount", *_METADATA), 3), _pool_created),
    (_spec(ALLO_V2_EVENTS["PoolFunded"], "pool_funded", ("pool_id", "amount", "fee"), 2), _pool_funded),
    (_spec(ALLO_V2_EVENTS["PoolMetadataUpdated"], "pool_metadata_updated", ("pool_id", *_METADATA), 2),
     _pool_metadata_updated),
    # -- strategies: applications and reviews
    (_spec(ALLO_V2_EVENTS["Registered"], "registered", _REGISTRATION_COLUMNS, 2), _registered),
    (_spec(ALLO_V2_EVENTS["UpdatedRegistration"], "updated_registration", (*_REGISTRATION_COLUMNS, "status"), 2),
     _updated_registration),
    (_spec("UpdatedRegistration(address,bytes,address)", "updated_registration_no_status",
           ("recipient_id", "data", "sender"), 2), _updated_registration_no_status),
    (_spec(ALLO_V2_EVENTS["RecipientStatusUpdated"], "recipient_status_updated",
           ("row_index", "full_row", "sender"), 2), _recipient_status_updated),
    (_spec(ALLO_V2_EVENTS["TimestampsUpdated"], "timestamps_updated",
           ("registration_start", "registration_end", "allocation_start", "allocation_end", "sender"), 1),
     _timestamps_updated),
    (_spec("TimestampsUpdated(uint64,uint64,address)", "window_updated", ("window_start", "window_end", "sender"), 1),
     _window_updated),
    # -- strategies: donations and votes
    (_spec(ALLO_V2_EVENTS["Allocated"], "allocated", _ALLOCATED, 2, context=ALLOCATED_CONTEXT_COLUMNS), _allocated),
    (_spec("Allocated(address,uint256,address,address)", "allocated", _ALLOCATED, 2,
           context=ALLOCATED_CONTEXT_COLUMNS), _allocated_without_origin),
    (_spec("Allocated(address,uint8,address)", "allocation_votes", ("recipient_id", "status", "sender"), 2),
     _allocation_vote),
    (_spec("DirectAllocated(bytes32,address,uint256,address,address)", "direct_allocated",
           ("profile_id", "profile_owner", "amount", "token", "sender"), 2), _direct_allocated),
    # -- strategies: distribution
    (_spec("DistributionUpdated(bytes32,(uint256,string))", "distribution_updated", _DISTRIBUTION, 1),
     _distribution_updated),
    (_spec("DistributionUpdated((uint256,string))", "distribution_updated", _DISTRIBUTION, 1),
     _distribution_metadata_updated),
    (_spec(ALLO_V2_EVENTS["Distributed"], "distributed", ("recipient_id", "recipient_address", "amount", "sender"), 2),
     _distributed),
    (_spec(ALLO_V2_EVENTS["FundsDistributed"], "funds_distributed", ("amount", "grantee", "token", "recipient_id"), 3),
     _funds_distributed),
    (_spec("BatchPayoutSuccessful(address)", "batch_payout_successful", ("sender",), 2), _batch_payout_successful),
    (_spec("Claimed(address,address,uint256,address)", "claimed",
           ("recipient_id", "recipient_address", "amount", "token"), 2), _claimed),
    # -- strategies: life cycle
    (_spec("Initialized(uint256,bytes)", "initialized", _INITIALIZED, 1), _strategy_initialized),
    (_spec("Initialized(uint8)", "initialized", _INITIALIZED, 1), _version_initialized),
    (_spec("PoolActive(bool)", "pool_active", ("active",), 1), _pool_active),
    # -- older and newer strategy versions: QV votes (NFT-gated too), Superfluid streams, per-recipient
    #    statuses, Allo v2.1's IBaseStrategy forms (README: "Strategy kinds")
    (_spec("Allocated(address,uint256,address)", "qv_votes", _QV_VOTES, 2), _qv_votes),
    (_spec("AllocatedWithNft(address,uint256,address,address)", "qv_votes", _QV_VOTES, 2), _qv_votes_with_nft),
    (_spec("Allocated(address,address,uint256,bytes)", "allocated_with_data",
           ("recipient_id", "sender", "amount", "data"), 3), _allocated_with_data),
    (_spec("Registered(address,bytes)", "registered_with_data", ("recipient_id", "data"), 2), _registered_with_data),
    (_spec("UpdatedRegistration(address,uint256,bytes,address,uint8)", "updated_registration_with_id",
           ("recipient_id", "application_id", "data", "sender", "status"), 2), _updated_registration_with_application),
    (_spec("RecipientStatusUpdated(address,uint256,uint8,address)", "recipient_status_set", _STATUS_SET, 2),
     _recipient_status_with_application),
    (_spec("RecipientStatusUpdated(address,uint8,address)", "recipient_status_set", _STATUS_SET, 2),
     _recipient_status),
    (_spec("Distributed(address,bytes)", "distributed_with_data", ("recipient_id", "data"), 2), _distributed_with_data),
    (_spec("Distributed(address,int96)", "distributed_flow_rate", ("sender", "flow_rate"), 2), _distributed_flow_rate),
    # -- the Allo v1 -> v2 profile migration and Gitcoin's attestation network (their own contracts)
    (_spec("ProfileMigrated(bytes32,uint256,bytes32,uint256)", "profile_migrated",
           ("allo_v1_project_id", "allo_v1_chain_id", "profile_id", "nonce"), 3), _profile_migrated),
    (_spec("OnAttested(bytes32,address,uint256,bytes,bytes32)", "on_attested",
           ("uid", "recipient", "fee", "data", "ref_uid"), 3), _on_attested),
    # -- the Registry (and AccessControl roles: profile members, pool managers)
    (_spec("ProfileCreated(bytes32,uint256,string,(uint256,string),address,address)", "profile_created",
           ("profile_id", "nonce", "name", *_METADATA, "owner", "anchor"), 2), _profile_created),
    (_spec("ProfileNameUpdated(bytes32,string,address)", "profile_name_updated", ("profile_id", "name", "anchor"), 2),
     _profile_name_updated),
    (_spec("ProfileMetadataUpdated(bytes32,(uint256,string))", "profile_metadata_updated",
           ("profile_id", *_METADATA), 2), _profile_metadata_updated),
    (_spec("ProfileOwnerUpdated(bytes32,address)", "profile_owner_updated", ("profile_id", "owner"), 2),
     _profile_address_updated),
    (_spec("ProfilePendingOwnerUpdated(bytes32,address)", "profile_pending_owner_updated",
           ("profile_id", "pending_owner"), 2), _profile_address_updated),
    (_spec("RoleGranted(bytes32,address,address)", "role_granted", _ROLE, 4), _role_changed),
    (_spec("RoleRevoked(bytes32,address,address)", "role_revoked", _ROLE, 4), _role_changed),
    # -- Chainlink-style price feeds (AggregatorV3 / OffchainAggregator)
    (_spec("AnswerUpdated(int256,uint256,uint256)", "answer_updated", ("answer", "round_id", "updated_at"), 3),
     _answer_updated),
)  # fmt: skip

_DECODERS: Final[dict[str, tuple[EventSpec, _Decoder]]] = {topic0(spec.signature): (spec, fn) for spec, fn in _SPECS}

#: topic0 (lowercase 0x-hex) -> event variant.
EVENTS: Final[dict[str, EventSpec]] = {topic: spec for topic, (spec, _fn) in _DECODERS.items()}

#: Full signature -> event variant.
EVENTS_BY_SIGNATURE: Final[dict[str, EventSpec]] = {spec.signature: spec for spec in EVENTS.values()}

#: Event name -> the variant the project's own contracts emit (``qf.chain.abi.ALLO_V2_EVENTS``).
EVENTS_BY_NAME: Final[dict[str, EventSpec]] = {name: EVENTS_BY_SIGNATURE[sig] for name, sig in ALLO_V2_EVENTS.items()}

#: Table -> the columns every variant stored there fills (variants sharing a table agree).
TABLES: Final[dict[str, tuple[str, ...]]] = {spec.table: spec.table_columns for spec in EVENTS.values()}

#: Every known topic0.
TOPIC0S: Final[tuple[str, ...]] = tuple(EVENTS)

#: Events only one kind of contract may emit: the core's pools, the Registry's profiles, the price feeds'
#: answers. Anyone can deploy a strategy (``createPoolWithCustomStrategy``) that emits any event, so the same
#: event from another contract is not the core's (or the Registry's) word: it is not stored (a forged
#: ``PoolCreated`` would name pools, strategies and tokens). Other events come from whichever contract is indexed.
EMITTER_ROLES: Final[dict[str, str]] = {
    "PoolCreated": "core",
    "PoolFunded": "core",
    "PoolMetadataUpdated": "core",
    "ProfileCreated": "registry",
    "ProfileNameUpdated": "registry",
    "ProfileMetadataUpdated": "registry",
    "ProfileOwnerUpdated": "registry",
    "ProfilePendingOwnerUpdated": "registry",
    "AnswerUpdated": "feed",
    # Gitcoin's own contracts (AlloV1ToV2ProfileMigration, GitcoinAttestationNetwork): decoded, stored only
    # from the contracts named for these roles (none yet: README "Not yet").
    "ProfileMigrated": "profile_migration",
    "OnAttested": "attestation_network",
}

# -- the public entry points --------------------------------------------------------------


def _hash(value: str, size: int, what: str) -> bytes:
    raw = from_hex(value)
    if len(raw) != size or value[:2] not in ("0x", "0X"):
        raise _Malformed(f"{what} {value!r} is not {size} bytes of 0x-hex")
    return raw


def decode_log(log: Mapping[str, Any]) -> DecodedLog | None:
    """Decode one ``eth_getLogs`` log object; ``None`` if its topic0 is not an Allo v2 event.

    Raises `DecodeError` when the topic is known but the log does not fit the
    event (other indexed parameters, bad lengths, bad padding) or the log
    object itself is malformed.
    """
    spec: EventSpec | None = None
    try:
        topics = log["topics"]
        if not topics:
            return None  # an anonymous event: not one of ours
        first = topics[0]
        entry = _DECODERS.get(first) or _DECODERS.get(first.lower())
        if entry is None:
            return None
        spec, decoder = entry
        if len(topics) != spec.topic_count:
            raise _Malformed(f"{len(topics)} topics, expected {spec.topic_count}")
        data_hex = log["data"]
        if data_hex[:2] not in ("0x", "0X"):
            raise _Malformed("data is not 0x-hex")
        raw_values = decoder(topics, from_hex(data_hex))
        values, sanitised = _storable(spec, raw_values)
        return DecodedLog(
            spec.name,
            spec.table,
            spec.signature,
            _position(log["blockNumber"], _BIGINT_MAX, "blockNumber"),
            _hash(log["blockHash"], 32, "blockHash"),
            _hash(log["transactionHash"], 32, "transactionHash"),
            _position(log["transactionIndex"], _INT_MAX, "transactionIndex"),
            _position(log["logIndex"], _INT_MAX, "logIndex"),
            _hash(log["address"], 20, "address"),
            values,
            sanitised,
        )
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        # _Malformed is a ValueError; the others come from a log object that is not JSON-RPC's.
        raise _decode_error(log, spec, exc) from None


def _storable(
    spec: EventSpec, raw_values: tuple[Value | _Text, ...]
) -> tuple[tuple[Value, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    """The values with each string made storable text, and the columns that had to change."""
    values: list[Value] = []
    sanitised = []
    for column, raw in zip(spec.columns, raw_values, strict=True):
        if isinstance(raw, _Text):
            clean = text(raw.raw)
            if clean.changed:
                sanitised.append((column, clean.reasons))
            values.append(clean.value)
        else:
            values.append(raw)
    return tuple(values), tuple(sanitised)


def _position(value: str, maximum: int, what: str) -> int:
    """A log's block number or index: the node's, not the emitter's, and within its column."""
    number = int(value, 16)
    if not 0 <= number <= maximum:
        raise _Malformed(f"{what} {value!r:.40} is outside its column")
    return number


def _decode_error(log: object, spec: EventSpec | None, exc: Exception) -> DecodeError:
    reason = str(exc) if isinstance(exc, _Malformed) else f"malformed log object ({type(exc).__name__}: {exc})"
    fields: Mapping[str, Any] = log if isinstance(log, Mapping) else {}
    tx_hash = fields.get("transactionHash")
    return DecodeError(
        reason,
        event=spec.name if spec else None,
        block_number=_int_or_none(fields.get("blockNumber")),
        tx_hash=tx_hash if isinstance(tx_hash, str) else None,
        log_index=_int_or_none(fields.get("logIndex")),
    )


def _int_or_none(value: object) -> int | None:
    try:
        return int(value, 16) if isinstance(value, str) else None
    except ValueError:
        return None


def strategy_of(decoded: DecodedLog) -> bytes | None:
    """The strategy contract a ``PoolCreated`` row announces; ``None`` for other events.

    Strategy events carry no pool id: the emitting contract is the strategy,
    so this is the key that joins them to their pool.
    """
    if decoded.name != "PoolCreated":
        return None
    strategy = decoded.values[2]
    assert isinstance(strategy, bytes)
    return strategy


def pool_id_of(decoded: DecodedLog) -> int | None:
    """The pool id of a core event (``PoolCreated``, ``PoolFunded``, ``PoolMetadataUpdated``)."""
    if decoded.name not in ("PoolCreated", "PoolFunded", "PoolMetadataUpdated"):
        return None
    pool_id = decoded.values[0]
    assert isinstance(pool_id, int)
    return pool_id
