"""The employer's return-to-work premium, once per worker and employer, through the benefits service itself.

The pure function only knows what it is told (``prior_premium``); the service decides that from its premium
register (``PremiumGranted``, written in the same transaction as the step that grants the premium). These tests run
real cases through the intake rules into a SQLite intake store and apply its log to a SQLite benefits store: event
by event as the NATS consumer does, and in batches as ``reintegration benefits rebuild`` does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from reintegration.operate import intake_log
from services.benefits.application import BenefitsApplication, build_benefits
from services.intake.application import build_intake
from shared.events import reports as r
from shared.events.common import Party
from shared.infra.derived import Outcome
from shared.infra.settings import Settings
from shared.rulebook.benefits import EntryKind, LedgerEntry
from tests.factories import (
    EMPLOYER_PARTY,
    FUND_PARTY,
    OTHER_EMPLOYER,
    OTHER_EMPLOYER_PARTY,
    WORKER,
    incapacity,
    rid,
)

#: Every report is received on this day: all the cases' three months of authorised work are complete by then.
RECEIVED = datetime(2025, 2, 3, 9, tzinfo=UTC)
NOW = datetime(2025, 2, 3, 10, tzinfo=UTC)
PREMIUM_RULE = "return_to_work_premium"


@dataclass(frozen=True)
class Qualifying:
    """A case that qualifies for the premium: a year of incapacity, then three months of authorised work."""

    start: date
    resumption: date
    ended: date | None
    employer: Party = EMPLOYER_PARTY


#: Two consecutive incapacities of one worker at one employer, each followed by a qualifying resumption: the first
#: under the 2023 rule (1,000 EUR), the second under the 2024 rule (1,725 EUR, refused: one premium per employer).
FIRST = Qualifying(date(2021, 3, 1), date(2023, 4, 3), date(2023, 9, 29))
SECOND = Qualifying(date(2023, 10, 2), date(2024, 10, 7), None)
#: The same worker at another employer: its own premium.
ELSEWHERE = Qualifying(date(2023, 10, 2), date(2024, 10, 7), None, employer=OTHER_EMPLOYER_PARTY)


def reports(case_id: uuid.UUID, q: Qualifying) -> list[r.Report]:
    out: list[r.Report] = [
        r.PartialResumptionDeclared(report_id=rid(), case_id=case_id, declared_on=q.resumption.replace(day=1),
                                    starts_on=q.resumption, weekly_hours=19, full_time_hours=38),
        r.PartialResumptionAuthorised(report_id=rid(), case_id=case_id, authorised_on=q.resumption.replace(day=20)),
    ]
    if q.ended is not None:
        out.append(r.PartialResumptionEnded(report_id=rid(), case_id=case_id, ended_on=q.ended))
    return out


def record(settings: Settings, cases: list[Qualifying], *, interleave: bool = False) -> list[uuid.UUID]:
    """Record the cases through the intake rules; one case after the other, or their reports interleaved."""
    intake = build_intake(settings)
    try:
        ids: list[uuid.UUID] = []
        pending: list[list[r.Report]] = []
        for q in cases:
            enterprise = q.employer.id
            opening = incapacity(q.start, insz=WORKER, enterprise_number=enterprise)
            ids.append(intake.submit(FUND_PARTY, opening, RECEIVED).case_id)
            pending.append(reports(ids[-1], q))
        if interleave:
            for step in range(max(len(p) for p in pending)):
                for p in pending:
                    if step < len(p):
                        intake.submit(FUND_PARTY, p[step], RECEIVED)
        else:
            for p in pending:
                for report in p:
                    intake.submit(FUND_PARTY, report, RECEIVED)
        return ids
    finally:
        intake.close()


def premiums(app: BenefitsApplication, case_id: uuid.UUID) -> list[LedgerEntry]:
    """The case's return-to-work premium entries and notices in force."""
    ledger = app.ledger(case_id)
    assert ledger is not None
    return [e for e in ledger.effective if e.rule.startswith(PREMIUM_RULE)]


def recorded_premiums(app: BenefitsApplication, case_id: uuid.UUID) -> list[LedgerEntry]:
    """Every premium entry ever recorded on the case (a premium granted and then reversed counts too)."""
    ledger = app.ledger(case_id)
    assert ledger is not None
    return [e for e in ledger.entries if e.rule.startswith(PREMIUM_RULE) and e.kind is EntryKind.PREMIUM]


def apply_one_by_one(settings: Settings) -> BenefitsApplication:
    app = build_benefits(settings)
    for position, event in intake_log(settings):
        assert app.process(event, position, NOW) is Outcome.APPLIED
    return app


def assert_one_premium_and_a_refusal(app: BenefitsApplication, first: uuid.UUID, second: uuid.UUID) -> None:
    [granted] = premiums(app, first)
    assert (granted.kind, granted.amount, granted.rule) == (
        EntryKind.PREMIUM, Decimal("1000.00"), "return_to_work_premium.2023")
    [refused] = premiums(app, second)
    assert (refused.kind, refused.amount, refused.rule, refused.concerns_employer) == (
        EntryKind.NOTICE, None, "return_to_work_premium.2024", True)
    assert "already received the premium for this worker in another case" in refused.explanation
    # Never granted and then withdrawn on the second case either: one premium entry across both ledgers, ever.
    assert [e.id for e in recorded_premiums(app, first) + recorded_premiums(app, second)] == [granted.id]


