"""Outbox relay: from an event store's notification log into a JetStream stream, in order, exactly once.

The event store is the system of record; the stream is transport. The relay reads notifications after the
stream's own tail and publishes them pipelined, each with

* ``Nats-Msg-Id`` = the event id (JetStream drops a copy it already holds within its duplicate window),
* ``Reintegration-Position`` = the notification id (where the relay resumes, and what consumers track),
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

import msgspec
import nats.errors
import nats.js.errors
import structlog
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification, Tracking, TrackingRecorder
from nats.js import JetStreamContext, api

from shared.events.subjects import POSITION_HEADER

log = structlog.get_logger("relay")

#: JetStream's error code for a failed ``Nats-Expected-Last-Sequence`` check.
WRONG_LAST_SEQUENCE = 10071


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
        subject_for: Callable[[Any], str],
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
        self.subject_for = subject_for
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.stats = RelayStats()
        self._encoder = msgspec.json.Encoder()

    # --- where are we ---------------------------------------------------------------------------------

    async def stream_tail(self) -> tuple[int, int]:
        """``(last stream sequence, store position of that message)``; ``(0, 0)`` for an empty stream."""
        info = await self.js.stream_info(self.stream)
        last_seq = info.state.last_seq
        if not last_seq or not info.state.messages:
            return last_seq, 0
        msg = await self.js.get_msg(self.stream, seq=last_seq)
        headers = msg.headers or {}
        if POSITION_HEADER not in headers:
            raise RuntimeError(
                f"stream {self.stream}'s last message (seq {last_seq}) has no {POSITION_HEADER} header: "
                "another publisher writes to the relay's stream"
            )
        return last_seq, int(headers[POSITION_HEADER])

    def recorded_position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    # --- running --------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_batch: Callable[[RelayStats], None] | None = None) -> RelayStats:
        """Publish until ``stop`` is set, resuming after the stream's tail."""
        last_seq, position = await self._resync(first=True)
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
                last_seq, position = await self._publish(notifications, last_seq, position)
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
                log.warning("publish failed; resynchronising with the stream", error=repr(exc))
                await asyncio.sleep(min(self.poll_interval * 10, 1.0))
                try:
                    last_seq, position = await self._resync()
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc2:
                    log.warning("stream not reachable", error=repr(exc2))
                    continue
            if on_batch:
                on_batch(self.stats)
        return self.stats

    async def _resync(self, first: bool = False) -> tuple[int, int]:
        last_seq, position = await self.stream_tail()
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
        log.info("relay resumes", stream=self.stream, after_position=position, last_seq=last_seq)
        return last_seq, position

    async def _publish(
        self, notifications: Sequence[Notification], last_seq: int, position: int
    ) -> tuple[int, int]:
        futures = []
        for offset, notification in enumerate(notifications):
            event = self.mapper.to_domain_event(notification)
            headers = {
                api.Header.MSG_ID: str(event.event_id),
                POSITION_HEADER: str(notification.id),
                api.Header.EXPECTED_LAST_SEQUENCE: str(last_seq + offset),
            }
            futures.append(
                await self.js.publish_async(self.subject_for(event), self._encoder.encode(event), headers=headers)
            )
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), timeout=self.ack_timeout
        )
        stored = 0
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = result
                break
            stored += 1
        if stored:
            last_seq += stored
            position = notifications[stored - 1].id
            self.stats.published += stored
            self.stats.batches += 1
            self.stats.position = position
            await asyncio.to_thread(self.tracking.insert_tracking, Tracking(self.name, position))
        if failure is not None:
            raise failure
        return last_seq, position

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
                event = self.mapper.to_domain_event(notification)
                await self.js.publish(
                    self.subject_for(event),
                    self._encoder.encode(event),
                    headers={api.Header.MSG_ID: str(event.event_id), POSITION_HEADER: str(notification.id)},
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


