"""Durable timers as JetStream scheduled messages, not sleeping loops.

* The timer writer follows the deadlines store's own log (its position recorded in the store, like the relay):
  an opened or recomputed deadline gets a scheduled message on ``reintegration.timers.schedule.<deadline id>``
  (``Nats-Schedule: @at <start of the Belgian day after the deadline>``, target
  ``reintegration.timers.fired.<deadline id>``); a met, cancelled or decided deadline has its schedule purged
  (while it is still to fire: a one-shot schedule leaves the stream when it fires).
  Both are idempotent (a new schedule on the same subject replaces the old one), so a writer restarted anywhere
  rewrites the same timers. A schedule that falls due while the server is down fires after it restarts.
* The timers live in their own stream (``TIMERS``, schedules allowed): a stream that allows schedules also allows
  rollups and purges, which the trajectory stream must never allow.
* A fired timer is handled by a durable consumer (:class:`services.deadlines.handlers.FiredTimers`): the
  deadline's outcome is recorded once, and only when the schedule has applied every report of the case that the
  TRAJECTORY stream holds (a late report that met the deadline is not overtaken by its timer). Handled timers are
  deleted, so the stream holds the live timers only.
* Replicas: every replica of the service runs both. The writers follow the one shared store, each in its order, so
  a lagging writer may re-arm a timer that a faster one already purged; it purges it again when it reaches the
  same change, and a timer that fires meanwhile finds its deadline decided (stale: nothing recorded). The fired
  timers are shared by the replicas' one durable consumer, whichever replica owns the case: recording an outcome
  is an optimistic write on the case's version, retried on a conflict, so it happens once.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
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
from nats.js import JetStreamContext

from shared.events.subjects import TIMER_FIRED_PREFIX, TIMER_SCHEDULE_PREFIX, TIMERS_STREAM
from shared.infra.clock import Clock, system_clock
from shared.infra.relay import next_batch
from shared.infra.retry import Backoff
from shared.rulebook.calendar import BRUSSELS

from .schedule import ScheduleRecomputed, ScheduleStep, timer_due

log = structlog.get_logger("deadlines.timers")
#: Changes after which a deadline needs a timer; the others end it.
ARMS = {"opened", "recomputed", "changed"}
#: A timer due this long ago has fired (its schedule left the stream), whatever small skew there is between this
#: service's clock and the server's: it is not purged.
PURGE_MARGIN = timedelta(minutes=1)


class Timer(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of a scheduled (and, when fired, delivered) timer."""

    deadline_id: UUID
    case_id: UUID
    due_on: date
    fires_at: datetime


