"""The server interceptor: authentication, per-client rate limit, Prometheus metrics and the access log.

It wraps the unary handler of the method being called, so its code runs in
the request's own task and binds the authenticated client and the method in
structlog's context variables: every log line of the call carries them, and
the service reads the client for the audit log (:func:`current_client`). The order of the checks: metrics
and the access log see every call (rejected ones included), then the shutdown
check, then authentication, then the rate limit, and only then the request's
bytes are decoded. gRPC would otherwise decode them before any of this, and a
malformed message would come out as UNKNOWN with a traceback on stderr, from
anyone, uncounted and unlimited; here it is INVALID_ARGUMENT, one access-log
line and ``qf_scorer_malformed_requests_total``, after authentication.

Once :meth:`GatewayInterceptor.start_draining` is called (the sidecar is
stopping) new calls get UNAVAILABLE, which clients retry elsewhere or answer
with their fail policy, rather than being cancelled halfway by the stop.

Tokens come as ``authorization: Bearer <token>`` metadata. Every configured
token is compared in constant time (:func:`qf.tokens.lookup`), all of them on
each call, so timing does not tell which prefix matched. A client token on an
admin method gives PERMISSION_DENIED; a missing or unknown token
UNAUTHENTICATED. The health and reflection services need no token (they expose
liveness and the schema, no data). Tokens never reach the logs: only the
client's configured name does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import grpc
import structlog
from google.protobuf.message import DecodeError
from grpc import aio

from qf_sentinel.qf.ratelimit import TokenBuckets
from qf_sentinel.qf.tokens import lookup
from qf_sentinel.scorer.metrics import ScorerMetrics

log = structlog.get_logger("scorer.access")

#: The authenticated client's configured name, for the service and the audit log.
ANONYMOUS = "anonymous"


def current_client() -> str:
    """The authenticated client of the call being handled (bound by the gateway in structlog's context)."""
    return str(structlog.contextvars.get_contextvars().get("client", ANONYMOUS))


def current_is_admin() -> bool:
    """Whether the call being handled came with an admin token (fields such as ``observed_at`` need one)."""
    return bool(structlog.contextvars.get_contextvars().get("admin", False))
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
ADMIN_METHODS = frozenset({"/qf.scorer.v1.Scorer/ReloadModels"})

if TYPE_CHECKING:  # the stubs' generics are not subscriptable at run time
    Context = aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
    Interceptor = aio.ServerInterceptor[Any, Any]
else:
    Context, Handler, Interceptor = aio.ServicerContext, grpc.RpcMethodHandler, aio.ServerInterceptor
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
Behavior = Callable[[Any, Context], Awaitable[Any]]
Deserializer = Callable[[bytes], Any]


class GatewayInterceptor(Interceptor):
    """Metrics and access log, then authentication, then the rate limit, around every unary method.

    One interceptor rather than three, and the wrapped handler of each method is
    built once and cached: per call there is no handler construction and only
    one extra coroutine frame. The token is read from the call's own metadata
    inside the wrapped behaviour, so the cached handler holds no per-call state.
    """

    def __init__(
        self, metrics: ScorerMetrics, clients: Mapping[str, str], admins: Mapping[str, str], rate_per_minute: float
    ) -> None:
        self._metrics = metrics
        # (token bytes, (name, is_admin)); an admin token is also valid for client methods.
        self._tokens = [(t.encode(), (n, False)) for n, t in clients.items()]
        self._tokens += [(t.encode(), (n, True)) for n, t in admins.items()]
        # Bursts up to a minute's allowance, refilled evenly.
        self._bucket = TokenBuckets(rate_per_minute, rate_per_minute / 60.0) if rate_per_minute > 0 else None
        self._handlers: dict[str, Handler] = {}
        self.draining = False

    def start_draining(self) -> None:
        """From now on new calls get UNAVAILABLE (calls already running finish)."""
        self.draining = True

    def identify(self, metadata: Any) -> tuple[str, bool] | None:
        """(client name, is admin) for the call's bearer token, comparing against every token in constant time."""
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if not isinstance(header, str) or not header.startswith("Bearer "):
            return None
        return lookup(header[len("Bearer ") :].encode(), self._tokens)

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Handler:
        method = details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior = cast(Behavior, handler.unary_unary)
        decode = cast(Deserializer, handler.request_deserializer or (lambda raw: raw))
        guard = self._public if method.startswith(PUBLIC_PREFIXES) else self._guard
        # The request reaches the guard as bytes (no deserializer): it decodes them after its checks.
        wrapped = grpc.unary_unary_rpc_method_handler(
            guard(method, behavior, decode), request_deserializer=None,
            response_serializer=handler.response_serializer,
        )  # fmt: skip
        self._handlers[method] = wrapped
        return wrapped

    def _guard(self, method: str, behavior: Behavior, decode: Deserializer) -> Behavior:
        name_of_method = method.rsplit("/", 1)[-1]
        admin_only = method in ADMIN_METHODS
        metrics, bucket = self._metrics, self._bucket
        handled = metrics.handled
        seconds = metrics.handling_seconds.labels(method=name_of_method)
        malformed = metrics.malformed.labels(method=name_of_method)

        async def guarded(raw: bytes, context: Context) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            client = "anonymous"
            error: str | None = None
            try:
                if self.draining:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down; retry")
                identity = self.identify(context.invocation_metadata())
                if identity is None:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
                client, admin = identity
                if admin_only and not admin:
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method} needs an admin token")
                # Each call runs in its own task, so this binds the client (and method) for this call's log lines.
                structlog.contextvars.bind_contextvars(client=client, method=name_of_method, admin=admin)
                if bucket is not None and bucket.take(client) > 0:
                    metrics.rate_limited.labels(client=client).inc()
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit exceeded; retry later")
                try:
                    request = decode(raw)
                except Exception as exc:  # DecodeError, or anything a broken message makes the runtime raise
                    malformed.inc()
                    error = f"malformed request: {type(exc).__name__}"
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid message "
                                        f"of {name_of_method} ({_decode_error(exc)})")  # fmt: skip
                return await behavior(request, context)
            except BaseException:
                code = _code(context, grpc.StatusCode.UNKNOWN)
                raise
            finally:
                elapsed = time.perf_counter() - started
                handled.labels(method=name_of_method, code=code.name).inc()
                seconds.observe(elapsed)
                log.info("rpc", method=name_of_method, code=code.name, client=client, ms=round(elapsed * 1000, 3),
                         **({"error": error} if error else {}))  # fmt: skip

        return guarded

    def _public(self, method: str, behavior: Behavior, decode: Deserializer) -> Behavior:
        """Health checks and the like: no token and no access-log line, but a malformed message is refused."""
        name_of_method = method.rsplit("/", 1)[-1]
        malformed = self._metrics.malformed.labels(method=name_of_method)

        async def checked(raw: bytes, context: Context) -> Any:
            try:
                request = decode(raw)
            except Exception as exc:
                malformed.inc()
                log.info("rpc", method=name_of_method, code="INVALID_ARGUMENT", client="anonymous",
                         error=f"malformed request: {type(exc).__name__}")  # fmt: skip
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid message "
                                    f"of {name_of_method} ({_decode_error(exc)})")  # fmt: skip
            return await behavior(request, context)

        return checked


def _decode_error(exc: BaseException) -> str:
    """A short reason: protobuf's own message for a DecodeError, the class name for anything else."""
    return str(exc).splitlines()[0][:120] if isinstance(exc, DecodeError) and str(exc) else type(exc).__name__


def _code(context: Context, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # grpc.aio may report the raw integer
        return next((c for c in grpc.StatusCode if c.value[0] == code), default)
    return default
