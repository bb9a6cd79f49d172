"""The employer's side: the force-majeure contribution to the Terug Naar Werk fund, the 2026 solidarity
contribution, the announced non-cooperation fine (status A), and the employer responsibility contribution (an
employer-level computation, not per case).

"Invoking medical force majeure" is read as the employer's termination of the contract for that reason: a
``ContractTerminated`` whose reason is one of the rule's ``termination_reasons`` (``medical_force_majeure``), dated
on or after the rule's start, with (when the rule requires it) a force-majeure decision of definitive unfitness
reported on the case on or before the termination. Public sources tie the 1,800 EUR to terminations from
1 Apr 2024 on the employer's initiative, whoever started the procedure; a termination by mutual agreement or by
the worker should be reported with another reason code. From 1 Jan 2026 (termination date) the 1,800 EUR is also
due on a termination by mutual agreement on medical grounds (``mutual_agreement_reasons``,
``mutual_agreement_medical``). RULEBOOK section 10 ties that to no force-majeure decision, and such an agreement is
typically made instead of the procedure, so none is required; an entry that rests on that reading (no decision on
the case) is U and says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal, localcontext
from itertools import pairwise
from typing import Any

import msgspec
from stdnum.be import nn
from stdnum.exceptions import ValidationError

from shared.events import reports as r
from shared.events.envelope import CaseEvent

from .benefits_base import Ctx, Primary, entry, notice, primary_incapacities
from .benefits_facts import Resumption
from .benefits_ledger import DECIMAL_CONTEXT, EntryKind, LedgerEntry, amount_of, cents, show_euro, show_percent
from .benefits_rules import (
    AnnouncedEmployerFine,
    ForceMajeureContribution,
    Found,
    ResponsibilityContributionRule,
    SolidarityContribution,
    find_rule,
)
from .calendar import last_day_of_months, months_after
from .model import Rulebook, Status


def employer_entries(ctx: Ctx) -> Iterator[LedgerEntry]:
    yield from _force_majeure(ctx)
    yield from _solidarity(ctx)
    yield from _non_cooperation(ctx)


def _force_majeure(ctx: Ctx) -> Iterator[LedgerEntry]:
    for event in ctx.facts.terminations:
        report = event.report
        assert isinstance(report, r.ContractTerminated)
        found = ctx.rule(ForceMajeureContribution, report.terminated_on)
        if found is None:
            continue
        rule = found.rule
        assert isinstance(rule, ForceMajeureContribution)
        mutual = report.reason in rule.mutual_agreement_reasons
        if report.reason not in rule.termination_reasons and not mutual:
            continue
        decisions = [
            d for d in ctx.facts.force_majeure_decisions
            if isinstance(d.report, r.MedicalForceMajeureDecided)
            and d.report.definitively_unfit and d.report.decided_on <= report.terminated_on
        ]
        decision = max(decisions, key=lambda d: (d.report.effective_date, d.version)) if decisions else None
        needs = rule.mutual_agreement_needs_decision if mutual else rule.requires_definitive_decision
        if needs and decision is None:
            continue
        amount = cents(rule.amount)
        after = f" after the decision of definitive unfitness of {decision.report.effective_date.isoformat()}" if (
            decision is not None) else ""
        how = "by mutual agreement on medical grounds" if mutual else "for medical force majeure"
        used: tuple[str, ...] = ()
        if mutual and decision is None:
            used = ("mutual_agreement_needs_decision",)
            after = (" with no decision of definitive unfitness on the case (this rulebook reads the 2026 law as "
                     "requiring none for a mutual agreement: uncertain)")
        yield entry(
            ctx, found, kind=EntryKind.CONTRIBUTION, period_start=report.terminated_on,
            period_end=report.terminated_on, amount=amount, causing=(decision, event), concerns_employer=True,
            status=found.status(*used),
            explanation=(  # the force-majeure wording as recorded before 2026, so that those entries still verify
                f"The contract was terminated {how} on {report.terminated_on.isoformat()}{after}: the employer pays "
                f"{show_euro(amount)} to the Terug Naar Werk fund" if mutual else
                f"The employer terminated the contract {how} on {report.terminated_on.isoformat()}{after}: it pays "
                f"{show_euro(amount)} to the Terug Naar Werk fund"
            ),
        )


# --- the 2026 solidarity contribution ------------------------------------------------------------------------
#
# Per primary incapacity (``primary_incapacities``: a return to work shorter than the relapse window in force on
# the resumption day continues it, a longer one starts a new one, whose window counts again from its own day 31,
# as the guaranteed wage does), chosen by its first day. Day 31 counts days of incapacity (days back at work in a
# bridged return do not count); the window then runs for whole calendar months, and days back at work, Sundays and
# days of partial resumption in it are not indemnified. The window appears once the case's latest event has
# reached day 31 (an incapacity that ends before gives none); from then the days still to come are counted as
# the facts known give them (still incapacitated unless an end or a return is reported), as the partial-resumption
# reduction is, and a later report corrects them by reversal. One entry per calendar month of the window (the
# RSZ/ONSS collects it with the quarterly contributions: no entry straddles a quarter, and a late report changes
# only its month), split again where the daily benefit changes; the days before the first daily benefit reported
# are one percentage entry.


def birth_date(insz: str) -> date | None:
    """The birth date the national number gives (stdnum's ``be.nn``), ``None`` when it cannot be read: an unknown
    or partly unknown birth date, a bis number, a number that fails the check."""
    try:
        return nn.get_birth_date(nn.validate(insz))
    except ValidationError:
        return None


def age_on(birth: date, day: date) -> int:
    """Whole years of age on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _weekday_count(first: date, last: date, weekdays: frozenset[int]) -> int:
    """Days from ``first`` to ``last`` (inclusive) whose ISO weekday is in ``weekdays``."""
    if last < first:
        return 0
    weeks, rest = divmod((last - first).days + 1, 7)
    start = first.isoweekday()
    return weeks * len(weekdays) + sum(1 for k in range(rest) if (start + k - 1) % 7 + 1 in weekdays)


def _minus(spans: list[tuple[date, date]], cut: tuple[date, date | None]) -> list[tuple[date, date]]:
    low, high = cut
    out: list[tuple[date, date]] = []
    for a, b in spans:
        if (high is not None and high < a) or low > b:
            out.append((a, b))
            continue
        if a < low:
            out.append((a, low - timedelta(days=1)))
        if high is not None and high < b:
            out.append((high + timedelta(days=1), b))
    return out


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _which_days(weekdays: frozenset[int]) -> str:
    left_out = [_DAY_NAMES[d - 1] for d in range(1, 8) if d not in weekdays]
    return f"every day but {' and '.join(left_out)}" if left_out else "every day"


class _Window:
    """One primary incapacity's window and what the contribution reads of it."""

    def __init__(self, ctx: Ctx, found: Found, primary: Primary, first: date) -> None:
        rule = found.rule
        assert isinstance(rule, SolidarityContribution)
        self.ctx, self.found, self.rule, self.primary = ctx, found, rule, primary
        self.first = first
        self.last = last_day_of_months(first, rule.window_months)
        self.weekdays = frozenset(rule.indemnified_weekdays)
        #: The days of incapacity in the window (before partial resumptions are taken out).
        self.spans = [
            (max(a, first), min(b, self.last) if b is not None else self.last)
            for a, b in primary.spells if a <= self.last and (b is None or b >= first)
        ]
        self.resumptions = [
            p for p in ctx.facts.resumptions
            if rule.excludes_partial_resumption and p.starts_on <= self.last
            and ((end := p.last_day()) is None or end[0] >= first)
        ]

    @property
    def end(self) -> date:
        """The window's last day of incapacity known (its last day while the incapacity runs)."""
        last_known = self.primary.last_day
        return self.last if last_known is None else min(self.last, last_known)

    def days(self, first: date, last: date) -> tuple[int, int, list[Resumption]]:
        """Indemnified days from ``first`` to ``last``, the days left out for partial resumption, and those
        resumptions."""
        spans = [(max(a, first), min(b, last)) for a, b in self.spans if a <= last and b >= first]
        worked = spans
        cutting: list[Resumption] = []
        for p in self.resumptions:
            end = p.last_day()
            after = _minus(worked, (p.starts_on, end[0] if end else None))
            if after != worked:
                cutting.append(p)
            worked = after
        count = sum(_weekday_count(a, b, self.weekdays) for a, b in worked)
        left_out = sum(_weekday_count(a, b, self.weekdays) for a, b in spans) - count
        return count, left_out, cutting

    def causing(self, last: date, cutting: list[Resumption], *benefit: CaseEvent) -> tuple[CaseEvent | None, ...]:
        facts = self.ctx.facts
        shaping = (e for e in facts.timeline_events if e.report.effective_date <= last)
        resumed = (e for p in cutting for e in (p.declared, p.authorised, p.ended, p.failed))
        return (facts.opening, *shaping, *resumed, *benefit)

    def head(self) -> str:
        return (f"Solidarity contribution for the primary incapacity from {self.primary.start.isoformat()} (day "
                f"{self.rule.from_day} on {self.first.isoformat()}, window {self.first.isoformat()} to "
                f"{self.last.isoformat()})")

    def pieces(self) -> list[tuple[date, date, tuple[Decimal, CaseEvent] | None]]:
        """The window cut by calendar month and by daily benefit (``None``: none reported for those days yet)."""
        benefits = [(d, b, e) for d, b, e in self.ctx.facts.daily_benefits_by_date() if d <= self.end]
        out: list[tuple[date, date, tuple[Decimal, CaseEvent] | None]] = []
        first_benefit = benefits[0][0] if benefits else None
        if first_benefit is None or first_benefit > self.first:
            last = self.end if first_benefit is None else min(self.end, first_benefit - timedelta(days=1))
            out.append((self.first, last, None))
        cuts = sorted({d for d, _, _ in benefits if d > self.first}
                      | {date(y, m, 1) for y, m in _months(self.first, self.end) if date(y, m, 1) > self.first})
        bounds = [self.first, *cuts, self.end + timedelta(days=1)]
        for a, following in pairwise(bounds):
            b = following - timedelta(days=1)
            current = [(benefit, event) for d, benefit, event in benefits if d <= a]
            if current:
                out.append((a, b, current[-1]))
        return out


def _months(first: date, last: date) -> Iterator[tuple[int, int]]:
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        yield y, m
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def _solidarity(ctx: Ctx) -> Iterator[LedgerEntry]:
    incapacity = ctx.facts.incapacity
    if incapacity is None:
        return
    for primary in primary_incapacities(ctx):
        found = ctx.rule(SolidarityContribution, primary.start)
        if found is None:
            continue
        rule = found.rule
        assert isinstance(rule, SolidarityContribution)
        first = primary.day(rule.from_day)
        if incapacity.staff_count < rule.min_staff or first is None or ctx.facts.as_of < first:
            continue
        yield from _window(ctx, _Window(ctx, found, primary, first), incapacity)


def _window(ctx: Ctx, w: _Window, incapacity: r.IncapacityReported) -> Iterator[LedgerEntry]:
    rule, found, start = w.rule, w.found, w.primary.start
    born = birth_date(incapacity.insz)
    if born is None:
        yield notice(
            ctx, found, day=w.first, causing=w.causing(w.first, []), concerns_employer=True, status=Status.UNCERTAIN,
            explanation=(
                f"{w.head()}: not computed, because the worker's birth date cannot be read from the national number "
                f"(an unknown birth date or a bis number), and the contribution is due only for workers aged "
                f"{rule.min_age} to {rule.max_age} at the start"
            ),
        )
        return
    if not rule.min_age <= age_on(born, start) <= rule.max_age:
        return
    doubts: list[str] = []
    since = incapacity.employed_since
    if since is None:
        doubts.append(f"the seniority was not reported (the worker must have been employed at least "
                      f"{rule.min_employment_months} month(s) at the start)")
    elif months_after(since, rule.min_employment_months) > start:
        return
    contract = incapacity.contract_kind
    if contract is None:
        doubts.append(f"the kind of contract was not reported ({', '.join(rule.excluded_contracts)} are left out)")
    elif contract.value in rule.excluded_contracts:
        yield notice(
            ctx, found, day=w.first, causing=w.causing(w.first, []), concerns_employer=True,
            status=found.status("excluded_contracts"),
            explanation=(
                f"{w.head()}: none, because the worker's contract is {contract.value.replace('_', ' ')}, which the "
                f"2026 law leaves out (the list of contracts left out has one source: uncertain)"
            ),
        )
        return
    made = 0
    for a, b, benefit in w.pieces():
        count, left_out, cutting = w.days(a, b)
        if count == 0:
            continue
        made += 1
        yield _piece(ctx, w, (a, b), count, left_out, cutting, benefit, doubts)
    if made == 0:
        count, left_out, cutting = w.days(w.first, w.end)
        used = ("excludes_partial_resumption",) if left_out else ()
        why = f"{left_out} days of partial resumption left out, " if left_out else ""
        told, uncertain = _relapses(w, w.end, doubts)
        yield notice(
            ctx, found, day=w.first, causing=w.causing(w.end, cutting), concerns_employer=True,
            status=Status.UNCERTAIN if uncertain else found.status(*used),
            explanation=f"{w.head()}: no indemnified day in the window ({why}days back at work and "
            f"{_which_days(w.weekdays).replace('every day but ', '')}s not counted){told}",
        )


def _relapses(w: _Window, last: date, doubts: list[str]) -> tuple[str, bool]:
    """What the entries up to ``last`` say of the returns to work that shaped the primary incapacity (only those up
    to ``last``, whose reports are among the entry's causes) and of the other doubts, and whether any is a doubt."""
    relapses = w.primary.relapses_until(last)
    told = "".join(f"; {rel.describe()}" for rel in relapses if not rel.uncertain)
    doubts = [*doubts, *(rel.describe() for rel in relapses if rel.uncertain)]
    return told + (f"; uncertain because {'; and '.join(doubts)}" if doubts else ""), bool(doubts)


def _piece(ctx: Ctx, w: _Window, period: tuple[date, date], count: int, left_out: int, cutting: list[Resumption],
           benefit: tuple[Decimal, CaseEvent] | None, doubts: list[str]) -> LedgerEntry:
    rule, found = w.rule, w.found
    a, b = period
    used = ("excludes_partial_resumption",) if left_out else ()
    told, uncertain = _relapses(w, b, doubts)
    status = Status.UNCERTAIN if uncertain else found.status(*used)
    days = (f"{count} indemnified days from {a.isoformat()} to {b.isoformat()} ({_which_days(w.weekdays)}"
            + (f"; {left_out} days of partial resumption left out, an exclusion with one source: uncertain" if left_out
               else "") + ")")
    collected = ("; the RSZ/ONSS computes and collects it with the quarterly contributions (the employer declares "
                 "nothing), instead of the responsibility contribution")
    if benefit is None:
        return entry(
            ctx, found, kind=EntryKind.CONTRIBUTION, period_start=a, period_end=b, percentage=rule.percentage,
            base=rule.base, causing=w.causing(b, cutting), concerns_employer=True, status=status,
            explanation=(f"{w.head()}: {show_percent(rule.percentage)} of the {rule.base} of each of {days}; no "
                         f"daily benefit reported for these days yet{collected}{told}"),
        )
    daily, event = benefit
    amount = amount_of(rule.percentage, daily * count)
    return entry(
        ctx, found, kind=EntryKind.CONTRIBUTION, period_start=a, period_end=b, amount=amount,
        causing=w.causing(b, cutting, event), concerns_employer=True, status=status,
        explanation=(f"{w.head()}: {show_percent(rule.percentage)} of the daily benefit of {show_euro(daily)} for "
                     f"{days} is {show_euro(amount)}{collected}{told}"),
    )


def _non_cooperation(ctx: Ctx) -> Iterator[LedgerEntry]:
    incapacity = ctx.facts.incapacity
    for event in ctx.facts.trajectory_ends:
        report = event.report
        assert isinstance(report, r.TrajectoryEnded)
        found = ctx.rule(AnnouncedEmployerFine, report.ended_on)
        if found is None or incapacity is None:
            continue
        rule = found.rule
        assert isinstance(rule, AnnouncedEmployerFine)
        if report.reason not in rule.trigger_reasons or incapacity.staff_count < rule.min_staff:
            continue
        amount = cents(rule.amount)
        yield entry(
            ctx, found, kind=EntryKind.FINE, period_start=report.ended_on, period_end=report.ended_on, amount=amount,
            causing=(ctx.facts.opening, event), concerns_employer=True,
            explanation=(
                f"Announced sanction, never enacted, applied because this deployment enables it: the trajectory "
                f"ended on {report.ended_on.isoformat()} for the employer's non-cooperation ({incapacity.staff_count} "
                f"staff, at least {rule.min_staff}), a fine of {show_euro(amount)} for this worker"
            ),
        )


# --- the employer responsibility contribution ---------------------------------------------------------------


class ResponsibilityInput(msgspec.Struct, frozen=True, kw_only=True):
    """One employer's figures for one quarter, as the NSSO computes them."""

    enterprise_number: str
    year: int
    #: The quarter Q the contribution is computed for (1-4).
    quarter: int
    #: Average number of workers over the reference period.
    staff: int
    #: Workers who entered invalidity over the four reference quarters (Q-3 to Q).
    invalidity_entries: int
    #: The employer's, its sector's and the whole private sector's inflow into invalidity (entries per worker).
    inflow_rate: Decimal
    sector_inflow_rate: Decimal
    private_sector_inflow_rate: Decimal
    #: Wages of the quarter before Q, euro.
    previous_quarter_wages: Decimal

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * (self.quarter - 1) + 1, 1)


