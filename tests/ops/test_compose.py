"""docker-compose.yml, checked statically (no Docker engine here), and the pieces it runs checked for real.

The file must describe the deployment the README promises: every service with a
health check and a restart policy, the devnet only on demand, ports on loopback,
secrets from files, only settings that `qf` knows, real `qf` subcommands. The
password wrapper and the health-check one-liners run here against real
endpoints, and every environment variable the code reads must be documented.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import typer.main
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from qf_sentinel.cli import app
from qf_sentinel.indexer.metrics import IndexerMetrics
from qf_sentinel.qf.http_metrics import HealthState, serve_metrics
from qf_sentinel.qf.settings import ENV_VARS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
WRAPPER = ROOT / "ops" / "docker" / "with-pgpassword"

LONG_RUNNING = {"postgres", "anvil", "indexer", "scorer", "console", "prometheus", "grafana"}
ONE_SHOT = {"migrate"}
QF_SERVICES = {"migrate", "indexer", "scorer", "console"}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|PRIVATE|(^|_)KEY($|_)")
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
ENV_NAME = re.compile(r"\bQF_[A-Z0-9_]*[A-Z0-9]\b")
#: Read by the test fixtures only, never by the code under qf/, indexer/ or scorer/.
TEST_ONLY_VARS = {"QF_TEST_DATABASE_URL"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=value list form
        env = dict(entry.split("=", 1) for entry in env)
    return {str(k): str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), f"depends_on must name a condition per dependency, not {deps!r}"
    return deps


def healthcheck_command(name: str) -> list[str]:
    test = services()[name]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return list(test[1:])


def qf_commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    commands: dict[str, Any] = group.commands  # type: ignore[attr-defined]
    return commands


# -- shape ------------------------------------------------------------------------------------------


def test_the_expected_services_exist() -> None:
    """The file parses as YAML and holds the database, devnet, migration, indexer, sidecar and monitoring."""
    assert set(services()) == LONG_RUNNING | ONE_SHOT


def test_every_long_running_service_has_a_health_check_and_restarts() -> None:
    """Long-running services report health and come back after a crash; the one-shot migration does not loop."""
    for name in LONG_RUNNING:
        service = services()[name]
        check = service.get("healthcheck") or {}
        assert not check.get("disable", False), name
        assert check.get("test"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(check), name
        assert service.get("restart") == "unless-stopped", name
    for name in ONE_SHOT:
        assert "healthcheck" not in services()[name], name
        assert services()[name].get("restart") == "no", name


def test_anvil_runs_only_in_the_devnet_profile() -> None:
    """`docker compose up` never starts the devnet, and nothing that does start waits for it."""
    assert services()["anvil"]["profiles"] == ["devnet"]
    for name, service in services().items():
        if name != "anvil":
            assert "profiles" not in service, name
            assert "anvil" not in depends_on(service), name


def test_startup_order_waits_for_health_and_migrations() -> None:
    """The migration waits for a healthy database; the indexer and the sidecar for a completed migration."""
    for name, service in services().items():
        for dependency, spec in depends_on(service).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec.get("condition") == expected, (name, dependency, spec)
    assert set(depends_on(services()["migrate"])) == {"postgres"}
    for name in ("indexer", "scorer", "console"):
        assert set(depends_on(services()[name])) == {"postgres", "migrate"}, name
    assert set(depends_on(services()["grafana"])) == {"prometheus"}


def test_published_ports_are_bound_to_loopback() -> None:
    """Only the ports a user needs are published, and only on 127.0.0.1."""
    published: dict[str, list[int]] = {}
    for name, service in services().items():
        for port in service.get("ports", []):
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", (name, port)
                published.setdefault(name, []).append(int(port["target"]))
            else:
                host_ip, host_port, target = str(port).split(":")
                assert host_ip == "127.0.0.1", (name, port)
                assert host_port == target, (name, port)
                published.setdefault(name, []).append(int(target))
    assert published == {
        "postgres": [5432], "anvil": [8545], "scorer": [50051], "console": [8088], "prometheus": [9090],
        "grafana": [3000],
    }  # fmt: skip


# -- secrets and settings ---------------------------------------------------------------------------


def test_no_secret_is_written_in_the_file() -> None:
    """Passwords and tokens come from files under ./secrets/, mounted as Docker secrets, never from literals."""
    text = COMPOSE.read_text()
    assert not URL_WITH_PASSWORD.search(text), URL_WITH_PASSWORD.search(text)
    assert not re.search(r"0x[0-9a-fA-F]{64}", text), "a private key in docker-compose.yml"
    declared = compose()["secrets"]
    for name, spec in declared.items():
        assert set(spec) == {"file"}, name
        assert spec["file"] == f"./secrets/{name}", name
    used: set[str] = set()
    for name, service in services().items():
        mounted = set(service.get("secrets", []))
        used |= mounted
        for key, value in environment(service).items():
            if not SECRET_NAME.search(key):
                continue
            assert key.endswith("_FILE"), f"{name}: {key} must name a file, not hold the secret"
            assert value.startswith("/run/secrets/"), (name, key, value)
            assert value.removeprefix("/run/secrets/") in mounted, f"{name}: {key} names a secret it does not mount"
    assert used == set(declared)


def test_secret_files_stay_out_of_git_and_the_image() -> None:
    """secrets/ tracks only its README and .gitignore; the build context leaves the directory out."""
    assert (ROOT / "secrets" / "README.md").is_file()
    lines = (ROOT / "secrets" / ".gitignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    assert set(patterns[1:]) == {"!.gitignore", "!README.md"}
    assert "secrets" in (ROOT / ".dockerignore").read_text().split()
    readme = (ROOT / "secrets" / "README.md").read_text()
    for name in compose()["secrets"]:
        assert f"secrets/{name}" in readme, f"secrets/README.md does not say how to create {name}"


def test_every_qf_variable_in_the_file_is_a_known_setting() -> None:
    """Each QF_* variable set (or interpolated) in docker-compose.yml is one that `qf` reads."""
    set_here = {key for service in services().values() for key in environment(service) if key.startswith("QF_")}
    interpolated = set(re.findall(r"\$\{(QF_[A-Z0-9_]+)", COMPOSE.read_text()))
    assert set_here, "no QF_ variable found: the test would prove nothing"
    assert (set_here | interpolated) - set(ENV_VARS) == set()


def test_every_variable_the_code_reads_is_documented() -> None:
    """Each QF_* name in the code's string literals (docstrings aside) is listed in qf.settings.ENV_VARS."""
    found: dict[str, list[str]] = {}
    for package in ("qf", "indexer", "scorer"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            docs = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                    for name in ENV_NAME.findall(node.value):
                        found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert {"QF_DATABASE_URL", "QF_RPC_URLS", "QF_SCORER_TOKENS"} <= set(found), "the scan found too little"
    undocumented = {name: where for name, where in found.items() if name not in set(ENV_VARS) | TEST_ONLY_VARS}
    assert undocumented == {}


# -- what the services run --------------------------------------------------------------------------


def test_the_qf_services_run_real_subcommands() -> None:
    """migrate, index and serve are subcommands of the typer app, and their options exist."""
    commands = qf_commands()
    expected = {"migrate": ["migrate"], "indexer": ["index"], "scorer": ["serve", "--host", "0.0.0.0"],
                "console": ["console", "--host", "0.0.0.0"]}
    for name, command in expected.items():
        service = services()[name]
        assert service["command"] == command, name
        assert service["entrypoint"] == ["with-pgpassword", "qf"], name
        assert service["image"] == services()["migrate"]["image"], name
        subcommand = commands[command[0]]
        options = {opt for param in subcommand.params for opt in param.opts}
        assert {arg for arg in command[1:] if arg.startswith("--")} <= options, name


def test_the_qf_services_reach_the_database_through_the_password_secret() -> None:
    """The URL names the postgres service and its database without a password; the wrapper supplies it."""
    postgres = environment(services()["postgres"])
    for name in QF_SERVICES:
        env = environment(services()[name])
        user, database = postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]
        assert env["QF_DATABASE_URL"] == f"postgresql://{user}@postgres:5432/{database}", name
        assert env["POSTGRES_PASSWORD_FILE"] == postgres["POSTGRES_PASSWORD_FILE"], name
        assert "postgres_password" in services()[name]["secrets"], name


