"""Deadlines of the company re-integration trajectory under BE-2016 and BE-2022, to the day.

Histories are lists of CaseEvent built by :class:`History`; every expected date was counted by hand on a calendar
(the comments show the count). The other ``test_deadlines_*`` modules import the builder from here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from shared.events import reports as r
from shared.events.common import Party, PartyKind
from shared.events.envelope import CaseEvent, case_id_for, event_id_for
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.deadlines import Deadline, DeadlineState, Policy, compute_deadlines, overdue

BE = default_rulebook()
WORKER, EMPLOYER, OHS, FUND = "85073003328", "0403170701", "0202239951", "300"
ROLL = Policy(roll_forward=True)
_PARTY_IDS = {PartyKind.HEALTH_FUND: FUND, PartyKind.OCCUPATIONAL_HEALTH_SERVICE: OHS, PartyKind.EMPLOYER: EMPLOYER}


class History:
    """One case's history, report by report, with deterministic ids (the same calls give the same events)."""

    def __init__(self, start: date, rulebook: Rulebook = BE) -> None:
        self.rulebook = rulebook
        self.case_id = case_id_for(WORKER, EMPLOYER, start.isoformat(), FUND)
        self.events: list[CaseEvent] = []
        self.add(r.IncapacityReported, insz=WORKER, enterprise_number=EMPLOYER, staff_count=120, health_fund=FUND,
                 occupational_health_service=OHS, start_date=start, cause=r.Cause.ILLNESS)

    def add(self, cls: type[r.Report], **fields: Any) -> CaseEvent:
        version = len(self.events) + 1
        fields.setdefault("report_id", uuid.uuid5(self.case_id, f"report:{version}"))
        if issubclass(cls, r.CaseReport):
            fields.setdefault("case_id", self.case_id)
        if cls is r.AssessmentIssued:
            regime = self.rulebook.regime_on(fields["issued_on"])
            fields.setdefault("regime", regime.id if regime else "BE-2016")
        if cls is r.PlanSubmitted:
            fields.setdefault("unfitness", r.Unfitness.TEMPORARY)
            fields.setdefault("measures", [r.PlanMeasure(kind="adapted_hours")])
        report = cls(**fields)
        regime = self.rulebook.regime_on(report.effective_date)
        kind = sorted(cls.reporters)[0]
        event = CaseEvent(
            case_id=self.case_id, version=version, event_id=event_id_for(self.case_id, version),
            recorded_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC), reported_by=Party(kind=kind, id=_PARTY_IDS[kind]),
            regime=regime.id if regime else None, report=report,
        )
        self.events.append(event)
        return event

    # shortcuts for the reports most tests need
    def request(self, on: date) -> CaseEvent:
        return self.add(r.TrajectoryRequested, initiator=r.Initiator.WORKER, received_on=on)

    def assess(self, on: date, decision: str) -> CaseEvent:
        return self.add(r.AssessmentIssued, issued_on=on, decision=decision)

    def plan(self, on: date, unfitness: str = "temporary") -> CaseEvent:
        return self.add(r.PlanSubmitted, submitted_on=on, unfitness=r.Unfitness(unfitness))

    def deadlines(self, policy: Policy = Policy()) -> list[Deadline]:
        return compute_deadlines(self.events, self.rulebook, policy)

    def one(self, rule: str, policy: Policy = Policy()) -> Deadline:
        found = [d for d in self.deadlines(policy) if d.rule == rule]
        assert len(found) == 1, f"{rule}: {found}"
        return found[0]

    def rules(self, policy: Policy = Policy()) -> list[str]:
        return [d.rule for d in self.deadlines(policy)]


def trajectory(request_on: date, *, start: date | None = None) -> History:
    h = History(start or date(request_on.year - 1, 6, 3))
    h.request(request_on)
    return h


