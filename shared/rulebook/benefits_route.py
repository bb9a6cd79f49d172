"""The health fund's side: Terug Naar Werk reductions, the 2026 suspension for a no-show at an appointment in
person, the announced worker reductions (status A) and the socio-professional rehabilitation premiums and cost
reimbursements.

Unjustified missed examinations are counted in the order of their dates (then versions); the rule is chosen by the
date of the miss that triggers it. A reduction or suspension that lasts "until the worker contacts the advising
physician" ends the day before the first contact reported on or after the miss, and is open-ended until one is.
A no-show at an appointment in person that suspends the benefit in full (from 2026) still counts among the
unjustified misses, but gets no Terug Naar Werk reduction besides: both would run from the appointment until the
contact, where a 100% suspension leaves nothing to reduce (together they would take more than the whole benefit).
Rehabilitation reports are each judged on their own effective date.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

from shared.events import reports as r
from shared.events.envelope import CaseEvent

from .benefits_base import Ctx, entry, not_carried_notice, notice
from .benefits_ledger import EntryKind, LedgerEntry, cents, show_euro, show_percent
from .benefits_rules import (
    AnnouncedWorkerReduction,
    BenefitRule,
    Found,
    MissedExaminationReduction,
    NoShowSuspension,
    RehabilitationCompletionPremium,
    RehabilitationCosts,
    RehabilitationExclusion,
    RehabilitationHourlyPremium,
    WorkerTrigger,
)
from .calendar import add_calendar_days, last_day_of_months


def route_entries(ctx: Ctx) -> Iterator[LedgerEntry]:
    yield from _missed_examinations(ctx)
    yield from _no_shows(ctx)
    yield from _announced_invitation(ctx)
    yield from _announced_questionnaire(ctx)
    yield from _rehabilitation(ctx)


def _unjustified(ctx: Ctx) -> list[CaseEvent]:
    """Unjustified missed examinations in the order of their dates, then versions."""
    misses: list[tuple[date, int, CaseEvent]] = []
    for event in ctx.facts.misses:
        report = event.report
        if isinstance(report, r.ReturnToWorkExaminationMissed) and not report.justified:
            misses.append((report.missed_on, event.version, event))
    return [event for _, _, event in sorted(misses, key=lambda m: (m[0], m[1]))]


def _suspension(ctx: Ctx, event: CaseEvent) -> Found | None:
    """The no-show suspension an unjustified miss calls for: an appointment in person, on a day the rule is in force."""
    report = event.report
    if not isinstance(report, r.ReturnToWorkExaminationMissed) or not report.physical_appointment:
        return None
    return ctx.rule(NoShowSuspension, report.missed_on)


def _until_contact(ctx: Ctx, day: date) -> tuple[date | None, CaseEvent | None]:
    """The last day of a sanction that runs from ``day`` until the worker contacts the advising physician (``None``:
    open-ended, no contact reported yet), and the contact."""
    contact = ctx.facts.contact_from(day)
    if contact is None:
        return None, None
    return contact.report.effective_date - timedelta(days=1), contact


def _missed_examinations(ctx: Ctx) -> Iterator[LedgerEntry]:
    """Terug Naar Werk: the reduction for the nth unjustified miss, for incapacities from the rule's start day."""
    misses = _unjustified(ctx)
    incapacity = ctx.facts.incapacity
    for n, event in enumerate(misses, start=1):
        day = event.report.effective_date
        found = ctx.rule(MissedExaminationReduction, day)
        if found is None or incapacity is None:
            continue
        rule = found.rule
        assert isinstance(rule, MissedExaminationReduction)
        if not (n == rule.nth or (rule.repeat and n > rule.nth)):
            continue
        if rule.incapacity_from is not None and incapacity.start_date < rule.incapacity_from:
            continue
        if _suspension(ctx, event) is not None:
            continue  # the benefit is suspended in full over the same days (module docstring)
        what = (f"Unjustified missed examination no. {n} on {day.isoformat()} (incapacity since "
                f"{incapacity.start_date.isoformat()})")
        if rule.duration_months is not None:
            end: date | None = last_day_of_months(day, rule.duration_months)
            assert end is not None
            yield entry(
                ctx, found, kind=EntryKind.REDUCTION, period_start=day, period_end=end, percentage=rule.percentage,
                base=rule.base, causing=(ctx.facts.opening, *misses[:n]), status=found.status("duration_months"),
                explanation=(
                    f"{what}: the {rule.base} is reduced by {show_percent(rule.percentage)} for "
                    f"{rule.duration_months} month(s), to {end.isoformat()}"
                ),
            )
            continue
        end, contact = _until_contact(ctx, day)
        if end is not None and end < day:
            yield notice(
                ctx, found, day=day, causing=(ctx.facts.opening, *misses[:n], contact),
                explanation=(
                    f"{what}: the worker contacted the advising physician the same day, so no day of the {rule.base} "
                    f"is reduced by the {show_percent(rule.percentage)} that runs until the contact"
                ),
            )
            continue
        until = (f"until {end.isoformat()}, the day before the worker contacted the advising physician"
                 if end is not None else "until the worker contacts the advising physician (no contact reported yet)")
        yield entry(
            ctx, found, kind=EntryKind.REDUCTION, period_start=day, period_end=end, percentage=rule.percentage,
            base=rule.base, causing=(ctx.facts.opening, *misses[:n], contact),
            explanation=f"{what}: the {rule.base} is reduced by {show_percent(rule.percentage)} from that day {until}",
        )


