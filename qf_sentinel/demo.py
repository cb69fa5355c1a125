"""The demo's showcases that are not plain commands: matching methods side by side, a round across the devnet's
chains, and the sidecar live.

The sidecar is started in-process on a free loopback port with a one-off token
and called the way a dApp backend calls it, through :class:`scorer.client.ScorerClient`.
"""

from __future__ import annotations

import asyncio
import secrets

from rich.console import Console
from rich.table import Table

from qf_sentinel.qf.chain.config import wallet_node
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.labels import labelled_examples
from qf_sentinel.qf.logs import quieter
from qf_sentinel.qf.matching import Method
from qf_sentinel.qf.matching.db import first_pool, load_round, project_names, resolve_chain
from qf_sentinel.qf.matching.rounds import add_round
from qf_sentinel.qf.matching.service import MatchingResult, match_pool, match_round
from qf_sentinel.qf.settings import Settings
from qf_sentinel.render import cell
from qf_sentinel.retention import run_retention
from qf_sentinel.scorer.client import DECISION_NAMES, ScorerClient
from qf_sentinel.scorer.server import Sidecar, SidecarConfig, SidecarOptions

NEVER_SEEN = "0x" + "ab" * 20
#: The name under which the demo gathers every chain's donation pools into one round.
DEMO_ROUND = "demo"


DEMO_METHODS: tuple[Method, ...] = ("standard", "cocm", "risk-adjusted")
#: Projects the demo's table shows.
TOP = 6


def show_matching(settings: Settings, database_url: str, out: Console) -> MatchingResult:
    """The first pool's top projects under standard QF, COCM and risk-adjusted matching, as the console shows them.

    The numbers are :func:`qf.matching.service.match_pool`'s with its default policies (the weights: the
    latest `qf score` run, else the labels, else none); returned for whoever wants to check them.
    """
    with connect(database_url) as conn:
        chain = resolve_chain(conn, settings.chain_id)
        result = match_pool(conn, chain, first_pool(conn, chain), methods=DEMO_METHODS)
    unit = "USD" if result.usd else "tUSD"
    table = Table("project", "donors", *DEMO_METHODS,
                  title=f"pool {result.pool_id} matching ({result.pool_amount:,.0f} {unit}, top {TOP} by standard; "
                        f"risk-adjusted weights: {result.weights_source})")  # fmt: skip
    for p in result.projects(by="standard")[:TOP]:
        table.add_row(cell(p.name or "0x" + p.recipient_id.hex()[:10] + "…"), str(p.donors),
                      *(f"{p.matches[m]:,.2f}" for m in DEMO_METHODS))  # fmt: skip
    out.print(table)
    out.print("Sybil-funded projects lose most under COCM and risk-adjusted; `qf matching --help` for all methods.")
    return result


def show_round(database_url: str, out: Console) -> MatchingResult | None:
    """With several chains indexed: every pool that holds donations named one round (``qf rounds add``), its size
    from ``qf.round_summary`` and its top projects matched across chains in USD (``qf matching --round``)."""
    with connect(database_url) as conn:
        pools = [(int(c), int(p)) for c, p in conn.execute(
            "SELECT DISTINCT chain_id, pool_id FROM qf.donations ORDER BY 1, 2").fetchall()]  # fmt: skip
        if len({c for c, _ in pools}) < 2:
            return None
        add_round(conn, DEMO_ROUND, pools)
        summary = conn.execute(
            "SELECT chains, pools, donors, donors_on_several_chains, eligible_donations, amount_usd FROM "
            "qf.round_summary WHERE round = %s", (DEMO_ROUND,)
        ).fetchone()  # fmt: skip
        result = match_round(conn, DEMO_ROUND, methods=("standard", "cocm"))
    assert summary is not None
    chains, n_pools, donors, several, donations, usd = summary
    out.print(f"round {DEMO_ROUND!r}: {n_pools} pools on {chains} chains, {donors:,} donors ({several:,} on more "
              f"than one: one address is one donor), {donations:,} eligible donations, {float(usd):,.0f} USD "
              "(qf.round_summary, qf.round_donors)")  # fmt: skip
    table = Table("project", "donors", "USD", "standard", "cocm",
                  title=f"round {DEMO_ROUND} matched in USD across chains ({result.pool_amount:,.0f} USD, top {TOP})")
    for p in result.projects(by="standard")[:TOP]:
        table.add_row(cell(p.name or "0x" + p.recipient_id.hex()[:10] + "…"), str(p.donors), f"{p.amount:,.2f}",
                      *(f"{p.matches[m]:,.2f}" for m in ("standard", "cocm")))  # fmt: skip
    out.print(table)
    out.print(f"`qf matching --round {DEMO_ROUND} --method cocm` for the whole table.")
    return result


