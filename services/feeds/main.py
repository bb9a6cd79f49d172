"""Composition root of the feeds service: the feed-consumer responder on the broker's connection."""

from __future__ import annotations

import structlog
from faststream import FastStream

from shared.infra.clock import Clock, system_clock
from shared.infra.parties import FEED_PREFIX
from shared.infra.service import service_broker
from shared.infra.settings import Settings

from .handlers import serve_feed_consumers

log = structlog.get_logger("feeds")


def build_app(settings: Settings, *, clock: Clock = system_clock) -> FastStream:
    """The feeds service. It reads no time (``clock`` is taken as every composition root takes it); its requests
    are answered on the broker's own connection, drained with it at shutdown."""
    broker = service_broker(settings, "feeds")
    app = FastStream(broker)

    @app.after_startup
    async def serve() -> None:
        await serve_feed_consumers(broker.connection)
        log.info("feeds service ready", subject=f"{FEED_PREFIX}.*")

    return app
