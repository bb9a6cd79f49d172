"""Composition root of the benefits service: consumer, outbox relay and query subject around the application."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faststream import FastStream

from services.disclosures.log import auditor_queries
from shared.infra.clock import Clock, system_clock
from shared.infra.service import DerivedService, Outputs, build_derived_service
from shared.infra.settings import Settings
from shared.infra.streams import BENEFITS
from shared.infra.telemetry import LEDGER_ENTRIES

from .application import build_benefits
from .handlers import answer
from .ledger import LedgerRecomputed, LedgerStep
from .outbox import render


def count_steps(events: Sequence[Any]) -> None:
    """The service's metric of what a save recorded: ledger entries by kind."""
    for event in events:
        if isinstance(event, LedgerStep | LedgerRecomputed):
            for entry in event.entries:
                LEDGER_ENTRIES.labels(entry.kind).inc()


def build_service(settings: Settings, *, clock: Clock = system_clock,
                  parties_path: Path | None = None) -> DerivedService:
    """The service with its parts in reach (its consumer, its application): what :func:`build_app` runs;
    ``parties_path``: the server's parties file, to tell the auditors who query it (default: the environment's)."""
    app = build_benefits(settings)
    app.on_recorded = count_steps
    return build_derived_service(settings, app, Outputs(BENEFITS, render), functools.partial(answer, app),
                                 clock=clock, disclosure=auditor_queries(settings, clock=clock,
                                                                         parties_path=parties_path))


def build_app(settings: Settings, *, clock: Clock = system_clock) -> FastStream:
    return build_service(settings, clock=clock).stream_app
