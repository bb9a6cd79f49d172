"""The intake's NATS edge: decode strictly, call the application, encode an accepted or rejected reply.

Intake is core NATS request-reply, not JetStream: there is no broker-side acknowledgement to manage. The reply is
the acknowledgement. A party that gets no reply within its timeout (intake down, store slow) sends the same report
again with the same report id; the application answers a recorded report with its original acceptance, so nothing
accepted is lost or applied twice. Every failure path answers: a domain rule, a bad message, a store that is
briefly unavailable (``retry: true``) or an unexpected error (``retry: true``, logged with its traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime
from uuid import UUID

import msgspec
import nats
import nats.errors
import structlog
from eventsourcing.persistence import PersistenceError
from faststream import AckPolicy
from faststream.nats import NatsRouter
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared.events.codec import ContractError, decode_report, encode
from shared.events.common import IdentifierError, Party, PartyKind, normalise_party
from shared.events.replies import RETRYABLE, Accepted, Rejected, RejectionCode
from shared.events.reports import Report
from shared.events.subjects import INTAKE_QUEUE, INTAKE_WILDCARD, parse_intake_subject
from shared.infra import tracing
from shared.infra.clock import Clock, system_clock
from shared.infra.service import raw_body
from shared.infra.telemetry import (
    INTAKE_COMMIT,
    REPORTS_ACCEPTED,
    REPORTS_DUPLICATE,
    REPORTS_REJECTED,
    timed,
)

from .application import IntakeApplication
from .decide import Rejection

log = structlog.get_logger("intake")


def rejected(code: RejectionCode, message: str, **details: object) -> Rejected:
    return Rejected(code=code, message=message, retry=code in RETRYABLE, **details)  # type: ignore[arg-type]


def _refusal(exc: BaseException, report: Report | None, subject: str) -> Rejected:
    """The reply to a report refused for ``exc`` (a rule, a bad message, the store, a bug)."""
    if isinstance(exc, ContractError):
        return rejected(exc.code, exc.message, field=exc.field)
    if isinstance(exc, IdentifierError):
        return rejected(RejectionCode.INVALID_IDENTIFIER, exc.message, field=exc.field)
    if isinstance(exc, Rejection):
        return rejected(exc.code, exc.message, report_id=report.report_id if report else None, field=exc.field,
                        rule=exc.rule, regime=exc.regime)
    if isinstance(exc, ValueError):  # subject that is not an intake subject
        return rejected(RejectionCode.MALFORMED, str(exc), field="subject")
    if isinstance(exc, PersistenceError):
        log.warning("store unavailable", error=str(exc), subject=subject)
        return rejected(
            RejectionCode.STORE_UNAVAILABLE,
            "the event store is briefly unavailable: nothing was recorded, send the same report again",
            report_id=report.report_id if report else None,
        )
    log.error("intake failed", subject=subject, exc_info=exc)
    return rejected(
        RejectionCode.INTERNAL_ERROR,
        "intake failed on this report: nothing was recorded, send the same report again",
        report_id=report.report_id if report else None,
    )


def handle_reports(app: IntakeApplication, received: list[tuple[str, bytes, datetime]]) -> list[Accepted | Rejected]:
    """Everything between the bytes received and the replies to send, for requests that arrived together (blocking:
    runs in a worker thread): each decoded strictly, the decodable ones decided and recorded in one transaction
    (:meth:`IntakeApplication.submit_batch`), each answered."""
    replies: list[Accepted | Rejected | None] = [None] * len(received)
    reports: list[Report | None] = [None] * len(received)
    batch: list[tuple[Party, Report, datetime]] = []
    indexes: list[int] = []
    for index, (subject, raw, now) in enumerate(received):
        try:
            kind, party_id = parse_intake_subject(subject)
            party: Party = normalise_party(kind, party_id)
            reports[index] = report = decode_report(raw)
        except Exception as exc:  # noqa: BLE001 - each refusal is answered
            replies[index] = _refusal(exc, reports[index], subject)
            continue
        batch.append((party, report, now))
        indexes.append(index)
    try:
        outcomes: list[Accepted | Exception] = app.submit_batch(batch) if batch else []  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - the store: nothing of the batch was recorded
        outcomes = [exc] * len(batch)
    for index, outcome in zip(indexes, outcomes, strict=True):
        replies[index] = outcome if isinstance(outcome, Accepted) else _refusal(outcome, reports[index],
                                                                                  received[index][0])
    return [reply for reply in replies if reply is not None]


class GroupCommit:
    """Reports that arrive while the store works on earlier ones wait and are then recorded together, in one
    transaction (:func:`handle_reports`); each request gets its own reply once its report is durable (or
    refused). At most ``workers`` groups are in the store at once."""

    def __init__(self, app: IntakeApplication, executor: Executor, *, workers: int = 1, largest: int = 256) -> None:
        self.app = app
        self.executor = executor
        self.workers = workers
        self.largest = largest
        self._waiting: list[tuple[tuple[str, bytes, datetime], asyncio.Future[Accepted | Rejected]]] = []
        self._running = 0
        #: groups recorded and the largest one, for the benchmark and the logs
        self.groups = 0
        self.largest_group = 0

    async def submit(self, subject: str, raw: bytes, now: datetime) -> Accepted | Rejected:
        future: asyncio.Future[Accepted | Rejected] = asyncio.get_running_loop().create_future()
        self._waiting.append(((subject, raw, now), future))
        if self._running < self.workers:
            self._running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                group, self._waiting = self._waiting[:self.largest], self._waiting[self.largest:]
                self.groups += 1
                self.largest_group = max(self.largest_group, len(group))
                try:
                    with timed(INTAKE_COMMIT):
                        replies = await loop.run_in_executor(self.executor, handle_reports, self.app,
                                                             [item for item, _future in group])
                except Exception as exc:  # noqa: BLE001 - handle_reports answers everything; a bug answers here
                    replies = [_refusal(exc, None, item[0]) for item, _future in group]
                for (_item, future), reply in zip(group, replies, strict=True):
                    if not future.done():  # a request that stopped waiting (reply_within) is answered no more
                        future.set_result(reply)
        finally:
            self._running -= 1


_PARTY_KINDS = frozenset(PartyKind)


class _ReportId(msgspec.Struct):
    """The one field intake reads before decoding a report, to name its trace (:mod:`shared.infra.tracing`)."""

    report_id: UUID


_REPORT_ID = msgspec.json.Decoder(_ReportId)


def count(subject: str, reply: Accepted | Rejected) -> None:
    """The intake metrics of one reply, by party kind (from the subject) and rejection code."""
    tokens = subject.split(".")
    kind = tokens[2] if len(tokens) > 2 and tokens[2] in _PARTY_KINDS else "unknown"
    if isinstance(reply, Rejected):
        REPORTS_REJECTED.labels(kind, reply.code).inc()
    elif reply.duplicate:
        REPORTS_DUPLICATE.labels(kind).inc()
    else:
        REPORTS_ACCEPTED.labels(kind).inc()


def report_trace(body: bytes, headers: Mapping[str, str] | None) -> tuple[UUID, int | None, list[tuple[int, int]]]:
    """A report's trace: its report id, the party's span as parent when the party's ``traceparent`` carries the
    report's trace id (else a link to it); :class:`ValueError` without a readable report id."""
    try:
        report_id = _REPORT_ID.decode(body).report_id
    except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
        raise ValueError("no report id") from exc
    party = tracing.parse_traceparent(headers)
    if party is not None and party[0] == tracing.trace_id(report_id):
        return report_id, party[1], []
    return report_id, None, [party] if party is not None else []


