"""Composition root of the disclosures service: the employer-feed recorders over DEADLINES and BENEFITS."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import nats
from faststream import FastStream
from faststream.nats import NatsRouter

from shared.infra import telemetry
from shared.infra.clock import Clock, system_clock
from shared.infra.service import service_broker
from shared.infra.settings import Settings
from shared.infra.streams import BENEFITS, DEADLINES

from .handlers import attach_feed_recorders
from .log import build_disclosures


def build_app(settings: Settings, *, clock: Clock = system_clock) -> FastStream:
    app = build_disclosures(settings)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disclosures-store")
    router = NatsRouter()
    attach_feed_recorders(router, app, executor, inbox_prefix=settings.pull_inbox_prefix, clock=clock)
    broker = service_broker(settings, "disclosures")
    broker.include_router(router)
    telemetry.PROCESS.check("store", telemetry.store_reachable(app.recorder.max_notification_id))
    stream_app = FastStream(broker)

    @stream_app.on_startup
    async def streams() -> None:
        nc = await nats.connect(settings.nats_servers, **settings.nats_options())
        js = nc.jetstream()
        await DEADLINES.ensure(js, replicas=settings.stream_replicas)
        await BENEFITS.ensure(js, replicas=settings.stream_replicas)
        await nc.close()

    @stream_app.after_shutdown
    async def close() -> None:
        executor.shutdown(wait=True)
        app.close()

    return stream_app
