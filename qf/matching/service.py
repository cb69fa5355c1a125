"""The matching of a pool or a round, answered once: load, eligibility, donor weights, methods, names.

``qf matching``, the console's round page and ``make demo`` all ask the same
question; :func:`match_pool` answers it and returns a :class:`MatchingResult`
they only render (formulas in :mod:`qf.matching`, database reads in
:mod:`qf.matching.db`). :func:`match_round` answers it for a named round across
pools and chains, in USD (:mod:`qf.matching.rounds`), with the same result
type. The policies every caller gets:

* **chain**: the one named, else the only one indexed, else
  :class:`qf.errors.AmbiguousChain` naming every indexed chain
  (:func:`qf.matching.db.resolve_chain`; never a silent pick).
* **donor weights** (risk-adjusted matching only; other methods leave the
  matrix as it is): ``"auto"`` takes the pool's latest ``qf score`` run when
  there is one (``model``), else the sybil labels when any donor of the pool
  has one (``labels``: sybil 0, everyone else 1), else every weight 1
  (``none``); for a round, over all its pools and chains. ``"model"``, ``"labels"``, ``"none"`` or a :class:`ScoreFile`
  choose explicitly; ``"model"`` without a run is an error, not a fallback.
* **standard QF is always computed**: it is what every other method is set
  against (the risk-adjusted run's ``base_match``, the console's deltas).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import psycopg

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.matching import METHODS, Method, compute_matching
from qf_sentinel.qf.matching.db import (
    PoolDonations,
    PoolRef,
    PoolRound,
    eligible_round,
    has_model_scores,
    labelled_donors,
    load_donations,
    project_names,
    read_scores_csv,
    store_run,
    weights_from_labels,
    weights_from_models,
)
from qf_sentinel.qf.matching.eligibility import Eligibility, Exclusions
from qf_sentinel.qf.matching.risk import WeightMode, weights_from_scores
from qf_sentinel.qf.matching.rounds import round_donations, round_project_names
from qf_sentinel.qf.matching.standard import FloatArray

if TYPE_CHECKING:
    from qf_sentinel.qf.matching.cocm import Variant

WeightsChoice = Literal["auto", "model", "labels", "none"]
WEIGHT_CHOICES: tuple[WeightsChoice, ...] = ("auto", "model", "labels", "none")
WeightsSource = Literal["model", "labels", "csv", "none"]


@dataclass(frozen=True, slots=True)
class ScoreFile:
    """Risk scores in [0, 1] from a CSV (``address,score``): weight ``1 - score``, or 0 above ``threshold``
    and 1 below it when one is given; a donor missing from the file scores 0 (weight 1)."""

    path: Path
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class MethodOptions:
    """The knobs of the methods; the defaults are what the console and the demo show."""

    #: cap per project, percent of the pool, applied to every method
    cap_pct: float | None = None
    pct_cocm: float = 1.0
    cocm_variant: Variant = "harsh"
    #: None: :data:`qf.matching.pairwise.DEFAULT_M`
    pairwise_m: float | None = None
    exclude_uninformative_donors: bool = False


@dataclass(frozen=True, slots=True)
class DonorWeights:
    """Risk-adjusted matching's weight of each donor, and where they came from."""

    source: WeightsSource
    #: one per donor of the result's round, in [0, 1]
    values: FloatArray
    #: what was asked ("auto" resolves to one of the sources)
    requested: str = "auto"
    model_version: str | None = None
    #: model: donors the run did not score (they donated after it) and who keep weight 1
    unscored_donors: int = 0
    #: csv: the file and its threshold
    path: str | None = None
    threshold: float | None = None

    @property
    def discounted(self) -> int:
        """Donors weighed below 1."""
        return int((self.values < 1.0).sum())

    def describe(self) -> str:
        """One phrase for a page, a table title or a log line: ``model v3``, ``labels``, ``scores.csv``, ``none``."""
        if self.source == "model":
            return f"model {self.model_version}"
        if self.source == "csv":
            return f"scores {self.path}"
        return self.source

    def params(self) -> dict[str, Any]:
        """What a run stores about its weights (``qf.matching_runs.params``)."""
        out: dict[str, Any] = {"weights": self.source, "weights_requested": self.requested,
                               "discounted_donors": self.discounted}  # fmt: skip
        if self.source == "model":
            out |= {"model_version": self.model_version, "unscored_donors": self.unscored_donors}
        if self.source == "csv":
            out |= {"scores_file": self.path, "threshold": self.threshold}
        return out


