"""The reports of the 2026 law through the Case: the work-potential estimate, the daily benefit, the contact with
the advising physician, a missed appointment in person, and the worker's seniority and contract on the opening."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import msgspec
import pytest

from services.intake.decide import Rejection
from shared.events import reports as r
from shared.events.codec import decode_report
from shared.events.replies import RejectionCode as Code
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, incapacity, rid
from tests.unit.test_case import CaseRun


def estimate(case_run: CaseRun, day: date, work_potential: bool = True) -> r.WorkPotentialEstimated:
    return r.WorkPotentialEstimated(report_id=rid(), case_id=case_run.id, estimated_on=day,
                                    work_potential=work_potential)


def test_a_work_potential_estimate_is_accepted_from_the_day_the_2026_law_applies_and_not_the_day_before() -> None:
    run = CaseRun(incapacity(date(2025, 10, 1)))
    refused = run.refuse(estimate(run, date(2025, 12, 31)), OHS_PARTY)
    assert (refused.code, refused.field, refused.rule, refused.regime) == (
        Code.NO_REGIME, "$.estimated_on", "employer.work_potential", "BE-2022")
    assert run.send(estimate(run, date(2026, 1, 1)), OHS_PARTY) == "BE-2026"


def test_only_the_occupational_health_service_reports_the_estimate() -> None:
    run = CaseRun(incapacity(date(2026, 1, 5)))
    assert run.refuse(estimate(run, date(2026, 3, 2)), EMPLOYER_PARTY).code is Code.NOT_ALLOWED_FOR_PARTY
    assert run.refuse(estimate(run, date(2026, 3, 2)), FUND_PARTY).code is Code.NOT_ALLOWED_FOR_PARTY


def test_an_estimate_after_the_incapacity_ended_is_refused() -> None:
    run = CaseRun(incapacity(date(2026, 1, 5)))
    run.send(r.IncapacityEnded(report_id=rid(), case_id=run.id, ended_on=date(2026, 2, 1)), FUND_PARTY)
    refused = run.refuse(estimate(run, date(2026, 3, 2)), OHS_PARTY)
    assert refused.code is Code.INVALID_STATE and "2026-02-01" in refused.message


@pytest.mark.parametrize("amount", ["0", "-5.00", "1000.01", "62.505", "NaN"])
def test_a_daily_benefit_that_is_not_a_positive_amount_in_cents_up_to_1000_is_refused(amount: str) -> None:
    run = CaseRun(incapacity(date(2026, 1, 5)))
    report = r.DailyBenefitReported(report_id=rid(), case_id=run.id, applies_from=date(2026, 2, 4),
                                    daily_benefit=Decimal(amount))
    refused = run.refuse(report, FUND_PARTY)
    assert (refused.code, refused.field) == (Code.INVALID_FIELD, "$.daily_benefit")


def test_a_daily_benefit_is_recorded_from_its_date_by_the_health_fund_only() -> None:
    run = CaseRun(incapacity(date(2026, 1, 5)))
    report = r.DailyBenefitReported(report_id=rid(), case_id=run.id, applies_from=date(2026, 2, 4),
                                    daily_benefit=Decimal("72.35"))
    assert run.refuse(report, EMPLOYER_PARTY).code is Code.NOT_ALLOWED_FOR_PARTY
    assert run.send(report, FUND_PARTY) == "BE-2026"
    early = r.DailyBenefitReported(report_id=rid(), case_id=run.id, applies_from=date(2026, 1, 4),
                                   daily_benefit=Decimal("72.35"))
    assert run.refuse(early, FUND_PARTY).code is Code.INVALID_DATE


def test_a_contact_needs_an_unjustified_miss_before_it() -> None:
    run = CaseRun(incapacity(date(2026, 1, 5)))
    contact = r.AdvisingPhysicianContacted(report_id=rid(), case_id=run.id, contacted_on=date(2026, 3, 10))
    assert run.refuse(contact, FUND_PARTY).code is Code.INVALID_STATE
    run.send(r.ReturnToWorkExaminationMissed(report_id=rid(), case_id=run.id, missed_on=date(2026, 3, 2),
                                             justified=True), FUND_PARTY)
    assert run.refuse(contact, FUND_PARTY).code is Code.INVALID_STATE  # a justified miss is no sanction
    run.send(r.ReturnToWorkExaminationMissed(report_id=rid(), case_id=run.id, missed_on=date(2026, 3, 5),
                                             justified=False, physical_appointment=True), FUND_PARTY)
    before = r.AdvisingPhysicianContacted(report_id=rid(), case_id=run.id, contacted_on=date(2026, 3, 4))
    refused = run.refuse(before, FUND_PARTY)
    assert (refused.code, refused.field) == (Code.INVALID_DATE, "$.contacted_on")
    assert run.send(contact, FUND_PARTY) == "BE-2026"
    assert run.case is not None and run.case.last_missed_on == date(2026, 3, 5)


def test_seniority_after_the_first_day_of_incapacity_is_refused_and_the_contract_kind_is_decoded() -> None:
    opening = incapacity(date(2026, 1, 5), employed_since=date(2026, 1, 6))
    with pytest.raises(Rejection) as caught:
        CaseRun(opening)
    assert (caught.value.code, caught.value.field) == (Code.INVALID_DATE, "$.employed_since")
    sent = incapacity(date(2026, 1, 5), employed_since=date(2019, 9, 1), contract_kind=r.ContractKind.FLEXI_JOB)
    raw = msgspec.json.encode(sent)
    assert b'"contract_kind":"flexi_job"' in raw
    report = decode_report(raw)
    assert isinstance(report, r.IncapacityReported)
    assert (report.employed_since, report.contract_kind) == (date(2019, 9, 1), r.ContractKind.FLEXI_JOB)
    assert CaseRun(report).case is not None


def employer_request(run: CaseRun, day: date, consent: bool = False) -> r.TrajectoryRequested:
    return r.TrajectoryRequested(report_id=rid(), case_id=run.id, initiator=r.Initiator.EMPLOYER, received_on=day,
                                 worker_consent=consent)


def test_an_employer_requests_before_3_months_only_with_consent_or_an_estimate_that_found_work_potential() -> None:
    run = CaseRun(incapacity(date(2026, 1, 5)))
    refused = run.refuse(employer_request(run, date(2026, 3, 2)), EMPLOYER_PARTY)
    assert (refused.code, refused.field, refused.rule, refused.regime) == (
        Code.NOT_ELIGIBLE, "$.received_on", "trajectory.request.employer", "BE-2026")
    assert ("earlier only with the worker's consent or an estimate that found work potential or a certificate of "
            "definitive unfitness") in refused.message
    run.send(estimate(run, date(2026, 3, 3), work_potential=True), OHS_PARTY)
    # an estimate after the day the request was received does not count for it
    assert run.refuse(employer_request(run, date(2026, 3, 2)), EMPLOYER_PARTY).code is Code.NOT_ELIGIBLE
    assert run.send(employer_request(run, date(2026, 3, 3)), EMPLOYER_PARTY) == "BE-2026"


def test_the_latest_estimate_before_the_request_decides() -> None:
    run = CaseRun(incapacity(date(2026, 1, 5)))
    run.send(estimate(run, date(2026, 2, 2), work_potential=True), OHS_PARTY)
    run.send(estimate(run, date(2026, 2, 16), work_potential=False), OHS_PARTY)
    assert run.case is not None and run.case.work_potential_on(date(2026, 2, 10)) is True
    assert run.refuse(employer_request(run, date(2026, 3, 2)), EMPLOYER_PARTY).code is Code.NOT_ELIGIBLE
    assert run.send(employer_request(run, date(2026, 3, 2), consent=True), EMPLOYER_PARTY) == "BE-2026"


def test_before_2026_an_estimate_does_not_open_the_employers_right() -> None:
    run = CaseRun(incapacity(date(2025, 10, 1)))
    run.send(estimate(run, date(2026, 1, 1)), OHS_PARTY)  # the day the 2026 law applies
    refused = run.refuse(employer_request(run, date(2025, 12, 31)), EMPLOYER_PARTY)
    assert (refused.code, refused.regime) == (Code.NOT_ELIGIBLE, "BE-2022")
