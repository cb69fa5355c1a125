"""The small HTTP endpoint both processes serve: ``/metrics``, ``/healthz`` and ``/readyz``.

``/metrics`` is the Prometheus text format of one registry, ``/healthz`` says
the main loop ticked recently, ``/readyz`` that it is caught up (the indexer:
with the chain head; the sidecar: serving). An indexer of several chains runs a
loop per chain: :class:`HealthGroup` is alive while any of them ticks (a chain
whose node is down is not a reason to restart the others) and ready when all
of them are caught up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class HasRegistry(Protocol):
    registry: CollectorRegistry


class Health(Protocol):
    def alive(self) -> bool: ...

    def ready(self) -> bool: ...


class HealthState:
    """What /healthz and /readyz answer from; updated by the loop."""

    def __init__(self, *, stale_after_seconds: float = 60.0) -> None:
        self.stale_after_seconds = stale_after_seconds
        self.last_tick = time.monotonic()
        self.caught_up = False

    def tick(self, *, caught_up: bool) -> None:
        self.last_tick = time.monotonic()
        self.caught_up = caught_up

    def alive(self) -> bool:
        return time.monotonic() - self.last_tick < self.stale_after_seconds

    def ready(self) -> bool:
        return self.caught_up and self.alive()


class HealthGroup:
    """The health of several loops (one per chain): alive while any is, ready when all are."""

    def __init__(self, members: list[HealthState]) -> None:
        self.members = members

    def alive(self) -> bool:
        return any(m.alive() for m in self.members)

    def ready(self) -> bool:
        return bool(self.members) and all(m.ready() for m in self.members)


def serve_metrics(
    metrics: HasRegistry, health: Health, host: str, port: int
) -> tuple[ThreadingHTTPServer, Callable[[], None]]:
    """Start the endpoint in a daemon thread; returns the server and a stop function."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = health.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif path == "/readyz":
                ok = health.ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"catching up\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes are not worth a log line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return server, stop
