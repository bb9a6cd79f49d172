"""The trajectory consumer over a real nats-server: order per case, redeliveries, gaps, poison, dead letters.

A small derived application (it counts each case's events) stands in for deadlines and benefits: the delivery
guarantees belong to the consumer and the derived base class, which both services share.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from faststream.nats import NatsBroker, NatsRouter

from shared.embedded.natsserver import EmbeddedNatsServer
from shared.events import reports as r
from shared.events.envelope import CaseEvent, event_id_for
from shared.events.subjects import (
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    POSITION_HEADER,
    trajectory_subject,
)
from shared.infra.consumer import TrajectoryConsumer
from shared.infra.derived import DerivedApplication
from shared.infra.settings import Settings
from shared.infra.store import prepare_store
from tests.factories import FUND_PARTY, NOW, incapacity, rid


class Tally(msgspec.Struct, frozen=True, kw_only=True):
    originator_id: uuid.UUID
    originator_version: int
    timestamp: datetime
    source: CaseEvent
    position: int


class Counted(msgspec.Struct, frozen=True):
    versions: tuple[int, ...]
    version: int  # the derived aggregate's own version (the repository's cache fast-forwards from it)


class CountingApplication(DerivedApplication[Counted]):
    name = "counting"
    purpose = "counting"

    def project(self, state: Counted | None, events: Iterable[Tally]) -> Counted | None:
        for event in events:
            state = Counted((*(state.versions if state else ()), event.source.version), event.originator_version)
        return state

    def source_version(self, state: Counted | None) -> int:
        return len(state.versions) if state else 0

    def step(self, state: Counted | None, event: CaseEvent, position: int, now: datetime) -> list[Any]:
        if isinstance(event.report, r.CaseClosed) and event.report.reason == "poison":
            raise ValueError("this event breaks a rule")
        return [Tally(originator_id=self.derived_id(event.case_id), originator_version=event.version,
                      timestamp=now, source=event, position=position)]


def events_of(case: uuid.UUID, count: int, poison_at: int | None = None) -> list[CaseEvent]:
    out = []
    for version in range(1, count + 1):
        if version == 1:
            report: r.Report = incapacity(date(2024, 1, 10))
        elif version == poison_at:
            report = r.CaseClosed(report_id=rid(), case_id=case, closed_on=date(2024, 5, 1), reason="poison")
        else:
            report = r.IncapacityInterrupted(report_id=rid(), case_id=case, returned_on=date(2024, 2, version))
        out.append(CaseEvent(case_id=case, version=version, event_id=event_id_for(case, version), recorded_at=NOW,
                             reported_by=FUND_PARTY, regime="BE-2022", report=report))
    return out


class Harness:
    def __init__(self, url: str, tmp: Path) -> None:
        settings = Settings(data_dir=tmp / "data", nats_url=url)
        self.app = CountingApplication(env=prepare_store(settings, "counting"))
        self.url = url
        self.position = 0
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.consumer = TrajectoryConsumer(
            name="counting", apply=self.app.apply_batch, executor=self.executor, gap_delay=0.05, poison_delay=0.05,
            park=self.app.park,
        )
        self.broker = NatsBroker(url)
        router = NatsRouter()
        self.consumer.attach(router, batch_size=50)
        self.broker.include_router(router)

    async def start(self) -> None:
        self.nc = await nats.connect(self.url)
        self.js = self.nc.jetstream()
        await self.consumer.start(self.js)
        await self.broker.start()

    async def publish(self, event: CaseEvent | bytes, case: uuid.UUID | None = None) -> None:
        self.position += 1
        if isinstance(event, bytes):
            subject, payload = trajectory_subject(case or uuid.uuid4(), "garbage"), event
        else:
            subject, payload = trajectory_subject(event.case_id, event.type), msgspec.json.encode(event)
        await self.js.publish(subject, payload, headers={POSITION_HEADER: str(self.position)})

    async def until(self, check: Any, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await asyncio.to_thread(check):
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.broker.stop()
        await self.nc.close()
        self.executor.shutdown()
        self.app.close()


@pytest.fixture
async def harness(nats_server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(nats_server.url, tmp_path)
    await h.start()
    yield h
    await h.stop()


def versions(h: Harness, case: uuid.UUID) -> tuple[int, ...]:
    state = h.app.load(case)
    return state.versions if state else ()


async def test_redelivered_events_change_nothing(harness: Harness) -> None:
    case = uuid.uuid4()
    events = events_of(case, 5)
    for event in events + events + events[:2]:  # every event three or two times, as redeliveries would
        await harness.publish(event)
    await harness.until(lambda: versions(harness, case) == (1, 2, 3, 4, 5))
    await harness.until(lambda: harness.consumer.counts["duplicate"] == 7)
    assert versions(harness, case) == (1, 2, 3, 4, 5)


async def test_out_of_order_events_wait_for_the_missing_one(harness: Harness) -> None:
    case, other = uuid.uuid4(), uuid.uuid4()
    first, second, third = events_of(case, 3)
    await harness.publish(first)
    await harness.publish(third)  # k+1 arrives before k
    for event in events_of(other, 3):
        await harness.publish(event)  # other cases are not held up
    await harness.until(lambda: versions(harness, other) == (1, 2, 3))
    assert versions(harness, case) == (1,)
    await harness.publish(second)
    await harness.until(lambda: versions(harness, case) == (1, 2, 3))
    assert harness.consumer.counts["gap"] >= 1


async def test_poison_is_dead_lettered_after_max_deliver_and_its_case_parked(harness: Harness) -> None:
    case, healthy = uuid.uuid4(), uuid.uuid4()
    for event in events_of(case, 4, poison_at=2):
        await harness.publish(event)
    await harness.publish(b"\x00 not json", case)
    for event in events_of(healthy, 3):
        await harness.publish(event)
    await harness.until(lambda: versions(harness, healthy) == (1, 2, 3))
    await harness.until(lambda: harness.consumer.counts["dead_lettered"] == 4)  # garbage, poison, 2 behind it
    assert versions(harness, case) == (1,)
    assert harness.app.parked(case) is not None
    info = await harness.js.stream_info(DEAD_LETTER_STREAM)
    assert info.state.messages == 4
    sub = await harness.js.pull_subscribe(f"{DEAD_LETTER_PREFIX}.>", stream=DEAD_LETTER_STREAM)
    letters = await sub.fetch(4, timeout=5)
    poison = [m for m in letters if "parked" not in m.headers["Reintegration-Error"]]
    parked = [m for m in letters if "parked" in m.headers["Reintegration-Error"]]
    assert [int(m.headers["Reintegration-Deliveries"]) for m in poison] == [5, 5]  # exactly max_deliver times
    assert sorted(int(m.headers[POSITION_HEADER]) for m in parked) == [3, 4]  # the case's later events, in order
    assert harness.consumer.counts["poison"] == 10  # 5 deliveries each of the two poison messages
    await every_delivery_answered(harness)


async def test_stream_order_is_kept_per_case_across_batches(harness: Harness) -> None:
    cases = [uuid.uuid4() for _ in range(20)]
    streams = {case: events_of(case, 15) for case in cases}
    for version in range(15):
        for case in cases:
            await harness.publish(streams[case][version])
    await harness.until(lambda: all(versions(harness, c) == tuple(range(1, 16)) for c in cases))
    assert harness.consumer.counts["applied"] == 300
    assert harness.consumer.counts["gap"] == 0


async def every_delivery_answered(h: Harness) -> None:
    """The server's count of deliveries (its consumer sequence counts each redelivery too) equals the deliveries
    the handler answered, and nothing is left unacknowledged."""
    async def settled() -> bool:
        info = await h.js.consumer_info("TRAJECTORY", "counting")
        return info.num_ack_pending == 0 and info.num_pending == 0
    deadline = asyncio.get_running_loop().time() + 60
    while not await settled():
        assert asyncio.get_running_loop().time() < deadline, "consumer did not settle"
        await asyncio.sleep(0.05)
    info = await h.js.consumer_info("TRAJECTORY", "counting")
    assert info.delivered.consumer_seq == h.consumer.counts["delivered"]


async def test_every_delivery_reaches_the_handler(harness: Harness) -> None:
    case = uuid.uuid4()
    for event in events_of(case, 3, poison_at=3):
        await harness.publish(event)
    await harness.until(lambda: harness.consumer.counts["dead_lettered"] == 1)
    await every_delivery_answered(harness)
    assert harness.consumer.counts["poison"] == 5
    assert harness.consumer.counts["delivered"] == 2 + 5  # two applied once, the poison five times, no more


async def test_a_bare_asyncio_timeout_from_fetch_costs_no_delivery(harness: Harness) -> None:
    """nats-py's ``fetch`` raises a bare ``asyncio.TimeoutError`` (not ``nats.errors.TimeoutError``) when its
    deadline runs out after the no-wait probe; the pull loop takes it as an empty fetch and goes on."""
    assert harness.consumer._subscription is not None
    subscription = harness.consumer._subscription
    real_fetch = subscription.fetch
    calls = 0

    async def fetch_that_sometimes_times_out(batch: int, timeout: float | None = 5, heartbeat: float | None = None
                                             ) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls % 2 == 0:
            await asyncio.sleep(0.01)
            raise TimeoutError  # what nats-py raises in _fetch_n, never an instance of nats' own
        return await real_fetch(batch, timeout=timeout, heartbeat=heartbeat)

    subscription.fetch = fetch_that_sometimes_times_out  # type: ignore[method-assign]
    cases = [uuid.uuid4() for _ in range(10)]
    for case in cases:
        for event in events_of(case, 6, poison_at=6 if case == cases[0] else None):
            await harness.publish(event)
    await harness.until(lambda: all(len(versions(harness, c)) == (5 if c == cases[0] else 6) for c in cases))
    await harness.until(lambda: harness.consumer.counts["dead_lettered"] == 1)
    await every_delivery_answered(harness)
    assert calls > 2 and harness.consumer.task is not None and not harness.consumer.task.done()
    assert harness.consumer.counts["poison"] == 5


async def test_a_durable_consumer_of_an_earlier_release_gets_this_ack_wait(nats_server: EmbeddedNatsServer,
                                                                          tmp_path: Path) -> None:
    """A consumer created with a 30 s ack wait (how long a crashed replica's batch waited to come back) is brought
    to the service's when it binds, and consumes as before."""
    from nats.js.api import AckPolicy as JsAckPolicy
    from nats.js.api import ConsumerConfig, DeliverPolicy

    from shared.events.subjects import TRAJECTORY_STREAM
    from shared.infra.streams import ensure_trajectory_stream

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_trajectory_stream(js)
    await js.add_consumer(TRAJECTORY_STREAM, config=ConsumerConfig(
        durable_name="counting", deliver_policy=DeliverPolicy.ALL, ack_policy=JsAckPolicy.EXPLICIT, ack_wait=30))
    assert (await js.consumer_info(TRAJECTORY_STREAM, "counting")).config.ack_wait == 30
    h = Harness(nats_server.url, tmp_path)
    await h.start()
    try:
        assert (await js.consumer_info(TRAJECTORY_STREAM, "counting")).config.ack_wait == h.consumer.ack_wait == 5
        case = uuid.uuid4()
        for event in events_of(case, 3):
            await h.publish(event)
        await h.until(lambda: versions(h, case) == (1, 2, 3))
    finally:
        await h.stop()
        await nc.close()


async def test_a_batch_is_the_first_message_and_what_the_stream_holds_then(nats_server: EmbeddedNatsServer) -> None:
    """One fetch: the first message (waited for), then at once whatever else is there, up to the batch size; a
    quiet stream gives a timeout, a lone event a batch of one."""
    from shared.infra.streams import ensure_trajectory_stream

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_trajectory_stream(js, replicas=1)
    # A probe long enough for a loaded machine to deliver all it asks (at 5 ms the rest of a batch may come with
    # the next fetch instead: late by a fetch, never lost)
    consumer = TrajectoryConsumer(name="batches", apply=None, park=None, executor=None,  # type: ignore[arg-type]
                                  batch_size=20, fetch_timeout=2.0, probe_wait=1.0)
    consumer.js = js
    subscription = await consumer._subscribe()
    try:
        case = uuid.uuid4()
        for position, event in enumerate(events_of(case, 25), start=1):
            await js.publish(trajectory_subject(case, event.type), msgspec.json.encode(event),
                             headers={POSITION_HEADER: str(position)})
        first = await consumer._fetch(subscription)
        second = await consumer._fetch(subscription)
        assert [len(first), len(second)] == [20, 5]  # the batch size, then the rest
        delivered = [msgspec.json.decode(m.data, type=CaseEvent).version for m in first + second]
        assert delivered == list(range(1, 26))  # in stream order
        for message in first + second:
            await message.ack()
        with pytest.raises(TimeoutError):
            await consumer._fetch(subscription)  # nothing there
        lone = events_of(case, 26)[-1]
        await js.publish(trajectory_subject(case, lone.type), msgspec.json.encode(lone),
                         headers={POSITION_HEADER: "26"})
        assert [msgspec.json.decode(m.data, type=CaseEvent).version for m in await consumer._fetch(subscription)] \
            == [26]
    finally:
        await subscription.unsubscribe()
        await nc.close()