class ResponsibilityThreshold(msgspec.Struct, frozen=True, kw_only=True):
    """One condition of the contribution against the employer's figure (thresholds are inclusive): so that an
    employer sees how far it is from each one, not only which failed."""

    #: ``staff``, ``invalidity_entries``, ``sector_inflow`` or ``private_sector_inflow`` (the names in ``unmet``).
    name: str
    figure: Decimal
    #: The figure must be at least this (for the inflows: the factor times the sector's or private sector's rate).
    at_least: Decimal
    met: bool
    description: str


class ResponsibilityContribution(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the contribution is due for the quarter, how much, and why (or why not)."""

    enterprise_number: str
    year: int
    quarter: int
    due: bool
    amount: Decimal | None
    rule: str | None
    legal_basis: str | None
    regime: str | None
    status: Status | None
    #: The conditions that failed (empty when due).
    unmet: tuple[str, ...]
    explanation: str
    #: Every condition with the employer's figure (empty when no rule is in force for the quarter).
    thresholds: tuple[ResponsibilityThreshold, ...] = ()
    #: The rule's percentage of the previous quarter's wages (percent: 0.625 is 0.625 %).
    percentage: Decimal | None = None
    #: From 2026: only workers whose incapacity started on or before this day count (the invalidity entries and the
    #: inflow given must be counted so); later incapacities fall under the solidarity contribution instead.
    incapacities_until: date | None = None


def responsibility_contribution(data: ResponsibilityInput, rulebook: Rulebook) -> ResponsibilityContribution:
    """The employer responsibility contribution for ``data``'s quarter (a pure function; thresholds inclusive)."""
    with localcontext(DECIMAL_CONTEXT):
        return _responsibility(data, rulebook)


def _responsibility(data: ResponsibilityInput, rulebook: Rulebook) -> ResponsibilityContribution:
    if not 1 <= data.quarter <= 4:
        raise ValueError(f"quarter must be 1-4, not {data.quarter}")
    label = f"Q{data.quarter} {data.year}"
    found = find_rule(rulebook, ResponsibilityContributionRule, data.first_day)
    base: dict[str, Any] = {"enterprise_number": data.enterprise_number, "year": data.year, "quarter": data.quarter}
    if found is None:
        return ResponsibilityContribution(
            **base, due=False, amount=None, rule=None, legal_basis=None, regime=None, status=None,
            unmet=("rule_in_force",), explanation=f"No responsibility contribution exists for {label}.",
        )
    rule = found.rule
    assert isinstance(rule, ResponsibilityContributionRule)
    checks = {
        "staff": (Decimal(data.staff), Decimal(rule.min_staff), f"{data.staff} staff (at least {rule.min_staff})"),
        "invalidity_entries": (
            Decimal(data.invalidity_entries), Decimal(rule.min_invalidity_entries),
            f"{data.invalidity_entries} workers entering invalidity (at least {rule.min_invalidity_entries})",
        ),
        "sector_inflow": (
            data.inflow_rate, rule.sector_factor * data.sector_inflow_rate,
            f"inflow {data.inflow_rate} against {rule.sector_factor:f} x the sector's {data.sector_inflow_rate}",
        ),
        "private_sector_inflow": (
            data.inflow_rate, rule.private_sector_factor * data.private_sector_inflow_rate,
            f"{rule.private_sector_factor:f} x the private sector's {data.private_sector_inflow_rate}",
        ),
    }
    thresholds = tuple(
        ResponsibilityThreshold(name=name, figure=figure, at_least=least, met=figure >= least, description=text)
        for name, (figure, least, text) in checks.items()
    )
    unmet = tuple(t.name for t in thresholds if not t.met)
    inputs = "; ".join(t.description for t in thresholds)
    cutoff = rule.incapacity_until if rule.incapacity_until is not None and data.first_day > rule.incapacity_until \
        else None
    if cutoff is not None:
        inputs += (f"; only workers whose incapacity started on or before {cutoff.isoformat()} count, the figures "
                   f"must be counted so: incapacities from {(cutoff + timedelta(days=1)).isoformat()} fall under the "
                   f"solidarity contribution instead")
    where = f"(rule {rule.id}, {found.label})"
    found_base: dict[str, Any] = {
        "rule": rule.id, "legal_basis": rule.legal_basis, "regime": found.regime.id, "status": found.status(),
        "thresholds": thresholds, "percentage": rule.percentage, "incapacities_until": cutoff,
    }
    if unmet:
        return ResponsibilityContribution(
            **base, **found_base, due=False, amount=None, unmet=unmet,
            explanation=f"No responsibility contribution for {label}: not met: {', '.join(unmet)}; {inputs} {where}.",
        )
    amount = cents(data.previous_quarter_wages * rule.percentage / 100)
    return ResponsibilityContribution(
        **base, **found_base, due=True, amount=amount, unmet=(),
        explanation=(
            f"Responsibility contribution for {label}: {show_percent(rule.percentage)} of the previous quarter's "
            f"wages of {show_euro(data.previous_quarter_wages)} is {show_euro(amount)}; {inputs} {where}."
        ),
    )
