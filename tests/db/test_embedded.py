"""The embedded server: started on demand, shared, persistent, stopped by its last user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.embedded import resolve_database_url, stop_embedded
from qf_sentinel.qf.settings import Settings

pytestmark = pytest.mark.integration  # each test starts the embedded PostgreSQL, from other processes too

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter, like a `qf` command: resolve, run one statement, print rows.
CLIENT = """
import os, sys
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.embedded import resolve_database_url
from qf_sentinel.qf.settings import Settings

url = resolve_database_url(Settings.from_env())
with connect(url) as conn:
    cursor = conn.execute(sys.argv[1])
    print(cursor.fetchall() if cursor.description else "ok")
if sys.argv[2:] == ["crash"]:
    os._exit(1)  # dies without exit hooks, like a SIGKILL
"""


def run_client(home: Path, statement: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "QF_DATABASE_URL"}
    env |= {"QF_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", CLIENT, statement, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def server_running(home: Path) -> bool:
    return (home / "pgdata" / "postmaster.pid").exists()


@pytest.fixture
def home() -> Iterator[Path]:
    """A QF_HOME whose embedded server is stopped and deleted after the test.

    Not under pytest's tmp_path: every pytest session resets its temp root to
    0700, which would lock the server's user out if another session starts.
    """
    workdir = Path(tempfile.mkdtemp(prefix="qf-test-home-"))
    yield workdir / "home"
    stop_embedded(Settings(home=workdir / "home"))
    shutil.rmtree(workdir)


def test_data_persists_across_processes_and_server_stops_with_last_one(home: Path) -> None:
    """Processes in turn reuse QF_HOME/pgdata: a table made by the first is seen by the second."""
    first = run_client(home, "CREATE TABLE kept AS SELECT 42 AS answer")
    assert first.returncode == 0, first.stderr
    assert not server_running(home), "the server should stop when its only user exits"

    second = run_client(home, "SELECT answer FROM kept")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "[(42,)]"
    assert not server_running(home)


def test_second_process_attaches_to_the_running_server(home: Path) -> None:
    """A process started while another holds the server shares it; the server outlives it."""
    settings = Settings(home=home)
    url = resolve_database_url(settings)
    with connect(url) as conn:
        started = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()

    child = run_client(home, "SELECT pg_postmaster_start_time()::text")
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == repr([started])
    assert server_running(home), "this process still holds the server"
    assert resolve_database_url(settings) == url

    assert stop_embedded(settings)
    assert not server_running(home)
    assert not stop_embedded(settings), "stopping a stopped server reports False"


def test_restart_in_the_same_process_after_an_explicit_stop(home: Path) -> None:
    """After stop_embedded, the next resolve starts the server again, not a stale handle."""
    settings = Settings(home=home)
    resolve_database_url(settings)
    assert stop_embedded(settings)
    with connect(resolve_database_url(settings)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_crashed_holder_does_not_keep_the_server_alive(home: Path) -> None:
    """A holder that died without cleaning up is forgotten; the last live user stops the server."""
    crashed = run_client(home, "SELECT 1", "crash")
    assert crashed.returncode == 1, crashed.stderr
    assert server_running(home), "nobody stopped the server for the crashed process"

    clean = run_client(home, "SELECT 1")
    assert clean.returncode == 0, clean.stderr
    assert not server_running(home)


def test_stop_without_a_database_is_a_no_op(home: Path) -> None:
    """stop_embedded on a QF_HOME that never had a server returns False and creates nothing."""
    settings = Settings(home=home)
    assert not stop_embedded(settings)
    assert not settings.home.exists()


@pytest.mark.parametrize("running", [False, True], ids=["starting", "running"])
def test_threads_of_one_process_reach_the_server_at_once(home: Path, running: bool) -> None:
    """`qf index` resolves the database on a thread per chain. The library's lock is a file lock per process,
    not per thread: two threads at once once failed "Unable to release an unaquired lock"."""
    if running:
        started = run_client(home, "SELECT 1")  # ... and left running by its holder below
        assert started.returncode == 0, started.stderr
    settings = Settings.from_env({"QF_HOME": str(home)})
    threads = 6
    barrier = threading.Barrier(threads)

    def reach(_: int) -> str:
        barrier.wait()
        return resolve_database_url(settings, keep_running=True)

    with ThreadPoolExecutor(threads) as pool:
        urls = list(pool.map(reach, range(threads)))
    assert len(set(urls)) == 1
    with connect(urls[0]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