def fire_time(day: date) -> datetime:
    """The start of ``day`` in Belgium, in UTC."""
    return datetime.combine(day, time(0), tzinfo=BRUSSELS).astimezone(UTC)


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
        ack_timeout: float = 10.0,
        clock: Clock = system_clock,
        record_interval: float = 1.0,
    ) -> None:
        self.recorder = recorder
        #: The position is recorded at most this often while the log is busy, and whenever the writer catches up.
        self.record_interval = record_interval
        self.mapper = mapper
        self.tracking = tracking
        self.js = js
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.clock = clock
        self.written = 0
        self.purged = 0
        #: timers no longer wanted whose time had come: fired (or firing), so nothing left to purge
        self.fired_already = 0
        self._encoder = msgspec.json.Encoder()

    async def run(self, stop: asyncio.Event) -> None:
        position = await asyncio.to_thread(lambda: self.tracking.max_tracking_id(self.name) or 0)
        position = recorded = await self._check_stream(position)
        recorded_at = monotonic()
        store_backoff, write_backoff = Backoff(first=0.1, cap=1.0), Backoff(first=0.5, cap=5.0)
        while not stop.is_set():
            batch = await next_batch(self.recorder, position + 1, self.batch_size, stop, self.poll_interval, self.name,
                                     store_backoff)
            if position > recorded and (not batch or monotonic() - recorded_at >= self.record_interval):
                # at most once a :attr:`record_interval` while busy, and once caught up: a writer restarted from an
                # earlier mark writes the same schedules again, so a mark the store cannot take now waits
                try:
                    await asyncio.to_thread(self._record, position)
                    recorded = position
                except PersistenceError as exc:
                    log.warning("timer writer position not recorded; later", error=repr(exc))
                recorded_at = monotonic()
            if not batch:
                continue
            try:
                await self.apply_all([self.mapper.to_domain_event(n) for n in batch])
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError, PersistenceError) as exc:
                log.warning("timer write failed; retrying the batch", error=repr(exc))
                await asyncio.sleep(write_backoff.next())
                continue
            write_backoff.reset()
            position = batch[-1].id
        if position > recorded:
            with contextlib.suppress(PersistenceError):  # stopping: the next writer rewrites those schedules
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
        # A second writer may have recorded it (or later) meanwhile: schedules are idempotent.
        with contextlib.suppress(IntegrityError):
            self.tracking.insert_tracking(Tracking(self.name, position))

    @staticmethod
    def wanted(events: list[Any]) -> dict[UUID, Timer | datetime]:
        """What the events leave for each deadline they touch, in order: its timer, or when the timer it ends
        fires (no timer wanted: met, cancelled, or its outcome recorded). Only the last word on a deadline counts:
        an earlier schedule would be replaced or purged by it anyway."""
        out: dict[UUID, Timer | datetime] = {}
        for event in events:
            if not isinstance(event, ScheduleStep | ScheduleRecomputed):
                if hasattr(event, "deadline"):  # a TimerFired: the outcome is recorded, the timer is done
                    out[event.deadline.id] = fire_time(timer_due(event.deadline))
                continue
            # A step may change a deadline twice (opened under one regime, recomputed under the next): its last
            # change is the one the timer follows.
            for change in {change.deadline.id: change for change in event.changes}.values():
                deadline = change.deadline
                fires_at = fire_time(timer_due(deadline))
                if change.change in ARMS and deadline.state == "open":
                    out[deadline.id] = Timer(deadline_id=deadline.id, case_id=deadline.case_id,
                                             due_on=deadline.due_on, fires_at=fires_at)
                else:
                    out[deadline.id] = fires_at
        return out

    async def apply_all(self, events: list[Any], now: datetime | None = None) -> None:
        """Write and purge the timers ``events`` call for, pipelined: every schedule published at once and every
        purge asked at once, then all their answers awaited (one deadline's subject is written once per batch).

        A timer that is no longer wanted is purged only while it may still be to fire (after ``now``, default the
        clock, less :data:`PURGE_MARGIN`): a one-shot schedule leaves the stream when it fires, so there is
        nothing left to purge of one whose time has come (the outcome of a timer, a deadline met after its due
        date). Should the server fire it later all the same, the fired timer finds its deadline decided: stale,
        nothing recorded."""
        fired_by = (now or self.clock()) - PURGE_MARGIN
        pending: list[asyncio.Future[Any]] = []
        purges: list[UUID] = []
        for deadline_id, timer in self.wanted(events).items():
            if not isinstance(timer, Timer):
                if timer > fired_by:
                    purges.append(deadline_id)
                else:
                    self.fired_already += 1
                continue
            pending.append(await self.js.publish_async(
                f"{TIMER_SCHEDULE_PREFIX}.{deadline_id}",
                self._encoder.encode(timer),
                headers={
                    "Nats-Schedule": f"@at {timer.fires_at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                    "Nats-Schedule-Target": f"{TIMER_FIRED_PREFIX}.{deadline_id}",
                },
            ))
        # A publish acknowledgement lost with the connection (a broker crash) never comes: the batch is then
        # written again after a timeout, as the relay does (schedules and purges are idempotent).
        results = await asyncio.wait_for(asyncio.gather(
            *pending,
            *(self.js.purge_stream(TIMERS_STREAM, subject=f"{TIMER_SCHEDULE_PREFIX}.{deadline_id}")
              for deadline_id in purges),
            return_exceptions=True,
        ), timeout=self.ack_timeout)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        self.written += len(pending)
        self.purged += len(purges)

    async def apply(self, event: Any) -> None:
        """The timers of one recorded event."""
        await self.apply_all([event])
