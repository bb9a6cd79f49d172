"""Regime boundaries (1 Oct 2022, 1 Jan 2026), rules that reach back, the appeal's effect on the plan, policies."""

from __future__ import annotations

from datetime import date

import pytest

from shared.events import reports as r
from shared.rulebook.deadlines import Policy, overdue
from tests.unit.test_deadlines import ROLL, History, trajectory

FLEMISH = Policy(employer_policies=frozenset({"flemish-government-return-coach"}))


# --- 1 Oct 2022: the 2022 rules apply at once to running trajectories -----------------------------------------


def test_running_assessment_is_recomputed_under_2022_with_the_same_id() -> None:
    h = trajectory(date(2022, 9, 12))  # Mon; 40 working days -> Tue 8 Nov 2022 under BE-2016
    recomputed = h.one("trajectory.assessment")
    # 12 Sep + 49 = 31 Oct 2022 (18 days to 30 Sep, 31 in October)
    assert (recomputed.regime, recomputed.recomputed_from, recomputed.due_on) == ("BE-2022", "BE-2016",
                                                                                 date(2022, 10, 31))
    assert (recomputed.counting, recomputed.amount, recomputed.starts_on) == ("calendar_days", 49, date(2022, 9, 12))
    assert "recomputed from the BE-2016 rule when BE-2022 took effect on 2022-10-01" in recomputed.explanation
    # what the parties were held to until 1 Oct 2022 stays on the record
    assert recomputed.recomputed_on == date(2022, 10, 1)
    [before] = recomputed.superseded
    assert (before.id, before.regime, before.counting, before.amount, before.due_on, before.state) == (
        recomputed.id, "BE-2016", "working_days", 40, date(2022, 11, 8), "open")
    assert before.superseded == () and before.recomputed_from is None
    h.assess(date(2022, 10, 20), "A")
    met = h.one("trajectory.assessment")
    assert (met.id, met.regime, met.state, met.late) == (recomputed.id, "BE-2022", "met", False)


def test_deadline_closed_before_the_switch_keeps_its_2016_figures() -> None:
    h = trajectory(date(2022, 9, 12))
    h.assess(date(2022, 9, 30), "A")  # the last day of BE-2016
    d = h.one("trajectory.assessment")
    assert (d.regime, d.recomputed_from, d.due_on, d.state) == ("BE-2016", None, date(2022, 11, 8), "met")


def test_recomputed_date_before_the_switch_is_overdue_at_once() -> None:
    # Wed 10 Aug 2022: 40 working days -> Thu 6 Oct 2022 (15 Aug skipped); 49 calendar days -> Wed 28 Sep 2022
    d = trajectory(date(2022, 8, 10)).one("trajectory.assessment")
    assert (d.regime, d.recomputed_from, d.due_on) == ("BE-2022", "BE-2016", date(2022, 9, 28))
    assert overdue(d, date(2022, 10, 1))


def test_deadline_expired_before_the_switch_is_not_revived() -> None:
    # Mon 1 Aug 2022: 40 working days -> Tue 27 Sep 2022, over before 1 Oct: stays a BE-2016 deadline
    d = trajectory(date(2022, 8, 1)).one("trajectory.assessment")
    assert (d.regime, d.recomputed_from, d.due_on, d.state) == ("BE-2016", None, date(2022, 9, 27), "open")


def test_running_appeal_window_and_definitive_plan_are_recomputed() -> None:
    h = trajectory(date(2022, 9, 1))
    h.assess(date(2022, 9, 29), "C")  # Thu; BE-2016 definitive, adapted work possible
    appeal, plan = h.one("trajectory.appeal"), h.one("trajectory.plan.definitive")
    # 7 working days -> Mon 10 Oct 2022 became 21 calendar days -> Thu 20 Oct 2022
    assert (appeal.regime, appeal.recomputed_from, appeal.due_on) == ("BE-2022", "BE-2016", date(2022, 10, 20))
    # 12 months -> 29 Sep 2023 became 6 months -> Wed 29 Mar 2023
    assert (plan.regime, plan.recomputed_from, plan.due_on, plan.amount) == ("BE-2022", "BE-2016",
                                                                            date(2023, 3, 29), 6)


