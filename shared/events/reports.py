"""What the parties report: one tagged struct per fact of a re-integration trajectory.

Reports are past-tense facts as a party knows them. Each carries a ``report_id`` chosen by the reporting party
(the idempotency key: the same report sent twice is answered the same way and stored once) and, except for the
report that opens a case, the ``case_id`` the system gave in its reply. The date fields are the effective dates
the law counts with; the time a report was received is added by the intake service, never taken from the party.

Tags are versioned (``"<name>.v1"``): a change that old readers cannot decode gets a new tag, a compatible one a
new field with a default (see msgspec's schema-evolution rules).
"""

from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal
from typing import Annotated, ClassVar, Union
from uuid import UUID

import msgspec

from .common import DailyAmount, FreeText, FullTimeHours, Hours, Medical, PartyKind, ShortCode, StaffCount, Struct

H = PartyKind.HEALTH_FUND
O = PartyKind.OCCUPATIONAL_HEALTH_SERVICE  # noqa: E741
E = PartyKind.EMPLOYER


class Cause(enum.StrEnum):
    ILLNESS = "illness"
    WORK_ACCIDENT = "work_accident"
    OCCUPATIONAL_DISEASE = "occupational_disease"


class Initiator(enum.StrEnum):
    WORKER = "worker"
    TREATING_PHYSICIAN = "treating_physician"
    ADVISING_PHYSICIAN = "advising_physician"
    EMPLOYER = "employer"


class Unfitness(enum.StrEnum):
    TEMPORARY = "temporary"
    DEFINITIVE = "definitive"