@dataclass(frozen=True, slots=True)
class ProjectMatch:
    """One project of a result: who it is, what it raised, what each method gives it."""

    recipient_id: bytes
    name: str | None
    donors: int
    amount: float
    matches: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class MatchingResult:
    """A pool's matching under one or more methods, with everything a renderer needs.

    Arrays are per project in the order of ``round.projects`` (recipient ids,
    ascending); :meth:`projects` gives them as rows, ranked.
    """

    #: the pool's chain and id; both None for a round across pools (``round.round_name``, ``round.pools``)
    chain_id: int | None
    pool_id: int | None
    pool_amount: float
    #: the contribution matrix after eligibility (donors x projects), the one every method ran on
    round: PoolRound
    names: tuple[str | None, ...]
    #: method -> match per project; always holds "standard"
    matches: Mapping[str, FloatArray]
    #: the methods asked for, in the order asked
    methods: tuple[Method, ...]
    options: MethodOptions
    eligibility: Eligibility
    excluded: Exclusions
    #: None when no risk-adjusted method was asked
    weights: DonorWeights | None
    #: amounts are USD at donation time across every token of the pool
    usd: bool = False
    #: donations left out for want of a USD price (``usd`` only)
    unpriced: int = 0
    #: the eligibility scores' file, when donors were scaled by one
    scores_file: str | None = None
    #: facts a reader should see next to the numbers (left-out donations, unscored donors)
    notes: tuple[str, ...] = field(default=())

    @property
    def round_name(self) -> str | None:
        return self.round.round_name

    @property
    def pools(self) -> tuple[PoolRef, ...]:
        """Every (chain, pool) matched."""
        return self.round.pools

    @property
    def title(self) -> str:
        """``pool 3`` or ``round gg24 (2 pools on chains 10, 42161)``."""
        if self.round_name is None:
            return f"pool {self.pool_id}"
        chains = ", ".join(str(c) for c in sorted({c for c, _ in self.pools}))
        pools = f"{len(self.pools)} pool{'s' if len(self.pools) != 1 else ''}"
        return f"round {self.round_name} ({pools} on chain{'s' if ',' in chains else ''} {chains})"

    @property
    def donors(self) -> int:
        """Donors with at least one counted donation."""
        return int((self.round.contributions > 0).any(axis=1).sum())

    @property
    def weights_source(self) -> str:
        """How risk-adjusted matching weighed donors (``model v3``, ``labels``, ``none``...); "" without it."""
        return self.weights.describe() if self.weights is not None else ""

    def projects(self, by: str = "standard") -> list[ProjectMatch]:
        """Every project, largest ``by`` match first (ties in recipient-id order)."""
        c = self.round.contributions
        donors, amounts = (c > 0).sum(axis=0), c.sum(axis=0)
        order = np.argsort(-self.matches[by], kind="stable")
        return [
            ProjectMatch(self.round.projects[j], self.names[j], int(donors[j]), float(amounts[j]),
                         {m: float(v[j]) for m, v in self.matches.items()})
            for j in order
        ]  # fmt: skip

    def params(self, method: Method) -> dict[str, Any]:
        """The parameters a run of ``method`` stores (``qf.matching_runs.params``)."""
        params: dict[str, Any] = {"cap_pct": self.options.cap_pct, "eligibility": self.eligibility.params(),
                                  "excluded": self.excluded.as_dict()}  # fmt: skip
        if self.usd:
            params |= {"amounts": "usd", "unpriced_donations": self.unpriced}
        if self.round_name is not None:
            params["pools"] = [list(p) for p in self.pools]
        if self.scores_file is not None:
            params["scores"] = self.scores_file
        if method == "risk-adjusted" and self.weights is not None:
            params |= self.weights.params()
        if method == "cocm":
            params |= {"pct_cocm": self.options.pct_cocm, "cocm_variant": self.options.cocm_variant,
                       "exclude_uninformative_donors": self.options.exclude_uninformative_donors}  # fmt: skip
        if method == "pairwise":
            from qf_sentinel.qf.matching.pairwise import DEFAULT_M  # noqa: PLC0415 - numba, only when asked

            params["pairwise_m"] = self.options.pairwise_m if self.options.pairwise_m is not None else DEFAULT_M
        return params


