"""Durable timers as JetStream scheduled messages, not sleeping loops.

* The timer writer follows the deadlines store's own log (its position recorded in the store, like the relay):
  an opened or recomputed deadline gets a scheduled message on ``reintegration.timers.schedule.<deadline id>``
  (``Nats-Schedule: @at <start of the Belgian day after the deadline>``, target
  ``reintegration.timers.fired.<deadline id>``); a met, cancelled or decided deadline has its schedule purged.
  Both are idempotent (a new schedule on the same subject replaces the old one), so a writer restarted anywhere
  rewrites the same timers. A schedule that falls due while the server is down fires after it restarts.
* The timers live in their own stream (``TIMERS``, schedules allowed): a stream that allows schedules also allows
  rollups and purges, which the trajectory stream must never allow.
* A fired timer is handled by a durable consumer: the deadline's outcome is recorded once, and only when the
  schedule has applied every report of the case that the TRAJECTORY stream holds (a late report that met the
  deadline is not overtaken by its timer). Handled timers are deleted, so the stream holds the live timers only.
* Replicas: every replica of the service runs both. The writers follow the one shared store, each in its order, so
  a lagging writer may re-arm a timer that a faster one already purged; it purges it again when it reaches the
  same change, and a timer that fires meanwhile finds its deadline decided (stale: nothing recorded). The fired
  timers are shared by the replicas' one durable consumer, whichever replica owns the case: recording an outcome
  is an optimistic write on the case's version, retried on a conflict, so it happens once.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID

import msgspec
import nats.errors
import nats.js.errors
import structlog
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Mapper,
    PersistenceError,
    Tracking,
    TrackingRecorder,
)
from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from shared.events.envelope import decode_case_event
from shared.events.subjects import (
    TIMER_FIRED_PREFIX,
    TIMER_SCHEDULE_PREFIX,
    TIMERS_STREAM,
    TRAJECTORY_PREFIX,
    TRAJECTORY_STREAM,
)
from shared.infra.relay import add_or_update_stream, next_batch
from shared.rulebook.calendar import BRUSSELS

from .application import DeadlinesApplication, TimerOutcome
from .schedule import ScheduleRecomputed, ScheduleStep, timer_due

log = structlog.get_logger("deadlines.timers")
TIMER_SUBJECTS = [f"{TIMER_SCHEDULE_PREFIX}.>", f"{TIMER_FIRED_PREFIX}.>"]
#: Changes after which a deadline needs a timer; the others end it.
ARMS = {"opened", "recomputed", "changed"}


class Timer(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of a scheduled (and, when fired, delivered) timer."""

    deadline_id: UUID
    case_id: UUID
    due_on: date
    fires_at: datetime


def fire_time(day: date) -> datetime:
    """The start of ``day`` in Belgium, in UTC."""
    return datetime.combine(day, time(0), tzinfo=BRUSSELS).astimezone(UTC)


async def ensure_timer_stream(js: JetStreamContext, replicas: int | None = None) -> None:
    """The TIMERS stream; ``replicas`` for a new one (an existing stream keeps its count, or grows to it)."""
    config = api.StreamConfig(
        name=TIMERS_STREAM,
        subjects=TIMER_SUBJECTS,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        num_replicas=replicas or 1,
        allow_msg_schedules=True,
    )
    await add_or_update_stream(js, config, replicas)


