"""The console on the demo's kind of round: simulated, indexed, trained, scored and gated by a real sidecar.

Built once for the package (simulating, training and gating take seconds): the
round of :mod:`tests.fixtures.rounds` driven through the real Allo v2 strategy (as
``make demo`` does, so projects have Registry names), a model trained on it, ``qf score`` of
its first pool, a real sidecar answering ScoreContribution for every labelled
donor (so ``qf.scorer_decisions`` holds REVIEW and BLOCK decisions, as after
``make demo``) and an experiment with outcomes. Before training, the
accepted projects of the first pool and the round's operator are renamed on
chain with hostile names (:mod:`tests.console.hostile`) and the chain indexed
again, so every page and download shows chain data an attacker chose.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from qf_sentinel.batch import score_pool, store_pool_scores
from qf_sentinel.console.app import create_app, server_config
from qf_sentinel.console.config import ConsoleConfig
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.model.bundle import Thresholds
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.loader import load_dataset
from qf_sentinel.qf.sim.dvmdt import DvmdtRound
from qf_sentinel.qf.train.pipeline import TrainConfig, train
from qf_sentinel.scorer.client import ScorerClient
from qf_sentinel.scorer.models import ModelStore
from tests.console.hostile import Renamed, rename_on_chain
from tests.fixtures.chain import Chain
from tests.fixtures.rounds import CHAIN_ID, build_labelled_round
from tests.indexer.harness import backfill
from tests.scorer.harness import CLIENT_TOKEN, running_sidecar, settings_for

REVIEWER_TOKEN = "reviewer-token-0123456789abcdef"
SECOND_REVIEWER_TOKEN = "reviewer2-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"
SESSION_SECRET = "session-secret-0123456789abcdefghijklmnopqrstuvwxyz"
#: Low cut-offs, so the sidecar sends a good share of the round to REVIEW and BLOCK.
THRESHOLDS = Thresholds(review=0.2, block=0.6)


@dataclass(frozen=True)
class ConsoleRound:
    db_url: str
    models_dir: Path
    pool_id: int
    #: donors the sidecar answered REVIEW or BLOCK for
    flagged: tuple[str, ...]
    #: a donor it approved
    approved: str
    #: the hostile names given on chain (projects of the pool, the operator)
    renamed: Renamed

    def config(self, **changes: object) -> ConsoleConfig:
        base: dict[str, object] = {
            "database_url": self.db_url, "models_dir": self.models_dir,
            "reviewers": {"alice": REVIEWER_TOKEN, "carol": SECOND_REVIEWER_TOKEN}, "viewers": {"bob": VIEWER_TOKEN},
            "session_secret": SESSION_SECRET,
        }  # fmt: skip
        return ConsoleConfig(**(base | changes))  # type: ignore[arg-type]


def last_donations(dataset: Dataset, pool_id: int) -> dict[str, tuple[str, float]]:
    """Each donor's last donation in the pool: (recipient id, amount in token units)."""
    d = dataset.donations
    addresses = dataset.donors["address"].to_numpy()
    last: dict[str, tuple[str, float]] = {}
    for donor, project, amount in zip(d.donor.tolist(), d.project.tolist(), d.amount.tolist(), strict=True):
        pool, _, recipient = d.project_ids[project].partition(":")
        if pool == str(pool_id):
            last[str(addresses[donor]).lower()] = (recipient, float(amount))
    return last


@pytest.fixture(scope="package")
def console_round(anvil_node: Chain, pg_server_url: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[ConsoleRound]:  # fmt: skip
    models_dir = tmp_path_factory.mktemp("console-models")
    with build_labelled_round(anvil_node, pg_server_url, DvmdtRound) as built:
        with connect(built.db_url) as conn:
            anchors = {str(n): "0x" + bytes(a).hex() for n, a in conn.execute(
                "SELECT p.name, a.anchor FROM qf.profiles p JOIN qf.profile_anchors a USING (chain_id, profile_id)")}
        renamed = rename_on_chain(anvil_node, built.plan, anchors)
        backfill(anvil_node, built.db_url, Path(tempfile.mkdtemp(prefix="qf-test-console-")))
        with connect(built.db_url) as conn:
            dataset = load_dataset(conn, CHAIN_ID)
            pool_id = int(conn.execute("SELECT min(pool_id) FROM qf.round_stats").fetchone()[0])
        train(dataset, models_dir, TrainConfig(seed=7, folds=3, n_boot=50))
        bundle = ModelStore().load(models_dir, None)
        with connect(built.db_url) as conn:
            store_pool_scores(conn, score_pool(dataset, bundle, pool_id))
            conn.commit()
        settings = settings_for(tmp_path_factory.mktemp("console-sidecar"), scorer_review_threshold=THRESHOLDS.review,
                                scorer_block_threshold=THRESHOLDS.block)  # fmt: skip
        decisions: dict[str, str] = {}
        with running_sidecar(settings, built.db_url, models_dir) as sidecar, \
                ScorerClient(sidecar.target, token=CLIENT_TOKEN, timeout_seconds=10.0) as client:  # fmt: skip
            # Each labelled donor asks to give again what it gave last (recipient, amount): mostly approved.
            last = last_donations(dataset, pool_id)
            for label in built.plan.labels:
                recipient, amount = last.get(label.address.lower(), ("0x" + "00" * 20, 5.0))
                r = client.score(donor=label.address, recipient_id=recipient, pool_id=pool_id,
                                 chain_id=CHAIN_ID, token="0x" + "ee" * 20, amount=f"{amount:.4f}")  # fmt: skip
                decisions[label.address.lower()] = ("APPROVE", "REVIEW", "BLOCK")[r.decision - 1]
            # Then a farm at work: 40 never-seen wallets give the pool's quietest project the same 2.00, one call
            # each, as a dApp backend would ask before each gift. The gate sees the burst while it happens.
            quiet = min(last.values(), key=lambda v: sum(1 for w in last.values() if w[0] == v[0]))[0]
            for i in range(40):
                farm = "0x" + f"{i + 1:04x}".rjust(40, "f")
                r = client.score(donor=farm, recipient_id=quiet, pool_id=pool_id, chain_id=CHAIN_ID,
                                 token="0x" + "ee" * 20, amount="2")  # fmt: skip
                decisions[farm] = ("APPROVE", "REVIEW", "BLOCK")[r.decision - 1]
            for i, label in enumerate(built.plan.labels[:40]):
                client.assign_variant("project_list", label.address)
                if i % 3 == 0:
                    client.record_outcome("project_list", label.address)
        flagged = tuple(d for d, v in decisions.items() if v != "APPROVE")
        approved = next(d for d, v in decisions.items() if v == "APPROVE")
        assert len(flagged) >= 10, f"the sidecar flagged only {len(flagged)} donors"
        yield ConsoleRound(built.db_url, models_dir, pool_id, flagged, approved, renamed)


@pytest.fixture
def console_app(console_round: ConsoleRound) -> Iterator[TestClient]:
    """The application in-process (lifespan run), on the round's database; not logged in."""
    with TestClient(create_app(console_round.config()), follow_redirects=False) as client:
        yield client


@dataclass(frozen=True)
class ServedConsole:
    url: str
    round: ConsoleRound


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, for a browser: its base URL."""
    server = uvicorn.Server(server_config(app, "127.0.0.1", 0))
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert httpx.get(url + "/healthz").text == "ok"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="package")
def served_console(console_round: ConsoleRound) -> Iterator[ServedConsole]:
    """The console served by uvicorn on a free loopback port, for the browser."""
    with serving(create_app(console_round.config())) as url:
        yield ServedConsole(url, console_round)
