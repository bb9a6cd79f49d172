"""A derived store that exists but has no tables yet (its service never ran) reads as empty, on SQLite and on
PostgreSQL: the auditor finds the table missing by looking for it, not by reading an error's text."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

from services.audit import Auditor
from services.deadlines.application import build_deadlines
from services.intake.application import build_intake
from shared.infra.settings import Settings
from shared.infra.store import events_table_exists
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, incapacity, request


def tableless_sqlite_file(data_dir: Path, service: str) -> None:
    """A store file as a service leaves it that opened it but created nothing yet (SQLite; PostgreSQL has its
    schema created by the read-only opening itself)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(data_dir / f"{service}.sqlite") as db:
        db.execute("PRAGMA journal_mode=WAL")


def test_a_store_has_its_events_table_once_its_service_created_it(settings: Settings) -> None:
    tableless_sqlite_file(settings.data_dir, "deadlines")
    unopened = build_deadlines(settings, None, CREATE_TABLE="n")
    assert not events_table_exists(unopened.recorder)
    created = build_deadlines(settings)
    assert events_table_exists(created.recorder) and events_table_exists(unopened.recorder)
    unopened.close()
    created.close()


def test_a_derived_store_without_tables_is_behind_not_an_error(settings: Settings) -> None:
    intake = build_intake(settings)
    now = datetime(2024, 8, 1, 9, tzinfo=UTC)
    case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), now).case_id
    intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 10)), now)
    intake.close()
    tableless_sqlite_file(settings.data_dir, "deadlines")

    with Auditor(settings) as auditor:
        assert [entry.version for entry in auditor.history(case)] == [1, 2]
        verdict = auditor.verify(case)
        assert auditor.stores.derived_events("deadlines", case) == []
        assert list(auditor.stores.notifications("deadlines")) == []

    assert verdict.status == "behind" and verdict.differences == [], verdict
    assert verdict.deadlines_applied == 0
    assert "deadlines has applied 0 of 2 events" in verdict.notes
