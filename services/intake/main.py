"""Composition root of the intake service: ``build_app(settings)`` wires the broker, the intake subscription and
the application."""

from __future__ import annotations

from faststream import FastStream
from faststream.nats import NatsBroker

from shared.infra import telemetry
from shared.infra.clock import Clock, system_clock
from shared.infra.service import service_broker
from shared.infra.settings import Settings

from .application import IntakeApplication, build_intake
from .handlers import REPLY_WITHIN_SHARE, IntakeServer


def build_broker(settings: Settings) -> NatsBroker:
    """The process's NATS connection (FastStream runs the process: its lifecycle, signals and logging)."""
    # Per-message lines at DEBUG: at thousands of reports a second they would drown the log.
    return service_broker(settings, "intake")


def build_server(app: IntakeApplication, settings: Settings, *, clock: Clock = system_clock) -> IntakeServer:
    """The intake subscription, answering within the share of the parties' request timeout."""
    return IntakeServer(app, reply_within=settings.request_timeout * REPLY_WITHIN_SHARE, clock=clock)


def build_app(settings: Settings, *, clock: Clock = system_clock) -> FastStream:
    intake = build_intake(settings)
    broker = build_broker(settings)
    server = build_server(intake, settings, clock=clock)
    stream_app = FastStream(broker)
    telemetry.PROCESS.check("store", telemetry.store_reachable(intake.recorder.max_notification_id))
    telemetry.PROCESS.check("intake subscription", server.subscribed)

    @stream_app.after_startup
    async def serve() -> None:
        await server.start(broker.connection)

    @stream_app.on_shutdown
    async def stop_serving() -> None:
        await server.stop()

    @stream_app.after_shutdown
    async def close_store() -> None:
        intake.close()

    return stream_app