@dataclass(frozen=True, slots=True)
class _Asked:
    """A checked request: what every matching needs besides its donations."""

    methods: tuple[Method, ...]
    options: MethodOptions
    rules: Eligibility
    weights: WeightsChoice | ScoreFile
    scores_file: Path | None
    passport: dict[bytes, float] | None


def _ask(
    methods: Sequence[Method], options: MethodOptions | None, weights: WeightsChoice | ScoreFile,
    eligibility: Eligibility | None, eligibility_scores: Path | None,
) -> _Asked:  # fmt: skip
    asked = tuple(dict.fromkeys(methods))
    for method in asked:
        if method not in METHODS:
            raise ConfigError(f"matching method must be one of {', '.join(METHODS)}, got {method!r}")
    rules = eligibility or Eligibility()
    if rules.scales_by_score and eligibility_scores is None:
        raise ConfigError("scaling by score needs a scores CSV (--scores)")
    if eligibility_scores is not None and not rules.scales_by_score:
        raise ConfigError("a scores CSV needs both score thresholds (--score-lower and --score-upper)")
    if isinstance(weights, str) and weights not in WEIGHT_CHOICES:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHT_CHOICES)} or a CSV of scores, got {weights!r}")
    passport = read_scores_csv(eligibility_scores, unit_interval=False) if eligibility_scores is not None else None
    return _Asked(asked, options or MethodOptions(), rules, weights, eligibility_scores, passport)


def match_pool(
    conn: psycopg.Connection[Any],
    chain_id: int,
    pool_id: int,
    *,
    methods: Sequence[Method] = ("standard",),
    options: MethodOptions | None = None,
    weights: WeightsChoice | ScoreFile = "auto",
    eligibility: Eligibility | None = None,
    eligibility_scores: Path | None = None,
    usd: bool = False,
) -> MatchingResult:
    """The matching of one pool under ``methods``; see the module docstring for the policies.

    ``eligibility_scores`` is a CSV of Passport-style scores (``address,score``)
    that ``eligibility``'s score thresholds scale donors by; ``usd`` counts
    donations in every token at their USD value at donation time (unpriced ones
    left out and counted, never valued at 0). Nothing is written: see :func:`store`.
    """
    asked = _ask(methods, options, weights, eligibility, eligibility_scores)
    donations = load_donations(conn, chain_id, pool_id, usd=usd)
    return _match(conn, donations, asked, lambda projects: project_names(conn, chain_id, projects))


def match_round(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    methods: Sequence[Method] = ("standard",),
    options: MethodOptions | None = None,
    weights: WeightsChoice | ScoreFile = "auto",
    eligibility: Eligibility | None = None,
    eligibility_scores: Path | None = None,
    matching_usd: float | None = None,
) -> MatchingResult:
    """The matching of a named round (``qf rounds add``) across its pools, chains and tokens, in USD.

    As qf-calculator matches on ``amountUSD``: donors are addresses and projects
    recipient ids across every chain (:mod:`qf.matching.rounds`); a minimum
    donation is in USD. The matching pool is the pools' funding in USD at their
    allocation ends unless ``matching_usd`` states it. Weights follow the same
    policy as a pool's, over all the round's pools and chains (a donor scored in
    several pools takes its lowest weight; a sybil label on any of the chains counts).
    """
    asked = _ask(methods, options, weights, eligibility, eligibility_scores)
    donations = round_donations(conn, name, matching_usd=matching_usd)
    return _match(conn, donations, asked, lambda projects: round_project_names(conn, donations.pools, projects))