def test_volumes_keep_the_state() -> None:
    """Database, models, Prometheus and Grafana data live in named volumes, mounted where each program writes."""
    assert set(compose()["volumes"]) == {"pgdata", "models", "prometheus-data", "grafana-data"}
    mounts = {name: set(service.get("volumes", [])) for name, service in services().items()}
    assert "pgdata:/var/lib/postgresql" in mounts["postgres"]
    models_dir = environment(services()["scorer"])["QF_MODELS_DIR"]
    assert f"models:{models_dir}" in mounts["scorer"]
    assert "prometheus-data:/prometheus" in mounts["prometheus"]
    assert "--storage.tsdb.path=/prometheus" in services()["prometheus"]["command"]
    assert "grafana-data:/var/lib/grafana" in mounts["grafana"]


def test_prometheus_runs_the_config_of_ops_prometheus() -> None:
    """The ops/prometheus directory is mounted read-only and its prometheus.yml is the config file."""
    prometheus = services()["prometheus"]
    assert "./ops/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert (ROOT / "ops" / "prometheus" / "prometheus.yml").is_file()


def test_prometheus_scrape_targets_are_the_services_metrics_endpoints() -> None:
    """Each target of prometheus.yml is a compose service whose metrics endpoint listens there, beyond loopback."""
    config = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    port_setting = {"indexer": "QF_INDEXER_METRICS_PORT", "scorer": "QF_SCORER_METRICS_PORT"}
    targets = [t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]]
    assert targets
    for target in targets:
        host, port = target.split(":")
        env = environment(services()[host])
        assert env[port_setting[host]] == port, target
        assert env["QF_METRICS_HOST"] == "0.0.0.0", target


