"""Runs a derived service: its trajectory consumer, its outbox relay and its read-only query subject, in one
process under one FastStream broker. Nothing connects at import time: ``build_derived_service`` wires it all."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
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
from prometheus_client import REGISTRY

from shared.events.dead_letters import DeadLetterRecord
from shared.events.queries import Query
from shared.events.subjects import (
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    partition_filters,
    query_subject,
)
from shared.events.subjects import consumer_name as durable_name

from . import telemetry, tracing
from .clock import Clock, system_clock
from .consumer import TrajectoryConsumer
from .derived import DerivedApplication, letter_key
from .parties import Parties, UnknownRequester, auditor_asking, crossed_import
from .relay import OutboxRelay, Render
from .settings import Settings
from .store import tracking_recorder
from .streams import EventStream

log = structlog.get_logger("service")


def _fail_fast(task: asyncio.Task[Any], service: str, stop: asyncio.Event) -> None:
    """A background job (relay, timer writer) that ends before shutdown takes the process down with it, so that
    the supervisor (``up``, compose) restarts it rather than leaving a service that consumes but never publishes."""
    if stop.is_set() or task.cancelled():
        return
    error = task.exception()
    log.critical("background job ended; stopping the service so that it is restarted", service=service,
                 error=repr(error))
    os.kill(os.getpid(), signal.SIGTERM)


def service_broker(settings: Settings, name: str) -> NatsBroker:
    """The FastStream broker of a service process (``reintegration-<name>`` to the server): reconnects forever, logs
    per message at DEBUG only, FastStream's Prometheus middleware when metrics are served (subjects reduced to their
    patterns: no case or enterprise in a label) and its telemetry middleware when traces are exported; its
    connection is a readiness check of the process (:mod:`shared.infra.telemetry`)."""
    middlewares: list[Any] = []
    if settings.metrics_port is not None:
        from faststream.prometheus.middleware import PrometheusMiddleware

        middlewares.append(PrometheusMiddleware(settings_provider_factory=_patterned_metrics,
                                                registry=REGISTRY, app_name=f"reintegration-{name}"))
    if tracing.provider() is not None:
        from faststream.nats.opentelemetry import NatsTelemetryMiddleware

        middlewares.append(NatsTelemetryMiddleware(tracer_provider=tracing.provider()))
    broker = NatsBroker(settings.nats_servers, name=f"reintegration-{name}", max_reconnect_attempts=-1,
                        log_level=logging.DEBUG, middlewares=middlewares, **settings.nats_options())
    telemetry.PROCESS.check("nats", telemetry.nats_connected(lambda: _connection_of(broker)))
    return broker


def _connection_of(broker: NatsBroker) -> nats.NATS | None:
    """The broker's connection, ``None`` before it is made (FastStream raises ``IncorrectState`` then)."""
    from faststream.exceptions import IncorrectState

    try:
        return broker.connection
    except IncorrectState:
        return None


class _Patterned:
    """A FastStream metrics settings provider with each subject reduced to its pattern (:func:`subject_pattern`):
    no case or enterprise in a label."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.messaging_system = inner.messaging_system

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_consume_attrs_from_message(self, message: Any) -> Any:
        attrs = self.inner.get_consume_attrs_from_message(message)
        return {**attrs, "destination_name": telemetry.subject_pattern(attrs["destination_name"])}

    def get_publish_destination_name_from_cmd(self, cmd: Any) -> str:
        return telemetry.subject_pattern(self.inner.get_publish_destination_name_from_cmd(cmd))


#: The providers are stateless: one of each kind (single message, batch) serves every message.
_PATTERNED: dict[type, _Patterned] = {}


def _patterned_metrics(msg: Any) -> Any:
    from faststream.nats.prometheus.provider import settings_provider_factory

    provider = settings_provider_factory(msg)
    if provider is None:
        return None
    if type(provider) not in _PATTERNED:
        _PATTERNED[type(provider)] = _Patterned(provider)
    return _PATTERNED[type(provider)]


async def raw_body(msg: NatsMessage) -> bytes:
    """The decoder of every subscriber that answers a party's or an auditor's request. FastStream's own parses
    JSON (when a content-type header says so, or to fill a typed argument), and a body it cannot parse (deep
    nesting, bad UTF-8) then gets no reply at all: the handler's strict decoding alone reads the bytes."""
    return msg.body


