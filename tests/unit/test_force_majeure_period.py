"""The earliest force-majeure letter (``force_majeure.eligible``) counts from the current uninterrupted incapacity
period, is absent while a trajectory runs, and is the very day intake's ``check_force_majeure_start`` first accepts
a letter: dated examples, the day before and the day of each date that selects something (the 14th day of a
return, the 1 Jan 2026 switch from 9 months to 6, the earliest date itself). The property over random histories is
in ``test_force_majeure_period_props``; the helpers below serve both."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

import shared.rulebook as rulebook_package
from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.events.ids import uuid5
from shared.rulebook import Rulebook
from shared.rulebook.deadlines import (
    Deadline,
    DeadlineFold,
    DeadlineKind,
    DeadlineRule,
    EventMatch,
    Period,
    Policy,
    Unit,
    compute_deadlines,
)
from shared.rulebook.eligibility import IncapacityTimeline, Ineligible, Interruption, check_force_majeure_start
from shared.rulebook.model import ForceMajeureStart, Status
from tests.unit.test_deadline_fold import check_fold
from tests.unit.test_deadlines import BE, History

RULE = "force_majeure.eligible"
FOLDER = Path(rulebook_package.__file__).parent


def timeline_of(h: History) -> IncapacityTimeline:
    """The case's incapacity as intake's Case folds it (``services/intake/case.py``)."""
    first = h.events[0].report
    assert isinstance(first, r.IncapacityReported)
    gaps: list[Interruption] = []
    for event in h.events[1:]:
        report = event.report
        if isinstance(report, r.IncapacityInterrupted):
            gaps.append(Interruption(returned_on=report.returned_on))
        elif isinstance(report, r.IncapacityResumed):
            gaps[-1] = Interruption(returned_on=gaps[-1].returned_on, resumed_on=report.resumed_on)
    return IncapacityTimeline(start=first.start_date, interruptions=tuple(gaps))


def accepts(letter: date, timeline: IncapacityTimeline, rulebook: Rulebook = BE) -> bool:
    try:
        check_force_majeure_start(rulebook, letter_sent_on=letter, timeline=timeline, trajectory_running=False)
    except Ineligible:
        return False
    return True


def first_accepted(timeline: IncapacityTimeline, since: date, rulebook: Rulebook = BE) -> date:
    day = since
    while not accepts(day, timeline, rulebook):
        day += timedelta(days=1)
        assert day < since + timedelta(days=800)
    return day


def tolerance_on(day: date) -> int:
    rule = BE.rule_on("force_majeure.start", day).rule
    assert isinstance(rule, ForceMajeureStart)
    return rule.return_tolerance_days


def eligible(h: History, rulebook: Rulebook = BE) -> list[Deadline]:
    return [d for d in compute_deadlines(h.events, rulebook) if d.rule == RULE]


def open_one(h: History, rulebook: Rulebook = BE) -> Deadline:
    [d] = [d for d in eligible(h, rulebook) if d.state == "open"]
    return d


def deadline_id(h: History, event: CaseEvent) -> object:
    return uuid5(h.case_id, f"deadline:{RULE}:{event.event_id}")


# --- returns to work --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days_back", "new_period"), [(13, False), (14, True)])
def test_a_return_of_14_days_starts_a_new_period_and_a_shorter_one_does_not(days_back: int, new_period: bool) -> None:
    h = History(date(2026, 2, 3))  # 6 months from Tue 3 Feb 2026: not before 3 Aug 2026
    before = open_one(h)
    h.add(r.IncapacityInterrupted, returned_on=date(2026, 3, 2))
    resumed = h.add(r.IncapacityResumed, resumed_on=date(2026, 3, 2) + timedelta(days=days_back))
    found = eligible(h)
    if not new_period:
        assert found == [before]  # same id, same date: nothing to record
        return
    old, new = found
    assert (old.id, old.state, old.closed_on, old.closed_by) == (before.id, "cancelled", date(2026, 3, 16),
                                                                  resumed.event_id)
    assert ("the return to work from 2026-03-02 to 2026-03-16, 14 days (at least 14), ended the incapacity period "
            "of 2026-02-03: a new one began on 2026-03-16") in old.explanation
    assert (new.id, new.starts_on, new.due_on, new.state) == (deadline_id(h, resumed), date(2026, 3, 16),
                                                              date(2026, 9, 16), "open")
    assert accepts(date(2026, 9, 16), timeline_of(h)) and not accepts(date(2026, 9, 15), timeline_of(h))


@pytest.mark.parametrize(
    ("returned", "resumed", "due"),
    [
        (date(2026, 7, 25), date(2026, 8, 3), date(2026, 8, 3)),  # back at work until the eve of the date
        (date(2026, 7, 30), date(2026, 8, 10), date(2026, 8, 10)),  # at work on the date: the resumption
        (date(2026, 8, 3), date(2026, 8, 10), date(2026, 8, 10)),  # back at work on the date itself
        (date(2026, 8, 4), date(2026, 8, 10), date(2026, 8, 3)),  # back at work the day after
    ],
)
def test_an_earliest_date_in_a_short_return_to_work_is_the_resumption(returned: date, resumed: date,
                                                                       due: date) -> None:
    h = History(date(2026, 2, 3))
    before = open_one(h)
    h.add(r.IncapacityInterrupted, returned_on=returned)
    h.add(r.IncapacityResumed, resumed_on=resumed)
    d = open_one(h)
    assert (d.id, d.starts_on, d.counted_due_on, d.due_on) == (before.id, date(2026, 2, 3), date(2026, 8, 3), due)
    assert d.due_on == first_accepted(timeline_of(h), date(2026, 2, 3))
    if due != date(2026, 8, 3):
        assert f"2026-08-03 lies in the return to work from {returned}: the incapacity resumed on {resumed}" in (
            d.explanation)
    check_fold(h.events, BE, Policy())


def test_the_explanation_names_the_periods_first_day_and_the_earliest_letter() -> None:
    d = open_one(History(date(2026, 2, 3)))
    assert ("(force_majeure.eligible, BE-2026, C confirmed; Law of 19 Dec 2025 and KB of 17 Dec 2025 "
            "(Arbeidsovereenkomstenwet art. 34 as amended); Codex welzijn op het werk art. I.4-82): 6 months of "
            "uninterrupted incapacity from 2026-02-03 (the current period's first day; a return to work of less than "
            "14 days does not interrupt it), so not before 2026-08-03, calendar") in d.explanation
    assert "day after" not in d.explanation


# --- trajectories -----------------------------------------------------------------------------------------------


def test_no_earliest_letter_while_a_trajectory_runs_and_back_from_the_same_first_day_when_it_ends() -> None:
    h = History(date(2026, 2, 3))
    first = open_one(h)
    h.request(date(2026, 4, 1))
    [suspended] = eligible(h)
    assert (suspended.id, suspended.state, suspended.closed_on) == (first.id, "cancelled", date(2026, 4, 1))
    assert "(suspended: trajectory_ended.v1 restarts it)" in suspended.explanation
    with pytest.raises(Ineligible, match="a re-integration trajectory is running"):
        check_force_majeure_start(BE, letter_sent_on=date(2026, 9, 1), timeline=timeline_of(h), trajectory_running=True)
    ended = h.add(r.TrajectoryEnded, ended_on=date(2026, 10, 1), reason="test")
    back = open_one(h)
    # counted from the period's first day, not from the trajectory's end: the date has passed, a letter may go now
    assert (back.id, back.starts_on, back.due_on) == (deadline_id(h, ended), date(2026, 2, 3), date(2026, 8, 3))


def test_a_long_return_during_a_trajectory_moves_the_first_day_the_deadline_comes_back_with() -> None:
    h = History(date(2026, 2, 3))
    h.request(date(2026, 4, 1))
    h.add(r.IncapacityInterrupted, returned_on=date(2026, 5, 1))
    h.add(r.IncapacityResumed, resumed_on=date(2026, 6, 1))  # 31 days back at work: a new period
    assert [d.state for d in eligible(h)] == ["cancelled"]  # still none while the trajectory runs
    h.add(r.TrajectoryEnded, ended_on=date(2026, 7, 1), reason="test")
    back = open_one(h)
    assert (back.starts_on, back.due_on) == (date(2026, 6, 1), date(2026, 12, 1))


def test_the_end_of_the_incapacity_during_a_trajectory_leaves_nothing_to_restart() -> None:
    h = History(date(2026, 2, 3))
    h.request(date(2026, 4, 1))
    h.add(r.IncapacityEnded, ended_on=date(2026, 5, 1))
    h.add(r.TrajectoryEnded, ended_on=date(2026, 5, 2), reason="test")
    assert [d.state for d in eligible(h)] == ["cancelled"]


# --- the 1 Jan 2026 switch (letter date: 9 months before, 6 from then) -------------------------------------------


@pytest.mark.parametrize(
    ("start", "counted", "due", "regime"),
    [
        # 9 months from 31 Mar 2025 end on 30 Dec: a letter from 31 Dec 2025, under BE-2022
        (date(2025, 3, 31), date(2025, 12, 31), date(2025, 12, 31), "BE-2022"),
        # 9 months from 1 Apr 2025 would open on 1 Jan 2026: recomputed to 6 months (1 Oct 2025), which lie before
        # BE-2026 took effect: a letter from 1 Jan 2026, the day intake accepts it
        (date(2025, 4, 1), date(2025, 10, 1), date(2026, 1, 1), "BE-2026"),
        (date(2025, 5, 31), date(2025, 12, 1), date(2026, 1, 1), "BE-2026"),
        (date(2025, 7, 1), date(2026, 1, 1), date(2026, 1, 1), "BE-2026"),
        (date(2025, 7, 2), date(2026, 1, 2), date(2026, 1, 2), "BE-2026"),
    ],
)
def test_the_switch_opens_a_recomputed_earliest_date_no_earlier_than_itself(start: date, counted: date, due: date,
                                                                              regime: str) -> None:
    d = open_one(History(start))
    assert (d.counted_due_on, d.due_on, d.regime) == (counted, due, regime)
    timeline = IncapacityTimeline(start=start)
    assert accepts(due, timeline) and not accepts(due - timedelta(days=1), timeline)
    if counted < due:
        assert f"the recomputed {counted} lies before BE-2026 took effect on 2026-01-01" in d.explanation


def test_a_period_begun_by_a_resumption_in_2025_is_recomputed_on_1_january_2026() -> None:
    h = History(date(2025, 1, 10))
    h.add(r.IncapacityInterrupted, returned_on=date(2025, 4, 1))
    resumed = h.add(r.IncapacityResumed, resumed_on=date(2025, 5, 1))  # 30 days: the period begins on 1 May
    d = open_one(h)  # 9 months: 1 Feb 2026; recomputed: 6 months (1 Nov 2025), from 1 Jan 2026
    assert (d.id, d.starts_on, d.counted_due_on, d.due_on, d.regime, d.recomputed_from) == (
        deadline_id(h, resumed), date(2025, 5, 1), date(2025, 11, 1), date(2026, 1, 1), "BE-2026", "BE-2022")
    assert [(s.regime, s.due_on) for s in d.superseded] == [("BE-2022", date(2026, 2, 1))]


# --- the data: the period and its tolerance -----------------------------------------------------------------------


def test_the_tolerance_is_read_from_the_eligibility_rule() -> None:
    """Another ``return_tolerance_days`` in ``force_majeure.start`` moves the deadline with intake's check."""
    main = (FOLDER / "be.toml").read_text()
    changed = main.replace("return_tolerance_days = 14\nno_trajectory_running", "return_tolerance_days = 10\n"
                           "no_trajectory_running")
    assert changed.count("return_tolerance_days = 10") == 2
    rulebook = Rulebook.from_toml(changed, *(p.read_bytes() for p in sorted(FOLDER.glob("be-*.toml"))))
    h = History(date(2026, 2, 3), rulebook)
    h.add(r.IncapacityInterrupted, returned_on=date(2026, 3, 2))
    h.add(r.IncapacityResumed, resumed_on=date(2026, 3, 12))  # 10 days: a new period under this rulebook
    d = open_one(h, rulebook)
    assert (d.starts_on, d.due_on) == (date(2026, 3, 12), date(2026, 9, 12))
    assert d.due_on == first_accepted(timeline_of(h), date(2026, 3, 12), rulebook)
    assert "a return to work of less than 10 days" in d.explanation


