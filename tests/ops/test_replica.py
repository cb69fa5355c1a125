"""The read replica of ops/compose/scale-out.yml for real, on the embedded PostgreSQL's binaries: the primary's
pg_hba.conf loads without an error, and a copy made with the replica script's own pg_basebackup options runs
as a hot standby that follows the primary and refuses writes."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.embedded import create_command_function, pg_ctl, start_server, system_user
from tests.ops.test_scale_out import PG_HBA, REPLICA_SCRIPT

pytestmark = pytest.mark.integration  # a primary and a replica PostgreSQL

pg_basebackup = create_command_function("pg_basebackup")


def basebackup_options() -> list[str]:
    """The script's pg_basebackup options, less where from and where to (the test's own)."""
    lines = REPLICA_SCRIPT.read_text().replace("\\\n", " ").splitlines()
    line = next(ln for ln in lines if "gosu postgres pg_basebackup" in ln)
    words = shlex.split(line)
    options = [w for w in words if w.startswith("--") and not w.startswith(("--host=", "--username=", "--pgdata="))]
    assert "--write-recovery-conf" in options
    return options


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="qf-test-replica-"))  # outside tmp_path: the server's user must reach it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_replica_follows_the_primary_read_only(workdir: Path) -> None:
    primary = start_server(workdir / "primary", cleanup_mode="delete")
    replica = workdir / "replica"
    sockets = workdir / "replica-socket"  # not its data directory: the copy holds the primary's socket lock
    sockets.mkdir()
    user = system_user()
    if user is not None:
        shutil.chown(workdir, user)
        shutil.chown(sockets, user)
    try:
        # The primary's rules, in place of initdb's: every line parses, replication included.
        (workdir / "primary" / "pg_hba.conf").write_text(PG_HBA.read_text())
        with connect(primary.get_uri(), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            errors = conn.execute("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL").fetchall()
            assert errors == []
            kinds = conn.execute("SELECT DISTINCT type, database FROM pg_hba_file_rules ORDER BY 1, 2").fetchall()
            assert ("host", ["replication"]) in kinds
            conn.execute("CREATE TABLE copied (n int)")
        socket = primary.get_postmaster_info().socket_dir
        assert socket is not None
        pg_basebackup([f"--host={socket}", "--username=postgres", f"--pgdata={replica}", *basebackup_options()],
                      user=user, timeout=120)  # fmt: skip
        assert (replica / "standby.signal").exists()
        options = ["-w", "-o", '-h ""', "-o", f"-k {sockets}", "-o", "-c hot_standby=on", "-l", str(replica / "log")]
        try:
            pg_ctl([*options, "start"], pgdata=replica, user=user, timeout=120)
        except subprocess.CalledProcessError:
            pytest.fail("the standby did not start: " + (replica / "log").read_text()[-2000:])
        try:
            with connect(primary.get_uri(), autocommit=True) as conn:
                conn.execute("INSERT INTO copied VALUES (42)")
            standby_url = f"postgresql://postgres@/postgres?host={sockets}"
            with connect(standby_url, autocommit=True) as standby:
                assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
                deadline = time.monotonic() + 30
                while standby.execute("SELECT count(*) FROM copied").fetchone() != (1,):
                    assert time.monotonic() < deadline, "the standby did not replay the primary's insert"
                    time.sleep(0.1)
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    standby.execute("INSERT INTO copied VALUES (1)")
        finally:
            with contextlib.suppress(Exception):
                pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=replica, user=user, timeout=60)
    finally:
        primary.cleanup()
