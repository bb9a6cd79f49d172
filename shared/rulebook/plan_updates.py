"""Plan updates: what the employer's feed says of each step of a case's trajectory, from the Case event alone.

:func:`plan_update` maps one recorded Case event to a :class:`~shared.events.feed.FeedTrajectory`, or to nothing
when the step is not the employer's to know (an incapacity's dates, a benefit, the health fund's route, a
rehabilitation). It copies codes, dates and enums from the report and takes its words from the rulebook (the
decision code's meaning under the regime of the assessment, the legal basis of the step's rule); it never copies a
report's free text or medical field, and the feed type has no field that could hold one.

Pure: the same event and rulebook give the same message, so a relay that replays a step publishes the same bytes
under the same message id.
"""

from __future__ import annotations

from datetime import date

from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.events.feed import FeedTrajectory

from .model import Regime, Rulebook, RulebookError

#: The step each report type is published as (``plan_accepted`` or ``plan_refused`` for a plan's answer); a report
#: type not here gives no plan update.
STEPS: dict[type[r.Report], str] = {
    r.TrajectoryRequested: "requested", r.WorkPotentialEstimated: "work_potential_estimated",
    r.ExaminationRefused: "examination_refused", r.AssessmentIssued: "assessed", r.AppealLodged: "appeal_lodged",
    r.AppealDecided: "appeal_decided", r.PlanSubmitted: "plan_submitted",
    r.ImpossibilityReportSubmitted: "impossibility_reported", r.PlanAnswered: "plan_accepted or plan_refused",
    r.PlanUnanswered: "plan_unanswered", r.TrajectoryEnded: "trajectory_ended",
    r.MedicalForceMajeureStarted: "force_majeure_started", r.MedicalForceMajeureDecided: "force_majeure_decided",
    r.PartialResumptionAuthorised: "partial_resumption_authorised",
    r.PartialResumptionEnded: "partial_resumption_ended", r.PartialResumptionFailed: "partial_resumption_failed",
}

#: The rule whose legal basis each kind of step cites (the regime's instrument when the rule is not in force).
_TRAJECTORY, _FORCE_MAJEURE = "trajectory.assessment", "force_majeure.start"
_RESUMPTION = "partial_resumption.reduction"


def _basis(rulebook: Rulebook, rule_id: str, day: date, regime: str | None) -> tuple[str, str]:
    """(regime id, legal basis) for a step of ``rule_id``'s kind on ``day``."""
    try:
        found = rulebook.rule_on(rule_id, day)
        return found.regime.id, found.rule.legal_basis
    except RulebookError:
        in_force = rulebook.regime(regime) if regime else rulebook.regime_on(day)
        if in_force is None:
            return regime or "-", ""
        return in_force.id, in_force.instrument


