"""Composition root of the deadlines service: consumer, outbox relay, timer writer, fired-timer consumer, query."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from faststream import FastStream
from faststream.nats import NatsRouter
from nats.js import JetStreamContext

from services.disclosures.log import auditor_queries
from shared.events.subjects import TIMERS_STREAM
from shared.infra.clock import Clock, system_clock
from shared.infra.service import DerivedService, Outputs, build_derived_service
from shared.infra.settings import Settings
from shared.infra.store import tracking_recorder
from shared.infra.streams import DEADLINES, ensure_timer_stream
from shared.infra.telemetry import DEADLINE_CHANGES, TIMER_FIRING_LAG

from .application import build_deadlines
from .handlers import FiredTimers, answer
from .outbox import changes, render
from .schedule import TimerFired
from .timers import TimerWriter


def count_steps(events: Sequence[Any]) -> None:
    """The service's metrics of what a save recorded: deadline changes by rule, and how late each timer fired."""
    for event in events:
        for change, deadline, *_rest in changes(event):
            DEADLINE_CHANGES.labels(deadline.rule, change).inc()
        if isinstance(event, TimerFired):
            TIMER_FIRING_LAG.observe(event.lag_seconds)


async def timers_pending(js: JetStreamContext) -> int:
    """The timers in the TIMERS stream: scheduled, or fired and not yet recorded (each is deleted once recorded)."""
    return int((await js.stream_info(TIMERS_STREAM)).state.messages)


def build_service(settings: Settings, *, clock: Clock = system_clock,
                  parties_path: Path | None = None) -> DerivedService:
    """The service with its parts in reach (its consumer, its application): what :func:`build_app` runs;
    ``parties_path``: the server's parties file, to tell the auditors who query it (default: the environment's)."""
    app = build_deadlines(settings)
    app.on_recorded = count_steps
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
        clock=clock, attach=[attach_timers], jobs=[timer_job, fired_job], setup=[timer_streams], timers=timers_pending,
        also_sampled=(TIMERS_STREAM,),
        disclosure=auditor_queries(settings, clock=clock, parties_path=parties_path),
    )


def build_app(settings: Settings, *, clock: Clock = system_clock) -> FastStream:
    return build_service(settings, clock=clock).stream_app
