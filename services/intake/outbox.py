"""The intake's outbox relay: Case events from the intake store into the TRAJECTORY stream."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import overload

import msgspec
import nats
import structlog
from nats.aio.client import Client as NATS

from shared.events.envelope import CaseEvent, seal_payload
from shared.events.subjects import TRAJECTORY_STREAM, TRAJECTORY_SUBJECTS, TRAJECTORY_TRANSFORM, trajectory_subject
from shared.infra import telemetry, tracing
from shared.infra.relay import OutboxRelay, Outgoing, RelayStats
from shared.infra.settings import Settings
from shared.infra.store import tracking_recorder
from shared.infra.streams import ensure_trajectory_stream

from .application import IntakeApplication, build_intake

log = structlog.get_logger("intake.relay")
RELAY_NAME = "relay:intake->TRAJECTORY"


_ENCODER = msgspec.json.Encoder()


def render(event: CaseEvent, cipher: object | None = None) -> list[Outgoing]:
    """Each Case event is one message on its case's subject, its id the deduplication id; with the store's cipher,
    its payload is encrypted as the stored event is (the broker's files hold nothing in clear)."""
    payload, headers = seal_payload(_ENCODER.encode(event), cipher)
    return [Outgoing(trajectory_subject(event.case_id, event.type), payload, str(event.event_id), headers)]


def build_relay(app: IntakeApplication, js: nats.js.JetStreamContext, **options: object) -> OutboxRelay:
    return OutboxRelay(
        name=RELAY_NAME,
        recorder=app.recorder,
        mapper=app.mapper,
        tracking=tracking_recorder(app),
        js=js,
        stream=TRAJECTORY_STREAM,
        subjects=[TRAJECTORY_SUBJECTS],
        subject_transform=TRAJECTORY_TRANSFORM,
        trace_parent=tracing.case_event_parent,
        **{"render": functools.partial(render, cipher=app.mapper.cipher), **options},  # type: ignore[arg-type]
    )


@overload
async def run_relay(
    settings: Settings,
    stop: asyncio.Event,
    *,
    from_position: None = None,
    to_position: None = None,
    on_batch: Callable[[RelayStats], None] | None = None,
    on_replay_progress: Callable[[int, int], None] | None = None,
    nc: NATS | None = None,
) -> RelayStats: ...


@overload
async def run_relay(
    settings: Settings,
    stop: asyncio.Event,
    *,
    from_position: int,
    to_position: int | None = None,
    on_batch: Callable[[RelayStats], None] | None = None,
    on_replay_progress: Callable[[int, int], None] | None = None,
    nc: NATS | None = None,
) -> int: ...


async def run_relay(
    settings: Settings,
    stop: asyncio.Event,
    *,
    from_position: int | None = None,
    to_position: int | None = None,
    on_batch: Callable[[RelayStats], None] | None = None,
    on_replay_progress: Callable[[int, int], None] | None = None,
    nc: NATS | None = None,
) -> RelayStats | int:
    """Run the relay until ``stop``; with ``from_position``, replay that range once (or until ``stop``) and return
    the count of messages published. ``nc``: a connection to use (an operator's replay connects once, and fails
    rather than reconnecting forever); it is drained at the end like the relay's own."""
    app = build_intake(settings)
    if nc is None:
        nc = await nats.connect(settings.nats_servers, name="reintegration-relay", max_reconnect_attempts=-1,
                                **settings.nats_options())
    connection = nc
    telemetry.PROCESS.check("nats", telemetry.nats_connected(lambda: connection))
    telemetry.PROCESS.check("store", telemetry.store_reachable(app.recorder.max_notification_id))
    try:
        js = nc.jetstream()
        await ensure_trajectory_stream(js, replicas=settings.stream_replicas)
        relay = build_relay(app, js, replicas=settings.stream_replicas)
        if from_position is not None:
            count = await relay.replay(from_position, to_position, stop=stop, on_progress=on_replay_progress)
            log.info("replayed", from_position=from_position, to_position=to_position, count=count)
            return count
        if settings.metrics_port is None:
            return await relay.run(stop, on_batch=on_batch)
        # the stream's consumers' lag, sampled by the process that writes the stream (shared.infra.telemetry)
        sampler = telemetry.Sampler(service="relay", streams=(TRAJECTORY_STREAM,))
        stats, _sampled = await asyncio.gather(relay.run(stop, on_batch=on_batch), sampler.run(js, stop))
        return stats
    finally:
        await nc.drain()
        app.close()
