"""A real Prometheus on loopback scrapes a real `qf index` process and a real scoring sidecar.

The scrape config is ops/prometheus/prometheus.yml retargeted at loopback ports
(1 s interval) with the same alerts.yml, so this shows that the deployment's
series names, labels and rules fit together: both targets up, the indexer's
progress and readiness, the scorer's call counters and model info, the rules loaded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb
from tests.fixtures.chain import Chain, free_port
from tests.indexer.live import LivePool
from tests.scorer.harness import AUTH, RunningSidecar, running_sidecar, settings_for
from tests.scorer.synthetic import CHAIN_ID, train_version

OPS = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
#: Generous: shared CI machines are slow, and every wait below is a polling loop, not a sleep.
TIMEOUT_SECONDS = 180.0
SCORE_CALLS = 7


@dataclass
class Process:
    """A child process whose output goes to a file (a pipe nobody reads could fill up and block it)."""

    proc: subprocess.Popen[bytes]
    log: Path

    def eventually(self, what: str, probe: Callable[[], Any]) -> Any:
        """Poll ``probe`` until it returns something truthy; fail with the last answer and this process's log
        after a generous while, or at once if the process exits."""
        deadline = time.monotonic() + TIMEOUT_SECONDS
        last: Any = None
        while time.monotonic() < deadline and self.alive():
            try:
                last = probe()
            except httpx.TransportError as exc:  # not listening yet
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.25)
        state = "running" if self.alive() else f"exited with {self.proc.returncode}"
        raise AssertionError(
            f"{what}: not reached in {TIMEOUT_SECONDS:.0f} s; last answer {last!r}; {self.log.name} {state}:\n"
            + self.log.read_text()[-4000:]
        )

    @classmethod
    def start(cls, args: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        return cls(proc, log)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@dataclass
class Indexer:
    process: Process
    metrics_port: int
    pool: LivePool


@pytest.fixture
def indexer(chain: Chain, db_url: str, tmp_path: Path) -> Iterator[Indexer]:
    """`qf index` following the test chain (an open pool with a few donations) into a fresh database."""
    pool = LivePool(chain)
    for donor in pool.donors[:3]:
        pool.donate(donor, pool.recipients[0], 10**15)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")} | {
        "QF_HOME": str(tmp_path / "indexer-home"), "QF_DATABASE_URL": db_url, "QF_RPC_URLS": chain.url,
        "QF_CORE_ADDRESS": chain.deployment.core, "QF_START_BLOCK": str(chain.deployment.start_block),
        "QF_INDEXER_METRICS_PORT": str(port), "QF_POLL_INTERVAL_SECONDS": "0.1", "QF_LOG_FORMAT": "json",
        "QF_REFRESH_DEBOUNCE_SECONDS": "0.2",
    }  # fmt: skip
    process = Process.start([sys.executable, "-m", "qf_sentinel", "index"], tmp_path / "indexer.log", env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False) as http:
            process.eventually("the indexer caught up (/readyz)", lambda: http.get("/readyz").status_code == 200)
        yield Indexer(process, port, pool)
    finally:
        code = process.stop()
    assert code == 0, process.log.read_text()[-4000:]


@pytest.fixture
def sidecar(indexer: Indexer, db_url: str, tmp_path: Path) -> Iterator[RunningSidecar]:
    """The scoring sidecar with a synthetic model of the test chain, reading features from the indexer's database."""
    del indexer  # the indexer migrated the database the sidecar reads
    models = tmp_path / "models"
    train_version(models)
    settings = settings_for(tmp_path / "scorer-home").with_(scorer_metrics_port=free_port())
    with running_sidecar(settings, db_url, models, metrics=True) as running:
        yield running


