"""The console's web application: routes, sessions and security headers around the queries and the review.

Pages are rendered on the server (Jinja2); the only script is plotly.js, from
the plotly wheel, and a few lines that draw the figures, so the console works
with no internet and a strict Content-Security-Policy (no inline script).
Database work runs in Starlette's thread pool on a small psycopg pool.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import psycopg
import structlog
import uvicorn
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from qf_sentinel.console import charts, queries, sessions
from qf_sentinel.console.auth import CSRF_FIELD, Login, authenticate, csrf_token, csrf_valid, session_id, start_session
from qf_sentinel.console.chains import chain_label, in_scope, narrowed
from qf_sentinel.console.comparison import ComparisonCache, to_csv
from qf_sentinel.console.config import ConsoleConfig
from qf_sentinel.console.display import chain_text, plain
from qf_sentinel.console.middleware import BodyLimit, SecurityHeaders
from qf_sentinel.console.model_view import plot_path, served_model
from qf_sentinel.console.review import ReviewConflict, ReviewError, parse_verdict, record_verdict
from qf_sentinel.console.throttle import LoginThrottle
from qf_sentinel.qf.errors import AmbiguousChain, ConfigError, QFError
from qf_sentinel.qf.eth import address
from qf_sentinel.qf.experiments import store as experiment_store
from qf_sentinel.qf.matching.db import resolve_chain
from qf_sentinel.qf.matching.rounds import ROUND_NAME

log = structlog.get_logger()
T = TypeVar("T")
HERE = Path(__file__).parent
_DECISIONS = ("APPROVE", "REVIEW", "BLOCK")
_STATUSES = ("pending", "reviewed", "all")
#: Deeper than any real queue; PostgreSQL's OFFSET is a bigint, and a page this deep is empty anyway.
MAX_OFFSET = 1_000_000_000

def create_app(config: ConsoleConfig, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The console for ``config``: a Starlette app with its own connection pool, opened at startup.

    ``clock`` times the login throttle (tests pass their own).
    """
    console = Console(config, clock)
    page = console.page
    routes = [
        Route("/login", console.login_page, methods=["GET"]),
        Route("/login", console.login_submit, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/", page(console.rounds_page)),
        Route("/rounds/{pool_id}", page(console.round_page)),
        Route("/rounds/{pool_id}/matching.csv", page(console.round_csv)),
        Route("/chains/{chain_id}/rounds/{pool_id}", page(console.round_page)),
        Route("/chains/{chain_id}/rounds/{pool_id}/matching.csv", page(console.round_csv)),
        Route("/named/{name}", page(console.named_round_page)),
        Route("/named/{name}/matching.csv", page(console.named_round_csv)),
        Route("/donors", page(console.donors_page)),
        Route("/donors/{donor}", page(console.donor_page)),
        Route("/review", page(console.review_page), methods=["GET"]),
        Route("/review", page(console.review_submit), methods=["POST"]),
        Route("/experiments", page(console.experiments_page)),
        Route("/model", page(console.model_page)),
        Route("/model/plots/{name}", page(console.model_plot)),
        Route("/static/plotly.min.js", plotly_js),
        Route("/healthz", console.healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    # Outermost first: the headers go on everything below, proxies are resolved before a body is read.
    middleware = [Middleware(SecurityHeaders)]
    if config.trusted_proxies:
        middleware.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.trusted_proxies)))
    middleware += [
        Middleware(BodyLimit, max_bytes=config.max_body_bytes),
        Middleware(SessionMiddleware, secret_key=config.session_secret, session_cookie="qf_console",
                   max_age=sessions.SESSION_HOURS * 3600, same_site="strict", https_only=config.secure_cookies),
    ]  # fmt: skip
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=console.lifespan,
        exception_handlers={HTTPException: console.http_error},
    )
    app.state.console = console  # for tests and the CLI
    return app


def server_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    """How the console is served: uvicorn without its own proxy-header handling.

    uvicorn believes X-Forwarded-For from 127.0.0.1 by default, so anyone on the
    machine could name any client address; the app resolves forwarded headers
    itself, from ``QF_CONSOLE_TRUSTED_PROXIES`` only.
    """
    return uvicorn.Config(app, host=host, port=port, proxy_headers=False, server_header=False, log_level="warning")