def _no_shows(ctx: Ctx) -> Iterator[LedgerEntry]:
    """From 2026: an unjustified no-show at an appointment in person suspends the benefit until the next contact."""
    for event in _unjustified(ctx):
        found = _suspension(ctx, event)
        if found is None:
            continue
        rule = found.rule
        assert isinstance(rule, NoShowSuspension)
        day = event.report.effective_date
        end, contact = _until_contact(ctx, day)
        what = f"The worker did not attend the appointment in person with the advising physician on {day.isoformat()}"
        if end is not None and end < day:
            yield notice(
                ctx, found, day=day, causing=(event, contact),
                explanation=f"{what}, without justification, but contacted the advising physician the same day: no "
                f"day of the {rule.base} is suspended",
            )
            continue
        until = (f"until {end.isoformat()}, the day before the worker contacted the advising physician again"
                 if end is not None else "until the worker contacts the advising physician again (no contact "
                 "reported yet)")
        yield entry(
            ctx, found, kind=EntryKind.REDUCTION, period_start=day, period_end=end, percentage=rule.percentage,
            base=rule.base, causing=(event, contact),
            explanation=f"{what}, without justification: {show_percent(rule.percentage)} of the {rule.base} is "
            f"suspended from that day {until}",
        )


def _is_invitation(rule: AnnouncedWorkerReduction) -> bool:
    return rule.trigger is WorkerTrigger.EXAMINATION_MISSED


def _is_questionnaire(rule: AnnouncedWorkerReduction) -> bool:
    return rule.trigger is WorkerTrigger.QUESTIONNAIRE_NOT_RETURNED


def _announced_invitation(ctx: Ctx) -> Iterator[LedgerEntry]:
    misses = _unjustified(ctx)
    for n, event in enumerate(misses, start=1):
        day = event.report.effective_date
        found = ctx.rule(AnnouncedWorkerReduction, day, where=_is_invitation)
        if found is None:
            continue
        rule = found.rule
        assert isinstance(rule, AnnouncedWorkerReduction)
        if not (n == rule.nth or (rule.repeat and n > rule.nth)):
            continue
        end = last_day_of_months(day, rule.duration_months)
        yield entry(
            ctx, found, kind=EntryKind.REDUCTION, period_start=day, period_end=end, percentage=rule.percentage,
            base=rule.base, causing=(event,),
            explanation=(
                f"Announced sanction, never enacted, applied because this deployment enables it: the worker did not "
                f"attend the invitation of {day.isoformat()}, so the {rule.base} is reduced by "
                f"{show_percent(rule.percentage)} to {end.isoformat()}"
            ),
        )


def _announced_questionnaire(ctx: Ctx) -> Iterator[LedgerEntry]:
    """A questionnaire not back within the grace days (as of the latest event's day, when none came back)."""
    for q in ctx.facts.questionnaires:
        sent_on = q.sent.report.effective_date
        found = ctx.rule(AnnouncedWorkerReduction, sent_on, where=_is_questionnaire)
        if found is None:
            continue
        rule = found.rule
        assert isinstance(rule, AnnouncedWorkerReduction)
        deadline = add_calendar_days(sent_on, rule.grace_days)
        returned_on = q.returned.report.effective_date if q.returned else None
        late = returned_on > deadline if returned_on is not None else ctx.facts.as_of > deadline
        if not late:
            continue
        start = add_calendar_days(deadline, 1)
        end = last_day_of_months(start, rule.duration_months)
        yield entry(
            ctx, found, kind=EntryKind.REDUCTION, period_start=start, period_end=end, percentage=rule.percentage,
            base=rule.base, causing=(q.sent,),
            explanation=(
                f"Announced sanction, never enacted, applied because this deployment enables it: the questionnaire "
                f"sent on {sent_on.isoformat()} was not back by {deadline.isoformat()}, so the {rule.base} is "
                f"reduced by {show_percent(rule.percentage)} to {end.isoformat()}"
            ),
        )


