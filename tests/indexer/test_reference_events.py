"""Gitcoin's indexer and ours read the same events and know the same strategies.

``tests/fixtures/reference/`` pins Gitcoin's lists, each file naming the
repository, path and commit it was taken from: the events
gitcoinco/grants-stack-indexer-v2 subscribes to, and the strategy ids its
indexers map to names. They are compared with what `indexer.decode.decode_log`
decodes and with ``qf.strategy_kinds``; a difference either way fails, so
moving the pin to a newer commit shows what changed upstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import eth_abi
import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from qf_sentinel.indexer.decode import EMITTER_ROLES, EVENTS_BY_SIGNATURE, decode_log
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.sim.dvmdt import STRATEGY_ID as DEVNET_DVMDT_ID
from tests.indexer.abi_values import ABI_VALUES
from tests.indexer.reference import (
    ABI_BY_SIGNATURE,
    REFERENCE_EVENTS,
    REFERENCE_STRATEGY_IDS,
    ReferenceEvent,
    abi_type,
    encode_variant,
    reference_events,
    reference_values,
)

#: Variants we decode that Gitcoin's indexer does not subscribe to, and why.
BEYOND_THE_REFERENCE = {
    "AnswerUpdated(int256,uint256,uint256)": "Chainlink-style price feeds: donations in USD",
    "BatchPayoutSuccessful(address)": "DonationVotingMerkleDistribution: a batch of payouts went out",
    "Claimed(address,address,uint256,address)": "DonationVotingMerkleDistribution vault: a recipient claimed",
    "Initialized(uint256,bytes)": "a strategy joined its pool",
    "Initialized(uint8)": "an upgradeable contract's initializer ran",
    "PoolActive(bool)": "a strategy opened or closed its pool",
    "ProfilePendingOwnerUpdated(bytes32,address)": "the Registry: a profile's ownership transfer began",
}
#: The contract a subscription names -> the emitter role the decoder requires (None: any indexed contract).
ROLES = {
    "Allo": "core",
    "Registry": "registry",
    "AlloV1ToV2ProfileMigration": "profile_migration",
    "GitcoinAttestationNetwork": "attestation_network",
    "Strategy": None,
}
#: AccessControl's events come from the core and the Registry alike (members of profiles, managers of pools).
SHARED = {"RoleGranted", "RoleRevoked"}


def indexed(abi: dict[str, Any]) -> list[bool]:
    return [bool(p["indexed"]) for p in abi["inputs"]]


def differences(reference: Iterable[ReferenceEvent]) -> list[str]:
    """Every way ``reference`` and the decoder disagree (empty: they read the same events alike)."""
    found = []
    theirs = {}
    for event in reference:
        theirs.setdefault(event.signature, event)
        spec = EVENTS_BY_SIGNATURE.get(event.signature)
        if spec is None:
            found.append(f"not decoded: {event.contract} {event.signature}")
            continue
        if spec.topic_count != 1 + sum(indexed(event.abi)):
            found.append(f"indexed parameters differ: {event.signature}")
        if indexed(event.abi) != indexed(ABI_BY_SIGNATURE[event.signature]):
            found.append(f"indexed positions differ from the published ABI: {event.signature}")
        role = None if event.abi["name"] in SHARED else ROLES.get(event.contract, "?")
        if EMITTER_ROLES.get(spec.name) != role:
            found.append(f"emitter of {event.signature}: {EMITTER_ROLES.get(spec.name)}, the reference's {role}")
    ours = set(EVENTS_BY_SIGNATURE) - set(theirs)
    found += [f"decoded beyond the reference without a reason: {s}" for s in sorted(ours - set(BEYOND_THE_REFERENCE))]
    found += [f"no longer beyond the reference: {s}" for s in sorted(set(BEYOND_THE_REFERENCE) - ours)]
    return found


def test_we_decode_every_event_gitcoins_indexer_reads() -> None:
    """All 36 subscriptions (34 signatures) are decoded, with the same indexed parameters and emitters; the
    seven variants we read beyond them are the listed ones."""
    events = reference_events()
    assert (len(events), len({e.signature for e in events})) == (36, 34)
    assert differences(events) == []


def test_a_reference_that_moved_is_caught() -> None:
    """An event added upstream, one dropped, or one with another indexed parameter is reported."""
    text = REFERENCE_EVENTS.read_text()
    added = text + "Strategy\tAllocated(address indexed recipientId, uint256 amount, bytes32 reason)\n"
    assert differences(reference_events(added)) == ["not decoded: Strategy Allocated(address,uint256,bytes32)"]
    dropped = "".join(line for line in text.splitlines(keepends=True) if "int96 flowRate" not in line)
    assert differences(reference_events(dropped)) == [
        "decoded beyond the reference without a reason: Distributed(address,int96)"
    ]
    moved = text.replace("address indexed sender, int96 flowRate", "address sender, int96 indexed flowRate")
    assert len(differences(reference_events(moved))) == 1
    elsewhere = text.replace("AlloV1ToV2ProfileMigration\t", "Strategy\t")
    assert differences(reference_events(elsewhere)) == [
        "emitter of ProfileMigrated(bytes32,uint256,bytes32,uint256): profile_migration, the reference's None"
    ]


REFERENCE_SIGNATURES = sorted({e.signature for e in reference_events()})


@pytest.mark.parametrize("signature", REFERENCE_SIGNATURES)
@settings(max_examples=40)
@given(data=st.data())
def test_each_reference_event_decodes_as_eth_abi_reads_it(signature: str, data: st.DataObject) -> None:
    """Random valid values, encoded by eth_abi into topics and data as Gitcoin declares the event, decode to
    what eth_abi reads back, in the table's column order (uint64 saturated at 2**63-1)."""
    abi = ABI_BY_SIGNATURE[signature]
    params = {p["name"]: data.draw(ABI_VALUES[abi_type(p)], label=p["name"]) for p in abi["inputs"]}
    log = encode_variant(signature, params)
    decoded = decode_log(log)
    assert decoded is not None
    assert decoded.table == EVENTS_BY_SIGNATURE[signature].table
    assert (decoded.signature, decoded.values) == reference_values(log)


