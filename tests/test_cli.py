"""The ``qf`` command as a user runs it: one-line errors, idempotent devnet, simulate end to end."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qf_sentinel.qf.db import connect
from tests.fixtures.chain import Chain, free_port

pytestmark = pytest.mark.integration  # each test runs `qf` as a process


def qf(
    *args: str, env: dict[str, str] | None = None, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")}
    full_env |= {"QF_LOG_FORMAT": "json"} | (env or {})
    if home is not None:
        full_env["QF_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "qf_sentinel", *args],
        env=full_env,
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_unreachable_rpc_is_one_line(tmp_path: Path) -> None:
    """A node that does not answer gives `error: cannot reach RPC at URL`, not a traceback."""
    url = f"http://127.0.0.1:{free_port()}"
    proc = qf("simulate", "--rpc-url", url, home=tmp_path)
    assert_one_line_error(proc, "cannot reach RPC", url)


def test_wrong_chain_id_is_refused(chain: Chain, tmp_path: Path) -> None:
    """QF_CHAIN_ID that the node does not serve stops the command before any transaction."""
    block_before = chain.rpc.block_number()
    proc = qf("simulate", "--rpc-url", chain.url, env={"QF_CHAIN_ID": "1"}, home=tmp_path)
    assert_one_line_error(proc, "serves chain 31337", "QF_CHAIN_ID is 1")
    assert chain.rpc.block_number() == block_before


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("absent.csv.xz", None, "no such file"),
        ("corrupt.csv.xz", b"\xfd7zXZ\x00garbage", "corrupt.csv.xz"),
        ("foreign.csv", b"a,b\n1,2\n", "missing column"),
    ],
)
def test_bad_replay_csv_is_one_line(tmp_path: Path, name: str, content: bytes | None, fragment: str) -> None:
    """A missing, corrupt or foreign CSV is named in a one-line error."""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    proc = qf("replay-gitcoin", str(path), "--rpc-url", "http://127.0.0.1:1", home=tmp_path)
    assert_one_line_error(proc, fragment)


def test_unreachable_database_hides_the_password(tmp_path: Path) -> None:
    """An unreachable QF_DATABASE_URL is reported by host and port; the password never shows."""
    proc = qf(
        "migrate",
        env={"QF_DATABASE_URL": f"postgresql://u:hunter2@127.0.0.1:{free_port()}/x"},
        home=tmp_path,
    )
    line = assert_one_line_error(proc, "127.0.0.1")
    assert "hunter2" not in proc.stderr + proc.stdout
    del line


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    """A malformed environment variable is named."""
    proc = qf("devnet", env={"QF_ANVIL_PORT": "eighty"}, home=tmp_path)
    assert_one_line_error(proc, "QF_ANVIL_PORT")


def test_devnet_twice_deploys_once(tmp_path: Path) -> None:
    """`qf devnet` starts its two chains (chain ids 31337 and 31338, on QF_ANVIL_PORT and the port after) with the
    contracts on each; started twice it reuses the nodes and the deployments; --stop stops both."""
    port = free_port()
    env = {"QF_ANVIL_PORT": str(port)}
    try:
        first = json.loads(qf("devnet", "--json", env=env, home=tmp_path).stdout)
        second = json.loads(qf("devnet", "--json", env=env, home=tmp_path).stdout)
        assert [(c["chain_id"], c["rpc_url"]) for c in first["chains"]] == [
            (31337, f"http://127.0.0.1:{port}"), (31338, f"http://127.0.0.1:{port + 1}")]  # fmt: skip
        assert all(c["started"] and c["deployed"] for c in first["chains"])
        assert not any(c["started"] or c["deployed"] for c in second["chains"])
        assert [(c["core"], c["token"], c["pid"]) for c in first["chains"]] == [
            (c["core"], c["token"], c["pid"]) for c in second["chains"]]  # fmt: skip
        assert (first["chain_id"], first["rpc_url"]) == (31337, f"http://127.0.0.1:{port}")  # the first at the top
        assert first["chains"][0]["pid"] != first["chains"][1]["pid"]
    finally:
        stopped = qf("devnet", "--stop", env=env, home=tmp_path)
    assert "devnet stopped" in stopped.stdout
    assert not list((tmp_path / "devnet").glob("*.pid"))


def test_simulate_across_two_chains_stores_each_chains_labels(
    chain: Chain, new_anvil: Callable[..., Chain], migrated_db_url: str, tmp_path: Path
) -> None:
    """`qf simulate --rpc-url A --rpc-url B`: a round on each chain at once, the labels of each in qf.labels under
    its chain id and in a file of its own, some donors on both chains."""
    other = new_anvil(chain_id=31338)
    labels_file = tmp_path / "labels.csv"
    proc = qf("simulate", "--rpc-url", chain.url, "--rpc-url", other.url, "--seed", "9", "--honest-donors", "20",
              "--projects-per-pool", "8", "--both-chains-share", "0.5", "--labels-out", str(labels_file),
              env={"QF_DATABASE_URL": migrated_db_url}, home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    files = {31337: labels_file, 31338: tmp_path / "labels-chain-31338.csv"}
    with connect(migrated_db_url) as conn:
        for chain_id, path in files.items():
            with path.open() as f:
                rows = {(r["address"], r["pattern"]) for r in csv.DictReader(f)}
            stored = conn.execute("SELECT '0x' || encode(address, 'hex'), pattern FROM qf.labels "
                                  "WHERE chain_id = %s AND source = 'simulate'", (chain_id,)).fetchall()  # fmt: skip
            assert set(stored) == rows
            assert {p for _, p in rows} >= {"honest", "sybil_fan_out", "collusion_ring", "self_donation"}
    with files[31337].open() as a, files[31338].open() as b:
        shared = {r["address"] for r in csv.DictReader(a)} & {r["address"] for r in csv.DictReader(b)}
    assert shared
    assert f"{len(shared)} donors give on more than one chain" in proc.stdout.replace("\n", " ")


def test_simulate_writes_labels_to_db_and_file(chain: Chain, migrated_db_url: str, tmp_path: Path) -> None:
    """`qf simulate` drives a round and stores the same ground truth in qf.labels and a CSV."""
    labels_file = tmp_path / "labels.csv"
    proc = qf(
        "simulate",
        "--rpc-url",
        chain.url,
        "--seed",
        "9",
        "--honest-donors",
        "20",
        "--projects-per-pool",
        "8",
        "--labels-out",
        str(labels_file),
        env={"QF_DATABASE_URL": migrated_db_url},
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    with labels_file.open() as f:
        rows = list(csv.DictReader(f))
    with connect(migrated_db_url) as conn:
        stored = conn.execute(
            "SELECT '0x' || encode(address, 'hex'), is_sybil, pattern"
            " FROM qf.labels WHERE source = 'simulate'"
        ).fetchall()
    assert sorted(stored) == sorted((r["address"], r["is_sybil"] == "true", r["pattern"]) for r in rows)
    assert {p for _, s, p in stored if s} == {"sybil_fan_out", "collusion_ring", "self_donation"}
    assert f"labels: {len(rows)} donors" in proc.stdout
    assert {r["funding"] for r in rows} >= {"exchange", "direct_fan_out", "peel_chain", "via_exchange", "staggered"}
    with connect(migrated_db_url) as conn:
        kinds = conn.execute("SELECT kind, count(*) FROM qf.known_sources WHERE chain_id = 31337 GROUP BY 1").fetchall()
    assert dict(kinds) == {"faucet": 1, "exchange": 3}


def test_funding_and_sources_imports_are_all_or_nothing_with_one_line_errors(
    migrated_db_url: str, tmp_path: Path
) -> None:
    """`qf funding import` and `qf sources import` refuse a file with a bad row in one line and write nothing;
    good files go in; `qf sources import` without a file adds the shipped list."""
    env = {"QF_DATABASE_URL": migrated_db_url}
    wallet, funder = "0x" + "11" * 20, "0x" + "22" * 20
    bad = tmp_path / "bad.csv"
    bad.write_text(f"address,funder,amount,block,time,chain\n{wallet},{funder},5,1,1000,1\n{wallet},0x12,5,1,1000,1\n")
    refused = qf("funding", "import", str(bad), env=env, home=tmp_path)
    assert_one_line_error(refused, "line 3: funder", "nothing imported")
    good = tmp_path / "good.csv"
    good.write_text(f"address,funder,amount,block,time,chain\n{wallet},{funder},0.5,1,1000,1\n")
    assert_one_line_error(qf("funding", "import", str(good), env=env, home=tmp_path), "--unit ether")
    proc = qf("funding", "import", str(good), "--unit", "ether", env=env, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "imported 1 of 1 funding rows for chain(s) 1" in proc.stdout
    sources = tmp_path / "sources.csv"
    sources.write_text(f"chain_id,address,label,kind,source\n1,{funder},My exchange,exchange,my notes\n"
                       f"1,{wallet},Thing,casino,my notes\n")  # fmt: skip
    assert_one_line_error(qf("sources", "import", str(sources), env=env, home=tmp_path), "line 3: kind 'casino'")
    shipped = qf("sources", "import", env=env, home=tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    with connect(migrated_db_url) as conn:
        funding = conn.execute("SELECT amount, method FROM qf.wallet_funding").fetchall()
        labels = conn.execute("SELECT count(*), count(*) FILTER (WHERE address = %s) FROM qf.known_sources",
                              (bytes.fromhex("22" * 20),)).fetchone()  # fmt: skip
    assert funding == [(5 * 10**17, "import")]
    assert labels is not None
    assert labels[0] > 40
    assert labels[1] == 0
    assert f"added {labels[0]} known sources" in shipped.stdout