def _rehabilitation(ctx: Ctx) -> Iterator[LedgerEntry]:
    for event in ctx.facts.training_hours:
        hours = event.report
        assert isinstance(hours, r.TrainingHoursAttended)
        hourly = ctx.rule(RehabilitationHourlyPremium, hours.period_end)
        payment = None
        if hourly is not None and isinstance(hourly.rule, RehabilitationHourlyPremium):
            payment = (cents(hours.hours * hourly.rule.amount_per_hour), (
                f"{hours.hours} hours of training attended from {hours.period_start.isoformat()} to "
                f"{hours.period_end.isoformat()} at {show_euro(hourly.rule.amount_per_hour)} gross an hour"))
        yield from _paid(ctx, RehabilitationHourlyPremium, hourly, event, EntryKind.PREMIUM,
                         (hours.period_start, hours.period_end), payment)
    for event in ctx.facts.costs:
        cost = event.report
        assert isinstance(cost, r.RehabilitationCostsReported)
        costs = ctx.rule(RehabilitationCosts, cost.incurred_on)
        payment = None
        costs_rule = costs.rule if costs is not None else None
        if isinstance(costs_rule, RehabilitationCosts) and cost.cost_kind in costs_rule.cost_kinds:
            payment = (cents(cost.amount), f"{cost.cost_kind.value} costs of {cost.incurred_on.isoformat()} "
                       "reimbursed as reported")
        yield from _paid(ctx, RehabilitationCosts, costs, event, EntryKind.REIMBURSEMENT,
                         (cost.incurred_on, cost.incurred_on), payment)
    for event in ctx.facts.completions:
        done = event.report
        assert isinstance(done, r.TrainingCompleted)
        if not done.successful:
            continue
        premium = ctx.rule(RehabilitationCompletionPremium, done.completed_on)
        payment = None
        if premium is not None and isinstance(premium.rule, RehabilitationCompletionPremium):
            payment = (cents(premium.rule.amount),
                       f"training completed successfully on {done.completed_on.isoformat()}")
        yield from _paid(ctx, RehabilitationCompletionPremium, premium, event, EntryKind.PREMIUM,
                         (done.completed_on, done.completed_on), payment)


def _paid(
    ctx: Ctx,
    kind: type[BenefitRule],
    found: Found | None,
    event: CaseEvent,
    entry_kind: EntryKind,
    period: tuple[date, date],
    payment: tuple[Decimal, str] | None,
) -> Iterator[LedgerEntry]:
    """One rehabilitation payment (``payment``: amount and description, ``None`` when the rule does not cover it)."""
    day = event.report.effective_date
    if found is None:
        gap = not_carried_notice(ctx, kind, day, causing=(event,), what="socio-professional rehabilitation")
        if gap is not None:
            yield gap
        return
    if payment is None:
        return
    amount, what = payment
    excluded = _exclusion(ctx, day)
    if excluded is not None:
        yield notice(
            ctx, excluded, day=day, causing=(ctx.facts.opening, event),
            explanation=(
                f"Not paid: {what} would give {show_euro(amount)}, but the incapacity results from "
                f"{_cause(ctx).replace('_', ' ')}, which the seed material excludes from rehabilitation (uncertain)"
            ),
        )
        return
    yield entry(
        ctx, found, kind=entry_kind, period_start=period[0], period_end=period[1], amount=amount, causing=(event,),
        explanation=f"{show_euro(amount)} to the worker: {what}",
    )


def _cause(ctx: Ctx) -> str:
    incapacity = ctx.facts.incapacity
    return incapacity.cause.value if incapacity is not None else ""


def _exclusion(ctx: Ctx, day: date) -> Found | None:
    found = ctx.rule(RehabilitationExclusion, day)
    if found is None:
        return None
    rule: BenefitRule = found.rule
    assert isinstance(rule, RehabilitationExclusion)
    return found if rule.applies and _cause(ctx) in rule.excluded_causes else None
