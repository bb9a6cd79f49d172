"""Decide: may this report be recorded on this case, under the rule in force on its date?

Pure functions: given the case (or ``None``), the report, the reporting party, the Belgian date of receipt and
the rulebook, either return the regime under which the report is recorded or raise :class:`Rejection` naming the
code, the field, the rule and the regime. Nothing here reads a clock or a store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from shared.events import reports as r
from shared.events.common import (
    IdentifierError,
    Party,
    PartyKind,
    normalise_enterprise_number,
    normalise_health_fund,
    normalise_insz,
)
from shared.events.replies import RejectionCode
from shared.rulebook import Rulebook
from shared.rulebook.calendar import FIRST_DAY, months_after
from shared.rulebook.eligibility import (
    Ineligible,
    check_force_majeure_start,
    check_request_right,
    earliest_force_majeure_decision,
)
from shared.rulebook.model import ForceMajeureStart

from .case import Case, PartialResumption, Rehabilitation, Trajectory

Code = RejectionCode
#: No report of a working life's incapacity can take effect before this day.
EARLIEST = FIRST_DAY
#: A date a report states besides its effective one (a resumption's start, an authorisation's end ...) may lie
#: ahead of the day of receipt, by this many years at most: far inside what the calendar covers (to 2100) with
#: every period the rules add to it.
YEARS_AHEAD = 5


@dataclass
class Rejection(Exception):
    """A report that cannot be recorded; becomes a :class:`~shared.events.replies.Rejected` reply at the edge."""

    code: RejectionCode
    message: str
    field: str | None = None
    rule: str | None = None
    regime: str | None = None

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


def _state(message: str, field: str | None = None) -> Rejection:
    return Rejection(Code.INVALID_STATE, message, field=field)


def _ineligible(exc: Ineligible, field: str) -> Rejection:
    code = Code.NO_REGIME if exc.regime is None or exc.not_yet else Code.NOT_ELIGIBLE
    return Rejection(code, exc.message, field=field, rule=exc.rule, regime=exc.regime)


def decide(case: Case | None, report: r.Report, party: Party, today: date, rulebook: Rulebook) -> str | None:
    """Check ``report`` against ``case``; return the regime in force on its effective date, or raise."""
    authorise(case, report, party)
    effective = report.effective_date
    if effective < EARLIEST:
        raise Rejection(
            Code.INVALID_DATE,
            f"{report.effective_field} {effective.isoformat()} is before {EARLIEST.isoformat()}: not a plausible date",
            field=f"$.{report.effective_field}",
        )
    if effective > today:
        raise Rejection(
            Code.INVALID_DATE,
            f"{report.effective_field} {effective.isoformat()} is after the day of receipt {today.isoformat()}",
            field=f"$.{report.effective_field}",
        )
    _check_other_dates(report, today)
    if isinstance(report, r.IncapacityReported):
        _check_new_case(report)
    else:
        assert case is not None, "the application loads the case before deciding"
        _check_case_report(case, report)
        _CHECKS.get(type(report), _no_check)(case, report, party, rulebook)
    regime = rulebook.regime_on(effective)
    return regime.id if regime else None


def authorise(case: Case | None, report: r.Report, party: Party) -> None:
    """May ``party`` send this kind of report about this case? Checked before anything about the case is told."""
    if party.kind not in type(report).reporters:
        allowed = ", ".join(sorted(k.value for k in type(report).reporters))
        raise Rejection(
            Code.NOT_ALLOWED_FOR_PARTY,
            f"a {party.kind.value.replace('_', ' ')} may not send {r.tag_of(report)} (sent by: {allowed})",
            field="$.type",
        )
    if isinstance(report, r.IncapacityReported):
        own = {PartyKind.EMPLOYER: report.enterprise_number, PartyKind.HEALTH_FUND: report.health_fund}
        if own.get(party.kind, party.id) != party.id:
            raise Rejection(
                Code.NOT_ALLOWED_FOR_PARTY,
                f"{party} may only report incapacities of its own "
                f"{'workers' if party.kind is PartyKind.EMPLOYER else 'members'}",
                field="$.enterprise_number" if party.kind is PartyKind.EMPLOYER else "$.health_fund",
            )
        return
    if case is None:
        return
    owner = {
        PartyKind.EMPLOYER: case.enterprise_number,
        PartyKind.HEALTH_FUND: case.health_fund,
        PartyKind.OCCUPATIONAL_HEALTH_SERVICE: case.occupational_health_service,
    }[party.kind]
    if owner != party.id:
        raise unknown_case(case.id, party)


def unknown_case(case_id: UUID, party: Party) -> Rejection:
    """The one answer for a case that does not exist and for a case of other parties: no oracle of who is sick."""
    return Rejection(Code.CASE_NOT_FOUND, f"{party} has no case {case_id}", field="$.case_id")


def latest_date(today: date) -> date:
    """The last day a report received on ``today`` may state (:data:`YEARS_AHEAD`)."""
    try:
        return today.replace(year=today.year + YEARS_AHEAD)
    except ValueError:  # 29 February
        return today.replace(year=today.year + YEARS_AHEAD, day=28)


def _check_other_dates(report: r.Report, today: date) -> None:
    """Every date the report states, besides its effective date (checked against the day of receipt), lies
    between :data:`EARLIEST` and :func:`latest_date`: the dates the calendar and the rules cover."""
    latest = latest_date(today)
    for name in report.__struct_fields__:
        value = getattr(report, name)
        if name == report.effective_field or not isinstance(value, date):
            continue
        if not EARLIEST <= value <= latest:
            raise Rejection(
                Code.INVALID_DATE,
                f"{name} {value.isoformat()} is outside the dates a report may state: from {EARLIEST.isoformat()} "
                f"to {latest.isoformat()} ({YEARS_AHEAD} years after the day of receipt)",
                field=f"$.{name}",
            )


def _check_new_case(report: r.IncapacityReported) -> None:
    try:
        canonical = {
            "insz": normalise_insz(report.insz, "$.insz"),
            "enterprise_number": normalise_enterprise_number(report.enterprise_number, "$.enterprise_number"),
        }
        normalise_health_fund(report.health_fund, "$.health_fund")
        canonical["occupational_health_service"] = normalise_enterprise_number(
            report.occupational_health_service, "$.occupational_health_service")
    except IdentifierError as exc:
        raise Rejection(Code.INVALID_IDENTIFIER, exc.message, field=exc.field) from None
    for field, value in canonical.items():
        if getattr(report, field) != value:
            raise Rejection(Code.INVALID_IDENTIFIER, f"{field} must be sent in its compact form, digits only: "
                            f"{value}", field=f"$.{field}")
    if report.employed_since is not None and report.employed_since > report.start_date:
        raise Rejection(Code.INVALID_DATE, f"employed_since {report.employed_since.isoformat()} is after the first "
                        f"day of incapacity ({report.start_date.isoformat()})", field="$.employed_since")


def _check_case_report(case: Case, report: r.Report) -> None:
    if case.closed_on is not None:
        raise Rejection(Code.CASE_CLOSED, f"case {case.id} was closed on {case.closed_on.isoformat()}")
    effective = report.effective_date
    if effective < case.timeline.start:
        raise Rejection(
            Code.INVALID_DATE,
            f"{report.effective_field} {effective.isoformat()} is before the incapacity started "
            f"({case.timeline.start.isoformat()})",
            field=f"$.{report.effective_field}",
        )


R = TypeVar("R", bound=r.Report)
#: The check of one kind of report: ``check(case, report, party, rulebook)`` returns or raises :class:`Rejection`.
Check = Callable[[Case, R, Party, Rulebook], None]
#: Each kind of report's check, by its type (:func:`decide` calls the one of the report's own type).
_CHECKS: dict[type[r.Report], Callable[..., None]] = {}


def check(cls: type[R]) -> Callable[[Check[R]], Check[R]]:
    """Register the decorated function as the check of reports of type ``cls``."""
    def register(fn: Check[R]) -> Check[R]:
        _CHECKS[cls] = fn
        return fn

    return register


def _no_check(case: Case, report: r.Report, party: Party, rulebook: Rulebook) -> None:
    return None


def _after(day: date, earlier: date | None, field: str, what: str) -> None:
    if earlier is not None and day < earlier:
        raise Rejection(Code.INVALID_DATE, f"{field} {day.isoformat()} is before {what} ({earlier.isoformat()})",
                        f"$.{field}")


# --- incapacity ------------------------------------------------------------------------------------------


@check(r.IncapacityInterrupted)
def _(case: Case, report: r.IncapacityInterrupted, party: Party, rulebook: Rulebook) -> None:
    gaps = case.timeline.interruptions
    if gaps and gaps[-1].resumed_on is None:
        raise _state(f"the worker is already back at work since {gaps[-1].returned_on.isoformat()}")
    if case.timeline.ended_on is not None:
        raise _state(f"the incapacity ended on {case.timeline.ended_on.isoformat()}")
    if gaps:
        _after(report.returned_on, gaps[-1].resumed_on, "returned_on", "the last resumption of incapacity")
    if report.returned_on == case.timeline.start:
        raise Rejection(Code.INVALID_DATE, "returned_on is the first day of incapacity", "$.returned_on")


@check(r.IncapacityResumed)
def _(case: Case, report: r.IncapacityResumed, party: Party, rulebook: Rulebook) -> None:
    gaps = case.timeline.interruptions
    if not gaps or gaps[-1].resumed_on is not None:
        raise _state("no return to work is open: report incapacity_interrupted first")
    if report.resumed_on <= gaps[-1].returned_on:
        raise Rejection(Code.INVALID_DATE, "resumed_on must be after returned_on", "$.resumed_on")


@check(r.IncapacityEnded)
def _(case: Case, report: r.IncapacityEnded, party: Party, rulebook: Rulebook) -> None:
    if case.timeline.ended_on is not None:
        raise _state(f"the incapacity already ended on {case.timeline.ended_on.isoformat()}")
    _after_timeline(case, report.ended_on, "ended_on")


@check(r.IncapacityReviewed)
def _(case: Case, report: r.IncapacityReviewed, party: Party, rulebook: Rulebook) -> None:
    if report.outcome is r.ReviewOutcome.INCAPACITY_ENDS and case.timeline.ended_on is None:
        _after_timeline(case, report.reviewed_on, "reviewed_on")  # the review ends the incapacity on that day


def _after_timeline(case: Case, day: date, field: str) -> None:
    """The last day of incapacity (``day``) must not precede what the case records: the last resumption of
    incapacity, or, while the worker is back at work, the day before the return."""
    if gaps := case.timeline.interruptions:
        last = gaps[-1]
        if last.resumed_on is not None:
            _after(day, last.resumed_on, field, "the last resumption of incapacity recorded")
        else:
            _after(day, last.returned_on - timedelta(days=1), field,
                   f"the last day of incapacity before the return to work on {last.returned_on.isoformat()}")


# --- the trajectory --------------------------------------------------------------------------------------

_INITIATOR_PARTY = {
    r.Initiator.WORKER: PartyKind.OCCUPATIONAL_HEALTH_SERVICE,
    r.Initiator.TREATING_PHYSICIAN: PartyKind.OCCUPATIONAL_HEALTH_SERVICE,
    r.Initiator.ADVISING_PHYSICIAN: PartyKind.HEALTH_FUND,
    r.Initiator.EMPLOYER: PartyKind.EMPLOYER,
}


@check(r.TrajectoryRequested)
def _(case: Case, report: r.TrajectoryRequested, party: Party, rulebook: Rulebook) -> None:
    expected = _INITIATOR_PARTY[report.initiator]
    if party.kind is not expected:
        raise Rejection(
            Code.NOT_ALLOWED_FOR_PARTY,
            f"a request by the {report.initiator.value.replace('_', ' ')} is reported by the "
            f"{expected.value.replace('_', ' ')}, not by {party}",
            field="$.initiator",
        )
    if (running := case.running_trajectory) is not None:
        raise _state(f"trajectory {running.number} is running since {running.requested_on.isoformat()}")
    try:
        check_request_right(
            rulebook,
            initiator=report.initiator.value,
            received_on=report.received_on,
            timeline=case.timeline,
            certificate_on=case.certificate_on,
            worker_consent=report.worker_consent,
            work_potential=case.work_potential_on(report.received_on),
        )
    except Ineligible as exc:
        raise _ineligible(exc, "$.received_on") from None


@check(r.WorkPotentialEstimated)
def _(case: Case, report: r.WorkPotentialEstimated, party: Party, rulebook: Rulebook) -> None:
    regime = rulebook.regime_on(report.estimated_on)
    if regime is None or not rulebook.has_rule(regime.id, WORK_POTENTIAL_RULE):
        raise Rejection(
            Code.NO_REGIME,
            f"the work-potential estimate is part of the law from 2026; {regime.id if regime else 'no regime'} in "
            f"force on {report.estimated_on.isoformat()} has no rule {WORK_POTENTIAL_RULE}",
            field="$.estimated_on", rule=WORK_POTENTIAL_RULE, regime=regime.id if regime else None,
        )
    if case.timeline.ended_on is not None and report.estimated_on > case.timeline.ended_on:
        raise _state(f"the incapacity ended on {case.timeline.ended_on.isoformat()}", "$.estimated_on")


#: The rule that asks for the work-potential estimate (be-deadlines.toml): where the rulebook has it, it may be sent.
WORK_POTENTIAL_RULE = "employer.work_potential"


def _running(case: Case) -> Trajectory:
    t = case.running_trajectory
    if t is None:
        raise _state("no re-integration trajectory is running on this case")
    return t


@check(r.ExaminationRefused)
def _(case: Case, report: r.ExaminationRefused, party: Party, rulebook: Rulebook) -> None:
    t = _running(case)
    if t.assessment is not None:
        raise _state(f"the assessment was already issued on {t.assessed_on}")
    _after(report.refused_on, t.requested_on, "refused_on", "the request")


@check(r.AssessmentIssued)
def _(case: Case, report: r.AssessmentIssued, party: Party, rulebook: Rulebook) -> None:
    t = _running(case)
    if t.assessment is not None and not (t.assessment == "E" and t.assessment_regime == "BE-2016"):
        raise _state(f"trajectory {t.number} was already assessed ({t.assessment}) on {t.assessed_on}")
    _after(report.issued_on, t.requested_on, "issued_on", "the request")
    regime = rulebook.regime_on(report.issued_on)
    if regime is None:
        raise Rejection(Code.NO_REGIME, f"no regime in force on {report.issued_on}", "$.issued_on")
    if report.regime not in rulebook.lineage(regime.id):
        raise Rejection(
            Code.NOT_ELIGIBLE,
            f"an assessment issued on {report.issued_on.isoformat()} falls under {regime.id} "
            f"(codes of {', '.join(rulebook.lineage(regime.id))}), not {report.regime}",
            field="$.regime",
            regime=regime.id,
        )
    if report.decision not in regime.decision_codes:
        raise Rejection(
            Code.NOT_ELIGIBLE,
            f"decision {report.decision} does not exist under {regime.id} "
            f"(codes: {', '.join(regime.decision_codes)})",
            field="$.decision",
            regime=regime.id,
        )


def _assessment_regime(case: Case, rulebook: Rulebook) -> tuple[Trajectory, object]:
    t = _running(case)
    if t.assessment is None or t.assessment_regime is None:
        raise _state("the occupational physician has not issued an assessment yet")
    return t, rulebook.regime(t.assessment_regime)


@check(r.AppealLodged)
def _(case: Case, report: r.AppealLodged, party: Party, rulebook: Rulebook) -> None:
    t, regime = _assessment_regime(case, rulebook)
    if t.assessment not in regime.definitive_codes:  # type: ignore[attr-defined]
        raise _state(f"decision {t.assessment} ({t.assessment_regime}) is not a definitive unfitness: no appeal")
    if t.appeal_lodged_on is not None:
        raise _state(f"an appeal was already lodged on {t.appeal_lodged_on} (once per trajectory)")
    _after(report.lodged_on, t.assessed_on, "lodged_on", "the assessment")


@check(r.AppealDecided)
def _(case: Case, report: r.AppealDecided, party: Party, rulebook: Rulebook) -> None:
    t = _running(case)
    if not t.appeal_pending:
        raise _state("no appeal is pending")
    _after(report.decided_on, t.appeal_lodged_on, "decided_on", "the appeal")


def _check_plan(case: Case, report: r.PlanSubmitted | r.ImpossibilityReportSubmitted, rulebook: Rulebook) -> None:
    t, regime = _assessment_regime(case, rulebook)
    plan_codes: dict[str, str] = regime.plan_codes  # type: ignore[attr-defined]
    if t.assessment not in plan_codes:
        raise _state(f"decision {t.assessment} ({t.assessment_regime}) does not call for a plan")
    if t.appeal_pending:
        raise _state(f"the appeal lodged on {t.appeal_lodged_on} suspends the trajectory")
    if t.assessment_upheld is False:
        raise _state("the appeal overturned the assessment: no plan follows")
    if t.plan_kind is not None:
        raise _state(f"a {t.plan_kind.replace('_', ' ')} was already submitted on {t.plan_submitted_on}")
    if report.unfitness.value != plan_codes[t.assessment]:
        raise Rejection(
            Code.INVALID_FIELD,
            f"decision {t.assessment} ({t.assessment_regime}) is a {plan_codes[t.assessment]} unfitness",
            field="$.unfitness",
            regime=t.assessment_regime,
        )
    _after(report.submitted_on, t.assessed_on, "submitted_on", "the assessment")


@check(r.PlanSubmitted)
def _(case: Case, report: r.PlanSubmitted, party: Party, rulebook: Rulebook) -> None:
    _check_plan(case, report, rulebook)


@check(r.ImpossibilityReportSubmitted)
def _(case: Case, report: r.ImpossibilityReportSubmitted, party: Party, rulebook: Rulebook) -> None:
    _check_plan(case, report, rulebook)


def _check_answer(case: Case, day: date, field: str) -> None:
    t = _running(case)
    if t.plan_kind != "plan":
        raise _state("no re-integration plan was submitted")
    if t.plan_answer is not None:
        raise _state(f"the plan was already answered ({t.plan_answer}) on {t.answered_on}")
    _after(day, t.plan_submitted_on, field, "the plan")


@check(r.PlanAnswered)
def _(case: Case, report: r.PlanAnswered, party: Party, rulebook: Rulebook) -> None:
    _check_answer(case, report.answered_on, "answered_on")


@check(r.PlanUnanswered)
def _(case: Case, report: r.PlanUnanswered, party: Party, rulebook: Rulebook) -> None:
    _check_answer(case, report.noted_on, "noted_on")


@check(r.TrajectoryEnded)
def _(case: Case, report: r.TrajectoryEnded, party: Party, rulebook: Rulebook) -> None:
    _after(report.ended_on, _running(case).requested_on, "ended_on", "the request")


# --- partial resumption ----------------------------------------------------------------------------------


@check(r.PartialResumptionDeclared)
def _(case: Case, report: r.PartialResumptionDeclared, party: Party, rulebook: Rulebook) -> None:
    _hours(report.full_time_hours, "full_time_hours", most=60, positive=True)
    _hours(report.weekly_hours, "weekly_hours", most=168)
    if (p := case.partial_resumption) is not None:
        raise _state(f"a partial resumption declared on {p.declared_on} is still running")
    if report.weekly_hours > report.full_time_hours:
        raise Rejection(Code.INVALID_FIELD, "weekly_hours exceed full_time_hours", "$.weekly_hours")
    if case.timeline.ended_on is not None:
        raise _state(f"the incapacity ended on {case.timeline.ended_on}")
    _after(report.starts_on, case.timeline.start, "starts_on", "the start of the incapacity")


def _hours(value: Decimal, field: str, *, most: int, positive: bool = False) -> None:
    """Hours as the contract states them: a finite number from 0 (or above 0) to ``most``, at most 2 decimals."""
    value = value if isinstance(value, Decimal) else Decimal(value)  # a struct built in Python may hold an int
    if (not value.is_finite() or value < 0 or (positive and value == 0) or value > most
            or value != value.quantize(Decimal("0.01"))):
        low = "above 0" if positive else "from 0"
        raise Rejection(Code.INVALID_FIELD, f"{field} must be a number of hours {low} to {most}, with at most 2 "
                        f"decimals, not {value}", field=f"$.{field}")


def _resumption(case: Case) -> PartialResumption:
    p = case.partial_resumption
    if p is None:
        raise _state("no partial resumption is running")
    return p


@check(r.PartialResumptionAuthorised)
def _(case: Case, report: r.PartialResumptionAuthorised, party: Party, rulebook: Rulebook) -> None:
    if report.weekly_hours is not None:
        _hours(report.weekly_hours, "weekly_hours", most=168)
    p = _resumption(case)
    if p.authorised_on is not None:
        raise _state(f"the partial resumption was already authorised on {p.authorised_on}")
    _after(report.authorised_on, p.declared_on, "authorised_on", "the declaration")
    if report.valid_until is not None:
        _after(report.valid_until, report.authorised_on, "valid_until", "the authorisation itself")
    if report.weekly_hours is not None and report.weekly_hours > p.full_time_hours:
        raise Rejection(Code.INVALID_FIELD, "weekly_hours exceed the declared full-time hours", "$.weekly_hours")


@check(r.PartialResumptionEnded)
def _(case: Case, report: r.PartialResumptionEnded, party: Party, rulebook: Rulebook) -> None:
    _after(report.ended_on, _resumption(case).starts_on, "ended_on", "the start of the resumption")


@check(r.PartialResumptionFailed)
def _(case: Case, report: r.PartialResumptionFailed, party: Party, rulebook: Rulebook) -> None:
    _after(report.failed_on, _resumption(case).starts_on, "failed_on", "the start of the resumption")


# --- Terug Naar Werk ---------------------------------------------------------------------------------------


@check(r.ReturnToWorkQuestionnaireReturned)
def _(case: Case, report: r.ReturnToWorkQuestionnaireReturned, party: Party, rulebook: Rulebook) -> None:
    if case.questionnaire_sent_on is None or case.questionnaire_returned_on is not None:
        raise _state("no Terug Naar Werk questionnaire is outstanding")
    _after(report.returned_on, case.questionnaire_sent_on, "returned_on", "the questionnaire was sent")


# --- vocational rehabilitation ---------------------------------------------------------------------------


@check(r.VocationalRehabilitationProposed)
def _(case: Case, report: r.VocationalRehabilitationProposed, party: Party, rulebook: Rulebook) -> None:
    if case.rehabilitation is not None and case.rehabilitation.active:
        raise _state(f"a rehabilitation project proposed on {case.rehabilitation.proposed_on} is running")


def _rehabilitation(case: Case, *, approved: bool | None) -> Rehabilitation:
    rehab = case.rehabilitation
    if rehab is None or not rehab.active:
        raise _state("no vocational rehabilitation project is running")
    if approved is True and rehab.approved_on is None:
        raise _state("the Medical Council for Invalidity has not approved the project")
    if approved is False and (rehab.approved_on is not None or rehab.refused_on is not None):
        raise _state("the Medical Council for Invalidity already decided on the project")
    return rehab


@check(r.VocationalRehabilitationApproved)
def _(case: Case, report: r.VocationalRehabilitationApproved, party: Party, rulebook: Rulebook) -> None:
    rehab = _rehabilitation(case, approved=False)
    _after(report.approved_on, rehab.proposed_on, "approved_on", "the proposal")


@check(r.VocationalRehabilitationRefused)
def _(case: Case, report: r.VocationalRehabilitationRefused, party: Party, rulebook: Rulebook) -> None:
    rehab = _rehabilitation(case, approved=False)
    _after(report.refused_on, rehab.proposed_on, "refused_on", "the proposal")


@check(r.TrainingHoursAttended)
def _(case: Case, report: r.TrainingHoursAttended, party: Party, rulebook: Rulebook) -> None:
    rehab = _rehabilitation(case, approved=True)
    _after(report.period_start, rehab.approved_on, "period_start", "the approval")
    _after(report.period_end, report.period_start, "period_end", "period_start")
    days = (report.period_end - report.period_start).days + 1
    hours = report.hours
    if not hours.is_finite() or hours <= 0 or hours > 24 * days or hours != hours.quantize(Decimal("0.01")):
        raise Rejection(
            Code.INVALID_FIELD,
            f"hours must be a positive number with at most 2 decimals and at most {24 * days} for {days} day(s)",
            field="$.hours",
        )


@check(r.RehabilitationCostsReported)
def _(case: Case, report: r.RehabilitationCostsReported, party: Party, rulebook: Rulebook) -> None:
    rehab = _rehabilitation(case, approved=True)
    _after(report.incurred_on, rehab.proposed_on, "incurred_on", "the proposal")
    amount = report.amount
    if not amount.is_finite() or amount <= 0 or amount > 100_000 or amount != amount.quantize(Decimal("0.01")):
        raise Rejection(
            Code.INVALID_FIELD, "amount must be a positive euro amount in cents, at most 100000", field="$.amount"
        )


@check(r.TrainingCompleted)
def _(case: Case, report: r.TrainingCompleted, party: Party, rulebook: Rulebook) -> None:
    rehab = _rehabilitation(case, approved=True)
    _after(report.completed_on, rehab.approved_on, "completed_on", "the approval")


@check(r.JobSearchStarted)
def _(case: Case, report: r.JobSearchStarted, party: Party, rulebook: Rulebook) -> None:
    rehab = case.rehabilitation
    if rehab is None or not rehab.successful:
        raise _state("the job-search phase follows a successfully completed training")
    if rehab.job_search_on is not None:
        raise _state(f"the job-search phase started on {rehab.job_search_on}")
    _after(report.started_on, rehab.completed_on, "started_on", "the end of the training")


# --- medical force majeure and the end of the contract -----------------------------------------------------


@check(r.MedicalForceMajeureStarted)
def _(case: Case, report: r.MedicalForceMajeureStarted, party: Party, rulebook: Rulebook) -> None:
    fm = case.force_majeure
    if fm is not None and fm.decided_on is None:
        raise _state(f"a force-majeure procedure started on {fm.letter_sent_on} is running")
    if fm is not None and fm.definitively_unfit:
        raise _state("medical force majeure was already established")
    if case.terminated_on is not None:
        raise _state(f"the contract was terminated on {case.terminated_on}")
    try:
        in_force = check_force_majeure_start(
            rulebook,
            letter_sent_on=report.letter_sent_on,
            timeline=case.timeline,
            trajectory_running=case.running_trajectory is not None,
        )
    except Ineligible as exc:
        raise _ineligible(exc, "$.letter_sent_on") from None
    if fm is not None and fm.decided_on is not None:
        # The worker was found not definitively unfit: a new procedure needs a new full period after the decision.
        rule = in_force.rule
        if not isinstance(rule, ForceMajeureStart):  # check_force_majeure_start answers with that kind of rule
            raise TypeError(f"{rule.id} is not a force-majeure rule")
        months = rule.min_months
        opens = months_after(fm.decided_on, months)
        if report.letter_sent_on < opens:
            raise Rejection(
                Code.NOT_ELIGIBLE,
                f"{in_force.rule.id} ({in_force.regime.id}): after the decision of {fm.decided_on} a new procedure "
                f"needs a new {months}-month period (from {opens.isoformat()})",
                field="$.letter_sent_on",
                rule=in_force.rule.id,
                regime=in_force.regime.id,
            )


@check(r.MedicalForceMajeureDecided)
def _(case: Case, report: r.MedicalForceMajeureDecided, party: Party, rulebook: Rulebook) -> None:
    fm = case.force_majeure
    if fm is None or fm.decided_on is not None:
        raise _state("no force-majeure procedure is running")
    in_force = rulebook.rule_on("force_majeure.start", fm.letter_sent_on)
    earliest = earliest_force_majeure_decision(in_force, fm.letter_sent_on)
    if report.decided_on < earliest:
        raise Rejection(
            Code.NOT_ELIGIBLE,
            f"{in_force.rule.id} ({in_force.regime.id}): the worker is invited at the earliest on "
            f"{earliest.isoformat()}, 10 days after the letter of {fm.letter_sent_on.isoformat()}",
            field="$.decided_on",
            rule=in_force.rule.id,
            regime=in_force.regime.id,
        )


@check(r.DailyBenefitReported)
def _(case: Case, report: r.DailyBenefitReported, party: Party, rulebook: Rulebook) -> None:
    amount = report.daily_benefit
    if not amount.is_finite() or amount <= 0 or amount > 1000 or amount != amount.quantize(Decimal("0.01")):
        raise Rejection(Code.INVALID_FIELD, "daily_benefit must be a positive euro amount in cents, at most 1000",
                        field="$.daily_benefit")


@check(r.AdvisingPhysicianContacted)
def _(case: Case, report: r.AdvisingPhysicianContacted, party: Party, rulebook: Rulebook) -> None:
    if case.last_missed_on is None:
        raise _state("no unjustified missed examination or appointment is recorded: there is nothing to contact "
                     "after", "$.contacted_on")
    _after(report.contacted_on, case.last_missed_on, "contacted_on", "the latest missed examination")


@check(r.ContractTerminated)
def _(case: Case, report: r.ContractTerminated, party: Party, rulebook: Rulebook) -> None:
    if case.terminated_on is not None:
        raise _state(f"the contract was already terminated on {case.terminated_on}")