Handler = Callable[[Request, Login], Awaitable[Response]]


class Console:
    """The pages: each reads through :mod:`console.queries` in the thread pool and renders a template."""

    def __init__(self, config: ConsoleConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.throttle = LoginThrottle(config.login_failures, config.login_global_failures,
                                      config.login_window_seconds, clock)  # fmt: skip
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters.update(addr=_addr, num=_num, pct=_pct, when=_when, seconds=_seconds,
                                          chain_text=chain_text, plain=plain, chain=chain_label)  # fmt: skip
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            config.database_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False, name="qf-console"
        )
        self.cache = ComparisonCache()

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(self.pool.open, wait=True, timeout=10.0)
        try:
            yield
        finally:
            await run_in_threadpool(self.pool.close)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        def run() -> T:
            with self.pool.connection() as conn:
                return fn(conn, *args)

        return await run_in_threadpool(run)

    async def healthz(self, request: Request) -> Response:
        """200 while the database answers, else 503 (the compose health check and a load balancer use it)."""

        def ping() -> None:
            with self.pool.connection(timeout=3.0) as conn:
                conn.execute("SELECT 1")

        try:
            await run_in_threadpool(ping)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("console_unhealthy", error=type(exc).__name__)
            return PlainTextResponse("database unavailable", status_code=503)
        return PlainTextResponse("ok")

    async def chain(self) -> int:
        """The chain of a page that names none (``/rounds/N``, a verdict form without one): QF_CHAIN_ID, else
        the only one indexed (the core's one policy; several raise AmbiguousChain)."""
        return await self.db(resolve_chain, self.config.chain_id)

    async def chains(self) -> list[int]:
        """The chains the console shows: QF_CHAIN_ID alone, else every indexed chain."""
        indexed = [] if self.config.chain_id is not None else await self.db(queries.indexed_chains)
        return in_scope(self.config.chain_id, indexed)

    async def shown_chains(self, request: Request) -> tuple[list[int], list[int], int | None]:
        """The console's chains, those a listing shows (``?chain=N`` narrows to one) and the one picked."""
        chains = await self.chains()
        try:
            picked = narrowed(chains, request.query_params.get("chain"))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return chains, ([picked] if picked is not None else chains), picked

    def render(self, request: Request, name: str, context: dict[str, Any], status: int = 200,
               headers: Mapping[str, str] | None = None) -> Response:  # fmt: skip
        base = {"login": _login_of(request), "csrf": csrf_token(request.session),
                "csrf_field": CSRF_FIELD, "flash": request.session.pop("flash", None),
                "path": request.url.path}  # fmt: skip
        return self.templates.TemplateResponse(request, name, base | context, status_code=status, headers=headers)

    async def session_login(self, request: Request) -> Login | None:
        """The login of the request's session: open on the server, not expired, and still configured."""
        sid = session_id(request.session)
        if sid is None:
            return None
        login = await self.db(sessions.session_login, sid)
        if login is None or self.config.role_of(login.name) != login.role:
            request.session.pop("sid", None)
            return None
        request.state.login = login
        return login

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Every page needs a login; without one, go to the login page and come back."""

        async def endpoint(request: Request) -> Response:
            login = await self.session_login(request)
            if login is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            _check_query(request)
            try:
                return await handler(request, login)
            except AmbiguousChain as exc:  # several chains and none configured: say so, never pick one
                return self.render(request, "error.html", {"title": "Which chain?", "message": str(exc)}, 503)
            except ConfigError as exc:  # nothing indexed yet...
                return self.render(request, "error.html", {"title": "Not ready", "message": str(exc)}, 503)
            except QFError as exc:  # data the page cannot show (e.g. a token of unknown decimals)
                log.warning("console_page_failed", path=request.url.path, error=str(exc))
                return self.render(request, "error.html", {"title": "Cannot show this page", "message": str(exc)}, 500)

        return endpoint

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if _login_of(request) is None:  # a login page's error, or no page at all (a 404 or 405 of the router)
            return PlainTextResponse(exc.detail, status_code=exc.status_code)
        context = {"title": f"Error {exc.status_code}", "message": exc.detail}
        return self.render(request, "error.html", context, exc.status_code)

    # -- login -------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        return self.render(request, "login.html", {"next": _safe_next(request.query_params.get("next"))})

    async def login_submit(self, request: Request) -> Response:
        form = await request.form()
        target = _safe_next(str(form.get("next", "")))
        remote = request.client.host if request.client else "?"
        wait = self.throttle.retry_after(remote)
        if wait is not None:
            log.warning("console_login_throttled", remote=remote, retry_after=wait)
            context = {"next": target, "error": f"Too many failed logins: try again in {wait} seconds."}
            return self.render(request, "login.html", context, 429, headers={"Retry-After": str(wait)})
        if not csrf_valid(request.session, form.get(CSRF_FIELD)):
            context = {"next": target, "error": "The form expired; log in again."}
            return self.render(request, "login.html", context, 400)
        found = authenticate(str(form.get("token", "")), self.config.reviewers, self.config.viewers)
        await self.db(queries.record_login, found.name if found else None, found.role if found else None,
                      found is not None, remote)  # fmt: skip
        if found is None:
            self.throttle.failed(remote)
            log.warning("console_login_refused", remote=remote)
            return self.render(request, "login.html", {"next": target, "error": "That token is not valid."}, 401)
        start_session(request.session, await self.db(sessions.open_session, found, remote))
        log.info("console_login", reviewer=found.name, role=found.role, remote=remote)
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if csrf_valid(request.session, form.get(CSRF_FIELD)):
            sid = session_id(request.session)
            if sid is not None:
                await self.db(sessions.close_session, sid)  # every copy of the cookie ends here
            request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- pages -------------------------------------------------------------------------

    async def rounds_page(self, request: Request, login: Login) -> Response:
        chains = await self.chains()
        rows = await self.db(queries.rounds, chains)
        status = await self.db(queries.indexer_status, chains)
        named = await self.db(queries.named_rounds, chains)
        context = {"title": "Rounds", "chains": chains, "rounds": rows, "status": status, "named": named}
        return self.render(request, "rounds.html", context)

    async def _round(self, request: Request) -> tuple[int, int, dict[str, Any]] | Response:
        """The pool a page is about: ``/chains/C/rounds/N``, or ``/rounds/N`` on the console's only chain
        (with several, a page naming the chains that hold pool N)."""
        pool_id = _int_param(request.path_params["pool_id"], "pool")
        if "chain_id" in request.path_params:
            chain_id = _int_param(request.path_params["chain_id"], "chain")
            if chain_id not in await self.chains():
                raise HTTPException(404, f"chain {chain_id} is not shown by this console")
        else:
            try:
                chain_id = await self.chain()
            except AmbiguousChain as exc:
                return await self._which_chain(request, exc.chains, pool_id)
        header = await self.db(queries.round_header, chain_id, pool_id)
        if header is None:
            raise HTTPException(404, f"pool {pool_id} is not indexed on chain {chain_id}")
        return chain_id, pool_id, header

    async def _which_chain(self, request: Request, chains: list[int], pool_id: int) -> Response:
        """``/rounds/N`` with several chains: pool ids repeat across chains, so name them and never pick one."""
        holding = await self.db(queries.pool_chains, chains, pool_id)
        listed = ", ".join(chain_label(c) for c in chains)
        if not holding:
            raise HTTPException(404, f"pool {pool_id} is not indexed on any of the chains ({listed})")
        suffix = request.url.path.removeprefix(f"/rounds/{request.path_params['pool_id']}")
        query = f"?{request.url.query}" if request.url.query else ""
        links = [(f"/chains/{c}/rounds/{pool_id}{suffix}{query}", f"pool {pool_id} on chain {chain_label(c)}")
                 for c in holding]  # fmt: skip
        message = (f"{len(chains)} chains are indexed ({listed}); pool {pool_id} is on "
                   f"{', '.join(chain_label(c) for c in holding)}. Choose the chain (or set QF_CHAIN_ID).")  # fmt: skip
        return self.render(request, "error.html", {"title": "Which chain?", "message": message, "links": links}, 300)

    async def round_page(self, request: Request, login: Login) -> Response:
        found = await self._round(request)
        if isinstance(found, Response):
            return found
        chain_id, pool_id, header = found
        usd = _flag(request.query_params.get("usd"))
        comparison = await self.db(self.cache.get, chain_id, pool_id, usd)
        tokens = await self.db(queries.pool_tokens, chain_id, pool_id)
        chart = charts.gains_chart(comparison) if comparison.projects else None
        context = {"title": f"Pool {pool_id}", "chain_id": chain_id, "round": header, "comparison": comparison,
                   "chart": chart, "tokens": tokens, "base": f"/chains/{chain_id}/rounds/{pool_id}"}  # fmt: skip
        return self.render(request, "round.html", context)

    async def round_csv(self, request: Request, login: Login) -> Response:
        found = await self._round(request)
        if isinstance(found, Response):
            return found
        chain_id, pool_id, _ = found
        usd = _flag(request.query_params.get("usd"))
        comparison = await self.db(self.cache.get, chain_id, pool_id, usd)
        disposition = f'attachment; filename="pool-{pool_id}-matching{"-usd" if usd else ""}.csv"'
        return PlainTextResponse(to_csv(comparison), media_type="text/csv",
                                 headers={"Content-Disposition": disposition})  # fmt: skip

    async def _named(self, request: Request) -> tuple[str, list[dict[str, Any]]]:
        """The named round a page is about and its pools; 404 unless every pool is on a chain shown here."""
        name = request.path_params["name"]
        if not ROUND_NAME.fullmatch(name):
            raise HTTPException(404, "a round name is 1-64 letters, digits, dots, dashes or underscores")
        pools = await self.db(queries.named_round_pools, name)
        if not pools:
            raise HTTPException(404, f"no round named {name} (`qf rounds add {name} --pool CHAIN:POOL`)")
        chains = await self.chains()
        outside = sorted({int(p["chain_id"]) for p in pools} - set(chains))
        if outside:
            listed = ", ".join(map(str, outside))
            raise HTTPException(404, f"round {name} has pools on chain {listed}, which this console does not show "
                                     f"(QF_CHAIN_ID={self.config.chain_id})")  # fmt: skip
        return name, pools

    async def named_round_page(self, request: Request, login: Login) -> Response:
        name, pools = await self._named(request)
        refs = [(int(p["chain_id"]), int(p["pool_id"])) for p in pools]
        comparison = await self.db(self.cache.get_round, name, refs)
        chart = charts.gains_chart(comparison) if comparison.projects else None
        context = {"title": f"Round {name}", "name": name, "pools": pools, "comparison": comparison,
                   "chart": chart, "chain_count": len({c for c, _ in refs})}  # fmt: skip
        return self.render(request, "named_round.html", context)

    async def named_round_csv(self, request: Request, login: Login) -> Response:
        name, pools = await self._named(request)
        refs = [(int(p["chain_id"]), int(p["pool_id"])) for p in pools]
        comparison = await self.db(self.cache.get_round, name, refs)
        disposition = f'attachment; filename="round-{name}-matching-usd.csv"'
        return PlainTextResponse(to_csv(comparison), media_type="text/csv",
                                 headers={"Content-Disposition": disposition})  # fmt: skip

    async def donors_page(self, request: Request, login: Login) -> Response:
        q = request.query_params
        chains, shown, picked = await self.shown_chains(request)
        filters, pool_chain = _donor_filter(q)
        if pool_chain is not None:  # a pool picked as CHAIN:POOL narrows to its chain
            if pool_chain not in shown:
                raise HTTPException(400, f"pool {q['pool']}: chain {pool_chain} is not shown here")
            shown, picked = [pool_chain], pool_chain
        rows = await self.db(queries.flagged_donors, shown, filters)
        scored = await self.db(queries.scored_pools, chains)
        patterns = await self.db(queries.label_patterns, chains)
        return self.render(request, "donors.html", {
            "title": "Flagged donors", "donors": rows, "scored": scored, "patterns": patterns, "filters": filters,
            "decisions": _DECISIONS, "project_text": q.get("project", ""), "page_size": queries.PAGE_SIZE,
            "chains": chains, "picked": picked,
        })  # fmt: skip

    async def donor_page(self, request: Request, login: Login) -> Response:
        try:
            donor = address(request.path_params["donor"])
        except ValueError:
            raise HTTPException(404, "not an address: 0x and 40 hex digits") from None
        chains, shown, picked = await self.shown_chains(request)
        activity, evidence = await self.db(_across_chains, shown, donor)
        if not activity:
            where = f"chain {shown[0]}" if len(shown) == 1 else f"any of the chains {', '.join(map(str, shown))}"
            raise HTTPException(404, f"0x{donor.hex()} is not a donor of {where}")
        return self.render(request, "donor.html", {
            "title": "Donor", "donor": donor, "chains": chains, "picked": picked, "activity": activity,
            "evidence": evidence,
        })  # fmt: skip

    async def review_page(self, request: Request, login: Login) -> Response:
        status = request.query_params.get("status", "pending")
        if status not in _STATUSES:
            raise HTTPException(400, f"status must be one of {', '.join(_STATUSES)}")
        chains, shown, picked = await self.shown_chains(request)
        offset = _offset(request.query_params.get("offset"))
        rows = await self.db(queries.review_queue, shown, status, offset)
        counts = await self.db(queries.queue_counts, shown)
        chain_q = f"&chain={picked}" if picked is not None else ""
        return self.render(request, "review.html", {
            "title": "Review queue", "queue": rows, "status": status, "counts": counts, "offset": offset,
            "page_size": queries.PAGE_SIZE, "chains": chains, "picked": picked, "chain_q": chain_q,
        })  # fmt: skip

    async def review_submit(self, request: Request, login: Login) -> Response:
        form = await request.form()
        back = _safe_next(str(form.get("back", "")), "/review")
        if not login.may_review:
            message = f"{login.name} may read but not review: reviewing needs a reviewer token. Nothing was recorded."
            return self.render(request, "error.html", {"title": "Read-only login", "message": message}, 403)
        if not csrf_valid(request.session, form.get(CSRF_FIELD)):
            message = ("The form's security token is missing or wrong (an expired session or a forged form). "
                       "Nothing was recorded; reload the page and try again.")  # fmt: skip
            return self.render(request, "error.html", {"title": "Form refused", "message": message, "back": back}, 400)
        try:
            verdict = parse_verdict(form)
            chain_id = verdict.chain_id if verdict.chain_id is not None else await self.chain()
            if chain_id not in await self.chains():
                raise ReviewError(f"chain {chain_id} is not shown by this console: nothing recorded")
            review_id = await self.db(record_verdict, chain_id, verdict, login.name)
        except ReviewConflict as exc:
            context = {"title": "Already reviewed", "message": str(exc), "back": back}
            return self.render(request, "error.html", context, 409)
        except ReviewError as exc:
            context = {"title": "Verdict refused", "message": str(exc), "back": back}
            return self.render(request, "error.html", context, 400)
        log.info("console_verdict", reviewer=login.name, chain_id=chain_id, donor="0x" + verdict.donor.hex(),
                 verdict=verdict.verdict, review_id=review_id, supersedes=verdict.expected)  # fmt: skip
        request.session["flash"] = (f"Recorded: 0x{verdict.donor.hex()} is {verdict.verdict} on chain "
                                    f"{chain_label(chain_id)} (review {review_id}).")  # fmt: skip
        return RedirectResponse(back, status_code=303)

    async def experiments_page(self, request: Request, login: Login) -> Response:
        def load(conn: psycopg.Connection[Any]) -> list[Any]:
            return [experiment_store.stats(conn, name) for name in queries.experiment_names(conn)]

        stats = await self.db(load)
        figures = [(s, charts.lift_chart(s)) for s in stats]
        return self.render(request, "experiments.html", {"title": "Experiments", "experiments": figures})

    async def model_page(self, request: Request, login: Login) -> Response:
        try:
            view = await run_in_threadpool(served_model, self.config.models_dir)
        except QFError as exc:
            return self.render(request, "error.html", {"title": "Model unreadable", "message": str(exc)}, 503)
        context = {"title": "Model", "model": view, "models_dir": self.config.models_dir}
        return self.render(request, "model.html", context)

    async def model_plot(self, request: Request, login: Login) -> Response:
        path = await run_in_threadpool(plot_path, self.config.models_dir, request.path_params["name"])
        if path is None:
            raise HTTPException(404, "no such plot in the served version")
        return FileResponse(path, media_type="image/png")


async def plotly_js(request: Request) -> Response:
    return Response(_plotly_js(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


def _across_chains(conn: psycopg.Connection[Any], chains: list[int], donor: bytes
                   ) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, Any]]]]:  # fmt: skip
    """An address on every chain: its activity per chain, and each chain's evidence (a verdict is per chain)."""
    activity = queries.donor_chains(conn, chains, donor)
    evidence = [(int(a["chain_id"]), _evidence(conn, int(a["chain_id"]), donor)) for a in activity]
    return activity, [(c, e) for c, e in evidence if e is not None]