# --- the assessment ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due", "regime"),
    [
        # Fri 12 Apr 2019 + 40 working days: skips Easter Monday 22 Apr, 1 May, Ascension 30 May, Whit Monday 10 Jun
        (date(2019, 4, 12), date(2019, 6, 13), "BE-2016"),
        # Fri 20 Dec 2019: skips 25 Dec and 1 Jan -> Tue 18 Feb 2020
        (date(2019, 12, 20), date(2020, 2, 18), "BE-2016"),
        # Mon 12 Sep 2022, finished under 2016 (met on 28 Sep below): 1 Nov skipped -> Tue 8 Nov 2022
        (date(2022, 9, 12), date(2022, 11, 8), "BE-2016"),
        # BE-2022: Fri 2 Dec 2022 + 49 calendar days = Fri 20 Jan 2023
        (date(2022, 12, 2), date(2023, 1, 20), "BE-2022"),
        # BE-2026 inherits the 2022 rule: Mon 5 Jan 2026 + 49 = Mon 23 Feb 2026
        (date(2026, 1, 5), date(2026, 2, 23), "BE-2026"),
    ],
)
def test_assessment_due(received: date, due: date, regime: str) -> None:
    h = trajectory(received)
    h.assess(date(2022, 9, 28) if received == date(2022, 9, 12) else due, "A")
    d = h.one("trajectory.assessment")
    assert (d.due_on, d.counted_due_on, d.regime, d.state, d.late) == (due, due, regime, DeadlineState.MET, False)
    assert d.starts_on == received and d.party == "occupational_physician" and not d.concerns_employer
    assert d.inherited_from == ("BE-2022" if regime == "BE-2026" else None)


@pytest.mark.parametrize(
    ("received", "roll", "due"),
    [
        # Mon 12 Feb 2024 + 49 = Easter Monday 1 Apr 2024: rolls to Tue 2 Apr only with the policy
        (date(2024, 2, 12), False, date(2024, 4, 1)),
        (date(2024, 2, 12), True, date(2024, 4, 2)),
        # Mon 18 Mar 2024 + 49 = Mon 6 May 2024, a working day: nothing to roll
        (date(2024, 3, 18), True, date(2024, 5, 6)),
    ],
)
def test_assessment_expiry_on_a_holiday_rolls_only_with_the_policy(received: date, roll: bool, due: date) -> None:
    d = trajectory(received).one("trajectory.assessment", Policy(roll_forward=roll))
    assert d.counted_due_on == received + (date(2024, 4, 1) - date(2024, 2, 12))
    assert d.due_on == due and d.policy == ("roll-forward" if roll else "no-roll-forward")


def test_assessment_met_late_and_overdue() -> None:
    h = trajectory(date(2023, 3, 1))  # Wed 1 Mar 2023 + 49 = Wed 19 Apr 2023
    open_ = h.one("trajectory.assessment")
    assert open_.state == DeadlineState.OPEN and open_.closed_on is None and open_.closed_by is None
    assert not overdue(open_, date(2023, 4, 19)) and overdue(open_, date(2023, 4, 20))
    issued = h.assess(date(2023, 4, 20), "A")
    late = h.one("trajectory.assessment")
    assert (late.state, late.closed_by, late.closed_on, late.late) == ("met", issued.event_id, date(2023, 4, 20), True)
    assert late.id == open_.id and not overdue(late, date(2024, 1, 1))


# --- the appeal ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issued", "decision", "due", "roll_due"),
    [
        # BE-2016 D on Wed 30 Oct 2019 + 7 working days: skips 1 Nov and 11 Nov -> Tue 12 Nov 2019
        (date(2019, 10, 30), "D", date(2019, 11, 12), date(2019, 11, 12)),
        # BE-2016 C on Tue 18 Jul 2017: skips 21 Jul -> Fri 28 Jul 2017
        (date(2017, 7, 18), "C", date(2017, 7, 28), date(2017, 7, 28)),
        # BE-2022 B on Fri 30 Jun 2023 + 21 = Fri 21 Jul 2023 (national day) -> Mon 24 Jul with roll-forward
        (date(2023, 6, 30), "B", date(2023, 7, 21), date(2023, 7, 24)),
    ],
)
def test_appeal_window_after_definitive_unfitness(issued: date, decision: str, due: date, roll_due: date) -> None:
    h = trajectory(issued)
    h.assess(issued, decision)
    d = h.one("trajectory.appeal")
    assert (d.deadline_kind, d.party, d.due_on, d.state) == ("window", "worker", due, "open")
    assert h.one("trajectory.appeal", ROLL).due_on == roll_due


