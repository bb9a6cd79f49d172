"""Services take their clock as a parameter: what they record is the injected clock's time, never the system's."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from eventsourcing.utils import get_topic
from faststream.nats import NatsBroker, TestNatsBroker

from services.disclosures.handlers import record_undecodable
from services.intake.application import IntakeApplication
from services.intake.handlers import build_router
from shared.events.codec import encode
from shared.events.replies import REPLY_DECODER, Accepted
from shared.events.subjects import intake_subject
from shared.infra.consumer import TrajectoryConsumer
from shared.infra.derived import Outcome
from shared.infra.store import MsgspecMapper, NullTranscoder
from tests.factories import FUND_PARTY, incapacity

SKEWED = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": get_topic(MsgspecMapper),
          "TRANSCODER_TOPIC": get_topic(NullTranscoder)}


class FakeMsg:
    """A delivered JetStream message, as far as the consumer and the recorders read it."""

    def __init__(self, subject: str) -> None:
        self.subject, self.metadata, self.headers, self.data = subject, None, None, b""
        self.answers: list[str] = []

    async def ack(self) -> None:
        self.answers.append("ack")


async def test_the_trajectory_consumer_applies_each_event_at_its_clocks_time() -> None:
    seen: list[datetime] = []

    def apply(chunk: list[Any], now: datetime) -> list[Outcome | Exception]:
        seen.append(now)
        return [Outcome.APPLIED for _ in chunk]

    with ThreadPoolExecutor(max_workers=1) as executor:
        consumer = TrajectoryConsumer(name="t", apply=apply, park=lambda *_: None, executor=executor,
                                      clock=lambda: SKEWED)
        raw = FakeMsg("reintegration.trajectory.x.y")
        await consumer.handle(raw, SimpleNamespace(case_id=uuid.uuid4()), 1, None)  # type: ignore[arg-type]
    assert seen == [SKEWED] and raw.answers == ["ack"]


async def test_intake_records_each_report_at_its_clocks_time() -> None:
    app = IntakeApplication(env=MEMORY)
    broker = NatsBroker()
    broker.include_router(build_router(app, clock=lambda: SKEWED))
    async with TestNatsBroker(broker) as test_broker:
        answer = await test_broker.request(encode(incapacity()), intake_subject(FUND_PARTY))
    reply = REPLY_DECODER.decode(answer.body)
    assert isinstance(reply, Accepted)
    assert app.case_events(reply.case_id)[0].recorded_at == SKEWED


def test_an_undecodable_feed_message_is_recorded_at_the_clocks_time() -> None:
    recorded: list[dict[str, Any]] = []
    log = SimpleNamespace(record=lambda **fields: recorded.append(fields) or True)
    record_undecodable(log, FakeMsg("reintegration.employer.0403170701.deadlines.x"), lambda: SKEWED)  # type: ignore[arg-type]
    assert recorded[0]["disclosed_at"] == SKEWED
