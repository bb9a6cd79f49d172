"""Composition root of the disclosures service: the employer-feed recorders over DEADLINES and BENEFITS."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import nats
from faststream import FastStream
from faststream.nats import NatsBroker, NatsRouter

from shared.events.subjects import BENEFITS_STREAM, BENEFITS_SUBJECTS, DEADLINES_STREAM, DEADLINES_SUBJECTS
from shared.infra.relay import ensure_stream
from shared.infra.settings import Settings

from .feed import attach_feed_recorders
from .log import build_disclosures


def build_app(settings: Settings) -> FastStream:
    app = build_disclosures(settings)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disclosures-store")
    router = NatsRouter()
    attach_feed_recorders(router, app, executor, inbox_prefix=settings.pull_inbox_prefix)
    broker = NatsBroker(settings.nats_servers, name="reintegration-disclosures", max_reconnect_attempts=-1,
                        log_level=logging.DEBUG, **settings.nats_options())
    broker.include_router(router)
    stream_app = FastStream(broker)

    @stream_app.on_startup
    async def streams() -> None:
        nc = await nats.connect(settings.nats_servers, **settings.nats_options())
        js = nc.jetstream()
        await ensure_stream(js, DEADLINES_STREAM, DEADLINES_SUBJECTS, replicas=settings.stream_replicas)
        await ensure_stream(js, BENEFITS_STREAM, BENEFITS_SUBJECTS, replicas=settings.stream_replicas)
        await nc.close()

    @stream_app.after_shutdown
    async def close() -> None:
        executor.shutdown(wait=True)
        app.close()

    return stream_app
