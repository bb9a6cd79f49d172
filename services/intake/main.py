"""Composition root of the intake service: ``build_app(settings)`` wires the broker, router and application."""

from __future__ import annotations

import logging

from faststream import FastStream
from faststream.nats import NatsBroker

from shared.infra.clock import Clock, system_clock
from shared.infra.settings import Settings

from .application import IntakeApplication, build_intake
from .handlers import REPLY_WITHIN_SHARE, build_router


def build_broker(app: IntakeApplication, settings: Settings, *, clock: Clock = system_clock) -> NatsBroker:
    # Per-message lines at DEBUG: at thousands of reports a second they would drown the log.
    broker = NatsBroker(
        settings.nats_servers, name="reintegration-intake", max_reconnect_attempts=-1, log_level=logging.DEBUG,
        **settings.nats_options(),
    )
    broker.include_router(build_router(app, reply_within=settings.request_timeout * REPLY_WITHIN_SHARE, clock=clock))
    return broker


def build_app(settings: Settings, *, clock: Clock = system_clock) -> FastStream:
    intake = build_intake(settings)
    stream_app = FastStream(build_broker(intake, settings, clock=clock))

    @stream_app.after_shutdown
    async def close_store() -> None:
        intake.close()

    return stream_app
