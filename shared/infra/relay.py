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
window. Its position is also recorded in the store (eventsourcing tracking) for operators and for the broker-amnesia
case: when the stream is behind the recorded position, the relay says so and re-drives from the stream's tail.
``replay(from_position)`` republishes a range after an incident, relying on the duplicate window and on
consumers' own tracking.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification, Tracking, TrackingRecorder
from nats.js import JetStreamContext, api

from shared.events.subjects import PART_HEADER, POSITION_HEADER

log = structlog.get_logger("relay")

#: JetStream's error code for a failed ``Nats-Expected-Last-Sequence`` check.
WRONG_LAST_SEQUENCE = 10071


@dataclass(frozen=True)
class Outgoing:
    """One message to publish for a recorded event."""

    subject: str
    payload: bytes
    msg_id: str


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
    ) -> None:
        self.name = name
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

    # --- where are we ---------------------------------------------------------------------------------

    async def stream_tail(self) -> tuple[int, int, int]:
        """``(last stream sequence, store position, parts of that position already published)``.

        A position is complete when all its parts are in the stream; ``(0, 0, 0)`` for an empty stream.
        """
        info = await self.js.stream_info(self.stream)
        last_seq = info.state.last_seq
        if not last_seq or not info.state.messages:
            return last_seq, 0, 0
        msg = await self.js.get_msg(self.stream, seq=last_seq)
        headers = msg.headers or {}
        if POSITION_HEADER not in headers:
            raise RuntimeError(
                f"stream {self.stream}'s last message (seq {last_seq}) has no {POSITION_HEADER} header: "
                "another publisher writes to the relay's stream"
            )
        part, _, total = headers.get(PART_HEADER, "0/1").partition("/")
        done = int(part) + 1
        position = int(headers[POSITION_HEADER])
        if done >= int(total):
            return last_seq, position, 0
        return last_seq, position - 1, done  # resume inside this position, after its published parts

    def recorded_position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    # --- running --------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_batch: Callable[[RelayStats], None] | None = None) -> RelayStats:
        """Publish until ``stop`` is set, resuming after the stream's tail."""
        last_seq, position, skip = await self._resync(first=True)
        while not stop.is_set():
            notifications = await asyncio.to_thread(
                self.recorder.select_notifications, position + 1, self.batch_size
            )
            if not notifications:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)
                except TimeoutError:
                    pass
                continue
            try:
                last_seq, position = await self._publish(notifications, last_seq, position, skip)
                skip = 0
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
                log.warning("publish failed; resynchronising with the stream", error=repr(exc))
                await asyncio.sleep(min(self.poll_interval * 10, 1.0))
                try:
                    last_seq, position, skip = await self._resync()
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc2:
                    log.warning("stream not reachable", error=repr(exc2))
                    continue
            if on_batch:
                on_batch(self.stats)
        return self.stats

    async def _resync(self, first: bool = False) -> tuple[int, int, int]:
        last_seq, position, skip = await self.stream_tail()
        recorded = await asyncio.to_thread(self.recorded_position)
        if position < recorded:
            log.warning(
                "stream is behind the recorded relay position (broker lost data?): re-driving from its tail",
                stream=self.stream,
                stream_position=position,
                recorded_position=recorded,
            )
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
        futures = []
        owners: list[tuple[int, bool]] = []  # per message: (notification id, is its last part)
        for index, notification in enumerate(notifications):
            outgoing = self.render(self.mapper.to_domain_event(notification))
            first = skip if index == 0 else 0
            for part in range(first, len(outgoing)):
                message = outgoing[part]
                headers = {
                    api.Header.MSG_ID: message.msg_id,
                    POSITION_HEADER: str(notification.id),
                    PART_HEADER: f"{part}/{len(outgoing)}",
                    api.Header.EXPECTED_LAST_SEQUENCE: str(last_seq + len(futures)),
                }
                futures.append(await self.js.publish_async(message.subject, message.payload, headers=headers))
                owners.append((notification.id, part == len(outgoing) - 1))
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), timeout=self.ack_timeout
        ) if futures else []
        stored = 0
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = result
                break
            stored += 1
        if failure is None:
            complete = notifications[-1].id  # notifications with no message are complete too
        else:
            done = [owner for owner, last in owners[:stored] if last]
            complete = done[-1] if done else position
        last_seq += stored
        if complete > position:
            self.stats.published += stored
            self.stats.batches += 1
            self.stats.position = complete
            await asyncio.to_thread(self.tracking.insert_tracking, Tracking(self.name, complete))
        if failure is not None:
            raise failure
        return last_seq, complete

    async def replay(self, from_position: int, to_position: int | None = None) -> int:
        """Republish notifications ``from_position..to_position`` (inclusive), one by one, without sequence checks.

        For an operator after an incident: messages still in the duplicate window are dropped by JetStream; the
        others are appended, and consumers drop what their tracking already holds.
        """
        count = 0
        start = from_position
        while True:
            batch = await asyncio.to_thread(
                self.recorder.select_notifications, start, self.batch_size, to_position
            )
            if not batch:
                return count
            for notification in batch:
                outgoing = self.render(self.mapper.to_domain_event(notification))
                for part, message in enumerate(outgoing):
                    await self.js.publish(
                        message.subject,
                        message.payload,
                        headers={
                            api.Header.MSG_ID: message.msg_id,
                            POSITION_HEADER: str(notification.id),
                            PART_HEADER: f"{part}/{len(outgoing)}",
                        },
                    )
                    count += 1
            start = batch[-1].id + 1


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    replicas: int = 1,
    duplicate_window: float = 120.0,
    max_bytes: int = -1,
) -> api.StreamInfo:
    """Create or update a stream for events: file storage, keep everything, refuse new messages when full."""
    config = api.StreamConfig(
        name=name,
        subjects=subjects,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.NEW,
        max_bytes=max_bytes,
        num_replicas=replicas,
        duplicate_window=duplicate_window,
        allow_direct=True,
    )
    try:
        return await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        return await js.update_stream(config)


