"""The deadlines service's edges: the read-only query and the durable consumer of fired timers.

Each decodes what arrives, calls the application and answers: the query with the case's schedule (or an error),
a fired timer with an acknowledgement once its outcome is decided, or a delayed redelivery while the schedule has
not applied every report of the case yet. The TRAJECTORY consumer is the one every derived service shares
(:mod:`shared.infra.consumer`).
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Executor
from typing import Any
from uuid import UUID

import msgspec
import nats.js.errors
import structlog
from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from shared.events.envelope import decode_case_event
from shared.events.queries import Query
from shared.events.subjects import TIMER_FIRED_PREFIX, TIMERS_STREAM, TRAJECTORY_PREFIX, TRAJECTORY_STREAM
from shared.infra.clock import Clock, system_clock
from shared.infra.retry import Backoff, backoff_delay

from .application import DeadlinesApplication, FiredTimer, TimerOutcome
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
    """The durable consumer of fired timers: our own pull loop (as :mod:`shared.infra.consumer` explains, one
    ``fetch`` is one batch, every message of it is answered). A batch's outcomes are recorded in one transaction
    (:meth:`DeadlinesApplication.timers_fired`), the cases' versions asked of TRAJECTORY and the handled timers
    deleted all at once."""

    def __init__(self, app: DeadlinesApplication, executor: Executor, name: str = "deadlines-timers", *,
                 clock: Clock = system_clock, batch_size: int = 200, fetch_timeout: float = 1.0) -> None:
        self.app = app
        self.executor = executor
        self.name = name
        self.clock = clock
        self.batch_size = batch_size
        self.fetch_timeout = fetch_timeout
        self.inbox_prefix = b"_INBOX."
        self.js: JetStreamContext | None = None
        self.counts = {outcome.value: 0 for outcome in TimerOutcome}
        self._decoder = msgspec.json.Decoder(Timer)

    def config(self) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            durable_name=self.name,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30,
            # Unlimited: a timer waits (with a growing delay) for its case's reports to be applied, and must
            # never be dropped by a delivery limit.
            max_deliver=-1,
            filter_subject=f"{TIMER_FIRED_PREFIX}.>",
        )

    def attach(self, router: NatsRouter, *, inbox_prefix: bytes = b"_INBOX.") -> None:
        """Describe the durable consumer on ``router`` (for the AsyncAPI document); :meth:`run` consumes."""
        self.inbox_prefix = inbox_prefix
        router.subscriber(
            f"{TIMER_FIRED_PREFIX}.>",
            stream=JStream(TIMERS_STREAM, declare=False),
            durable=self.name,
            pull_sub=PullSub(batch_size=self.batch_size, timeout=self.fetch_timeout, batch=True),
            inbox_prefix=inbox_prefix,
            ack_policy=AckPolicy.MANUAL,
            config=self.config(),
            title="deadlines: fired timers",
            description="Durable consumer of fired deadline timers: records each deadline's outcome once.",
        )

    async def run(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        """Fetch a batch of fired timers, handle it, repeat until ``stop``."""
        self.js = js
        subscription = await self._subscribe()
        backoff = Backoff(first=0.1, cap=5.0)
        try:
            while not stop.is_set():
                try:
                    messages = await subscription.fetch(self.batch_size, timeout=self.fetch_timeout)
                except TimeoutError:  # nothing fired meanwhile
                    continue
                except nats.errors.ConnectionClosedError:
                    if stop.is_set():
                        return
                    raise
                except nats.js.errors.NotFoundError as exc:  # the durable consumer was deleted: create it again
                    log.warning("fired-timer consumer missing; creating it again", error=str(exc))
                    await asyncio.sleep(backoff.next())
                    with contextlib.suppress(nats.errors.Error):
                        subscription = await self._subscribe()
                    continue
                except nats.errors.Error as exc:  # a reconnect, a leader change: the consumer is still there
                    await asyncio.sleep(backoff.next())
                    log.warning("fetch of fired timers failed; retrying", error=repr(exc))
                    continue
                backoff.reset()
                try:
                    await self.handle_batch(messages)
                except Exception:  # a bug must not end the loop: the batch comes back later
                    log.exception("fired timers not handled; handing them back", timers=len(messages))
                    for raw in messages:
                        with contextlib.suppress(Exception):
                            await raw.nak(delay=1.0)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        assert self.js is not None
        return await self.js.pull_subscribe(f"{TIMER_FIRED_PREFIX}.>", durable=self.name, stream=TIMERS_STREAM,
                                            config=self.config(), inbox_prefix=self.inbox_prefix)

    async def handle_batch(self, messages: list[Msg]) -> None:
        timers: list[tuple[Msg, Timer]] = []
        for raw in messages:
            try:
                timers.append((raw, self._decoder.decode(raw.data)))
            except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
                log.error("undecodable timer dropped", subject=raw.subject, error=str(exc))
                await raw.term()
                await self._delete(raw)
        if not timers:
            return
        cases = list(dict.fromkeys(timer.case_id for _raw, timer in timers))
        versions = await asyncio.gather(*(self.case_version(case) for case in cases), return_exceptions=True)
        known: dict[UUID, int] = {}
        for case, version in zip(cases, versions, strict=True):
            if isinstance(version, BaseException):
                # The case's last TRAJECTORY message cannot be read (a poison message, dead-lettered): whether the
                # schedule has applied every report is unknown, so its timers wait, asked again with a backoff.
                log.warning("case version unreadable; its timers wait", case_id=str(case), error=repr(version))
            else:
                known[case] = version
        waiting = [(raw, timer) for raw, timer in timers if timer.case_id not in known]
        for raw, _timer in waiting:
            delivered = raw.metadata.num_delivered if raw.metadata else 1
            await raw.nak(delay=backoff_delay(delivered, first=0.5, cap=60.0))
        timers = [(raw, timer) for raw, timer in timers if timer.case_id in known]
        if not timers:
            return
        now = self.clock()
        fired = [
            # The server's timestamp of the fired message is when the timer fired, whatever this service's clock
            # says and however late (down, behind) the service handles it.
            FiredTimer(timer.case_id, timer.deadline_id, timer.due_on,
                       raw.metadata.timestamp if raw.metadata is not None else now, timer.fires_at,
                       known[timer.case_id], raw.metadata.sequence.stream if raw.metadata is not None else None)
            for raw, timer in timers
        ]
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(self.executor, self.app.timers_fired, fired, now)
        except Exception:
            log.exception("fired timers not recorded; handing them back", timers=len(fired))
            for raw, _timer in timers:
                with contextlib.suppress(Exception):
                    await raw.nak(delay=1.0)
            return
        handled = []
        for (raw, _timer), outcome in zip(timers, outcomes, strict=True):
            self.counts[outcome.value] += 1
            if outcome is TimerOutcome.BEHIND:
                delivered = raw.metadata.num_delivered if raw.metadata else 1
                await raw.nak(delay=backoff_delay(delivered, first=0.5, cap=60.0))
                continue
            await raw.ack()
            handled.append(raw)
        await asyncio.gather(*(self._delete(raw) for raw in handled))

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