class TimerWriter:
    def __init__(
        self,
        *,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        tracking: TrackingRecorder,
        js: JetStreamContext,
        name: str = "timers:deadlines->TIMERS",
        batch_size: int = 500,
        poll_interval: float = 0.05,
    ) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.tracking = tracking
        self.js = js
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.written = 0
        self.purged = 0
        self._encoder = msgspec.json.Encoder()

    async def run(self, stop: asyncio.Event) -> None:
        position = await asyncio.to_thread(lambda: self.tracking.max_tracking_id(self.name) or 0)
        position = await self._check_stream(position)
        while not stop.is_set():
            batch = await next_batch(self.recorder, position + 1, self.batch_size, stop, self.poll_interval, self.name)
            if not batch:
                continue
            try:
                for notification in batch:
                    await self.apply(self.mapper.to_domain_event(notification))
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError, PersistenceError) as exc:
                log.warning("timer write failed; retrying the batch", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            position = batch[-1].id
            await asyncio.to_thread(self._record, position)

    async def _check_stream(self, position: int) -> int:
        """Where to start: after ``position``, unless the broker lost the schedules written so far. A TIMERS stream
        that never held a message although schedules were written (its last sequence is 0) was lost with a wiped or
        replaced broker store: the log is then followed again from its start. That is harmless, schedules replace
        each other and a timer whose deadline is already decided is recorded as stale. A stream emptied by handled
        timers keeps its sequence numbers, so a normal restart does not re-drive."""
        if position == 0:
            return 0
        try:
            info = await self.js.stream_info(TIMERS_STREAM)
        except nats.js.errors.NotFoundError:
            info = None
        if info is not None and (info.state.messages > 0 or info.state.last_seq > 0):
            return position  # it holds schedules, or held some (handled timers are deleted; sequences stay)
        log.warning("the TIMERS stream holds no schedule: writing every schedule again from the log's start",
                    recorded_position=position)
        return 0

    def _record(self, position: int) -> None:
        try:
            self.tracking.insert_tracking(Tracking(self.name, position))
        except IntegrityError:  # a second writer recorded it (or later) meanwhile: schedules are idempotent
            pass

    async def apply(self, event: Any) -> None:
        if not isinstance(event, ScheduleStep | ScheduleRecomputed):
            if hasattr(event, "deadline"):  # a TimerFired: the outcome is recorded, the timer is done
                await self.purge(event.deadline.id)
            return
        # A step may change a deadline twice (opened under one regime, recomputed under the next): its last
        # change is the one the timer follows.
        last = {change.deadline.id: change for change in event.changes}
        for change in last.values():
            deadline = change.deadline
            if change.change in ARMS and deadline.state == "open":
                when = fire_time(timer_due(deadline))
                timer = Timer(deadline_id=deadline.id, case_id=deadline.case_id, due_on=deadline.due_on,
                              fires_at=when)
                await self.js.publish(
                    f"{TIMER_SCHEDULE_PREFIX}.{deadline.id}",
                    self._encoder.encode(timer),
                    headers={
                        "Nats-Schedule": f"@at {when.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                        "Nats-Schedule-Target": f"{TIMER_FIRED_PREFIX}.{deadline.id}",
                    },
                )
                self.written += 1
            else:
                await self.purge(deadline.id)

    async def purge(self, deadline_id: UUID) -> None:
        await self.js.purge_stream(TIMERS_STREAM, subject=f"{TIMER_SCHEDULE_PREFIX}.{deadline_id}")
        self.purged += 1


class FiredTimers:
    """The durable consumer of fired timers."""

    def __init__(self, app: DeadlinesApplication, executor: Executor, name: str = "deadlines-timers") -> None:
        self.app = app
        self.executor = executor
        self.name = name
        self.js: JetStreamContext | None = None
        self.counts = {outcome.value: 0 for outcome in TimerOutcome}
        self._decoder = msgspec.json.Decoder(Timer)

    def attach(self, router: NatsRouter, *, inbox_prefix: bytes = b"_INBOX.") -> None:
        @router.subscriber(
            f"{TIMER_FIRED_PREFIX}.>",
            stream=JStream(TIMERS_STREAM, declare=False),
            durable=self.name,
            # One message per fetch: FastStream's batch loop gathers a batch over several fetches and loses the
            # ones already fetched when a later fetch raises nats-py's bare asyncio timeout (they come back only
            # after ack_wait, a late outcome). A single fetch either returns its messages or raises before any.
            pull_sub=PullSub(batch_size=1, timeout=0.2, batch=True),
            inbox_prefix=inbox_prefix,
            ack_policy=AckPolicy.MANUAL,
            config=api.ConsumerConfig(
                durable_name=self.name,
                deliver_policy=api.DeliverPolicy.ALL,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=30,
                # Unlimited: a timer waits (with a growing delay) for its case's reports to be applied, and must
                # never be dropped by a delivery limit.
                max_deliver=-1,
                filter_subject=f"{TIMER_FIRED_PREFIX}.>",
            ),
            title="deadlines: fired timers",
            description="Durable consumer of fired deadline timers: records each deadline's outcome once.",
        )
        async def fired(msg: NatsMessage) -> None:
            """Record the outcome of each fired timer whose deadline is still open."""
            for raw in msg.raw_message:  # type: ignore[attr-defined]
                await self.handle(raw)

    async def handle(self, raw: Msg) -> None:
        assert self.js is not None
        try:
            timer = self._decoder.decode(raw.data)
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            log.error("undecodable timer dropped", subject=raw.subject, error=str(exc))
            await raw.term()
            await self._delete(raw)
            return
        known = await self.case_version(timer.case_id)
        loop = asyncio.get_running_loop()
        now = datetime.now(UTC)
        # The server's timestamp of the fired message is when the timer fired, whatever this service's clock says
        # and however late (down, behind) the service handles it.
        fired_at = raw.metadata.timestamp if raw.metadata is not None else now
        sequence = raw.metadata.sequence.stream if raw.metadata is not None else None
        outcome = await loop.run_in_executor(
            self.executor, functools.partial(
                self.app.timer_fired, timer.case_id, timer.deadline_id, timer.due_on, fired_at, timer.fires_at,
                known, now=now, timer_sequence=sequence,
            ),
        )
        self.counts[outcome.value] += 1
        if outcome is TimerOutcome.BEHIND:
            delivered = raw.metadata.num_delivered if raw.metadata else 1
            await raw.nak(delay=min(60.0, 0.5 * 2 ** min(delivered - 1, 7)))
            return
        await raw.ack()
        await self._delete(raw)

    async def _delete(self, raw: Msg) -> None:
        """Handled timers leave the stream, so that it holds the live timers only."""
        assert self.js is not None
        if raw.metadata is not None:
            # Without ``no_erase`` the server overwrites the message securely: several times slower, and a timer
            # holds nothing secret (ids and dates).
            request = {"seq": raw.metadata.sequence.stream, "no_erase": True}
            try:
                await self.js._api_request(
                    f"{self.js._prefix}.STREAM.MSG.DELETE.{TIMERS_STREAM}",
                    msgspec.json.encode(request), timeout=5,
                )
            except nats.js.errors.NotFoundError:
                pass

    async def case_version(self, case_id: UUID) -> int:
        """The version of the case's latest event in the TRAJECTORY stream (0 when it holds none)."""
        assert self.js is not None
        try:
            last = await self.js.get_msg(TRAJECTORY_STREAM, subject=f"{TRAJECTORY_PREFIX}.{case_id}.>")
        except nats.js.errors.NotFoundError:
            return 0
        return decode_case_event(last.data or b"", last.headers, self.app.mapper.cipher).version


