"""The built wheel, installed with every extra into a clean virtualenv, runs the whole path on its own.

What the Docker image and ``pip install "qf-sentinel[all]"`` get: one top-level package,
``qf_sentinel``, with the migrations, the contract ABIs and the Round 9 sample inside it as
package data. From that virtualenv, run away from the checkout with nothing pointing back at it,
``qf migrate`` applies the migrations the wheel carries, ``qf index`` follows the devnet (decoding
with the ABIs the wheel carries), ``qf serve`` starts on a model, and the installed client gates
a donor the index knows (no cold start) and a wallet it does not (a cold start).
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from qf_sentinel.qf.chain.anvil import DEVNET_CHAIN_ID
from tests.fixtures.chain import Chain, free_port
from tests.indexer.live import LivePool
from tests.scorer.harness import CLIENT_TOKEN
from tests.scorer.synthetic import train_version
from tests.wheel import ROOT, build_wheel, clean_env, install, locked_constraints, wheel_names

pytestmark = pytest.mark.slow

#: Polls the sidecar until it answers, then scores an indexed donor and an unknown wallet.
CLIENT_SCRIPT = """
import json, sys, time
import grpc
from qf_sentinel.scorer.client import ScorerClient
target, token, donor, recipient, pool, chain = sys.argv[1:7]
deadline = time.monotonic() + 120
with ScorerClient(target, token=token, timeout_seconds=10) as client:
    while True:
        try:
            info = client.model_info()
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
    answers = {}
    for name, wallet in (("known", donor), ("unknown", "0x" + "5a" * 20)):
        r = client.score(donor=wallet, recipient_id=recipient, pool_id=int(pool), chain_id=int(chain),
                         token="0x" + "ee" * 20, amount="1000000000000000")
        answers[name] = {"cold_start": r.cold_start, "version": r.model_version, "decision": r.decision}
print(json.dumps({"model": info.version, **answers}))
"""
#: Where the installed package finds its data, asked from the virtualenv.
WHERE_SCRIPT = """
import json
import qf_sentinel
from qf_sentinel.qf.db.migrate import SQL_DIR
from qf_sentinel.qf.chain.abi import ARTIFACTS_DIR
from qf_sentinel.cli import ROUND9_CSV
print(json.dumps({"package": qf_sentinel.__file__, "sql": str(SQL_DIR), "abi": str(ARTIFACTS_DIR),
                  "round9": str(ROUND9_CSV), "round9_exists": ROUND9_CSV.is_file()}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``qf-sentinel[all]`` from the wheel, at the lock's versions, in a virtualenv of its own."""
    work = tmp_path_factory.mktemp("venv")
    venv = work / "venv"
    install(wheel, venv, "all", locked_constraints(work))
    return venv


def run(venv: Path, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


def test_the_wheel_is_one_package_with_its_data(wheel: Path) -> None:
    names = wheel_names(wheel)
    assert {n.split("/")[0] for n in names} == {"qf_sentinel", wheel.name.split("-py3")[0] + ".dist-info"}
    sql = shipped("sql", "*.sql") | shipped("sql/repeatable", "*.sql")
    assert len(sql) > 60
    for relative in (*sql, *shipped("contracts_abi", "*.json"), "data/gitcoin-round9-contributions.csv.xz",
                     "console/templates/base.html", "qf/funding/known_sources.csv", "py.typed"):
        assert f"qf_sentinel/{relative}" in names, relative
    for package in ("qf", "indexer", "scorer", "console"):
        assert f"qf_sentinel/{package}/__init__.py" in names


def shipped(folder: str, pattern: str) -> set[str]:
    """The repository's files the wheel must carry, as paths under its folders."""
    return {str(p.relative_to(ROOT)) for p in (ROOT / folder).glob(pattern)}


@pytest.fixture
def served(venv: Path, tmp_path: Path, db_url: str) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`qf serve` from the virtualenv, on a model trained here, reading the test's database."""
    models = tmp_path / "models"
    train_version(models)
    port = free_port()
    env = clean_env(QF_HOME=str(tmp_path / "serve-home"), QF_DATABASE_URL=db_url, QF_MODELS_DIR=str(models),
                    QF_SCORER_PORT=str(port), QF_SCORER_METRICS_PORT="0", QF_SCORER_TOKENS=f"dapp:{CLIENT_TOKEN}",
                    QF_LOG_FORMAT="json")  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "qf"), "serve"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_installed_wheel_migrates_indexes_serves_and_scores(
    venv: Path, chain: Chain, db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pool = LivePool(chain)
    for donor in pool.donors[:3]:
        pool.donate(donor, pool.recipients[0], 10**15)
    away = tmp_path / "elsewhere"  # not the checkout: nothing imports from this tree
    away.mkdir()

    where = run(venv, ["python", "-I", "-c", WHERE_SCRIPT], away, clean_env())
    assert where.returncode == 0, where.stderr
    found = json.loads(where.stdout)
    for key in ("package", "sql", "abi", "round9"):
        assert Path(found[key]).is_relative_to(venv), found
    assert found["round9_exists"]

    env = clean_env(QF_HOME=str(tmp_path / "home"), QF_DATABASE_URL=db_url, QF_LOG_FORMAT="json")
    migrated = run(venv, ["qf", "migrate"], away, env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    indexed = run(venv, ["qf", "index", "--until-caught-up"], away, env | {
        "QF_RPC_URLS": chain.url, "QF_CORE_ADDRESS": chain.deployment.core,
        "QF_START_BLOCK": str(chain.deployment.start_block), "QF_INDEXER_METRICS_PORT": "0",
    })  # fmt: skip
    assert indexed.returncode == 0, indexed.stdout[-4000:] + indexed.stderr[-4000:]
    with psycopg.connect(db_url) as conn:
        donors = conn.execute("SELECT count(DISTINCT donor) FROM qf.donations WHERE pool_id = %s",
                              (pool.pool_id,)).fetchone()  # fmt: skip
    assert donors == (3,)

    proc, port, log = request.getfixturevalue("served")
    scored = run(venv, ["python", "-I", "-c", CLIENT_SCRIPT, f"127.0.0.1:{port}", CLIENT_TOKEN, pool.donors[0],
                        pool.recipients[0], str(pool.pool_id), str(DEVNET_CHAIN_ID)], away, clean_env())  # fmt: skip
    assert scored.returncode == 0, scored.stderr + log.read_text()[-4000:]
    answers = json.loads(scored.stdout)
    assert answers["known"]["cold_start"] is False, answers  # the donor qf index stored
    assert answers["unknown"]["cold_start"] is True, answers
    assert answers["known"]["version"] == answers["model"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-4000:]
