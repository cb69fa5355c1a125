"""Soak: mixed gRPC load on the sidecar while the indexer follows a live devnet with reorgs, through three faults.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 300] [--outage-seconds 30] [--seed 42] [--out soak.json]
                                   [--deadline 1.0] [--refresh-burst 10] [--logs DIR]

Not run in CI (10 minutes, both cores); a short trial: ``--minutes 2 --rate 100 --outage-seconds 10``
(``--minutes`` must leave a quarter of the run for the outage plus 20 s).

Set-up (all real parts, all throwaway): an embedded PostgreSQL in a temporary
directory with every migration; anvil from npm on a free 127.0.0.1 port with
the contracts deployed; a seeded simulated round (``qf.sim``, the size of the
test fixtures' labelled round) with its labels, plus an open pool the anvil
dev accounts keep donating to (``tests/indexer/live.py``); ``qf index`` in
follow mode as a subprocess; two model versions trained by the real pipeline
(``qf.train.pipeline.train``) on the indexed round; ``qf serve`` as a separate
process serving the first version (rate limit off, everything else as
deployed).

During the run a thread keeps donating on the devnet and injects random reorgs
(``anvil_reorg``, depth 1-5, with replacement donations, every 15-45 s; each
donation is mined first, see `ChainDriver`). A load generator in another
process (``multiprocessing`` spawn, ``grpc.aio``, the channel options of
``scorer.client``: retries on UNAVAILABLE for the read-only calls) sends an
*open-loop* schedule at ``--rate`` per second: 80% ScoreContribution, 5%
ScoreContributions (batches of 8), 5% DetectAnomaly, 4% Recommend, 3%
AssignVariant, 2% RecordOutcome (of users it has assigned), 1% GetModelInfo,
each with a ``--deadline`` and timed from its *scheduled* send time (no
coordinated omission; how late the generator itself sent is reported as
"send lag"). Every decision_id returned is kept.

Faults, at 25%, 50% and 75% of the run:

1. PostgreSQL restart: ``pg_ctl -m fast stop`` (``qf.db.embedded.stop_embedded``),
   ``--outage-seconds`` down, started again on the same data directory and socket;
2. model reload: ``ReloadModels`` (admin token) to the second version;
3. view-refresh burst: ``--refresh-burst`` back-to-back refreshes, alternately
   ``qf.rebuild_analytics()`` (everything) and ``qf.refresh_analytics()`` (what
   changed), each followed by the indexer's ``NOTIFY qf_views_refreshed`` (the
   sidecar reloads its features on it).

Each fault has a *before* window (up to 60 s before it), *during* (from its
start to 5 s after it ended, 10 s for the burst: the sidecar's feature reload
is debounced 5 s) and *after* (up to 60 s, sharing the gap to the next fault
with its before window). Once a second the sidecar's, the indexer's and the
load generator's RSS and CPU, the audit queue depth and the indexer's progress
against the node's head are sampled; an indexer that makes no progress for 30 s
while the head moves gets its Python stacks taken with py-spy. At the end the
chain stops, the indexer's lag and its agreement with the chain (every event
key) are measured, the sidecar is stopped gracefully (its audit log flushes)
and every returned decision_id is looked up in ``qf.scorer_decisions``
(DetectAnomaly, audited without an id, by count).

Report (one JSON object on stdout; ``--out`` also writes it, and the markdown
next to it as ``.md``; the markdown summary on stderr): calls by method and
status code, failed calls by code, audit rows lost (target 0), sidecar RSS
after warm-up / at the end / max and growth (target < 10%), p50/p99 per window
and per 10 s, reorgs injected and repaired, indexer blocks behind at the end
and stalls, whether the indexer survived the restart, and what the two
processes logged. Everything started is stopped and deleted at the end, also
on Ctrl-C (``--logs`` keeps a copy of the logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QF = ROOT / ".venv" / "bin" / "qf"
CHAIN_ID = 31337
METHODS = ("ScoreContribution", "ScoreContributions", "DetectAnomaly", "Recommend", "AssignVariant",
           "RecordOutcome", "GetModelInfo")  # fmt: skip
MIX = (0.80, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01)
BATCH = 8
EXPERIMENTS = ("project_list", "project_list_bandit")
WARMUP_SECONDS = 10.0
WINDOW_SECONDS = 60.0
SETTLE_SECONDS = 5.0
REORG_EVERY = (15.0, 45.0)
STALL_SECONDS = 30.0
MAX_REORG_DEPTH = 5


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the load generator (runs in its own process) -------------------------------------------


def load_process(cfg: dict[str, Any], out_path: str, events: Any) -> None:
    """Open-loop mixed RPCs; writes per-call arrays to ``out_path``.npz and decision ids to ``out_path``.ids."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator decides when this process stops
    try:
        asyncio.run(_load(cfg, out_path, events))
    except BaseException as exc:
        events.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