class PlanAnswer(enum.StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"


class CostKind(enum.StrEnum):
    REGISTRATION = "registration"
    TRANSPORT = "transport"
    MATERIAL = "material"


class ContractKind(enum.StrEnum):
    """The worker's kind of contract: the 2026 solidarity contribution leaves out the last five."""

    OPEN_ENDED = "open_ended"
    FIXED_TERM = "fixed_term"
    TEMPORARY_AGENCY = "temporary_agency"
    FLEXI_JOB = "flexi_job"
    STUDENT = "student"
    APPRENTICE = "apprentice"
    SHELTERED_WORKSHOP = "sheltered_workshop"


class ReviewOutcome(enum.StrEnum):
    INCAPACITY_CONTINUES = "incapacity_continues"
    INCAPACITY_ENDS = "incapacity_ends"


#: Hours of training in a period: a decimal (quarter hours happen); bounds are checked by the Case (0 < h <= 744).
TrainingHours = Decimal


class Report(Struct, frozen=True, tag_field="type"):
    """Base of every party report."""

    #: Which party kinds may send this report (checked against the subject it arrived on).
    reporters: ClassVar[frozenset[PartyKind]] = frozenset()
    #: Name of the date field that places this report on the case's timeline.
    effective_field: ClassVar[str] = ""

    report_id: UUID

    @property
    def effective_date(self) -> date:
        return getattr(self, self.effective_field)


class CaseReport(Report, frozen=True):
    """A report about an existing case."""

    case_id: UUID


# --- incapacity -------------------------------------------------------------------------------------------


class IncapacityReported(Report, frozen=True, tag="incapacity_reported.v1"):
    """Opens a case: a worker is incapacitated for work from ``start_date``."""

    reporters: ClassVar = frozenset({H, E})
    effective_field: ClassVar = "start_date"

    insz: str
    enterprise_number: str
    staff_count: StaffCount
    health_fund: str
    occupational_health_service: str
    start_date: date
    cause: Cause
    diagnosis: Medical | None = None
    #: The first day of the worker's employment with this employer (seniority), where the reporter knows it.
    employed_since: date | None = None
    contract_kind: ContractKind | None = None


class IncapacityInterrupted(CaseReport, frozen=True, tag="incapacity_interrupted.v1"):
    """The worker went back to work on ``returned_on`` (the incapacity may resume later)."""

    reporters: ClassVar = frozenset({H, E})
    effective_field: ClassVar = "returned_on"
    returned_on: date


class IncapacityResumed(CaseReport, frozen=True, tag="incapacity_resumed.v1"):
    """The worker is incapacitated again from ``resumed_on`` after an interruption."""

    reporters: ClassVar = frozenset({H, E})
    effective_field: ClassVar = "resumed_on"
    resumed_on: date


class IncapacityEnded(CaseReport, frozen=True, tag="incapacity_ended.v1"):
    """The incapacity ended; ``ended_on`` is the last day of incapacity."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "ended_on"
    ended_on: date


class DefinitiveUnfitnessCertified(CaseReport, frozen=True, tag="definitive_unfitness_certified.v1"):
    """A treating physician certified that the worker is definitively unfit for the agreed work."""

    reporters: ClassVar = frozenset({O, E})
    effective_field: ClassVar = "certified_on"
    certified_on: date
    findings: Medical | None = None


# --- the company re-integration trajectory ---------------------------------------------------------------


class TrajectoryRequested(CaseReport, frozen=True, tag="trajectory_requested.v1"):
    """The occupational physician received a request for a re-integration trajectory on ``received_on``."""

    reporters: ClassVar = frozenset({H, O, E})
    effective_field: ClassVar = "received_on"
    initiator: Initiator
    received_on: date
    worker_consent: bool = False


class WorkPotentialEstimated(CaseReport, frozen=True, tag="work_potential_estimated.v1"):
    """The occupational physician (or nursing staff) estimated the worker's work potential (from 2026): whether the
    worker can still do adapted or other work, the outcome the employer is told, never a finding."""

    reporters: ClassVar = frozenset({O})
    effective_field: ClassVar = "estimated_on"
    estimated_on: date
    work_potential: bool


class ExaminationRefused(CaseReport, frozen=True, tag="examination_refused.v1"):
    """The worker refused the occupational physician's re-integration examination."""

    reporters: ClassVar = frozenset({O})
    effective_field: ClassVar = "refused_on"
    refused_on: date


class AssessmentIssued(CaseReport, frozen=True, tag="assessment_issued.v1"):
    """The occupational physician's re-integration assessment, coded under ``regime`` (A-E 2016, A-C 2022)."""

    reporters: ClassVar = frozenset({O})
    effective_field: ClassVar = "issued_on"
    issued_on: date
    regime: ShortCode
    decision: Annotated[str, msgspec.Meta(pattern=r"^[A-E]$(?!\n)")]
    conditions: Medical | None = None


class AppealLodged(CaseReport, frozen=True, tag="appeal_lodged.v1"):
    """The worker appealed against a definitive-unfitness assessment."""

    reporters: ClassVar = frozenset({O})
    effective_field: ClassVar = "lodged_on"
    lodged_on: date


class AppealDecided(CaseReport, frozen=True, tag="appeal_decided.v1"):
    """The appeal panel decided; ``assessment_upheld`` false means the assessment was overturned."""

    reporters: ClassVar = frozenset({O})
    effective_field: ClassVar = "decided_on"
    decided_on: date
    assessment_upheld: bool


class PlanMeasure(Struct, frozen=True):
    """One measure of a re-integration plan (adapted work, hours, training ...)."""

    kind: ShortCode
    description: FreeText | None = None


class PlanSubmitted(CaseReport, frozen=True, tag="plan_submitted.v1"):
    """The employer drew up a re-integration plan for temporary or definitive unfitness."""

    reporters: ClassVar = frozenset({E})
    effective_field: ClassVar = "submitted_on"
    submitted_on: date
    unfitness: Unfitness
    measures: Annotated[list[PlanMeasure], msgspec.Meta(min_length=1, max_length=50)]


class ImpossibilityReportSubmitted(CaseReport, frozen=True, tag="impossibility_report_submitted.v1"):
    """The employer's motivated report that no re-integration plan is possible."""

    reporters: ClassVar = frozenset({E})
    effective_field: ClassVar = "submitted_on"
    submitted_on: date
    unfitness: Unfitness
    motivation: FreeText | None = None


class PlanAnswered(CaseReport, frozen=True, tag="plan_answered.v1"):
    """The worker accepted or refused the plan."""

    reporters: ClassVar = frozenset({O, E})
    effective_field: ClassVar = "answered_on"
    answered_on: date
    answer: PlanAnswer
    reason: FreeText | None = None


class PlanUnanswered(CaseReport, frozen=True, tag="plan_unanswered.v1"):
    """The worker did not answer the plan in time (silence counts as refusal)."""

    reporters: ClassVar = frozenset({O, E})
    effective_field: ClassVar = "noted_on"
    noted_on: date


class TrajectoryEnded(CaseReport, frozen=True, tag="trajectory_ended.v1"):
    """The re-integration trajectory ended."""

    reporters: ClassVar = frozenset({O, E})
    effective_field: ClassVar = "ended_on"
    ended_on: date
    reason: ShortCode


# --- authorised partial resumption -------------------------------------------------------------------------


class PartialResumptionDeclared(CaseReport, frozen=True, tag="partial_resumption_declared.v1"):
    """The worker declared an authorised partial resumption starting ``starts_on``."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "declared_on"
    declared_on: date
    starts_on: date
    weekly_hours: Hours
    full_time_hours: FullTimeHours


class PartialResumptionAuthorised(CaseReport, frozen=True, tag="partial_resumption_authorised.v1"):
    """The advising physician authorised the partial resumption."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "authorised_on"
    authorised_on: date
    valid_until: date | None = None
    weekly_hours: Hours | None = None


class PartialResumptionEnded(CaseReport, frozen=True, tag="partial_resumption_ended.v1"):
    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "ended_on"
    ended_on: date


class PartialResumptionFailed(CaseReport, frozen=True, tag="partial_resumption_failed.v1"):
    """The resumption failed: the worker is fully incapacitated again from ``failed_on``."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "failed_on"
    failed_on: date


# --- Terug Naar Werk (the health funds' return-to-work route) ------------------------------------------------


class ReturnToWorkQuestionnaireSent(CaseReport, frozen=True, tag="return_to_work_questionnaire_sent.v1"):
    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "sent_on"
    sent_on: date


class ReturnToWorkQuestionnaireReturned(CaseReport, frozen=True, tag="return_to_work_questionnaire_returned.v1"):
    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "returned_on"
    returned_on: date


class ReturnToWorkExaminationMissed(CaseReport, frozen=True, tag="return_to_work_examination_missed.v1"):
    """The worker missed the advising physician's examination or the coordinator's invitation."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "missed_on"
    missed_on: date
    justified: bool
    #: An appointment in person with the advising physician (from 2026 a no-show suspends the benefit).
    physical_appointment: bool = False


class AdvisingPhysicianContacted(CaseReport, frozen=True, tag="advising_physician_contacted.v1"):
    """The worker contacted the advising physician after a missed examination or appointment."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "contacted_on"
    contacted_on: date


class DailyBenefitReported(CaseReport, frozen=True, tag="daily_benefit_reported.v1"):
    """The health fund's daily incapacity benefit from ``applies_from`` (until a later report changes it): the
    base of the amounts computed as a percentage of it."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "applies_from"
    applies_from: date
    daily_benefit: DailyAmount


# --- socio-professional rehabilitation ---------------------------------------------------------------------


class VocationalRehabilitationProposed(CaseReport, frozen=True, tag="vocational_rehabilitation_proposed.v1"):
    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "proposed_on"
    proposed_on: date
    project: FreeText | None = None


class VocationalRehabilitationApproved(CaseReport, frozen=True, tag="vocational_rehabilitation_approved.v1"):
    """The Medical Council for Invalidity approved the project."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "approved_on"
    approved_on: date


class VocationalRehabilitationRefused(CaseReport, frozen=True, tag="vocational_rehabilitation_refused.v1"):
    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "refused_on"
    refused_on: date


class TrainingHoursAttended(CaseReport, frozen=True, tag="training_hours_attended.v1"):
    """Hours of training actually followed in a period (the basis of the hourly premium)."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "period_end"
    period_start: date
    period_end: date
    hours: TrainingHours


class RehabilitationCostsReported(CaseReport, frozen=True, tag="rehabilitation_costs_reported.v1"):
    """Costs of the rehabilitation project the health fund reimburses, as reported (euro, 2 decimals)."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "incurred_on"
    incurred_on: date
    cost_kind: CostKind
    amount: Decimal


class TrainingCompleted(CaseReport, frozen=True, tag="training_completed.v1"):
    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "completed_on"
    completed_on: date
    successful: bool


class JobSearchStarted(CaseReport, frozen=True, tag="job_search_started.v1"):
    """After the training, the worker looks for work while still recognised as incapacitated."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "started_on"
    started_on: date


class IncapacityReviewed(CaseReport, frozen=True, tag="incapacity_reviewed.v1"):
    """The advising physician reviewed the incapacity (after the job-search phase, for instance)."""

    reporters: ClassVar = frozenset({H})
    effective_field: ClassVar = "reviewed_on"
    reviewed_on: date
    outcome: ReviewOutcome


# --- medical force majeure, termination, closure -----------------------------------------------------------


class MedicalForceMajeureStarted(CaseReport, frozen=True, tag="medical_force_majeure_started.v1"):
    """The employer (or worker) started the procedure by registered letter sent on ``letter_sent_on``."""

    reporters: ClassVar = frozenset({E, O})
    effective_field: ClassVar = "letter_sent_on"
    letter_sent_on: date
    initiator: Initiator = Initiator.EMPLOYER


class MedicalForceMajeureDecided(CaseReport, frozen=True, tag="medical_force_majeure_decided.v1"):
    reporters: ClassVar = frozenset({O})
    effective_field: ClassVar = "decided_on"
    decided_on: date
    definitively_unfit: bool


class ContractTerminated(CaseReport, frozen=True, tag="contract_terminated.v1"):
    reporters: ClassVar = frozenset({E})
    effective_field: ClassVar = "terminated_on"
    terminated_on: date
    reason: ShortCode


class CaseClosed(CaseReport, frozen=True, tag="case_closed.v1"):
    """No further reports are expected; the case stays readable for audit."""

    reporters: ClassVar = frozenset({H, E})
    effective_field: ClassVar = "closed_on"
    closed_on: date
    reason: ShortCode


AnyReport = Union[  # noqa: UP007 - msgspec needs a real Union of tagged structs
    IncapacityReported,
    IncapacityInterrupted,
    IncapacityResumed,
    IncapacityEnded,
    DefinitiveUnfitnessCertified,
    TrajectoryRequested,
    WorkPotentialEstimated,
    ExaminationRefused,
    AssessmentIssued,
    AppealLodged,
    AppealDecided,
    PlanSubmitted,
    ImpossibilityReportSubmitted,
    PlanAnswered,
    PlanUnanswered,
    TrajectoryEnded,
    PartialResumptionDeclared,
    PartialResumptionAuthorised,
    PartialResumptionEnded,
    PartialResumptionFailed,
    ReturnToWorkQuestionnaireSent,
    ReturnToWorkQuestionnaireReturned,
    ReturnToWorkExaminationMissed,
    AdvisingPhysicianContacted,
    DailyBenefitReported,
    VocationalRehabilitationProposed,
    VocationalRehabilitationApproved,
    VocationalRehabilitationRefused,
    TrainingHoursAttended,
    RehabilitationCostsReported,
    TrainingCompleted,
    JobSearchStarted,
    IncapacityReviewed,
    MedicalForceMajeureStarted,
    MedicalForceMajeureDecided,
    ContractTerminated,
    CaseClosed,
]

REPORT_TYPES: tuple[type[Report], ...] = AnyReport.__args__  # type: ignore[attr-defined]


def tag_of(report: Report | type[Report]) -> str:
    cls = report if isinstance(report, type) else type(report)
    tag = cls.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{cls.__name__} is not a tagged report")
    return tag


REPORTS_BY_TAG: dict[str, type[Report]] = {tag_of(cls): cls for cls in REPORT_TYPES}
