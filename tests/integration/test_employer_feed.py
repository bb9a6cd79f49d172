"""What reaches an employer carries no medical field and no free text: by the feed types, and in the bytes."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime

from eventsourcing.utils import get_topic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.benefits.application import BenefitsApplication
from services.benefits.outbox import render as render_benefits
from services.deadlines.application import DeadlinesApplication
from services.deadlines.outbox import render as render_deadlines
from services.intake.application import IntakeApplication
from services.intake.decide import Rejection
from shared.events import reports as r
from shared.events.common import restricted_fields
from shared.events.feed import FEED_TYPES
from shared.events.subjects import EMPLOYER_FEED_PREFIX
from shared.infra.store import MsgspecMapper, NullTranscoder
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, incapacity, request, rid

MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": get_topic(MsgspecMapper),
          "TRANSCODER_TOPIC": get_topic(NullTranscoder)}
NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)


def test_feed_types_have_no_medical_or_free_text_field() -> None:
    for cls in FEED_TYPES:
        assert restricted_fields(cls) == frozenset(), cls


CANARY = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=12, max_size=12).map(lambda s: f"CANARY{s}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(canary=CANARY, start=st.dates(date(2023, 1, 2), date(2024, 6, 1)), hours=st.integers(10, 30))
def test_no_canary_from_medical_or_free_text_fields_reaches_an_employer(canary: str, start: date, hours: int) -> None:
    intake = IntakeApplication(env=MEMORY)
    case = intake.submit(FUND_PARTY, incapacity(start, diagnosis=canary), NOW).case_id
    day = date.fromordinal(start.toordinal() + 100)
    reports = [
        (EMPLOYER_PARTY, request(case, day)),
        (OHS_PARTY, r.AssessmentIssued(report_id=rid(), case_id=case, issued_on=date.fromordinal(day.toordinal() + 20),
                                       regime="BE-2022", decision="A", conditions=canary)),
        (EMPLOYER_PARTY, r.PlanSubmitted(report_id=rid(), case_id=case,
                                         submitted_on=date.fromordinal(day.toordinal() + 40),
                                         unfitness=r.Unfitness.TEMPORARY,
                                         measures=[r.PlanMeasure(kind="adapted_hours", description=canary)])),
        (EMPLOYER_PARTY, r.PlanAnswered(report_id=rid(), case_id=case, answered_on=date.fromordinal(day.toordinal() + 45),
                                        answer=r.PlanAnswer.REFUSED, reason=canary)),
        (FUND_PARTY, r.PartialResumptionDeclared(report_id=rid(), case_id=case,
                                                 declared_on=date.fromordinal(start.toordinal() + 380),
                                                 starts_on=date.fromordinal(start.toordinal() + 381),
                                                 weekly_hours=hours, full_time_hours=38)),
        (FUND_PARTY, r.PartialResumptionAuthorised(report_id=rid(), case_id=case,
                                                   authorised_on=date.fromordinal(start.toordinal() + 390))),
        (FUND_PARTY, r.PartialResumptionEnded(report_id=rid(), case_id=case,
                                              ended_on=date.fromordinal(start.toordinal() + 500))),
    ]
    for party, report in reports:
        with contextlib.suppress(Rejection):
            intake.submit(party, report, NOW)
    events = intake.case_events(case)
    deadlines, benefits = DeadlinesApplication(env=MEMORY), BenefitsApplication(env=MEMORY)
    employer_messages = 0
    for position, event in enumerate(events, start=1):
        steps = [*deadlines.step(deadlines.load(case), event, position, NOW),
                 *benefits.step(benefits.load(case), event, position, NOW)]
        deadlines.process(event, position, NOW)
        benefits.process(event, position, NOW)
        for step in steps:
            for message in [*render_deadlines(step), *render_benefits(step)]:
                if message.subject.startswith(f"{EMPLOYER_FEED_PREFIX}.{events[0].report.enterprise_number}."):
                    employer_messages += 1
                    assert canary.encode() not in message.payload
                else:
                    assert not message.subject.startswith(EMPLOYER_FEED_PREFIX)  # only its own employer's feed
    assert employer_messages > 0
