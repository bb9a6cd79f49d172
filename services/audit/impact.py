"""Impact of a draft rulebook: every open case replayed under it, and what would change.

Both sides are recomputed from the recorded history with the pure functions (same policy, options and premium flag
as the services), so the report shows the effect of the rule change alone, not of anything the services recorded.
Deadlines are matched by id (stable across rulebooks: case, rule, starting event); ledger entries, whose id changes
with their figures, by rule, kind, parties, period start and causing events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec

from services.benefits.ledger import LedgerRecomputed, LedgerStep
from services.intake.case import project_case
from shared.events.envelope import CaseEvent
from shared.rulebook import Rulebook
from shared.rulebook.benefits import LedgerEntry, effective
from shared.rulebook.deadlines import Deadline

from .rules import Rules
from .stores import AuditError, Stores
from .verify import plain

DEADLINE_FIELDS = ("due_on", "counted_due_on", "state", "late", "early", "regime", "inherited_from", "amount",
                   "counting", "count_from", "party", "legal_basis", "status", "closed_on", "recomputed_from")
ENTRY_FIELDS = ("amount", "percentage", "base", "period_end", "beneficiary", "payer", "regime", "status",
                "legal_basis")


class Change(msgspec.Struct, frozen=True, kw_only=True):
    #: deadline or ledger_entry
    item: str
    #: changed, added or removed
    change: str
    id: str
    rule: str
    #: field -> [from, to]
    fields: dict[str, list[Any]] = {}
    summary: str


class CaseImpact(msgspec.Struct, frozen=True, kw_only=True):
    case_id: str
    changes: list[Change]


class ImpactReport(msgspec.Struct, frozen=True, kw_only=True):
    draft: str
    current: str
    open_cases: int
    affected: list[CaseImpact]
    #: cases whose history cannot be read (see ``audit verify``)
    unreadable: list[str] = []


def _fields(a: Any, b: Any, names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {n: [plain(getattr(a, n)), plain(getattr(b, n))] for n in names if getattr(a, n) != getattr(b, n)}


def deadline_changes(before: list[Deadline], after: list[Deadline]) -> list[Change]:
    old, new = {d.id: d for d in before}, {d.id: d for d in after}
    out = []
    for key, a in old.items():
        b = new.get(key)
        if b is None:
            out.append(Change(item="deadline", change="removed", id=str(key), rule=a.rule,
                              summary=f"{a.rule} due {a.due_on} ({a.state}) would no longer exist"))
            continue
        fields = _fields(a, b, DEADLINE_FIELDS)
        if fields:
            words = ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in fields.items())
            out.append(Change(item="deadline", change="changed", id=str(key), rule=a.rule, fields=fields,
                              summary=f"{a.rule}: {words}"))
    for key, b in new.items():
        if key not in old:
            out.append(Change(item="deadline", change="added", id=str(key), rule=b.rule,
                              summary=f"{b.rule} due {b.due_on} ({b.state}) would be added"))
    return out


def _key(e: LedgerEntry) -> tuple[Any, ...]:
    return (e.rule, e.kind, e.beneficiary, e.payer, e.period_start, e.causing_events)


def _figure(e: LedgerEntry) -> str:
    return f"{e.amount} EUR" if e.amount is not None else f"{e.percentage} %" if e.percentage is not None else "notice"


def ledger_changes(before: list[LedgerEntry], after: list[LedgerEntry]) -> list[Change]:
    old: dict[tuple[Any, ...], list[LedgerEntry]] = {}
    for e in before:
        old.setdefault(_key(e), []).append(e)
    out = []
    for b in after:
        bucket = old.get(_key(b))
        if not bucket:
            out.append(Change(item="ledger_entry", change="added", id=str(b.id), rule=b.rule,
                              summary=f"{b.kind} {b.rule} from {b.period_start}: {_figure(b)} would be added"))
            continue
        a = bucket.pop(0)
        fields = _fields(a, b, ENTRY_FIELDS)
        if fields:
            words = ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in fields.items())
            out.append(Change(item="ledger_entry", change="changed", id=str(a.id), rule=a.rule, fields=fields,
                              summary=f"{a.kind} {a.rule} from {a.period_start}: {words}"))
    for bucket in old.values():
        for a in bucket:
            out.append(Change(item="ledger_entry", change="removed", id=str(a.id), rule=a.rule,
                              summary=f"{a.kind} {a.rule} from {a.period_start}: {_figure(a)} would be removed"))
    return out


def case_impact(rules: Rules, draft: Rules, case_id: UUID, history: list[CaseEvent], prior: bool) -> CaseImpact:
    changes = deadline_changes(rules.deadlines(history), draft.deadlines(history))
    changes += ledger_changes(effective(rules.ledger(history, prior)), effective(draft.ledger(history, prior)))
    return CaseImpact(case_id=str(case_id), changes=changes)


def impact(stores: Stores, rules: Rules, draft_rulebook: Rulebook, draft_name: str,
           progress: Callable[[int, int], None] | None = None) -> ImpactReport:
    draft = rules.with_rulebook(draft_rulebook)
    affected = []
    unreadable: list[str] = []
    open_cases = 0
    cases = stores.case_ids()
    for done, case_id in enumerate(cases, start=1):
        if progress:
            progress(done, len(cases))
        try:
            history = stores.case_history(case_id)
        except AuditError as exc:
            unreadable.append(str(exc))
            continue
        case = project_case(None, history)
        if case is None or case.closed_on is not None:
            continue
        open_cases += 1
        steps = [e for e in stores.derived_events("benefits", case_id) if isinstance(e, LedgerStep | LedgerRecomputed)]
        prior = steps[-1].prior_premium if steps else False
        result = case_impact(rules, draft, case_id, history, prior)
        if result.changes:
            affected.append(result)
    return ImpactReport(draft=draft_name, current=rules.rulebook.version, open_cases=open_cases, affected=affected,
                        unreadable=unreadable)
