"""Composition root of the deadlines service: consumer, outbox relay, timer writer, fired-timer consumer, query."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor
from pathlib import Path

from faststream import FastStream
from faststream.nats import NatsRouter
from nats.js import JetStreamContext

from services.disclosures.log import auditor_queries
from shared.infra.clock import Clock, system_clock
from shared.infra.service import DerivedService, Outputs, build_derived_service
from shared.infra.settings import Settings
from shared.infra.store import tracking_recorder
from shared.infra.streams import DEADLINES, ensure_timer_stream

from .application import build_deadlines
from .handlers import FiredTimers, answer
from .outbox import render
from .timers import TimerWriter


def build_service(settings: Settings, *, clock: Clock = system_clock,
                  parties_path: Path | None = None) -> DerivedService:
    """The service with its parts in reach (its consumer, its application): what :func:`build_app` runs;
    ``parties_path``: the server's parties file, to tell the auditors who query it (default: the environment's)."""
    app = build_deadlines(settings)
    fired: list[FiredTimers] = []

    def attach_timers(router: NatsRouter, executor: Executor) -> None:
        consumer = FiredTimers(app, executor, clock=clock)
        consumer.attach(router, inbox_prefix=settings.pull_inbox_prefix)
        fired.append(consumer)

    async def timer_streams(js: JetStreamContext) -> None:
        await ensure_timer_stream(js, settings.stream_replicas)

    async def timer_job(js: JetStreamContext, stop: asyncio.Event) -> None:
        writer = TimerWriter(recorder=app.recorder, mapper=app.mapper,
                             tracking=tracking_recorder(app, settings, app.name), js=js, clock=clock)
        await writer.run(stop)

    async def fired_job(js: JetStreamContext, stop: asyncio.Event) -> None:
        await asyncio.gather(*(consumer.run(js, stop) for consumer in fired))

    return build_derived_service(
        settings, app, Outputs(DEADLINES, functools.partial(render, rulebook=app.rulebook)),
        functools.partial(answer, app),
        clock=clock, attach=[attach_timers], jobs=[timer_job, fired_job], setup=[timer_streams],
        disclosure=auditor_queries(settings, clock=clock, parties_path=parties_path),
    )


def build_app(settings: Settings, *, clock: Clock = system_clock) -> FastStream:
    return build_service(settings, clock=clock).stream_app
