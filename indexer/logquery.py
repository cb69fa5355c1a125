"""How one range's logs are asked for: by address list, or by topic0 and filtered here.

``indexer.fetch`` asks ``eth_getLogs`` for the logs of the core, the Registry
and every known strategy. With thousands of strategies that address list
outgrows what providers accept (many cap it, some at a few hundred or a
thousand entries) and what they answer quickly, so above ``address_limit``
addresses the query names the decoder's topic0s (:data:`indexer.decode.TOPIC0S`)
instead and the logs of other contracts are dropped here.

The two paths store the same rows. What differs: the address path also sees
logs of indexed contracts whose topic0 the decoder does not know (counted in
``qf.unknown_topics``); the topic path does not, but it downloads every log
with a known topic0 from any contract on the chain (``RoleGranted`` is emitted
by every AccessControl contract), and drops those.

Pure functions over plain data; the requests are made by ``indexer.fetch``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from qf_sentinel.indexer.answers import TopicFilter
from qf_sentinel.indexer.decode import TOPIC0S
from qf_sentinel.qf.eth import from_hex

#: The default most addresses one eth_getLogs names (``QF_LOG_ADDRESS_LIMIT``).
DEFAULT_ADDRESS_LIMIT = 1000

Mode = Literal["addresses", "topics"]
RawLog = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogQuery:
    """The filter of one range's eth_getLogs: ``addresses`` or ``topics``, the other None."""

    mode: Mode
    addresses: tuple[str, ...] | None
    topics: TopicFilter | None


def plan_log_query(addresses: Collection[str], address_limit: int) -> LogQuery:
    """Name the addresses when there are at most ``address_limit`` of them, else the known topic0s (0: always)."""
    if len(addresses) <= address_limit:
        return LogQuery("addresses", tuple(addresses), None)
    return LogQuery("topics", None, (TOPIC0S,))


def split_known(raw: Iterable[RawLog], known: Collection[bytes]) -> tuple[list[RawLog], list[RawLog]]:
    """The logs emitted by ``known`` contracts, and the others (in the order given)."""
    mine: list[RawLog] = []
    others: list[RawLog] = []
    for entry in raw:
        (mine if from_hex(entry["address"]) in known else others).append(entry)
    return mine, others


def logs_of_new(others: Iterable[RawLog], created: Mapping[bytes, int]) -> tuple[list[RawLog], int]:
    """Of logs from unknown contracts, those of strategies created in the range, and how many were dropped.

    ``created`` maps a new strategy to its creation block: its logs are kept
    from that block on, exactly what the address path fetches for it.
    """
    kept: list[RawLog] = []
    dropped = 0
    for entry in others:
        block = created.get(from_hex(entry["address"]))
        if block is not None and int(entry["blockNumber"], 16) >= block:
            kept.append(entry)
        else:
            dropped += 1
    return kept, dropped