#: A query is a case id and a version: anything larger is refused before it is parsed.
MAX_QUERY_BYTES = 4096


@dataclass(frozen=True)
class QueryDisclosure:
    """The auditors' questions on a derived service's query subject, each recorded in the disclosure log.

    ``parties``: the server's parties file (``None`` on a server without accounts, where every question is recorded
    as asked by :data:`UNAUTHENTICATED`); ``record(who, what, case_id)`` writes the disclosure record and returns its
    reference, or raises, and then nothing is disclosed. A query from inside the service account (the operator's
    CLI, another service) crossed no import: it is answered without a record, as it discloses nothing to a party.
    """

    parties: Parties | None
    record: Callable[[str, str, UUID], str]
    #: closes what ``record`` writes to, once the service has stopped
    close: Callable[[], None] = lambda: None

    def asker(self, headers: Mapping[str, str] | None, reply: str) -> str | None:
        """The auditor who asked, :data:`UNAUTHENTICATED` on an open server, ``None`` inside the service account;
        :class:`UnknownRequester` for anyone else."""
        if self.parties is not None and not crossed_import(reply):
            return None
        return auditor_asking(headers, reply, self.parties, "queries")


def attach_query(
    router: NatsRouter, name: str, subject: str, executor: Executor, answer: Callable[[Query], Any],
    disclosure: QueryDisclosure | None = None,
) -> None:
    """The read-only request-reply subject answering questions about one case's derived state; with
    ``disclosure``, an auditor's question is answered only once it is recorded in the disclosure log."""
    decoder = msgspec.json.Decoder(Query)

    # Core NATS request-reply, read-only: no broker acknowledgement (MANUAL: nothing acked or rejected); a question
    # that gets no answer is simply asked again.
    @router.subscriber(subject, queue=f"{name}-query", title=f"{name}: query", ack_policy=AckPolicy.MANUAL,
                       decoder=raw_body,
                       description=f"Read-only: `{{\"case_id\": ..., \"version\": null}}` → the case's {name} "
                       "with each item's explanation, or `{\"error\": ...}`. An auditor's question is recorded in "
                       "the disclosure log before it is answered.")
    async def query(msg: NatsMessage) -> bytes:
        """Answer a read-only question about one case's derived state."""
        raw = msg.raw_message
        try:
            who = disclosure.asker(raw.headers, raw.reply) if disclosure is not None else None
        except UnknownRequester as exc:
            return msgspec.json.encode({"error": exc.message, "code": exc.code})
        if len(msg.body) > MAX_QUERY_BYTES:
            return msgspec.json.encode({"error": f"bad query: {len(msg.body)} bytes, more than {MAX_QUERY_BYTES}"})
        try:
            question = decoder.decode(msg.body)
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            return msgspec.json.encode({"error": f"bad query: {exc}"})
        loop = asyncio.get_running_loop()
        try:
            reply = msgspec.json.encode(await loop.run_in_executor(executor, answer, question))
        except Exception:
            log.exception("query failed", service=name)
            return msgspec.json.encode({"error": f"the {name} service could not answer this query (its log names "
                                                 "the error)"})
        if who is not None and disclosure is not None:
            what = f"{subject} {msgspec.json.encode(question).decode()}"
            try:
                await asyncio.to_thread(disclosure.record, who, what, question.case_id)
            except Exception:
                log.exception("disclosure not recorded; answer withheld", service=name, who=who)
                return msgspec.json.encode({"error": "the question could not be recorded in the disclosure log, so "
                                                     "nothing is disclosed; ask again", "retry": True})
        return reply


