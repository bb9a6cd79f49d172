"""The relapse window (14 days, 8 weeks from 2026, chosen by the day the new incapacity starts) and what it decides
for the solidarity contribution: which primary incapacity a resumption belongs to, and so where day 31 falls."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.rulebook.benefits import RelapseWindow, find_rule
from shared.rulebook.model import Status
from tests.unit.test_benefits_2026_builder import SOLIDARITY, Case2026, D, of
from tests.unit.test_benefits_builder import RB

START = date(2026, 1, 5)  # day 31 on 4 Feb 2026 without a return
RETURNED = date(2026, 1, 15)  # back at work after 10 days of incapacity


@pytest.mark.parametrize(("day", "days", "regime", "status"), [
    (date(2022, 9, 30), 14, "BE-2016", Status.CONFIRMED),
    (date(2025, 12, 31), 14, "BE-2022", Status.CONFIRMED),
    (date(2026, 1, 1), 56, "BE-2026", Status.UNCERTAIN),  # 8 weeks C+, but how they count is U
])
def test_relapse_window_versions_by_the_day_the_new_incapacity_starts(day: date, days: int, regime: str,
                                                                      status: Status) -> None:
    found = find_rule(RB, RelapseWindow, day)
    assert found is not None and isinstance(found.rule, RelapseWindow)
    assert (found.rule.days, found.regime.id, found.status("counting")) == (days, regime, status)


def returned_for(days_back: int, *, review: date = date(2026, 9, 1)) -> Case2026:
    h = Case2026(start=START)
    h.benefit(date(2026, 1, 1), "50.00")
    h.interrupt(RETURNED)
    h.resume(RETURNED + timedelta(days=days_back))
    h.review(review)
    return h


@pytest.mark.parametrize(
    ("days_back", "day_31", "status", "words"),
    [
        # 10 days before the return, so day 31 is the 21st day from the resumption
        (20, date(2026, 2, 24), Status.UNCERTAIN, "continued the primary incapacity"),
        (55, date(2026, 3, 31), Status.UNCERTAIN, "continued the primary incapacity"),
        # from 56 days the resumption is a new primary incapacity: its own day 31; 56 is at the boundary (U)
        (56, date(2026, 4, 11), Status.UNCERTAIN, "is a new primary incapacity"),
        (57, date(2026, 4, 12), Status.CONFIRMED, "is a new primary incapacity"),
    ],
)
def test_a_return_shorter_than_8_weeks_continues_the_primary_incapacity(days_back: int, day_31: date, status: Status,
                                                                         words: str) -> None:
    entries = of(returned_for(days_back), SOLIDARITY)
    assert entries[0].period_start == day_31
    assert {e.status for e in entries} == {status}
    assert all(words in e.explanation for e in entries)
    assert all(("how that window is counted is uncertain" in e.explanation) is (status is Status.UNCERTAIN)
               for e in entries)


def test_days_back_at_work_inside_the_window_are_not_counted() -> None:
    """Back at work Monday 2 to Sunday 8 March (6 days but Sunday): March has 26 - 6 indemnified days, and only the
    entries from the return on depend on how the relapse window is counted."""
    h = Case2026(start=START)
    h.benefit(date(2026, 2, 4), "50.00")
    h.interrupt(date(2026, 3, 2))
    h.resume(date(2026, 3, 9))
    h.review(date(2026, 4, 10))
    feb, march, april = of(h, SOLIDARITY)
    assert (feb.amount, feb.status) == (D("330.00"), Status.CONFIRMED)  # 22 x 50 x 30%
    assert (march.amount, march.status) == (D("300.00"), Status.UNCERTAIN)  # 20 days
    assert (april.amount, april.period_end, april.status) == (D("45.00"), date(2026, 4, 3), Status.UNCERTAIN)


def test_a_return_that_has_not_ended_stops_the_window() -> None:
    h = Case2026(start=START)
    h.benefit(date(2026, 2, 4), "50.00")
    h.interrupt(date(2026, 3, 2))
    h.review(date(2026, 4, 10))
    # the last day of incapacity known is Sunday 1 March: nothing indemnified after February
    assert [(e.period_start, e.period_end, e.amount) for e in of(h, SOLIDARITY)] == [
        (date(2026, 2, 4), date(2026, 2, 28), D("330.00"))]


def test_a_new_primary_incapacity_gets_its_own_window() -> None:
    """Back at work from 20 April to 21 June (63 days): the incapacity from 22 June is a new primary incapacity,
    whose day 31 is 22 July; its window runs to 21 September."""
    h = Case2026(start=START)
    h.benefit(date(2026, 2, 4), "50.00")
    h.interrupt(date(2026, 4, 20))
    h.resume(date(2026, 6, 22))
    h.review(date(2026, 10, 1))
    windows = [(e.period_start, e.period_end, e.status) for e in of(h, SOLIDARITY)]
    assert windows == [
        (date(2026, 2, 4), date(2026, 2, 28), Status.CONFIRMED),
        (date(2026, 3, 1), date(2026, 3, 31), Status.CONFIRMED),
        (date(2026, 4, 1), date(2026, 4, 3), Status.CONFIRMED),
        (date(2026, 7, 22), date(2026, 7, 31), Status.CONFIRMED),
        (date(2026, 8, 1), date(2026, 8, 31), Status.CONFIRMED),
        (date(2026, 9, 1), date(2026, 9, 21), Status.CONFIRMED),
    ]


@pytest.mark.parametrize(("returned", "entries"), [
    (date(2025, 12, 5), 0),  # back 27 days: within 8 weeks (chosen by 1 Jan 2026), so still the 2025 incapacity
    (date(2025, 11, 2), 3),  # back 60 days: a new primary incapacity from 1 Jan 2026, under the 2026 law
])
def test_a_resumption_on_1_january_2026_is_judged_by_the_8_week_window(returned: date, entries: int) -> None:
    h = Case2026(start=date(2025, 10, 1))
    h.benefit(date(2025, 10, 31), "50.00")
    h.interrupt(returned)
    h.resume(date(2026, 1, 1))
    h.review(date(2026, 4, 1))
    assert len(of(h, SOLIDARITY)) == entries
