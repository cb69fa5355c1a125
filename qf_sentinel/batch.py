"""`qf score --pool N`: every donor of a pool scored by the served version, as the sidecar would score it.

The application's, not the sidecar's: it runs offline in the CLI, over the sidecar's own pieces.

The snapshot is built by :func:`scorer.feature_store.build_snapshot` with the
version's coordination model and each donor goes through
:func:`scorer.engine.score_row`, the sidecar's own path, so ``qf.donor_risk``
holds exactly what ``ScoreContribution`` answers for the same donors (tested).
``qf.contribution_risk`` gets the contribution gate's answer for every donation of
the pool as of just before it was made (:func:`score_contributions`: the
indexed round replayed in chain order through :class:`qf.model.live.LiveState`,
the sidecar's own code). Each donor also gets its community (the one its coordination features were
computed over) and its weight for risk-adjusted matching
(:func:`qf.matching.risk.gate_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.eth import from_hex
from qf_sentinel.qf.funding.graph import FundingGraph
from qf_sentinel.qf.matching.risk import gate_weights
from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.coordination import donor_communities
from qf_sentinel.qf.model.dataset import ORDER_SCALE, Dataset
from qf_sentinel.qf.model.features import COMMUNITY_SEED
from qf_sentinel.qf.model.funding_features import N_FUNDING, funding_row
from qf_sentinel.qf.model.gate import FUNDING_REASON, GateDecision, GateModel
from qf_sentinel.qf.model.reasons import describe
from qf_sentinel.scorer import engine
from qf_sentinel.scorer.feature_store import build_snapshot
from qf_sentinel.scorer.models import ModelBundle

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PoolScores:
    chain_id: int
    pool_id: int
    version: str
    donors: list[bytes]
    results: list[engine.RiskResult]
    community: npt.NDArray[np.int64]
    flagged_share: FloatArray
    weights: FloatArray

    def decisions(self) -> dict[str, int]:
        counts = {d.value: 0 for d in engine.Decision}
        for r in self.results:
            counts[r.decision.value] += 1
        return counts


def score_pool(dataset: Dataset, bundle: ModelBundle, pool_id: int) -> PoolScores:
    """Score every donor with a donation in Allo pool ``pool_id``; weights from the version's thresholds."""
    d = dataset.donations
    prefix = f"{pool_id}:"
    in_pool = np.array([key.startswith(prefix) for key in d.project_ids], dtype=bool)
    if not in_pool.any():
        raise ConfigError(f"pool {pool_id} has no donations on chain {dataset.chain_id}")
    rows = np.unique(d.donor[in_pool[d.project]])
    snapshot = build_snapshot(dataset, bundle.recommender.project_ids, datetime.now(UTC), bundle.coordination_score)
    results = [engine.score_row(bundle, snapshot.matrix[r], cold_start=False) for r in rows]
    community = donor_communities(d, len(dataset.donors), seed=COMMUNITY_SEED)[rows]
    weights, share = gate_weights(
        np.array([r.score for r in results]), review=bundle.thresholds.review, block=bundle.thresholds.block,
        community=community,
    )  # fmt: skip
    addresses = dataset.donors["address"].to_numpy()
    return PoolScores(
        chain_id=dataset.chain_id,
        pool_id=pool_id,
        version=bundle.version,
        donors=[from_hex(str(addresses[r])) for r in rows],
        results=results,
        community=community,
        flagged_share=share,
        weights=weights,
    )