async def _load(cfg: dict[str, Any], out_path: str, events: Any) -> None:
    import grpc  # noqa: PLC0415 - imported in the child process
    from grpc import aio  # noqa: PLC0415

    from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb  # noqa: PLC0415
    from qf_sentinel.scorer.api.v1 import scorer_pb2_grpc  # noqa: PLC0415
    from qf_sentinel.scorer.client import SERVICE_CONFIG  # noqa: PLC0415

    rate, seconds, deadline = float(cfg["rate"]), float(cfg["seconds"]), float(cfg["deadline"])
    n = int(rate * seconds)
    rng = np.random.default_rng(cfg["seed"])
    methods = rng.choice(len(METHODS), size=n, p=MIX).astype(np.int8)
    picks = rng.integers(0, 1 << 30, size=n)
    contributions = [
        pb.Contribution(donor=c["donor"], recipient_id=c["recipient_id"], pool_id=str(c["pool_id"]),
                        chain_id=CHAIN_ID, token=c["token"], amount=c["amount"])
        for c in cfg["contributions"]
    ]  # fmt: skip
    donors = [c.donor for c in contributions]
    pools = sorted({c.pool_id for c in contributions})
    metadata = (("authorization", f"Bearer {cfg['token']}"),)
    options = [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1)]
    channel = aio.insecure_channel(cfg["target"], options=options)
    stub = scorer_pb2_grpc.ScorerStub(channel)
    codes = np.full(n, -1, dtype=np.int16)
    latency = np.full(n, np.nan, dtype=np.float64)
    lag = np.full(n, np.nan, dtype=np.float64)  # how late the generator sent a call (its own share of latency)
    ids: list[str] = []
    ok = np.zeros(len(METHODS), dtype=np.int64)  # answers per method, warm-up included (for the audit check)
    assigned: list[tuple[str, str]] = []  # (experiment, user) with a variant: RecordOutcome needs one

    async def call(i: int) -> None:
        pick = int(picks[i])
        m = METHODS[methods[i]]
        if m == "ScoreContribution":
            r = await stub.ScoreContribution(
                pb.ScoreContributionRequest(contribution=contributions[pick % len(contributions)]),
                metadata=metadata, timeout=deadline,
            )  # fmt: skip
            ids.append(r.decision_id)
        elif m == "ScoreContributions":
            batch = [contributions[(pick + k * 7919) % len(contributions)] for k in range(BATCH)]
            rs = await stub.ScoreContributions(
                pb.ScoreContributionsRequest(contributions=batch), metadata=metadata, timeout=deadline
            )
            ids.extend(x.decision_id for x in rs.results)
        elif m == "DetectAnomaly":
            await stub.DetectAnomaly(pb.DetectAnomalyRequest(donor=donors[pick % len(donors)], chain_id=CHAIN_ID),
                                     metadata=metadata, timeout=deadline)  # fmt: skip
        elif m == "Recommend":
            await stub.Recommend(
                pb.RecommendRequest(donor=donors[pick % len(donors)], pool_id=pools[pick % len(pools)], k=5,
                                    chain_id=CHAIN_ID),
                metadata=metadata, timeout=deadline,
            )  # fmt: skip
        elif m == "AssignVariant":
            experiment, user = EXPERIMENTS[pick % len(EXPERIMENTS)], f"user-{pick % 5000}"
            await stub.AssignVariant(pb.AssignVariantRequest(experiment=experiment, user_id=user),
                                     metadata=metadata, timeout=deadline)  # fmt: skip
            assigned.append((experiment, user))
        elif m == "RecordOutcome":
            experiment, user = assigned[pick % len(assigned)]
            await stub.RecordOutcome(
                pb.RecordOutcomeRequest(experiment=experiment, user_id=user, reward=float(pick % 2)),
                metadata=metadata, timeout=deadline,
            )  # fmt: skip
        else:
            await stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=metadata, timeout=deadline)
        ok[methods[i]] += 1

    # Warm-up (not timed): the channel, each method's first call on the server, users with a variant.
    for k in range(40):
        experiment, user = EXPERIMENTS[k % len(EXPERIMENTS)], f"user-{k}"
        await stub.AssignVariant(pb.AssignVariantRequest(experiment=experiment, user_id=user), metadata=metadata,
                                 timeout=10)  # fmt: skip
        assigned.append((experiment, user))
    for i in range(min(n, 200)):
        with contextlib.suppress(grpc.RpcError):
            await call(i)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2  # asyncio's clock is time.monotonic(), system-wide on Linux: the orchestrator's
    events.put(("started", t0))
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, scheduled: float) -> None:
        lag[i] = loop.time() - scheduled
        try:
            await call(i)
            codes[i] = 0
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            codes[i] = code.value[0] if isinstance(code, grpc.StatusCode) else 2  # UNKNOWN
        latency[i] = loop.time() - scheduled

    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    await channel.close()
    arrays = {"offset": np.arange(n) / rate, "method": methods, "code": codes, "latency": latency, "lag": lag}
    np.savez(out_path + ".npz", ok=ok, **arrays)
    Path(out_path + ".ids").write_text("\n".join(x for x in ids if x))
    events.put(("done", len(ids)))


# -- the chain: donations and random reorgs ------------------------------------------------


class ChainDriver(threading.Thread):
    """Donates on the live pool every 0.3-1.5 s and injects a reorg every 15-45 s until stopped.

    Every donation is mined (its receipt seen) before a reorg: anvil 1.7.1's ``anvil_reorg`` called while an
    automined transaction is still being sealed mines extra blocks and can leave a block number with no block
    (``eth_getBlockByNumber`` null below the head), which no real node does. The numbers around each reorg
    are checked for such holes, and the report lists any.
    """

    def __init__(self, pool: Any, seed: int) -> None:
        super().__init__(name="chain-driver", daemon=True)
        self.pool = pool
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.paused = threading.Event()
        self.reorgs: list[dict[str, Any]] = []
        self.donations = 0
        self.errors: list[str] = []

    def run(self) -> None:
        from qf_sentinel.qf.chain.tx import wait_for_receipts  # noqa: PLC0415

        rng, pool = self.rng, self.pool
        rpc = pool.chain.rpc
        next_reorg = time.monotonic() + rng.uniform(*REORG_EVERY)
        while not self.stop_event.wait(rng.uniform(0.3, 1.5)):
            if self.paused.is_set():
                continue
            try:
                sent = []
                for _ in range(rng.randint(1, 3)):
                    sent.append(pool.donate(rng.choice(pool.donors), rng.choice(pool.recipients),
                                            rng.randint(1, 10**15)))  # fmt: skip
                    self.donations += 1
                wait_for_receipts(rpc, sent)
                if time.monotonic() >= next_reorg:
                    depth = rng.randint(1, MAX_REORG_DEPTH)
                    replacements = [
                        [pool.donation(rng.choice(pool.donors), rng.choice(pool.recipients), rng.randint(1, 10**15)),
                         rng.randint(0, depth - 1)]
                        for _ in range(rng.randint(0, 3))
                    ]  # fmt: skip
                    head = rpc.block_number()
                    rpc.call("anvil_reorg", [depth, replacements])
                    after = rpc.block_number()
                    holes = [n for n in range(head - depth - 2, after + 1)
                             if rpc.call("eth_getBlockByNumber", [hex(n), False]) is None]  # fmt: skip
                    self.reorgs.append({"at": time.monotonic(), "depth": depth, "replacements": len(replacements),
                                        "head_before": head, "head_after": after, "holes": holes})  # fmt: skip
                    next_reorg = time.monotonic() + rng.uniform(*REORG_EVERY)
            except Exception as exc:  # keep driving; the report lists what failed
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