def test_an_unknown_tolerance_rule_is_refused() -> None:
    main = (FOLDER / "be.toml").read_bytes()
    files = [p.read_text() for p in sorted(FOLDER.glob("be-*.toml"))]
    files = [f.replace('return_tolerance_of = "force_majeure.start"', 'return_tolerance_of = "no.such.rule"')
             for f in files]
    rulebook = Rulebook.from_toml(main, *files)
    with pytest.raises(ValueError, match=r"has no rule no\.such\.rule with return_tolerance_days"):
        compute_deadlines(History(date(2026, 2, 3), rulebook).events, rulebook)


@pytest.mark.parametrize(("anchor", "tolerance_of"), [("incapacity_period", None), (None, "force_majeure.start")])
def test_the_period_anchor_and_its_tolerance_go_together(anchor: str | None, tolerance_of: str | None) -> None:
    with pytest.raises(ValueError, match="goes with return_tolerance_of"):
        DeadlineRule(id="x", regime="BE-2026", legal_basis="-", status=Status.CONFIRMED, description="-",
                     deadline_kind=DeadlineKind.NOT_BEFORE, party="employer",
                     starts_on=[EventMatch(report="incapacity_reported.v1")], anchor=anchor,
                     return_tolerance_of=tolerance_of, period=Period(amount=6, unit=Unit.MONTHS))


def test_a_fold_carries_the_incapacity_in_its_copies_and_equality() -> None:
    h = History(date(2026, 2, 3))
    h.add(r.IncapacityInterrupted, returned_on=date(2026, 3, 2))
    fold = DeadlineFold(BE)
    for event in h.events:
        fold.apply(event)
    copy = fold.copy()
    assert copy == fold and copy.incapacity is fold.incapacity and fold.incapacity.returned_on == date(2026, 3, 2)
    h.add(r.IncapacityResumed, resumed_on=date(2026, 3, 5))
    copy.apply(h.events[-1])
    assert fold.incapacity.returned_on == date(2026, 3, 2) and copy.incapacity.returned_on is None
    fresh = DeadlineFold(BE)
    for event in h.events[:-1]:
        fresh.apply(event)
    assert fresh == fold
    fresh.incapacity = DeadlineFold(BE).incapacity
    assert fresh != fold  # the incapacity is part of the state
