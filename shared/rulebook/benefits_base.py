"""What every benefit calculator shares: its inputs (:class:`Ctx`) and the builders of entries and notices."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from shared.events.envelope import CaseEvent

from .benefits_facts import CaseFacts
from .benefits_ledger import EntryKind, LedgerEntry, Options, with_natural_id
from .benefits_rules import BenefitRule, Found, Payee, enabled, find_rule, not_carried
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
    """An entry under ``found``'s rule; the explanation gets the rule id and regime appended."""
    rule = found.rule
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


__all__ = ["Ctx", "EntryKind", "Payee", "causes", "entry", "not_carried_notice", "notice"]
