"""One deadline or ledger entry, explained: its rule and legal basis, regime, status, inputs, the events that caused
it (type, effective date, who reported it) and the sentence the computation wrote; and whether it verifies."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from services.benefits.ledger import LedgerStep, project_ledger
from services.deadlines.schedule import project_schedule
from shared.events.envelope import CaseEvent
from shared.rulebook.benefits import EntryKind, LedgerEntry, effective
from shared.rulebook.deadlines import Deadline, DeadlineRule
from shared.rulebook.model import Status

from .history import entry_of
from .rules import Rules
from .stores import AuditError, Stores
from .verify import compare_deadlines, compare_ledger, plain

STATUS_WORDS = {Status.CONFIRMED: "confirmed", Status.UNCERTAIN: "uncertain",
                Status.ANNOUNCED: "announced, never enacted"}


def cause(event: CaseEvent | None, role: str) -> dict[str, Any] | None:
    if event is None:
        return None
    e = entry_of(event)
    return {"role": role, "event_id": e.event_id, "version": e.version, "type": e.type,
            "effective_date": e.effective_date.isoformat(), "effective_field": e.effective_field,
            "reported_by": e.reported_by, "recorded_at": e.recorded_at.isoformat(), "regime": e.regime}


def _rule_text(rules: Rules, deadline: Deadline) -> tuple[str | None, str | None]:
    defined_in = deadline.inherited_from or deadline.regime
    for rule in rules.rulebook.rules(DeadlineRule):
        if rule.id == deadline.rule and rule.regime == defined_in:
            assert isinstance(rule, DeadlineRule)
            return rule.description, rule.note or None
    return None, None


def explain_deadline(rules: Rules, d: Deadline, by_id: dict[UUID, CaseEvent], recorded: bool, outcome: Any,
                     differences: list[Any]) -> dict[str, Any]:
    description, note = _rule_text(rules, d)
    return {
        "item": "deadline", "id": str(d.id), "case_id": str(d.case_id), "rule": d.rule, "description": description,
        "legal_basis": d.legal_basis, "regime": d.regime, "inherited_from": d.inherited_from,
        "recomputed_from": d.recomputed_from, "status": d.status.value, "status_words": STATUS_WORDS[d.status],
        "deadline_kind": d.deadline_kind.value, "party": d.party, "concerns_employer": d.concerns_employer,
        "calendar": d.calendar, "policy": d.policy,
        "inputs": {"counting": d.counting.value, "amount": d.amount, "count_from": d.count_from.value,
                   "starts_on": d.starts_on.isoformat(), "counted_due_on": d.counted_due_on.isoformat(),
                   "due_on": d.due_on.isoformat()},
        "state": d.state.value, "closed_on": d.closed_on.isoformat() if d.closed_on else None, "late": d.late,
        "early": d.early,
        "outcome": None if outcome is None else {
            "outcome": outcome.outcome, "fired_at": outcome.fired_at.isoformat(), "lag_seconds": outcome.lag_seconds,
            "scheduled_for": outcome.scheduled_for.isoformat() if outcome.scheduled_for else None,
            "timer_sequence": outcome.timer_sequence, "recorded_at": outcome.timestamp.isoformat()},
        "caused_by": [c for c in (cause(by_id.get(d.started_by), "started"),
                                  cause(by_id.get(d.closed_by) if d.closed_by else None, "closed")) if c],
        "explanation": d.explanation, "rule_note": note,
        "recorded": recorded, "verified": recorded and not differences, "differences": plain(differences),
    }


def explain_entry(e: LedgerEntry, entries: list[LedgerEntry], by_id: dict[UUID, CaseEvent],
                  step: LedgerStep | None, recorded: bool, differences: list[Any]) -> dict[str, Any]:
    reversed_by = next((x for x in entries if x.kind is EntryKind.REVERSAL and x.reverses == e.id), None)
    return {
        "item": "ledger_entry", "id": str(e.id), "case_id": str(e.case_id), "kind": e.kind.value, "rule": e.rule,
        "legal_basis": e.legal_basis, "regime": e.regime, "status": e.status.value,
        "status_words": STATUS_WORDS[e.status], "beneficiary": e.beneficiary.value, "payer": e.payer.value,
        "inputs": {"amount": plain(e.amount), "percentage": plain(e.percentage), "base": e.base,
                   "period_start": e.period_start.isoformat(),
                   "period_end": e.period_end.isoformat() if e.period_end else None,
                   "prior_premium": step.prior_premium if step else None},
        "reverses": str(e.reverses) if e.reverses else None,
        "reversed_by": str(reversed_by.id) if reversed_by else None,
        "in_force": e.id in {x.id for x in effective(entries)},
        "caused_by": [c for c in (cause(by_id.get(i), "caused") for i in e.causing_events) if c],
        "recorded_by_step": None if step is None else {"version": step.originator_version,
                                                       "source_version": step.source.version,
                                                       "recorded_at": step.timestamp.isoformat()},
        "explanation": e.explanation,
        "recorded": recorded, "verified": recorded and not differences, "differences": plain(differences),
    }


def explain(stores: Stores, rules: Rules, case_id: UUID, item_id: str) -> dict[str, Any]:
    """The deadline or ledger entry whose id is (or starts with) ``item_id``, explained."""
    item_id = item_id.strip().lower()
    if len(item_id) < 4:
        raise AuditError("give at least 4 characters of the item id")
    history = stores.case_history(case_id)
    by_id = {e.event_id: e for e in history}
    d_events = stores.derived_events("deadlines", case_id)
    schedule = project_schedule(None, d_events)
    applied_d = schedule.source_version if schedule else len(history)
    computed_d = rules.deadlines(history[:applied_d])
    deadlines: dict[UUID, tuple[Deadline, bool]] = {d.id: (d, False) for d in computed_d}
    if schedule:
        deadlines.update({k: (d, True) for k, d in schedule.deadlines.items()})
    steps = [e for e in stores.derived_events("benefits", case_id) if isinstance(e, LedgerStep)]
    ledger = project_ledger(None, steps)
    prior = steps[-1].prior_premium if steps else False
    computed_l = rules.ledger(history[: len(steps) if steps else len(history)], prior_premium=prior)
    entries = list(ledger.entries) if ledger else computed_l
    step_of = {x.id: s for s in steps for x in s.entries}
    found = [("deadline", k) for k in deadlines if str(k).startswith(item_id)]
    found += [("entry", x.id) for x in entries if str(x.id).startswith(item_id)]
    if not found:
        raise AuditError(f"case {case_id} has no deadline or ledger entry {item_id}")
    if len(found) > 1:
        raise AuditError(f"{item_id} is ambiguous: {', '.join(str(k) for _, k in found)}")
    kind, key = found[0]
    if kind == "deadline":
        d, recorded = deadlines[key]
        diffs = [x for x in compare_deadlines(schedule.deadlines, computed_d) if x.item == str(key)] if schedule else []
        outcome = schedule.outcomes.get(key) if schedule else None
        return explain_deadline(rules, d, by_id, recorded, outcome, diffs)
    e = next(x for x in entries if x.id == key)
    diffs = [x for x in compare_ledger(effective(entries), computed_l) if x.item == str(key)] if ledger else []
    return explain_entry(e, entries, by_id, step_of.get(key), ledger is not None, diffs)

