"""The metadata fetcher against a real Postgres and real HTTP gateways on 127.0.0.1.

Gateways (``tests/fixtures/ipfs.py``) serve blocks with their true CIDs, lie,
fail or hang; time is a clock the test steps, never the wall clock.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import CID
from prometheus_client import CollectorRegistry

from qf_sentinel.indexer.metadata.app import start_in_background
from qf_sentinel.indexer.metadata.cid import cid_text, parse_cid, verify_block
from qf_sentinel.indexer.metadata.errors import BlockMismatch, GatewayFailed, InvalidPointer, MalformedBlock
from qf_sentinel.indexer.metadata.gateway import Gateways
from qf_sentinel.indexer.metadata.metrics import MetadataMetrics
from qf_sentinel.indexer.metadata.schedule import RetryPolicy
from qf_sentinel.indexer.metadata.store import MetadataStore
from qf_sentinel.indexer.metadata.unixfs import decode_node, read_file
from qf_sentinel.indexer.metadata.worker import FetcherConfig, MetadataFetcher
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.settings import Settings
from tests.fixtures.ipfs import (
    chunked_file,
    closed_port_url,
    dag_pb_cid,
    field_bytes,
    gateway,
    pb_node,
    raw_file,
    small_file,
    unixfs_data,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DOC = {"name": "Clean water for Lagos", "description": "Wells and filters.", "website": "https://example.org"}
DOC_BYTES = json.dumps(DOC).encode()


class Clock:
    """The fetcher's clock: moves only when the test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> MetadataMetrics:
    return MetadataMetrics()


Fetchers = list[MetadataFetcher]


@pytest.fixture
def fetchers() -> Iterator[Fetchers]:
    made: Fetchers = []
    yield made
    for fetcher in made:
        fetcher.close()


def make_fetcher(db_url: str, urls: list[str], metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers,
                 **config: Any) -> MetadataFetcher:  # fmt: skip
    gateways = Gateways(urls, timeout_seconds=30, metrics=metrics)
    fetcher = MetadataFetcher(MetadataStore(db_url), gateways, metrics, FetcherConfig(**config), clock=clock,
                              rng=random.Random(7))  # fmt: skip
    fetchers.append(fetcher)
    return fetcher


_event_number = iter(range(1, 1_000_000))


def add_pool(conn: psycopg.Connection[Any], pointer: str, protocol: int = 1) -> None:
    """A PoolCreated row as the indexer writes it: the migration's trigger queues its pointer."""
    n = next(_event_number)
    conn.execute(
        "INSERT INTO qf.pool_created (chain_id, block_number, block_hash, tx_hash, tx_index, log_index, contract,"
        " pool_id, profile_id, strategy, token, amount, metadata_protocol, metadata_pointer)"
        " VALUES (31337, %s, %s, %s, 0, 0, %s, %s, %s, %s, %s, 0, %s, %s)",
        [n, b"\x01" * 32, n.to_bytes(32, "big"), b"\x02" * 20, n, b"\x03" * 32, b"\x04" * 20, b"\x05" * 20,
         protocol, pointer],
    )  # fmt: skip


def add_pools(db_url: str, *pointers: str, protocol: int = 1) -> None:
    with connect(db_url) as conn:
        for pointer in pointers:
            add_pool(conn, pointer, protocol)


def pointer_row(db_url: str, pointer: str) -> dict[str, Any]:
    with connect(db_url) as conn:
        cur = conn.execute(
            "SELECT status, attempts, nullif(next_attempt_at, '-infinity') AS next_attempt_at, last_error"
            " FROM qf.metadata_pointers WHERE pointer = %s",
            [pointer],
        )
        row = cur.fetchone()
        assert row is not None, pointer
        return dict(zip([c.name for c in cur.description or []], row, strict=True))


def cached(db_url: str, cid: str) -> dict[str, Any] | None:
    with connect(db_url) as conn:
        cur = conn.execute(
            "SELECT format, body, raw, size_bytes, blocks, gateway FROM qf.ipfs_metadata WHERE cid = %s", [cid]
        )
        row = cur.fetchone()
        return dict(zip([c.name for c in cur.description or []], row, strict=True)) if row else None