def write_config(tmp_path: Path, indexer_port: int, scorer_port: int) -> Path:
    """The deployment's prometheus.yml, pointed at loopback and scraping every second."""
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(OPS / rules) for rules in config["rule_files"]]
    ports = {"indexer": indexer_port, "scorer": scorer_port}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Prometheus:
    process: Process
    http: httpx.Client

    def api(self, path: str, **params: str) -> Any:
        response = self.http.get(f"/api/v1/{path}", params=params)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of each series."""
        data = self.api("query", query=promql)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def eventually(self, what: str, probe: Callable[[], Any]) -> Any:
        return self.process.eventually(what, probe)


@pytest.fixture
def prometheus(indexer: Indexer, sidecar: RunningSidecar, tmp_path: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (apt-get install prometheus)"
    config = write_config(tmp_path, indexer.metrics_port, sidecar.sidecar.config.metrics_port)
    port = free_port()
    process = Process.start(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        tmp_path / "prometheus.log",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as http:
            running = Prometheus(process, http)
            running.eventually("Prometheus ready", lambda: http.get("/-/ready").status_code == 200)
            yield running
    finally:
        code = process.stop()
    assert code == 0, process.log.read_text()[-4000:]


def score(sidecar: RunningSidecar, i: int) -> pb.ScoreContributionResponse:
    contribution = pb.Contribution(donor="0x" + f"{i + 1:040x}", recipient_id="0x" + "22" * 20, pool_id="1",
                                   chain_id=CHAIN_ID, token="0x" + "11" * 20, amount="5")  # fmt: skip
    request = pb.ScoreContributionRequest(contribution=contribution)
    response: pb.ScoreContributionResponse = sidecar.stub.ScoreContribution(request, metadata=AUTH, timeout=10)
    return response


def test_prometheus_scrapes_the_indexer_and_the_scorer(
    chain: Chain, indexer: Indexer, sidecar: RunningSidecar, prometheus: Prometheus
) -> None:
    """Both targets up; indexer progress and readiness, scorer calls and model info visible; the alerts loaded."""
    for i in range(SCORE_CALLS):
        assert score(sidecar, i).decision_id

    def targets_up() -> dict[str, str]:
        health = {t["labels"]["job"]: t["health"] for t in prometheus.api("targets", state="active")["activeTargets"]}
        return health if health == {"indexer": "up", "scorer": "up"} else {}

    prometheus.eventually("both targets up", targets_up)
    for job in ("indexer", "scorer"):
        assert [value for _, value in prometheus.query(f'up{{job="{job}"}}')] == [1.0]

    # Live follow: a donation made now reaches Prometheus through the running indexer.
    indexer.pool.donate(indexer.pool.donors[4], indexer.pool.recipients[1], 10**15)
    head = chain.rpc.block_number()
    prometheus.eventually(
        f"qf_indexer_last_indexed_block >= {head}", lambda: prometheus.query(f"qf_indexer_last_indexed_block >= {head}")
    )
    assert prometheus.query('qf_indexer_ready{job="indexer"}')
    assert prometheus.query('sum(qf_indexer_events_ingested_total{job="indexer"}) > 0')
    assert prometheus.query('sum(qf_indexer_rpc_requests_total{job="indexer"}) > 0')

    calls = 'qf_scorer_rpcs_handled_total{job="scorer",method="ScoreContribution",code="OK"}'
    prometheus.eventually(f"{calls} >= {SCORE_CALLS}", lambda: prometheus.query(f"{calls} >= {SCORE_CALLS}"))
    assert prometheus.query(f'sum(qf_scorer_decisions_total{{job="scorer"}}) >= {SCORE_CALLS}')
    assert prometheus.query('qf_scorer_rpc_handling_seconds_count{job="scorer",method="ScoreContribution"} > 0')
    ((labels, value),) = prometheus.query('qf_scorer_model_info{job="scorer"}')
    assert value == 1.0
    assert labels["version"] == sidecar.sidecar.models.current().version
    assert labels["served_model"]

    groups = yaml.safe_load((OPS / "alerts.yml").read_text())["groups"]
    expected = {rule["alert"] for g in groups for rule in g["rules"]}
    loaded = {rule["name"] for g in prometheus.api("rules", type="alert")["groups"] for rule in g["rules"]}
    assert loaded == expected

    def rule_health() -> dict[str, str]:
        health = {rule["name"]: rule["health"] for g in prometheus.api("rules")["groups"] for rule in g["rules"]}
        return health if set(health.values()) == {"ok"} else {}

    prometheus.eventually("every rule evaluated without error against the real series", rule_health)
    assert indexer.process.alive(), "the indexer stopped during the scrape"
