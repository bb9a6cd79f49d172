"""Which case and version each party's report id was recorded as: a report id is unique per sending party across
all its cases, not only within one case.

The index is a table of the intake store (``report_ids``: party, report id, case id, version), written in the same
transaction as the Case events it indexes (eventsourcing passes ``save(..., report_ids=rows)`` to the recorder's
``_insert_events``), so an accepted report and its index row are recorded together or not at all, and two intake
replicas that record one report id for two cases at once conflict like two writers of one case version. The Case
events stay the only events of the store: the relay, the auditor and every reader of the log see nothing new.
A store written before the index is indexed once when intake opens it (:func:`backfill`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteFactory
from eventsourcing.utils import get_topic

from shared.infra.postgres import UnpipelinedPostgresRecorder

#: ``(party name, report id, case id, version)``.
Row = tuple[str, str, str, int]
TABLE = "report_ids"


class SQLiteIntakeRecorder(SQLiteApplicationRecorder):
    """The intake store's recorder on SQLite, with the report index."""

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                f"CREATE TABLE IF NOT EXISTS {TABLE} (party TEXT NOT NULL, report_id TEXT NOT NULL, "
                "case_id TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (party, report_id)) WITHOUT ROWID"]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        returning = super()._insert_events(c, stored_events, **kwargs)
        rows: list[Row] = kwargs.get("report_ids") or []
        if rows:
            c.executemany(f"INSERT INTO {TABLE} (party, report_id, case_id, version) VALUES (?, ?, ?, ?)", rows)
        return returning

    def find_report(self, party: str, report_id: str) -> tuple[UUID, int] | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT case_id, version FROM {TABLE} WHERE party = ? AND report_id = ?", (party, report_id))
            row = c.fetchone()
        return (UUID(row[0]), int(row[1])) if row else None

    def index_size(self) -> int | None:
        """Rows in the index; ``None`` when the store has no index table (opened without creating tables)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,))
            if c.fetchone() is None:
                return None
            c.execute(f"SELECT COUNT(*) FROM {TABLE}")
            return int(c.fetchone()[0])

    def add_rows(self, rows: Iterable[Row]) -> None:
        """Index rows of events recorded before the index existed (rows already there are kept)."""
        with self.datastore.transaction(commit=True) as c:
            c.executemany(f"INSERT OR IGNORE INTO {TABLE} (party, report_id, case_id, version) VALUES (?, ?, ?, ?)",
                          list(rows))


class PostgresIntakeRecorder(UnpipelinedPostgresRecorder):
    """The intake store's recorder on PostgreSQL (without pipeline mode, as every store's), with the report
    index."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from psycopg.sql import SQL, Identifier

        super().__init__(*args, **kwargs)
        table = Identifier(self.datastore.schema, TABLE)
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {table} (party text NOT NULL, report_id text NOT NULL, "
            "case_id uuid NOT NULL, version bigint NOT NULL, PRIMARY KEY (party, report_id))").format(table=table))
        self._insert_row = SQL("INSERT INTO {table} (party, report_id, case_id, version) "
                               "VALUES (%s, %s, %s, %s)").format(table=table)
        self._add_row = SQL("INSERT INTO {table} (party, report_id, case_id, version) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT DO NOTHING").format(table=table)
        self._find = SQL("SELECT case_id, version FROM {table} WHERE party = %s AND report_id = %s").format(
            table=table)
        self._count = SQL("SELECT COUNT(*) AS n FROM {table}").format(table=table)

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        rows: list[Row] = kwargs.get("report_ids") or []
        if rows:
            curs.executemany(self._insert_row, rows)

    def find_report(self, party: str, report_id: str) -> tuple[UUID, int] | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._find, (party, report_id))
            row = curs.fetchone()
        return (UUID(str(row["case_id"])), int(row["version"])) if row else None

    def index_size(self) -> int | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                         (self.datastore.schema, TABLE))
            if curs.fetchone() is None:
                return None
            curs.execute(self._count)
            row = curs.fetchone()
        return int(row["n"]) if row else 0

    def add_rows(self, rows: Iterable[Row]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.executemany(self._add_row, list(rows))


class POPOIntakeRecorder(POPOApplicationRecorder):
    """The in-memory intake store (tests, simulations), with the report index."""

    def __init__(self) -> None:
        super().__init__()
        self._index: dict[tuple[str, str], tuple[UUID, int]] = {}

    def _insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        rows: list[Row] = kwargs.get("report_ids") or []
        with self._database_lock:
            if any((party, report_id) in self._index for party, report_id, _, _ in rows):
                from eventsourcing.persistence import IntegrityError

                raise IntegrityError("report id already indexed")
            returning = super()._insert_events(stored_events, **kwargs)
            for party, report_id, case_id, version in rows:
                self._index[party, report_id] = (UUID(case_id), version)
        return returning

    def find_report(self, party: str, report_id: str) -> tuple[UUID, int] | None:
        return self._index.get((party, report_id))

    def index_size(self) -> int | None:
        return len(self._index)

    def add_rows(self, rows: Iterable[Row]) -> None:
        for party, report_id, case_id, version in rows:
            self._index.setdefault((party, report_id), (UUID(case_id), version))


IntakeRecorder = SQLiteIntakeRecorder | PostgresIntakeRecorder | POPOIntakeRecorder


def intake_recorder(factory: InfrastructureFactory[Any]) -> ApplicationRecorder:
    """The intake store's recorder from eventsourcing's ``factory``: its own class, with the report index."""
    if isinstance(factory, POPOFactory):
        return POPOIntakeRecorder()
    recorder = SQLiteIntakeRecorder if isinstance(factory, SQLiteFactory) else PostgresIntakeRecorder
    factory.env[factory.APPLICATION_RECORDER_TOPIC] = get_topic(recorder)
    return factory.application_recorder()


def backfill(recorder: IntakeRecorder, events: Iterable[tuple[str, str, UUID, int]]) -> int:
    """Index the reports of a store recorded before the index existed (``events``: the store's Case events as
    ``(party, report id, case id, version)``, in store order: the first use of a report id wins); how many."""
    rows = [(party, report_id, str(case_id), version) for party, report_id, case_id, version in events]
    if rows:
        recorder.add_rows(rows)
    return len(rows)