def test_two_cases_of_one_worker_and_employer_get_one_premium_event_by_event(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first, second = record(settings, [FIRST, SECOND])
    app = apply_one_by_one(settings)
    try:
        assert_one_premium_and_a_refusal(app, first, second)
        # The step that refused it says why: the register names the first case.
        register = app._load_register(app._premium_register(WORKER, EMPLOYER_PARTY.id))
        assert register is not None and register.case_id == first
    finally:
        app.close()


@pytest.mark.parametrize("interleave", [False, True], ids=["one case after the other", "interleaved"])
@pytest.mark.parametrize("batch", [2, 3, 500])
def test_a_batched_rebuild_grants_the_premium_once_too(tmp_path: Path, batch: int, interleave: bool) -> None:
    """Both cases may qualify inside one batch, before either grant is saved: the register still collides."""
    settings = Settings(data_dir=tmp_path / "data")
    first, second = record(settings, [FIRST, SECOND], interleave=interleave)
    app = build_benefits(settings)
    try:
        counts = app.rebuild_from(intake_log(settings), now=lambda: NOW, batch=batch)
        assert counts[Outcome.APPLIED] == 7
        assert_one_premium_and_a_refusal(app, first, second)
        again = app.rebuild_from(intake_log(settings), now=lambda: NOW, batch=batch)
        assert (again[Outcome.APPLIED], again[Outcome.DUPLICATE]) == (0, 7)
    finally:
        app.close()


def test_batched_rebuild_equals_processing_event_by_event(tmp_path: Path) -> None:
    """Entry for entry (ids included): the rebuild and the live consumer record the same ledgers."""
    ledgers = []
    for name, batched in (("live", False), ("rebuild", True)):
        settings = Settings(data_dir=tmp_path / name)
        ids = record(settings, [FIRST, SECOND, ELSEWHERE], interleave=True)
        if batched:
            app = build_benefits(settings)
            app.rebuild_from(intake_log(settings), now=lambda: NOW, batch=500)
        else:
            app = apply_one_by_one(settings)
        try:
            ledgers.append([list(app.ledger(c).entries if app.ledger(c) else ()) for c in ids])
        finally:
            app.close()
    assert ledgers[0] == ledgers[1]


def test_the_same_worker_at_another_employer_gets_its_own_premium(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first, second, elsewhere = record(settings, [FIRST, SECOND, ELSEWHERE])
    app = apply_one_by_one(settings)
    try:
        assert_one_premium_and_a_refusal(app, first, second)
        [own] = premiums(app, elsewhere)
        assert (own.kind, own.amount, own.rule, own.concerns_employer) == (
            EntryKind.PREMIUM, Decimal("1725.00"), "return_to_work_premium.2024", True)
        ledger = app.ledger(elsewhere)
        assert ledger is not None and ledger.entries and not any(
            "another case" in e.explanation for e in ledger.entries)
        assert app._load_register(app._premium_register(WORKER, OTHER_EMPLOYER)) is not None
    finally:
        app.close()


#: The first case's premium is granted and then reversed: its resumption ended before the three months were worked.
WITHDRAWN = Qualifying(date(2021, 3, 1), date(2023, 4, 3), date(2023, 5, 31))


@pytest.mark.parametrize("batch", [None, 2, 3, 500], ids=["event by event", "batch of 2", "batch of 3", "batch of 500"])
def test_a_premium_reversed_in_one_case_is_free_for_the_next(tmp_path: Path, batch: int | None) -> None:
    """The register follows the premium in force: a reversed premium is withdrawn from it, so that the other case
    of the same worker and employer is not refused a premium nobody holds. A batch of 3 steps the first case's
    grant and its withdrawal in one batch (positions 4 and 5), before either is saved."""
    settings = Settings(data_dir=tmp_path / "data")
    first, second = record(settings, [WITHDRAWN, SECOND])
    if batch is None:
        app = apply_one_by_one(settings)
    else:
        app = build_benefits(settings)
        app.rebuild_from(intake_log(settings), now=lambda: NOW, batch=batch)
    try:
        assert premiums(app, first) == []
        [reversed_premium] = recorded_premiums(app, first)  # granted on the authorisation, reversed on the end
        assert reversed_premium.amount == Decimal("1000.00")
        [granted] = premiums(app, second)
        assert (granted.kind, granted.amount) == (EntryKind.PREMIUM, Decimal("1725.00"))
        register = app._load_register(app._premium_register(WORKER, EMPLOYER_PARTY.id))
        assert register is not None and (register.case_id, register.withdrawn) == (second, False)
    finally:
        app.close()


def test_a_case_refused_before_the_premium_was_withdrawn_gets_it_with_its_next_event(tmp_path: Path) -> None:
    """Interleaved, the second case is refused while the first still holds the premium. A ledger changes only with
    its own case's events, so the second case receives the premium with its next report, not before."""
    settings = Settings(data_dir=tmp_path / "data")
    first, second = record(settings, [WITHDRAWN, SECOND], interleave=True)
    app = apply_one_by_one(settings)
    try:
        assert premiums(app, first) == []
        [refused] = premiums(app, second)
        assert refused.kind is EntryKind.NOTICE
        register = app._load_register(app._premium_register(WORKER, EMPLOYER_PARTY.id))
        assert register is not None and (register.case_id, register.withdrawn) == (first, True)
        intake = build_intake(settings)
        try:
            intake.submit(FUND_PARTY, r.IncapacityReviewed(
                report_id=rid(), case_id=second, reviewed_on=date(2025, 2, 1),
                outcome=r.ReviewOutcome.INCAPACITY_CONTINUES), RECEIVED)
        finally:
            intake.close()
        *_, (position, event) = intake_log(settings)
        assert app.process(event, position, NOW) is Outcome.APPLIED
        [granted] = premiums(app, second)
        assert (granted.kind, granted.amount) == (EntryKind.PREMIUM, Decimal("1725.00"))
    finally:
        app.close()
