"""The 2026 solidarity contribution (RULEBOOK section 10): 30% of the sickness benefit of each indemnified day from
day 31 of the primary incapacity for 2 calendar months, paid by the employer to the RSZ/ONSS; each condition at
its edge (the day before and the day of), the amounts in cents, and what is uncertain said so."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.events import reports as r
from shared.rulebook.benefits import EntryKind, Payee
from shared.rulebook.model import Status
from tests.unit.test_benefits_2026_builder import (
    BIS_NUMBER,
    SOLIDARITY,
    UNKNOWN_BIRTH,
    Case2026,
    D,
    insz,
    of,
)

#: Incapacity from Saturday 3 Jan 2026: day 31 is Monday 2 Feb, the window runs to Wednesday 1 Apr.
START = date(2026, 1, 3)
DAY_31 = date(2026, 2, 2)


def case(**kw: object) -> Case2026:
    h = Case2026(start=kw.pop("start", START), **kw)  # type: ignore[arg-type]
    h.benefit(DAY_31, "62.35")
    h.review(date(2026, 4, 10))
    return h


def test_one_entry_per_calendar_month_each_in_cents_half_up() -> None:
    """Feb 2-28: 27 days less 3 Sundays; March: 31 less 5; 1 April: 1. The last is 18.705 EUR: half up."""
    entries = of(case(), SOLIDARITY)
    assert [(e.period_start, e.period_end, e.amount) for e in entries] == [
        (DAY_31, date(2026, 2, 28), D("448.92")),  # 24 x 62.35 x 30%
        (date(2026, 3, 1), date(2026, 3, 31), D("486.33")),  # 26 days
        (date(2026, 4, 1), date(2026, 4, 1), D("18.71")),  # 1 day: 18.705, half even would give 18.70
    ]
    for e, days in zip(entries, (24, 26, 1), strict=True):
        assert (e.kind, e.payer, e.beneficiary, e.concerns_employer) == (
            EntryKind.CONTRIBUTION, Payee.EMPLOYER, Payee.NSSO, True)
        assert (e.regime, e.status, e.percentage) == ("BE-2026", Status.CONFIRMED, None)
        assert f"for {days} indemnified days from {e.period_start.isoformat()}" in e.explanation
        assert "window 2026-02-02 to 2026-04-01" in e.explanation and "every day but Sunday" in e.explanation
        assert "RSZ/ONSS" in e.explanation and "declares nothing" in e.explanation


@pytest.mark.parametrize(("start", "due"), [(date(2025, 12, 31), False), (date(2026, 1, 1), True)])
def test_selected_by_the_first_day_of_the_incapacity(start: date, due: bool) -> None:
    h = Case2026(start=start)
    h.review(start + timedelta(days=40))
    assert bool(of(h, SOLIDARITY)) is due


@pytest.mark.parametrize(("last_day", "entries"), [(DAY_31 - timedelta(days=1), 0), (DAY_31, 1)])
def test_an_incapacity_that_ends_before_day_31_gives_none(last_day: date, entries: int) -> None:
    h = Case2026(start=START)
    h.benefit(DAY_31, "62.35")
    h.ended(last_day)
    h.review(date(2026, 4, 10))
    found = of(h, SOLIDARITY)
    assert len(found) == entries
    if found:
        assert (found[0].period_start, found[0].period_end, found[0].amount) == (DAY_31, DAY_31, D("18.71"))


@pytest.mark.parametrize(("latest", "shown"), [(DAY_31 - timedelta(days=1), False), (DAY_31, True)])
def test_the_window_appears_once_the_case_reaches_day_31(latest: date, shown: bool) -> None:
    """As the premium: a window still ahead is not in the ledger; once reached, its days still to come are counted
    as the facts known give them (the incapacity goes on), and a later report corrects them."""
    h = Case2026(start=START)
    h.review(latest)
    entries = of(h, SOLIDARITY)
    assert len(entries) == int(shown)
    if shown:
        [e] = entries  # no daily benefit yet: one percentage entry over the whole window
        assert (e.percentage, e.amount, e.base, e.period_start, e.period_end) == (
            D("30"), None, "daily sickness benefit", DAY_31, date(2026, 4, 1))
        assert "each of 51 indemnified days" in e.explanation and "no daily benefit reported" in e.explanation


@pytest.mark.parametrize(("staff", "due"), [(49, False), (50, True)])
def test_employers_of_50_or_more(staff: int, due: bool) -> None:
    assert bool(of(case(staff=staff), SOLIDARITY)) is due


@pytest.mark.parametrize(
    ("born", "due"),
    [
        (date(2008, 1, 4), False),  # 17 on the first day, 18 the day after
        (date(2008, 1, 3), True),  # 18 that day
        (date(1971, 1, 4), True),  # 54, 55 the day after
        (date(1971, 1, 3), False),  # 55 that day
    ],
)
def test_workers_aged_18_to_54_at_the_start(born: date, due: bool) -> None:
    assert bool(of(case(insz=insz(born)), SOLIDARITY)) is due


@pytest.mark.parametrize("number", [UNKNOWN_BIRTH, BIS_NUMBER])
def test_a_birth_date_that_cannot_be_read_gives_an_uncertain_notice(number: str) -> None:
    [e] = of(case(insz=number), SOLIDARITY)
    assert (e.kind, e.status, e.amount, e.period_start, e.concerns_employer) == (
        EntryKind.NOTICE, Status.UNCERTAIN, None, DAY_31, True)
    assert "birth date cannot be read from the national number" in e.explanation
    assert number not in e.explanation


@pytest.mark.parametrize(("since", "due"), [(date(2025, 12, 4), False), (date(2025, 12, 3), True)])
def test_employed_at_least_one_month_at_the_start(since: date, due: bool) -> None:
    """From 3 Dec 2025 one month is complete on 2 Jan 2026, the eve of the start; from 4 Dec it is not."""
    entries = of(case(employed_since=since), SOLIDARITY)
    assert bool(entries) is due
    assert all(e.status is Status.CONFIRMED for e in entries)


def test_unreported_seniority_or_contract_computes_the_contribution_as_uncertain() -> None:
    for kw, words in (({"employed_since": None}, "the seniority was not reported"),
                      ({"contract": None}, "the kind of contract was not reported")):
        entries = of(case(**kw), SOLIDARITY)
        assert [e.amount for e in entries] == [D("448.92"), D("486.33"), D("18.71")]
        assert all(e.status is Status.UNCERTAIN and words in e.explanation for e in entries)


@pytest.mark.parametrize("contract", ["temporary_agency", "flexi_job", "student", "apprentice", "sheltered_workshop"])
def test_contracts_left_out_give_an_uncertain_notice(contract: str) -> None:
    """The list has one source (C, listed as uncertain): where it decides, the notice is U."""
    [e] = of(case(contract=r.ContractKind(contract)), SOLIDARITY)
    assert (e.kind, e.status, e.concerns_employer) == (EntryKind.NOTICE, Status.UNCERTAIN, True)
    assert contract.replace("_", " ") in e.explanation and "one source" in e.explanation


def test_a_fixed_term_contract_is_not_left_out() -> None:
    assert [e.status for e in of(case(contract=r.ContractKind.FIXED_TERM), SOLIDARITY)] == [Status.CONFIRMED] * 3


def test_days_of_partial_resumption_are_left_out_and_that_is_uncertain() -> None:
    """A resumption from Monday 16 to Saturday 28 March: 12 days out of March; February and April stay C."""
    h = case()
    h.declare(date(2026, 3, 16), 19)
    h.authorise(date(2026, 3, 17))
    h.end(date(2026, 3, 28))
    feb, march, april = of(h, SOLIDARITY)
    assert (feb.amount, feb.status, april.amount, april.status) == (
        D("448.92"), Status.CONFIRMED, D("18.71"), Status.CONFIRMED)
    assert (march.amount, march.status) == (D("261.87"), Status.UNCERTAIN)  # 14 x 62.35 x 30%
    assert "12 days of partial resumption left out" in march.explanation and "one source" in march.explanation


def test_a_window_spent_in_partial_resumption_gives_an_uncertain_notice() -> None:
    h = Case2026(start=START)
    h.declare(date(2026, 1, 30), 19)
    h.review(date(2026, 4, 10))
    [e] = of(h, SOLIDARITY)
    assert (e.kind, e.status) == (EntryKind.NOTICE, Status.UNCERTAIN)
    assert "no indemnified day in the window (51 days of partial resumption left out" in e.explanation


def test_each_stretch_of_constant_daily_benefit_gets_its_own_entry() -> None:
    """No benefit reported for 2-9 Feb: a percentage entry; 60.00 EUR from 10 Feb, 65.00 EUR from 16 March (and
    the calendar months cut it too)."""
    h = Case2026(start=START)
    first = h.benefit(date(2026, 2, 10), "60.00")
    h.benefit(date(2026, 3, 16), "70.00")
    corrected = h.benefit(date(2026, 3, 16), "65.00")  # a later report for the same day corrects it
    h.review(date(2026, 4, 10))
    got = [(e.period_start, e.period_end, e.percentage, e.amount) for e in of(h, SOLIDARITY)]
    assert got == [
        (DAY_31, date(2026, 2, 9), D("30"), None),  # 7 days
        (date(2026, 2, 10), date(2026, 2, 28), None, D("306.00")),  # 17 x 60 x 30%
        (date(2026, 3, 1), date(2026, 3, 15), None, D("216.00")),  # 12 days
        (date(2026, 3, 16), date(2026, 3, 31), None, D("273.00")),  # 14 x 65 x 30%
        (date(2026, 4, 1), date(2026, 4, 1), None, D("19.50")),
    ]
    entries = of(h, SOLIDARITY)
    assert first.event_id in entries[1].causing_events and corrected.event_id in entries[3].causing_events
    assert "each of 7 indemnified days" in entries[0].explanation
