"""The benefit ledger: entries, their deterministic ids, reversals and the effective ledger.

Money is ``Decimal`` euro rounded to cents with ROUND_HALF_UP (12.345 hours x 5 EUR = 61.725 -> 61.73 EUR), each
entry on its own. A percentage is a percent value (``Decimal("30")`` is 30 %) and is never rounded: it is exact
when the fraction has a finite decimal expansion and otherwise carries 28 significant digits (10 of 38 hours:
6.315789473684210526315789474); explanations show such a long one rounded to two decimals (6.32 %) and a
short one as it is (0.625 %).

An entry's id is a uuid5 of the case id, the rule id, the causing events' ids and a digest of the entry's content
(kind, parties, amount, percentage, base, period, regime, status). So an entry whose figures change gets a new id:
corrections are a reversal of the old entry plus the new one, never an edit. The explanation is not part of the id,
so rewording it does not correct anything.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal
from uuid import UUID

import msgspec
from msgspec.structs import force_setattr, replace

from shared.events.ids import uuid5

from .benefits_rules import Payee
from .model import Status

CENT = Decimal("0.01")
#: The decimal context of every computation here (28 significant digits, half up): fixed, so that results never
#: depend on the caller's thread-local context. ``compute_ledger`` runs inside it.
DECIMAL_CONTEXT = Context(prec=28, rounding=ROUND_HALF_UP)


class EntryKind(enum.StrEnum):
    REDUCTION = "reduction"
    RESTORATION = "restoration"
    PREMIUM = "premium"
    REIMBURSEMENT = "reimbursement"
    CONTRIBUTION = "contribution"
    FINE = "fine"
    GUARANTEED_WAGE_EXEMPTION = "guaranteed_wage_exemption"
    #: A rule was considered and gives nothing, for a reason the case worker should see (no amount).
    NOTICE = "notice"
    REVERSAL = "reversal"


class Options(msgspec.Struct, frozen=True, kw_only=True):
    """Deployment switches."""

    #: Ids of rules of status A (announced, never enacted) that this deployment applies.
    enabled_announced: frozenset[str] = frozenset()


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One adjustment, premium, reimbursement, contribution, fine, notice or reversal of a case."""

    id: UUID
    case_id: UUID
    kind: EntryKind
    beneficiary: Payee
    payer: Payee
    #: Euro, cents; ``None`` for percentage entries and notices.
    amount: Decimal | None = None
    #: Percent of ``base`` (30 = 30 %); ``None`` for amounts and notices.
    percentage: Decimal | None = None
    base: str | None = None
    period_start: date
    #: Last day included; ``None`` while open-ended. One-off amounts have ``period_end == period_start``.
    period_end: date | None = None
    rule: str
    legal_basis: str
    #: The regime in force on the day the rule was looked up (``None`` before the first regime).
    regime: str | None
    status: Status
    causing_events: tuple[UUID, ...]
    reverses: UUID | None = None
    explanation: str
    concerns_employer: bool


