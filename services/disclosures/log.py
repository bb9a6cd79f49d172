"""The disclosure log: who received or asked what, on which legal basis, when; never anything medical.

Each record is its own tiny aggregate whose id is derived from what was disclosed (the delivered message's id, or
the query's id), so that recording the same disclosure twice collides instead of doubling. Listing reads the log's
notification order (the order the records were written).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from uuid import UUID

import msgspec
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

from shared.events.common import UtcTime
from shared.infra.clock import Clock, system_clock
from shared.infra.parties import load_identity
from shared.infra.service import QueryDisclosure
from shared.infra.settings import Settings
from shared.infra.store import check_cipher, prepare_store, setup_lock
from shared.infra.telemetry import DISCLOSURES

NAMESPACE = uuid.UUID("b0f1d1c5-6c36-4a7e-9a55-38f0c2a9e6d4")

#: The legal basis of what employers receive: their duties in the re-integration procedure (and the GDPR basis).
EMPLOYER_BASIS = (
    "Codex welzijn op het werk boek I titel 4 hoofdstuk VI (re-integration duties of the employer); "
    "GDPR art. 6(1)(c), data-minimised (no medical data)"
)
AUDIT_BASIS = "GDPR art. 6(1)(c) and 6(1)(e): supervision of the re-integration and benefit rules"


class DisclosureRecorded(msgspec.Struct, frozen=True, kw_only=True, tag="disclosure_recorded.v1",
                         tag_field="envelope"):
    originator_id: UUID
    originator_version: int
    timestamp: UtcTime
    #: delivery (to an employer's feed) or query (by an auditor)
    kind: str
    #: the party: ``employer:<enterprise number>`` or ``auditor:<name>``
    who: str
    #: what was disclosed: message type and subject, or the query and its arguments (ids and dates only)
    what: str
    case_id: UUID | None
    legal_basis: str
    #: when it was disclosed (the delivery's publication time, or the query's time)
    disclosed_at: UtcTime
    #: the delivered message's id, or the query's id: recording it again collides
    reference: str

    @property
    def version(self) -> int:
        return self.originator_version


class DisclosureLog(Application[UUID]):
    name = "disclosures"

    def record(self, *, kind: str, who: str, what: str, case_id: UUID | None, legal_basis: str,
               disclosed_at: datetime, reference: str) -> bool:
        """Record one disclosure; ``False`` when it was recorded before (same reference)."""
        record = DisclosureRecorded(
            originator_id=uuid.uuid5(NAMESPACE, f"{kind}:{reference}"), originator_version=1,
            timestamp=disclosed_at, kind=kind, who=who, what=what, case_id=case_id, legal_basis=legal_basis,
            disclosed_at=disclosed_at, reference=reference,
        )
        try:
            self.save(record)
        except IntegrityError:
            return False
        DISCLOSURES.labels(kind).inc()
        return True

    def records(self, *, who: str | None = None, case_id: UUID | None = None,
                since: datetime | None = None) -> Iterator[DisclosureRecorded]:
        position = 1
        while True:
            batch = self.recorder.select_notifications(position, 1000)
            if not batch:
                return
            for notification in batch:
                record = self.mapper.to_domain_event(notification)
                if not isinstance(record, DisclosureRecorded):
                    raise TypeError(f"the disclosure log holds a {type(record).__name__}, not a disclosure record")
                if (who is None or record.who == who) and (case_id is None or record.case_id == case_id) and (
                    since is None or record.disclosed_at >= since
                ):
                    yield record
            position = batch[-1].id + 1


def build_disclosures(settings: Settings, **env: str) -> DisclosureLog:
    with setup_lock(settings, DisclosureLog.name):
        log = DisclosureLog(env={**prepare_store(settings, DisclosureLog.name), **env})
    check_cipher(log)
    return log


def auditor_queries(settings: Settings, *, clock: Clock = system_clock,
                    parties_path: Path | None = None) -> QueryDisclosure:
    """What a derived service needs to record each auditor's query in the disclosure log (the log is opened once
    and closed with the service). Identity as for the audit service: the parties file the server runs with."""
    parties = load_identity(settings.nats_credentials, parties_path)
    log = build_disclosures(settings)

    def record(who: str, what: str, case_id: UUID) -> str:
        reference = str(uuid.uuid4())
        log.record(kind="query", who=who, what=what, case_id=case_id, legal_basis=AUDIT_BASIS,
                   disclosed_at=clock(), reference=reference)
        return reference

    return QueryDisclosure(parties=parties, record=record, close=log.close)
