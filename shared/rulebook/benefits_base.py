"""What every benefit calculator shares: its inputs (:class:`Ctx`), the builders of entries and notices, and the
case's primary incapacities under the relapse window (:func:`primary_incapacities`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from shared.events.envelope import CaseEvent

from .benefits_facts import CaseFacts
from .benefits_ledger import EntryKind, LedgerEntry, Options, with_natural_id
from .benefits_rules import BenefitRule, Found, Payee, RelapseWindow, enabled, find_rule, not_carried
from .model import Rulebook, Status

_NIL = UUID(int=0)
R = TypeVar("R", bound=BenefitRule)


@dataclass(frozen=True)
class Ctx:
    """The inputs of one ledger computation."""

    facts: CaseFacts
    rulebook: Rulebook
    options: Options
    prior_premium: bool = False

    def rule(self, kind: type[R], day: date, where: Callable[[R], bool] | None = None) -> Found | None:
        """The version of ``kind`` in force on ``day`` that this deployment applies, or ``None``."""
        found = find_rule(self.rulebook, kind, day, where=where)
        if found is None or not enabled(found.rule, self.options.enabled_announced):
            return None
        return found


def causes(*events: CaseEvent | None) -> tuple[UUID, ...]:
    """Event ids in version order, without duplicates or gaps."""
    if len(events) == 1:  # the usual case: one event causes the entry
        return () if events[0] is None else (events[0].event_id,)
    present = {e.event_id: e for e in events if e is not None}
    return tuple(e.event_id for e in sorted(present.values(), key=lambda e: e.version))


def entry(
    ctx: Ctx,
    found: Found,
    *,
    kind: EntryKind,
    period_start: date,
    period_end: date | None,
    causing: Iterable[CaseEvent | None],
    explanation: str,
    amount: Decimal | None = None,
    percentage: Decimal | None = None,
    base: str | None = None,
    status: Status | None = None,
    concerns_employer: bool = False,
) -> LedgerEntry:
    """An entry under ``found``'s rule; the explanation gets the rule id and regime appended, and says so when the
    day the rule starts is uncertain (every entry of such a rule is U, see ``Found.status``)."""
    rule = found.rule
    if rule.start_uncertain:
        # Not the day itself: the explanation is not part of an entry's id, and an entry that a moved start leaves
        # as it is must keep the same words (the rulebook's label names the starts a deployment moved).
        explanation += "; the day this rule starts is uncertain (a deployment setting may move it)"
    return with_natural_id(
        LedgerEntry(
            id=_NIL,
            case_id=ctx.facts.case_id,
            kind=kind,
            beneficiary=rule.beneficiary,
            payer=rule.payer,
            amount=amount,
            percentage=percentage,
            base=base,
            period_start=period_start,
            period_end=period_end,
            rule=rule.id,
            legal_basis=rule.legal_basis,
            regime=found.regime.id,
            status=status or found.status(),
            causing_events=causes(*causing),
            explanation=f"{explanation} (rule {rule.id}, {found.label}).",
            concerns_employer=concerns_employer,
        )
    )


def notice(
    ctx: Ctx,
    found: Found,
    *,
    day: date,
    causing: Iterable[CaseEvent | None],
    explanation: str,
    status: Status | None = None,
    concerns_employer: bool = False,
) -> LedgerEntry:
    """A notice: the rule gives nothing here, and why."""
    return entry(
        ctx, found, kind=EntryKind.NOTICE, period_start=day, period_end=day, causing=causing,
        explanation=explanation, status=status, concerns_employer=concerns_employer,
    )


def not_carried_notice(
    ctx: Ctx,
    kind: type[R],
    day: date,
    *,
    causing: Iterable[CaseEvent | None],
    what: str,
    concerns_employer: bool = False,
    where: Callable[[R], bool] | None = None,
) -> LedgerEntry | None:
    """A notice that the law governing ``what`` on ``day`` is not carried, when the kind's data says so."""
    first = not_carried(ctx.rulebook, kind, day, where=where)
    if first is None:
        return None
    rule, start = first
    regime = ctx.rulebook.regime_on(day)
    return with_natural_id(
        LedgerEntry(
            id=_NIL,
            case_id=ctx.facts.case_id,
            kind=EntryKind.NOTICE,
            beneficiary=rule.beneficiary,
            payer=rule.payer,
            period_start=day,
            period_end=day,
            rule=rule.id,
            legal_basis="not carried by this rulebook",
            regime=regime.id if regime else None,
            status=Status.UNCERTAIN,
            causing_events=causes(*causing),
            explanation=(
                f"No amount is computed for {what} on {day.isoformat()}: the rule carried here applies from "
                f"{start.isoformat()} and the rule in force before it is not carried "
                f"(rule {rule.id}, {regime.id if regime else 'no regime'})."
            ),
            concerns_employer=concerns_employer,
        )
    )


