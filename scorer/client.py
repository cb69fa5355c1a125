"""A small Python client of the sidecar for dApp backends.

Defaults a backend can live with:

* every call has a deadline (``timeout_seconds``, 0.25 s by default): a slow
  sidecar must not hold a user's request;
* retries only where they are safe: the read-only calls (model info,
  recommendations, anomaly, experiment stats) and scoring, which changes
  nothing but the audit log, are retried by gRPC on UNAVAILABLE with backoff
  inside the same deadline; AssignVariant and RecordOutcome are never
  retried (a retried outcome could be counted twice);
* :meth:`ScorerClient.gate` applies a documented policy when the sidecar cannot
  answer (unreachable, shutting down, deadline exceeded, overloaded,
  rate-limited, a call cancelled by a restart):

  - ``fail_mode="review"`` (default): the contribution goes to manual review;
  - ``"closed"``: it is blocked (the safest for the matching pool, the worst
    for honest donors during an outage);
  - ``"open"``: it is approved (never blocks a donor, lets sybils through
    while the sidecar is down).

  A degraded decision says so (``degraded=True``, ``reason``), so the backend
  can log it and re-score later. Bad input (INVALID_ARGUMENT) and bad
  credentials are raised, never masked by the fail policy.

    with ScorerClient("127.0.0.1:50051", token="...") as client:
        verdict = client.gate(donor="0x...", recipient_id="0x...", pool_id=1, chain_id=31337,
                              token="0x...", amount="5")
        if verdict.decision == "BLOCK": ...
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import grpc

from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb
from qf_sentinel.scorer.api.v1 import scorer_pb2_grpc

FailMode = Literal["review", "closed", "open"]
DecisionName = Literal["APPROVE", "REVIEW", "BLOCK"]
DECISION_NAMES: dict[int, DecisionName] = {
    pb.DECISION_APPROVE: "APPROVE", pb.DECISION_REVIEW: "REVIEW", pb.DECISION_BLOCK: "BLOCK",
}  # fmt: skip
LEVEL_NAMES = {pb.RISK_LEVEL_LOW: "LOW", pb.RISK_LEVEL_MEDIUM: "MEDIUM", pb.RISK_LEVEL_HIGH: "HIGH"}
FALLBACK: dict[str, DecisionName] = {"review": "REVIEW", "closed": "BLOCK", "open": "APPROVE"}
#: Status codes after which the fail policy applies instead of an exception.
UNAVAILABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.CANCELLED,  # a call the server cancelled as it stopped: the sidecar could not answer
})  # fmt: skip
_SAFE_TO_RETRY = ("ScoreContribution", "ScoreContributions", "DetectAnomaly", "Recommend", "GetModelInfo",
                  "GetExperimentStats")  # fmt: skip
SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "qf.scorer.v1.Scorer", "method": m} for m in _SAFE_TO_RETRY],
        "retryPolicy": {
            "maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.1s", "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's answer, or the fail policy's when ``degraded``."""

    decision: DecisionName
    risk_score: float | None
    level: str | None
    degraded: bool
    reason: str
    model_version: str = ""
    decision_id: str = ""
    reasons: tuple[tuple[str, float], ...] = ()


class ScorerClient:
    def __init__(
        self, target: str, *, token: str, timeout_seconds: float = 0.25, fail_mode: FailMode = "review",
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:  # fmt: skip
        if fail_mode not in FALLBACK:
            raise ValueError(f"fail_mode must be review, closed or open, not {fail_mode!r}")
        options = [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1)]
        self._channel = (
            grpc.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.insecure_channel(target, options=options)
        )
        self.stub = scorer_pb2_grpc.ScorerStub(self._channel)
        self.timeout_seconds = timeout_seconds
        self.fail_mode: FailMode = fail_mode
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __enter__(self) -> ScorerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def call(self, method: str, request: Any, *, timeout_seconds: float | None = None) -> Any:
        """Any RPC by name with the client's token and deadline; gRPC errors propagate."""
        return getattr(self.stub, method)(
            request, timeout=timeout_seconds or self.timeout_seconds, metadata=self._metadata
        )

    def score(self, **contribution: Any) -> pb.ScoreContributionResponse:
        request = pb.ScoreContributionRequest(contribution=_contribution(**contribution))
        response: pb.ScoreContributionResponse = self.call("ScoreContribution", request)
        return response

    def gate(self, **contribution: Any) -> Verdict:
        """APPROVE / REVIEW / BLOCK for a contribution; the fail policy when the sidecar cannot answer."""
        try:
            r = self.score(**contribution)
        except grpc.RpcError as exc:
            code = exc.code()
            if code not in UNAVAILABLE_CODES:
                raise
            return Verdict(
                decision=FALLBACK[self.fail_mode], risk_score=None, level=None, degraded=True,
                reason=f"sidecar unavailable ({code.name}); fail_mode={self.fail_mode}",
            )
        return Verdict(
            decision=DECISION_NAMES[r.decision], risk_score=r.risk_score, level=LEVEL_NAMES[r.level],
            degraded=False, reason="scored", model_version=r.model_version, decision_id=r.decision_id,
            reasons=tuple((x.feature, x.contribution) for x in r.reasons),
        )  # fmt: skip

    def recommend(self, donor: str, pool_id: int, *, chain_id: int, k: int = 5) -> pb.RecommendResponse:
        request = pb.RecommendRequest(donor=donor, pool_id=str(pool_id), k=k, chain_id=chain_id)
        response: pb.RecommendResponse = self.call("Recommend", request)
        return response

    def assign_variant(self, experiment: str, user_id: str) -> pb.AssignVariantResponse:
        request = pb.AssignVariantRequest(experiment=experiment, user_id=user_id)
        response: pb.AssignVariantResponse = self.call("AssignVariant", request)
        return response

    def record_outcome(self, experiment: str, user_id: str, reward: float = 1.0) -> pb.RecordOutcomeResponse:
        request = pb.RecordOutcomeRequest(experiment=experiment, user_id=user_id, reward=reward)
        response: pb.RecordOutcomeResponse = self.call("RecordOutcome", request)
        return response

    def model_info(self) -> pb.ModelInfo:
        response: pb.ModelInfo = self.call("GetModelInfo", pb.GetModelInfoRequest())
        return response


def _contribution(
    *, donor: str, recipient_id: str, pool_id: int | str, chain_id: int, token: str, amount: str,
    context: dict[str, str] | None = None,
) -> pb.Contribution:  # fmt: skip
    return pb.Contribution(donor=donor, recipient_id=recipient_id, pool_id=str(pool_id), chain_id=chain_id,
                           token=token, amount=str(amount), context=context or {})  # fmt: skip
