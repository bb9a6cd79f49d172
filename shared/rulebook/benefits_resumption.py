"""Authorised partial resumption: the reduction while working, the late-declaration reduction, the full benefit
on failure, the employer's guaranteed-wage exemption on a relapse, and the employer's return-to-work premium.

Each resumption's rules are chosen by the day it starts (the reduction, the late declaration, the premium) or the
day it fails (restoration, exemption).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal, localcontext

from .benefits_base import Ctx, entry, not_carried_notice, notice
from .benefits_facts import Resumption
from .benefits_ledger import (
    DECIMAL_CONTEXT,
    EntryKind,
    LedgerEntry,
    cents,
    percent_of_fraction,
    show_euro,
    show_percent,
)
from .benefits_rules import (
    BenefitRestoration,
    GuaranteedWageExemption,
    LateDeclarationReduction,
    ResumptionReduction,
    ReturnToWorkPremium,
)
from .calendar import add_calendar_days, calendar_for, months_after

HUNDRED = Decimal(100)


def resumption_entries(ctx: Ctx) -> Iterator[LedgerEntry]:
    for resumption in ctx.facts.resumptions:
        yield from _reduction(ctx, resumption)
        yield from _late_declaration(ctx, resumption)
        yield from _failure(ctx, resumption)
    yield from _premium(ctx)


def reduction_percentage(weekly_hours: Decimal, full_time_hours: Decimal, exempt_percentage: Decimal) -> Decimal:
    """max(0, hours / full-time - exempt) in percent, one division: (100 h - exempt x full) / full."""
    with localcontext(DECIMAL_CONTEXT):
        numerator = Decimal(weekly_hours) * HUNDRED - exempt_percentage * Decimal(full_time_hours)
        if numerator <= 0:
            return Decimal(0)
        return percent_of_fraction(numerator, Decimal(full_time_hours))


def _reduction(ctx: Ctx, p: Resumption) -> Iterator[LedgerEntry]:
    found = ctx.rule(ResumptionReduction, p.starts_on)
    if found is None:
        gap = not_carried_notice(
            ctx, ResumptionReduction, p.starts_on, causing=(p.declared,),
            what=f"the partial resumption that started on {p.starts_on.isoformat()}",
        )
        if gap is not None:
            yield gap
        return
    rule = found.rule
    assert isinstance(rule, ResumptionReduction)
    hours, full = p.weekly_hours, p.declaration.full_time_hours
    pct = reduction_percentage(hours, full, rule.exempt_percentage)
    last = p.last_day()
    end = last[0] if last else None
    if end is not None and end < p.starts_on:
        return
    source = "authorised" if p.authorisation and p.authorisation.weekly_hours is not None else (
        "declared, authorised" if p.authorisation else "declared, not yet authorised")
    share = percent_of_fraction(Decimal(hours) * HUNDRED, Decimal(full))
    yield entry(
        ctx, found, kind=EntryKind.REDUCTION, period_start=p.starts_on, period_end=end,
        percentage=pct, base=rule.base, causing=(p.declared, p.authorised, last[1] if last else None),
        explanation=(
            f"Partial resumption of {hours} of {full} hours a week ({source}) from {p.starts_on.isoformat()}"
            f"{f' to {end.isoformat()}' if end else ''}: the {rule.base} is reduced by {show_percent(pct)}, "
            f"that is {show_percent(share)} of full time less the {show_percent(rule.exempt_percentage)} exempt"
        ),
    )


def _late_declaration(ctx: Ctx, p: Resumption) -> Iterator[LedgerEntry]:
    found = ctx.rule(LateDeclarationReduction, p.starts_on)
    if found is None:
        return
    rule = found.rule
    assert isinstance(rule, LateDeclarationReduction)
    declared, start = p.declaration.declared_on, p.starts_on
    deadline = calendar_for(ctx.rulebook.calendar.id).previous_working_day(start)
    if declared <= deadline:
        return
    window_end = add_calendar_days(start, rule.late_window_days)
    if declared > window_end:
        yield notice(
            ctx, found, day=declared, causing=(p.declared,),
            explanation=(
                f"The resumption of {start.isoformat()} was declared on {declared.isoformat()}, more than "
                f"{rule.late_window_days} days after it started: the {show_percent(rule.percentage)} late-declaration "
                f"rule does not cover it and no other consequence is computed here"
            ),
        )
        return
    end = declared if rule.includes_declaration_day else declared - timedelta(days=1)
    if end < start:
        return
    yield entry(
        ctx, found, kind=EntryKind.REDUCTION, period_start=start, period_end=end,
        percentage=rule.percentage, base=rule.base, causing=(p.declared,),
        explanation=(
            f"The resumption of {start.isoformat()} was declared late, on {declared.isoformat()} (due by "
            f"{deadline.isoformat()}, the working day before): the {rule.base} is reduced by "
            f"{show_percent(rule.percentage)} from the start until the declaration arrived"
        ),
    )


def _failure(ctx: Ctx, p: Resumption) -> Iterator[LedgerEntry]:
    if p.failed is None:
        return
    failed_on = p.failed.report.effective_date
    found = ctx.rule(BenefitRestoration, failed_on)
    if found is None:
        gap = not_carried_notice(
            ctx, BenefitRestoration, failed_on, causing=(p.declared, p.failed),
            what=f"the failed resumption of {p.starts_on.isoformat()}",
        )
        if gap is not None:
            yield gap
    else:
        base = found.rule.base if isinstance(found.rule, BenefitRestoration) else "benefit"
        yield entry(
            ctx, found, kind=EntryKind.RESTORATION, period_start=failed_on, period_end=None, base=base,
            causing=(p.declared, p.failed),
            explanation=(
                f"The partial resumption of {p.starts_on.isoformat()} failed on {failed_on.isoformat()}: the full "
                f"{base} is paid again from that day"
            ),
        )
    yield from _exemption(ctx, p, failed_on)


def _exemption(ctx: Ctx, p: Resumption, failed_on: date) -> Iterator[LedgerEntry]:
    found = ctx.rule(GuaranteedWageExemption, failed_on)
    first = ctx.facts.first_authorisation()
    if found is None or first is None:
        return
    rule = found.rule
    assert isinstance(rule, GuaranteedWageExemption)
    authorised_on, authorised = first
    days = (failed_on - authorised_on).days
    if rule.whole_resumption and days >= 0:
        yield entry(
            ctx, found, kind=EntryKind.GUARANTEED_WAGE_EXEMPTION, period_start=failed_on, period_end=None,
            base=rule.base, causing=(authorised, p.failed), concerns_employer=True,
            explanation=(
                f"The relapse of {failed_on.isoformat()} falls during the partial resumption authorised from "
                f"{authorised_on.isoformat()}, and from {found.rule.applies_from or failed_on} no guaranteed wage is "
                f"owed on a relapse during the whole resumption: the employer owes no {rule.base}"
            ),
        )
        return
    if rule.weeks <= 0 or days < 0 or days > 7 * rule.weeks:
        return
    week = max(1, -(-days // 7))
    yield entry(
        ctx, found, kind=EntryKind.GUARANTEED_WAGE_EXEMPTION, period_start=failed_on, period_end=None,
        base=rule.base, causing=(authorised, p.failed), concerns_employer=True,
        explanation=(
            f"The relapse of {failed_on.isoformat()} falls in week {week} after the first authorisation of "
            f"{authorised_on.isoformat()}, within the first {rule.weeks} weeks: the employer owes no {rule.base}"
        ),
    )


def _premium(ctx: Ctx) -> Iterator[LedgerEntry]:
    """At most one premium per case (one worker, one employer): the first resumption that qualifies."""
    facts = ctx.facts
    if facts.timeline is None:
        return
    for p in facts.resumptions:
        found = ctx.rule(ReturnToWorkPremium, p.starts_on)
        if found is None or p.authorisation is None:
            continue
        rule = found.rule
        assert isinstance(rule, ReturnToWorkPremium)
        spell = facts.timeline.spell_start(p.starts_on, rule.return_tolerance_days)
        if spell is None or months_after(spell, rule.min_incapacity_months) > p.starts_on:
            continue
        # The tolerance is an assumption (U): when the year is only reached because a short return was bridged,
        # the entry depends on it and says so.
        strict = facts.timeline.spell_start(p.starts_on, 0)
        bridged = strict is None or months_after(strict, rule.min_incapacity_months) > p.starts_on
        used = ("return_tolerance_days",) if bridged else ()
        complete_on = months_after(p.starts_on, rule.min_work_months)
        last = p.last_day()
        if (last is not None and last[0] < complete_on - timedelta(days=1)) or facts.as_of < complete_on:
            continue
        due_on = max(complete_on, p.authorisation.authorised_on)
        shaping = (e for e in facts.timeline_events if e.report.effective_date <= p.starts_on)
        causing = (facts.opening, *shaping, p.declared, p.authorised)
        inputs = (
            f"resumption authorised on {p.authorisation.authorised_on.isoformat()} and started on "
            f"{p.starts_on.isoformat()} after incapacity from {spell.isoformat()} (at least "
            f"{rule.min_incapacity_months} months), {rule.min_work_months} months of authorised work completed on "
            f"{(complete_on - timedelta(days=1)).isoformat()}"
        )
        if bridged:
            inputs += (
                f" (a return to work of fewer than {rule.return_tolerance_days} days was not counted as an "
                f"interruption: an assumption, uncertain)"
            )
        if ctx.prior_premium:
            yield notice(
                ctx, found, day=due_on, causing=causing, concerns_employer=True, status=found.status(*used),
                explanation=f"No return-to-work premium: {inputs}, but this employer already received the premium "
                "for this worker in another case (one premium per worker per employer)",
            )
        elif found.expired:
            assert rule.until is not None
            yield notice(
                ctx, found, day=due_on, causing=causing, concerns_employer=True, status=found.status("until", *used),
                explanation=f"No return-to-work premium: {inputs}, but the premium covers resumptions started up "
                f"to {rule.until.isoformat()} (whether it was extended is not known; it would be "
                f"{show_euro(rule.amount)})",
            )
        else:
            yield entry(
                ctx, found, kind=EntryKind.PREMIUM, period_start=due_on, period_end=due_on, amount=cents(rule.amount),
                causing=causing, concerns_employer=True, status=found.status(*used),
                explanation=f"Return-to-work premium of {show_euro(rule.amount)} for the employer: {inputs}",
            )
        return