# --- primary incapacities ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relapse:
    """How a return to work was judged: ``bridged`` (the resumed incapacity continues the primary one) or not."""

    returned_on: date
    resumed_on: date
    bridged: bool
    #: The relapse window applied (chosen by ``resumed_on``), ``None`` when no version is in force then.
    found: Found | None
    #: The judgement rests on an uncertain reading of the window: every bridge under a window whose counting is
    #: uncertain, and a return at the window's boundary (one day either way would decide otherwise).
    uncertain: bool

    @property
    def days_back(self) -> int:
        return (self.resumed_on - self.returned_on).days

    def describe(self) -> str:
        window = self.found.rule if self.found is not None else None
        back = (f"the return to work from {self.returned_on.isoformat()} to "
                f"{(self.resumed_on - timedelta(days=1)).isoformat()} ({self.days_back} days)")
        if window is None:
            return f"{back} ended the earlier incapacity (no relapse window is in force on {self.resumed_on})"
        assert isinstance(window, RelapseWindow) and self.found is not None
        rule = f"relapse window of {window.days} days (rule {window.id}, {self.found.label})"
        told = (f"{back} was shorter than the {rule}, so the incapacity from {self.resumed_on.isoformat()} continued "
                f"the primary incapacity" if self.bridged else
                f"{back} was not shorter than the {rule}, so the incapacity from {self.resumed_on.isoformat()} is a "
                f"new primary incapacity")
        return told + (" (how that window is counted is uncertain)" if self.uncertain else "")


@dataclass(frozen=True)
class Primary:
    """One primary incapacity of a case: its days of incapacity (first and last day of each spell, the last one
    ``None`` while open) and the returns to work it bridged (or, for ``started_by``, ended the one before)."""

    start: date
    spells: tuple[tuple[date, date | None], ...]
    bridged: tuple[Relapse, ...] = ()
    started_by: Relapse | None = None

    @property
    def last_day(self) -> date | None:
        """The last day of incapacity known (``None``: still running)."""
        return self.spells[-1][1]

    def day(self, n: int) -> date | None:
        """The ``n``-th day of incapacity (1: the start), days back at work not counted; ``None`` if the known
        incapacity ends before it."""
        remaining = n
        for first, last in self.spells:
            length = None if last is None else (last - first).days + 1
            if length is None or remaining <= length:
                return first + timedelta(days=remaining - 1)
            remaining -= length
        return None

    def relapses_until(self, day: date) -> list[Relapse]:
        """The judgements of returns that shape this primary incapacity up to ``day``."""
        before = [self.started_by] if self.started_by is not None else []
        return before + [b for b in self.bridged if b.resumed_on <= day]


def primary_incapacities(ctx: Ctx) -> list[Primary]:
    """The case's primary incapacities: a return to work followed by a resumption of incapacity within the relapse
    window in force on the resumption day (a return shorter than its ``days``) continues the primary incapacity;
    a longer one, or one with no window in force, starts a new one from the resumption. The case's reports do not
    give a resumption's cause: a resumption reported on the same case is taken as the same cause."""
    timeline = ctx.facts.timeline
    if timeline is None:
        return []
    end = timeline.ended_on
    spells: list[tuple[date, date | None, Relapse | None]] = []
    first, before = timeline.start, None
    for gap in timeline.interruptions:
        spells.append((first, gap.returned_on - timedelta(days=1), before))
        if gap.resumed_on is None:
            first = date.max
            break
        found = ctx.rule(RelapseWindow, gap.resumed_on)
        window = found.rule if found is not None else None
        back = (gap.resumed_on - gap.returned_on).days
        bridged = isinstance(window, RelapseWindow) and back < window.days
        boundary = isinstance(window, RelapseWindow) and back in (window.days - 1, window.days)
        uncertain = found is not None and found.status("counting") is not Status.CONFIRMED and (bridged or boundary)
        before = Relapse(returned_on=gap.returned_on, resumed_on=gap.resumed_on, bridged=bridged, found=found,
                         uncertain=uncertain)
        first = gap.resumed_on
    if first != date.max:
        spells.append((first, end, before))
    primaries: list[Primary] = []
    for begin, last, relapse in spells:
        if end is not None:
            last = end if last is None else min(last, end)
        if last is not None and last < begin:
            continue
        if primaries and relapse is not None and relapse.bridged:
            p = primaries[-1]
            primaries[-1] = Primary(start=p.start, spells=(*p.spells, (begin, last)), bridged=(*p.bridged, relapse),
                                    started_by=p.started_by)
        else:
            primaries.append(Primary(start=begin, spells=((begin, last),), started_by=relapse))
    return primaries


__all__ = ["Ctx", "EntryKind", "Payee", "Primary", "Relapse", "causes", "entry", "not_carried_notice", "notice",
           "primary_incapacities"]