def sample(metrics: MetadataMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"qf_indexer_metadata_{name}", labels) or 0.0


# -- the encoder and decoder agree with IPFS --------------------------------------------------


def test_blocks_made_here_have_the_cids_ipfs_gives_them() -> None:
    """`echo "version 1 of my text" > mytextfile.txt; ipfs add -w mytextfile.txt` prints these two CIDs, and
    `ipfs ls -v` gives the file's block as 29 bytes (IPFS DWeb Primer, lesson "Wrap Filenames and Directory
    Info around Content", dweb-primer.ipfs.io/files-on-ipfs/wrap-directories-around-content)."""
    cid, blocks = small_file(b"version 1 of my text\n")
    assert cid == "QmZtmD2qt6fJot32nabSP3CUjicnypEBz7bHVDhPQt9aAy"
    assert len(blocks[cid]) == 29
    directory = pb_node(unixfs_data(1), ((CID.decode(cid), "mytextfile.txt", 29),))
    assert str(dag_pb_cid(directory)) == "QmPvaEQFVvuiaYzkSVUp23iHTQeEUpDaJnP8U7C3PqE57w"
    # ... and the decoder reads them as IPFS does: the file's bytes, and a directory that is not a file.
    assert decode_node(blocks[cid]).data == b"version 1 of my text\n"
    with pytest.raises(MalformedBlock, match="a directory, not a file"):
        decode_node(directory)


@given(content=st.binary(min_size=1, max_size=3000), chunk=st.integers(1, 400), fanout=st.integers(2, 5),
       raw_leaves=st.booleans())  # fmt: skip
def test_any_chunked_file_reads_back_whole_from_verified_blocks(
    content: bytes, chunk: int, fanout: int, raw_leaves: bool
) -> None:
    root, blocks = chunked_file(content, chunk=chunk, fanout=fanout, raw_leaves=raw_leaves)
    seen: list[str] = []

    def get_block(cid: CID) -> bytes:
        seen.append(cid_text(cid))
        verify_block(cid, blocks[cid_text(cid)], gateway="test")
        return blocks[cid_text(cid)]

    file = read_file(parse_cid(root), get_block, max_bytes=10_000, max_blocks=10_000)
    assert file.content == content
    assert sorted(set(seen)) == sorted(blocks)


def test_a_block_that_does_not_hash_to_its_cid_is_refused() -> None:
    cid, blocks = small_file(DOC_BYTES)
    verify_block(parse_cid(cid), blocks[cid], gateway="g")
    with pytest.raises(BlockMismatch, match="do not hash to"):
        verify_block(parse_cid(cid), blocks[cid] + b" ", gateway="g")


def test_malformed_dag_pb_blocks_and_wrong_sizes_raise_malformed_block() -> None:
    for block in (b"\x0a\x05ab", b"\x0a", b"\xff" * 11, field_bytes(1, b"\x10\x01")):  # truncated, overlong, no Type
        with pytest.raises(MalformedBlock):
            decode_node(block)
    # A parent whose blocksizes disagree with its children's content.
    child, blocks = small_file(b"abc")
    parent = pb_node(unixfs_data(2, b"", 4, (4,)), ((CID.decode(child), "", 11),))
    blocks[str(dag_pb_cid(parent))] = parent
    with pytest.raises(MalformedBlock, match="link 0 holds 3 bytes"):
        read_file(dag_pb_cid(parent), lambda c: blocks[cid_text(c)], max_bytes=100, max_blocks=10)


