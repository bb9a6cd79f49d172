"""The auditor's read-only view of the three stores (intake, deadlines, benefits).

Each store is opened through its own composition root, so the auditor sees exactly what the services see (same
mapper, same cipher, same rulebook, policy and options), but read-only: a SQLite file is opened with
``mode=ro`` and no table is ever created. A derived store that does not exist yet is simply empty (its cases are
"behind"). Nothing here writes; the auditor's own writes go to ``audit.sqlite`` (:mod:`services.audit.chain`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.utils import get_topic

from services.benefits.application import BenefitsApplication, build_benefits
from services.deadlines.application import DeadlinesApplication, build_deadlines
from services.intake.application import IntakeApplication, build_intake
from shared.events.envelope import CaseEvent
from shared.infra.derived import CaseParked, StoreRebuilt
from shared.infra.settings import Settings
from shared.infra.store import events_table_exists, missing_store, read_only_env

#: The stores the auditor reads, in the order it reports them.
STORES = ("intake", "deadlines", "benefits")
CASE_EVENT_TOPIC = get_topic(CaseEvent)


class AuditError(Exception):
    """Something the auditor cannot answer (no such case, no store, an ambiguous item id ...)."""


@dataclass
class Row:
    """One stored event as the recorder returns it, and its decoded form (``None`` with ``error`` if undecodable)."""

    stored: StoredEvent
    event: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Generation:
    """What a derived store says of its making: its generation record (:class:`StoreRebuilt`, written first by a
    rebuild), whether that record is the store's first event, and whether the store is there at all."""

    record: StoreRebuilt | None = None
    first: bool = False
    absent: bool = False
    #: why the record cannot be read
    error: str | None = None
    #: the store's first event (originator id, version, sha256 of its bytes; ``None``: an empty store): a store
    #: dropped or rebuilt since is told apart by it even before (or without) its generation record
    start: tuple[str, int, str] | None = None

    @property
    def id(self) -> str | None:
        return str(self.record.generation) if self.record is not None else None


class Stores:
    """The three applications, opened read-only; ``deadlines`` / ``benefits`` are ``None`` when absent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        env = read_only_env(settings, "intake")
        if env is None:
            raise AuditError(missing_store(settings, "intake"))
        self.intake: IntakeApplication = build_intake(settings, None, **env)
        denv = read_only_env(settings, "deadlines")
        self.deadlines: DeadlinesApplication | None = (
            build_deadlines(settings, None, **denv) if denv is not None else None)
        benv = read_only_env(settings, "benefits")
        self.benefits: BenefitsApplication | None = (
            build_benefits(settings, None, **benv) if benv is not None else None)
        #: The stores whose tables were found (a store opened read-only may have none yet: it is empty).
        self._with_tables: set[str] = set()

    def app(self, store: str) -> Application[UUID] | None:
        return {"intake": self.intake, "deadlines": self.deadlines, "benefits": self.benefits}[store]

    def derived(self, store: str) -> DeadlinesApplication | BenefitsApplication | None:
        """The derived store ``deadlines`` or ``benefits`` (``None`` when absent)."""
        return {"deadlines": self.deadlines, "benefits": self.benefits}[store]

    def _recorder(self, store: str) -> ApplicationRecorder | None:
        """``store``'s recorder, or ``None`` when the store is absent or has no tables yet (nothing recorded)."""
        app = self.app(store)
        if app is None:
            return None
        if store not in self._with_tables:
            if not events_table_exists(app.recorder):
                return None
            self._with_tables.add(store)  # tables are never dropped under a reader: look once
        return app.recorder

    def close(self) -> None:
        for app in (self.intake, self.deadlines, self.benefits):
            if app is not None:
                app.close()

    # --- reading --------------------------------------------------------------------------------------------

    def rows(self, store: str, originator_id: UUID, *, gt: int | None = None) -> list[Row]:
        """Every stored event of ``originator_id`` in ``store``, in version order, each decoded if it can be."""
        app = self.app(store)
        if app is None:
            return []
        out = []
        for item in self.raw(store, originator_id, gt=gt):
            try:
                out.append(Row(item, app.mapper.to_domain_event(item)))
            except Exception as exc:  # noqa: BLE001 - a changed byte may break decryption or decoding
                out.append(Row(item, None, f"{type(exc).__name__}: {exc}"[:300]))
        return out

    def raw(self, store: str, originator_id: UUID, *, gt: int | None = None) -> Sequence[StoredEvent]:
        recorder = self._recorder(store)
        return recorder.select_events(originator_id, gt=gt) if recorder is not None else []

    def notifications(self, store: str, start: int = 1, batch: int = 2000) -> Iterator[Any]:
        """The store's notification log from ``start`` (raw: originator, version, topic, bytes; nothing decoded)."""
        recorder = self._recorder(store)
        if recorder is None:
            return
        position = start
        while page := recorder.select_notifications(position, batch):
            yield from page
            position = page[-1].id + 1

    def case_ids(self) -> list[UUID]:
        """Every case in the intake store, in the order they were opened."""
        seen: dict[UUID, None] = {}
        for notification in self.notifications("intake"):
            if notification.topic == CASE_EVENT_TOPIC:
                seen.setdefault(_uuid(notification.originator_id), None)
        return list(seen)

    def case_history(self, case_id: UUID) -> list[CaseEvent]:
        """The case's recorded events (decoded); :class:`AuditError` when there are none."""
        rows = self.rows("intake", case_id)
        if not rows:
            raise AuditError(f"no case {case_id} in the intake store")
        bad = [r for r in rows if r.error is not None]
        if bad:
            raise AuditError(
                f"case {case_id}: stored event version {bad[0].stored.originator_version} cannot be read "
                f"({bad[0].error}); run `audit verify {case_id}`"
            )
        return [r.event for r in rows]

    def parked(self, store: str, case_id: UUID) -> CaseParked | None:
        """The derived service's parking of ``case_id`` while it waits for an operator (``None``: not parked)."""
        app = self.derived(store)
        if app is None or self._recorder(store) is None:
            return None
        return app.parked(case_id)

    def generation(self, store: str) -> Generation:
        """The derived store's generation (:class:`Generation`): the latest record of it, and whether that record is
        the store's first event (a rebuild writes it before anything else)."""
        app = self.derived(store)
        if app is None:
            return Generation(absent=True)
        first = next(self.notifications(store, 1, batch=1), None)
        start = ((str(_uuid(first.originator_id)), first.originator_version, hashlib.sha256(first.state).hexdigest())
                 if first is not None else None)
        rows = self.rows(store, app.generation_id())
        if not rows:
            return Generation(start=start)
        last = rows[-1]
        if not isinstance(last.event, StoreRebuilt):
            return Generation(error=last.error or f"version {last.stored.originator_version} is no generation record",
                              start=start)
        is_first = (first is not None and _uuid(first.originator_id) == app.generation_id()
                    and first.originator_version == last.stored.originator_version)
        return Generation(record=last.event, first=is_first, start=start)

    def derived_events(self, store: str, case_id: UUID) -> list[Any]:
        """The derived aggregate's events (schedule steps and fired timers, or ledger steps) of ``case_id``."""
        app = self.derived(store)
        if app is None:
            return []
        rows = self.rows(store, app.derived_id(case_id))
        bad = [r for r in rows if r.error is not None]
        if bad:
            raise AuditError(f"case {case_id}: {store} step {bad[0].stored.originator_version} cannot be read "
                             f"({bad[0].error})")
        return [r.event for r in rows]


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
