"""ASGI middleware around the console's routes: security headers on every response, and bounded request bodies.

The order in :func:`console.app.create_app` matters: :class:`SecurityHeaders` is
the outermost of the console's own layers, so every response below it (a page,
a redirect, a 4xx from the router or from :class:`BodyLimit`, a 500 for an
unhandled error) leaves with the headers. :class:`BodyLimit` refuses a body
before any route parses it: no route takes a file, and no form is larger than
a login or a verdict.
"""

from __future__ import annotations

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger()

SECURITY_HEADERS = {
    # plotly.js writes inline styles; scripts come only from the console itself.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response, and ``no-store`` to all but static files.

    An unhandled error is answered here (500, with the headers) rather than by
    Starlette's outermost error middleware, which would send its page past this
    layer; the error is then re-raised so the server logs it as before.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                log.exception("console_error", path=scope.get("path"))
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send_with_headers)
            raise


class BodyLimit:
    """Refuses a request body over ``max_bytes`` (413) and any multipart body (415), before a route reads it.

    A declared Content-Length over the limit is refused at once; a body without
    one (chunked) is read here, counting bytes as they arrive, and refused as
    soon as it passes the limit. A body within the limit is handed on whole
    (it is small), so the route's parser never sees more than ``max_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").strip().lower().startswith("multipart/"):
            await self._refuse(scope, receive, send, 415, "This console takes no file uploads (multipart bodies).")
            return
        declared = headers.get("content-length")
        if declared is not None and not declared.strip().isdigit():
            await self._refuse(scope, receive, send, 400, "The Content-Length header is not a number.")
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, 413, self._too_large())
            return
        body = bytearray()
        first: Message = {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the route will see it
                first = message
                break
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send, 413, self._too_large())
                return
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": bytes(body), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_bytes:,} bytes (QF_CONSOLE_MAX_BODY_BYTES): refused."

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        log.warning("console_body_refused", path=scope.get("path"), status=status)
        response: Response = PlainTextResponse(message, status_code=status, headers={"Connection": "close"})
        await response(scope, receive, send)
