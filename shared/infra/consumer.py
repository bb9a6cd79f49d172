"""A durable JetStream consumer of the TRAJECTORY stream that keeps each case's order and never loses a message.

Consumption: our own pull loop on nats-py (``fetch`` one batch, handle it, fetch the next). The batch's events are
applied together, in stream order (each case's by version), in one transaction per store
(:meth:`shared.infra.derived.DerivedApplication.apply_batch`); then each message is answered by hand. FastStream's
pull subscribers are not used to consume: FastStream 0.7's batch pull loop catches ``nats.errors.TimeoutError``
only, while nats-py's ``fetch`` also raises a bare ``asyncio.TimeoutError`` (when its deadline runs out after the
no-wait probe). That exception killed FastStream's task while it held messages fetched earlier in the same batch
window; FastStream restarted the task, and those messages came back only after ``ack_wait`` with one delivery more,
unseen by the handler (a poison message was then dead-lettered with 6 deliveries). Here one ``fetch`` is one batch,
every message it returns is answered (ack, nak or term), and every timeout (``TimeoutError`` in Python 3.11: the
asyncio and nats-py kinds alike) just starts the next fetch. :meth:`TrajectoryConsumer.attach` still registers the
consumer on a FastStream router, without a handler, so that the AsyncAPI document describes it; FastStream never
subscribes a subscriber that has no handler.

Per message:

* applied or already applied (a redelivery): ``ack``;
* a gap (an earlier event of the case is still to come): ``nak`` with a delay; every later message of that case in
  the batch is a gap too, so the case waits for its missing event;
* a parked case (an earlier event was dead-lettered): dead-lettered behind it, in order, and acknowledged;
* the store briefly unavailable: kept in progress (``in_progress`` extends the ack wait) and retried here with a
  backoff, so an outage does not count against the message's delivery budget;
* anything else (undecodable, a bug, an event the rules cannot fold): a poison message. It is ``nak``-ed until it
  has been delivered ``max_deliver`` times, then copied to the dead-letter stream with the error and terminated,
  and its case is parked; the service goes on with the next message.

While a batch is in hand (a slow store, a loaded machine), ``in_progress`` goes out for its messages every third
of ``ack_wait``, so the server does not redeliver what is still in hand: a delivery is only ever counted for a
message the handler then answers.

Replicas: each replica of a service has its own durable consumer filtered on its partitions of the stream
(``filter_subjects``, :func:`shared.events.subjects.partition_filters`; named ``<service>-p<i>of<k>``), so every
case is consumed by exactly one replica, in order, and the replicas share one store. Their dead letters all go to
``reintegration.dead.<service>``.

The server's own ``max_deliver`` is a safety net far above ours (gaps are redelivered until their missing event
arrives); the poison budget is counted here from each message's delivery count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from uuid import UUID

import nats.errors
import nats.js.errors
import structlog
from eventsourcing.persistence import PersistenceError
from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.events.dead_letters import DeadLetterRecord
from shared.events.envelope import CaseEvent, decode_case_event
from shared.events.subjects import (
    DEAD_LETTER_PREFIX,
    POSITION_HEADER,
    TRAJECTORY_STREAM,
    TRAJECTORY_SUBJECTS,
    trajectory_case,
)

from . import tracing
from .clock import Clock, system_clock
from .derived import Outcome
from .retry import Backoff
from .streams import ensure_dead_letter_stream, ensure_trajectory_stream
from .telemetry import EVENTS_APPLIED

log = structlog.get_logger("consumer")

#: Applies a batch of Case events (positions and events) at a time: per event its outcome or its step's error.
ApplyBatch = Callable[[list[tuple[int, CaseEvent]], datetime], list[Outcome | Exception]]
#: One fetched message: the message, its Case event (None: undecodable), its store position, the decoding error.
_Item = tuple[Msg, CaseEvent | None, int, BaseException | None]
Park = Callable[[UUID, int, str, datetime], None]


#: The server's own redelivery limit: a safety net only (gaps are redelivered until their missing event arrives).
SERVER_MAX_DELIVER = 1000


class TrajectoryConsumer:
    def __init__(
        self,
        *,
        name: str,
        apply: ApplyBatch,
        park: Park,
        executor: Executor,
        max_deliver: int = 5,
        gap_delay: float = 0.5,
        poison_delay: float = 1.0,
        ack_wait: float = 5.0,
        batch_size: int = 200,
        fetch_timeout: float = 0.1,
        probe_wait: float = 0.005,
        inbox_prefix: bytes = b"_INBOX.",
        filter_subjects: list[str] | None = None,
        service: str | None = None,
        replicas: int | None = None,
        cipher: object | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.name = name
        #: The time each applied event and each parking records.
        self.clock = clock
        #: The TRAJECTORY subjects this consumer takes (a replica's partitions); ``None``: all of them.
        self.filter_subjects = list(filter_subjects) if filter_subjects else None
        #: The service it works for: its dead letters go to ``reintegration.dead.<service>``.
        self.service = service or name
        #: Replicas of the streams it creates (an existing stream keeps its own).
        self.replicas = replicas
        #: Opens payloads the relay encrypted with the stores' cipher (``decode_case_event``).
        self.cipher = cipher
        self.apply = apply
        self.park = park
        self.executor = executor
        self.max_deliver = max_deliver
        self.gap_delay = gap_delay
        self.poison_delay = poison_delay
        self.ack_wait = ack_wait
        self.batch_size = batch_size
        #: How long a batch's first message is waited for (:meth:`_fetch`): a pull request per period when the
        #: stream is idle, and how long a stop may wait for the fetch in hand.
        self.fetch_timeout = fetch_timeout
        #: How long the second request of a batch (:meth:`_fetch`) waits when nothing more is there.
        self.probe_wait = probe_wait
        self.inbox_prefix = inbox_prefix
        self.js: JetStreamContext | None = None
        self.task: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()
        self.counts: dict[str, int] = {
            "delivered": 0, "applied": 0, "duplicate": 0, "gap": 0, "parked": 0, "poison": 0, "dead_lettered": 0,
            "kept_in_progress": 0, "batches": 0, "largest_batch": 0,
        }

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=JsAckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=SERVER_MAX_DELIVER,
            max_ack_pending=10_000,
            filter_subjects=self.filter_subjects if self._partitioned else None,
        )

    @property
    def _partitioned(self) -> bool:
        return self.filter_subjects is not None and self.filter_subjects != [TRAJECTORY_SUBJECTS]

    def attach(self, router: NatsRouter, *, batch_size: int | None = None, inbox_prefix: bytes | None = None) -> None:
        """Describe the durable pull consumer ``<name>`` on ``router`` (for the AsyncAPI document) and take its
        pull settings. The router's broker does not consume with it (no handler); :meth:`start` does."""
        if batch_size is not None:
            self.batch_size = batch_size
        if inbox_prefix is not None:
            self.inbox_prefix = inbox_prefix
        router.subscriber(
            TRAJECTORY_SUBJECTS,
            stream=JStream(TRAJECTORY_STREAM, declare=False),
            durable=self.name,
            pull_sub=PullSub(batch_size=self.batch_size, timeout=self.fetch_timeout, batch=True),
            inbox_prefix=self.inbox_prefix,
            ack_policy=AckPolicy.MANUAL,
            config=self.consumer_config(),
            title=f"{self.name}: trajectory events",
            description=(
                f"Durable pull consumer `{self.name}` of the TRAJECTORY stream: each case's events applied once, "
                f"in order; poison messages dead-lettered on `{DEAD_LETTER_PREFIX}.{self.service}` after "
                f"{self.max_deliver} deliveries."
            ),
        )

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self, js: JetStreamContext) -> None:
        """Prepare the streams, create (or bind to) the durable consumer and start pulling."""
        self.js = js
        await ensure_trajectory_stream(js, replicas=self.replicas)
        await ensure_dead_letter_stream(js, replicas=self.replicas)
        self._stopping = asyncio.Event()
        backoff = Backoff(first=0.2, cap=5.0)
        for _attempt in range(12):  # a cluster electing leaders after a node loss answers late for a while
            try:
                self._subscription = await self._subscribe()
                break
            except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError, TimeoutError) as exc:
                delay = backoff.next()
                log.warning("consumer not ready; retrying", consumer=self.name, error=repr(exc), delay=delay)
                await asyncio.sleep(delay)
        else:
            self._subscription = await self._subscribe()
        self.task = asyncio.create_task(self._pull(), name=f"consumer:{self.name}")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop after the batch in hand is answered (within ``timeout``, default ``ack_wait``), then unsubscribe."""
        self._stopping.set()
        if self.task is not None and not self.task.done():
            done, _ = await asyncio.wait([self.task], timeout=self.ack_wait if timeout is None else timeout)
            if not done:
                log.warning("consumer did not stop in time; cancelling it", consumer=self.name)
                self.task.cancel()
                await asyncio.gather(self.task, return_exceptions=True)
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # noqa: BLE001 - a closed connection has no subscription left to end
                log.debug("unsubscribe failed", consumer=self.name, error=repr(exc))
            self._subscription = None

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        assert self.js is not None
        await self._update_config()
        return await self.js.pull_subscribe(
            TRAJECTORY_SUBJECTS, durable=self.name, stream=TRAJECTORY_STREAM, config=self.consumer_config(),
            inbox_prefix=self.inbox_prefix,
        )

    async def _update_config(self) -> None:
        """A durable consumer made by an earlier release keeps its settings when a service binds to it: bring its
        ack wait (how soon a crashed replica's batch is delivered again) and filter to this service's."""
        assert self.js is not None
        try:
            info = await self.js.consumer_info(TRAJECTORY_STREAM, self.name)
        except nats.js.errors.NotFoundError:
            return  # pull_subscribe creates it with this configuration
        wanted = self.consumer_config()
        if info.config.ack_wait == wanted.ack_wait and (info.config.filter_subjects or None) == (
                wanted.filter_subjects or None):
            return
        try:
            await self.js.add_consumer(TRAJECTORY_STREAM, config=wanted)
            log.info("durable consumer updated", consumer=self.name, ack_wait=wanted.ack_wait)
        except nats.js.errors.Error as exc:  # keep the old settings rather than not consuming at all
            log.warning("durable consumer not updated; keeping its settings", consumer=self.name, error=str(exc))

    async def _pull(self) -> None:
        """Fetch a batch, answer every message of it, repeat until stopped. Ends with an error only when the
        connection is closed under it (the process is going down)."""
        backoff = Backoff(first=0.1, cap=5.0)
        while not self._stopping.is_set():
            assert self._subscription is not None
            try:
                messages = await self._fetch(self._subscription)
            except TimeoutError:  # asyncio's, nats-py's and FetchTimeoutError: nothing arrived in time
                continue
            except nats.errors.ConnectionClosedError:
                if self._stopping.is_set():
                    return
                raise
            except nats.js.errors.NotFoundError as exc:  # the durable consumer was deleted: create it again
                log.warning("durable consumer missing; creating it again", consumer=self.name, error=str(exc))
                await asyncio.sleep(backoff.next())
                with contextlib.suppress(nats.errors.Error):
                    self._subscription = await self._subscribe()
                continue
            except nats.errors.Error as exc:  # the server briefly unavailable, a leader change, a reconnect
                delay = backoff.next()
                log.warning("fetch failed; retrying", consumer=self.name, error=repr(exc), delay=delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            self.counts["delivered"] += len(messages)
            self.counts["batches"] += 1
            self.counts["largest_batch"] = max(self.counts["largest_batch"], len(messages))
            await self.handle_batch(messages)

    async def _fetch(self, subscription: JetStreamContext.PullSubscription) -> list[Msg]:
        """One batch: the first message, waited for up to :attr:`fetch_timeout`, and whatever else the stream holds
        for this consumer at that moment (waited for :attr:`probe_wait` at most). nats-py's ``fetch`` of a whole
        batch, once its first message has arrived, waits for the rest until its timeout: a lone event below
        saturation then waited the whole timeout. At saturation the second request returns a full batch at once.
        A second request that fails leaves the batch at its first message (every message fetched is answered)."""
        first = await subscription.fetch(1, timeout=self.fetch_timeout)
        if self.batch_size <= 1:
            return first
        try:
            more = await subscription.fetch(self.batch_size - len(first), timeout=self.probe_wait)
        except (TimeoutError, nats.errors.Error):  # nothing more now (or the probe failed): the batch is what came
            more = []
        return first + more

    # --- one batch --------------------------------------------------------------------------------------------------

    async def handle_batch(self, messages: list[Msg]) -> None:
        """Handle a batch in stream order, except that each case's events go by version: an event that overtook
        its predecessor within the batch then waits for nothing. Its events are applied together (one transaction
        per store, :meth:`DerivedApplication.apply_batch`), then every message is answered."""
        decoded = [self._decode(raw) for raw in messages]
        first_seen: dict[object, int] = {}
        keys = []
        for index, (_raw, event, _position, _error) in enumerate(decoded):
            if event is None:
                keys.append((index, 0))
                continue
            group = first_seen.setdefault(event.case_id, index)
            keys.append((group, event.version))
        ordered = [item for _key, item in sorted(zip(keys, decoded, strict=True), key=lambda pair: pair[0])]
        await self.handle_items(ordered)

    async def handle_items(self, items: list[_Item]) -> None:
        """Apply the decodable ones of ``items`` (in this order) together, then answer each."""
        events = [item for item in items if item[1] is not None]
        started = time.time_ns()
        applied = await self._apply(events) if events else []
        if tracing.enabled:
            self._trace(events, applied, started)
        outcomes = iter(applied)
        for raw, event, _position, error in items:
            try:
                if event is None:
                    await self.poison(raw, error or ValueError("undecodable"), None)
                else:
                    await self.answer(raw, event, next(outcomes))
            except Exception as exc:
                log.exception("message handling failed; handing it back", consumer=self.name, error=repr(exc))
                with contextlib.suppress(Exception):
                    await raw.nak(delay=self.poison_delay)

    def _trace(self, items: list[_Item], outcomes: list[Outcome | Exception], started: int) -> None:
        """One span per event applied, under the relay's span its message names (:mod:`shared.infra.tracing`)."""
        for (raw, event, position, _error), outcome in zip(items, outcomes, strict=False):
            parent = tracing.parse_traceparent(raw.headers)
            if parent is None or event is None:
                continue
            result = outcome.value if isinstance(outcome, Outcome) else "failed"
            with tracing.span(f"{self.service} apply", trace=parent[0], parent=parent[1], start_time=started,
                              span_id=tracing.span_id(self.service, event.event_id),
                              attributes={"reintegration.consumer": self.name, "reintegration.outcome": result,
                                          "reintegration.position": position,
                                          "reintegration.event_id": str(event.event_id)}):
                pass

    async def handle(self, raw: Msg, event: CaseEvent | None, position: int, error: BaseException | None) -> None:
        """Apply one message and answer it."""
        await self.handle_items([(raw, event, position, error)])

    async def _keep(self, items: list[_Item]) -> None:
        for raw, *_rest in items:
            with contextlib.suppress(Exception):
                await raw.in_progress()
        self.counts["kept_in_progress"] += len(items)

    async def _keep_alive(self, items: list[_Item]) -> None:
        """While the batch is in hand, every third of the ack wait: its messages stay ours."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            await self._keep(items)

    def _decode(self, raw: Msg) -> _Item:
        try:
            headers = raw.headers or {}
            return raw, decode_case_event(raw.data, headers, self.cipher), int(headers[POSITION_HEADER]), None
        except Exception as exc:  # noqa: BLE001 - anything undecodable is poison
            return raw, None, 0, exc

    async def answer(self, raw: Msg, event: CaseEvent, outcome: Outcome | Exception) -> None:
        """Answer one applied message: ack, a delayed nak for a gap, a dead letter behind its parked case, or the
        poison path for an event whose step failed."""
        if isinstance(outcome, Exception):
            await self.poison(raw, outcome, event)
            return
        self.counts[outcome.value] += 1
        EVENTS_APPLIED.labels(self.service, outcome.value).inc()
        if outcome is Outcome.GAP:
            await raw.nak(delay=self.gap_delay)
        elif outcome is Outcome.PARKED:
            await self.dead_letter(raw, None, event)  # behind its case's first dead letter
        else:
            await raw.ack()

    async def _apply(self, items: list[_Item]) -> list[Outcome | Exception]:
        """Apply the events of ``items`` in one call to the store's thread. A store briefly unavailable is waited
        for, the batch kept in progress meanwhile (an outage costs no delivery); a batch that fails as a whole
        for another reason is applied one event at a time, so that only the events that fail are poison."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(first=0.1, cap=self.ack_wait / 3)
        chunk = [(position, event) for _raw, event, position, _error in items if event is not None]
        keeper = asyncio.create_task(self._keep_alive(items))
        try:
            while True:
                try:
                    return await loop.run_in_executor(self.executor, self.apply, chunk, self.clock())
                except PersistenceError as exc:
                    delay = backoff.next()
                    log.warning("store unavailable; retrying", consumer=self.name, error=str(exc), delay=delay)
                    await asyncio.sleep(delay)
                except Exception as exc:  # noqa: BLE001 - find the events that fail, one at a time
                    if len(chunk) == 1:
                        return [exc]
                    log.warning("batch failed; applying it one event at a time", consumer=self.name,
                                error=repr(exc))
                    return [outcome for item in items for outcome in await self._apply([item])]
        finally:
            keeper.cancel()

    async def poison(self, raw: Msg, exc: BaseException, event: CaseEvent | None) -> None:
        self.counts["poison"] += 1
        delivered = raw.metadata.num_delivered if raw.metadata else self.max_deliver
        log.warning("poison message", consumer=self.name, subject=raw.subject, delivered=delivered, error=repr(exc),
                    **tracing.step_fields(event))
        if delivered < self.max_deliver:
            await raw.nak(delay=self.poison_delay)
            return
        case_id = event.case_id if event is not None else trajectory_case(raw.subject)
        if case_id is not None:  # the case waits behind its dead letter rather than skipping it
            loop = asyncio.get_running_loop()
            version = event.version if event is not None else 0
            try:
                await loop.run_in_executor(self.executor, self.park, case_id, version, repr(exc), self.clock())
            except Exception:
                log.exception("could not park the case of a dead-lettered message", consumer=self.name,
                              case_id=str(case_id))
        await self.dead_letter(raw, repr(exc), event)

    async def dead_letter(self, raw: Msg, error: str | None, event: CaseEvent | None = None) -> None:
        """Copy ``raw`` to ``reintegration.dead.<service>`` with why (``error``; ``None``: its case is parked behind
        an earlier dead letter), how often it was delivered and whose it is, then terminate it (the server stops
        redelivering it)."""
        assert self.js is not None, "start() sets the JetStream context"
        case_id = event.case_id if event is not None else trajectory_case(raw.subject)
        record = DeadLetterRecord(
            original_subject=raw.subject,
            error=error or "",
            deliveries=raw.metadata.num_delivered if raw.metadata else 0,
            stream_sequence=raw.metadata.sequence.stream if raw.metadata else None,
            case_id=str(case_id) if case_id is not None else None,
            case_version=event.version if event is not None else None,
            # The letter's own id: resolutions are recorded by it (see shared.events.dead_letters).
            letter_id=str(uuid.uuid4()),
        )
        headers = {**(raw.headers or {}), **(record if error is not None else record.parked_behind()).to_headers()}
        headers.pop("Nats-Msg-Id", None)
        headers.pop("Nats-Expected-Last-Sequence", None)
        await self.js.publish(f"{DEAD_LETTER_PREFIX}.{self.service}", raw.data, headers=headers)
        await raw.term()
        self.counts["dead_lettered"] += 1
        EVENTS_APPLIED.labels(self.service, "dead_lettered").inc()