@pytest.mark.parametrize(("issued", "decision"), [(date(2019, 10, 30), "A"), (date(2019, 10, 30), "E"),
                                                  (date(2023, 6, 30), "A"), (date(2023, 6, 30), "C")])
def test_no_appeal_window_without_definitive_unfitness(issued: date, decision: str) -> None:
    h = trajectory(issued)
    h.assess(issued, decision)
    assert "trajectory.appeal" not in h.rules()


@pytest.mark.parametrize(
    ("lodged", "due", "roll_due"),
    [
        # BE-2016: Mon 9 Dec 2019 + 31 working days (25 Dec, 1 Jan skipped) -> Thu 23 Jan 2020
        (date(2019, 12, 9), date(2020, 1, 23), date(2020, 1, 23)),
        # BE-2022: Wed 13 Nov 2024 + 42 = Wed 25 Dec 2024 -> Thu 26 Dec (not a Belgian legal holiday)
        (date(2024, 11, 13), date(2024, 12, 25), date(2024, 12, 26)),
        # Wed 20 Nov 2024 + 42 = Wed 1 Jan 2025 -> Thu 2 Jan
        (date(2024, 11, 20), date(2025, 1, 1), date(2025, 1, 2)),
    ],
)
def test_appeal_panel_decision(lodged: date, due: date, roll_due: date) -> None:
    h = trajectory(lodged)
    h.add(r.AppealLodged, lodged_on=lodged)
    assert h.one("trajectory.appeal.decision").due_on == due
    assert h.one("trajectory.appeal.decision", ROLL).due_on == roll_due
    h.add(r.AppealDecided, decided_on=roll_due, assessment_upheld=True)
    assert h.one("trajectory.appeal.decision", ROLL).late is False
    assert h.one("trajectory.appeal.decision").late is (roll_due > due)


# --- the plan, the motivated report and the worker's answer -----------------------------------------------


@pytest.mark.parametrize(
    ("issued", "decision", "rule", "due", "roll_due"),
    [
        # BE-2016 A on Mon 1 Jul 2019 + 55 working days (15 Aug skipped) -> Tue 17 Sep 2019
        (date(2019, 7, 1), "A", "trajectory.plan.temporary", date(2019, 9, 17), date(2019, 9, 17)),
        # BE-2016 C on Sat 29 Feb 2020 + 12 months = Sun 28 Feb 2021 -> Mon 1 Mar 2021
        (date(2020, 2, 29), "C", "trajectory.plan.definitive", date(2021, 2, 28), date(2021, 3, 1)),
        # BE-2022 A on Mon 27 Mar 2023 + 63 = Whit Monday 29 May 2023 -> Tue 30 May
        (date(2023, 3, 27), "A", "trajectory.plan.temporary", date(2023, 5, 29), date(2023, 5, 30)),
        # BE-2022 A on Wed 30 Oct 2024 + 63 = Wed 1 Jan 2025 -> Thu 2 Jan
        (date(2024, 10, 30), "A", "trajectory.plan.temporary", date(2025, 1, 1), date(2025, 1, 2)),
        # BE-2022 B on Thu 31 Aug 2023 + 6 months = Thu 29 Feb 2024 (leap year); 31 Aug 2024 -> Fri 28 Feb 2025
        (date(2023, 8, 31), "B", "trajectory.plan.definitive", date(2024, 2, 29), date(2024, 2, 29)),
        (date(2024, 8, 31), "B", "trajectory.plan.definitive", date(2025, 2, 28), date(2025, 2, 28)),
    ],
)
def test_plan_due(issued: date, decision: str, rule: str, due: date, roll_due: date) -> None:
    h = trajectory(issued)
    h.assess(issued, decision)
    d = h.one(rule)
    assert (d.due_on, d.party, d.concerns_employer) == (due, "employer", True)
    assert h.one(rule, ROLL).due_on == roll_due


@pytest.mark.parametrize(("decision", "issued"), [("B", date(2019, 7, 1)), ("D", date(2019, 7, 1)),
                                                  ("E", date(2019, 7, 1)), ("C", date(2023, 7, 3))])
def test_no_plan_for_decisions_that_call_for_none(decision: str, issued: date) -> None:
    h = trajectory(issued)
    h.assess(issued, decision)
    assert not any(rule.startswith("trajectory.plan") for rule in h.rules())


