"""Logging in and out: the login form, the token check (throttled, every attempt recorded) and the session.

These are the console's only pages without a login. A token is checked by
:func:`console.auth.authenticate`; a session is opened on the server
(:mod:`console.sessions`) and named by the signed cookie, so logging out ends
every copy of the cookie.
"""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from qf_sentinel.console import params, queries, sessions
from qf_sentinel.console.auth import CSRF_FIELD, authenticate, csrf_valid, session_id, start_session
from qf_sentinel.console.site import Console

log = structlog.get_logger()


class LoginPages:
    """``/login`` (GET, POST) and ``/logout``."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def login_page(self, request: Request) -> Response:
        return self.console.render(request, "login.html", {"next": params.safe_next(request.query_params.get("next"))})

    async def login_submit(self, request: Request) -> Response:
        console = self.console
        form = await request.form()
        target = params.safe_next(str(form.get("next", "")))
        remote = request.client.host if request.client else "?"
        wait = console.throttle.retry_after(remote)
        if wait is not None:
            log.warning("console_login_throttled", remote=remote, retry_after=wait)
            context = {"next": target, "error": f"Too many failed logins: try again in {wait} seconds."}
            return console.render(request, "login.html", context, 429, headers={"Retry-After": str(wait)})
        if not csrf_valid(request.session, form.get(CSRF_FIELD)):
            context = {"next": target, "error": "The form expired; log in again."}
            return console.render(request, "login.html", context, 400)
        found = authenticate(str(form.get("token", "")), console.config.reviewers, console.config.viewers)
        await console.db(queries.record_login, found.name if found else None, found.role if found else None,
                         found is not None, remote)  # fmt: skip
        if found is None:
            console.throttle.failed(remote)
            log.warning("console_login_refused", remote=remote)
            return console.render(request, "login.html", {"next": target, "error": "That token is not valid."}, 401)
        start_session(request.session, await console.db(sessions.open_session, found, remote))
        log.info("console_login", reviewer=found.name, role=found.role, remote=remote)
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if csrf_valid(request.session, form.get(CSRF_FIELD)):
            sid = session_id(request.session)
            if sid is not None:
                await self.console.db(sessions.close_session, sid)  # every copy of the cookie ends here
            request.session.clear()
        return RedirectResponse("/login", status_code=303)
