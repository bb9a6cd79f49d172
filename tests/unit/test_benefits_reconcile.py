"""Corrections are never edits: reconcile records reversals and new entries, effective reads what is in force."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import msgspec

from shared.rulebook.benefits import EntryKind, LedgerEntry, Options, compute_ledger, effective, reconcile
from tests.unit.test_benefits_builder import RB, History

D = Decimal


def run(h: History, options: Options = Options()) -> list[LedgerEntry]:
    """Reconcile after every event, as the benefits service does."""
    recorded: list[LedgerEntry] = []
    for k in range(1, len(h.events) + 1):
        recorded += reconcile(recorded, compute_ledger(h.events[:k], RB, options), h.events[k - 1].event_id)
    return recorded


def test_a_failure_closes_the_reduction_by_reversal_not_by_edit() -> None:
    h = History(start=date(2023, 6, 1))
    h.declare(date(2024, 3, 4), 19)
    h.authorise(date(2024, 3, 6))
    recorded = run(h)
    [before] = effective(recorded)
    assert (before.percentage, before.period_end) == (D("30"), None)
    failed = h.fail(date(2024, 5, 6))
    new = reconcile(recorded, compute_ledger(h.events, RB), failed.event_id)
    reversal = new[0]
    assert (reversal.kind, reversal.reverses, reversal.percentage, reversal.causing_events) == (
        EntryKind.REVERSAL, before.id, D("-30"), (failed.event_id,))
    assert before.percentage + reversal.percentage == 0  # type: ignore[operator]
    added = {(e.kind, e.rule, e.period_end) for e in new[1:]}
    assert added == {
        (EntryKind.REDUCTION, "partial_resumption.reduction", date(2024, 5, 5)),
        (EntryKind.RESTORATION, "partial_resumption.restoration", None),
        (EntryKind.GUARANTEED_WAGE_EXEMPTION, "partial_resumption.guaranteed_wage_exemption", None),
    }
    assert effective([*recorded, *new]) == compute_ledger(h.events, RB)


def test_unchanged_entries_produce_nothing() -> None:
    h = History(start=date(2023, 6, 1))
    h.declare(date(2024, 3, 4), 19)
    computed = compute_ledger(h.events, RB)
    assert reconcile(computed, computed, uuid.uuid4()) == []
    h.review(date(2024, 3, 20))  # an event that changes no benefit
    assert reconcile(computed, compute_ledger(h.events, RB), h.events[-1].event_id) == []


def test_a_backdated_end_withdraws_a_granted_premium() -> None:
    h = History(start=date(2022, 1, 3))
    h.declare(date(2024, 2, 1), 19)
    h.authorise(date(2024, 2, 5))
    h.review(date(2024, 5, 2))
    recorded = run(h)
    [premium] = [e for e in effective(recorded) if e.kind is EntryKind.PREMIUM]
    assert premium.amount == D("1725.00")
    end = h.end(date(2024, 4, 15), at=date(2024, 5, 6))  # reported late: the work stopped before 3 months
    new = reconcile(recorded, compute_ledger(h.events, RB), end.event_id)
    [withdrawal] = [e for e in new if e.reverses == premium.id]
    assert (withdrawal.amount, withdrawal.concerns_employer) == (D("-1725.00"), True)
    assert premium.amount + withdrawal.amount == 0  # type: ignore[operator]
    assert withdrawal.explanation.startswith(f"Withdrawn after event {end.event_id}: Return-to-work premium")


def test_an_entry_due_again_after_its_reversal_gets_a_fresh_id() -> None:
    h = History(start=date(2023, 1, 10))
    h.questionnaire_sent(date(2024, 2, 1))
    h.review(date(2024, 3, 1))
    on = Options(enabled_announced=frozenset({"sanction.worker.questionnaire"}))
    recorded = reconcile([], compute_ledger(h.events, RB, on), uuid.uuid4())
    [sanction] = recorded
    recorded += reconcile(recorded, compute_ledger(h.events, RB), uuid.uuid4())  # switched off
    assert effective(recorded) == []
    again = reconcile(recorded, compute_ledger(h.events, RB, on), uuid.uuid4())  # switched on again
    [reinstated] = again
    assert reinstated.id == uuid.uuid5(sanction.id, "reinstated:1")
    recorded += again
    assert len({e.id for e in recorded}) == len(recorded) == 3
    assert [e.percentage for e in effective(recorded)] == [D("5")]
    assert reconcile(recorded, compute_ledger(h.events, RB, on), uuid.uuid4()) == []  # matched by content


def test_ids_are_deterministic_and_follow_the_content() -> None:
    h = History(start=date(2023, 6, 1))
    h.declare(date(2024, 3, 4), 19)
    first = compute_ledger(h.events, RB)
    assert [e.id for e in first] == [e.id for e in compute_ledger(list(h.events), RB)]
    h.authorise(date(2024, 3, 6), hours=10)
    [changed] = compute_ledger(h.events, RB)
    assert changed.id != first[0].id and changed.percentage != first[0].percentage


def test_entries_survive_the_wire_and_keep_matching() -> None:
    """Entries are stored and published as JSON: decoded again they are equal and reconcile sees no change."""
    h = History(start=date(2022, 1, 3))
    h.declare(date(2024, 2, 1), 10)
    h.authorise(date(2024, 2, 5))
    h.fail(date(2024, 5, 20))
    computed = compute_ledger(h.events, RB)
    decoded = msgspec.json.decode(msgspec.json.encode(computed), type=list[LedgerEntry])
    assert decoded == computed
    assert reconcile(decoded, computed, uuid.uuid4()) == []
    assert any(e.percentage == D("6.315789473684210526315789474") for e in decoded)
