"""The contribution gate end to end: a real sidecar on loopback deciding on live, point-in-time features of a
real indexed round (real Postgres, real anvil), checked against an independent replay of the same code path."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from qf_sentinel.qf.db import VIEWS_REFRESHED_CHANNEL, connect
from qf_sentinel.qf.db.migrate import apply_migrations
from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.gate import GateModel
from qf_sentinel.qf.model.loader import load_contributions, load_dataset
from qf_sentinel.qf.train.pipeline import TrainConfig, train
from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb
from qf_sentinel.scorer.models import load_bundle
from tests.fixtures.chain import Chain
from tests.fixtures.rounds import CHAIN_ID, LabelledRound
from tests.scorer.harness import ADMIN, AUTH, RunningSidecar, running_sidecar, settings_for

TOKEN = "0x" + "11" * 20
DECISIONS = {pb.DECISION_APPROVE: "APPROVE", pb.DECISION_REVIEW: "REVIEW", pb.DECISION_BLOCK: "BLOCK"}


@dataclass
class Gated:
    round: LabelledRound
    models_root: Path
    gate: GateModel
    pool_id: int
    recipient: str


@pytest.fixture(scope="module")
def gated(labelled_round: LabelledRound, tmp_path_factory: pytest.TempPathFactory) -> Gated:
    with connect(labelled_round.db_url) as conn:
        apply_migrations(conn)
        dataset = load_dataset(conn, CHAIN_ID)
    root = tmp_path_factory.mktemp("models")
    version = train(dataset, root, TrainConfig(seed=3, folds=3, n_boot=20)).version_dir
    bundle = load_bundle(version)
    assert bundle.gate is not None
    pool, _, recipient = dataset.donations.project_ids[0].partition(":")
    return Gated(labelled_round, root, bundle.gate, int(pool), recipient)


@pytest.fixture
def sidecar(gated: Gated, tmp_path: Path, anvil_node: Chain) -> Iterator[RunningSidecar]:
    settings = settings_for(tmp_path, scorer_rpc_url=anvil_node.url, scorer_wallet_budget_ms=2000.0)
    with running_sidecar(settings, gated.round.db_url, gated.models_root, metrics=True) as running:
        yield running


def contribution(gated: Gated, donor: str, amount: str = "1", **overrides: Any) -> pb.Contribution:
    values = {"donor": donor, "recipient_id": gated.recipient, "pool_id": str(gated.pool_id), "chain_id": CHAIN_ID,
              "token": TOKEN, "amount": amount} | overrides  # fmt: skip
    return pb.Contribution(**values)


def ask(sidecar: RunningSidecar, c: pb.Contribution, metadata: Any = AUTH) -> pb.ScoreContributionResponse:
    response: pb.ScoreContributionResponse = sidecar.stub.ScoreContribution(
        pb.ScoreContributionRequest(contribution=c), metadata=metadata, timeout=30
    )
    return response


def wallet(i: int) -> str:
    return "0x" + f"{i:04x}".rjust(40, "f")


def mirror(gated: Gated) -> live.LiveState:
    """An independent live state: every indexed donation replayed, as the sidecar does at start."""
    state = live.LiveState()
    with connect(gated.round.db_url) as conn:
        state.replay(load_contributions(conn, CHAIN_ID)[0])
    return state


def test_a_burst_of_new_wallets_is_seen_while_it_happens_and_decided_as_the_replay_decides(
    gated: Gated, sidecar: RunningSidecar
) -> None:
    """Twelve never-seen wallets give the same amount to one project, one call each, nothing indexed meanwhile:
    every answer is the gate model on the features an independent LiveState computes for the same sequence
    (attempts counted), so the later calls see the burst the earlier ones made."""
    expected_state = mirror(gated)
    floor = expected_state.latest_landed
    scores, burst = [], []
    for i in range(12):
        donor = wallet(i)
        answer = ask(sidecar, contribution(gated, donor, observed_at=_ts(floor + 0.1 * i)), metadata=ADMIN)
        c = live.Contribution(donor=donor, project=f"{gated.pool_id}:{gated.recipient}", pool=str(gated.pool_id),
                              amount=1.0, time=floor + 0.1 * i, nonce=0, round_amount=True)  # fmt: skip
        row = expected_state.features(c)
        expected_state.attempt(c)
        decided = gated.gate.decide(row)
        assert answer.risk_score == pytest.approx(decided.score, abs=1e-12)
        assert DECISIONS[answer.decision] == decided.decision.value
        assert answer.cold_start
        assert answer.reasons
        assert all(r.text and r.feature != r.text for r in answer.reasons)
        scores.append(answer.risk_score)
        burst.append(row[live.feature_index("project_new_coarrivals_10m")])
    assert burst == list(range(12))
    assert scores[-1] > scores[0]


def test_wallet_facts_come_from_the_node(gated: Gated, sidecar: RunningSidecar, anvil_node: Chain) -> None:
    """The funder has sent transactions: its nonce is read from anvil and is what the gate scored."""
    funder = "0x" + anvil_node.rpc.call("eth_accounts")[0].removeprefix("0x").lower()
    nonce = int(anvil_node.rpc.call("eth_getTransactionCount", [funder, "latest"]), 16)
    assert nonce > 3
    ask(sidecar, contribution(gated, funder))
    samples = _metric(sidecar, "qf_scorer_wallet_facts_total", outcome="node")
    assert samples >= 1
    row = _audited_features(gated, funder)
    assert row["wallet_nonce"] == nonce
    assert row["wallet_is_contract"] is False
    assert row["wallet_facts"] == "node"


def test_a_dead_node_makes_the_facts_unknown_not_the_gate_fail(gated: Gated, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = settings_for(tmp_path, scorer_rpc_url=dead)
    with running_sidecar(settings, gated.round.db_url, gated.models_root, metrics=True) as running:
        answers = [ask(running, contribution(gated, wallet(100 + i))) for i in range(5)]
        assert all(a.decision != pb.DECISION_UNSPECIFIED for a in answers)
        failed = _metric(running, "qf_scorer_wallet_facts_total", outcome="error")
        skipped = _metric(running, "qf_scorer_wallet_facts_total", outcome="skipped")
    assert failed >= 1
    assert failed + skipped == 5  # after the first failure the breaker skips the node, one probe a few seconds


def test_a_slow_node_is_cut_off_at_the_budget(gated: Gated, tmp_path: Path) -> None:
    """A node that answers after 3 s: every call still answers, its facts counted as a timeout (budget 50 ms)."""
    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            release.wait(3)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = settings_for(tmp_path, scorer_rpc_url=url, scorer_wallet_budget_ms=50.0)
        with running_sidecar(settings, gated.round.db_url, gated.models_root, metrics=True) as running:
            answer = ask(running, contribution(gated, wallet(200)))
            assert answer.decision != pb.DECISION_UNSPECIFIED
            assert _metric(running, "qf_scorer_wallet_facts_total", outcome="timeout") == 1
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_observed_at_needs_an_admin_and_cannot_be_in_the_future(gated: Gated, sidecar: RunningSidecar) -> None:
    floor = mirror(gated).latest_landed
    with pytest.raises(grpc.RpcError) as denied:
        ask(sidecar, contribution(gated, wallet(300), observed_at=_ts(floor)))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "observed_at" in denied.value.details()  # type: ignore[attr-defined]
    future = max(time.time(), floor) + 3600
    with pytest.raises(grpc.RpcError) as refused:
        ask(sidecar, contribution(gated, wallet(300), observed_at=_ts(future)), metadata=ADMIN)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    ask(sidecar, contribution(gated, wallet(301), observed_at=_ts(floor - 86_400)), metadata=ADMIN)
    assert _audited_features(gated, wallet(301))["observed_at"] == pytest.approx(floor)  # scored as of the block


def test_indexed_rows_land_once_and_a_reorg_rebuilds(gated: Gated, sidecar: RunningSidecar) -> None:
    """A wallet asked about, then indexed (a row appears and the indexer's NOTIFY fires): it is known from then on,
    its donation arrived once; rows removed by a reorg below the cursor make the state rebuild from the index."""
    donor = wallet(400)
    live_store = sidecar.sidecar.live
    assert live_store is not None
    first = ask(sidecar, contribution(gated, donor))
    assert first.cold_start
    with connect(gated.round.db_url) as conn:
        template = conn.execute(
            "SELECT * FROM qf.allocated WHERE chain_id = %s ORDER BY block_number DESC, log_index DESC LIMIT 1",
            (CHAIN_ID,),
        ).fetchone()
        columns = [d.name for d in conn.execute("SELECT * FROM qf.allocated LIMIT 0").description]
        values = dict(zip(columns, template, strict=True))
        block = values["block_number"] + 1
        values |= {"block_number": block, "block_hash": b"\x42" * 32, "tx_hash": b"\x43" * 32, "log_index": 0,
                   "sender": bytes.fromhex(donor[2:]), "recipient_id": bytes.fromhex(gated.recipient[2:])}
        names = ", ".join(columns)
        marks = ", ".join(["%s"] * len(columns))
        conn.execute(f"INSERT INTO qf.allocated ({names}) VALUES ({marks})", list(values.values()))
        conn.execute(f"NOTIFY {VIEWS_REFRESHED_CHANNEL}, '{CHAIN_ID}:{block}'")
        conn.commit()
        _until(lambda: live_store.cursor is not None and live_store.cursor[0] == block)
        assert not ask(sidecar, contribution(gated, donor)).cold_start
        rebuilds = _metric(sidecar, "qf_scorer_live_state_updates_total", kind="rebuild")
        conn.execute("DELETE FROM qf.allocated WHERE chain_id = %s AND block_number = %s", (CHAIN_ID, block))
        conn.execute(f"NOTIFY {VIEWS_REFRESHED_CHANNEL}, '{CHAIN_ID}:{block - 1}'")
        conn.commit()
        _until(lambda: _metric(sidecar, "qf_scorer_live_state_updates_total", kind="rebuild") > rebuilds)
    assert ask(sidecar, contribution(gated, donor, recipient_id="0x" + "99" * 20)).cold_start


def _ts(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _metric(sidecar: RunningSidecar, name: str, **labels: str) -> float:
    value = sidecar.sidecar.metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def _until(condition: Any, tries: int = 300) -> None:
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("the condition never held")


def _audited_features(gated: Gated, donor: str) -> dict[str, Any]:
    """The features of the donor's latest audited decision (the audit log is written in the background)."""
    found: dict[str, Any] = {}

    def written() -> bool:
        with connect(gated.round.db_url) as conn:
            row = conn.execute(
                "SELECT features FROM qf.scorer_decisions WHERE donor = %s ORDER BY created_at DESC LIMIT 1",
                (bytes.fromhex(donor[2:]),),
            ).fetchone()
        if row is not None:
            found.update(row[0] if isinstance(row[0], dict) else json.loads(row[0]))
        return row is not None

    _until(written)
    return found


def test_the_gate_is_monotone_in_the_wallet_nonce(gated: Gated) -> None:
    """Wallet history only lowers risk: a higher nonce never scores higher, all else equal."""
    rng = np.random.default_rng(0)
    j = live.feature_index("wallet_nonce")
    for _ in range(200):
        row = np.abs(rng.normal(0, 2, live.N_FEATURES))
        scores = []
        for nonce in (0, 1, 2, 5, 20, 100, live.NONCE_CAP):
            row[j] = nonce
            scores.append(gated.gate.probability(row)[1])
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(scores))


