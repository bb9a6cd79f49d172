"""Outbox relay: from an event store's notification log into a JetStream stream, in order, exactly once.

The event store is the system of record; the stream is transport. The relay reads notifications after the
stream's own tail and publishes them pipelined, each with

* ``Nats-Msg-Id`` = the event id (JetStream drops a copy it already holds within its duplicate window),
* ``Reintegration-Position`` = the notification id (where the relay resumes, and what consumers track), and
  ``Reintegration-Part`` = ``i/n`` when one recorded event yields several messages (or, filtered, none),
* ``Nats-Expected-Last-Sequence`` = the stream sequence it must follow, so that a message lost in flight fails
  every later one instead of leaving a gap: the stream always holds a gap-free prefix of the log.

On start, and after any failure, the relay asks the stream for its last message and resumes after that message's
position. A relay killed at any moment therefore republishes nothing and skips nothing, also past the duplicate
window. Re-reading recorded events that yield no message (a step that changed nothing) is harmless: they yield
nothing again. If the broker lost the stream's data, its tail is earlier than what was published, and the relay
re-drives from there. Its position is also recorded in the store (eventsourcing tracking), only ever forward, for
operators and as the resume point after a replay: at most once a ``record_interval`` while publishing and whenever
the relay catches up; a tail found on resuming that is ahead of the record (put there by a relay stopped before its
record, or by a second relay over the same store) is recorded then.

``replay(from_position)`` republishes a range after an incident (``Reintegration-Replay: 1``), relying on the
duplicate window and on consumers' per-case versions. The live relay passes over replayed messages when it looks
for its tail. If it meets a message that a replay already put in the stream, the duplicate acknowledgement counts
as published. A stream whose tail lies beyond the store's last event means the store was replaced or rebuilt: the
relay stops and says which stream to purge.

A broker that lost its data entirely (its store deleted or truncated away: the stream itself is gone) answers
"stream not found". A relay that knows its stream's subjects creates the stream again and re-drives the whole log
into it; one that does not stops with :class:`RelayError`, so that its service is restarted and prepares its
streams and consumers again. An idle relay looks at its stream every ``probe_interval`` seconds, so that it notices
the loss even when nothing new is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Mapper,
    Notification,
    PersistenceError,
    Tracking,
    TrackingRecorder,
)
from nats.js import JetStreamContext, api

from shared.events.subjects import PART_HEADER, POSITION_HEADER

from . import tracing
from .retry import Backoff
from .streams import ensure_stream
from .telemetry import RELAY_LAG, RELAY_PUBLISHED

log = structlog.get_logger("relay")

REPLAY_HEADER = "Reintegration-Replay"


class RelayError(RuntimeError):
    """The relay cannot go on without an operator (the stream is ahead of the store)."""


class DuplicateInBatch(Exception):
    """A message of the batch was already in the stream: resynchronise before going on."""


#: Failures the relay outlives: it resynchronises with the stream and goes on.
TRANSIENT = (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError, PersistenceError, DuplicateInBatch)


@dataclass(frozen=True)
class Outgoing:
    """One message to publish for a recorded event."""

    subject: str
    payload: bytes
    msg_id: str
    #: Headers of the message itself (e.g. that its payload is encrypted), besides the relay's own.
    headers: tuple[tuple[str, str], ...] = ()


#: Turns a recorded domain event into the messages to publish (none, one or several, always the same ones).
Render = Callable[[Any], list[Outgoing]]


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    resyncs: int = 0
    position: int = 0


class OutboxRelay:
    def __init__(
        self,
        *,
        name: str,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        tracking: TrackingRecorder,
        js: JetStreamContext,
        stream: str,
        render: Render,
        batch_size: int = 500,
        poll_interval: float = 0.05,
        ack_timeout: float = 10.0,
        subjects: Sequence[str] | None = None,
        probe_interval: float = 5.0,
        subject_transform: api.SubjectTransform | None = None,
        replicas: int | None = None,
        record_interval: float = 1.0,
        trace_parent: Callable[[Any], tuple[int, int] | None] | None = None,
    ) -> None:
        self.name = name
        #: Where a recorded event's publish span hangs (:mod:`shared.infra.tracing`; used only when tracing is on).
        self.trace_parent = trace_parent
        self._lag_at = -math.inf
        #: The position is recorded in the store at most this often while publishing (and whenever the relay
        #: catches up): it is not where the relay resumes (the stream's tail is), so a write per batch, waiting
        #: behind the service's own commits, would only slow the relay.
        self.record_interval = record_interval
        self._to_record = 0
        self._recorded_at = -math.inf
        #: How a lost stream is created again: its subject transform and replica count.
        self.subject_transform = subject_transform
        self.replicas = replicas
        #: The stream's subjects: given, a stream the broker lost is created again (else the relay stops).
        self.subjects = list(subjects) if subjects else None
        self.probe_interval = probe_interval
        self.recorder = recorder
        self.mapper = mapper
        self.tracking = tracking
        self.js = js
        self.stream = stream
        self.render = render
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.stats = RelayStats()
        self._recorded = 0
        #: Highest position this process saw confirmed by the stream (stored, or already there).
        self._confirmed = 0
        #: The stream's last sequence when it confirmed that position: a stream found shorter lost data since.
        self._confirmed_seq = 0

    # --- where are we ---------------------------------------------------------------------------------

    async def stream_tail(self) -> tuple[int, int, int, bool]:
        """``(last stream sequence, store position, parts of it already published, replays at the tail)``.

        The position is that of the last message the live relay published (replayed messages after it are passed
        over). A position is complete when all its parts are in the stream; ``(0, 0, 0, False)`` for an empty
        stream.
        """
        info = await self.js.stream_info(self.stream)
        last_seq = info.state.last_seq
        if not last_seq or not info.state.messages:
            return last_seq, 0, 0, False
        seq = last_seq
        while True:
            try:
                msg = await self.js.get_msg(self.stream, seq=seq)
            except nats.js.errors.NotFoundError:
                msg = None  # deleted: look further back
            headers = (msg.headers or {}) if msg is not None else {}
            if msg is not None and headers.get(REPLAY_HEADER) != "1":
                break
            seq -= 1
            if seq < 1:  # nothing but replays: resume from the recorded position
                return last_seq, 0, 0, True
        if POSITION_HEADER not in headers:
            raise RelayError(
                f"stream {self.stream}'s message {seq} has no {POSITION_HEADER} header: "
                "another publisher writes to the relay's stream"
            )
        part, _, total = headers.get(PART_HEADER, "0/1").partition("/")
        done = int(part) + 1
        position = int(headers[POSITION_HEADER])
        if done >= int(total):
            return last_seq, position, 0, seq != last_seq
        return last_seq, position - 1, done, seq != last_seq  # resume inside this position, after its parts

    def recorded_position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    # --- running --------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_batch: Callable[[RelayStats], None] | None = None) -> RelayStats:
        """Publish until ``stop`` is set, resuming after the stream's tail."""
        last_seq, position, skip = await self._resync(first=True)
        probed = time.monotonic()
        store_backoff = Backoff(first=0.1, cap=1.0)  # never longer than the poll of a store that is back
        while not stop.is_set():
            notifications = await next_batch(
                self.recorder, position + 1, self.batch_size, stop, self.poll_interval, self.name, store_backoff
            )
            await self._measure_lag(position, caught_up=not notifications)
            if not notifications:
                await self._record_soon(force=True)
                if time.monotonic() - probed >= self.probe_interval:
                    probed = time.monotonic()
                    try:
                        if not await self._stream_exists():
                            last_seq, position, skip = await self._resync()
                    except TRANSIENT as exc:
                        log.warning("stream not reachable", error=repr(exc))
                continue
            probed = time.monotonic()
            try:
                last_seq, position = await self._publish(notifications, last_seq, position, skip)
                skip = 0
            except TRANSIENT as exc:
                log.warning("publish failed; resynchronising with the stream", error=repr(exc))
                await asyncio.sleep(min(self.poll_interval * 10, 1.0))
                try:
                    last_seq, position, skip = await self._resync()
                except TRANSIENT as exc2:
                    log.warning("stream not reachable", error=repr(exc2))
                    continue
            if on_batch:
                on_batch(self.stats)
        await self._record_soon(force=True)
        return self.stats

    async def _measure_lag(self, position: int, *, caught_up: bool) -> None:
        """The relay lag metric: the store's last position minus the last one published (at most once a second
        while publishing; 0 once the relay found nothing more to publish)."""
        if caught_up:
            RELAY_LAG.labels(self.name).set(0)
            return
        if time.monotonic() - self._lag_at < 1.0:
            return
        self._lag_at = time.monotonic()
        with contextlib.suppress(PersistenceError):
            stored = await asyncio.to_thread(self.recorder.max_notification_id) or 0
            RELAY_LAG.labels(self.name).set(max(0, stored - position))

    async def _stream_exists(self) -> bool:
        """Whether the stream exists; a stream the broker lost is created again (or :class:`RelayError`)."""
        try:
            await self.js.stream_info(self.stream)
            return True
        except nats.js.errors.NotFoundError:
            pass
        await asyncio.sleep(1.0)  # look twice: never act on one answer
        try:
            await self.js.stream_info(self.stream)
            return True
        except nats.js.errors.NotFoundError:
            pass
        if self.subjects is None:
            raise RelayError(
                f"stream {self.stream} no longer exists (the broker lost its data): restart the service so that it "
                "creates its streams and consumers again and re-drives them from its store"
            )
        log.warning("stream lost by the broker: creating it again and re-driving the store into it",
                    stream=self.stream, recorded=self._recorded)
        await ensure_stream(self.js, self.stream, self.subjects, replicas=self.replicas,
                            subject_transform=self.subject_transform)
        return False

    async def _resync(self, first: bool = False) -> tuple[int, int, int]:
        try:
            last_seq, position, skip, replayed = await self.stream_tail()
        except nats.js.errors.NotFoundError:
            if await self._stream_exists():
                raise
            last_seq, position, skip, replayed = await self.stream_tail()
        self._recorded = recorded = await asyncio.to_thread(self.recorded_position)
        stored = await asyncio.to_thread(self.recorder.max_notification_id) or 0
        if position > stored:
            raise RelayError(
                f"stream {self.stream} ends at store position {position} but the store holds {stored} events: the "
                f"store was replaced or rebuilt; purge stream {self.stream} (and its consumers) before restarting"
            )
        if replayed and position < recorded:
            log.info("stream ends with replayed messages", live_tail=position, recorded=recorded)
        if last_seq < self._confirmed_seq:  # the broker lost messages it had confirmed: trust the tail, re-drive
            log.warning("stream is shorter than what it confirmed: re-driving from its tail", stream=self.stream,
                        last_seq=last_seq, confirmed_seq=self._confirmed_seq, after_position=position)
            self._confirmed = self._confirmed_seq = self._to_record = 0
        if position > recorded:  # in the stream, not recorded: a relay that stopped between the ack and its record
            self._to_record = min(self._to_record, position)  # nothing beyond the stream's tail
            await self._record_soon(position, force=True)
        if self._confirmed > position:  # confirmed by duplicates in this process: do not send them again
            position, skip = self._confirmed, 0
        if not first:
            self.stats.resyncs += 1
        self.stats.position = position
        log.info("relay resumes", stream=self.stream, after_position=position, last_seq=last_seq, parts_done=skip)
        return last_seq, position, skip

    async def _publish(
        self, notifications: Sequence[Notification], last_seq: int, position: int, skip: int = 0
    ) -> tuple[int, int]:
        """Publish the batch pipelined; return the new ``(last stream sequence, last complete position)``.

        ``skip`` parts of the first notification are already in the stream (a crash between two of its parts).
        """
        futures: list[asyncio.Future[api.PubAck]] = []
        owners: list[tuple[int, bool]] = []  # per message: (notification id, is its last part)
        for index, notification in enumerate(notifications):
            event = self.mapper.to_domain_event(notification)
            outgoing = self.render(event)
            first = skip if index == 0 else 0
            parent = self.trace_parent(event) if tracing.enabled and self.trace_parent and outgoing else None
            if parent is not None and not tracing.wanted(parent[0]):
                parent = None
            with (tracing.span("relay publish", trace=parent[0], parent=parent[1],
                               span_id=tracing.span_id("relay", outgoing[0].msg_id),
                               attributes={"relay": self.name, "messaging.destination.name": self.stream,
                                           "reintegration.position": notification.id})
                  if parent is not None else contextlib.nullcontext()):
                for part in range(first, len(outgoing)):
                    message = outgoing[part]
                    headers = {
                        **dict(message.headers),
                        api.Header.MSG_ID: message.msg_id,
                        POSITION_HEADER: str(notification.id),
                        PART_HEADER: f"{part}/{len(outgoing)}",
                        api.Header.EXPECTED_LAST_SEQUENCE: str(last_seq + len(futures)),
                    }
                    if parent is not None:
                        headers[tracing.TRACEPARENT] = tracing.traceparent(
                            parent[0], tracing.span_id("relay", outgoing[0].msg_id))
                    futures.append(await self.js.publish_async(message.subject, message.payload, headers=headers))
                    owners.append((notification.id, part == len(outgoing) - 1))
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), timeout=self.ack_timeout
        ) if futures else []
        confirmed = advanced = 0
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = result
                break
            confirmed += 1
            if result.duplicate:
                # Already in the stream (a replay put it there): confirmed, but the stream did not advance, so the
                # rest of the batch fails its sequence check and is sent again after a resync.
                failure = DuplicateInBatch(f"message {result.seq} of {self.stream} was already there")
                break
            advanced += 1
        if failure is None:
            complete = notifications[-1].id  # notifications with no message are complete too
        else:
            done = [owner for owner, last in owners[:confirmed] if last]
            complete = done[-1] if done else position
        last_seq += advanced
        RELAY_PUBLISHED.labels(self.name).inc(advanced)
        if complete > position:
            self.stats.published += advanced
            self.stats.batches += 1
            self.stats.position = complete
            self._confirmed = max(self._confirmed, complete)
            self._confirmed_seq = max(self._confirmed_seq, last_seq)
            await self._record_soon(complete)
        if failure is not None:
            raise failure
        return last_seq, complete

    async def _record_soon(self, position: int = 0, force: bool = False) -> None:
        """Record ``position`` (or the last one noted), now if ``force`` or :attr:`record_interval` has passed."""
        self._to_record = max(self._to_record, position)
        if self._to_record <= self._recorded:
            return
        if force or time.monotonic() - self._recorded_at >= self.record_interval:
            try:
                await asyncio.to_thread(self._record, self._to_record)
            except PersistenceError as exc:  # only a mark: the next one records it
                log.warning("relay position not recorded", error=repr(exc))
            self._recorded_at = time.monotonic()

    def _record(self, position: int) -> None:
        """Record the position, only ever forward (re-read positions are not recorded twice)."""
        if position <= self._recorded:
            return
        try:
            self.tracking.insert_tracking(Tracking(self.name, position))
        except IntegrityError:  # recorded meanwhile (by a second relay): keep the later mark
            self._recorded = self.recorded_position()
            return
        self._recorded = position

    async def replay(
        self,
        from_position: int,
        to_position: int | None = None,
        *,
        stop: asyncio.Event | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Republish notifications ``from_position..to_position`` (inclusive), one by one, without sequence checks.

        For an operator after an incident: messages still in the duplicate window are dropped by JetStream; the
        others are appended, and consumers drop what their tracking already holds. ``stop`` ends the replay after
        the notification being published; ``on_progress(position, messages)`` is called after each notification.
        """
        count = 0
        start = from_position
        while True:
            if stop is not None and stop.is_set():
                return count
            batch = await asyncio.to_thread(
                self.recorder.select_notifications, start, self.batch_size, to_position
            )
            if not batch:
                return count
            for notification in batch:
                if stop is not None and stop.is_set():
                    return count
                outgoing = self.render(self.mapper.to_domain_event(notification))
                for part, message in enumerate(outgoing):
                    await self.js.publish(
                        message.subject,
                        message.payload,
                        headers={
                            **dict(message.headers),
                            api.Header.MSG_ID: message.msg_id,
                            POSITION_HEADER: str(notification.id),
                            PART_HEADER: f"{part}/{len(outgoing)}",
                            REPLAY_HEADER: "1",
                        },
                    )
                    count += 1
                if on_progress is not None:
                    on_progress(notification.id, count)
            start = batch[-1].id + 1


async def next_batch(
    recorder: ApplicationRecorder, start: int, limit: int, stop: asyncio.Event, poll_interval: float, name: str,
    backoff: Backoff,
) -> Sequence[Notification]:
    """The next notifications from ``start``; empty after an idle wait (or a store that was briefly unavailable).

    The SQLite recorder has no ``subscribe()``, so followers of a store's log poll it. A store that cannot be read
    is waited for: ``backoff``'s next delay (reset once the store answers again).
    """
    try:
        batch = await asyncio.to_thread(recorder.select_notifications, start, limit)
    except PersistenceError as exc:
        delay = backoff.next()
        log.warning("store unavailable; retrying", follower=name, error=str(exc), delay=delay)
        await asyncio.sleep(delay)
        return []
    backoff.reset()
    if not batch:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_interval)
    return batch