def show_sidecar(settings: Settings, database_url: str, out: Console) -> None:
    """Start the sidecar on a free loopback port, make a few real gRPC calls through the client, stop it."""
    with connect(database_url) as conn:
        chain = resolve_chain(conn, settings.chain_id)
        donors = labelled_examples(conn, chain)
        pool_id = first_pool(conn, chain)
        pool = load_round(conn, chain, pool_id)
        names = project_names(conn, chain, pool.projects)
        row = conn.execute(
            "SELECT a.token FROM qf.allocated a "
            "JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract "
            "WHERE a.chain_id = %s AND s.pool_id = %s GROUP BY a.token ORDER BY count(*) DESC LIMIT 1",
            (chain, pool_id),
        ).fetchone()
    token = "0x" + (bytes(row[0]).hex() if row else "ee" * 20)
    popular = int(pool.contributions.astype(bool).sum(axis=0).argmax())
    quiet = int(pool.contributions.astype(bool).sum(axis=0).argmin())
    secret = secrets.token_hex(16)
    config = SidecarConfig.from_settings(settings).with_(tokens={"demo": secret}, rate_limit_per_minute=0.0,
                                                         wallet_rpc_url=wallet_node(settings))  # fmt: skip
    options = SidecarOptions(host="127.0.0.1", port=0, models_root=settings.models_dir,
                             metrics=False, retention=run_retention)  # fmt: skip

    def calls(target: str) -> None:
        with ScorerClient(target, token=secret, timeout_seconds=5.0) as client:
            info = client.model_info()
            gate = f"contribution gate {info.gate_model}" if info.gate_model else "no contribution gate"
            out.print(f"sidecar on {target}: model {info.version} ({gate}; donor model {info.served_model}), "
                      f"{info.donors_loaded} donors in memory, live state at block "
                      f"{info.live_state_block}")  # fmt: skip
            recipient = "0x" + pool.projects[popular].hex()
            table = Table("donor", "label", "risk", "decision", "first", "top reason",
                          title=f"ScoreContribution: 5 tUSD to {names[popular] or recipient[:12]}")  # fmt: skip
            for address, pattern in [*donors, (NEVER_SEEN, "(never seen)")]:
                r = client.score(donor=address, recipient_id=recipient, pool_id=pool_id, chain_id=chain,
                                 token=token, amount="5")  # fmt: skip
                table.add_row(address[:12] + "…", pattern, f"{r.risk_score:.3f}", DECISION_NAMES[r.decision],
                              "yes" if r.cold_start else "", r.reasons[0].text if r.reasons else "-")  # fmt: skip
            out.print(table)
            quiet_recipient = "0x" + pool.projects[quiet].hex()
            burst = Table("call", "wallet", "risk", "decision", "top reason",
                          title=f"a burst as it happens: 8 new wallets give 2 tUSD each to "
                                f"{names[quiet] or quiet_recipient[:12]}, nothing indexed yet")  # fmt: skip
            for i in range(8):
                wallet = "0x" + f"{i + 1:04x}".rjust(40, "b")
                r = client.score(donor=wallet, recipient_id=quiet_recipient, pool_id=pool_id, chain_id=chain,
                                 token=token, amount="2")  # fmt: skip
                burst.add_row(str(i + 1), "…" + wallet[-8:], f"{r.risk_score:.3f}", DECISION_NAMES[r.decision],
                              r.reasons[0].text if r.reasons else "-")  # fmt: skip
            out.print(burst)
            honest = next((a for a, p in donors if p == "honest"), NEVER_SEEN)
            rec = client.recommend(honest, pool_id, k=3, chain_id=chain)
            out.print(f"Recommend({honest[:12]}…, pool {pool_id}): {rec.source}, "
                      + ", ".join(f"{p.recipient_id[:10]}… ({p.score:.2f})" for p in rec.projects))  # fmt: skip
            variant = client.assign_variant("project_list", honest)
            out.print(f"AssignVariant(project_list): {variant.variant} ({variant.policy}); "
                      "every decision is in qf.scorer_decisions")  # fmt: skip

    async def run() -> None:
        sidecar = Sidecar(config, database_url, options)
        port = await sidecar.start()
        try:
            await asyncio.to_thread(calls, f"127.0.0.1:{port}")  # the server runs on this loop meanwhile
        finally:
            await sidecar.stop()

    with quieter("warning"):  # the tables say it all
        asyncio.run(run())
    out.print("Run it yourself: QF_SCORER_TOKENS=name:<token> qf serve (gRPC on 127.0.0.1:50051, reflection on).")
