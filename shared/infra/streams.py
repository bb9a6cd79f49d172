"""Every JetStream stream of the project, and the one way each is created or updated.

The names and subjects are spelled in :mod:`shared.events.subjects`; what each stream keeps and how is here:

* the event streams, :data:`TRAJECTORY` (with the subject transform that adds each case's partition),
  :data:`DEADLINES`, :data:`BENEFITS` and :data:`DEAD_LETTERS`: file storage, every message kept (limits
  retention, no limit by default), new messages refused when full, a two-minute duplicate window (the relays'
  ``Nats-Msg-Id``), direct gets allowed (:func:`event_stream_config`);
* :data:`TIMERS`: file storage, limits retention, message schedules allowed (a stream that allows schedules also
  allows rollups and purges, which an event stream must never allow; :func:`timer_stream_config`).

Replicas rule, for every stream: ``replicas`` sets the count of a new stream (1 by default); an existing stream
keeps its count, or grows to a larger ``replicas``, and is never shrunk here (a service started with the default
must not shrink an R3 stream: an operator does that). A stream that already has the wanted configuration is left
alone. A cluster electing leaders after losing a node is waited for (:func:`add_or_update_stream`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext, api

from shared.events.subjects import (
    BENEFITS_STREAM,
    BENEFITS_SUBJECTS,
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    DEADLINES_STREAM,
    DEADLINES_SUBJECTS,
    TIMER_FIRED_PREFIX,
    TIMER_SCHEDULE_PREFIX,
    TIMERS_STREAM,
    TRAJECTORY_STREAM,
    TRAJECTORY_SUBJECTS,
    TRAJECTORY_TRANSFORM,
)

from .retry import Backoff

log = structlog.get_logger("streams")

#: Seconds within which an event stream drops a message whose ``Nats-Msg-Id`` it already holds.
DUPLICATE_WINDOW = 120.0
#: The TIMERS stream's subjects: the schedules, and the timers they fire.
TIMER_SUBJECTS = [f"{TIMER_SCHEDULE_PREFIX}.>", f"{TIMER_FIRED_PREFIX}.>"]


def event_stream_config(
    name: str,
    subjects: list[str],
    *,
    replicas: int | None = None,
    duplicate_window: float = DUPLICATE_WINDOW,
    max_bytes: int = -1,
    subject_transform: api.SubjectTransform | None = None,
) -> api.StreamConfig:
    """An event stream: file storage, keep everything, refuse new messages when full."""
    return api.StreamConfig(
        name=name,
        subjects=subjects,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.NEW,
        max_bytes=max_bytes,
        num_replicas=replicas or 1,
        duplicate_window=duplicate_window,
        allow_direct=True,
        subject_transform=subject_transform,
    )


def timer_stream_config(replicas: int | None = None) -> api.StreamConfig:
    """The TIMERS stream: file storage, limits retention, message schedules allowed."""
    return api.StreamConfig(
        name=TIMERS_STREAM,
        subjects=list(TIMER_SUBJECTS),
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        num_replicas=replicas or 1,
        allow_msg_schedules=True,
    )


@dataclass(frozen=True)
class EventStream:
    """One event stream of the project: its name, its subjects and (TRAJECTORY only) its subject transform."""

    name: str
    subjects: tuple[str, ...]
    subject_transform: api.SubjectTransform | None = None

    def config(self, replicas: int | None = None) -> api.StreamConfig:
        return event_stream_config(self.name, list(self.subjects), replicas=replicas,
                                   subject_transform=self.subject_transform)

    async def ensure(self, js: JetStreamContext, *, replicas: int | None = None) -> api.StreamInfo:
        """Create the stream, or update it to this configuration (see the replicas rule above)."""
        return await add_or_update_stream(js, self.config(replicas), replicas)


TRAJECTORY = EventStream(TRAJECTORY_STREAM, (TRAJECTORY_SUBJECTS,), TRAJECTORY_TRANSFORM)
DEADLINES = EventStream(DEADLINES_STREAM, tuple(DEADLINES_SUBJECTS))
BENEFITS = EventStream(BENEFITS_STREAM, tuple(BENEFITS_SUBJECTS))
DEAD_LETTERS = EventStream(DEAD_LETTER_STREAM, (f"{DEAD_LETTER_PREFIX}.>",))


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    replicas: int | None = None,
    duplicate_window: float = DUPLICATE_WINDOW,
    max_bytes: int = -1,
    subject_transform: api.SubjectTransform | None = None,
) -> api.StreamInfo:
    """Create or update an event stream named ``name`` (:func:`event_stream_config`; the replicas rule above)."""
    config = event_stream_config(name, subjects, replicas=replicas, duplicate_window=duplicate_window,
                                 max_bytes=max_bytes, subject_transform=subject_transform)
    return await add_or_update_stream(js, config, replicas)


async def ensure_trajectory_stream(js: JetStreamContext, *, replicas: int | None = None) -> api.StreamInfo:
    """The TRAJECTORY stream, with the subject transform that adds each case's partition: every creator of the
    stream goes through here, so that it is always created the same way."""
    return await TRAJECTORY.ensure(js, replicas=replicas)


async def ensure_dead_letter_stream(js: JetStreamContext, *, replicas: int | None = None) -> api.StreamInfo:
    """The DEAD_LETTERS stream, where consumers put the messages they cannot apply."""
    return await DEAD_LETTERS.ensure(js, replicas=replicas)


async def ensure_timer_stream(js: JetStreamContext, replicas: int | None = None) -> None:
    """The TIMERS stream; ``replicas`` for a new one (an existing stream keeps its count, or grows to it)."""
    await add_or_update_stream(js, timer_stream_config(replicas), replicas)


#: What a cluster answers for a while when it lost a node (a leader election, a connection failing over).
SETUP_TRANSIENT = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
                   nats.js.errors.ServiceUnavailableError, nats.js.errors.ServerError, TimeoutError)


async def add_or_update_stream(js: JetStreamContext, config: api.StreamConfig, replicas: int | None,
                               *, patience: float = 60.0) -> api.StreamInfo:
    """Add ``config``'s stream, or update the existing one to it, keeping (or growing to ``replicas``) its replica
    count. Streams are never shrunk here: an operator does that. An existing stream that already has the
    configuration is left alone (no update). A cluster that lost a node answers late or not at all during its
    leader elections: retried with a backoff for ``patience`` seconds, then the error is raised (the service
    restarts)."""
    deadline = time.monotonic() + patience
    backoff = Backoff(first=0.2, cap=5.0)
    while True:
        try:
            return await _add_or_update(js, config, replicas)
        except SETUP_TRANSIENT as exc:
            delay = backoff.next()
            if time.monotonic() + delay > deadline:
                raise
            log.warning("stream not ready; retrying", stream=config.name, error=repr(exc), delay=delay)
            await asyncio.sleep(delay)


async def _add_or_update(js: JetStreamContext, config: api.StreamConfig, replicas: int | None) -> api.StreamInfo:
    if config.name is None:
        raise ValueError("a stream configuration needs a name")
    try:
        existing = await js.stream_info(config.name)
    except nats.js.errors.NotFoundError:
        existing = None
    if existing is None:
        try:
            return await js.add_stream(config)
        except nats.js.errors.BadRequestError:  # created meanwhile by another process: update it below
            existing = await js.stream_info(config.name)
    current = existing.config.num_replicas or 1
    config.num_replicas = max(current, replicas or 0)
    if _same(existing.config, config):
        return existing
    return await js.update_stream(config)


def _same(current: api.StreamConfig, wanted: api.StreamConfig) -> bool:
    """Whether every field ``wanted`` sets is already so (the server fills in the rest)."""
    have = current.as_dict()
    given = {f.name for f in dataclasses.fields(wanted) if getattr(wanted, f.name) not in (None, f.default)}
    return all(have.get(key) == value for key, value in wanted.as_dict().items() if key in given)
