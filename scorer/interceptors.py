"""Server interceptors: authentication, per-client rate limit, Prometheus metrics and the access log.

Each interceptor wraps the unary handler of the method being called, so its
code runs in the request's own task and can hand the authenticated client to
the service through a context variable (:data:`CLIENT`). The order in
:func:`chain` is the order of the checks: metrics and the access log see every
call (rejected ones included), then authentication, then the rate limit.

Tokens come as ``authorization: Bearer <token>`` metadata. Every configured
token is compared in constant time (``hmac.compare_digest``), all of them on
each call, so timing does not tell which prefix matched. A client token on an
admin method gives PERMISSION_DENIED; a missing or unknown token
UNAUTHENTICATED. The health and reflection services need no token (they expose
liveness and the schema, no data). Tokens never reach the logs: only the
client's configured name does.
"""

from __future__ import annotations

import contextvars
import hmac
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import grpc
import structlog
from grpc import aio

from scorer.metrics import ScorerMetrics

log = structlog.get_logger("scorer.access")

#: The authenticated client's configured name, for the service and the audit log.
CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("qf_scorer_client", default="anonymous")
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


def _wrap(handler: Handler, wrapper: Callable[[Behavior], Behavior]) -> Handler:
    """The same handler with its unary-unary behaviour wrapped (streaming methods pass through)."""
    if handler is None or handler.unary_unary is None:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrapper(cast(Behavior, handler.unary_unary)),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class AuthInterceptor(Interceptor):
    def __init__(self, clients: Mapping[str, str], admins: Mapping[str, str]) -> None:
        # (name, token bytes, is_admin); an admin token is also valid for client methods.
        self._tokens = [(n, t.encode(), False) for n, t in clients.items()]
        self._tokens += [(n, t.encode(), True) for n, t in admins.items()]

    def _identify(self, metadata: Any) -> tuple[str, bool] | None:
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if not isinstance(header, str) or not header.startswith("Bearer "):
            return None
        presented = header[len("Bearer ") :].encode()
        found: tuple[str, bool] | None = None
        for name, token, admin in self._tokens:
            if hmac.compare_digest(presented, token) and found is None:
                found = (name, admin)
        return found

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(details)
        method = details.method
        if method.startswith(PUBLIC_PREFIXES):
            return handler
        identity = self._identify(details.invocation_metadata)

        def wrapper(behavior: Behavior) -> Behavior:
            async def checked(request: Any, context: Context) -> Any:
                if identity is None:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
                name, admin = identity
                if method in ADMIN_METHODS and not admin:
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method} needs an admin token")
                CLIENT.set(name)
                return await behavior(request, context)

            return checked

        return _wrap(handler, wrapper)


class TokenBucket:
    """``rate_per_minute`` requests a minute with bursts up to the same number; thread-safe."""

    def __init__(self, rate_per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = rate_per_minute
        self.refill_per_second = rate_per_minute / 60.0
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            tokens, last = self._state.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
            allowed = tokens >= 1.0
            self._state[key] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


class RateLimitInterceptor(Interceptor):
    """RESOURCE_EXHAUSTED once a client has used its bucket; runs after authentication."""

    def __init__(self, bucket: TokenBucket, metrics: ScorerMetrics) -> None:
        self._bucket = bucket
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(details)
        if details.method.startswith(PUBLIC_PREFIXES):
            return handler

        def wrapper(behavior: Behavior) -> Behavior:
            async def limited(request: Any, context: Context) -> Any:
                client = CLIENT.get()
                if not self._bucket.take(client):
                    self._metrics.rate_limited.labels(client=client).inc()
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit exceeded; retry later")
                return await behavior(request, context)

            return limited

        return _wrap(handler, wrapper)


class MetricsInterceptor(Interceptor):
    """Counts and times every call by method and status code, and writes one access-log line per call."""

    def __init__(self, metrics: ScorerMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(details)
        method = details.method.rsplit("/", 1)[-1]
        metrics = self._metrics

        def wrapper(behavior: Behavior) -> Behavior:
            async def measured(request: Any, context: Context) -> Any:
                started = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    return await behavior(request, context)
                except BaseException:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    code = _code(context, code)
                    seconds = time.perf_counter() - started
                    metrics.handled.labels(method=method, code=code.name).inc()
                    metrics.handling_seconds.labels(method=method).observe(seconds)
                    log.info("rpc", method=method, code=code.name, client=CLIENT.get(), ms=round(seconds * 1000, 3))

            return measured

        return _wrap(handler, wrapper)


def _code(context: Context, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # grpc.aio may report the raw integer
        return next((c for c in grpc.StatusCode if c.value[0] == code), default)
    return default


def chain(
    metrics: ScorerMetrics, clients: Mapping[str, str], admins: Mapping[str, str], rate_per_minute: float
) -> list[Interceptor]:
    """Interceptors in server order: metrics/log first (sees rejections), then auth, then the rate limit."""
    interceptors: list[Interceptor] = [MetricsInterceptor(metrics), AuthInterceptor(clients, admins)]
    if rate_per_minute > 0:
        interceptors.append(RateLimitInterceptor(TokenBucket(rate_per_minute), metrics))
    return interceptors