# -- the password wrapper, for real -----------------------------------------------------------------


def run_wrapper(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """ops/docker/with-pgpassword running a Python that prints what it got in PGPASSWORD."""
    base = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "POSTGRES_PASSWORD_FILE")}
    probe = "import os; print(repr(os.environ.get('PGPASSWORD')))"
    return subprocess.run(
        ["sh", str(WRAPPER), sys.executable, "-c", probe],
        env=base | env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.integration
def test_wrapper_passes_the_secret_file_as_pgpassword(tmp_path: Path) -> None:
    """The password file's content, without its trailing newlines (as the postgres image reads it), is PGPASSWORD."""
    secret = tmp_path / "postgres_password"
    secret.write_text("s3cret with spaces:@/\n\n")
    done = run_wrapper({"POSTGRES_PASSWORD_FILE": str(secret)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr("s3cret with spaces:@/")


@pytest.mark.integration
def test_wrapper_leaves_an_explicit_pgpassword_and_no_file_alone(tmp_path: Path) -> None:
    """An explicit PGPASSWORD wins over the file; without a file the command runs without a password."""
    secret = tmp_path / "postgres_password"
    secret.write_text("from-file\n")
    done = run_wrapper({"POSTGRES_PASSWORD_FILE": str(secret), "PGPASSWORD": "explicit"})
    assert done.stdout.strip() == repr("explicit"), done.stderr
    done = run_wrapper({})
    assert (done.returncode, done.stdout.strip()) == (0, "None"), done.stderr


@pytest.mark.integration
def test_wrapper_refuses_a_missing_secret_file(tmp_path: Path) -> None:
    """A password file that cannot be read stops the container with one line, before qf starts."""
    done = run_wrapper({"POSTGRES_PASSWORD_FILE": str(tmp_path / "absent")})
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: POSTGRES_PASSWORD_FILE"), done.stderr
    assert os.access(WRAPPER, os.X_OK), "ops/docker/with-pgpassword must be executable"


# -- the health checks, for real --------------------------------------------------------------------


def run_check(command: list[str], old: str, new: str) -> int:
    """Run a service's health-check command here, with ``old`` (its address) replaced by ``new``."""
    assert command[:2] == ["python", "-c"], command
    assert old in command[2], f"{old!r} not in {command[2]!r}"
    program = command[2].replace(old, new)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60, check=False).returncode


@pytest.mark.integration
def test_indexer_health_check_follows_healthz() -> None:
    """The indexer's check passes on a live /healthz and fails once the loop has stalled."""
    env = environment(services()["indexer"])
    address = f"127.0.0.1:{env['QF_INDEXER_METRICS_PORT']}/healthz"
    state = HealthState(stale_after_seconds=60)
    server, stop = serve_metrics(IndexerMetrics(), state, "127.0.0.1", 0)
    try:
        here = f"127.0.0.1:{server.server_address[1]}/healthz"
        assert run_check(healthcheck_command("indexer"), address, here) == 0
        state.last_tick = time.monotonic() - 3600
        assert run_check(healthcheck_command("indexer"), address, here) != 0
    finally:
        stop()


@pytest.fixture
def health_server() -> Iterator[tuple[health.HealthServicer, int]]:
    """A real gRPC server on loopback with the standard health service."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(None).wait()


@pytest.mark.integration
def test_scorer_health_check_follows_grpc_health(health_server: tuple[health.HealthServicer, int]) -> None:
    """The sidecar's check passes while the server is SERVING and fails once it is NOT_SERVING."""
    servicer, port = health_server
    published = services()["scorer"]["ports"][0].split(":")[-1]
    address, here = f"127.0.0.1:{published}", f"127.0.0.1:{port}"
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert run_check(healthcheck_command("scorer"), address, here) == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert run_check(healthcheck_command("scorer"), address, here) != 0
