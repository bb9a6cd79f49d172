"""A builder of case histories (lists of ``CaseEvent``) for the benefit-ledger tests, and its own sanity test.

Each report is recorded, by default, at 09:00 UTC on its effective date (so the latest event's Belgian date is the
latest effective date); ``at=`` (or the history's ``now``) records it at another moment. Report ids are uuid5s of a counter, so that a history
built twice is the same history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import msgspec

from shared.events import reports as r
from shared.events.common import Party, PartyKind
from shared.events.envelope import CASE_EVENT_DECODER, CASE_EVENT_ENCODER, CaseEvent, case_id_for, event_id_for
from shared.rulebook import default_rulebook

WORKER = "85073003328"
EMPLOYER = "0403170701"
OHS = "0202239951"
FUND = "300"
FUND_PARTY = Party(kind=PartyKind.HEALTH_FUND, id=FUND)
EMPLOYER_PARTY = Party(kind=PartyKind.EMPLOYER, id=EMPLOYER)
OHS_PARTY = Party(kind=PartyKind.OCCUPATIONAL_HEALTH_SERVICE, id=OHS)
RB = default_rulebook()
_IDS = uuid.UUID("0b6f3f6e-8a39-4a8e-bb0b-7c3f6f0d2a11")


@dataclass
class History:
    """One case's history, built report by report."""

    start: date = date(2023, 1, 10)
    cause: r.Cause = r.Cause.ILLNESS
    staff: int = 120
    events: list[CaseEvent] = field(default_factory=list)
    #: When set, reports without ``at=`` are recorded at this moment instead of on their effective date.
    now: datetime | None = None

    def __post_init__(self) -> None:
        self.case_id = case_id_for(WORKER, EMPLOYER, self.start.isoformat(), FUND)
        self.add(
            r.IncapacityReported(
                report_id=self._rid(), insz=WORKER, enterprise_number=EMPLOYER, staff_count=self.staff,
                health_fund=FUND, occupational_health_service=OHS, start_date=self.start, cause=self.cause,
            )
        )

    def _rid(self) -> uuid.UUID:
        return uuid.uuid5(_IDS, f"{self.start}:{self.cause}:{len(self.events)}")

    def add(self, report: r.Report, by: Party = FUND_PARTY, at: date | datetime | None = None) -> CaseEvent:
        version = len(self.events) + 1
        when = at if at is not None else (self.now or report.effective_date)
        recorded = when if isinstance(when, datetime) else datetime.combine(when, time(9), tzinfo=UTC)
        event = CaseEvent(
            case_id=self.case_id, version=version, event_id=event_id_for(self.case_id, version),
            recorded_at=recorded, reported_by=by, regime=None, report=report,  # type: ignore[arg-type]
        )
        self.events.append(event)
        return event

    # --- reports, by topic ---------------------------------------------------------------------------

    def declare(self, starts_on: date, hours: int, full: int = 38, declared_on: date | None = None,
                at: date | None = None) -> CaseEvent:
        declared = declared_on or starts_on - timedelta(days=7)
        return self.add(r.PartialResumptionDeclared(
            report_id=self._rid(), case_id=self.case_id, declared_on=declared, starts_on=starts_on,
            weekly_hours=hours, full_time_hours=full), at=at)

    def authorise(self, on: date, hours: int | None = None, valid_until: date | None = None) -> CaseEvent:
        return self.add(r.PartialResumptionAuthorised(
            report_id=self._rid(), case_id=self.case_id, authorised_on=on, weekly_hours=hours, valid_until=valid_until))

    def end(self, on: date, at: date | None = None) -> CaseEvent:
        return self.add(r.PartialResumptionEnded(report_id=self._rid(), case_id=self.case_id, ended_on=on), at=at)

    def fail(self, on: date) -> CaseEvent:
        return self.add(r.PartialResumptionFailed(report_id=self._rid(), case_id=self.case_id, failed_on=on))

    def interrupt(self, on: date) -> CaseEvent:
        return self.add(r.IncapacityInterrupted(report_id=self._rid(), case_id=self.case_id, returned_on=on))

    def resume(self, on: date) -> CaseEvent:
        return self.add(r.IncapacityResumed(report_id=self._rid(), case_id=self.case_id, resumed_on=on))

    def review(self, on: date) -> CaseEvent:
        """A report that changes no benefit: moves the latest event's date (time passes)."""
        return self.add(r.IncapacityReviewed(
            report_id=self._rid(), case_id=self.case_id, reviewed_on=on,
            outcome=r.ReviewOutcome.INCAPACITY_CONTINUES))

    def miss(self, on: date, justified: bool = False) -> CaseEvent:
        return self.add(r.ReturnToWorkExaminationMissed(
            report_id=self._rid(), case_id=self.case_id, missed_on=on, justified=justified))

    def questionnaire_sent(self, on: date) -> CaseEvent:
        return self.add(r.ReturnToWorkQuestionnaireSent(report_id=self._rid(), case_id=self.case_id, sent_on=on))

    def questionnaire_returned(self, on: date, at: date | None = None) -> CaseEvent:
        return self.add(r.ReturnToWorkQuestionnaireReturned(
            report_id=self._rid(), case_id=self.case_id, returned_on=on), at=at)

    def rehabilitation(self, proposed: date, approved: date) -> None:
        self.add(r.VocationalRehabilitationProposed(report_id=self._rid(), case_id=self.case_id, proposed_on=proposed))
        self.add(r.VocationalRehabilitationApproved(report_id=self._rid(), case_id=self.case_id, approved_on=approved))

    def training_hours(self, start: date, end: date, hours: str) -> CaseEvent:
        return self.add(r.TrainingHoursAttended(
            report_id=self._rid(), case_id=self.case_id, period_start=start, period_end=end, hours=Decimal(hours)))

    def cost(self, on: date, amount: str, kind: r.CostKind = r.CostKind.TRANSPORT) -> CaseEvent:
        return self.add(r.RehabilitationCostsReported(
            report_id=self._rid(), case_id=self.case_id, incurred_on=on, cost_kind=kind, amount=Decimal(amount)))

    def completed(self, on: date, successful: bool = True) -> CaseEvent:
        return self.add(r.TrainingCompleted(
            report_id=self._rid(), case_id=self.case_id, completed_on=on, successful=successful))

    def force_majeure(self, letter: date, decided: date, unfit: bool = True) -> None:
        self.add(r.MedicalForceMajeureStarted(report_id=self._rid(), case_id=self.case_id, letter_sent_on=letter),
                 by=EMPLOYER_PARTY)
        self.add(r.MedicalForceMajeureDecided(
            report_id=self._rid(), case_id=self.case_id, decided_on=decided, definitively_unfit=unfit), by=OHS_PARTY)

    def terminate(self, on: date, reason: str = "medical_force_majeure") -> CaseEvent:
        return self.add(r.ContractTerminated(
            report_id=self._rid(), case_id=self.case_id, terminated_on=on, reason=reason), by=EMPLOYER_PARTY)

    def trajectory_ended(self, requested: date, ended: date, reason: str) -> CaseEvent:
        self.add(r.TrajectoryRequested(
            report_id=self._rid(), case_id=self.case_id, initiator=r.Initiator.WORKER, received_on=requested),
            by=OHS_PARTY)
        return self.add(r.TrajectoryEnded(
            report_id=self._rid(), case_id=self.case_id, ended_on=ended, reason=reason), by=OHS_PARTY)


def test_built_events_survive_the_wire() -> None:
    """The builder's events are valid envelopes: they encode and decode to themselves."""
    h = History(start=date(2024, 1, 10))
    h.declare(date(2024, 3, 4), 19)
    h.training_hours(date(2024, 4, 1), date(2024, 4, 5), "12.5")
    for event in h.events:
        assert CASE_EVENT_DECODER.decode(CASE_EVENT_ENCODER.encode(event)) == event
    assert msgspec.json.decode(CASE_EVENT_ENCODER.encode(h.events[-1]))["report"]["hours"] == "12.5"
