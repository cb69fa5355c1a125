"""The sidecar end to end: a real gRPC server on loopback, a real Postgres with an indexed, labelled round,
and model versions trained from it by the real pipeline."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.migrate import apply_migrations
from qf_sentinel.qf.model import features
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.loader import load_dataset
from qf_sentinel.qf.train.pipeline import TrainConfig, train
from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb
from qf_sentinel.scorer.client import ScorerClient
from tests.fixtures.rounds import CHAIN_ID, LabelledRound
from tests.scorer.harness import ADMIN, AUTH, CLIENT_TOKEN, RunningSidecar, running_sidecar, settings_for
from tests.scorer.synthetic import calibrated, native_model, native_probability, served_features

TOKEN = "0x" + "11" * 20


@dataclass
class Served:
    round: LabelledRound
    dataset: Dataset
    models_root: Path
    versions: tuple[str, str]
    sidecar: RunningSidecar


@pytest.fixture(scope="module")
def served(labelled_round: LabelledRound, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with connect(labelled_round.db_url) as conn:
        apply_migrations(conn)
        dataset = load_dataset(conn, CHAIN_ID)
    root = tmp_path_factory.mktemp("models")
    # Versions without the contribution gate: these tests hold the donor model's path (what a version trained
    # before the gate existed serves); tests/scorer/test_gate.py holds the gate's.
    first = train(dataset, root, TrainConfig(seed=1, folds=3, n_boot=50, gate=False)).version_dir.name
    second = train(dataset, root, TrainConfig(seed=2, folds=3, n_boot=50, gate=False)).version_dir.name
    tmp = tmp_path_factory.mktemp("home")
    with running_sidecar(settings_for(tmp), labelled_round.db_url, root, version=first, metrics=True) as sidecar:
        yield Served(labelled_round, dataset, root, (first, second), sidecar)


def contribution(donor: str, **overrides: Any) -> pb.Contribution:
    values = {"donor": donor, "recipient_id": "0x" + "22" * 20, "pool_id": "1", "chain_id": CHAIN_ID,
              "token": TOKEN, "amount": "5"} | overrides  # fmt: skip
    return pb.Contribution(**values)


def score(served: Served, donor: str, **overrides: Any) -> pb.ScoreContributionResponse:
    request = pb.ScoreContributionRequest(contribution=contribution(donor, **overrides))
    response: pb.ScoreContributionResponse = served.sidecar.stub.ScoreContribution(request, metadata=AUTH, timeout=10)
    return response


def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()  # type: ignore[attr-defined, no-any-return]


def test_scores_equal_the_native_model_on_indexed_donors(served: Served) -> None:
    """Every known donor's risk is the trained library's predict_proba on its features, through the version's
    calibration; sybils score high."""
    version_dir = served.models_root / served.versions[0]
    manifest = json.loads((version_dir / "manifest.json").read_text())
    model = native_model(version_dir, manifest["served_model"])
    x = served_features(version_dir, served.dataset)
    expected = calibrated(version_dir, native_probability(model, x))
    got = np.array([score(served, address).risk_score for address in served.dataset.donors["address"]])
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    sybil = served.dataset.donors["is_sybil"].to_numpy()
    assert got[sybil].mean() > 0.7 > 0.3 > got[~sybil].mean()


def test_qf_score_equals_the_sidecar(served: Served) -> None:
    """`qf score`'s rows for every donor of a pool are the sidecar's answers for the same donors."""
    from qf_sentinel.batch import score_pool, store_pool_scores  # noqa: PLC0415
    from qf_sentinel.qf.matching.db import weights_from_model  # noqa: PLC0415
    from qf_sentinel.scorer.models import load_bundle  # noqa: PLC0415

    bundle = load_bundle(served.models_root / served.versions[0])
    pool_id = int(served.dataset.donations.project_ids[0].partition(":")[0])
    with connect(served.round.db_url) as conn:
        scores = score_pool(load_dataset(conn, CHAIN_ID), bundle, pool_id)
        assert store_pool_scores(conn, scores) == len(scores.donors) > 20
        rows = conn.execute(
            "SELECT '0x' || encode(donor, 'hex'), score, decision, weight FROM qf.donor_risk_latest "
            "WHERE pool_id = %s ORDER BY 1",
            (pool_id,),
        ).fetchall()
        weights, version, unscored = weights_from_model(conn, CHAIN_ID, pool_id, scores.donors)
    assert (version, unscored) == (bundle.version, 0)
    np.testing.assert_array_equal(weights, scores.weights)
    decision = {pb.DECISION_APPROVE: "APPROVE", pb.DECISION_REVIEW: "REVIEW", pb.DECISION_BLOCK: "BLOCK"}
    for address, risk, verdict, weight in rows:
        answer = score(served, address)
        assert answer.risk_score == pytest.approx(risk, abs=1e-12)
        assert decision[answer.decision] == verdict
        if verdict == "BLOCK":
            assert weight == 0.0


def test_decision_follows_the_thresholds_and_names_reasons(served: Served) -> None:
    donors = served.dataset.donors
    sybil = donors.loc[donors["is_sybil"], "address"].iloc[0]
    honest = donors.loc[~donors["is_sybil"], "address"].iloc[0]
    high, low = score(served, sybil), score(served, honest)
    for r in (high, low):
        thresholds = json.loads((served.models_root / served.versions[0] / "manifest.json").read_text())["thresholds"]
        expected = (
            pb.DECISION_APPROVE if r.risk_score < thresholds["review"]
            else pb.DECISION_BLOCK if r.risk_score > thresholds["block"]
            else pb.DECISION_REVIEW
        )
        assert r.decision == expected
        assert r.model_version == served.versions[0]
        assert not r.cold_start
        assert r.decision_id
        assert 1 <= len(r.reasons) <= 3
        assert all(x.feature in features.FEATURE_NAMES for x in r.reasons)
    assert high.risk_score > low.risk_score


def test_unknown_donor_is_a_cold_start_not_an_error(served: Served) -> None:
    r = score(served, "0x" + "ab" * 20)
    assert r.cold_start
    assert r.reasons[0].feature == "cold_start"
    assert 0 <= r.risk_score <= 1


def test_batch_scores_like_single_calls_in_order(served: Served) -> None:
    donors = list(served.dataset.donors["address"][:20])
    request = pb.ScoreContributionsRequest(contributions=[contribution(d) for d in donors])
    batch = served.sidecar.stub.ScoreContributions(request, metadata=AUTH, timeout=10)
    assert [r.risk_score for r in batch.results] == [score(served, d).risk_score for d in donors]


def test_batch_with_one_bad_item_names_it(served: Served) -> None:
    request = pb.ScoreContributionsRequest(contributions=[contribution(TOKEN), contribution(TOKEN, amount="-1")])
    with pytest.raises(grpc.RpcError) as info:
        served.sidecar.stub.ScoreContributions(request, metadata=AUTH, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "contributions[1].amount" in info.value.details()  # type: ignore[attr-defined]


def test_detect_anomaly_and_recommend(served: Served) -> None:
    donor = served.dataset.donors["address"].iloc[0]
    anomaly = served.sidecar.stub.DetectAnomaly(pb.DetectAnomalyRequest(donor=donor, chain_id=CHAIN_ID),
                                                metadata=AUTH, timeout=10)  # fmt: skip
    assert not anomaly.cold_start
    assert anomaly.model_version == served.versions[0]
    assert anomaly.anomaly.consensus_flag == (anomaly.anomaly.isolation_forest_flag and anomaly.anomaly.lof_flag)
    pool = served.dataset.donations.project_ids[0].split(":")[0]
    rec = served.sidecar.stub.Recommend(pb.RecommendRequest(donor=donor, pool_id=pool, k=5, chain_id=CHAIN_ID),
                                        metadata=AUTH, timeout=10)  # fmt: skip
    funded = {
        served.dataset.donations.project_ids[p].split(":")[1]
        for p in served.dataset.donations.project[served.dataset.donations.donor == 0]
    }
    assert 1 <= len(rec.projects) <= 5
    assert rec.source in ("cf", "popularity")
    assert not funded & {p.recipient_id for p in rec.projects}, "already funded projects are never recommended"
    cold = served.sidecar.stub.Recommend(pb.RecommendRequest(donor="0x" + "cd" * 20, pool_id=pool, k=3,
                                                             chain_id=CHAIN_ID), metadata=AUTH, timeout=10)  # fmt: skip
    assert cold.source == "popularity"
    assert len(cold.projects) == 3


def test_experiments_are_sticky_and_counted(served: Served) -> None:
    stub = served.sidecar.stub
    first = stub.AssignVariant(pb.AssignVariantRequest(experiment="project_list", user_id="u1"), metadata=AUTH)
    again = stub.AssignVariant(pb.AssignVariantRequest(experiment="project_list", user_id="u1"), metadata=AUTH)
    assert first.new_assignment
    assert not again.new_assignment
    assert first.variant == again.variant
    assert first.policy == "hash"
    credited = stub.RecordOutcome(pb.RecordOutcomeRequest(experiment="project_list", user_id="u1", reward=1.0),
                                  metadata=AUTH)  # fmt: skip
    assert credited.variant == first.variant
    stats = stub.GetExperimentStats(pb.GetExperimentStatsRequest(experiment="project_list"), metadata=AUTH)
    row = next(v for v in stats.variants if v.variant == first.variant)
    assert row.exposures >= 1
    assert row.conversions >= 1
    assert code_of(lambda: stub.AssignVariant(pb.AssignVariantRequest(experiment="nope", user_id="u1"),
                                              metadata=AUTH)) == grpc.StatusCode.NOT_FOUND  # fmt: skip
    assert code_of(lambda: stub.RecordOutcome(pb.RecordOutcomeRequest(experiment="project_list", user_id="never"),
                                              metadata=AUTH)) == grpc.StatusCode.FAILED_PRECONDITION  # fmt: skip


def test_authentication_and_admin_separation(served: Served) -> None:
    stub = served.sidecar.stub
    info = pb.GetModelInfoRequest()
    assert code_of(lambda: stub.GetModelInfo(info)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: stub.GetModelInfo(info, metadata=(("authorization", "Bearer wrong"),))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert code_of(lambda: stub.GetModelInfo(info, metadata=(("authorization", CLIENT_TOKEN),))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    reload = pb.ReloadModelsRequest(version=served.versions[0])
    assert code_of(lambda: stub.ReloadModels(reload, metadata=AUTH)) == grpc.StatusCode.PERMISSION_DENIED
    assert stub.ReloadModels(reload, metadata=ADMIN).version == served.versions[0]
    model = stub.GetModelInfo(info, metadata=ADMIN)  # an admin token also works for client calls
    assert model.donors_loaded == len(served.dataset.donors)
    health = health_pb2_grpc.HealthStub(served.sidecar.channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="qf.scorer.v1.Scorer")).status == (
        health_pb2.HealthCheckResponse.SERVING
    )


def test_bad_version_is_refused_and_the_old_one_keeps_serving(served: Served) -> None:
    stub = served.sidecar.stub
    for version in ("does-not-exist", "../etc"):
        assert code_of(lambda v=version: stub.ReloadModels(pb.ReloadModelsRequest(version=v), metadata=ADMIN)) in (
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT,
        )  # fmt: skip
    assert stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=AUTH).version == served.versions[0]


def test_hot_reload_under_load_fails_no_call(served: Served) -> None:
    """Four threads score continuously while an admin swaps versions back and forth: every call succeeds."""
    donors = list(served.dataset.donors["address"][:50])
    stop = threading.Event()
    seen: set[str] = set()
    errors: list[BaseException] = []
    calls = [0]

    def load() -> None:
        i = 0
        while not stop.is_set():
            try:
                seen.add(score(served, donors[i % len(donors)]).model_version)
                calls[0] += 1
            except BaseException as exc:
                errors.append(exc)
            i += 1

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load) for _ in range(4)]
        for i in range(6):
            version = served.versions[(i + 1) % 2]
            served.sidecar.stub.ReloadModels(pb.ReloadModelsRequest(version=version), metadata=ADMIN, timeout=60)
        stop.set()
        for f in futures:
            f.result()
    assert errors == []
    assert calls[0] > 0
    assert seen <= set(served.versions)
    served.sidecar.stub.ReloadModels(pb.ReloadModelsRequest(version=served.versions[0]), metadata=ADMIN, timeout=60)


ascii_or_any = st.one_of(st.text(max_size=80), st.sampled_from(["", "0x", "-1", "NaN", "inf", "1e999", "0", "1" * 80]))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(donor=ascii_or_any, recipient=ascii_or_any, pool=ascii_or_any, token=ascii_or_any, amount=ascii_or_any,
       chain=st.integers(0, 2**64 - 1))  # fmt: skip
def test_fuzzed_fields_never_crash_or_mislead(
    served: Served, donor: str, recipient: str, pool: str, token: str, amount: str, chain: int
) -> None:
    """Any field values give a score or INVALID_ARGUMENT, nothing else, and the server keeps serving."""
    request = pb.ScoreContributionRequest(
        contribution=pb.Contribution(donor=donor, recipient_id=recipient, pool_id=pool, chain_id=chain, token=token,
                                     amount=amount)
    )
    code, r = grpc.StatusCode.OK, None
    try:
        r = served.sidecar.stub.ScoreContribution(request, metadata=AUTH, timeout=10)
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
    if r is not None:
        assert 0.0 <= r.risk_score <= 1.0


def test_every_decision_is_audited(served: Served) -> None:
    """Each score is written to qf.scorer_decisions with its client, model version and the features it used."""
    marker = {"test": "audit"}
    donors = [*served.dataset.donors["address"][:7], "0x" + "ef" * 20]  # the last one is a cold start
    ids = [
        served.sidecar.stub.ScoreContribution(
            pb.ScoreContributionRequest(contribution=contribution(d, context=marker)), metadata=AUTH, timeout=10
        ).decision_id
        for d in donors
    ]
    deadline = time.monotonic() + 30
    rows: list[Any] = []
    while time.monotonic() < deadline:
        with connect(served.round.db_url) as conn:
            rows = conn.execute(
                "SELECT decision_id::text, client, model_version, (features->>'donation_count')::float8, cold_start "
                "FROM qf.scorer_decisions WHERE decision_id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
        if len(rows) == len(ids):
            break
        time.sleep(0.1)
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert {(r[1], r[2]) for r in rows} == {("dapp", served.versions[0])}
    per_donor = np.bincount(served.dataset.donations.donor, minlength=len(served.dataset.donors))
    counts = dict(zip(served.dataset.donors["address"], per_donor.astype(float), strict=True))
    by_id = {r[0]: (r[3], r[4]) for r in rows}
    for decision_id, donor in zip(ids, donors, strict=True):
        # A known donor's indexed count; a cold start is scored (and logged) as its first donation.
        assert by_id[decision_id] == ((counts[donor], False) if donor in counts else (1.0, True))


def test_metrics_count_calls_by_method_and_code(served: Served) -> None:
    metrics = served.sidecar.sidecar.metrics
    score(served, TOKEN)
    value = metrics.registry.get_sample_value(
        "qf_scorer_rpcs_handled_total", {"method": "ScoreContribution", "code": "OK"}
    )
    assert value is not None
    assert value >= 1
    assert metrics.registry.get_sample_value("qf_scorer_rpcs_handled_total",
                                             {"method": "GetModelInfo", "code": "UNAUTHENTICATED"}) >= 1  # fmt: skip


def test_rate_limit_and_health_flip(labelled_round: LabelledRound, served: Served, tmp_path: Path) -> None:
    """A client over its budget gets RESOURCE_EXHAUSTED; on shutdown health turns NOT_SERVING before the port closes."""
    config = settings_for(tmp_path).with_(scorer_rate_limit_per_minute=5.0)
    with running_sidecar(config, labelled_round.db_url, served.models_root, drain_seconds=2.0) as sidecar:
        codes = []
        for _ in range(8):
            try:
                sidecar.stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=AUTH, timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())  # type: ignore[attr-defined]
        assert codes[:5] == [grpc.StatusCode.OK] * 5
        assert codes[5:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
        registry = sidecar.sidecar.metrics.registry
        assert registry.get_sample_value("qf_scorer_rate_limited_total", {"client": "dapp"}) == 3
        health = health_pb2_grpc.HealthStub(sidecar.channel)
        request = health_pb2.HealthCheckRequest(service="qf.scorer.v1.Scorer")
        assert health.Check(request).status == health_pb2.HealthCheckResponse.SERVING
        sidecar.loop.call_soon_threadsafe(sidecar.sidecar.request_stop)
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            status = health.Check(request, timeout=5).status
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            time.sleep(0.05)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_client_fail_policy_when_the_sidecar_is_down(served: Served) -> None:
    """The Python client: real verdicts when up; REVIEW (default), BLOCK (closed) or APPROVE (open) when down."""
    donor = served.dataset.donors["address"].iloc[0]
    args = {"donor": donor, "recipient_id": "0x" + "22" * 20, "pool_id": 1, "chain_id": CHAIN_ID, "token": TOKEN,
            "amount": "5"}  # fmt: skip
    with ScorerClient(served.sidecar.target, token=CLIENT_TOKEN, timeout_seconds=5) as client:
        verdict = client.gate(**args)
        assert not verdict.degraded
        assert verdict.model_version == served.versions[0]
        with pytest.raises(grpc.RpcError):
            client.gate(**(args | {"amount": "-5"}))  # bad input is raised, never masked
    for mode, decision in (("review", "REVIEW"), ("closed", "BLOCK"), ("open", "APPROVE")):
        with ScorerClient("127.0.0.1:1", token=CLIENT_TOKEN, timeout_seconds=0.5, fail_mode=mode) as down:  # type: ignore[arg-type]
            verdict = down.gate(**args)
        assert verdict.degraded
        assert verdict.decision == decision
    wrong = ScorerClient(served.sidecar.target, token="wrong-token-0123456789", timeout_seconds=5)
    with wrong, pytest.raises(grpc.RpcError):
        wrong.gate(**args)  # bad credentials are raised too


# -- hardening: findings of the outside probe ------------------------------------------------------------------------


def test_control_characters_in_context_are_refused(served: Served) -> None:
    """A NUL in a context value once broke the audit COPY and cost other clients their rows: now refused."""
    donor = served.dataset.donors["address"].iloc[0]
    for context in ({"k": "a\x00b"}, {"a\x00": "v"}, {"k": "line\nbreak"}):
        request = pb.ScoreContributionRequest(contribution=contribution(donor, context=context))
        with pytest.raises(grpc.RpcError) as info:
            served.sidecar.stub.ScoreContribution(request, metadata=AUTH, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert "control character" in info.value.details()  # type: ignore[attr-defined]
    ok = {"k": "ünïcødé ✓ 🎉"}
    assert score(served, donor, context=ok).decision_id


def test_amount_above_uint256_is_refused(served: Served) -> None:
    code = code_of(lambda: score(served, TOKEN, amount="9" * 78))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert score(served, TOKEN, amount=str(2**256 - 1)).decision_id


MALFORMED = b"\x0a\x06\x0a\x04\xff\xfe\xfd\xfc"  # the probe's: a contribution whose donor is not UTF-8


def raw_call(channel: grpc.Channel, method: str, payload: bytes, metadata: Any = None) -> grpc.StatusCode:
    call = channel.unary_unary(f"/qf.scorer.v1.Scorer/{method}")
    try:
        call(payload, metadata=metadata, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def test_malformed_protobuf_is_invalid_argument_after_auth(served: Served, capfd: pytest.CaptureFixture[str]) -> None:
    """Undecodable bytes: UNAUTHENTICATED without a token, INVALID_ARGUMENT with one, counted, no traceback."""
    registry = served.sidecar.sidecar.metrics.registry
    before = registry.get_sample_value("qf_scorer_malformed_requests_total", {"method": "ScoreContribution"}) or 0
    channel = served.sidecar.channel
    assert raw_call(channel, "ScoreContribution", MALFORMED) == grpc.StatusCode.UNAUTHENTICATED
    assert raw_call(channel, "ScoreContribution", MALFORMED, AUTH) == grpc.StatusCode.INVALID_ARGUMENT
    health = channel.unary_unary("/grpc.health.v1.Health/Check")
    with pytest.raises(grpc.RpcError) as info:
        health(b"\x0a\x02\xff\xfe", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    after = registry.get_sample_value("qf_scorer_malformed_requests_total", {"method": "ScoreContribution"})
    assert after == before + 1  # the unauthenticated call never reached the decoder
    assert registry.get_sample_value(
        "qf_scorer_rpcs_handled_total", {"method": "ScoreContribution", "code": "INVALID_ARGUMENT"}
    ) >= 1  # fmt: skip
    assert "Traceback" not in capfd.readouterr().err
    assert served.sidecar.stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=AUTH, timeout=10).version


def test_malformed_protobuf_counts_against_the_rate_limit(
    labelled_round: LabelledRound, served: Served, tmp_path: Path
) -> None:
    config = settings_for(tmp_path).with_(scorer_rate_limit_per_minute=3.0)
    with running_sidecar(config, labelled_round.db_url, served.models_root) as sidecar:
        codes = [raw_call(sidecar.channel, "ScoreContribution", MALFORMED, AUTH) for _ in range(5)]
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2


def test_reload_refuses_an_edited_copy_and_hides_server_paths(served: Served) -> None:
    """The probe's trick: copy a version, set its thresholds to 1.0 (approve everything), reload it."""
    source = served.models_root / served.versions[0]
    forged = served.models_root / (served.versions[0][:-8] + "00000000")
    shutil.copytree(source, forged)
    manifest = json.loads((forged / "manifest.json").read_text())
    manifest["thresholds"] = {"review": 1.0, "block": 1.0}
    (forged / "manifest.json").write_text(json.dumps(manifest))
    (served.models_root / "outside").symlink_to("/etc")
    stub = served.sidecar.stub
    try:
        for name, expected in ((forged.name, "content hash does not match"), ("outside", "link to outside")):
            with pytest.raises(grpc.RpcError) as info:
                stub.ReloadModels(pb.ReloadModelsRequest(version=name), metadata=ADMIN, timeout=60)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
            details = info.value.details()  # type: ignore[attr-defined]
            assert expected in details
            assert str(served.models_root) not in details
            assert "/etc" not in details
        info_now = stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=AUTH, timeout=10)
        assert info_now.version == served.versions[0]
        assert info_now.content_sha256 == json.loads((source / "manifest.json").read_text())["content_sha256"]
    finally:
        shutil.rmtree(forged)
        (served.models_root / "outside").unlink()


