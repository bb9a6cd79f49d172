"""Plan updates on the employer's feed (`feed.trajectory.v1`): which steps the employer is told of, in which words,
with which legal basis and regime; none of a report's free text or medical fields; and the deadlines service's
outbox publishing each once, after the step's deadlines, with the plan's due date."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from services.deadlines.application import DeadlinesApplication
from services.deadlines.outbox import render
from services.deadlines.schedule import ScheduleStep
from shared.events import reports as r
from shared.events.feed import FeedTrajectory
from shared.infra.derived import Outcome
from shared.infra.store import logged_events
from shared.rulebook.plan_updates import STEPS, plan_update
from tests.factories import NOW
from tests.integration.test_derived_property import MEMORY
from tests.unit.test_deadlines import BE, EMPLOYER, WORKER, History

CANARY = "CANARY-7f3a burn-out after bereavement"


def update(event: object) -> FeedTrajectory | None:
    return plan_update(event, EMPLOYER, WORKER, BE)  # type: ignore[arg-type]


def test_a_2022_trajectory_step_by_step() -> None:
    h = History(date(2024, 1, 10))
    steps = [
        (h.add(r.TrajectoryRequested, initiator=r.Initiator.EMPLOYER, received_on=date(2024, 4, 10)), "requested"),
        (h.add(r.AssessmentIssued, issued_on=date(2024, 5, 2), decision="A", conditions=CANARY), "assessed"),
        (h.add(r.PlanSubmitted, submitted_on=date(2024, 6, 3), unfitness=r.Unfitness.TEMPORARY,
               measures=[r.PlanMeasure(kind="adapted_hours", description=CANARY)]), "plan_submitted"),
        (h.add(r.PlanAnswered, answered_on=date(2024, 6, 10), answer=r.PlanAnswer.REFUSED, reason=CANARY),
         "plan_refused"),
        (h.add(r.TrajectoryEnded, ended_on=date(2024, 6, 20), reason="plan_refused"), "trajectory_ended"),
    ]
    for event, step in steps:
        message = update(event)
        assert message is not None and message.step == step, step
        assert (message.case_id, message.case_version, message.on) == (
            event.case_id, event.version, event.report.effective_date)
        assert message.regime == "BE-2022"
        assert message.legal_basis == BE.rule_on("trajectory.assessment", message.on).rule.legal_basis
        assert CANARY not in msgspec.json.encode(message).decode()
    assessed = update(steps[1][0])
    assert assessed is not None
    assert (assessed.decision, assessed.unfitness) == ("A", "temporary")
    assert assessed.decision_meaning is not None and "adapted or other work is possible meanwhile" in (
        assessed.decision_meaning)
    requested = update(steps[0][0])
    assert requested is not None and requested.initiator == "employer" and "by the employer" in requested.summary
    ended = update(steps[4][0])
    assert ended is not None and ended.outcome == "plan_refused"


def test_the_2016_codes_mean_what_the_2016_form_says() -> None:
    h = History(date(2019, 3, 4))
    h.add(r.TrajectoryRequested, initiator=r.Initiator.WORKER, received_on=date(2019, 6, 3))
    message = update(h.add(r.AssessmentIssued, issued_on=date(2019, 6, 20), decision="D"))
    assert message is not None and message.regime == "BE-2016" and message.unfitness is None
    assert message.decision_meaning == "definitively unfit for the agreed work; no adapted or other work is possible"


@pytest.mark.parametrize(("cls", "fields", "step"), [
    (r.MedicalForceMajeureStarted, {"letter_sent_on": date(2024, 11, 4)}, "force_majeure_started"),
    (r.MedicalForceMajeureDecided, {"decided_on": date(2024, 12, 2), "definitively_unfit": True},
     "force_majeure_decided"),
    (r.PartialResumptionAuthorised, {"authorised_on": date(2024, 5, 6), "valid_until": date(2024, 11, 5)},
     "partial_resumption_authorised"),
    (r.PartialResumptionEnded, {"ended_on": date(2024, 9, 2)}, "partial_resumption_ended"),
    (r.AppealDecided, {"decided_on": date(2024, 6, 2), "assessment_upheld": False}, "appeal_decided"),
    (r.ImpossibilityReportSubmitted, {"submitted_on": date(2024, 6, 2), "unfitness": r.Unfitness.DEFINITIVE,
                                      "motivation": CANARY}, "impossibility_reported"),
])
def test_force_majeure_resumption_and_the_rest_each_have_their_step_and_basis(
        cls: type[r.Report], fields: dict[str, object], step: str) -> None:
    message = update(History(date(2024, 1, 10)).add(cls, **fields))
    assert message is not None and message.step == step and message.legal_basis and message.summary
    assert CANARY not in msgspec.json.encode(message).decode()
    if step == "force_majeure_decided":
        assert message.definitively_unfit is True
    if step == "partial_resumption_authorised":
        assert message.valid_until == date(2024, 11, 5)
        assert message.legal_basis == BE.rule_on("partial_resumption.reduction", message.on).rule.legal_basis
    if step.startswith("force_majeure"):
        assert message.legal_basis == BE.rule_on("force_majeure.start", message.on).rule.legal_basis
    if step == "appeal_decided":
        assert message.outcome == "overturned"


@pytest.mark.parametrize(("cls", "fields"), [
    (r.IncapacityInterrupted, {"returned_on": date(2024, 3, 1)}),
    (r.DailyBenefitReported, {"applies_from": date(2024, 2, 9), "daily_benefit": "72.35"}),
    (r.ReturnToWorkQuestionnaireSent, {"sent_on": date(2024, 3, 18)}),
    (r.VocationalRehabilitationProposed, {"proposed_on": date(2024, 6, 3), "project": CANARY}),
    (r.DefinitiveUnfitnessCertified, {"certified_on": date(2024, 3, 1)}),
])
def test_steps_that_are_not_the_employers_business_give_none(cls: type[r.Report], fields: dict[str, object]) -> None:
    if cls is r.DailyBenefitReported:
        from decimal import Decimal

        fields = {**fields, "daily_benefit": Decimal(str(fields["daily_benefit"]))}
    h = History(date(2024, 1, 10))
    assert update(h.events[0]) is None  # the opening report: its diagnosis above all
    assert update(h.add(cls, **fields)) is None


def test_the_outbox_publishes_each_update_once_after_the_steps_deadlines_with_the_plans_due_date() -> None:
    h = History(date(2024, 1, 10))
    h.add(r.TrajectoryRequested, initiator=r.Initiator.EMPLOYER, received_on=date(2024, 4, 10))
    h.add(r.AssessmentIssued, issued_on=date(2024, 5, 2), decision="A", conditions=CANARY)
    h.add(r.IncapacityInterrupted, returned_on=date(2024, 5, 6))
    app = DeadlinesApplication(env=MEMORY)
    for position, event in enumerate(h.events, start=1):
        assert app.process(event, position, NOW) is Outcome.APPLIED
    steps = [e for _, e in logged_events(app) if isinstance(e, ScheduleStep)]
    published = [(m, msgspec.json.decode(m.payload)) for s in steps for m in render(s, BE)]
    updates = [(m, body) for m, body in published if body["type"] == "feed.trajectory.v1"]
    assert [body["step"] for _, body in updates] == ["requested", "assessed"]
    assert all(m.subject == f"reintegration.employer.{EMPLOYER}.trajectory.{h.case_id}" for m, _ in updates)
    assert len({m.msg_id for m, _ in updates}) == 2 and all(m.msg_id.endswith(":trajectory") for m, _ in updates)
    assessed = updates[1][1]
    plan = next(body for _, body in published if body.get("rule") == "trajectory.plan.temporary"
                and body["type"] == "feed.deadline.v1")
    assert assessed["plan_due_on"] == plan["due_on"] == "2024-07-04"  # 63 days from the day after 2 May
    assessment_step = next(s for s in steps if isinstance(s.source.report, r.AssessmentIssued))
    own = [msgspec.json.decode(m.payload)["type"] for m in render(assessment_step, BE)
           if m.subject.startswith("reintegration.employer.")]
    assert own[-1] == "feed.trajectory.v1" and "feed.deadline.v1" in own  # after the step's own deadlines
    assert CANARY not in "".join(m.payload.decode() for m, _ in published)
    for step in steps:  # every feed message says which Case version's step published it
        for m in render(step, BE):
            body = msgspec.json.decode(m.payload)
            if body.get("type", "").startswith("feed."):
                assert body["case_version"] == step.source.version
    assert [m.msg_id for s in steps for m in render(s, BE)] == [m.msg_id for m, _ in published]  # the same again


def test_the_steps_table_the_contract_page_shows_is_what_the_function_publishes() -> None:
    """`docs/contracts.md` lists STEPS: every type there gives that step, every other report type none."""
    h = History(date(2024, 1, 10))
    examples = {
        r.TrajectoryRequested: {"initiator": r.Initiator.WORKER, "received_on": date(2024, 4, 10)},
        r.WorkPotentialEstimated: {"estimated_on": date(2024, 4, 1), "work_potential": False},
        r.ExaminationRefused: {"refused_on": date(2024, 4, 20)},
        r.AssessmentIssued: {"issued_on": date(2024, 5, 2), "decision": "C"},
        r.AppealLodged: {"lodged_on": date(2024, 5, 10)},
        r.AppealDecided: {"decided_on": date(2024, 6, 10), "assessment_upheld": True},
        r.PlanSubmitted: {"submitted_on": date(2024, 6, 3)},
        r.ImpossibilityReportSubmitted: {"submitted_on": date(2024, 6, 3), "unfitness": r.Unfitness.TEMPORARY},
        r.PlanAnswered: {"answered_on": date(2024, 6, 10), "answer": r.PlanAnswer.ACCEPTED},
        r.PlanUnanswered: {"noted_on": date(2024, 6, 20)},
        r.TrajectoryEnded: {"ended_on": date(2024, 7, 1), "reason": "plan_executed"},
        r.MedicalForceMajeureStarted: {"letter_sent_on": date(2024, 11, 4)},
        r.MedicalForceMajeureDecided: {"decided_on": date(2024, 12, 2), "definitively_unfit": False},
        r.PartialResumptionAuthorised: {"authorised_on": date(2024, 5, 6)},
        r.PartialResumptionEnded: {"ended_on": date(2024, 9, 2)},
        r.PartialResumptionFailed: {"failed_on": date(2024, 9, 3)},
    }
    assert set(examples) == set(STEPS)
    for cls, fields in examples.items():
        message = update(h.add(cls, **fields))
        assert message is not None and message.step in STEPS[cls].split(" or "), cls
