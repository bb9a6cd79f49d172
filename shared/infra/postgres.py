"""eventsourcing's PostgreSQL application recorder, writing each transaction without psycopg's pipeline mode.

eventsourcing sends a transaction's table lock, NOTIFY and insert pipelined. With the large transactions a
derived service now writes (a fetched batch of steps at once), a pipelined insert was seen to leave psycopg
waiting for the server's answer while the server waited for the rest of the statement, for good (the table lock
held, every other writer of the store blocked behind it; psycopg issue 685 describes the same). The same three
statements sent one after the other cost two round trips more per transaction, which a batch shares.
Chosen with eventsourcing's ``APPLICATION_RECORDER_TOPIC`` (:func:`shared.infra.store.postgres_env`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry


class UnpipelinedPostgresRecorder(PostgresApplicationRecorder):
    """Inserts as :class:`PostgresApplicationRecorder` does (table lock, NOTIFY, one insert of every event,
    their notification ids), in one transaction, without pipeline mode."""

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
