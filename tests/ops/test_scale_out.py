"""Past one machine (README "Scaling"): the compose files for a read replica and one indexer per chain, checked
statically (no Docker engine here), as tests/ops/test_compose.py checks docker-compose.yml."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from qf_sentinel.qf.settings import ENV_VARS
from tests.ops.test_compose import ROOT, URL_WITH_PASSWORD, qf_commands, services

SCALE_OUT = ROOT / "ops" / "compose" / "scale-out.yml"
INDEXER_HOST = ROOT / "ops" / "compose" / "indexer-host.yml"
PG_HBA = ROOT / "ops" / "postgres" / "pg_hba.conf"
REPLICA_SCRIPT = ROOT / "ops" / "postgres" / "replica.sh"


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def mounted_files(service: dict[str, Any], base: Path) -> list[Path]:
    """The host files of a service's bind mounts, resolved as compose does (against ``base``)."""
    sources = [str(v).split(":")[0] for v in service.get("volumes", [])]
    return [(base / s).resolve() for s in sources if s.startswith(".")]


def test_the_override_adds_a_replica_and_keeps_the_primary() -> None:
    """Over docker-compose.yml: the primary gains replication settings, a hot standby follows it, and the
    local indexer starts only on request (the indexers run one per chain elsewhere)."""
    override = load(SCALE_OUT)["services"]
    base = services()
    assert set(override) - set(base) == {"postgres-replica"}
    primary = override["postgres"]["command"]
    assert primary[0] == "postgres"
    assert "hba_file=/etc/qf/pg_hba.conf" in primary
    assert any(arg.startswith("wal_keep_size=") for arg in primary)
    assert override["indexer"] == {"profiles": ["local-indexer"]}

    replica = override["postgres-replica"]
    assert replica["image"] == base["postgres"]["image"]  # a standby runs the primary's major version
    assert replica["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert replica["restart"] == "unless-stopped"
    assert {"test", "interval", "timeout", "retries"} <= set(replica["healthcheck"])
    assert replica["ports"] == ["127.0.0.1:5433:5432"]
    assert replica["secrets"] == ["postgres_password"]
    assert "pgdata-replica" in load(SCALE_OUT)["volumes"]
    assert "pgdata-replica:/var/lib/postgresql" in replica["volumes"]
    # Paths of an override resolve against the first file's directory: the repository root.
    for service in override.values():
        for path in mounted_files(service, ROOT):
            assert path.is_file(), path


def test_primary_lets_the_qf_role_replicate_with_a_password() -> None:
    """pg_hba.conf: replication for the role the compose file creates, SCRAM over TCP, trust only on the socket."""
    rules = [line.split() for line in PG_HBA.read_text().splitlines() if line.strip() and not line.startswith("#")]
    user = services()["postgres"]["environment"]["POSTGRES_USER"]
    assert ["host", "replication", user, "all", "scram-sha-256"] in rules
    assert ["host", "all", "all", "all", "scram-sha-256"] in rules
    for rule in rules:
        assert rule[-1] in ("trust", "scram-sha-256"), rule
        if rule[-1] == "trust":
            assert rule[0] == "local", rule


@pytest.mark.integration
def test_replica_script_copies_the_primary_once_then_runs_a_hot_standby() -> None:
    """The script parses, copies with pg_basebackup -R (standby.signal and primary_conninfo) only into an
    empty data directory, and runs the server as the postgres user, not as root."""
    assert subprocess.run(["sh", "-n", str(REPLICA_SCRIPT)], check=False).returncode == 0
    text = REPLICA_SCRIPT.read_text()
    assert 'if [ ! -s "$PGDATA/PG_VERSION" ]' in text
    assert re.search(r"pg_basebackup [^\n]*--write-recovery-conf", text.replace("\\\n", " "))
    assert "--wal-method=stream" in text
    assert re.search(r"^exec gosu postgres postgres .*hot_standby=on", text, re.MULTILINE)
    replica = load(SCALE_OUT)["services"]["postgres-replica"]
    assert replica["environment"]["PRIMARY_HOST"] == "postgres"


def test_indexer_host_runs_one_chain_of_the_chains_file() -> None:
    """ops/compose/indexer-host.yml: only an indexer, `qf index` over the chains file restricted to the chain
    the host names (required), reaching the primary without a password in the URL."""
    doc = load(INDEXER_HOST)
    assert set(doc["services"]) == {"indexer"}
    indexer = doc["services"]["indexer"]
    assert indexer["command"] == ["index"]
    assert "index" in qf_commands()
    assert indexer["entrypoint"] == services()["indexer"]["entrypoint"]
    env = indexer["environment"]
    assert env["QF_CHAIN_ID"].startswith("${QF_CHAIN_ID:?")  # refuses to start without a chain
    assert env["QF_CHAINS_FILE"] == "/etc/qf/chains.toml"
    assert "/etc/qf/chains.toml" in "".join(indexer["volumes"])
    assert not URL_WITH_PASSWORD.search(env["QF_DATABASE_URL"])
    assert env["QF_DATABASE_URL"].startswith("postgresql://qf@${INDEXER_DB_HOST:?")
    for name in env:
        assert not name.startswith("QF_") or name in ENV_VARS, name
    assert indexer["restart"] == "unless-stopped"
    assert indexer["healthcheck"]["test"] == services()["indexer"]["healthcheck"]["test"]
    # Paths of a file run on its own resolve against its directory.
    assert doc["secrets"]["postgres_password"]["file"] == "../../secrets/postgres_password"
    assert (INDEXER_HOST.parent / indexer["build"] / "Dockerfile").is_file()
