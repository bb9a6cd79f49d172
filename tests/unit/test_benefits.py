"""The benefit ledger at its edges: exact percentages and euro amounts, one table per rule."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from shared.events import reports as r
from shared.rulebook.benefits import (
    EntryKind,
    LedgerEntry,
    Options,
    Payee,
    ReturnToWorkPremium,
    amount_of,
    cents,
    compute_ledger,
)
from shared.rulebook.model import Status
from tests.unit.test_benefits_builder import RB, History

D = Decimal


def ledger(h: History, **kw: object) -> list[LedgerEntry]:
    return compute_ledger(h.events, RB, **kw)  # type: ignore[arg-type]


def of(entries: list[LedgerEntry], rule: str, kind: EntryKind | None = None) -> list[LedgerEntry]:
    return [e for e in entries if e.rule.startswith(rule) and (kind is None or e.kind is kind)]


# --- partial resumption: the reduction while working -------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "full", "percentage", "shown"),
    [
        (8, 40, D("0"), "0%"),  # f exactly 20%
        (19, 38, D("30"), "30%"),  # half-time
        (20, 40, D("30"), "30%"),
        (10, 38, D("6.315789473684210526315789474"), "6.32%"),  # kept exact to 28 digits, shown rounded
        (4, 38, D("0"), "0%"),  # below 20%: no negative reduction
        (38, 38, D("80"), "80%"),
        (D("15.2"), D("38"), D("20"), "20%"),  # 2 days of 7.6 hours in a 38-hour week: 40% worked
        (D("30.4"), D("37.5"), D("61.06666666666666666666666667"), "61.07%"),  # hours exact to the hundredth
    ],
)
def test_partial_resumption_reduction(hours: int | Decimal, full: int | Decimal, percentage: Decimal,
                                      shown: str) -> None:
    h = History(start=date(2023, 6, 1))
    h.declare(date(2024, 3, 4), hours, full)
    [entry] = of(ledger(h), "partial_resumption.reduction")
    assert (entry.kind, entry.percentage, entry.amount, entry.base) == (
        EntryKind.REDUCTION, percentage, None, "daily incapacity benefit")
    assert (entry.period_start, entry.period_end, entry.regime, entry.status) == (
        date(2024, 3, 4), None, "BE-2022", Status.CONFIRMED)
    assert f"reduced by {shown}," in entry.explanation and "BE-2022" in entry.explanation
    assert not entry.concerns_employer


def test_authorised_hours_replace_the_declared_ones_and_the_end_closes_the_period() -> None:
    h = History(start=date(2023, 6, 1))
    declared = h.declare(date(2024, 3, 4), 19, 38)
    authorised = h.authorise(date(2024, 3, 10), hours=10)
    ended = h.end(date(2024, 9, 30))
    [entry] = of(ledger(h), "partial_resumption.reduction")
    assert entry.percentage == D("6.315789473684210526315789474")
    assert entry.period_end == date(2024, 9, 30)
    assert entry.causing_events == (declared.event_id, authorised.event_id, ended.event_id)


@pytest.mark.parametrize(
    ("percentage", "benefit", "expected"),
    [
        (D("30"), D("61.15"), D("18.35")),  # 18.345: half up (half even would give 18.34)
        (D("6.315789473684210526315789474"), D("80.00"), D("5.05")),
        (D("2.5"), D("70.10"), D("1.75")),  # 1.7525
        (D("10"), D("0.05"), D("0.01")),  # 0.005 rounds up
    ],
)
def test_only_amounts_are_rounded_to_cents_half_up(percentage: Decimal, benefit: Decimal, expected: Decimal) -> None:
    assert amount_of(percentage, benefit) == expected


@pytest.mark.parametrize(
    ("starts_on", "kind", "status"),
    [(date(2018, 3, 31), EntryKind.NOTICE, Status.UNCERTAIN), (date(2018, 4, 1), EntryKind.REDUCTION, Status.CONFIRMED)],
)
def test_resumptions_before_1_april_2018_say_no_rule_is_carried(starts_on: date, kind: EntryKind, status: Status) -> None:
    h = History(start=date(2017, 9, 1))
    h.declare(starts_on, 19)
    [entry] = of(ledger(h), "partial_resumption.reduction")
    assert (entry.kind, entry.status, entry.regime, entry.percentage) == (
        kind, status, "BE-2016", None if kind is EntryKind.NOTICE else D("30"))
    if kind is EntryKind.NOTICE:
        assert "applies from 2018-04-01" in entry.explanation and "not carried" in entry.explanation


# --- late declaration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared_on", "expected"),
    [
        (date(2024, 3, 1), None),  # Friday, the working day before Monday 4 March: in time
        (date(2024, 3, 2), None),  # late, but the form arrived before the start: no day to reduce
        (date(2024, 3, 6), (date(2024, 3, 4), date(2024, 3, 6))),
        (date(2024, 3, 18), (date(2024, 3, 4), date(2024, 3, 18))),  # 14 days after the start
        (date(2024, 3, 19), "notice"),  # beyond the 14 days this rule covers
    ],
)
def test_late_declaration_reduces_by_10_percent_until_the_form_arrives(
    declared_on: date, expected: tuple[date, date] | str | None
) -> None:
    h = History(start=date(2023, 6, 1))
    h.declare(date(2024, 3, 4), 19, declared_on=declared_on)
    entries = of(ledger(h), "partial_resumption.late_declaration")
    if expected is None:
        assert entries == []
    elif expected == "notice":
        assert [(e.kind, e.status) for e in entries] == [(EntryKind.NOTICE, Status.UNCERTAIN)]
    else:
        [entry] = entries
        assert (entry.percentage, (entry.period_start, entry.period_end), entry.status) == (
            D("10"), expected, Status.UNCERTAIN)


# --- failure: restoration and the guaranteed-wage exemption --------------------------------------------------


@pytest.mark.parametrize(("days_after", "week", "exempt"), [(140, 20, True), (141, 21, False), (0, 1, True)])
def test_relapse_within_20_weeks_of_the_first_authorisation(days_after: int, week: int, exempt: bool) -> None:
    h = History(start=date(2022, 12, 1))
    h.declare(date(2023, 3, 1), 19)
    first = h.authorise(date(2023, 3, 1))
    failed = h.fail(date(2023, 3, 1) + timedelta(days=days_after))
    entries = ledger(h)
    [restoration] = of(entries, "partial_resumption.restoration")
    assert (restoration.kind, restoration.period_start, restoration.concerns_employer) == (
        EntryKind.RESTORATION, failed.report.effective_date, False)
    exemptions = of(entries, "partial_resumption.guaranteed_wage_exemption")
    assert len(exemptions) == int(exempt)
    if exempt:
        [e] = exemptions
        assert (e.kind, e.beneficiary, e.payer, e.concerns_employer) == (
            EntryKind.GUARANTEED_WAGE_EXEMPTION, Payee.EMPLOYER, Payee.HEALTH_FUND, True)
        assert e.causing_events == (first.event_id, failed.event_id) and f"week {week} " in e.explanation


@pytest.mark.parametrize(("failed_on", "exempt"), [(date(2025, 12, 31), False), (date(2026, 1, 1), True)])
def test_from_2026_no_guaranteed_wage_on_a_relapse_during_the_whole_resumption(failed_on: date, exempt: bool) -> None:
    """BE-2026 (relapse date): the 20-week limit is gone. A relapse in week 30 of the resumption: the day before
    1 Jan 2026 the guaranteed wage is owed, from that day it is not."""
    h = History(start=date(2024, 11, 4))
    h.declare(date(2025, 6, 2), 19)
    first = h.authorise(date(2025, 6, 2))
    failed = h.fail(failed_on)
    exemptions = of(ledger(h), "partial_resumption.guaranteed_wage_exemption")
    assert len(exemptions) == int(exempt)
    if exempt:
        [e] = exemptions
        assert (e.kind, e.regime, e.concerns_employer) == (EntryKind.GUARANTEED_WAGE_EXEMPTION, "BE-2026", True)
        assert e.causing_events == (first.event_id, failed.event_id)
        assert "during the whole resumption" in e.explanation


@pytest.mark.parametrize(("failed_on", "exempt"), [(date(2022, 11, 27), False), (date(2022, 11, 28), True)])
def test_guaranteed_wage_exemption_only_from_28_november_2022(failed_on: date, exempt: bool) -> None:
    h = History(start=date(2022, 5, 1))
    h.declare(date(2022, 10, 3), 19)
    h.authorise(date(2022, 10, 5))
    h.fail(failed_on)
    entries = ledger(h)
    assert len(of(entries, "partial_resumption.guaranteed_wage_exemption")) == int(exempt)
    [reduction] = of(entries, "partial_resumption.reduction")
    assert reduction.period_end == failed_on - timedelta(days=1)  # the reduction stops the day before


# --- Terug Naar Werk ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "reduced"), [(date(2022, 12, 31), False), (date(2023, 1, 1), True)])
def test_second_unjustified_missed_examination_for_incapacities_from_2023(start: date, reduced: bool) -> None:
    h = History(start=start)
    h.miss(date(2023, 3, 1))
    h.miss(date(2023, 3, 15), justified=True)
    h.miss(date(2023, 4, 3))
    h.miss(date(2023, 5, 8))  # a third: the rule reduces for the second only
    entries = of(ledger(h), "return_to_work.missed_examination_reduction")
    if not reduced:
        assert entries == []
        return
    [entry] = entries
    assert (entry.percentage, entry.period_start, entry.period_end) == (D("2.5"), date(2023, 4, 3), date(2023, 5, 2))
    assert entry.status is Status.UNCERTAIN  # the one-month duration is an uncertain parameter
    assert "no. 2" in entry.explanation


# --- the employer's return-to-work premium -----------------------------------------------------------------


def premium_case(incapacity: date, starts_on: date, *, review: date | None = None) -> History:
    h = History(start=incapacity)
    h.declare(starts_on, 19)
    h.authorise(starts_on + timedelta(days=10))
    h.review(review or starts_on + timedelta(days=200))
    return h


@pytest.mark.parametrize(
    ("starts_on", "amount", "rule", "due_on"),
    [
        (date(2023, 3, 31), None, None, None),  # before 1 Apr 2023: no premium
        (date(2023, 4, 1), D("1000.00"), "return_to_work_premium.2023", date(2023, 7, 1)),
        (date(2023, 12, 31), D("1000.00"), "return_to_work_premium.2023", date(2024, 3, 31)),
        (date(2024, 1, 1), D("1725.00"), "return_to_work_premium.2024", date(2024, 4, 1)),
        # 3 months of work from 31 Mar end on 30 Jun (June has no 31st: its last day); the premium is due the next day
        (date(2025, 3, 31), D("1725.00"), "return_to_work_premium.2024", date(2025, 7, 1)),
    ],
)
def test_premium_amount_by_the_start_of_the_resumption(
    starts_on: date, amount: Decimal | None, rule: str | None, due_on: date | None
) -> None:
    entries = of(ledger(premium_case(date(2022, 1, 3), starts_on)), "return_to_work_premium")
    if amount is None:
        assert entries == []
        return
    [entry] = entries
    assert (entry.kind, entry.amount, entry.rule, entry.period_start, entry.period_end) == (
        EntryKind.PREMIUM, amount, rule, due_on, due_on)
    assert (entry.beneficiary, entry.payer, entry.concerns_employer, entry.status) == (
        Payee.EMPLOYER, Payee.HEALTH_FUND, True, Status.CONFIRMED)


@pytest.mark.parametrize(("resumed_on", "rule", "status"), [
    (date(2025, 3, 31), "return_to_work_premium.2024", Status.CONFIRMED),  # the day before
    (date(2025, 4, 1), "return_to_work_premium.2025", Status.CONFIRMED),  # the day it starts (RULEBOOK section 10)
    # under BE-2026, which keeps it; the regime itself is only partly known (U), and so is what is computed in it
    (date(2026, 3, 2), "return_to_work_premium.2025", Status.UNCERTAIN),
])
def test_the_premium_continues_without_end_date_for_resumptions_from_1_april_2025(resumed_on: date, rule: str,
                                                                                  status: Status) -> None:
    [entry] = of(ledger(premium_case(date(2023, 1, 3), resumed_on)), "return_to_work_premium")
    assert (entry.kind, entry.amount, entry.rule, entry.status) == (EntryKind.PREMIUM, D("1725.00"), rule, status)


@pytest.mark.parametrize(
    ("incapacity", "premium"),
    [(date(2023, 2, 15), False), (date(2023, 1, 16), False), (date(2023, 1, 15), True)],  # 11 m, a day short, 12 m
)
def test_premium_needs_a_year_of_incapacity_when_the_resumption_starts(incapacity: date, premium: bool) -> None:
    entries = of(ledger(premium_case(incapacity, date(2024, 1, 15))), "return_to_work_premium")
    assert [e.amount for e in entries] == ([D("1725.00")] if premium else [])


@pytest.mark.parametrize(("resumed_on", "premium"), [(date(2023, 1, 15), True), (date(2023, 1, 16), False)])
def test_assumed_a_return_to_work_of_14_days_restarts_the_year(resumed_on: date, premium: bool) -> None:
    """An assumption, not RULEBOOK section 5: ``return_tolerance_days = 14`` is marked uncertain in the rulebook.

    13 days back at work are assumed not to interrupt the incapacity; 14 do, and the year counts from 16 Jan 2023.
    The resumption starts on 10 Jan 2024, within a year of either return's end: only the bridged 13 days give the
    year, so the premium depends on the assumption and is U, and says why.
    """
    for rule in RB.rules(ReturnToWorkPremium):
        assert isinstance(rule, ReturnToWorkPremium)
        assert rule.return_tolerance_days == 14 and "return_tolerance_days" in rule.uncertain
    h = History(start=date(2022, 6, 1))
    h.interrupt(date(2023, 1, 2))
    h.resume(resumed_on)
    h.declare(date(2024, 1, 10), 19)
    h.authorise(date(2024, 1, 20))
    h.review(date(2024, 6, 1))
    entries = of(ledger(h), "return_to_work_premium")
    assert [e.amount for e in entries] == ([D("1725.00")] if premium else [])
    if premium:
        [entry] = entries
        assert entry.status is Status.UNCERTAIN
        assert "fewer than 14 days was not counted as an interruption: an assumption" in entry.explanation


def test_a_premium_that_needs_no_tolerance_stays_confirmed() -> None:
    """A return long enough to interrupt under any reading leaves the year from its end, and the premium C."""
    h = History(start=date(2021, 6, 1))
    h.interrupt(date(2021, 9, 1))
    h.resume(date(2021, 9, 10))  # 9 days, but the year is complete without bridging it
    h.declare(date(2024, 1, 15), 19)
    h.authorise(date(2024, 1, 20))
    h.review(date(2024, 6, 1))
    [entry] = of(ledger(h), "return_to_work_premium")
    assert (entry.amount, entry.status) == (D("1725.00"), Status.CONFIRMED)
    assert "assumption" not in entry.explanation


@pytest.mark.parametrize(
    ("latest", "ended_on", "premium"),
    [
        (date(2024, 4, 30), None, False),  # 3 months from 1 Feb complete on 1 May
        (date(2024, 5, 1), None, True),
        (date(2024, 5, 2), date(2024, 4, 29), False),  # ended a day short
        (date(2024, 5, 2), date(2024, 4, 30), True),  # worked through the last day of the 3 months
    ],
)
def test_premium_after_three_months_of_authorised_work(latest: date, ended_on: date | None, premium: bool) -> None:
    h = History(start=date(2022, 11, 1))
    h.declare(date(2024, 2, 1), 19)
    h.authorise(date(2024, 2, 5))
    if ended_on is not None:
        h.end(ended_on, at=latest)
    else:
        h.review(latest)
    entries = of(ledger(h), "return_to_work_premium")
    assert [(e.amount, e.period_start) for e in entries] == ([(D("1725.00"), date(2024, 5, 1))] if premium else [])


def test_a_second_premium_for_the_same_worker_and_employer_is_refused() -> None:
    h = premium_case(date(2022, 1, 3), date(2024, 1, 1))
    assert [e.kind for e in of(ledger(h), "return_to_work_premium")] == [EntryKind.PREMIUM]
    [entry] = of(ledger(h, prior_premium=True), "return_to_work_premium")
    assert (entry.kind, entry.amount, entry.concerns_employer) == (EntryKind.NOTICE, None, True)
    assert "one premium per worker per employer" in entry.explanation


def test_one_premium_per_case_even_with_two_qualifying_resumptions() -> None:
    h = premium_case(date(2022, 1, 3), date(2024, 1, 1))
    h.end(date(2024, 6, 30))
    h.declare(date(2024, 9, 2), 19)
    h.authorise(date(2024, 9, 3))
    h.review(date(2025, 1, 1))
    assert [e.amount for e in of(ledger(h), "return_to_work_premium")] == [D("1725.00")]


# --- socio-professional rehabilitation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("report", "amount", "kind"),
    [
        (("hours", "12.345"), D("61.73"), EntryKind.PREMIUM),  # 61.725 half up
        (("hours", "10"), D("50.00"), EntryKind.PREMIUM),
        (("hours", "0.25"), D("1.25"), EntryKind.PREMIUM),
        (("cost", "12.345"), D("12.35"), EntryKind.REIMBURSEMENT),
        (("cost", "0.005"), D("0.01"), EntryKind.REIMBURSEMENT),
        (("cost", "250.40"), D("250.40"), EntryKind.REIMBURSEMENT),
        (("completed", True), D("500.00"), EntryKind.PREMIUM),
        (("completed", False), None, None),
    ],
)
def test_rehabilitation_premiums_and_costs_in_cents(report: tuple[str, object], amount: Decimal | None,
                                                    kind: EntryKind | None) -> None:
    h = History(start=date(2023, 1, 10))
    h.rehabilitation(date(2024, 1, 10), date(2024, 2, 1))
    what, value = report
    if what == "hours":
        h.training_hours(date(2024, 3, 4), date(2024, 3, 8), str(value))
    elif what == "cost":
        h.cost(date(2024, 3, 4), str(value))
    else:
        h.completed(date(2024, 6, 28), successful=bool(value))
    entries = of(ledger(h), "rehabilitation")
    assert [(e.kind, e.amount) for e in entries] == ([(kind, amount)] if amount is not None else [])
    for e in entries:
        assert (e.beneficiary, e.payer, e.concerns_employer) == (Payee.WORKER, Payee.HEALTH_FUND, False)


@pytest.mark.parametrize("cause", [r.Cause.WORK_ACCIDENT, r.Cause.OCCUPATIONAL_DISEASE])
def test_rehabilitation_excluded_for_work_accidents_is_an_uncertain_notice(cause: r.Cause) -> None:
    h = History(start=date(2023, 1, 10), cause=cause)
    h.rehabilitation(date(2024, 1, 10), date(2024, 2, 1))
    h.training_hours(date(2024, 3, 4), date(2024, 3, 8), "10")
    [entry] = of(ledger(h), "rehabilitation")
    assert (entry.kind, entry.rule, entry.amount, entry.status) == (
        EntryKind.NOTICE, "rehabilitation.exclusion", None, Status.UNCERTAIN)
    assert "50.00 EUR" in entry.explanation


def test_rehabilitation_before_the_first_regime_is_not_carried() -> None:
    h = History(start=date(2015, 6, 1))
    h.rehabilitation(date(2016, 1, 10), date(2016, 2, 1))
    h.training_hours(date(2016, 11, 1), date(2016, 11, 30), "10")
    h.training_hours(date(2016, 12, 1), date(2016, 12, 2), "10")
    entries = of(ledger(h), "rehabilitation")
    assert [(e.kind, e.amount, e.regime) for e in entries] == [
        (EntryKind.NOTICE, None, None), (EntryKind.PREMIUM, D("50.00"), "BE-2016")]


# --- medical force majeure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terminated_on", "reason", "unfit", "due"),
    [
        (date(2024, 3, 31), "medical_force_majeure", True, False),
        (date(2024, 4, 1), "medical_force_majeure", True, True),
        (date(2024, 4, 1), "mutual_agreement", True, False),
        (date(2024, 4, 1), "medical_force_majeure", False, False),  # no decision of definitive unfitness
    ],
)
def test_force_majeure_contribution_from_1_april_2024(terminated_on: date, reason: str, unfit: bool, due: bool) -> None:
    h = History(start=date(2023, 1, 10))
    h.force_majeure(date(2024, 2, 1), date(2024, 3, 15), unfit=unfit)
    termination = h.terminate(terminated_on, reason)
    entries = of(ledger(h), "force_majeure.contribution")
    if not due:
        assert entries == []
        return
    [entry] = entries
    assert (entry.kind, entry.amount, entry.payer, entry.beneficiary, entry.concerns_employer) == (
        EntryKind.CONTRIBUTION, D("1800.00"), Payee.EMPLOYER, Payee.RETURN_TO_WORK_FUND, True)
    assert entry.causing_events[-1] == termination.event_id and len(entry.causing_events) == 2


def test_a_contribution_under_the_2026_regime_follows_its_own_confirmed_rule() -> None:
    """BE-2026 has its own version of the contribution (RULEBOOK section 10: 1,800 EUR, C+), so a termination for
    medical force majeure after a decision of definitive unfitness is C there (it used to inherit the 2022 rule, U)."""
    h = History(start=date(2025, 1, 10))
    h.force_majeure(date(2025, 11, 3), date(2025, 12, 15))
    h.terminate(date(2026, 1, 5), "medical_force_majeure")
    [entry] = of(ledger(h), "force_majeure.contribution")
    assert (entry.regime, entry.amount, entry.status) == ("BE-2026", D("1800.00"), Status.CONFIRMED)
    assert entry.explanation.endswith("(rule force_majeure.contribution, BE-2026).")


# --- announced sanctions (status A) ------------------------------------------------------------------------

ANNOUNCED = frozenset({"sanction.employer.non_cooperation", "sanction.worker.questionnaire", "sanction.worker.invitation"})


def sanctions_case(staff: int = 120) -> History:
    h = History(start=date(2023, 1, 10), staff=staff)
    h.questionnaire_sent(date(2024, 2, 1))
    h.miss(date(2024, 2, 20))
    h.trajectory_ended(date(2024, 3, 1), date(2024, 5, 31), "employer_non_cooperation")
    return h


def test_announced_sanctions_are_off_by_default() -> None:
    assert of(ledger(sanctions_case()), "sanction") == []


def test_announced_sanctions_apply_where_the_deployment_enables_them() -> None:
    entries = of(ledger(sanctions_case(), options=Options(enabled_announced=ANNOUNCED)), "sanction")
    got = {(e.rule, e.kind, e.amount, e.percentage, e.period_start, e.period_end, e.status) for e in entries}
    assert got == {
        ("sanction.worker.questionnaire", EntryKind.REDUCTION, None, D("5"), date(2024, 2, 16), date(2024, 3, 15),
         Status.ANNOUNCED),
        ("sanction.worker.invitation", EntryKind.REDUCTION, None, D("10"), date(2024, 2, 20), date(2024, 3, 19),
         Status.ANNOUNCED),
        ("sanction.employer.non_cooperation", EntryKind.FINE, D("800.00"), None, date(2024, 5, 31), date(2024, 5, 31),
         Status.ANNOUNCED),
    }
    assert all("never enacted" in e.explanation for e in entries)
    only_fine = of(ledger(sanctions_case(), options=Options(enabled_announced=frozenset(
        {"sanction.employer.non_cooperation"}))), "sanction")
    assert [e.rule for e in only_fine] == ["sanction.employer.non_cooperation"]


def test_announced_employer_fine_needs_50_staff() -> None:
    options = Options(enabled_announced=ANNOUNCED)
    assert of(ledger(sanctions_case(staff=49), options=options), "sanction.employer") == []
    assert len(of(ledger(sanctions_case(staff=50), options=options), "sanction.employer")) == 1


@pytest.mark.parametrize(
    ("returned_on", "latest", "sanctioned"),
    [(None, date(2024, 2, 15), False), (None, date(2024, 2, 16), True), (date(2024, 2, 15), None, False),
     (date(2024, 2, 16), None, True)],
)
def test_announced_questionnaire_sanction_after_two_weeks(
    returned_on: date | None, latest: date | None, sanctioned: bool
) -> None:
    h = History(start=date(2023, 1, 10))
    h.questionnaire_sent(date(2024, 2, 1))
    if returned_on is not None:
        h.questionnaire_returned(returned_on)
    if latest is not None:
        h.review(latest)
    entries = of(ledger(h, options=Options(enabled_announced=ANNOUNCED)), "sanction.worker.questionnaire")
    assert len(entries) == int(sanctioned)


# --- who is told -------------------------------------------------------------------------------------------


def test_employer_is_told_of_its_own_money_only() -> None:
    h = premium_case(date(2022, 1, 3), date(2024, 1, 1))
    h.miss(date(2024, 2, 1))
    h.miss(date(2024, 3, 1))
    h.fail(date(2024, 5, 15))
    h.force_majeure(date(2024, 11, 4), date(2024, 12, 2))
    h.terminate(date(2024, 12, 6))
    entries = ledger(h, options=Options(enabled_announced=ANNOUNCED))
    employer_kinds = {EntryKind.PREMIUM, EntryKind.CONTRIBUTION, EntryKind.FINE, EntryKind.GUARANTEED_WAGE_EXEMPTION}
    assert {e.kind for e in entries} >= employer_kinds - {EntryKind.FINE} | {EntryKind.REDUCTION}
    for e in entries:
        assert e.concerns_employer is (e.kind in employer_kinds), e
        assert e.amount is None or e.amount == cents(e.amount)


def test_explanations_name_rule_figure_and_regime() -> None:
    # January and February 2026: BE-2026 keeps the 2022 rule until its own 10% version starts (1 Mar 2026 here)
    h = History(start=date(2025, 11, 3))
    h.miss(date(2026, 1, 5))
    h.miss(date(2026, 2, 2))
    [tnw] = of(ledger(h), "return_to_work.missed_examination_reduction")
    assert tnw.regime == "BE-2026"
    assert tnw.explanation.endswith(
        "(rule return_to_work.missed_examination_reduction, BE-2026 (rule of BE-2022)).")
    assert "2.5%" in tnw.explanation and "2026-02-02" in tnw.explanation