def _evidence(conn: psycopg.Connection[Any], chain_id: int, donor: bytes) -> dict[str, Any] | None:
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


@functools.cache
def _plotly_js() -> bytes:
    """plotly.js as the wheel ships it (4.8 MB, read once, when a page first asks)."""
    from plotly.offline import get_plotlyjs  # noqa: PLC0415

    return str(get_plotlyjs()).encode()


def _login_of(request: Request) -> Login | None:
    """The login :meth:`Console.session_login` found for this request (None before or without one)."""
    login = getattr(request.state, "login", None)
    return login if isinstance(login, Login) else None


def _safe_next(target: str | None, default: str = "/") -> str:
    """A path on this site to return to (after login, or from a refusal page); anything else gives ``default``.

    Browsers read a backslash as a slash and drop tabs and line breaks from a URL,
    so ``/\\evil.example`` and ``/<TAB>/evil.example`` become ``//evil.example``,
    another host: a path must start with one ``/`` and hold no backslash, no
    whitespace or control character, and no scheme or host in any form.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _check_query(request: Request) -> None:
    """PostgreSQL text holds no NUL: a parameter with one is refused here rather than failing a query."""
    if any("\x00" in key or "\x00" in value for key, value in request.query_params.multi_items()):
        raise HTTPException(400, "query parameters must not contain NUL characters")


def _int_param(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(404, f"{what} must be a whole number, not {text[:40]!r}") from None
    if value < 0:
        raise HTTPException(404, f"{what} must not be negative")
    return value


def _donor_filter(q: Mapping[str, str]) -> tuple[queries.DonorFilter, int | None]:
    """The donor listing's filters, and the chain of a pool given as ``CHAIN:POOL`` (None for a bare pool id)."""
    decision = q.get("decision") or None
    if decision is not None and decision not in _DECISIONS:
        raise HTTPException(400, f"decision must be one of {', '.join(_DECISIONS)}")
    project = None
    if q.get("project"):
        try:
            project = address(q["project"].strip())
        except ValueError:
            raise HTTPException(400, "project must be a recipient id: 0x and 40 hex digits") from None
    pool_text, pool_chain = q.get("pool") or "", None
    if ":" in pool_text:
        chain_text_, _, pool_text = pool_text.partition(":")
        pool_chain = _int_param(chain_text_, "chain")
    return queries.DonorFilter(
        pool_id=_int_param(pool_text, "pool") if pool_text else None, decision=decision,
        pattern=q.get("pattern") or None, project=project, offset=_offset(q.get("offset")),
    ), pool_chain  # fmt: skip


def _flag(text: str | None) -> bool:
    if text in (None, "", "0"):
        return False
    if text == "1":
        return True
    raise HTTPException(400, "usd must be 1 or 0")


def _offset(text: str | None) -> int:
    if not text:
        return 0
    try:
        value = max(0, int(text))
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_OFFSET:
        raise HTTPException(400, f"offset must be a whole number from 0 to {MAX_OFFSET:,}")
    return value


# -- template filters ------------------------------------------------------------------------


def _addr(value: bytes | str | None, short: bool = True) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else "0x" + bytes(value).hex()
    return text[:8] + "…" + text[-4:] if short and len(text) > 14 else text


def _num(value: Any, decimals: int = 2) -> str:
    if value is None:
        return "—"
    number = float(value) if isinstance(value, Decimal | int | float) else value
    if isinstance(number, float) and not math.isfinite(number):
        return "—"
    return f"{number:,.{decimals}f}"


def _pct(value: Any, decimals: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value) * 100:.{decimals}f}%"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: Any) -> str:
    if value is None:
        return "—"
    s = float(value)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"