# -- strategy ids -----------------------------------------------------------------------------------

#: Gitcoin's strategy names (grants-stack-indexer's) -> the kind we give them.
KINDS = {
    "allov2.SQFSuperFluidStrategy": "streaming_qf",
    "allov2.MicroGrantsStrategy": "micro_grants",
    "allov2.MicroGrantsGovStrategy": "micro_grants",
    "allov2.MicroGrantsHatsStrategy": "micro_grants",
    "allov2.RFPSimpleStrategy": "rfp",
    "allov2.RFPCommitteeStrategy": "rfp",
    "allov2.QVSimpleStrategy": "quadratic_voting",
    "allov2.DonationVotingMerkleDistributionDirectTransferStrategy": "donation",
    "allov2.DonationVotingMerkleDistributionVaultStrategy": "donation",
    "allov2.DirectGrantsSimpleStrategy": "direct_grant",
    "allov2.DirectGrantsLiteStrategy": "direct_grant",
    "allov2.EasyRPGFStrategy": "retro_funding",
    "allov2.DirectAllocationStrategy": "direct_allocation",
    "allov2.EasyRetroFundingStrategy": "retro_funding",
}


def reference_ids(text: str | None = None) -> dict[bytes, tuple[str, str, bool]]:
    """id -> (label, Gitcoin's strategy name, whether grants-stack-indexer-v2 handles it)."""
    out = {}
    for line in (REFERENCE_STRATEGY_IDS.read_text() if text is None else text).splitlines():
        if line.strip() and not line.startswith("#"):
            strategy_id, label, name, v2 = line.split("\t")
            out[bytes.fromhex(strategy_id[2:])] = (label, name, v2 == "v2")
    return out


Reference = dict[bytes, tuple[str, str, bool]]
Known = dict[bytes, tuple[str, str, str]]


def id_differences(reference: Reference, known: Known) -> list[str]:
    """Where the pinned ids and qf.strategy_kinds (id -> label, name || version, kind) disagree."""
    found = [f"not in qf.strategy_kinds: 0x{i.hex()} {x[0]}" for i, x in reference.items() if i not in known]
    found += [f"not in the reference: 0x{i.hex()} {known[i][0]}" for i in known.keys() - reference.keys()]
    for i in reference.keys() & known.keys():
        label, name, _ = reference[i]
        ours_label, name_version, kind = known[i]
        if label != ours_label or name_version != label:
            found.append(f"0x{i.hex()}: labelled {label!r} upstream, {ours_label!r} / {name_version!r} here")
        if KINDS.get(name) != kind:
            found.append(f"0x{i.hex()}: {name} is {KINDS.get(name)}, here {kind}")
    return found


def known_ids(db_url: str, source: str) -> Known:
    with connect(db_url) as conn:
        rows = conn.execute(
            "SELECT strategy_id, label, name || version, kind FROM qf.strategy_kinds WHERE source = %s", [source]
        ).fetchall()
    return {bytes(i): (label, name_version, kind) for i, label, name_version, kind in rows}


def test_strategy_kinds_are_the_ids_gitcoins_indexers_know(migrated_db_url: str) -> None:
    """qf.strategy_kinds holds exactly the 19 pinned ids, labelled as upstream, each with its group's kind;
    grants-stack-indexer-v2 handles 9 of them."""
    reference = reference_ids()
    assert (len(reference), sum(v2 for _, _, v2 in reference.values())) == (19, 9)
    assert id_differences(reference, known_ids(migrated_db_url, "gitcoin")) == []


def test_an_id_list_that_moved_is_caught(migrated_db_url: str) -> None:
    """An id added or relabelled upstream, or a kind given wrongly here, is reported."""
    known = known_ids(migrated_db_url, "gitcoin")
    reference = reference_ids()
    new = bytes(32)
    assert id_differences(reference | {new: ("Newv1.0", "allov2.New", True)}, known) == [
        f"not in qf.strategy_kinds: 0x{new.hex()} Newv1.0"
    ]
    some = next(iter(reference))
    label, name, v2 = reference[some]
    assert len(id_differences(reference | {some: (label + "b", name, v2)}, known)) == 1
    assert len(id_differences(reference, known | {some: (*known[some][:2], "donation_or_not")})) == 1


def test_every_id_is_the_hash_of_its_name(migrated_db_url: str) -> None:
    """Each id is keccak256(abi.encode(preimage)), as Allo's BaseStrategy computes it, and the devnet's strategies
    (the SDK's DVMDT under its real name, the project's own) are known donation strategies."""
    with connect(migrated_db_url) as conn:
        rows = conn.execute("SELECT strategy_id, preimage, kind, source FROM qf.strategy_kinds").fetchall()
    assert len(rows) == 20
    for strategy_id, preimage, _kind, _source in rows:
        assert bytes(strategy_id) == keccak(eth_abi.encode(["string"], [preimage])), preimage
    kinds = {bytes(i): (kind, source) for i, _, kind, source in rows}
    assert kinds[DEVNET_DVMDT_ID] == ("donation", "gitcoin")
    assert kinds[keccak(eth_abi.encode(["string"], ["QFSentinelDonationStrategyv1.0"]))] == ("donation", "qf-sentinel")
