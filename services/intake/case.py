"""The Case aggregate's state and its one evolve function.

The state holds the facts as received, folded into what the decide functions need to check the next report.
It is a frozen ``msgspec.Struct``; :func:`evolve` returns a new one. No I/O and no clock in here.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from msgspec.structs import replace

from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.rulebook.eligibility import IncapacityTimeline, Interruption


class Trajectory(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    requested_on: date
    initiator: str
    request_rule: str
    request_regime: str
    refusals: int = 0
    assessment: str | None = None
    assessment_regime: str | None = None
    assessed_on: date | None = None
    appeal_lodged_on: date | None = None
    appeal_decided_on: date | None = None
    assessment_upheld: bool | None = None
    #: "plan" or "impossibility_report"
    plan_kind: str | None = None
    plan_unfitness: str | None = None
    plan_submitted_on: date | None = None
    plan_answer: str | None = None
    answered_on: date | None = None
    ended_on: date | None = None

    @property
    def running(self) -> bool:
        return self.ended_on is None

    @property
    def appeal_pending(self) -> bool:
        return self.appeal_lodged_on is not None and self.appeal_decided_on is None


class PartialResumption(msgspec.Struct, frozen=True, kw_only=True):
    declared_on: date
    starts_on: date
    weekly_hours: Decimal
    full_time_hours: Decimal
    authorised_on: date | None = None
    ended_on: date | None = None
    failed_on: date | None = None

    @property
    def active(self) -> bool:
        return self.ended_on is None and self.failed_on is None


class Rehabilitation(msgspec.Struct, frozen=True, kw_only=True):
    proposed_on: date
    approved_on: date | None = None
    refused_on: date | None = None
    completed_on: date | None = None
    successful: bool | None = None
    job_search_on: date | None = None

    @property
    def active(self) -> bool:
        return self.refused_on is None and self.completed_on is None


class ForceMajeure(msgspec.Struct, frozen=True, kw_only=True):
    letter_sent_on: date
    decided_on: date | None = None
    definitively_unfit: bool | None = None


class Case(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    created_at: datetime
    modified_at: datetime
    insz: str
    enterprise_number: str
    staff_count: int
    health_fund: str
    occupational_health_service: str
    cause: str
    timeline: IncapacityTimeline
    certificate_on: date | None = None
    trajectories: tuple[Trajectory, ...] = ()
    partial_resumptions: tuple[PartialResumption, ...] = ()
    questionnaire_sent_on: date | None = None
    questionnaire_returned_on: date | None = None
    examinations_missed: int = 0
    #: The day of the latest unjustified missed examination or appointment (a contact must follow it).
    last_missed_on: date | None = None
    #: The occupational health service's work-potential estimates (2026): (day, work potential found), in the order
    #: reported; the latest on or before a request decides whether the employer may request without consent.
    work_potential_estimates: tuple[tuple[date, bool], ...] = ()
    rehabilitation: Rehabilitation | None = None
    force_majeure: ForceMajeure | None = None
    terminated_on: date | None = None
    closed_on: date | None = None
    def work_potential_on(self, day: date) -> bool | None:
        """What the latest estimate made on or before ``day`` found (a later report for the same day wins), or
        ``None`` when none was made by then."""
        found = [(on, n, potential) for n, (on, potential) in enumerate(self.work_potential_estimates) if on <= day]
        return max(found)[2] if found else None

    #: report id -> version at which it was recorded (idempotency of resent reports)
    reports: dict[UUID, int] = msgspec.field(default_factory=dict)

    @property
    def trajectory(self) -> Trajectory | None:
        """The latest trajectory, running or not."""
        return self.trajectories[-1] if self.trajectories else None

    @property
    def running_trajectory(self) -> Trajectory | None:
        t = self.trajectory
        return t if t is not None and t.running else None

    @property
    def partial_resumption(self) -> PartialResumption | None:
        p = self.partial_resumptions[-1] if self.partial_resumptions else None
        return p if p is not None and p.active else None


def _with_trajectory(case: Case, **changes: Any) -> tuple[Trajectory, ...]:
    current = case.trajectories[-1]
    return (*case.trajectories[:-1], replace(current, **changes))


def _with_resumption(case: Case, **changes: Any) -> tuple[PartialResumption, ...]:
    current = case.partial_resumptions[-1]
    return (*case.partial_resumptions[:-1], replace(current, **changes))


@functools.singledispatch
def _apply(report: r.Report, case: Case, event: CaseEvent) -> dict[str, Any]:
    """Changes to the case for ``report``; reports that only add to the history change nothing else."""
    return {}


@_apply.register
def _(report: r.IncapacityInterrupted, case: Case, event: CaseEvent) -> dict[str, Any]:
    gaps = (*case.timeline.interruptions, Interruption(returned_on=report.returned_on))
    return {"timeline": replace(case.timeline, interruptions=gaps)}


@_apply.register
def _(report: r.IncapacityResumed, case: Case, event: CaseEvent) -> dict[str, Any]:
    *done, last = case.timeline.interruptions
    gaps = (*done, replace(last, resumed_on=report.resumed_on))
    return {"timeline": replace(case.timeline, interruptions=gaps)}


@_apply.register
def _(report: r.IncapacityEnded, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"timeline": replace(case.timeline, ended_on=report.ended_on)}


@_apply.register
def _(report: r.DefinitiveUnfitnessCertified, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"certificate_on": min(filter(None, (case.certificate_on, report.certified_on)))}


@_apply.register
def _(report: r.TrajectoryRequested, case: Case, event: CaseEvent) -> dict[str, Any]:
    trajectory = Trajectory(
        number=len(case.trajectories) + 1,
        requested_on=report.received_on,
        initiator=report.initiator.value,
        request_rule=f"trajectory.request.{report.initiator.value}",
        request_regime=event.regime or "",
    )
    return {"trajectories": (*case.trajectories, trajectory)}


@_apply.register
def _(report: r.ExaminationRefused, case: Case, event: CaseEvent) -> dict[str, Any]:
    t = case.trajectories[-1]
    return {"trajectories": _with_trajectory(case, refusals=t.refusals + 1)}


@_apply.register
def _(report: r.AssessmentIssued, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {
        "trajectories": _with_trajectory(
            case, assessment=report.decision, assessment_regime=report.regime, assessed_on=report.issued_on
        )
    }


@_apply.register
def _(report: r.AppealLodged, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"trajectories": _with_trajectory(case, appeal_lodged_on=report.lodged_on)}


@_apply.register
def _(report: r.AppealDecided, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {
        "trajectories": _with_trajectory(
            case, appeal_decided_on=report.decided_on, assessment_upheld=report.assessment_upheld
        )
    }


@_apply.register
def _(report: r.PlanSubmitted, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {
        "trajectories": _with_trajectory(
            case, plan_kind="plan", plan_unfitness=report.unfitness.value, plan_submitted_on=report.submitted_on
        )
    }


@_apply.register
def _(report: r.ImpossibilityReportSubmitted, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {
        "trajectories": _with_trajectory(
            case,
            plan_kind="impossibility_report",
            plan_unfitness=report.unfitness.value,
            plan_submitted_on=report.submitted_on,
        )
    }


@_apply.register
def _(report: r.PlanAnswered, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"trajectories": _with_trajectory(case, plan_answer=report.answer.value, answered_on=report.answered_on)}


@_apply.register
def _(report: r.PlanUnanswered, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"trajectories": _with_trajectory(case, plan_answer="unanswered", answered_on=report.noted_on)}


@_apply.register
def _(report: r.TrajectoryEnded, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"trajectories": _with_trajectory(case, ended_on=report.ended_on)}


@_apply.register
def _(report: r.PartialResumptionDeclared, case: Case, event: CaseEvent) -> dict[str, Any]:
    resumption = PartialResumption(
        declared_on=report.declared_on,
        starts_on=report.starts_on,
        weekly_hours=report.weekly_hours,
        full_time_hours=report.full_time_hours,
    )
    return {"partial_resumptions": (*case.partial_resumptions, resumption)}


@_apply.register
def _(report: r.PartialResumptionAuthorised, case: Case, event: CaseEvent) -> dict[str, Any]:
    changes: dict[str, Any] = {"authorised_on": report.authorised_on}
    if report.weekly_hours is not None:
        changes["weekly_hours"] = report.weekly_hours
    return {"partial_resumptions": _with_resumption(case, **changes)}


@_apply.register
def _(report: r.PartialResumptionEnded, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"partial_resumptions": _with_resumption(case, ended_on=report.ended_on)}


@_apply.register
def _(report: r.PartialResumptionFailed, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"partial_resumptions": _with_resumption(case, failed_on=report.failed_on)}


@_apply.register
def _(report: r.ReturnToWorkQuestionnaireSent, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"questionnaire_sent_on": report.sent_on, "questionnaire_returned_on": None}


@_apply.register
def _(report: r.ReturnToWorkQuestionnaireReturned, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"questionnaire_returned_on": report.returned_on}


@_apply.register
def _(report: r.ReturnToWorkExaminationMissed, case: Case, event: CaseEvent) -> dict[str, Any]:
    if report.justified:
        return {}
    return {"examinations_missed": case.examinations_missed + 1,
            "last_missed_on": max(report.missed_on, case.last_missed_on or report.missed_on)}


@_apply.register
def _(report: r.WorkPotentialEstimated, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"work_potential_estimates": (*case.work_potential_estimates,
                                         (report.estimated_on, report.work_potential))}


@_apply.register
def _(report: r.VocationalRehabilitationProposed, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"rehabilitation": Rehabilitation(proposed_on=report.proposed_on)}


@_apply.register
def _(report: r.VocationalRehabilitationApproved, case: Case, event: CaseEvent) -> dict[str, Any]:
    assert case.rehabilitation is not None
    return {"rehabilitation": replace(case.rehabilitation, approved_on=report.approved_on)}


@_apply.register
def _(report: r.VocationalRehabilitationRefused, case: Case, event: CaseEvent) -> dict[str, Any]:
    assert case.rehabilitation is not None
    return {"rehabilitation": replace(case.rehabilitation, refused_on=report.refused_on)}


@_apply.register
def _(report: r.TrainingCompleted, case: Case, event: CaseEvent) -> dict[str, Any]:
    assert case.rehabilitation is not None
    return {
        "rehabilitation": replace(case.rehabilitation, completed_on=report.completed_on, successful=report.successful)
    }


@_apply.register
def _(report: r.JobSearchStarted, case: Case, event: CaseEvent) -> dict[str, Any]:
    assert case.rehabilitation is not None
    return {"rehabilitation": replace(case.rehabilitation, job_search_on=report.started_on)}


@_apply.register
def _(report: r.IncapacityReviewed, case: Case, event: CaseEvent) -> dict[str, Any]:
    if report.outcome is r.ReviewOutcome.INCAPACITY_ENDS and case.timeline.ended_on is None:
        return {"timeline": replace(case.timeline, ended_on=report.reviewed_on)}
    return {}


@_apply.register
def _(report: r.MedicalForceMajeureStarted, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"force_majeure": ForceMajeure(letter_sent_on=report.letter_sent_on)}


@_apply.register
def _(report: r.MedicalForceMajeureDecided, case: Case, event: CaseEvent) -> dict[str, Any]:
    assert case.force_majeure is not None
    fm = replace(case.force_majeure, decided_on=report.decided_on, definitively_unfit=report.definitively_unfit)
    return {"force_majeure": fm}


@_apply.register
def _(report: r.ContractTerminated, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"terminated_on": report.terminated_on}


@_apply.register
def _(report: r.CaseClosed, case: Case, event: CaseEvent) -> dict[str, Any]:
    return {"closed_on": report.closed_on}


def evolve(case: Case | None, event: CaseEvent) -> Case:
    """The case after ``event``. The first event must be an :class:`~shared.events.reports.IncapacityReported`."""
    report = event.report
    if case is None:
        if not isinstance(report, r.IncapacityReported):
            raise ValueError(f"case {event.case_id} starts with {type(report).__name__}, not IncapacityReported")
        return Case(
            id=event.case_id,
            version=event.version,
            created_at=event.recorded_at,
            modified_at=event.recorded_at,
            insz=report.insz,
            enterprise_number=report.enterprise_number,
            staff_count=report.staff_count,
            health_fund=report.health_fund,
            occupational_health_service=report.occupational_health_service,
            cause=report.cause.value,
            timeline=IncapacityTimeline(start=report.start_date),
            reports={report.report_id: event.version},
        )
    if event.version != case.version + 1:
        raise ValueError(f"case {case.id}: event version {event.version} does not follow {case.version}")
    changes = _apply(report, case, event)
    return replace(
        case,
        version=event.version,
        modified_at=event.recorded_at,
        reports={**case.reports, report.report_id: event.version},
        **changes,
    )


def project_case(case: Case | None, events: Any) -> Case | None:
    """eventsourcing projector: folds stored events into a case (``None`` when there are none)."""
    for event in events:
        case = evolve(case, event)
    return case
