"""structlog, configured once: JSON lines off a terminal, readable lines on one.

Request and user ids are bound with structlog.contextvars so every event of a request
carries them. Emails, tokens and secrets are never passed to a logger.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

_encoder = msgspec.json.Encoder()


def _dumps(event: Any, **_: Any) -> str:
    return _encoder.encode(event).decode()


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog for the process; `fmt` is auto, json or console."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if json_lines
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if json_lines else _keep,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _keep(_: Any, __: str, event: Any) -> Any:
    return event