def cents(value: Decimal) -> Decimal:
    """Euro rounded to cents, half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP, context=DECIMAL_CONTEXT)


def percent_of_fraction(numerator: Decimal, denominator: Decimal) -> Decimal:
    """``numerator / denominator`` in :data:`DECIMAL_CONTEXT` (exact when the quotient is a finite decimal)."""
    return DECIMAL_CONTEXT.divide(numerator, denominator)


def amount_of(percentage: Decimal, base_amount: Decimal) -> Decimal:
    """``percentage`` % of a known base amount, in cents half up: where a percentage meets money, and only there."""
    return cents(DECIMAL_CONTEXT.divide(DECIMAL_CONTEXT.multiply(base_amount, percentage), Decimal(100)))


def show_percent(value: Decimal) -> str:
    """``0.625%``, ``30%``, ``2.5%`` as they are (up to 3 decimals); longer ones rounded half up: ``6.32%``."""
    exact = value.normalize(DECIMAL_CONTEXT)
    exponent = exact.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -3:
        return f"{exact:f}%"
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP, context=DECIMAL_CONTEXT).normalize(DECIMAL_CONTEXT):f}%"


def show_euro(value: Decimal) -> str:
    """``1,725.00 EUR``."""
    return f"{cents(value):,.2f} EUR"


def _plain(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(DECIMAL_CONTEXT), "f")


def natural_id(entry: LedgerEntry) -> UUID:
    """The id an entry with this content gets when computed (reinstated entries keep it as their origin)."""
    content = "|".join(
        (
            entry.kind.value,
            entry.beneficiary.value,
            entry.payer.value,
            _plain(entry.amount),
            _plain(entry.percentage),
            entry.base or "",
            entry.period_start.isoformat(),
            entry.period_end.isoformat() if entry.period_end else "",
            entry.regime or "",
            entry.status.value,
            str(entry.concerns_employer),
            str(entry.reverses or ""),
        )
    )
    causes = ",".join(str(e) for e in entry.causing_events)
    return uuid5(entry.case_id, f"ledger:{entry.rule}:{causes}:{content}")


def with_natural_id(entry: LedgerEntry) -> LedgerEntry:
    """A just-built ``entry`` (no one else holds it yet) given its natural id in place, without a copy."""
    force_setattr(entry, "id", natural_id(entry))
    return entry


def sort_key(entry: LedgerEntry) -> tuple[date, str, UUID]:
    """The ledger's order: period start, then rule, then id (ids compare as their text does)."""
    return (entry.period_start, entry.rule, entry.id)


def effective(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """The entries in force: not reversed, reversals excluded, in ledger order (:func:`sort_key`)."""
    items = list(entries)
    reversed_ids = {e.reverses for e in items if e.kind is EntryKind.REVERSAL}
    return sorted((e for e in items if e.kind is not EntryKind.REVERSAL and e.id not in reversed_ids), key=sort_key)


def reversal_of(entry: LedgerEntry, causing_event: UUID, why: str | None = None) -> LedgerEntry:
    """The entry that cancels ``entry``: negated amount and percentage, ``reverses`` set, caused by the new event
    (``why``: another reason, e.g. a recomputation under a new rulebook after that event)."""
    return LedgerEntry(
        id=uuid5(entry.case_id, f"reversal:{entry.id}"),
        case_id=entry.case_id,
        kind=EntryKind.REVERSAL,
        beneficiary=entry.beneficiary,
        payer=entry.payer,
        amount=None if entry.amount is None else entry.amount.copy_negate(),
        percentage=None if entry.percentage is None else entry.percentage.copy_negate(),
        base=entry.base,
        period_start=entry.period_start,
        period_end=entry.period_end,
        rule=entry.rule,
        legal_basis=entry.legal_basis,
        regime=entry.regime,
        status=entry.status,
        causing_events=(causing_event,),
        reverses=entry.id,
        explanation=f"Withdrawn {why or f'after event {causing_event}'}: {entry.explanation}",
        concerns_employer=entry.concerns_employer,
    )


def reconcile(recorded: Sequence[LedgerEntry], computed: Sequence[LedgerEntry], causing_event: UUID,
              why: str | None = None) -> list[LedgerEntry]:
    """The entries to record so that ``effective(recorded + result)`` equals ``computed``.

    A reversal for each effective recorded entry that ``computed`` no longer holds (matched by content, see
    :func:`natural_id`), then each computed entry not yet in force. Unchanged entries produce nothing. An entry
    that was recorded, reversed and is now due again is recorded under a fresh id derived from its own
    (``uuid5(id, "reinstated:<n>")``) so that ids stay unique in the ledger.
    """
    wanted = {c.id for c in computed}
    kept: set[UUID] = set()
    out: list[LedgerEntry] = []
    for entry in effective(recorded):
        origin = natural_id(entry)
        if origin in wanted and origin not in kept:
            kept.add(origin)
        else:
            out.append(reversal_of(entry, causing_event, why))
    used = {e.id for e in recorded}
    for entry in computed:
        if entry.id in kept:
            continue
        fresh, n = entry, 0
        while fresh.id in used:
            n += 1
            fresh = replace(entry, id=uuid5(entry.id, f"reinstated:{n}"))
        used.add(fresh.id)
        out.append(fresh)
    return out
