"""What every page of the console shares: the connection pool, the templates, the login check, the chains shown.

:class:`Console` is made once per app by :func:`console.app.create_app`; the
page modules (:mod:`console.pages`) hold a reference to it and call
:meth:`Console.db` (a query in Starlette's thread pool, on a small psycopg
pool), :meth:`Console.render` and the chain helpers. :meth:`Console.page` wraps
each page so that it needs a login and so that the core's errors (several
chains and none picked, nothing indexed, data a page cannot show) become an
error page instead of a 500.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import structlog
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from qf_sentinel.console import params, queries, sessions
from qf_sentinel.console.auth import CSRF_FIELD, Login, csrf_token, session_id
from qf_sentinel.console.chains import in_scope, narrowed
from qf_sentinel.console.comparison import ComparisonCache
from qf_sentinel.console.config import ConsoleConfig
from qf_sentinel.console.filters import FILTERS
from qf_sentinel.console.throttle import LoginThrottle
from qf_sentinel.qf.errors import AmbiguousChain, ConfigError, QFError
from qf_sentinel.qf.matching.db import resolve_chain

log = structlog.get_logger()
T = TypeVar("T")
HERE = Path(__file__).parent

#: A page: the request and the login it was made with, to the response.
Handler = Callable[[Request, Login], Awaitable[Response]]


class Console:
    """The console's shared state and helpers; the pages themselves are in :mod:`console.pages`."""

    def __init__(self, config: ConsoleConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.throttle = LoginThrottle(config.login_failures, config.login_global_failures,
                                      config.login_window_seconds, clock)  # fmt: skip
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters.update(FILTERS)
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
        base = {"login": login_of(request), "csrf": csrf_token(request.session),
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
            params.check_query(request)
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
        if login_of(request) is None:  # a login page's error, or no page at all (a 404 or 405 of the router)
            return PlainTextResponse(exc.detail, status_code=exc.status_code)
        context = {"title": f"Error {exc.status_code}", "message": exc.detail}
        return self.render(request, "error.html", context, exc.status_code)


def login_of(request: Request) -> Login | None:
    """The login :meth:`Console.session_login` found for this request (None before or without one)."""
    login = getattr(request.state, "login", None)
    return login if isinstance(login, Login) else None
