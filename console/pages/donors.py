"""The flagged donors, and one donor's evidence on every chain the console shows.

An address is one donor per chain: its features, scores, decisions, funding
trail and verdicts are per chain, so the donor page gathers each chain's
evidence (:func:`_evidence`) in one database call (:func:`_across_chains`) and
shows them side by side. The listing's filters are checked by
:func:`console.params.donor_filter`.
"""

from __future__ import annotations

from typing import Any

import psycopg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from qf_sentinel.console import params, queries
from qf_sentinel.console.auth import Login
from qf_sentinel.console.site import Console
from qf_sentinel.qf.eth import address


class DonorPages:
    """``/donors`` (the flagged donors, filtered and paged) and ``/donors/0x...``."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def donors_page(self, request: Request, login: Login) -> Response:
        console = self.console
        q = request.query_params
        chains, shown, picked = await console.shown_chains(request)
        filters, pool_chain = params.donor_filter(q)
        if pool_chain is not None:  # a pool picked as CHAIN:POOL narrows to its chain
            if pool_chain not in shown:
                raise HTTPException(400, f"pool {q['pool']}: chain {pool_chain} is not shown here")
            shown, picked = [pool_chain], pool_chain
        rows = await console.db(queries.flagged_donors, shown, filters)
        scored = await console.db(queries.scored_pools, chains)
        patterns = await console.db(queries.label_patterns, chains)
        return console.render(request, "donors.html", {
            "title": "Flagged donors", "donors": rows, "scored": scored, "patterns": patterns, "filters": filters,
            "decisions": params.DECISIONS, "project_text": q.get("project", ""), "page_size": queries.PAGE_SIZE,
            "chains": chains, "picked": picked,
        })  # fmt: skip

    async def donor_page(self, request: Request, login: Login) -> Response:
        console = self.console
        try:
            donor = address(request.path_params["donor"])
        except ValueError:
            raise HTTPException(404, "not an address: 0x and 40 hex digits") from None
        chains, shown, picked = await console.shown_chains(request)
        activity, evidence = await console.db(_across_chains, shown, donor)
        if not activity:
            where = f"chain {shown[0]}" if len(shown) == 1 else f"any of the chains {', '.join(map(str, shown))}"
            raise HTTPException(404, f"0x{donor.hex()} is not a donor of {where}")
        return console.render(request, "donor.html", {
            "title": "Donor", "donor": donor, "chains": chains, "picked": picked, "activity": activity,
            "evidence": evidence,
        })  # fmt: skip


def _across_chains(conn: psycopg.Connection[Any], chains: list[int], donor: bytes
                   ) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, Any]]]]:  # fmt: skip
    """An address on every chain: its activity per chain, and each chain's evidence (a verdict is per chain)."""
    activity = queries.donor_chains(conn, chains, donor)
    evidence = [(int(a["chain_id"]), _evidence(conn, int(a["chain_id"]), donor)) for a in activity]
    return activity, [(c, e) for c, e in evidence if e is not None]


def _evidence(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> dict[str, Any] | None:
    """What the donor page shows of one chain; None if the chain has neither features nor decisions of the donor."""
    features = queries.donor_features(conn, chain_id, donor)
    decisions = queries.donor_decisions(conn, chain_id, donor)
    if features is None and not decisions:
        return None
    scores = queries.donor_scores(conn, chain_id, donor)
    community = [
        (s["pool_id"], s["community"], queries.community_members(conn, chain_id, int(s["pool_id"]), s["community"]))
        for s in scores if s["community"] is not None
    ]  # fmt: skip
    history = queries.review_history(conn, chain_id, donor)
    superseded = {h["supersedes"] for h in history}
    trail = queries.funding_trail(conn, chain_id, donor)
    co_funded_count, co_funded = (
        queries.co_funded(conn, chain_id, bytes(trail[0]["funder"]), donor)
        if trail and trail[0]["label"] is None else (0, [])
    )  # fmt: skip
    return {
        "trail": trail, "co_funded_count": co_funded_count, "co_funded": co_funded,
        "donor": donor, "features": features, "decisions": decisions, "scores": scores, "community": community,
        "donations": queries.donor_donations(conn, chain_id, donor),
        "labels": queries.donor_labels(conn, chain_id, donor),
        "history": history, "current": next((h for h in history if h["id"] not in superseded), None),
        "flag": queries.latest_flag(conn, chain_id, donor),
    }  # fmt: skip