def test_calls_during_shutdown_are_unavailable_and_the_client_applies_its_policy(
    labelled_round: LabelledRound, served: Served, tmp_path: Path
) -> None:
    """Load through a stop: during the drain new calls get UNAVAILABLE (they used to be CANCELLED); the client's
    gate() applies its fail policy to whatever comes (UNAVAILABLE, CANCELLED, a closed port) and never raises.

    The drain is told by the sidecar's own state, not by the clock: a call is "during the drain" when it began
    after the gateway started draining and ended before the server began to close its listener."""
    donor = served.dataset.donors["address"].iloc[0]
    args = {"donor": donor, "recipient_id": "0x" + "22" * 20, "pool_id": 1, "chain_id": CHAIN_ID, "token": TOKEN,
            "amount": "5"}  # fmt: skip
    #: (began while draining, ended once the listener was closing, status code)
    codes: list[tuple[bool, bool, grpc.StatusCode]] = []
    verdicts: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    with running_sidecar(settings_for(tmp_path), labelled_round.db_url, served.models_root, drain_seconds=1.0) as s:
        request = pb.ScoreContributionRequest(contribution=contribution(donor))
        gateway, server = s.sidecar.gateway, s.sidecar.server
        assert gateway is not None
        assert server is not None
        closing = threading.Event()

        class MarkedServer:
            """The sidecar's server, telling the test when the stop closes the listener (the drain's end)."""

            async def stop(self, grace: float | None) -> None:
                closing.set()
                await server.stop(grace)

        s.sidecar.server = MarkedServer()  # type: ignore[assignment]

        def raw() -> None:
            stub = s.stub
            while not stop.is_set():
                draining = gateway.draining
                try:
                    stub.ScoreContribution(request, metadata=AUTH, timeout=5)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()  # type: ignore[attr-defined]
                codes.append((draining, closing.is_set(), code))

        def gated() -> None:
            with ScorerClient(s.target, token=CLIENT_TOKEN, timeout_seconds=5) as client:
                while not stop.is_set():
                    try:
                        verdicts.append("degraded" if client.gate(**args).degraded else "scored")
                    except BaseException as exc:
                        errors.append(exc)

        threads = [threading.Thread(target=f) for f in (raw, raw, gated, gated)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # let the load build up
        s.loop.call_soon_threadsafe(s.sidecar.request_stop)
        s.thread.join(timeout=60)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    during = {c for draining, closed, c in codes if draining and not closed}
    assert during == {grpc.StatusCode.UNAVAILABLE}
    assert {c for _, _, c in codes} <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    # gRPC core itself cancels a call that races the listener's close at the end of the drain: never before.
    assert all(closed for _, closed, c in codes if c == grpc.StatusCode.CANCELLED)
    assert {"scored", "degraded"} <= set(verdicts)


def _valid_requests(served: Served) -> dict[str, bytes]:
    donor = served.dataset.donors["address"].iloc[0]
    c = contribution(donor, context={"page": "checkout"})
    messages = {
        "ScoreContribution": pb.ScoreContributionRequest(contribution=c),
        "ScoreContributions": pb.ScoreContributionsRequest(contributions=[c, c]),
        "DetectAnomaly": pb.DetectAnomalyRequest(donor=donor, chain_id=CHAIN_ID),
        "Recommend": pb.RecommendRequest(donor=donor, pool_id="7", k=3, chain_id=CHAIN_ID),
        "AssignVariant": pb.AssignVariantRequest(experiment="project_list", user_id="fuzz-user"),
        "RecordOutcome": pb.RecordOutcomeRequest(experiment="project_list", user_id="fuzz-user", reward=1.0),
        "GetExperimentStats": pb.GetExperimentStatsRequest(experiment="project_list"),
        "GetModelInfo": pb.GetModelInfoRequest(),
        "ReloadModels": pb.ReloadModelsRequest(version=served.versions[0]),
    }
    assert set(messages) == set(pb.DESCRIPTOR.services_by_name["Scorer"].methods_by_name)
    return {method: m.SerializeToString() for method, m in messages.items()}


@st.composite
def mutated(draw: st.DrawFn, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    """A method and bytes for it: random, or one of its valid requests with bytes flipped, cut or inserted."""
    method = draw(st.sampled_from(sorted(seeds)))
    if draw(st.booleans()):
        return method, draw(st.binary(max_size=200))
    data = bytearray(seeds[method])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return method, bytes(data)


#: What a fuzzed call may end with: never UNKNOWN, INTERNAL, CANCELLED or another sign of a crash.
AUTHENTICATED_CODES = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,  # an outcome for a user who has no variant
    grpc.StatusCode.PERMISSION_DENIED,  # ReloadModels with a client token
}  # fmt: skip


def test_protobuf_fuzz_never_crashes_the_server(served: Served) -> None:
    """Random and mutated bytes to every method, with a client token and without: UNAUTHENTICATED without,
    INVALID_ARGUMENT for bytes that are no message, a documented code otherwise; the server healthy after."""
    seeds = _valid_requests(served)
    channel = served.sidecar.channel
    seen: dict[str, set[grpc.StatusCode]] = {}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=mutated(seeds))
    def check(case: tuple[str, bytes]) -> None:
        method, payload = case
        anonymous = raw_call(channel, method, payload)
        assert anonymous == grpc.StatusCode.UNAUTHENTICATED, (method, payload)
        code = raw_call(channel, method, payload, AUTH)
        seen.setdefault(method, set()).add(code)
        request_type = getattr(pb, pb.DESCRIPTOR.services_by_name["Scorer"].methods_by_name[method].input_type.name)
        try:
            request_type.FromString(payload)
        except Exception:
            if method == "ReloadModels":  # the admin check comes first; the admin token gets to the decoder
                assert code == grpc.StatusCode.PERMISSION_DENIED
                code = raw_call(channel, method, payload, ADMIN)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, payload, code)
        else:
            assert code in AUTHENTICATED_CODES, (method, payload, code)

    check()
    assert grpc.StatusCode.INVALID_ARGUMENT in set().union(*seen.values())
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="qf.scorer.v1.Scorer")).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    assert score(served, TOKEN).decision_id


def test_the_demo_calls_the_sidecar_through_the_client(served: Served, tmp_path: Path) -> None:
    """`make demo`'s showcases on a real round: matching side by side, then a sidecar of its own called through
    scorer.client (model info, a score per labelled pattern and a never-seen donor, Recommend, AssignVariant)."""
    import io  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415

    from qf_sentinel.demo import show_matching, show_sidecar  # noqa: PLC0415

    settings = settings_for(tmp_path, models_dir=served.models_root)
    shown = io.StringIO()
    out = Console(file=shown, width=200)
    show_matching(settings, served.round.db_url, out)
    show_sidecar(settings, served.round.db_url, out)
    text = shown.getvalue()
    assert "pool 1 matching" in text
    assert "standard" in text and "risk-adjusted" in text  # noqa: PT018
    assert f"model {served.versions[1]}" in text  # LATEST: the second version trained
    patterns = {label.pattern for label in served.round.plan.labels}
    assert all(pattern in text for pattern in patterns)
    assert "(never seen)" in text
    assert "Recommend(" in text
    assert "AssignVariant(project_list)" in text
