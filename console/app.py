"""The console's web application: the URLs, the middleware in its order, and how it is served.

Pages are rendered on the server (Jinja2); the only script is plotly.js, from
the plotly wheel, and a few lines that draw the figures, so the console works
with no internet and a strict Content-Security-Policy (no inline script).
Database work runs in Starlette's thread pool on a small psycopg pool.

This module only wires: the pages are in :mod:`console.pages` (by area), what
they share in :mod:`console.site`, the template filters in
:mod:`console.filters`, the security headers and the body limit in
:mod:`console.middleware`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from qf_sentinel.console import sessions
from qf_sentinel.console.config import ConsoleConfig
from qf_sentinel.console.middleware import BodyLimit, SecurityHeaders
from qf_sentinel.console.pages.donors import DonorPages
from qf_sentinel.console.pages.login import LoginPages
from qf_sentinel.console.pages.model import ModelPages, plotly_js
from qf_sentinel.console.pages.review import ReviewPages
from qf_sentinel.console.pages.rounds import RoundPages
from qf_sentinel.console.site import Console

HERE = Path(__file__).parent


def create_app(config: ConsoleConfig, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The console for ``config``: a Starlette app with its own connection pool, opened at startup.

    ``clock`` times the login throttle (tests pass their own).
    """
    console = Console(config, clock)
    page = console.page
    login, rounds, donors = LoginPages(console), RoundPages(console), DonorPages(console)
    review, model = ReviewPages(console), ModelPages(console)
    routes = [
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login", login.login_submit, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/", page(rounds.rounds_page)),
        Route("/rounds/{pool_id}", page(rounds.round_page)),
        Route("/rounds/{pool_id}/matching.csv", page(rounds.round_csv)),
        Route("/chains/{chain_id}/rounds/{pool_id}", page(rounds.round_page)),
        Route("/chains/{chain_id}/rounds/{pool_id}/matching.csv", page(rounds.round_csv)),
        Route("/named/{name}", page(rounds.named_round_page)),
        Route("/named/{name}/matching.csv", page(rounds.named_round_csv)),
        Route("/donors", page(donors.donors_page)),
        Route("/donors/{donor}", page(donors.donor_page)),
        Route("/review", page(review.review_page), methods=["GET"]),
        Route("/review", page(review.review_submit), methods=["POST"]),
        Route("/experiments", page(model.experiments_page)),
        Route("/model", page(model.model_page)),
        Route("/model/plots/{name}", page(model.model_plot)),
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