class IntakeResponder:
    """One report in, its reply out: what the intake subscription (:class:`IntakeServer`) and the described
    FastStream subscriber (:func:`build_router`) both run. ``reply_within``: see :func:`build_router`."""

    def __init__(self, group_commit: GroupCommit, reply_within: float | None, clock: Clock) -> None:
        self.group_commit = group_commit
        self.reply_within = reply_within
        self.clock = clock

    async def answer(self, subject: str, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
        """Decode a party's report strictly, decide it against its case and the rulebook, record it, reply; in the
        report's trace when tracing is on."""
        if tracing.enabled:
            try:
                report_id, parent, links = report_trace(body, headers)
            except ValueError:
                return await self._answer(subject, body)
            with tracing.span("intake report", trace=tracing.trace_id(report_id), parent=parent, links=links,
                              span_id=tracing.span_id("intake", report_id),
                              attributes={"messaging.destination.name": INTAKE_WILDCARD,
                                          "reintegration.report_id": str(report_id)}) as span:
                reply = await self._answer(subject, body, span)
            return reply
        return await self._answer(subject, body)

    async def _answer(self, subject: str, body: bytes, span: object = None) -> bytes:
        now = self.clock()
        work = self.group_commit.submit(subject, body, now)
        try:
            reply = await asyncio.wait_for(work, timeout=self.reply_within)
        except TimeoutError:
            log.warning("store did not answer in time; told the party to retry", subject=subject,
                        seconds=self.reply_within)
            reply = rejected(
                RejectionCode.STORE_UNAVAILABLE,
                "the event store did not answer in time: send the same report again",
            )
        count(subject, reply)
        if span is not None:
            span.set_attribute("reintegration.reply", getattr(reply, "code", "accepted"))  # type: ignore[attr-defined]
        log.debug("report", subject=subject, reply=type(reply).__name__)
        return encode(reply)


class IntakeServer:
    """The intake's subscription in a running service: core NATS request-reply on nats-py directly.

    FastStream's subscriber machinery (its middlewares, dependency injection and task group) cost intake about a
    third of its CPU per report, more than deciding and recording it; the reports are bytes in and bytes out and
    need none of it. So the service subscribes with nats-py on the broker's own connection, while the same
    handler stays described as a FastStream subscriber (:func:`build_router`) for the AsyncAPI document.

    Each request is answered by its own task (at most ``in_flight`` at once: those that arrive while the store
    records a group form the next group); a request with no reply subject is recorded and not answered."""

    def __init__(self, app: IntakeApplication, *, workers: int = 1, reply_within: float | None = None,
                 clock: Clock = system_clock, in_flight: int = 256) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="intake-store")
        self.group_commit = GroupCommit(app, self.executor, workers=workers)
        self.responder = IntakeResponder(self.group_commit, reply_within, clock)
        self.in_flight = in_flight
        self._slots = asyncio.Semaphore(in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: Subscription | None = None
        self._nc: nats.NATS | None = None

    async def start(self, nc: nats.NATS) -> None:
        self._nc = nc
        self._subscription = await nc.subscribe(INTAKE_WILDCARD, queue=INTAKE_QUEUE, cb=self._received)

    async def subscribed(self) -> str | None:
        """Readiness: ``None`` while the intake subject is subscribed, else why not."""
        if self._subscription is None:
            return "not subscribed to the intake subjects"
        return None

    async def _received(self, msg: Msg) -> None:
        await self._slots.acquire()  # beyond ``in_flight``, requests wait in the subscription's own buffer
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            reply = await self.responder.answer(msg.subject, msg.data, msg.headers)
            if msg.reply and self._nc is not None:
                await self._nc.publish(msg.reply, reply)
        except Exception:  # one request's failure (the connection closing) must not end the others
            log.exception("intake could not answer a request", subject=msg.subject)
        finally:
            self._slots.release()

    async def stop(self, timeout: float = 10.0) -> None:
        """Take no more requests, answer those taken, buffered ones included, and let the store thread finish its
        group (within ``timeout`` seconds in all), so that the store is closed under no write."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self._subscription.drain(), timeout=timeout)  # hands over what it buffered
            self._subscription = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.1, deadline - loop.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(self.executor.shutdown, True),
                                   timeout=max(0.1, deadline - loop.time()))


#: Share of the parties' request timeout within which intake answers, if need be with "retry later".
REPLY_WITHIN_SHARE = 0.8


def build_router(app: IntakeApplication, workers: int = 1, reply_within: float | None = None, *,
                 clock: Clock = system_clock) -> NatsRouter:
    """The intake subscriber as FastStream describes it: for the AsyncAPI document, and a handler's unit test over
    FastStream's in-memory broker. The running service answers through :class:`IntakeServer`, which runs the same
    :class:`IntakeResponder` with the same arguments.

    Store work runs on ``workers`` threads: one avoids lock contention on SQLite (whose writes are serial anyway);
    more help on PostgreSQL, where optimistic concurrency settles races per case. ``clock`` gives the time each
    report is received (recorded with it).

    ``reply_within`` (seconds, below the parties' request timeout): a report the store has not settled by then is
    answered ``store_unavailable`` (``retry: true``) rather than after the party stopped waiting. A store that
    hangs (PostgreSQL stopped: the connection pool waits for it) then still gets every report an explicit answer.
    The store work itself goes on; if it records the report after all, the party's resend is answered with the
    original acceptance (reports are idempotent by id)."""
    router = NatsRouter()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="intake-store")
    responder = IntakeResponder(GroupCommit(app, executor, workers=workers), reply_within, clock)

    @router.subscriber(
        INTAKE_WILDCARD,
        queue=INTAKE_QUEUE,
        # Take many requests at once: those that arrive while the store records a group form the next group.
        max_workers=64,
        # Core NATS has no broker acknowledgement: the reply is the party's acknowledgement, and a report that got
        # none is resent with the same report id (idempotent). MANUAL states that nothing is acked or rejected here.
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title="intake",
        description=(
            "Request-reply intake of party reports. Subject `reintegration.intake.<party_kind>.<party_id>` "
            "(health_fund / occupational_health_service / employer). Payload: one report (a tagged "
            "`shared.events.reports` struct, field `type`). Reply: `accepted.v1` or `rejected.v1`. Core NATS: the "
            "reply is the acknowledgement; resend the same report id when no reply comes."
        ),
    )
    async def receive_report(msg: NatsMessage) -> bytes:
        """Decode a party's report strictly, decide it against its case and the rulebook, record it, reply."""
        return await responder.answer(msg.raw_message.subject, msg.body)

    return router
