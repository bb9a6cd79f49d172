"""The Case aggregate: given events, when a report arrives, then an event or a named rejection."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import msgspec
import pytest

from services.intake.case import Case, evolve
from services.intake.decide import Rejection, decide
from shared.events import reports as r
from shared.events.codec import decode_report
from shared.events.common import Party
from shared.events.envelope import CaseEvent, case_id_for, event_id_for
from shared.events.replies import RejectionCode as Code
from shared.rulebook import default_rulebook
from tests.factories import (
    EMPLOYER_PARTY,
    FUND_PARTY,
    NOW,
    OHS_PARTY,
    OTHER_EMPLOYER_PARTY,
    assessment,
    incapacity,
    plan,
    request,
    rid,
)

TODAY = date(2026, 11, 2)


class CaseRun:
    """Applies reports through decide and evolve, as the application does, without a store."""

    def __init__(self, opening: r.IncapacityReported, by: Party = FUND_PARTY) -> None:
        self.case: Case | None = None
        self.id = case_id_for(opening.insz, opening.enterprise_number, opening.start_date.isoformat(),
                              opening.health_fund)
        self.send(opening, by)

    def send(self, report: r.Report, by: Party) -> str | None:
        regime = decide(self.case, report, by, TODAY, default_rulebook())
        version = 1 if self.case is None else self.case.version + 1
        event = CaseEvent(
            case_id=self.id, version=version, event_id=event_id_for(self.id, version), recorded_at=NOW,
            reported_by=by, regime=regime, report=report,
        )
        self.case = evolve(self.case, event)
        return regime

    def refuse(self, report: r.Report, by: Party) -> Rejection:
        before = self.case
        with pytest.raises(Rejection) as caught:
            self.send(report, by)
        assert self.case is before  # a rejected report changes nothing
        return caught.value


def test_plan_before_an_assessment_is_rejected() -> None:
    run = CaseRun(incapacity(date(2024, 1, 10)))
    assert run.refuse(plan(run.id, date(2024, 2, 1)), EMPLOYER_PARTY).code is Code.INVALID_STATE
    run.send(request(run.id, date(2024, 4, 10)), EMPLOYER_PARTY)
    rejection = run.refuse(plan(run.id, date(2024, 4, 20)), EMPLOYER_PARTY)
    assert rejection.code is Code.INVALID_STATE and "assessment" in rejection.message


def test_employer_request_before_four_months_under_2016_names_the_rule() -> None:
    run = CaseRun(incapacity(date(2019, 3, 4)))
    rejection = run.refuse(request(run.id, date(2019, 7, 3)), EMPLOYER_PARTY)
    assert (rejection.code, rejection.rule, rejection.regime) == (
        Code.NOT_ELIGIBLE, "trajectory.request.employer", "BE-2016",
    )
    assert rejection.field == "$.received_on"
    assert run.send(request(run.id, date(2019, 7, 4)), EMPLOYER_PARTY) == "BE-2016"


def test_certificate_allows_an_early_employer_request() -> None:
    run = CaseRun(incapacity(date(2023, 6, 1)))
    run.refuse(request(run.id, date(2023, 6, 20)), EMPLOYER_PARTY)
    run.send(r.DefinitiveUnfitnessCertified(report_id=rid(), case_id=run.id, certified_on=date(2023, 6, 15)),
             EMPLOYER_PARTY)
    assert run.send(request(run.id, date(2023, 6, 20)), EMPLOYER_PARTY) == "BE-2022"


def test_advising_physician_request_after_1_oct_2022_is_rejected() -> None:
    run = CaseRun(incapacity(date(2022, 5, 2)))
    rejection = run.refuse(request(run.id, date(2022, 10, 1), "advising_physician"), FUND_PARTY)
    assert (rejection.rule, rejection.regime) == ("trajectory.request.advising_physician", "BE-2022")
    assert run.send(request(run.id, date(2022, 9, 30), "advising_physician"), FUND_PARTY) == "BE-2016"


def test_the_initiator_must_match_the_reporting_party() -> None:
    run = CaseRun(incapacity(date(2024, 1, 10)))
    assert run.refuse(request(run.id, date(2024, 5, 1), "employer"), OHS_PARTY).code is Code.NOT_ALLOWED_FOR_PARTY


def test_running_trajectory_across_1_oct_2022_is_assessed_under_2022() -> None:
    run = CaseRun(incapacity(date(2022, 3, 1)))
    assert run.send(request(run.id, date(2022, 9, 15), "worker"), OHS_PARTY) == "BE-2016"
    wrong = run.refuse(assessment(run.id, date(2022, 10, 5), "BE-2016", "D"), OHS_PARTY)
    assert (wrong.code, wrong.field, wrong.regime) == (Code.NOT_ELIGIBLE, "$.regime", "BE-2022")
    bad_code = run.refuse(assessment(run.id, date(2022, 10, 5), "BE-2022", "D"), OHS_PARTY)
    assert bad_code.field == "$.decision"
    assert run.send(assessment(run.id, date(2022, 10, 5), "BE-2022", "A"), OHS_PARTY) == "BE-2022"
    assert run.case and run.case.trajectory and run.case.trajectory.assessment == "A"


def test_appeal_suspends_the_plan_and_is_allowed_once() -> None:
    run = CaseRun(incapacity(date(2023, 1, 2)))
    run.send(request(run.id, date(2023, 4, 3)), EMPLOYER_PARTY)
    run.send(assessment(run.id, date(2023, 5, 1), "BE-2022", "B"), OHS_PARTY)
    run.send(r.AppealLodged(report_id=rid(), case_id=run.id, lodged_on=date(2023, 5, 10)), OHS_PARTY)
    assert run.refuse(plan(run.id, date(2023, 5, 12), "definitive"), EMPLOYER_PARTY).code is Code.INVALID_STATE
    run.send(r.AppealDecided(report_id=rid(), case_id=run.id, decided_on=date(2023, 6, 1), assessment_upheld=True),
             OHS_PARTY)
    again = r.AppealLodged(report_id=rid(), case_id=run.id, lodged_on=date(2023, 6, 2))
    assert "once per trajectory" in run.refuse(again, OHS_PARTY).message
    assert run.refuse(plan(run.id, date(2023, 6, 5), "temporary"), EMPLOYER_PARTY).field == "$.unfitness"
    run.send(plan(run.id, date(2023, 6, 5), "definitive"), EMPLOYER_PARTY)


def test_no_appeal_against_a_temporary_unfitness() -> None:
    run = CaseRun(incapacity(date(2023, 1, 2)))
    run.send(request(run.id, date(2023, 4, 3)), EMPLOYER_PARTY)
    run.send(assessment(run.id, date(2023, 5, 1), "BE-2022", "A"), OHS_PARTY)
    lodged = r.AppealLodged(report_id=rid(), case_id=run.id, lodged_on=date(2023, 5, 3))
    assert run.refuse(lodged, OHS_PARTY).code is Code.INVALID_STATE


def test_parties_only_reach_their_own_cases_and_reports() -> None:
    run = CaseRun(incapacity(date(2024, 1, 10)))
    back = r.IncapacityInterrupted(report_id=rid(), case_id=run.id, returned_on=date(2024, 2, 1))
    assert run.refuse(back, OTHER_EMPLOYER_PARTY).code is Code.CASE_NOT_FOUND  # the same as no case at all
    ended = r.IncapacityEnded(report_id=rid(), case_id=run.id, ended_on=date(2024, 3, 1))
    rejection = run.refuse(ended, EMPLOYER_PARTY)
    assert (rejection.code, rejection.field) == (Code.NOT_ALLOWED_FOR_PARTY, "$.type")
    with pytest.raises(Rejection) as caught:
        CaseRun(incapacity(date(2024, 1, 10)), by=OTHER_EMPLOYER_PARTY)
    assert caught.value.code is Code.NOT_ALLOWED_FOR_PARTY


def test_dates_are_checked_against_the_case_and_the_day_of_receipt() -> None:
    run = CaseRun(incapacity(date(2024, 1, 10)))
    early = r.IncapacityInterrupted(report_id=rid(), case_id=run.id, returned_on=date(2024, 1, 9))
    assert run.refuse(early, EMPLOYER_PARTY).code is Code.INVALID_DATE
    future = r.IncapacityInterrupted(report_id=rid(), case_id=run.id, returned_on=TODAY + timedelta(days=1))
    assert run.refuse(future, EMPLOYER_PARTY).field == "$.returned_on"
    with pytest.raises(Rejection) as ancient:
        CaseRun(incapacity(date(1, 1, 2)))
    assert ancient.value.code is Code.INVALID_DATE


def test_a_closed_case_takes_no_more_reports() -> None:
    run = CaseRun(incapacity(date(2024, 1, 10)))
    run.send(r.CaseClosed(report_id=rid(), case_id=run.id, closed_on=date(2024, 9, 1), reason="recovered"), FUND_PARTY)
    back = r.IncapacityInterrupted(report_id=rid(), case_id=run.id, returned_on=date(2024, 2, 1))
    assert run.refuse(back, EMPLOYER_PARTY).code is Code.CASE_CLOSED


def test_force_majeure_decision_not_before_the_invitation() -> None:
    run = CaseRun(incapacity(date(2023, 1, 2)))
    run.send(r.MedicalForceMajeureStarted(report_id=rid(), case_id=run.id, letter_sent_on=date(2023, 10, 2)),
             EMPLOYER_PARTY)
    early = r.MedicalForceMajeureDecided(report_id=rid(), case_id=run.id, decided_on=date(2023, 10, 11),
                                         definitively_unfit=True)
    rejection = run.refuse(early, OHS_PARTY)
    assert (rejection.rule, rejection.regime) == ("force_majeure.start", "BE-2022")
    run.send(r.MedicalForceMajeureDecided(report_id=rid(), case_id=run.id, decided_on=date(2023, 10, 12),
                                          definitively_unfit=False), OHS_PARTY)
    again = r.MedicalForceMajeureStarted(report_id=rid(), case_id=run.id, letter_sent_on=date(2024, 7, 11))
    assert "new 9-month period" in run.refuse(again, EMPLOYER_PARTY).message
    run.send(r.MedicalForceMajeureStarted(report_id=rid(), case_id=run.id, letter_sent_on=date(2024, 7, 12)),
             EMPLOYER_PARTY)


def test_training_hours_are_bounded() -> None:
    run = CaseRun(incapacity(date(2020, 1, 6)))
    run.send(r.VocationalRehabilitationProposed(report_id=rid(), case_id=run.id, proposed_on=date(2021, 1, 4)),
             FUND_PARTY)
    run.send(r.VocationalRehabilitationApproved(report_id=rid(), case_id=run.id, approved_on=date(2021, 2, 1)),
             FUND_PARTY)

    def hours(h: str) -> r.TrainingHoursAttended:
        return r.TrainingHoursAttended(report_id=rid(), case_id=run.id, period_start=date(2021, 2, 1),
                                       period_end=date(2021, 2, 1), hours=r.TrainingHours(h))

    for bad in ("0", "25", "1E+400", "NaN", "1.005"):
        assert run.refuse(hours(bad), FUND_PARTY).field == "$.hours"
    run.send(hours("7.25"), FUND_PARTY)


def test_evolve_refuses_a_gap_in_versions() -> None:
    run = CaseRun(incapacity(date(2024, 1, 10)))
    assert run.case is not None
    event = CaseEvent(case_id=run.id, version=3, event_id=uuid.uuid4(), recorded_at=NOW, reported_by=FUND_PARTY,
                      regime="BE-2022", report=r.IncapacityEnded(report_id=rid(), case_id=run.id,
                                                                ended_on=date(2024, 3, 1)))
    with pytest.raises(ValueError, match="does not follow"):
        evolve(run.case, event)


@pytest.mark.parametrize("starts_on", [date(2200, 1, 1), date(1, 1, 1), date(1949, 12, 31)])
def test_every_date_field_is_bounded_not_only_the_effective_one(starts_on: date) -> None:
    """A date the calendar and the rules do not cover is refused at the edge, naming its field: accepted, it would
    make the derived services fail on the case for good (a one-digit typo of 2025 is 2205)."""
    run = CaseRun(incapacity(date(2024, 1, 10)))
    declared = r.PartialResumptionDeclared(report_id=rid(), case_id=run.id, declared_on=date(2024, 2, 1),
                                           starts_on=starts_on, weekly_hours=19, full_time_hours=38)
    refused = run.refuse(declared, FUND_PARTY)
    assert (refused.code, refused.field) == (Code.INVALID_DATE, "$.starts_on")
    assert starts_on.isoformat() in refused.message
    authorised = r.PartialResumptionAuthorised(report_id=rid(), case_id=run.id, authorised_on=date(2024, 2, 5),
                                               valid_until=date(2205, 2, 5))
    assert run.refuse(authorised, FUND_PARTY).field == "$.valid_until"
    near = r.PartialResumptionDeclared(report_id=rid(), case_id=run.id, declared_on=date(2024, 2, 1),
                                       starts_on=date(2024, 2, 12), weekly_hours=19, full_time_hours=38)
    assert run.send(near, FUND_PARTY) is not None  # a date inside the bounds still goes through


def test_hours_are_exact_decimals_to_the_hundredth_and_bounded() -> None:
    """Belgian part-time weeks are often 7.6 or 30.4 hours: stated exactly (a JSON number or a decimal string),
    two decimals at most, 0 to 168 a week and a full-time week above 0 and at most 60, each refusal naming its
    field."""
    run = CaseRun(incapacity(date(2024, 1, 10)))

    def declared(weekly: str, full: str) -> r.PartialResumptionDeclared:
        wire = (f'{{"type": "partial_resumption_declared.v1", "report_id": "{rid()}", "case_id": "{run.id}", '
                f'"declared_on": "2024-03-01", "starts_on": "2024-03-04", "weekly_hours": {weekly}, '
                f'"full_time_hours": {full}}}')
        report = decode_report(wire.encode())
        assert isinstance(report, r.PartialResumptionDeclared)
        return report

    for weekly, full, field in (("7.625", "38", "$.weekly_hours"), ("-1", "38", "$.weekly_hours"),
                                ("169", "38", "$.weekly_hours"), ('"NaN"', "38", "$.weekly_hours"),
                                ("10", "0", "$.full_time_hours"), ("10", "60.5", "$.full_time_hours"),
                                ('"1e400"', "38", "$.weekly_hours")):
        refused = run.refuse(declared(weekly, full), FUND_PARTY)
        assert (refused.code, refused.field) == (Code.INVALID_FIELD, field), (weekly, full, refused.message)
    accepted = declared("30.4", '"37.50"')
    run.send(accepted, FUND_PARTY)
    assert run.case.partial_resumption is not None
    assert (run.case.partial_resumption.weekly_hours, run.case.partial_resumption.full_time_hours) == (
        Decimal("30.4"), Decimal("37.50"))
    fine = r.PartialResumptionAuthorised(report_id=rid(), case_id=run.id, authorised_on=date(2024, 3, 8),
                                         weekly_hours=Decimal("22.85"))
    assert run.refuse(msgspec.structs.replace(fine, weekly_hours=Decimal("22.855")), FUND_PARTY).field == \
        "$.weekly_hours"
    run.send(fine, FUND_PARTY)


def test_an_identifier_is_refused_unless_sent_in_its_compact_form() -> None:
    """Stored as sent, ``BE0202.239.951`` would lock the real service 0202239951 out of the case."""
    for value in ("BE0202.239.951", "０２０２２３９９５１", "0202239951\n"):
        with pytest.raises(Rejection) as caught:
            CaseRun(incapacity(date(2024, 1, 10), occupational_health_service=value))
        assert (caught.value.code, caught.value.field) == (Code.INVALID_IDENTIFIER, "$.occupational_health_service")
    CaseRun(incapacity(date(2024, 1, 10), occupational_health_service="0202239951"))


def test_a_timeline_that_contradicts_recorded_facts_is_refused() -> None:
    """An end before a recorded return or resumption, an authorisation valid until before it was given, a
    resumption starting before the incapacity: each refused, naming its field and the fact it contradicts."""
    run = CaseRun(incapacity(date(2024, 1, 10)))
    run.send(r.IncapacityInterrupted(report_id=rid(), case_id=run.id, returned_on=date(2024, 3, 1)), EMPLOYER_PARTY)
    run.send(r.IncapacityResumed(report_id=rid(), case_id=run.id, resumed_on=date(2024, 3, 20)), EMPLOYER_PARTY)
    ended = run.refuse(r.IncapacityEnded(report_id=rid(), case_id=run.id, ended_on=date(2024, 3, 5)), FUND_PARTY)
    assert (ended.code, ended.field) == (Code.INVALID_DATE, "$.ended_on")
    assert "2024-03-20" in ended.message
    early = r.PartialResumptionDeclared(report_id=rid(), case_id=run.id, declared_on=date(2024, 4, 1),
                                        starts_on=date(2024, 1, 2), weekly_hours=19, full_time_hours=38)
    assert run.refuse(early, FUND_PARTY).field == "$.starts_on"
    run.send(r.PartialResumptionDeclared(report_id=rid(), case_id=run.id, declared_on=date(2024, 4, 1),
                                         starts_on=date(2024, 4, 2), weekly_hours=19, full_time_hours=38), FUND_PARTY)
    backwards = r.PartialResumptionAuthorised(report_id=rid(), case_id=run.id, authorised_on=date(2024, 4, 10),
                                              valid_until=date(2024, 4, 9))
    refused = run.refuse(backwards, FUND_PARTY)
    assert (refused.code, refused.field) == (Code.INVALID_DATE, "$.valid_until")
    run.send(r.IncapacityEnded(report_id=rid(), case_id=run.id, ended_on=date(2024, 5, 31)), FUND_PARTY)


def test_while_back_at_work_the_incapacity_ends_at_the_latest_the_day_before_the_return() -> None:
    """``ended_on`` is the last day of incapacity: the day before a recorded return is consistent, two days before
    is not."""
    run = CaseRun(incapacity(date(2024, 1, 10)))
    run.send(r.IncapacityInterrupted(report_id=rid(), case_id=run.id, returned_on=date(2024, 3, 1)), EMPLOYER_PARTY)
    early = run.refuse(r.IncapacityEnded(report_id=rid(), case_id=run.id, ended_on=date(2024, 2, 28)), FUND_PARTY)
    assert (early.code, early.field) == (Code.INVALID_DATE, "$.ended_on") and "2024-02-29" in early.message
    run.send(r.IncapacityEnded(report_id=rid(), case_id=run.id, ended_on=date(2024, 2, 29)), FUND_PARTY)
