"""Report builders for tests: valid by default, every field overridable."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from shared.events import reports as r
from shared.events.common import Party, PartyKind

WORKER = "85073003328"
EMPLOYER = "0403170701"
OTHER_EMPLOYER = "0876543270"
OHS = "0202239951"
FUND = "300"

EMPLOYER_PARTY = Party(kind=PartyKind.EMPLOYER, id=EMPLOYER)
OTHER_EMPLOYER_PARTY = Party(kind=PartyKind.EMPLOYER, id=OTHER_EMPLOYER)
OHS_PARTY = Party(kind=PartyKind.OCCUPATIONAL_HEALTH_SERVICE, id=OHS)
FUND_PARTY = Party(kind=PartyKind.HEALTH_FUND, id=FUND)

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def rid() -> uuid.UUID:
    return uuid.uuid4()


def incapacity(start: date = date(2024, 1, 10), **kw: Any) -> r.IncapacityReported:
    fields: dict[str, Any] = {
        "report_id": rid(),
        "insz": WORKER,
        "enterprise_number": EMPLOYER,
        "staff_count": 120,
        "health_fund": FUND,
        "occupational_health_service": OHS,
        "start_date": start,
        "cause": r.Cause.ILLNESS,
        "diagnosis": "lumbar hernia",
    }
    fields.update(kw)
    return r.IncapacityReported(**fields)


def request(case_id: uuid.UUID, received_on: date, initiator: str = "employer", **kw: Any) -> r.TrajectoryRequested:
    return r.TrajectoryRequested(
        report_id=rid(), case_id=case_id, initiator=r.Initiator(initiator), received_on=received_on, **kw
    )


def assessment(case_id: uuid.UUID, issued_on: date, regime: str, decision: str) -> r.AssessmentIssued:
    return r.AssessmentIssued(
        report_id=rid(), case_id=case_id, issued_on=issued_on, regime=regime, decision=decision, conditions="no lifting"
    )


def plan(case_id: uuid.UUID, submitted_on: date, unfitness: str = "temporary") -> r.PlanSubmitted:
    return r.PlanSubmitted(
        report_id=rid(),
        case_id=case_id,
        submitted_on=submitted_on,
        unfitness=r.Unfitness(unfitness),
        measures=[r.PlanMeasure(kind="adapted_hours", description="mornings")],
    )


def party_for_initiator(initiator: str) -> Party:
    return {"employer": EMPLOYER_PARTY, "advising_physician": FUND_PARTY}.get(initiator, OHS_PARTY)
