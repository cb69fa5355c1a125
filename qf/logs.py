"""structlog set-up, done once at the entry point.

Modules only call ``structlog.get_logger()``; this module decides the output:
JSON lines for machines, a coloured console renderer on a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]
#: Events below this level are dropped on top of the configured level (see :func:`quieter`).
_floor = logging.NOTSET


def configure_logging(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger to write to stderr."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _drop_below_floor,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric_level, logging.WARNING), stream=sys.stderr)


def _drop_below_floor(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _floor and logging.getLevelNamesMapping().get(method.upper(), logging.INFO) < _floor:
        raise structlog.DropEvent
    return event


@contextlib.contextmanager
def quieter(level: str) -> Iterator[None]:
    """Drop events below ``level`` inside the block (loggers are cached, so the level is not reconfigured)."""
    global _floor  # noqa: PLW0603 - one process-wide setting, like the configuration it sits on
    previous, _floor = _floor, logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    try:
        yield
    finally:
        _floor = previous