#: A background job started with the service: ``job(js, stop)`` runs until ``stop`` is set.
Job = Callable[[JetStreamContext, asyncio.Event], Coroutine[Any, Any, Any]]
#: A step run before the subscribers start (streams they need): ``step(js)``.
Setup = Callable[[JetStreamContext], Awaitable[Any]]
#: Adds subscribers of the service's own to its router; ``executor`` is the store's one worker thread.
Attach = Callable[[NatsRouter, Executor], None]


@dataclass
class Outputs:
    """Where a derived service publishes: its stream and the rendering of its steps into that stream's messages."""

    stream: EventStream
    render: Render


@dataclass
class DerivedService:
    """A derived service in one process: its hooks start the consumer, the relay and the jobs, and stop them."""

    settings: Settings
    app: DerivedApplication[Any]
    consumer: TrajectoryConsumer
    outputs: Outputs
    executor: Executor
    broker: NatsBroker
    stream_app: FastStream
    jobs: Sequence[Job] = ()
    setup: Sequence[Setup] = ()
    disclosure: QueryDisclosure | None = None
    #: The timers scheduled (a service with timers: deadlines), sampled into ``reintegration_timers_pending``.
    timers: Callable[[JetStreamContext], Awaitable[int]] | None = None
    #: Other streams it writes, whose consumers' lag it samples too (deadlines: TIMERS).
    also_sampled: tuple[str, ...] = ()
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    connection: nats.NATS | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Prepare the streams, start consuming, then the relay and the jobs, each stopping the process if it
        ends before shutdown."""
        settings, name = self.settings, self.consumer.name
        self.connection = nc = await nats.connect(settings.nats_servers, name=f"reintegration-{name}-jobs",
                                                  max_reconnect_attempts=-1, **settings.nats_options())
        js = nc.jetstream()
        for step in self.setup:
            await step(js)
        await self.outputs.stream.ensure(js, replicas=settings.stream_replicas)
        await self.consumer.start(js)  # starts pulling: the streams it writes into must exist
        assert self.consumer.task is not None
        self._watch(self.consumer.task)
        relay = OutboxRelay(
            name=f"relay:{self.app.name}->{self.outputs.stream.name}", recorder=self.app.recorder,
            mapper=self.app.mapper, tracking=tracking_recorder(self.app, settings, self.app.name), js=js,
            stream=self.outputs.stream.name,
            render=self.outputs.render, trace_parent=functools.partial(tracing.derived_step_parent, self.app.name),
        )
        jobs = [relay.run(self.stop), *(job(js, self.stop) for job in self.jobs)]
        if settings.metrics_port is not None:
            jobs.append(self.sampler().run(js, self.stop))
        for coroutine in jobs:
            self._watch(asyncio.create_task(coroutine))

    def sampler(self) -> telemetry.Sampler:
        """The gauges of its stream's consumers and of its dead letters (and its ``timers`` gauge, if any)."""
        return telemetry.Sampler(service=self.app.name, streams=(self.outputs.stream.name, *self.also_sampled),
                                 waiting=functools.partial(dead_letters_waiting, app=self.app, executor=self.executor),
                                 timers=self.timers)

    def _watch(self, task: asyncio.Task[Any]) -> None:
        task.add_done_callback(lambda t: _fail_fast(t, self.consumer.name, self.stop))
        self.tasks.append(task)

    async def finish(self) -> None:
        """Stop the consumer (it answers the batch in hand first), then the relay and the jobs."""
        self.stop.set()
        await self.consumer.stop()
        if self.tasks:
            _done, pending = await asyncio.wait(self.tasks, timeout=10)
            for task in pending:
                task.cancel()

    async def close(self) -> None:
        """After the broker: dead letters and timers may still be in flight until then."""
        if self.connection is not None:
            await self.connection.drain()
        self.executor.shutdown(wait=True)
        self.app.close()
        if self.disclosure is not None:
            self.disclosure.close()