def store_pool_scores(conn: psycopg.Connection[Any], scores: PoolScores) -> int:
    """Replace this version's rows for the pool in qf.donor_risk (one transaction); returns the rows written."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM qf.donor_risk WHERE chain_id = %s AND pool_id = %s AND model_version = %s",
            (scores.chain_id, scores.pool_id, scores.version),
        )
        columns = "chain_id, pool_id, donor, model_version, score, level, decision, reasons, community, " \
                  "community_flagged_share, weight"  # fmt: skip
        with cur.copy(f"COPY qf.donor_risk ({columns}) FROM STDIN") as copy:
            for i, (donor, r) in enumerate(zip(scores.donors, scores.results, strict=True)):
                copy.write_row((
                    scores.chain_id, scores.pool_id, donor, scores.version, r.score, r.level.value, r.decision.value,
                    [x.feature for x in r.reasons], int(scores.community[i]), float(scores.flagged_share[i]),
                    float(scores.weights[i]),
                ))  # fmt: skip
    return len(scores.donors)


@dataclass(frozen=True, slots=True)
class ContributionScores:
    """The gate's point-in-time answer for each donation of a pool (rows of the dataset, chain order)."""

    chain_id: int
    pool_id: int
    version: str
    rows: npt.NDArray[np.int64]
    first: npt.NDArray[np.bool_]
    decisions: list[GateDecision]
    reasons: list[list[str]]

    def held(self, *, first_only: bool = False) -> int:
        """Contributions sent to REVIEW or BLOCK (only wallets' first contributions with ``first_only``)."""
        return sum(
            d.decision is not engine.Decision.APPROVE and (f or not first_only)
            for d, f in zip(self.decisions, self.first.tolist(), strict=True)
        )


def score_contributions(
    dataset: Dataset, gate: GateModel, version: str, pool_id: int, funding: FundingGraph | None = None,
    *, elsewhere: Sequence[live.Contribution] = (),
) -> ContributionScores:
    """Every donation of ``pool_id`` scored by the gate on its features (and funding evidence) as of just before
    it, the whole chain replayed (with ``elsewhere``, other chains' donations, as its donors' history)."""
    d = dataset.donations
    contributions = live.contributions_of(dataset)
    evidence = np.zeros((len(contributions), N_FUNDING))

    def with_funding(i: int, c: live.Contribution, state: live.LiveState) -> None:
        evidence[i] = funding_row(funding, c, state)

    x = live.replay_features(contributions, also=with_funding if funding is not None else None,
                             elsewhere=elsewhere)
    prefix = f"{pool_id}:"
    in_pool = np.array([key.startswith(prefix) for key in d.project_ids], dtype=bool)[d.project]
    rows = np.flatnonzero(in_pool)
    first = np.zeros(d.size, dtype=bool)
    first[np.unique(d.donor, return_index=True)[1]] = True
    decisions, reasons = [], []
    for r in rows.tolist():
        decided = gate.decide(x[r], evidence[r])
        decisions.append(decided)
        amount = float(d.amount[r])
        reasons.append([
            "funding evidence" if p.feature == FUNDING_REASON else describe(p.feature, p.value, amount=amount)
            for p in decided.pushes
        ])  # fmt: skip
    return ContributionScores(chain_id=dataset.chain_id, pool_id=pool_id, version=version, rows=rows,
                              first=first[rows], decisions=decisions, reasons=reasons)  # fmt: skip


def store_contribution_scores(conn: psycopg.Connection[Any], dataset: Dataset, scores: ContributionScores) -> int:
    """Replace this version's rows for the pool in qf.contribution_risk (one transaction); returns the rows."""
    d = dataset.donations
    addresses = dataset.donors["address"].to_numpy()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM qf.contribution_risk WHERE chain_id = %s AND pool_id = %s AND model_version = %s",
            (scores.chain_id, scores.pool_id, scores.version),
        )
        columns = "chain_id, pool_id, block_number, log_index, donor, recipient_id, model_version, " \
                  "first_contribution, risk, level, decision, reasons"  # fmt: skip
        with cur.copy(f"COPY qf.contribution_risk ({columns}) FROM STDIN") as copy:
            for i, r in enumerate(scores.rows.tolist()):
                decided = scores.decisions[i]
                recipient = d.project_ids[d.project[r]].partition(":")[2]
                copy.write_row((
                    scores.chain_id, scores.pool_id, int(d.block[r]), int(d.order[r] % ORDER_SCALE),
                    from_hex(str(addresses[d.donor[r]])), from_hex(recipient), scores.version, bool(scores.first[i]),
                    decided.score, decided.level.value, decided.decision.value, scores.reasons[i],
                ))  # fmt: skip
    return int(scores.rows.size)