def test_reevaluation_has_no_2022_rule_and_is_cancelled_on_the_switch() -> None:
    h = trajectory(date(2022, 8, 1))
    h.assess(date(2022, 9, 15), "E")  # + 2 months = 15 Nov 2022 under BE-2016
    d = h.one("trajectory.reevaluation")
    assert (d.state, d.closed_by, d.closed_on, d.regime, d.due_on) == ("cancelled", None, date(2022, 10, 1),
                                                                       "BE-2016", date(2022, 11, 15))
    assert "BE-2022 took effect and has no such rule" in d.explanation
    h.assess(date(2022, 11, 2), "A")  # a later report does not reopen it
    assert h.one("trajectory.reevaluation").state == "cancelled"


def test_re_evaluation_done_before_the_switch_is_met() -> None:
    h = trajectory(date(2022, 8, 1))
    h.assess(date(2022, 9, 15), "E")
    h.assess(date(2022, 9, 29), "A")
    d = h.one("trajectory.reevaluation")
    assert (d.state, d.closed_on, d.regime) == ("met", date(2022, 9, 29), "BE-2016")


# --- 1 Jan 2026: BE-2026 inherits the 2022 rules --------------------------------------------------------------


def test_inherited_rule_across_2026_is_not_recomputed() -> None:
    h = trajectory(date(2025, 12, 1))
    h.assess(date(2025, 12, 15), "A")  # + 63 = Mon 16 Feb 2026
    d = h.one("trajectory.plan.temporary")
    assert (d.regime, d.recomputed_from, d.inherited_from, d.due_on) == ("BE-2022", None, None, date(2026, 2, 16))
    assert d.status == "C"


def test_a_rule_inherited_by_the_uncertain_2026_regime_is_uncertain() -> None:
    """BE-2026 keeps the 2022 figures "unless a rule says otherwise" (RULEBOOK: as 2022, U): so are its deadlines."""
    h = trajectory(date(2026, 1, 12))
    h.assess(date(2026, 1, 20), "A")
    d = h.one("trajectory.plan.temporary")
    assert (d.regime, d.inherited_from, d.status) == ("BE-2026", "BE-2022", "U")
    assert "(trajectory.plan.temporary, BE-2026 (rule inherited from BE-2022), U uncertain;" in d.explanation


@pytest.mark.parametrize(
    ("start", "due", "regime"),
    [
        (date(2026, 1, 5), date(2026, 3, 2), "BE-2026"),  # Mon 5 Jan 2026 + 8 weeks = Mon 2 Mar 2026
        (date(2025, 12, 20), date(2026, 2, 14), "BE-2026"),  # reaches back: 8 weeks end in 2026
        (date(2025, 11, 1), None, None),  # + 8 weeks = 27 Dec 2025: over before the 2026 law
    ],
)
def test_employer_work_potential_request_from_2026(start: date, due: date | None, regime: str | None) -> None:
    h = History(start)
    found = [d for d in h.deadlines() if d.rule == "employer.work_potential"]
    assert [(d.due_on, d.regime, d.party, d.concerns_employer) for d in found] == (
        [(due, regime, "employer", True)] if due else []
    )
    if due:
        h.request(due)
        assert (h.one("employer.work_potential").state, h.one("employer.work_potential").late) == ("met", False)


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (date(2022, 9, 10), date(2022, 10, 8)),  # 4 weeks end after 1 Oct 2022: the 2022 contact applies
        (date(2022, 9, 3), date(2022, 10, 1)),  # ... on the very day
        (date(2022, 9, 2), None),  # 30 Sep: over before the rule existed
        (date(2024, 2, 1), date(2024, 2, 29)),  # leap year
    ],
)
def test_contact_after_four_weeks_of_absence(start: date, due: date | None) -> None:
    found = [d for d in History(start).deadlines() if d.rule == "absence.contact"]
    assert [(d.due_on, d.deadline_kind, d.status) for d in found] == ([(due, "reminder", "U")] if due else [])