@pytest.mark.parametrize(
    ("submitted_on", "late"),
    # Thu 16 Feb 2023 + 63 = Thu 20 Apr 2023 (12 days to 28 Feb, 31 in March, 20 in April)
    [(date(2023, 4, 20), False), (date(2023, 4, 21), True)],
)
def test_plan_met_on_time_or_late(submitted_on: date, late: bool) -> None:
    h = trajectory(date(2023, 1, 16))
    h.assess(date(2023, 2, 16), "A")
    event = h.plan(submitted_on)
    d = h.one("trajectory.plan.temporary")
    assert (d.due_on, d.state, d.closed_by, d.late) == (date(2023, 4, 20), "met", event.event_id, late)


def test_impossibility_report_meets_the_plan_and_starts_no_answer() -> None:
    h = trajectory(date(2023, 1, 16))
    h.assess(date(2023, 2, 16), "B")
    h.add(r.ImpossibilityReportSubmitted, submitted_on=date(2023, 5, 2), unfitness=r.Unfitness.DEFINITIVE)
    assert h.one("trajectory.plan.definitive").state == "met"
    assert "trajectory.plan.answer" not in h.rules()


def test_trajectory_end_cancels_the_open_deadlines() -> None:
    h = trajectory(date(2023, 1, 16))
    h.assess(date(2023, 2, 16), "B")
    ended = h.add(r.TrajectoryEnded, ended_on=date(2023, 3, 1), reason="worker_left")
    for rule in ("trajectory.appeal", "trajectory.plan.definitive"):
        d = h.one(rule)
        assert (d.state, d.closed_by, d.closed_on, d.late) == ("cancelled", ended.event_id, date(2023, 3, 1), False)


@pytest.mark.parametrize(
    ("submitted", "answer", "answered_on", "due", "late"),
    [
        # BE-2016: Tue 18 Jul 2017 + 5 working days, 21 Jul skipped -> Wed 26 Jul 2017
        (date(2017, 7, 18), r.PlanAnswered, date(2017, 7, 26), date(2017, 7, 26), False),
        # BE-2022: Mon 28 Oct 2024 + 14 = Mon 11 Nov 2024 (Armistice); silence noted on the 12th: met, late
        (date(2024, 10, 28), r.PlanUnanswered, date(2024, 11, 12), date(2024, 11, 11), True),
    ],
)
def test_worker_answer(submitted: date, answer: type[r.Report], answered_on: date, due: date, late: bool) -> None:
    h = trajectory(submitted)
    h.assess(submitted, "A")
    h.plan(submitted)
    field = "answered_on" if answer is r.PlanAnswered else "noted_on"
    extra = {"answer": r.PlanAnswer.ACCEPTED} if answer is r.PlanAnswered else {}
    h.add(answer, **{field: answered_on}, **extra)
    d = h.one("trajectory.plan.answer")
    assert (d.due_on, d.state, d.late, d.party, d.concerns_employer) == (due, "met", late, "worker", True)


def test_reevaluation_after_decision_e_and_a_second_e() -> None:
    h = trajectory(date(2019, 11, 4))
    first = h.assess(date(2019, 12, 31), "E")  # + 2 months = Sat 29 Feb 2020 (leap year)
    second = h.assess(date(2020, 2, 28), "E")  # meets the first, starts another: + 2 months = Tue 28 Apr 2020
    found = [d for d in h.deadlines() if d.rule == "trajectory.reevaluation"]
    assert [(d.started_by, d.due_on, d.state) for d in found] == [
        (first.event_id, date(2020, 2, 29), "met"), (second.event_id, date(2020, 4, 28), "open"),
    ]
    assert len({d.id for d in found}) == 2


def test_explanation_names_rule_figure_dates_regime_calendar_and_policy() -> None:
    h = trajectory(date(2024, 2, 12))
    assert h.one("trajectory.assessment", ROLL).explanation == (
        "The occupational physician's re-integration assessment (trajectory.assessment, BE-2022, C confirmed; "
        "Codex welzijn op het werk art. I.4-73 (KB 11 Sep 2022)): 49 calendar days counted from the day after "
        "2024-02-12, so due on 2024-04-02 (the counted 2024-04-01 is not a working day: moved to the next one), "
        "calendar BE-legal-holidays, policy roll-forward; open."
    )
