"""The deadlines service's edges: the read-only query and the durable consumer of fired timers.

Each decodes what arrives, calls the application and answers: the query with the case's schedule (or an error),
a fired timer with an acknowledgement once its outcome is decided, or a delayed redelivery while the schedule has
not applied every report of the case yet. The TRAJECTORY consumer is the one every derived service shares
(:mod:`shared.infra.consumer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import Executor
from typing import Any
from uuid import UUID

import msgspec
import nats.js.errors
import structlog
from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from shared.events.envelope import decode_case_event
from shared.events.queries import Query
from shared.events.subjects import TIMER_FIRED_PREFIX, TIMERS_STREAM, TRAJECTORY_PREFIX, TRAJECTORY_STREAM
from shared.infra.clock import Clock, system_clock
from shared.infra.retry import backoff_delay

from .application import DeadlinesApplication, TimerOutcome
from .timers import Timer
from .views import schedule_view

log = structlog.get_logger("deadlines.timers")


def answer(app: DeadlinesApplication, query: Query) -> dict[str, Any]:
    """The query subject's answer: the case's schedule (as it was at ``query.version``), or why there is none."""
    schedule = app.schedule(query.case_id, query.version)
    if schedule is None:
        return {"case_id": str(query.case_id), "error": "no deadlines for this case (yet)"}
    return schedule_view(schedule)


class FiredTimers:
    """The durable consumer of fired timers."""

    def __init__(self, app: DeadlinesApplication, executor: Executor, name: str = "deadlines-timers", *,
                 clock: Clock = system_clock) -> None:
        self.app = app
        self.executor = executor
        self.name = name
        self.clock = clock
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
        now = self.clock()
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
            await raw.nak(delay=backoff_delay(delivered, first=0.5, cap=60.0))
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
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js._api_request(
                    f"{self.js._prefix}.STREAM.MSG.DELETE.{TIMERS_STREAM}",
                    msgspec.json.encode(request), timeout=5,
                )

    async def case_version(self, case_id: UUID) -> int:
        """The version of the case's latest event in the TRAJECTORY stream (0 when it holds none)."""
        assert self.js is not None
        try:
            last = await self.js.get_msg(TRAJECTORY_STREAM, subject=f"{TRAJECTORY_PREFIX}.{case_id}.>")
        except nats.js.errors.NotFoundError:
            return 0
        return decode_case_event(last.data or b"", last.headers, self.app.mapper.cipher).version