# -- sampling the sidecar ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def py_spy(pid: int) -> str:
    """The Python stacks of a process (py-spy from the venv), or why not."""
    binary = ROOT / ".venv" / "bin" / "py-spy"
    if not binary.exists():
        return "py-spy is not installed in .venv"
    try:
        done = subprocess.run([str(binary), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30,
                              check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"py-spy failed: {exc}"
    return (done.stdout or done.stderr)[-6000:]


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def scrape(port: int) -> dict[str, float]:
    """A Prometheus text page as {series with labels: value}; {} if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
                base, brace, labels = name.partition("{")
                if brace and labels.startswith('chain_id="') and labels.count("=") == 1:
                    values[base] = float(value)  # the soak indexes one chain: its series by their bare name
    return values


class Sampler(threading.Thread):
    """Once a second: RSS and CPU time of the sidecar, the indexer and the load generator; the audit queue
    depth; the indexer's last indexed block and the node's head. An indexer that has not advanced for
    STALL_SECONDS while the head moved is a stall: its Python stacks are taken once with py-spy, for the report."""

    def __init__(self, pids: dict[str, int], sidecar_metrics: int, indexer_metrics: int, rpc_url: str) -> None:
        super().__init__(name="sampler", daemon=True)
        self.pids = pids  # more may be added while running (the load generator)
        self.ports = {"sidecar": sidecar_metrics, "indexer": indexer_metrics}
        self.rpc_url = rpc_url
        self.samples: list[dict[str, Any]] = []
        self.stalls: list[dict[str, Any]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        from qf_sentinel.qf.chain.rpc import RpcClient  # noqa: PLC0415

        rpc = RpcClient(self.rpc_url, timeout_seconds=2.0)
        progress: tuple[float, float] | None = None  # (time, last indexed block) of the last advance
        while not self.stop_event.is_set():
            scorer, indexer = scrape(self.ports["sidecar"]), scrape(self.ports["indexer"])
            pids = dict(self.pids)
            now = time.monotonic()
            last = indexer.get("qf_indexer_last_indexed_block")
            try:
                head: float | None = rpc.block_number()
            except Exception:
                head = None
            self.samples.append({
                "t": now, "rss": {k: rss_kb(p) for k, p in pids.items()},
                "cpu": {k: cpu_seconds(p) for k, p in pids.items()},
                "queue": scorer.get("qf_scorer_audit_queue_depth"), "indexed": last, "head": head,
            })  # fmt: skip
            open_stall = bool(self.stalls) and self.stalls[-1]["resolved_at"] is None
            if last is not None and (progress is None or last != progress[1]):
                progress = (now, last)
                if open_stall:
                    self.stalls[-1]["resolved_at"] = now
            elif (progress is not None and last is not None and head is not None and head > last + 2
                  and now - progress[0] > STALL_SECONDS and not open_stall):  # fmt: skip
                self.stalls.append({"since": progress[0], "at_block": last, "head": head, "resolved_at": None,
                                    "stacks": py_spy(pids["indexer"])})  # fmt: skip
            self.stop_event.wait(1.0)

    def series(self, what: str, name: str) -> list[tuple[float, float]]:
        return [(x["t"], v) for x in self.samples if (v := x[what].get(name)) is not None]

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


# -- the soak ------------------------------------------------------------------------------


@dataclass
class Soak:
    args: argparse.Namespace
    work: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    load: Any = None
    driver: ChainDriver | None = None
    sampler: Sampler | None = None
    server: Any = None
    report: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def settings(self) -> Any:
        from qf_sentinel.qf.settings import Settings  # noqa: PLC0415

        return Settings.from_env({"QF_HOME": str(self.work)})

    def start_postgres(self) -> str:
        from qf_sentinel.qf.db.embedded import start_server  # noqa: PLC0415

        self.server = start_server(self.settings.pgdata_dir, cleanup_mode="delete")
        return str(self.server.get_uri())

    def stop_postgres(self) -> None:
        from qf_sentinel.qf.db.embedded import stop_embedded  # noqa: PLC0415

        self.server = None
        stop_embedded(self.settings)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=os.environ | env, cwd=ROOT, start_new_session=True)  # fmt: skip
        self.procs[name] = proc
        return proc

    def cleanup(self) -> None:
        """Stop everything that was started, in order, and delete the working directory."""
        if self.load is not None and self.load.is_alive():
            self.load.terminate()
            self.load.join(timeout=10)
        for thread in (self.driver, self.sampler):
            if thread is not None:
                thread.stop()
        for name in ("sidecar", "indexer", "anvil"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        with contextlib.suppress(Exception):
            self.stop_postgres()
        if self.args.logs:
            with contextlib.suppress(OSError):
                shutil.copytree(self.work / "logs", self.args.logs, dirs_exist_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)


def train_versions(db_url: str, models: Path, seed: int) -> list[str]:
    """Two versions trained by the real pipeline on the indexed round (the second only differs by its seed)."""
    from qf_sentinel.qf.db import connect  # noqa: PLC0415
    from qf_sentinel.qf.model.loader import load_dataset  # noqa: PLC0415
    from qf_sentinel.qf.train.pipeline import TrainConfig, train  # noqa: PLC0415

    with connect(db_url) as conn:
        dataset = load_dataset(conn, CHAIN_ID)
    versions = []
    for s in (seed, seed + 1):
        result = train(dataset, models, TrainConfig(seed=s, folds=3, n_boot=50))
        versions.append(result.version_dir.name)
    return versions


def checkpoint(db_url: str) -> int | None:
    from qf_sentinel.qf.db import connect  # noqa: PLC0415

    try:
        with connect(db_url) as conn:
            row = conn.execute("SELECT checkpoint_block FROM qf.chains WHERE chain_id = %s", [CHAIN_ID]).fetchone()
    except Exception:
        return None
    return None if row is None else row[0]


def wait_caught_up(db_url: str, rpc: Any, timeout: float, indexer: subprocess.Popen[bytes]) -> float | None:
    """Seconds until the indexer's checkpoint reaches the head it saw at the start (None on timeout)."""
    started = time.monotonic()
    head = rpc.block_number()
    while time.monotonic() - started < timeout:
        if indexer.poll() is not None:
            return None
        done = checkpoint(db_url)
        if done is not None and done >= head:
            return time.monotonic() - started
        time.sleep(0.25)
    return None


def wait_serving(target: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import grpc  # noqa: PLC0415
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"qf serve exited with code {proc.returncode} before serving")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.5)
    raise TimeoutError(f"qf serve did not report SERVING within {timeout:g} s")


def refresh_burst(db_url: str, count: int) -> list[float]:
    """Back-to-back full and incremental analytics refreshes, each NOTIFYing like the indexer; seconds each."""
    from psycopg import sql  # noqa: PLC0415

    from qf_sentinel.qf.db import connect  # noqa: PLC0415

    took = []
    with connect(db_url) as conn:
        for i in range(count):
            started = time.monotonic()
            with conn.transaction():
                conn.execute("SELECT qf.rebuild_analytics()" if i % 2 == 0 else "SELECT qf.refresh_analytics()")
                row = conn.execute("SELECT checkpoint_block FROM qf.chains WHERE chain_id = %s", [CHAIN_ID]).fetchone()
                payload = f"{CHAIN_ID}:{row[0] if row else ''}"
                conn.execute(sql.SQL("NOTIFY qf_views_refreshed, {}").format(sql.Literal(payload)))
            took.append(time.monotonic() - started)
    return took


def reconcile(db_url: str, ids: list[str], answered: dict[str, int]) -> dict[str, Any]:
    """Returned decision ids missing from qf.scorer_decisions, and rows there that no returned id names.

    DetectAnomaly is audited too but returns no id: its rows are counted against its answers instead.
    """
    from qf_sentinel.qf.db import connect  # noqa: PLC0415

    with connect(db_url) as conn:
        conn.execute("CREATE TEMP TABLE returned (decision_id uuid PRIMARY KEY)")
        with conn.cursor().copy("COPY returned FROM STDIN") as copy:
            for decision_id in set(ids):
                copy.write_row((decision_id,))
        missing = conn.execute(
            "SELECT count(*) FROM returned r WHERE NOT EXISTS "
            "(SELECT 1 FROM qf.scorer_decisions d WHERE d.decision_id = r.decision_id)"
        ).fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM qf.scorer_decisions").fetchone()[0]
        unreturned = conn.execute(
            "SELECT count(*) FROM qf.scorer_decisions d WHERE NOT EXISTS "
            "(SELECT 1 FROM returned r WHERE r.decision_id = d.decision_id) AND d.method <> 'DetectAnomaly'"
        ).fetchone()[0]
        by_method = dict(conn.execute("SELECT method, count(*) FROM qf.scorer_decisions GROUP BY 1").fetchall())
    anomaly_lost = max(0, answered.get("DetectAnomaly", 0) - by_method.get("DetectAnomaly", 0))
    return {"returned_ids": len(ids), "distinct_returned_ids": len(set(ids)), "rows_in_table": stored,
            "rows_by_method": by_method, "lost": missing + anomaly_lost, "lost_scoring": missing,
            "lost_detect_anomaly": anomaly_lost, "detect_anomaly_answers": answered.get("DetectAnomaly", 0),
            "scoring_rows_not_returned_to_client": unreturned}  # fmt: skip


def log_findings(path: Path) -> dict[str, Any]:
    """What a process logged (JSON lines): counts by level and event, the first line of each warning or worse
    and of each info event seen fewer than 20 times; the tail of the lines that are not JSON."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    other: list[str] = []
    if not path.exists():
        return {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip():
                other.append(line[:300])
            continue
        if not isinstance(entry, dict):
            continue
        key = f"{entry.get('level', '')}:{entry.get('event')}"
        counts[key] += 1
        examples.setdefault(key, line[:400])
    routine = {k for k, n in counts.items() if k.startswith(("info:", "debug:")) and n >= 20}
    return {"by_event": dict(counts.most_common()), "examples": {k: v for k, v in examples.items() if k not in routine},
            "non_json_tail": other[-15:]}  # fmt: skip


def percentiles(latency: np.ndarray) -> dict[str, float | None]:
    if latency.size == 0:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = latency * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2)}  # fmt: skip


def window_stats(name: str, lo: float, hi: float, data: dict[str, np.ndarray], codes: dict[int, str]) -> dict[str, Any]:
    """Calls scheduled in [lo, hi) s after the load's start: all of them (a failure at its time to fail)."""
    sel = (data["offset"] >= lo) & (data["offset"] < hi) & (data["code"] >= 0)
    score = sel & (data["method"] == 0)
    failed = sel & (data["code"] != 0)
    by_code = Counter(codes.get(int(c), str(c)) for c in data["code"][failed])
    return {"window": name, "from_s": round(lo, 1), "to_s": round(hi, 1), "calls": int(sel.sum()),
            "failed": int(failed.sum()), "failed_by_code": dict(by_code.most_common()),
            **percentiles(data["latency"][sel]), "score_p99_ms": percentiles(data["latency"][score])["p99_ms"],
            "send_lag_p99_ms": percentiles(data["lag"][sel])["p99_ms"]}  # fmt: skip


def timeline(data: dict[str, np.ndarray], codes: dict[int, str], sampler: Sampler, t0: float, end: float,
             step: float = 10.0) -> list[dict[str, Any]]:  # fmt: skip
    """Per ``step`` seconds: the window figures, and the CPU share and RSS of the processes."""
    rows = []
    for lo in np.arange(0.0, end, step):
        row = window_stats(f"{lo:.0f}s", float(lo), float(lo + step), data, codes)
        for name in ("sidecar", "load", "indexer"):
            cpu = [(t - t0, v) for t, v in sampler.series("cpu", name) if lo <= t - t0 <= lo + step]
            if len(cpu) >= 2:
                row[f"{name}_cpu_pct"] = round((cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) * 100, 1)
        rss = [v for t, v in sampler.series("rss", "sidecar") if lo <= t - t0 <= lo + step]
        row["sidecar_rss_mb"] = round(rss[-1] / 1024, 1) if rss else None
        behind = [x["head"] - x["indexed"] for x in sampler.samples
                  if lo <= x["t"] - t0 <= lo + step and x["head"] is not None and x["indexed"] is not None]  # fmt: skip
        row["indexer_behind_max"] = int(max(behind)) if behind else None
        for key in ("window", "max_ms"):
            row.pop(key)
        rows.append(row)
    return rows


def windows(faults: list[dict[str, Any]], warmup: float, end: float) -> list[tuple[str, float, float]]:
    """Baseline, then before / during / after per fault; before and after share the gaps between faults."""
    out = [("baseline", warmup, faults[0]["start"] if faults else end)]
    for k, fault in enumerate(faults):
        prev_end = faults[k - 1]["settled"] if k else warmup
        next_start = faults[k + 1]["start"] if k + 1 < len(faults) else end
        before = min(WINDOW_SECONDS, (fault["start"] - prev_end) / (2 if k else 1))
        after = min(WINDOW_SECONDS, (next_start - fault["settled"]) / (2 if k + 1 < len(faults) else 1))
        out += [(f"{fault['name']}: before", fault["start"] - before, fault["start"]),
                (f"{fault['name']}: during", fault["start"], fault["settled"]),
                (f"{fault['name']}: after", fault["settled"], fault["settled"] + after)]  # fmt: skip
    return out


def stall_entry(stall: dict[str, Any], t0: float, faults: list[dict[str, Any]]) -> dict[str, Any]:
    """A stall with times from the load's start and the fault it overlaps (expected while the database is down)."""
    since = stall["since"] - t0
    until = None if stall["resolved_at"] is None else stall["resolved_at"] - t0
    during = [f["name"] for f in faults if since < f["settled"] and (until is None or until > f["start"])]
    return stall | {"since": round(since, 1), "resolved_at": None if until is None else round(until, 1),
                    "overlaps_fault": during}  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    lines = [f"## Soak: {report['config']['minutes']} min at {report['config']['rate']} req/s, "
             f"{report['config']['outage_seconds']} s PostgreSQL outage", "",
             *([f"**aborted: {report['aborted']}**", ""] if report.get("aborted") else []),
             "| window | from s | to s | calls | failed (by code) | p50 ms | p99 ms | ScoreContribution p99 ms "
             "| max ms | send lag p99 ms |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for w in report.get("windows", []):
        codes = ", ".join(f"{k} {v}" for k, v in w["failed_by_code"].items())
        lines.append(f"| {w['window']} | {w['from_s']} | {w['to_s']} | {w['calls']} | {w['failed']}"
                     f"{f' ({codes})' if codes else ''} | {w['p50_ms']} | {w['p99_ms']} | {w['score_p99_ms']} "
                     f"| {w['max_ms']} | {w['send_lag_p99_ms']} |")  # fmt: skip
    lines += ["", "| method | " + " | ".join(report.get("codes_seen", [])) + " |",
              "|---|" + "---:|" * len(report.get("codes_seen", []))]  # fmt: skip
    for method, by_code in report.get("calls_by_method", {}).items():
        lines.append(f"| {method} | " + " | ".join(str(by_code.get(c, 0)) for c in report["codes_seen"]) + " |")
    audit, rss, idx = report.get("audit", {}), report.get("sidecar_rss", {}), report.get("indexer", {})
    stalls = "; ".join(f"from {x['since']} s at block {x['at_block']:.0f}, resolved at {x['resolved_at']} s"
                       + (f" (during {', '.join(x['overlaps_fault'])})" if x["overlaps_fault"] else "")
                       for x in report.get("indexer_stalls", []))  # fmt: skip
    lines += [
        "",
        f"- failed calls by code: {report.get('failed_by_code')}",
        f"- audit rows lost: {audit.get('lost')} of {audit.get('distinct_returned_ids')} returned decision ids "
        f"(dropped counter {audit.get('sidecar_dropped_total')}, max queue depth {audit.get('max_queue_depth')})",
        f"- sidecar RSS: {rss.get('start_mb')} MB after warm-up, {rss.get('end_mb')} MB at the end, max "
        f"{rss.get('max_mb')} MB, growth {rss.get('growth_pct')}%",
        f"- reorgs: {report.get('reorgs', {}).get('injected')} injected, {idx.get('reorgs_repaired')} repaired; "
        f"indexer {idx.get('blocks_behind_at_end')} blocks behind at the end, caught up in "
        f"{idx.get('caught_up_seconds')} s, index equals chain: {idx.get('index_matches_chain')}"
        + ("" if idx.get("index_matches_chain") is not False else f" ({idx.get('index_differences')})"),
        f"- indexer stalls (no progress for {STALL_SECONDS:g} s while the head moved): {stalls or 'none'}; "
        f"devnet holes after reorgs: {report.get('reorgs', {}).get('devnet_holes') or 'none'}",
        f"- indexer survived the PostgreSQL restart: {idx.get('survived_pg_restart')} "
        f"(resumed in {idx.get('resumed_after_restart_seconds')} s); sidecar exit code "
        f"{report.get('sidecar', {}).get('exit_code')}",
    ]
    return "\n".join(lines) + "\n"


# -- the run: set-up, the load through three faults, the end, the report ----------------------

#: The modules the set-up uses, imported before its clock starts (as they always were): ``setup_seconds``
#: times the parts starting, not Python importing them (a couple of seconds).
SET_UP_MODULES = ("qf.chain.anvil", "qf.chain.deploy", "qf.chain.rpc", "qf.db", "qf.db.migrate", "qf.sim.execute",
                  "qf.sim.labels", "qf.sim.scenario", "tests.fixtures.chain", "tests.fixtures.rounds",
                  "tests.indexer.harness", "tests.indexer.live")  # fmt: skip


@dataclass(frozen=True)
class Devnet:
    """anvil with the contracts and the simulated round, and the live pool the chain driver donates to."""

    url: str
    rpc: Any
    deployment: Any
    simulated_donations: int
    live: Any


@dataclass(frozen=True)
class Sidecar:
    """``qf serve`` as started: its process, its gRPC target, its client and admin tokens, its metrics port."""

    proc: subprocess.Popen[bytes]
    target: str
    token: str
    admin: str
    metrics_port: int


@dataclass(frozen=True)
class Stack:
    """What the set-up started, for the phases after it."""

    db_url: str
    devnet: Devnet
    indexer: subprocess.Popen[bytes]
    indexer_port: int
    versions: list[str]
    sidecar: Sidecar
    contributions: list[dict[str, Any]]


@dataclass(frozen=True)
class LoadRun:
    """The load generator once its first timed call is due (at ``t0``, time.monotonic): the run's clock; and
    what runs beside it (the chain driver, the sampler)."""

    process: Any
    driver: ChainDriver
    sampler: Sampler
    events: Any
    out_path: str
    t0: float
    duration: float
    rss_before: int | None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def wait_until(self, offset: float) -> None:
        """Sleep until ``offset`` s after t0; the load generator dying meanwhile ends the soak."""
        while time.monotonic() < self.t0 + offset:
            if not self.process.is_alive():
                raise RuntimeError("the load generator died")
            time.sleep(min(0.5, max(0.0, self.t0 + offset - time.monotonic())))


def run(soak: Soak) -> None:
    """The soak, into ``soak.report``: set up, load through the three faults, stop everything, the figures."""
    stack = set_up(soak)
    load = start_load(soak, stack)
    indexer_status: dict[str, Any] = {}
    postgres_restart(soak, stack, load, indexer_status)
    model_reload(soak, stack, load)
    view_refresh_burst(soak, stack, load)
    end_of_load = end_load(load)
    check_indexer(stack, indexer_status)
    sidecar_metrics = scrape(stack.sidecar.metrics_port)  # before it stops: its audit counters
    stop_sidecar(soak, stack.sidecar)
    data, ids = read_load(load)
    audit = audit_decisions(stack.db_url, data, ids, load.sampler, sidecar_metrics)
    indexer_status["exit_code"] = stop_gracefully(stack.indexer)
    report_figures(soak, load, data, end_of_load, audit, indexer_status)


# -- set-up ----------------------------------------------------------------------------------


def set_up(soak: Soak) -> Stack:
    """PostgreSQL, the devnet and its round, ``qf index`` caught up, two model versions, ``qf serve``, and the
    contributions the load sends; the set-up's duration and what it made go in the report."""
    for module in SET_UP_MODULES:
        importlib.import_module(module)
    setup_started = time.monotonic()
    db_url = create_database(soak)
    devnet = start_devnet(soak, db_url)
    indexer, indexer_port = start_indexer(soak, db_url, devnet)
    log("indexer caught up; training two model versions")
    models = soak.work / "models"
    versions = train_versions(db_url, models, soak.args.seed)
    served = [json.loads((models / v / "manifest.json").read_text()).get("served_model") for v in versions]
    log(f"trained {versions} (served models {served})")
    sidecar = start_sidecar(soak, db_url, models, versions[0])
    contributions = request_contributions(db_url, soak.args.seed)
    soak.report["setup_seconds"] = round(time.monotonic() - setup_started, 1)
    soak.report["setup"] = {"simulated_donations": devnet.simulated_donations, "live_pool": devnet.live.pool_id,
                            "model_versions": versions, "served_models": served,
                            "request_contributions": len(contributions)}  # fmt: skip
    return Stack(db_url, devnet, indexer, indexer_port, versions, sidecar, contributions)


def create_database(soak: Soak) -> str:
    """The embedded PostgreSQL started, a ``soak`` database in it with every migration; its URL."""
    from qf_sentinel.qf.db import connect, with_database  # noqa: PLC0415
    from qf_sentinel.qf.db.migrate import apply_migrations  # noqa: PLC0415

    with connect(soak.start_postgres(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE soak")
    db_url = with_database(str(soak.server.get_uri()), "soak")
    with connect(db_url) as conn:
        apply_migrations(conn)
    log(f"embedded PostgreSQL up in {soak.work / 'pgdata'}")
    return db_url


def start_devnet(soak: Soak, db_url: str) -> Devnet:
    """anvil with the contracts, the seeded simulated round (its labels stored) and a live pool."""
    from qf_sentinel.qf.chain.anvil import DEV_PRIVATE_KEY, AnvilOptions, start_anvil  # noqa: PLC0415
    from qf_sentinel.qf.chain.deploy import deploy_contracts  # noqa: PLC0415
    from qf_sentinel.qf.chain.rpc import RpcClient  # noqa: PLC0415
    from qf_sentinel.qf.db import connect  # noqa: PLC0415
    from qf_sentinel.qf.sim.execute import execute_plan  # noqa: PLC0415
    from qf_sentinel.qf.sim.labels import store_labels  # noqa: PLC0415
    from qf_sentinel.qf.sim.scenario import plan_simulated_round  # noqa: PLC0415
    from tests.fixtures.chain import Chain  # noqa: PLC0415
    from tests.fixtures.rounds import ROUND  # noqa: PLC0415
    from tests.indexer.live import LivePool  # noqa: PLC0415

    seed = soak.args.seed
    anvil_port = free_port()
    soak.procs["anvil"] = start_anvil(AnvilOptions(port=anvil_port), log_path=soak.work / "logs" / "anvil.log",
                                      detached=True)  # fmt: skip
    url = f"http://127.0.0.1:{anvil_port}"
    rpc = RpcClient(url)
    deployment = deploy_contracts(rpc, DEV_PRIVATE_KEY)
    plan = plan_simulated_round(seed, **ROUND)
    result = execute_plan(rpc, deployment, plan, DEV_PRIVATE_KEY)
    with connect(db_url) as conn:
        store_labels(conn, CHAIN_ID, plan.labels, source="simulate", run_id=f"soak-{seed}")
    live = LivePool(Chain(url, RpcClient(url), deployment))
    log(f"devnet on {url}: {result.donations} simulated donations, live pool {live.pool_id}")
    return Devnet(url, rpc, deployment, result.donations, live)


def start_indexer(soak: Soak, db_url: str, devnet: Devnet) -> tuple[subprocess.Popen[bytes], int]:
    """``qf index`` following the devnet, once it has caught up (and refreshed its analytics); its metrics port."""
    indexer_port = free_port()
    indexer = soak.spawn("indexer", [str(QF), "index"], {
        "QF_HOME": str(soak.work / "indexer"), "QF_DATABASE_URL": db_url, "QF_RPC_URLS": devnet.url,
        "QF_CORE_ADDRESS": devnet.deployment.core, "QF_START_BLOCK": str(devnet.deployment.start_block),
        # The devnet's feeds, as `qf index` reads them from a devnet deployment: AnswerUpdated from any other
        # contract is left out (issue 25), so without them the index would lack the feeds' events.
        "QF_PRICE_FEEDS": ",".join(f"{token}={feed}" for token, feed in devnet.deployment.price_feeds.items()),
        "QF_CHAIN_ID": str(CHAIN_ID), "QF_INDEXER_METRICS_PORT": str(indexer_port), "QF_LOG_FORMAT": "json",
        "QF_LOG_LEVEL": "info",
    })  # fmt: skip
    if wait_caught_up(db_url, devnet.rpc, 300, indexer) is None:
        raise RuntimeError(f"the indexer did not catch up (exit code {indexer.poll()}); see its log")
    time.sleep(2)  # its first analytics refresh
    return indexer, indexer_port


def start_sidecar(soak: Soak, db_url: str, models: Path, version: str) -> Sidecar:
    """``qf serve`` on ``version``, as deployed but without its rate limit, once it reports SERVING."""
    work = soak.work
    token, admin = secrets.token_hex(16), secrets.token_hex(16)
    grpc_port, metrics_port = free_port(), free_port()
    proc = soak.spawn("sidecar", [str(QF), "serve", "--port", str(grpc_port), "--version", version,
                                  "--models-dir", str(models)], {
        "QF_HOME": str(work / "sidecar"), "QF_DATABASE_URL": db_url, "QF_SCORER_TOKENS": f"soak:{token}",
        "QF_SCORER_ADMIN_TOKENS": f"ops:{admin}", "QF_SCORER_RATE_LIMIT_PER_MINUTE": "0",
        "QF_SCORER_METRICS_PORT": str(metrics_port), "QF_LOG_FORMAT": "json", "QF_LOG_LEVEL": "warning",
    })  # fmt: skip
    target = f"127.0.0.1:{grpc_port}"
    wait_serving(target, proc, 180)
    log(f"sidecar serving {version} on {target} (pid {proc.pid})")
    return Sidecar(proc, target, token, admin, metrics_port)


def request_contributions(db_url: str, seed: int) -> list[dict[str, Any]]:
    """The contributions the load scores: one indexed donation per donor (up to 2000), plus about 10% of
    donors never seen (cold starts)."""
    from qf_sentinel.qf.db import connect  # noqa: PLC0415

    with connect(db_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (donor) donor, pool_id, recipient_id, token, round(amount, 6)::text FROM qf.donations "
            "WHERE chain_id = %s AND amount > 0 ORDER BY donor, block_number LIMIT 2000", [CHAIN_ID]
        ).fetchall()  # fmt: skip
    contributions = [{"donor": d, "pool_id": p, "recipient_id": r, "token": t, "amount": a} for d, p, r, t, a in rows]
    rng = random.Random(seed)
    for i in range(max(1, len(contributions) // 9)):  # about 10% never seen: cold starts
        base = rng.choice(contributions)
        contributions.append(base | {"donor": "0x" + f"{0xC01D0000 + i:040x}"})
    return contributions


# -- the load and the three faults -----------------------------------------------------------


def start_load(soak: Soak, stack: Stack) -> LoadRun:
    """Chain activity, sampling and the load generator started; returns once the load's first timed call is due."""
    args = soak.args
    driver = soak.driver = ChainDriver(stack.devnet.live, args.seed)
    driver.start()
    sampler = soak.sampler = Sampler({"sidecar": stack.sidecar.proc.pid, "indexer": stack.indexer.pid},
                                     stack.sidecar.metrics_port, stack.indexer_port, stack.devnet.url)  # fmt: skip
    sampler.start()
    duration = args.minutes * 60.0
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    out_path = str(soak.work / "load")
    cfg = {"target": stack.sidecar.target, "token": stack.sidecar.token, "rate": args.rate, "seconds": duration,
           "deadline": args.deadline, "seed": args.seed, "contributions": stack.contributions}  # fmt: skip
    process = soak.load = context.Process(target=load_process, args=(cfg, out_path, events), name="soak-load")
    process.start()
    sampler.pids["load"] = soak.load.pid
    kind, t0 = events.get(timeout=300)
    if kind != "started":
        raise RuntimeError(f"the load generator failed: {t0}")
    rss_before = rss_kb(stack.sidecar.proc.pid)
    log(f"load started: {args.rate:g} req/s for {duration:g} s")
    return LoadRun(process, driver, sampler, events, out_path, t0, duration, rss_before)


def postgres_restart(soak: Soak, stack: Stack, load: LoadRun, indexer_status: dict[str, Any]) -> None:
    """Fault 1, at 25%: PostgreSQL stopped for ``--outage-seconds`` and started again; did the indexer resume?"""
    indexer = stack.indexer
    load.wait_until(0.25 * load.duration)
    start = load.now()
    log("fault 1: stopping PostgreSQL (pg_ctl -m fast stop)")
    soak.stop_postgres()
    stopped = load.now()
    time.sleep(soak.args.outage_seconds)
    restarted_uri = soak.start_postgres()
    restarted = load.now()
    head_at_restart = stack.devnet.rpc.block_number()  # the chain kept moving while the database was down
    log(f"PostgreSQL started again after {restarted - start:.1f} s")
    indexer_status["alive_during_outage"] = indexer.poll() is None
    soak.faults.append({"name": "postgres restart", "start": start, "stopped": stopped, "end": restarted,
                        "settled": restarted + SETTLE_SECONDS,
                        "same_socket": restarted_uri == str(soak.server.get_uri())})  # fmt: skip
    resumed = None
    while load.now() < 0.5 * load.duration - 10 and indexer.poll() is None:
        done = checkpoint(stack.db_url)
        if done is not None and done >= head_at_restart:
            resumed = load.now() - restarted
            break
        time.sleep(0.5)
    indexer_status["resumed_after_restart_seconds"] = None if resumed is None else round(resumed, 1)
    indexer_status["survived_pg_restart"] = indexer.poll() is None and resumed is not None


def model_reload(soak: Soak, stack: Stack, load: LoadRun) -> None:
    """Fault 2, at 50%: ``ReloadModels`` to the second version, with the admin token."""
    load.wait_until(0.5 * load.duration)
    import grpc  # noqa: PLC0415

    from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb  # noqa: PLC0415
    from qf_sentinel.scorer.api.v1 import scorer_pb2_grpc  # noqa: PLC0415

    version = stack.versions[1]
    start = load.now()
    log(f"fault 2: ReloadModels -> {version}")
    with grpc.insecure_channel(stack.sidecar.target) as channel:
        stub = scorer_pb2_grpc.ScorerStub(channel)
        try:
            reply = stub.ReloadModels(pb.ReloadModelsRequest(version=version),
                                      metadata=(("authorization", f"Bearer {stack.sidecar.admin}"),),
                                      timeout=60)  # fmt: skip
            outcome = f"{reply.previous_version} -> {reply.version}"
        except grpc.RpcError as exc:
            outcome = f"failed: {exc.code().name} {exc.details()}"
    end = load.now()
    soak.faults.append({"name": "model reload", "start": start, "end": end, "settled": end + SETTLE_SECONDS,
                        "outcome": outcome, "seconds": round(end - start, 3)})  # fmt: skip
    log(f"reload: {outcome} in {end - start:.2f} s")


def view_refresh_burst(soak: Soak, stack: Stack, load: LoadRun) -> None:
    """Fault 3, at 75%: ``--refresh-burst`` back-to-back analytics refreshes, each NOTIFYing the sidecar."""
    burst = soak.args.refresh_burst
    load.wait_until(0.75 * load.duration)
    start = load.now()
    log(f"fault 3: {burst} back-to-back analytics refreshes")
    try:
        took = refresh_burst(stack.db_url, burst)
        outcome = "ok"
    except Exception as exc:
        took, outcome = [], f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    end = load.now()
    soak.faults.append({"name": "view refresh burst", "start": start, "end": end,
                        "settled": end + 2 * SETTLE_SECONDS,  # the sidecar's feature reload is debounced 5 s
                        "outcome": outcome, "refreshes": len(took),
                        "refresh_seconds": [round(x, 3) for x in took]})  # fmt: skip
    log(f"refresh burst: {outcome}, {sum(took):.2f} s")


# -- the end ---------------------------------------------------------------------------------


def end_load(load: LoadRun) -> float:
    """Wait for the load generator to finish, then stop sampling and the chain; when the load ended (s after t0)."""
    kind, detail = load.events.get(timeout=load.duration + 600)
    if kind != "done":
        raise RuntimeError(f"the load generator failed: {detail}")
    load.process.join(timeout=60)
    end_of_load = load.now()
    load.sampler.stop()
    load.driver.stop()
    log("load done; chain stopped")
    return end_of_load


def check_indexer(stack: Stack, indexer_status: dict[str, Any]) -> None:
    """With the chain stopped: how far behind the indexer was, how long it took to catch up, and whether what
    it stored is every event of the chain."""
    from tests.fixtures.chain import Chain  # noqa: PLC0415
    from tests.indexer.harness import chain_events, stored_keys  # noqa: PLC0415

    db_url, rpc, indexer = stack.db_url, stack.devnet.rpc, stack.indexer
    head = rpc.block_number()
    behind = None if (cp := checkpoint(db_url)) is None else head - cp
    caught = wait_caught_up(db_url, rpc, 60, indexer)
    time.sleep(1)
    matches, differences = None, None
    if caught is not None:
        stored = stored_keys(db_url)
        on_chain = chain_events(Chain(stack.devnet.url, rpc, stack.devnet.deployment))
        matches = stored == on_chain
        # What differs, by event name: a mismatch says where to look, not only that there is one.
        differences = {"missing": dict(Counter(k[0] for k in on_chain - stored)),
                       "extra": dict(Counter(k[0] for k in stored - on_chain)),
                       "examples": [f"{k[0]} 0x{k[1].hex()}:{k[2]}" for k in sorted(on_chain ^ stored)[:5]]}
    indexer_metrics = scrape(stack.indexer_port)
    indexer_status |= {"alive_at_end": indexer.poll() is None, "blocks_behind_at_end": behind,
                       "caught_up_seconds": None if caught is None else round(caught, 1),
                       "index_matches_chain": matches, "index_differences": differences,
                       "reorgs_repaired": indexer_metrics.get("qf_indexer_reorgs_total"),
                       "last_indexed_block": indexer_metrics.get("qf_indexer_last_indexed_block"),
                       "head": head}  # fmt: skip


def stop_gracefully(proc: subprocess.Popen[bytes]) -> int | str:
    """SIGTERM, then up to 60 s to exit (killed after that); the exit code, or how it was killed."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return f"killed after 60 s: {proc.wait()}"


def stop_sidecar(soak: Soak, sidecar: Sidecar) -> None:
    """The sidecar stopped gracefully (its audit log flushes), before its decisions are reconciled."""
    alive = sidecar.proc.poll() is None
    stop_started = time.monotonic()
    code = stop_gracefully(sidecar.proc)
    soak.report["sidecar"] = {"alive_at_end_of_load": alive, "exit_code": code,
                              "stop_seconds": round(time.monotonic() - stop_started, 1)}  # fmt: skip


def read_load(load: LoadRun) -> tuple[dict[str, np.ndarray], list[str]]:
    """What the load generator wrote: its per-call arrays, and the decision ids it was returned."""
    with np.load(load.out_path + ".npz") as npz:
        data = {k: npz[k] for k in npz.files}
    ids = [x for x in Path(load.out_path + ".ids").read_text().splitlines() if x]
    return data, ids


def audit_decisions(db_url: str, data: dict[str, np.ndarray], ids: list[str], sampler: Sampler,
                    sidecar_metrics: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """Every returned decision id looked up in qf.scorer_decisions, with the sidecar's audit counters."""
    audit = reconcile(db_url, ids, {m: int(k) for m, k in zip(METHODS, data["ok"], strict=True)})
    queue = [x["queue"] for x in sampler.samples if x["queue"] is not None]
    audit |= {"sidecar_written_total": sidecar_metrics.get("qf_scorer_audit_rows_written_total"),
              "sidecar_dropped_total": sidecar_metrics.get("qf_scorer_audit_rows_dropped_total"),
              "sidecar_refused_total": sidecar_metrics.get("qf_scorer_audit_rows_refused_total"),
              "max_queue_depth": max(queue) if queue else None}  # fmt: skip
    return audit


# -- the report ------------------------------------------------------------------------------


def calls_by_method(data: dict[str, np.ndarray], names: dict[int, str]) -> tuple[dict[str, dict[str, int]],
                                                                                  Counter[str]]:  # fmt: skip
    """Calls sent, per method by status code name; and the failed ones by code."""
    sent = data["code"] >= 0
    by_method: dict[str, dict[str, int]] = {}
    failed: Counter[str] = Counter()
    for m, name in enumerate(METHODS):
        counts = Counter(names.get(int(c), str(c)) for c in data["code"][sent & (data["method"] == m)])
        by_method[name] = dict(counts.most_common())
        failed.update({k: v for k, v in counts.items() if k != "OK"})
    return by_method, failed


def sidecar_rss(sampler: Sampler, t0: float, end_of_load: float, rss_before: int | None) -> dict[str, Any]:
    """The sidecar's memory: before the load, after warm-up, at the end of the load, the most, and the growth."""
    rss = [(t - t0, v) for t, v in sampler.series("rss", "sidecar")]
    after_warmup = [v for t, v in rss if t >= WARMUP_SECONDS] or [v for _, v in rss]
    during_load = [v for t, v in rss if t <= end_of_load]
    rss_start, rss_end = after_warmup[0], (during_load or after_warmup)[-1]
    return {"before_load_mb": None if rss_before is None else round(rss_before / 1024, 1),
            "start_mb": round(rss_start / 1024, 1), "end_mb": round(rss_end / 1024, 1),
            "max_mb": round(max(s for _, s in rss) / 1024, 1),
            "growth_pct": round((rss_end - rss_start) / rss_start * 100, 1),
            "growth_from_before_load_pct": None if not rss_before else
            round((rss_end - rss_before) / rss_before * 100, 1)}  # fmt: skip


def report_figures(soak: Soak, load: LoadRun, data: dict[str, np.ndarray], end_of_load: float,
                   audit: dict[str, Any], indexer_status: dict[str, Any]) -> None:  # fmt: skip
    """The report's figures: calls by method and code, latency per window and per 10 s, audit, memory, faults,
    reorgs, indexer stalls and status, and what the processes logged."""
    import grpc  # noqa: PLC0415

    names = {c.value[0]: c.name for c in grpc.StatusCode}
    sampler, driver, t0, duration, work = load.sampler, load.driver, load.t0, load.duration, soak.work
    sent = data["code"] >= 0
    by_method, failed = calls_by_method(data, names)
    codes_seen = sorted({c for d in by_method.values() for c in d}, key=lambda c: (c != "OK", c))
    memory = sidecar_rss(sampler, t0, end_of_load, load.rss_before)
    idx_rss = [v for _, v in sampler.series("rss", "indexer")]
    soak.report.update({
        "calls": int(sent.sum()), "achieved_rps": round(int(sent.sum()) / end_of_load, 1),
        "calls_by_method": by_method, "codes_seen": codes_seen, "failed_by_code": dict(failed.most_common()),
        "failed_calls": int(sum(failed.values())),
        "windows": [window_stats(n, lo, hi, data, names)
                    for n, lo, hi in windows(soak.faults, WARMUP_SECONDS, duration)],
        "overall": window_stats("all", 0, duration, data, names),
        "timeline": timeline(data, names, sampler, t0, duration),
        "audit": audit,
        "sidecar_rss": memory,
        "indexer_rss_mb": {"start": round(idx_rss[0] / 1024, 1), "end": round(idx_rss[-1] / 1024, 1),
                           "max": round(max(idx_rss) / 1024, 1)} if idx_rss else None,
        "faults": [{k: round(v, 2) if isinstance(v, float) else v for k, v in f.items()} for f in soak.faults],
        "reorgs": {"injected": len(driver.reorgs), "donations_sent": driver.donations,
                   "devnet_holes": sorted({n for r in driver.reorgs for n in r["holes"]}),
                   "list": [r | {"at": round(r["at"] - t0, 1)} for r in driver.reorgs],
                   "driver_errors": driver.errors[:20], "driver_error_count": len(driver.errors)},
        "indexer_stalls": [stall_entry(x, t0, soak.faults) for x in sampler.stalls],
        "indexer": indexer_status,
        "logs": {"indexer": log_findings(work / "logs" / "indexer.log"),
                 "sidecar": log_findings(work / "logs" / "sidecar.log")},
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0, help="offered requests per second")
    parser.add_argument("--outage-seconds", type=float, default=30.0, help="how long PostgreSQL stays down")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="also write the JSON here (and the markdown next to it, .md)")
    parser.add_argument("--deadline", type=float, default=1.0, help="per-call deadline in seconds")
    parser.add_argument("--refresh-burst", type=int, default=10, help="refreshes in the view-refresh burst")
    parser.add_argument("--logs", type=Path, help="copy the indexer's, sidecar's and anvil's logs here")
    args = parser.parse_args()
    if args.minutes * 60 * 0.25 < args.outage_seconds + 2 * SETTLE_SECONDS + WARMUP_SECONDS:
        parser.error("--minutes is too short for --outage-seconds (the faults sit at 25%, 50% and 75% of the run)")

    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from qf_sentinel.qf.logs import configure_logging  # noqa: PLC0415

    configure_logging("auto", "warning")  # to stderr, and quiet: stdout is the JSON report
    work = Path(tempfile.mkdtemp(prefix="qf-soak-"))
    (work / "logs").mkdir()
    soak = Soak(args=args, work=work)
    soak.report["config"] = {"minutes": args.minutes, "rate": args.rate, "outage_seconds": args.outage_seconds,
                             "seed": args.seed, "deadline_seconds": args.deadline, "refresh_burst": args.refresh_burst,
                             "mix": dict(zip(METHODS, MIX, strict=True))}  # fmt: skip

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        run(soak)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        soak.report["aborted"] = "interrupted"
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        soak.report["aborted"] = f"{type(exc).__name__}: {exc}"
        soak.report["logs"] = {name: log_findings(work / "logs" / f"{name}.log") for name in ("indexer", "sidecar")}
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            soak.cleanup()
    text = json.dumps(soak.report, indent=2, default=str)
    print(text)
    table = markdown(soak.report)
    print(table, file=sys.stderr)
    if args.out:
        args.out.write_text(text + "\n")
        args.out.with_suffix(".md").write_text(table)
    if "aborted" in soak.report:
        sys.exit(1)


if __name__ == "__main__":
    main()