def plan_update(event: CaseEvent, enterprise: str, insz: str, rulebook: Rulebook,
                plan_due_on: date | None = None) -> FeedTrajectory | None:
    """The plan update of ``event`` for the employer ``enterprise`` of worker ``insz``, or ``None`` when the step is
    none of the employer's business; ``plan_due_on``: the plan's due date, when the step opened that deadline."""
    report = event.report
    step = STEPS.get(type(report))
    if step is None:
        return None
    fields: dict[str, object] = {}
    rule = _TRAJECTORY
    if isinstance(report, r.TrajectoryRequested):
        summary = f"a re-integration trajectory was requested by the {_words(report.initiator)}"
        fields["initiator"] = report.initiator.value
    elif isinstance(report, r.WorkPotentialEstimated):
        rule = "employer.work_potential"
        summary = ("the occupational health service estimated that the worker "
                   + ("can do adapted or other work" if report.work_potential else "cannot do adapted or other work"))
        fields["outcome"] = "work_potential" if report.work_potential else "no_work_potential"
    elif isinstance(report, r.ExaminationRefused):
        summary = "the worker refused the re-integration examination"
    elif isinstance(report, r.AssessmentIssued):
        under = _regime(rulebook, report.regime)
        meaning = under.decision_meanings.get(report.decision) if under is not None else None
        unfitness = under.plan_codes.get(report.decision) if under is not None else None
        summary = f"the re-integration assessment was issued with decision {report.decision}" + (
            f" under {report.regime}: {meaning}" if meaning else f" under {report.regime}")
        if plan_due_on is not None:
            summary += f"; the employer's plan (or its motivated report that none is possible) is due on {plan_due_on}"
        fields.update(decision=report.decision, decision_meaning=meaning, unfitness=unfitness,
                      plan_due_on=plan_due_on)
    elif isinstance(report, r.AppealLodged):
        summary = "the worker appealed against the assessment; the trajectory is suspended"
    elif isinstance(report, r.AppealDecided):
        fields["outcome"] = "upheld" if report.assessment_upheld else "overturned"
        summary = f"the appeal panel {'upheld' if report.assessment_upheld else 'overturned'} the assessment"
    elif isinstance(report, r.PlanSubmitted):
        summary = f"the employer submitted a re-integration plan ({report.unfitness.value} unfitness)"
        fields["unfitness"] = report.unfitness.value
    elif isinstance(report, r.ImpossibilityReportSubmitted):
        summary = f"the employer reported, with reasons, that no plan is possible ({report.unfitness.value} unfitness)"
        fields["unfitness"] = report.unfitness.value
    elif isinstance(report, r.PlanAnswered):
        accepted = report.answer is r.PlanAnswer.ACCEPTED
        step = "plan_accepted" if accepted else "plan_refused"
        summary = f"the worker {'accepted' if accepted else 'refused'} the plan"
    elif isinstance(report, r.PlanUnanswered):
        summary = "the worker did not answer the plan in time (the silence counts as refusal)"
    elif isinstance(report, r.TrajectoryEnded):
        summary = f"the trajectory ended ({report.reason.replace('_', ' ')})"
        fields["outcome"] = report.reason
    elif isinstance(report, r.MedicalForceMajeureStarted):
        rule = _FORCE_MAJEURE
        summary = f"the {_words(report.initiator)} started the medical force-majeure procedure by registered letter"
        fields["initiator"] = report.initiator.value
    elif isinstance(report, r.MedicalForceMajeureDecided):
        rule = _FORCE_MAJEURE
        summary = ("the occupational physician decided: definitively unfit for the agreed work, with no adapted or "
                   "other work possible" if report.definitively_unfit else
                   "the occupational physician decided: not definitively unfit (no medical force majeure)")
        fields["definitively_unfit"] = report.definitively_unfit
    elif isinstance(report, r.PartialResumptionAuthorised):
        rule = _RESUMPTION
        summary = "the advising physician authorised a partial resumption of work" + (
            f" until {report.valid_until}" if report.valid_until else "")
        fields["valid_until"] = report.valid_until
    elif isinstance(report, r.PartialResumptionEnded):
        rule, summary = _RESUMPTION, "the authorised partial resumption ended"
    elif isinstance(report, r.PartialResumptionFailed):
        rule = _RESUMPTION
        summary = "the partial resumption failed: the worker is fully incapacitated again"
    else:  # a type STEPS lists but no branch words
        raise AssertionError(f"no plan update worded for {type(report).__name__}")
    on = report.effective_date
    regime, basis = _basis(rulebook, rule, on, event.regime)
    return FeedTrajectory(case_id=event.case_id, enterprise_number=enterprise, insz=insz, step=step, on=on,
                          case_version=event.version, regime=regime, legal_basis=basis, summary=summary,
                          **fields)  # type: ignore[arg-type]


def _regime(rulebook: Rulebook, regime_id: str) -> Regime | None:
    try:
        return rulebook.regime(regime_id)
    except KeyError:
        return None


def _words(initiator: r.Initiator) -> str:
    return initiator.value.replace("_", " ")