def test_the_retry_schedule_doubles_with_jitter_above_half_the_step() -> None:
    policy, rng = RetryPolicy(base_seconds=60, max_seconds=3600), random.Random(1)
    for attempts, step in ((1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (40, 3600)):
        delays = [policy.delay_seconds(attempts, rng) for _ in range(200)]
        assert step / 2 <= min(delays)
        assert max(delays) <= step
        assert max(delays) - min(delays) > step / 4  # spread, not one value
    assert RetryPolicy(base_seconds=0).delay_seconds(1, rng) >= 0.5  # a zero setting still waits


# -- the fetcher against gateways -------------------------------------------------------------


def test_verified_documents_are_stored_as_json_or_bytes(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers
) -> None:
    """A CIDv0 dag-pb JSON document, a CIDv1 raw one, and non-JSON bytes: each verified, then cached; JSON that
    jsonb cannot hold as it is (a NUL) is stored repaired and counted."""
    v0, blocks = small_file(DOC_BYTES)
    v1, raw_blocks = raw_file(json.dumps({"title": "Round 9"}).encode())
    png, png_blocks = raw_file(b"\x89PNG\r\n\x1a\n\x00\x00")
    nul, nul_blocks = raw_file(b'{"name": "a\\u0000b"}')  # JSON that jsonb cannot hold
    with gateway(blocks | raw_blocks | png_blocks | nul_blocks) as honest:
        add_pools(migrated_db_url, v0, v1, png, nul, v0)  # the same pointer twice is queued once
        fetcher = make_fetcher(migrated_db_url, [honest.url], metrics, clock, fetchers)
        assert fetcher.drain() == 4
    assert cached(migrated_db_url, v0) == {
        "format": "json", "body": DOC, "raw": None, "size_bytes": len(DOC_BYTES), "blocks": 1, "gateway": honest.url,
    }  # fmt: skip
    assert (cached(migrated_db_url, v1) or {})["body"] == {"title": "Round 9"}
    assert (cached(migrated_db_url, png) or {})["raw"] == b"\x89PNG\r\n\x1a\n\x00\x00"
    assert (cached(migrated_db_url, nul) or {})["body"] == {"name": "ab"}  # NUL removed
    assert pointer_row(migrated_db_url, v0)["status"] == "fetched"
    assert sample(metrics, "blocks_verified_total", gateway=honest.url) == 4
    assert sample(metrics, "documents_stored_total", format="json") == 3
    assert sample(metrics, "documents_stored_total", format="bytes") == 1
    assert metrics.registry.get_sample_value("qf_indexer_values_sanitised_total", {"field": "ipfs_metadata.body"}) == 1
    assert sample(metrics, "pending") == 0


def test_a_lying_gateway_is_rejected_counted_and_the_next_one_used(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers
) -> None:
    cid, blocks = small_file(DOC_BYTES)
    with gateway(blocks, "liar") as liar, gateway(blocks) as honest:
        add_pools(migrated_db_url, cid)
        make_fetcher(migrated_db_url, [liar.url, honest.url], metrics, clock, fetchers).drain()
        assert liar.requests == [cid]
        assert honest.requests == [cid]
    row = cached(migrated_db_url, cid)
    assert row is not None
    assert row["body"] == DOC
    assert row["gateway"] == honest.url
    assert sample(metrics, "blocks_rejected_total", gateway=liar.url) == 1
    assert sample(metrics, "blocks_verified_total", gateway=liar.url) == 0
    assert sample(metrics, "blocks_verified_total", gateway=honest.url) == 1


def test_what_only_liars_serve_is_never_stored_and_is_retried_later(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers
) -> None:
    cid, blocks = small_file(DOC_BYTES)
    with gateway(blocks, "liar") as liar:
        add_pools(migrated_db_url, cid)
        make_fetcher(migrated_db_url, [liar.url], metrics, clock, fetchers, retry=RetryPolicy(60, 3600)).drain()
    assert cached(migrated_db_url, cid) is None
    row = pointer_row(migrated_db_url, cid)
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert "do not hash to" in row["last_error"]
    assert T0 + timedelta(seconds=30) <= row["next_attempt_at"] <= T0 + timedelta(seconds=60)
    assert sample(metrics, "failures_total", reason="mismatch") == 1


def test_a_down_gateway_is_retried_with_growing_backoff_never_in_a_loop(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers
) -> None:
    """Refused connections and 503s: each failure moves the next attempt 30-60 s, then 60-120 s, ... ahead;
    until then no request is sent, however often the fetcher runs; once the gateway is back, it is stored."""
    cid, blocks = small_file(DOC_BYTES)
    down = closed_port_url()
    with gateway(blocks, "error") as failing:
        add_pools(migrated_db_url, cid)
        fetcher = make_fetcher(migrated_db_url, [down, failing.url], metrics, clock, fetchers,
                               retry=RetryPolicy(60, 3600))  # fmt: skip
        step = 60.0
        for attempt in range(1, 5):
            assert fetcher.run_once() == 1
            row = pointer_row(migrated_db_url, cid)
            assert (row["status"], row["attempts"]) == ("pending", attempt)
            assert "HTTP 503" in row["last_error"]
            assert "cannot connect" in row["last_error"]
            wait = (row["next_attempt_at"] - clock.now).total_seconds()
            assert step / 2 <= wait <= step
            for _ in range(20):  # a busy loop of the fetcher sends nothing before the time comes
                assert fetcher.run_once() == 0
            clock.advance(wait / 2)
            assert fetcher.run_once() == 0
            assert len(failing.requests) == attempt
            clock.now = row["next_attempt_at"]  # exactly when it is due (the database keeps microseconds)
            step *= 2
        failing.mode = "honest"
        assert fetcher.run_once() == 1
    assert cached(migrated_db_url, cid) is not None
    assert pointer_row(migrated_db_url, cid)["status"] == "fetched"
    assert sample(metrics, "gateway_errors_total", gateway=down, kind="connect") == 5
    assert sample(metrics, "gateway_errors_total", gateway=failing.url, kind="http_503") == 4
    assert sample(metrics, "failures_total", reason="unavailable") == 4


def test_indexing_goes_on_while_the_fetcher_is_stuck_on_a_gateway(
    migrated_db_url: str, metrics: MetadataMetrics, fetchers: Fetchers
) -> None:
    """With a fetch hanging mid-request, the indexer's inserts (whose trigger queues pointers) commit at once."""
    first, blocks = small_file(DOC_BYTES)
    second, more = raw_file(b'{"name": "second"}')
    with gateway(blocks | more, "hang") as stuck:
        add_pools(migrated_db_url, first)
        fetcher = make_fetcher(migrated_db_url, [stuck.url], metrics, Clock(), fetchers, poll_seconds=0.01)
        stop = threading.Event()
        thread = threading.Thread(target=fetcher.run, args=(stop,), daemon=True)
        thread.start()
        try:
            assert stuck.arrived.wait(60), "the fetcher never asked the gateway"
            with connect(migrated_db_url) as conn:
                conn.execute("SET lock_timeout = '60s'")  # a wait on the fetcher would fail here, not hang
                for pointer in (second, first):
                    add_pool(conn, pointer)
                conn.commit()
            # The fetch of `first` is still in flight (no outcome recorded), and `second` is queued behind it.
            assert (pointer_row(migrated_db_url, first)["status"], pointer_row(migrated_db_url, first)["attempts"]) == (
                "pending", 0,
            )  # fmt: skip
            assert pointer_row(migrated_db_url, second)["status"] == "pending"
            with connect(migrated_db_url) as conn:
                assert conn.execute("SELECT count(*) FROM qf.pool_created").fetchone() == (3,)
        finally:
            stuck.release.set()
            stop.set()
            thread.join(60)
        assert not thread.is_alive()
    assert pointer_row(migrated_db_url, first)["status"] == "fetched"


def test_pointers_of_other_protocols_are_skipped_and_counted(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers
) -> None:
    cid, blocks = small_file(DOC_BYTES)
    with gateway(blocks) as honest:
        add_pools(migrated_db_url, "https://example.org/pool.json", protocol=2)
        add_pools(migrated_db_url, cid, protocol=0)
        assert make_fetcher(migrated_db_url, [honest.url], metrics, clock, fetchers).drain() == 2
        assert honest.requests == []
    assert pointer_row(migrated_db_url, cid)["status"] == "skipped"
    assert pointer_row(migrated_db_url, "https://example.org/pool.json")["last_error"] == (
        "metadata protocol 2 is not IPFS (1)"
    )
    assert sample(metrics, "skipped_total") == 2


@pytest.mark.parametrize("raw_leaves", [False, True])
def test_a_multi_block_file_is_reassembled_and_each_block_verified(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers, raw_leaves: bool
) -> None:
    """Three levels of blocks; the first gateway lies about one leaf, which is then taken from the second."""
    content = json.dumps({"name": "big", "items": [f"item {i}" for i in range(200)]}).encode()
    root, blocks = chunked_file(content, chunk=256, fanout=4, raw_leaves=raw_leaves)
    assert len(blocks) > 10
    leaves = [c for c in blocks if c.startswith("bafk") or not decode_node(blocks[c]).links]
    leaf = leaves[1]
    with gateway(blocks, lie_for=frozenset({leaf})) as partly, gateway(blocks) as honest:
        add_pools(migrated_db_url, root)
        make_fetcher(migrated_db_url, [partly.url, honest.url], metrics, clock, fetchers).drain()
        assert sorted(partly.requests) == sorted(blocks)
        assert honest.requests == [leaf]
    row = cached(migrated_db_url, root)
    assert row is not None
    assert row["body"] == json.loads(content)
    assert row["blocks"] == len(blocks)
    assert row["gateway"] == partly.url  # the root's gateway
    assert sample(metrics, "blocks_rejected_total", gateway=partly.url) == 1
    assert sample(metrics, "blocks_verified_total", gateway=partly.url) == len(blocks) - 1


def test_files_past_the_size_or_block_bound_are_marked_invalid(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers
) -> None:
    many, blocks = chunked_file(bytes(range(250)) * 4, chunk=64, fanout=8, raw_leaves=True)  # 1000 bytes, 19 blocks
    big, big_blocks = raw_file(bytes(range(256)) * 8)
    with gateway(blocks | big_blocks) as honest:
        add_pools(migrated_db_url, many, big)
        make_fetcher(migrated_db_url, [honest.url], metrics, clock, fetchers, max_bytes=1024, max_blocks=8).drain()
    assert pointer_row(migrated_db_url, many)["status"] == "invalid"
    assert "more than 8 blocks" in pointer_row(migrated_db_url, many)["last_error"]
    assert "larger than the 1024 bytes" in pointer_row(migrated_db_url, big)["last_error"]
    assert sample(metrics, "failures_total", reason="too_large") == 2


def test_malformed_cids_are_recorded_as_invalid_and_the_batch_goes_on(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers
) -> None:
    cid, blocks = small_file(DOC_BYTES)
    directory = pb_node(unixfs_data(1), ((CID.decode(cid), "doc.json", 40),))
    dir_cid = str(dag_pb_cid(directory))
    blocks[dir_cid] = directory
    bad = {
        "not a cid": "not a CID: 'not a cid'",
        "QmTooShort": "not a CID: 'QmTooShort'",
        # bafy + hex, as the simulator writes: hex digits 0, 1, 8, 9 are not base32.
        "bafy" + "0123456789abcdef" * 3: "not a CID",
        "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy": "has codec dag-cbor",
        "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4": "hash function blake3",
        dir_cid: "a directory, not a file",
    }
    with gateway(blocks) as honest:
        add_pools(migrated_db_url, *bad, cid)
        make_fetcher(migrated_db_url, [honest.url], metrics, clock, fetchers).drain()
        assert sorted(honest.requests) == sorted([dir_cid, cid])  # nothing asked for what is not a CID
    for pointer, error in bad.items():
        row = pointer_row(migrated_db_url, pointer)
        assert row["status"] == "invalid", pointer
        assert error in row["last_error"], pointer
    assert cached(migrated_db_url, cid) is not None
    assert sample(metrics, "failures_total", reason="invalid_pointer") == 5
    assert sample(metrics, "failures_total", reason="malformed") == 1
    with pytest.raises(InvalidPointer):
        parse_cid("")


# -- the schema and the wiring ----------------------------------------------------------------


def test_a_new_source_of_pointers_is_one_call_and_brings_its_existing_rows(migrated_db_url: str) -> None:
    """As the Registry's profiles will: a table with metadata columns, watched by `qf.watch_metadata_pointers`."""
    with connect(migrated_db_url) as conn:
        conn.execute("CREATE TABLE qf.test_profiles (id int PRIMARY KEY, metadata_protocol numeric(78,0),"
                     " metadata_pointer text)")  # fmt: skip
        conn.execute("INSERT INTO qf.test_profiles VALUES (1, 1, 'QmOld'), (2, NULL, NULL)")
        conn.execute("SELECT qf.watch_metadata_pointers('qf.test_profiles')")
        conn.execute("INSERT INTO qf.test_profiles VALUES (3, 1, 'QmNew')")
        conn.execute("UPDATE qf.test_profiles SET metadata_pointer = 'QmChanged' WHERE id = 1")
        rows = conn.execute("SELECT protocol, pointer, status FROM qf.metadata_pointers ORDER BY pointer").fetchall()
    assert [(int(p), ptr, s) for p, ptr, s in rows] == [
        (1, "QmChanged", "pending"), (1, "QmNew", "pending"), (1, "QmOld", "pending"),
    ]  # fmt: skip


def test_every_metadata_table_and_column_is_commented(migrated_db_url: str) -> None:
    with connect(migrated_db_url) as conn:
        for table in ("qf.metadata_pointers", "qf.ipfs_metadata"):
            assert conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", [table]).fetchone() != (None,)
            missing = conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped AND col_description(attrelid, attnum) IS NULL",
                [table],
            ).fetchall()
            assert missing == [], table