def test_contact_restarts_with_a_new_absence() -> None:
    h = History(date(2024, 2, 1))
    back = h.add(r.IncapacityInterrupted, returned_on=date(2024, 2, 10))
    again = h.add(r.IncapacityResumed, resumed_on=date(2024, 3, 4))
    found = [d for d in h.deadlines() if d.rule == "absence.contact"]
    assert [(d.state, d.closed_by, d.due_on) for d in found] == [
        ("cancelled", back.event_id, date(2024, 2, 29)), ("open", None, date(2024, 4, 1)),
    ]
    assert found[1].started_by == again.event_id


# --- the appeal suspends the definitive plan; a decision upholding it restarts the period ---------------------


@pytest.mark.parametrize(("upheld", "restarted_due"), [(True, date(2023, 8, 21)), (False, None)])
def test_appeal_suspends_and_restarts_the_definitive_plan(upheld: bool, restarted_due: date | None) -> None:
    h = trajectory(date(2022, 12, 1))
    h.assess(date(2023, 1, 2), "B")  # + 6 months = 2 Jul 2023
    lodged = h.add(r.AppealLodged, lodged_on=date(2023, 1, 16))
    decided = h.add(r.AppealDecided, decided_on=date(2023, 2, 20), assessment_upheld=upheld)
    plans = [d for d in h.deadlines(ROLL) if d.rule == "trajectory.plan.definitive"]
    assert (plans[0].state, plans[0].closed_by, plans[0].due_on) == ("cancelled", lodged.event_id, date(2023, 7, 3))
    # 20 Feb 2023 + 6 months = Sun 20 Aug 2023 -> Mon 21 Aug with roll-forward
    restarted = [(d.started_by, d.starts_on, d.due_on, d.state) for d in plans[1:]]
    assert restarted == ([(decided.event_id, date(2023, 2, 20), restarted_due, "open")] if upheld else [])


def test_appeal_lodged_under_2016_and_upheld_under_2022_restarts_with_the_2022_period() -> None:
    h = trajectory(date(2022, 6, 1))
    h.assess(date(2022, 8, 1), "C")  # BE-2016: 12 months
    h.add(r.AppealLodged, lodged_on=date(2022, 8, 5))
    decided = h.add(r.AppealDecided, decided_on=date(2022, 10, 14), assessment_upheld=True)
    first, restarted = sorted((d for d in h.deadlines() if d.rule == "trajectory.plan.definitive"),
                              key=lambda d: d.starts_on)
    assert (first.regime, first.state, first.due_on) == ("BE-2016", "cancelled", date(2023, 8, 1))
    # Fri 14 Oct 2022 + 6 months = Fri 14 Apr 2023
    assert (restarted.started_by, restarted.regime, restarted.due_on) == (decided.event_id, "BE-2022",
                                                                          date(2023, 4, 14))


def test_trajectory_end_during_the_appeal_disarms_the_restart() -> None:
    h = trajectory(date(2022, 12, 1))
    h.assess(date(2023, 1, 2), "B")
    h.add(r.AppealLodged, lodged_on=date(2023, 1, 16))
    h.add(r.TrajectoryEnded, ended_on=date(2023, 1, 20), reason="resigned")
    h.add(r.AppealDecided, decided_on=date(2023, 2, 20), assessment_upheld=True)
    assert [d.state for d in h.deadlines() if d.rule == "trajectory.plan.definitive"] == ["cancelled"]


# --- policies -------------------------------------------------------------------------------------------------


