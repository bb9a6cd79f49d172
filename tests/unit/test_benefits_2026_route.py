"""Terug Naar Werk under the 2026 law: 10% of the daily benefit until the worker contacts the advising physician,
from a start that is uncertain (1 Jan or 1 Mar 2026, a setting), and the suspension in full after a no-show at an
appointment in person (from 1 Jan 2026)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from shared.rulebook.benefits import EntryKind, Payee, compute_ledger
from shared.rulebook.model import Status
from tests.unit.test_benefits_2026_builder import NO_SHOW, TNW_2026, Case2026, D, of
from tests.unit.test_benefits_builder import RB

TNW_2022 = "return_to_work.missed_examination_reduction"
FROM_JANUARY = RB.with_rule_starts({TNW_2026: date(2026, 1, 1)})


def two_misses(second: date, *, physical: bool = False) -> Case2026:
    h = Case2026(start=date(2025, 9, 1))
    h.no_show(date(2025, 11, 3), physical=False)
    h.no_show(second, physical=physical)
    return h


@pytest.mark.parametrize(
    ("second", "rule", "percentage", "end", "regime"),
    [
        # by default the 10% starts on 1 March 2026: until then BE-2026 keeps the 2022 rule (2.5% for a month, U)
        (date(2026, 2, 28), TNW_2022, D("2.5"), date(2026, 3, 27), "BE-2026"),
        (date(2026, 3, 1), TNW_2026, D("10"), None, "BE-2026"),
    ],
)
def test_ten_percent_from_1_march_2026_by_default(second: date, rule: str, percentage: Decimal, end: date | None,
                                                   regime: str) -> None:
    entries = [e for e in compute_ledger(two_misses(second).events, RB) if e.rule.startswith(TNW_2022)]
    [e] = entries
    assert (e.rule, e.percentage, e.period_start, e.period_end, e.regime) == (rule, percentage, second, end, regime)
    assert (e.kind, e.status, e.payer, e.beneficiary, e.concerns_employer) == (
        EntryKind.REDUCTION, Status.UNCERTAIN, Payee.HEALTH_FUND, Payee.WORKER, False)
    if rule == TNW_2026:
        assert "until the worker contacts the advising physician (no contact reported yet)" in e.explanation
        assert "the day this rule starts is uncertain" in e.explanation


@pytest.mark.parametrize(
    ("second", "rule", "percentage"),
    [(date(2025, 12, 31), TNW_2022, D("2.5")), (date(2026, 1, 1), TNW_2026, D("10"))],
)
def test_a_deployment_may_start_the_ten_percent_on_1_january(second: date, rule: str, percentage: Decimal) -> None:
    [e] = [e for e in compute_ledger(two_misses(second).events, FROM_JANUARY) if e.rule.startswith(TNW_2022)]
    assert (e.rule, e.percentage, e.status) == (rule, percentage, Status.UNCERTAIN)


@pytest.mark.parametrize(("contacted", "end"), [(date(2026, 3, 20), date(2026, 3, 19)),
                                                (date(2026, 3, 3), date(2026, 3, 2))])
def test_the_contact_ends_the_reduction_the_day_before(contacted: date, end: date) -> None:
    h = two_misses(date(2026, 3, 2))
    h.contact(date(2026, 1, 10))  # a contact before the miss does not end it
    contact = h.contact(contacted)
    h.contact(contacted.replace(day=contacted.day + 5))  # nor does a later one
    [e] = of(h, TNW_2026)
    assert (e.period_start, e.period_end, e.percentage) == (date(2026, 3, 2), end, D("10"))
    assert e.causing_events[-1] == contact.event_id
    assert f"until {end.isoformat()}, the day before the worker contacted the advising physician" in e.explanation


def test_a_contact_the_same_day_leaves_no_day_to_reduce() -> None:
    h = two_misses(date(2026, 3, 2))
    h.contact(date(2026, 3, 2))
    [e] = of(h, TNW_2026)
    assert (e.kind, e.percentage, e.status) == (EntryKind.NOTICE, None, Status.UNCERTAIN)
    assert "the same day" in e.explanation


@pytest.mark.parametrize(("missed", "suspended"), [(date(2025, 12, 31), False), (date(2026, 1, 1), True)])
def test_a_no_show_in_person_suspends_the_benefit_from_2026(missed: date, suspended: bool) -> None:
    h = Case2026(start=date(2025, 9, 1))
    no_show = h.no_show(missed)
    contact = h.contact(date(2026, 1, 12))
    entries = of(h, NO_SHOW)
    assert len(entries) == int(suspended)
    if suspended:
        [e] = entries
        assert (e.kind, e.percentage, e.base, e.period_start, e.period_end) == (
            EntryKind.REDUCTION, D("100"), "daily incapacity benefit", missed, date(2026, 1, 11))
        assert (e.status, e.regime, e.causing_events) == (Status.CONFIRMED, "BE-2026",
                                                          (no_show.event_id, contact.event_id))


def test_the_suspension_is_open_ended_until_a_contact() -> None:
    h = Case2026(start=date(2025, 9, 1))
    h.no_show(date(2026, 2, 2))
    [e] = of(h, NO_SHOW)
    assert (e.period_start, e.period_end) == (date(2026, 2, 2), None)
    assert "no contact reported yet" in e.explanation


@pytest.mark.parametrize(("physical", "justified"), [(False, False), (True, True)])
def test_no_suspension_for_an_examination_elsewhere_or_a_justified_absence(physical: bool, justified: bool) -> None:
    h = Case2026(start=date(2025, 9, 1))
    h.no_show(date(2026, 2, 2), physical=physical, justified=justified)
    assert of(h, NO_SHOW) == []


@pytest.mark.parametrize("second", [date(2026, 2, 2), date(2026, 3, 2)])
def test_a_suspended_no_show_gets_no_terug_naar_werk_reduction_besides(second: date) -> None:
    """The second unjustified miss is a no-show in person: suspended in full, no 2.5% or 10% on top."""
    h = two_misses(second, physical=True)
    entries = [e for e in compute_ledger(h.events, RB) if e.rule.startswith("return_to_work")]
    assert [(e.rule, e.percentage) for e in entries] == [(NO_SHOW, D("100"))]


def test_a_no_show_in_person_still_counts_among_the_misses() -> None:
    h = Case2026(start=date(2025, 9, 1))
    h.no_show(date(2026, 3, 2))  # first: suspended
    h.contact(date(2026, 3, 4))
    h.no_show(date(2026, 3, 16), physical=False)  # second: 10%
    assert [(e.period_start, e.percentage) for e in of(h, TNW_2026)] == [(date(2026, 3, 16), D("10"))]
    assert [e.period_end for e in of(h, NO_SHOW)] == [date(2026, 3, 3)]


def test_the_ten_percent_is_for_incapacities_from_2023_as_the_two_and_a_half_was() -> None:
    h = Case2026(start=date(2022, 12, 31))
    h.no_show(date(2026, 3, 2), physical=False)
    h.no_show(date(2026, 3, 16), physical=False)
    assert of(h, TNW_2026) == []