def test_the_background_fetcher_of_qf_index_fetches_on_its_own_thread_and_stops(migrated_db_url: str) -> None:
    """`start_in_background` (what `qf index` calls with gateways set): its series join the given registry."""
    cid, blocks = small_file(DOC_BYTES)
    registry = CollectorRegistry()
    with gateway(blocks, "hang") as served:
        add_pools(migrated_db_url, cid)
        settings = Settings.from_env({"QF_IPFS_GATEWAYS": served.url + "/", "QF_IPFS_TIMEOUT_SECONDS": "60"})
        stop = start_in_background(settings, migrated_db_url, registry)
        assert served.arrived.wait(60), "the background fetcher never asked the gateway"
        served.release.set()  # the answer comes once the request is known to be in flight
        stop()  # lets the batch in flight finish
    assert cached(migrated_db_url, cid) is not None
    assert registry.get_sample_value("qf_indexer_metadata_blocks_verified_total", {"gateway": served.url}) == 1


def test_gateway_settings_are_parsed_and_checked() -> None:
    assert Settings.from_env({}).ipfs_gateways == ()
    settings = Settings.from_env({"QF_IPFS_GATEWAYS": " https://a.example/ ,http://127.0.0.1:8080,"})
    assert settings.ipfs_gateways == ("https://a.example", "http://127.0.0.1:8080")
    with pytest.raises(ConfigError, match="not an http"):
        Settings.from_env({"QF_IPFS_GATEWAYS": "ipfs://a"})
    with pytest.raises(ConfigError, match=">= 1"):
        Settings.from_env({"QF_IPFS_CONCURRENCY": "0"})


def test_a_gateway_that_ignores_format_raw_is_a_failure_not_a_liar(
    migrated_db_url: str, metrics: MetadataMetrics, clock: Clock, fetchers: Fetchers
) -> None:
    """A plain gateway answers with the decoded file (not a raw block): counted as an error, not as a lie."""
    cid, blocks = small_file(DOC_BYTES)
    with gateway(blocks, "decoded") as plain:
        gateways = Gateways([plain.url], timeout_seconds=30, metrics=metrics)
        try:
            with pytest.raises(GatewayFailed, match="answered application/json, not a raw block"):
                gateways.get_block(parse_cid(cid))
        finally:
            gateways.close()
    assert sample(metrics, "gateway_errors_total", gateway=plain.url, kind="not_raw") == 1
    assert sample(metrics, "blocks_rejected_total", gateway=plain.url) == 0