def _match(
    conn: psycopg.Connection[Any], donations: PoolDonations, asked: _Asked,
    names_of: Callable[[list[bytes]], list[str | None]],
) -> MatchingResult:  # fmt: skip
    round_, excluded = eligible_round(donations, asked.rules, asked.passport)
    notes: list[str] = []
    if donations.unpriced:
        notes.append(f"{donations.unpriced:,} donations without a USD price are left out, not valued at 0")
    donor_weights = None
    if "risk-adjusted" in asked.methods:
        donor_weights = resolve_weights(conn, round_, asked.weights)
        if donor_weights.unscored_donors:
            notes.append(f"{donor_weights.unscored_donors:,} donors gave after the latest `qf score` run "
                         "and keep weight 1")  # fmt: skip
    matches = _run_methods(round_, ("standard", *asked.methods), asked.options, donor_weights)
    return MatchingResult(
        chain_id=donations.chain_id, pool_id=donations.pool_id, pool_amount=round_.pool_amount, round=round_,
        names=tuple(names_of(round_.projects)), matches=matches, methods=asked.methods, options=asked.options,
        eligibility=asked.rules, excluded=excluded, weights=donor_weights, usd=donations.usd,
        unpriced=donations.unpriced, scores_file=None if asked.scores_file is None else str(asked.scores_file),
        notes=tuple(notes),
    )  # fmt: skip


def resolve_weights(
    conn: psycopg.Connection[Any], round_: PoolRound, choice: WeightsChoice | ScoreFile
) -> DonorWeights:
    """The donor weights ``choice`` means for this round (``"auto"``: model, else labels, else none)."""
    donors = round_.donors
    if isinstance(choice, ScoreFile):
        scores = read_scores_csv(choice.path)
        raw = [scores.get(d, 0.0) for d in donors]
        mode: WeightMode = "exclude" if choice.threshold is not None else "linear"
        values = weights_from_scores(raw, threshold=choice.threshold, mode=mode)
        return DonorWeights("csv", values, requested="csv", path=str(choice.path), threshold=choice.threshold)
    pools = round_.pools
    chains = sorted({c for c, _ in pools})
    source = choice
    if choice == "auto":
        if has_model_scores(conn, pools):
            source = "model"
        elif labelled_donors(conn, chains, donors):
            source = "labels"
        else:
            source = "none"
    if source == "model":
        values, version, unscored = weights_from_models(conn, pools, donors)
        return DonorWeights("model", values, requested=choice, model_version=version, unscored_donors=unscored)
    if source == "labels":
        return DonorWeights("labels", weights_from_labels(conn, chains, donors), requested=choice)
    return DonorWeights("none", np.ones(len(donors)), requested=choice)


def _run_methods(
    round_: PoolRound, methods: Sequence[Method], options: MethodOptions, weights: DonorWeights | None
) -> dict[str, FloatArray]:
    c, amount = round_.contributions, round_.pool_amount
    out: dict[str, FloatArray] = {}
    for method in dict.fromkeys(methods):
        if not c.any():  # nothing counted: no method has anything to share out
            out[method] = np.zeros(c.shape[1])
            continue
        out[method] = compute_matching(
            c, amount, method=method, cap_pct=options.cap_pct, pct_cocm=options.pct_cocm,
            pairwise_m=options.pairwise_m, cocm_variant=options.cocm_variant,
            weights=weights.values if method == "risk-adjusted" and weights is not None else None,
            exclude_uninformative_donors=options.exclude_uninformative_donors,
        )  # fmt: skip
    return out


def store(conn: psycopg.Connection[Any], result: MatchingResult, method: Method) -> int:
    """Record ``method``'s run of the result in ``qf.matching_runs`` / ``qf.matching_results``; the run id.

    A risk-adjusted run stores standard QF as each project's ``base_match``.
    """
    if method not in result.matches:
        raise ConfigError(f"the result holds no {method!r} matching")
    base = result.matches["standard"] if method == "risk-adjusted" else None
    return store_run(conn, result.round, method=method, params=result.params(method), matches=result.matches[method],
                     base=base, names=list(result.names))  # fmt: skip