def test_funding_evidence_reaches_the_answer_and_unfunded_wallets_are_queued(gated: Gated, tmp_path: Path) -> None:
    """A funder that fanned out to six fresh wallets minutes before they give: by the sixth, the funding stage
    pushes (a reason in words naming the funder and its other donors) and the risk is above what the same call
    scores without the funding; a wallet asked about with no funding known is queued for the funding worker."""
    model = gated.gate
    assert model.funding is not None
    funder = bytes.fromhex("fa" * 20)
    floor = mirror(gated).latest_landed
    farm = [wallet(500 + i) for i in range(6)]
    with connect(gated.round.db_url) as conn:
        for i, address in enumerate(farm):
            conn.execute(
                "INSERT INTO qf.wallet_funding (chain_id, wallet, asset, funder, amount, block_number, block_time, "
                "depth, method) VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s), 1, 'import')",
                (CHAIN_ID, bytes.fromhex(address[2:]), b"\xee" * 20, funder, 3_141_592_653_589_793 + i, 1, floor - 300),
            )
        conn.commit()
    try:
        settings = settings_for(tmp_path / "funded")
        with running_sidecar(settings, gated.round.db_url, gated.models_root, metrics=True) as running:
            answers = [ask(running, contribution(gated, a, observed_at=_ts(floor + 0.1 * i)), metadata=ADMIN)
                       for i, a in enumerate(farm)]  # fmt: skip
            last = answers[-1]
            funding = [r for r in last.reasons if r.feature == "funding"]
            assert funding, [r.feature for r in last.reasons]
            assert "which funded 5 other donors of this round" in funding[0].text
            assert "0xfafa" in funding[0].text
            stranger = wallet(600)
            ask(running, contribution(gated, stranger))
            live_store = running.sidecar.live
            assert live_store is not None
            with connect(gated.round.db_url) as conn:
                live_store.reload_funding(conn)
                queued = conn.execute("SELECT status FROM qf.funding_wallets WHERE chain_id = %s AND wallet = %s",
                                      (CHAIN_ID, bytes.fromhex(stranger[2:]))).fetchall()  # fmt: skip
            assert queued, "the wallet with no known funding was not queued for the funding worker"
    finally:
        with connect(gated.round.db_url) as conn:
            conn.execute("DELETE FROM qf.wallet_funding WHERE chain_id = %s AND funder = %s", (CHAIN_ID, funder))
            conn.execute("DELETE FROM qf.funding_wallets WHERE chain_id = %s", (CHAIN_ID,))
            conn.commit()
    without = model.decide(np.zeros(live.N_FEATURES)).score  # the same row, no evidence: exactly the base model
    assert without == model.decide(np.zeros(live.N_FEATURES), np.zeros(5)).score