def build_derived_service(
    settings: Settings,
    app: DerivedApplication[Any],
    outputs: Outputs,
    answer: Callable[[Query], Any],
    *,
    disclosure: QueryDisclosure | None = None,
    clock: Clock = system_clock,
    consumer_name: str | None = None,
    attach: Sequence[Attach] = (),
    jobs: Sequence[Job] = (),
    setup: Sequence[Setup] = (),
    timers: Callable[[JetStreamContext], Awaitable[int]] | None = None,
    also_sampled: tuple[str, ...] = (),
) -> DerivedService:
    """The service around ``app``: ``attach`` adds subscribers to its router, ``setup`` prepares streams before
    the subscribers start, ``jobs`` run beside the relay until shutdown; ``clock`` is the time its steps record.

    ``settings.partition`` = ``(i, k)``: this process is replica ``i`` of ``k``; its TRAJECTORY consumer takes its
    partitions only (``<service>-p<i>of<k>``). The replicas share the store: each relays its log (the stream's
    expected last sequence makes the second publisher of a message a no-op), queries go to either (one queue group),
    and their jobs must be safe to run twice (the timer writer is: schedules are idempotent)."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{app.name}-store")
    index, count = settings.partition
    name = consumer_name or durable_name(app.name, index, count)
    consumer = TrajectoryConsumer(name=name, apply=app.apply_batch, park=app.park, executor=executor, clock=clock,
                                  cipher=app.mapper.cipher, filter_subjects=partition_filters(index, count),
                                  service=app.name, replicas=settings.stream_replicas)
    router = NatsRouter()
    consumer.attach(router, inbox_prefix=settings.pull_inbox_prefix)
    for add in attach:
        add(router, executor)
    attach_query(router, app.name, query_subject(app.name), executor, answer, disclosure)
    broker = service_broker(settings, name)
    broker.include_router(router)
    stream_app = FastStream(broker)
    service = DerivedService(settings=settings, app=app, consumer=consumer, outputs=outputs, executor=executor,
                             broker=broker, stream_app=stream_app, jobs=jobs, setup=setup, disclosure=disclosure,
                             timers=timers, also_sampled=also_sampled)
    telemetry.REBUILD_DONE.labels(app.name).set(0)  # no rebuild running (`rebuild` serves its own progress)
    telemetry.REBUILD_TOTAL.labels(app.name).set(0)
    probes = telemetry.PROCESS
    probes.check("jobs connection", telemetry.nats_connected(lambda: service.connection))
    probes.check("store", telemetry.store_reachable(app.recorder.max_notification_id))
    probes.check("consumer", telemetry.task_running(f"consumer {name}", lambda: consumer.task))
    stream_app.on_startup(service.start)
    stream_app.on_shutdown(service.finish)
    stream_app.after_shutdown(service.close)
    return service


#: Dead letters read per sample at most (beyond, the waiting count is the stream's, the parked cases a floor).
MAX_LETTERS_READ = 1000


async def dead_letters_waiting(js: JetStreamContext, *, app: DerivedApplication[Any], executor: Executor,
                               ) -> tuple[int, int]:
    """``(dead letters of app's service not yet resolved, cases they park)``: the stream's letters less those the
    store's book of resolutions names."""
    subject = f"{DEAD_LETTER_PREFIX}.{app.name}"
    info = await js.stream_info(DEAD_LETTER_STREAM, subjects_filter=subject)
    stored = (info.state.subjects or {}).get(subject, 0)
    if not stored:
        return 0, 0
    book = await asyncio.get_running_loop().run_in_executor(executor, app.dead_letter_book)
    waiting, cases, read, sequence = 0, set(), 0, info.state.first_seq
    while read < min(stored, MAX_LETTERS_READ):
        message = await js.get_msg(DEAD_LETTER_STREAM, seq=sequence, subject=subject, next=True)
        read += 1
        record = DeadLetterRecord.from_headers(message.headers)
        at = int(message.seq or sequence)
        if letter_key(record.letter_id, at) not in book.resolved:
            waiting += 1
            cases.add(record.case_id)
        sequence = at + 1
    return waiting + stored - read, len(cases)