def test_flemish_return_coach_only_when_switched_on() -> None:
    h = History(date(2023, 12, 31))
    assert "employer_policy.return_coach" not in h.rules()
    d = h.one("employer_policy.return_coach", FLEMISH)
    # 31 Dec 2023 + 2 months = Thu 29 Feb 2024 (leap year)
    assert (d.due_on, d.party, d.concerns_employer, d.regime) == (date(2024, 2, 29), "return_coach", True, "BE-2022")
    assert d.policy == "no-roll-forward+flemish-government-return-coach"


def test_flemish_return_coach_rolls_forward_and_crosses_2022() -> None:
    both = Policy(roll_forward=True, employer_policies=FLEMISH.employer_policies)
    d = History(date(2022, 8, 21)).one("employer_policy.return_coach", both)
    # 21 Aug 2022 + 2 months = Fri 21 Oct 2022; still running on 1 Oct, so recomputed under BE-2022
    assert (d.due_on, d.regime, d.recomputed_from) == (date(2022, 10, 21), "BE-2022", "BE-2016")
    assert both.id == "roll-forward+flemish-government-return-coach"
    # 11 Sep 2022 + 2 months = Fri 11 Nov 2022 (Armistice) -> Mon 14 Nov
    assert History(date(2022, 9, 11)).one("employer_policy.return_coach", both).due_on == date(2022, 11, 14)


def test_ids_do_not_depend_on_the_policy() -> None:
    h = trajectory(date(2023, 6, 30))
    h.assess(date(2023, 6, 30), "B")
    plain = {d.rule: d.id for d in h.deadlines()}
    rolled = {d.rule: d.id for d in h.deadlines(Policy(True, FLEMISH.employer_policies))}
    assert plain == {rule: rolled[rule] for rule in plain}
    assert set(rolled) - set(plain) == {"employer_policy.return_coach"}


def test_the_schedule_records_the_opening_under_2016_then_the_recomputation() -> None:
    """The service's record of a switch: opened under BE-2016 (8 Nov), then recomputed under BE-2022 (31 Oct)."""
    from services.deadlines.schedule import apply_changes, diff, timer_due

    recomputed = trajectory(date(2022, 9, 12)).one("trajectory.assessment")
    changes = diff({}, [recomputed])
    assert [(c.change, c.deadline.regime, c.deadline.due_on) for c in changes] == [
        ("opened", "BE-2016", date(2022, 11, 8)), ("recomputed", "BE-2022", date(2022, 10, 31))]
    assert apply_changes({}, changes) == {recomputed.id: recomputed}  # the schedule ends with the BE-2022 version
    assert timer_due(recomputed) == date(2022, 11, 1)


def test_a_deadline_recomputed_to_before_the_switch_fires_on_the_switch_day() -> None:
    """Due 28 Sep under BE-2022, but BE-2016's 40 working days ran until 1 Oct: missed from 1 Oct, not 29 Sep."""
    from services.deadlines.schedule import timer_due

    d = trajectory(date(2022, 8, 10)).one("trajectory.assessment")
    assert (d.due_on, d.recomputed_on) == (date(2022, 9, 28), date(2022, 10, 1))
    assert timer_due(d) == date(2022, 10, 1)


def test_an_employer_policy_the_rulebook_has_no_rule_for_is_refused_by_name() -> None:
    """A typo in REINTEGRATION_EMPLOYER_POLICIES would drop the policy without a word: it is refused, naming the
    policies the rulebook knows; known ones parse as before."""
    import pytest

    from shared.rulebook import default_rulebook
    from shared.rulebook.deadlines import employer_policy_names, parse_employer_policies

    known = employer_policy_names(default_rulebook())
    assert "flemish-government-return-coach" in known
    with pytest.raises(ValueError, match=r"'flemish-goverment-return-coach'.*known: flemish-government-return-coach"):
        parse_employer_policies(("flemish-goverment-return-coach=0316381039",), default_rulebook())
    assert parse_employer_policies(("flemish-government-return-coach=0316381039 0207437468",), default_rulebook()) == {
        "flemish-government-return-coach": frozenset({"0316381039", "0207437468"})}
