"""Runs a derived service: its trajectory consumer, its outbox relay and its read-only query subject, in one
process under one FastStream broker. Nothing connects at import time: ``build_derived_service`` wires it all."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec
import nats
import structlog
from faststream import AckPolicy, FastStream
from faststream.nats import NatsBroker, NatsRouter
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext

from shared.events.subjects import consumer_name as durable_name
from shared.events.subjects import partition_filters

from .consumer import TrajectoryConsumer
from .derived import DerivedApplication
from .relay import OutboxRelay, Render, ensure_stream
from .settings import Settings
from .store import tracking_recorder

log = structlog.get_logger("service")


class Query(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A read-only question about one case; ``version`` asks for the derived state as it was then."""

    case_id: UUID
    version: int | None = None


def _fail_fast(task: asyncio.Task[Any], service: str, stop: asyncio.Event) -> None:
    """A background job (relay, timer writer) that ends before shutdown takes the process down with it, so that
    the supervisor (``up``, compose) restarts it rather than leaving a service that consumes but never publishes."""
    if stop.is_set() or task.cancelled():
        return
    error = task.exception()
    log.critical("background job ended; stopping the service so that it is restarted", service=service,
                 error=repr(error))
    os.kill(os.getpid(), signal.SIGTERM)


def attach_query(
    router: NatsRouter, name: str, subject: str, executor: Executor, answer: Callable[[Query], Any]
) -> None:
    """The read-only request-reply subject answering questions about one case's derived state."""
    decoder = msgspec.json.Decoder(Query)

    # Core NATS request-reply, read-only: no broker acknowledgement (MANUAL: nothing acked or rejected); a question
    # that gets no answer is simply asked again.
    @router.subscriber(subject, queue=f"{name}-query", title=f"{name}: query", ack_policy=AckPolicy.MANUAL,
                       description=f"Read-only: `{{\"case_id\": ..., \"version\": null}}` → the case's {name} "
                       "with each item's explanation, or `{\"error\": ...}`.")
    async def query(msg: NatsMessage) -> bytes:
        """Answer a read-only question about one case's derived state."""
        try:
            question = decoder.decode(msg.body)
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            return msgspec.json.encode({"error": f"bad query: {exc}"})
        loop = asyncio.get_running_loop()
        try:
            return msgspec.json.encode(await loop.run_in_executor(executor, answer, question))
        except Exception as exc:
            log.exception("query failed", service=name)
            return msgspec.json.encode({"error": f"query failed: {exc!r}"})


#: A background job started with the service: ``job(js, stop)`` runs until ``stop`` is set.
Job = Callable[[JetStreamContext, asyncio.Event], Awaitable[Any]]


@dataclass
class DerivedService:
    app: DerivedApplication[Any]
    consumer: TrajectoryConsumer
    broker: NatsBroker
    stream_app: FastStream
    executor: Executor
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    connection: nats.NATS | None = None


def build_derived_service(
    settings: Settings,
    app: DerivedApplication[Any],
    *,
    stream: str,
    subjects: list[str],
    render: Render,
    query_subject: str,
    answer: Callable[[Query], Any],
    consumer_name: str | None = None,
    attach: Sequence[Callable[[NatsRouter, Executor], None]] = (),
    jobs: Sequence[Job] = (),
    setup: Sequence[Callable[[JetStreamContext], Awaitable[Any]]] = (),
) -> DerivedService:
    """The service around ``app``: ``attach`` adds subscribers to its router, ``setup`` prepares streams before
    the subscribers start, ``jobs`` run beside the relay until shutdown.

    ``settings.partition`` = ``(i, k)``: this process is replica ``i`` of ``k``; its TRAJECTORY consumer takes its
    partitions only (``<service>-p<i>of<k>``). The replicas share the store: each relays its log (the stream's
    expected last sequence makes the second publisher of a message a no-op), queries go to either (one queue group),
    and their jobs must be safe to run twice (the timer writer is: schedules are idempotent)."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{app.name}-store")
    index, count = settings.partition
    service_name = app.name
    name = consumer_name or durable_name(service_name, index, count)

    consumer = TrajectoryConsumer(name=name, process=app.process, park=app.park, executor=executor,
                                  cipher=app.mapper.cipher, filter_subjects=partition_filters(index, count),
                                  service=service_name, replicas=settings.stream_replicas)
    router = NatsRouter()
    consumer.attach(router, inbox_prefix=settings.pull_inbox_prefix)
    for add in attach:
        add(router, executor)
    attach_query(router, service_name, query_subject, executor, answer)

    broker = NatsBroker(settings.nats_servers, name=f"reintegration-{name}", max_reconnect_attempts=-1,
                        log_level=logging.DEBUG, **settings.nats_options())
    broker.include_router(router)
    stream_app = FastStream(broker)
    service = DerivedService(app=app, consumer=consumer, broker=broker, stream_app=stream_app, executor=executor)
    stop = asyncio.Event()

    @stream_app.on_startup
    async def prepare() -> None:
        nc = await nats.connect(settings.nats_servers, name=f"reintegration-{name}-jobs", max_reconnect_attempts=-1,
                                **settings.nats_options())
        service.connection = nc
        js = nc.jetstream()
        for step in setup:
            await step(js)
        await ensure_stream(js, stream, subjects, replicas=settings.stream_replicas)
        await consumer.start(js)  # starts pulling: the streams it writes into must exist
        assert consumer.task is not None
        consumer.task.add_done_callback(lambda t: _fail_fast(t, name, stop))
        service.tasks.append(consumer.task)
        relay = OutboxRelay(
            name=f"relay:{service_name}->{stream}", recorder=app.recorder, mapper=app.mapper,
            tracking=tracking_recorder(app, settings, service_name), js=js, stream=stream, render=render,
        )
        for coroutine in (relay.run(stop), *(job(js, stop) for job in jobs)):
            task = asyncio.create_task(coroutine)
            task.add_done_callback(lambda t: _fail_fast(t, name, stop))
            service.tasks.append(task)

    @stream_app.on_shutdown
    async def finish() -> None:
        stop.set()
        await consumer.stop()  # answers the batch in hand first
        if service.tasks:
            done, pending = await asyncio.wait(service.tasks, timeout=10)
            for task in pending:
                task.cancel()

    @stream_app.after_shutdown
    async def close() -> None:
        if service.connection is not None:  # after the broker: dead letters and timers may still be in flight
            await service.connection.drain()
        executor.shutdown(wait=True)
        app.close()

    return service
