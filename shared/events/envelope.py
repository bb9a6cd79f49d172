"""The recorded event: a party's report as received, with who sent it, when, and its place in the case.

The same bytes are stored in the event store (through :mod:`shared.infra.store`'s msgspec mapper), published on
the trajectory stream and read by the auditor. Stored events are decoded tolerantly (unknown fields are ignored)
so that a newer writer never breaks an older reader.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

import msgspec

from .common import Party, UtcTime
from .reports import AnyReport, tag_of

#: Namespace of the deterministic ids derived from a case id (event ids, derived aggregates' ids).
CASE_NAMESPACE = uuid.UUID("5d0a8d8e-2f4b-4b0e-9a57-6a1c1f0b7e21")


def event_id_for(case_id: UUID, version: int) -> UUID:
    """The id of the event at ``version`` of ``case_id``: deterministic, so a retried write collides."""
    return uuid.uuid5(case_id, f"event:{version}")


def case_id_for(insz: str, enterprise_number: str, start_date: str, health_fund: str) -> UUID:
    """A case is one worker's incapacity at one employer from one start date, as reported with one health fund.

    The health fund is part of the id so that no party can learn, by reporting an incapacity, whether another
    party already reported it: a report naming another fund opens another case instead of meeting this one.
    """
    return uuid.uuid5(CASE_NAMESPACE, f"case:{insz}:{enterprise_number}:{start_date}:{health_fund}")


class CaseEvent(msgspec.Struct, frozen=True, kw_only=True, tag="case_event.v1", tag_field="envelope"):
    """One accepted report of a case."""

    case_id: UUID
    version: int
    event_id: UUID
    recorded_at: UtcTime
    reported_by: Party
    #: The regime in force on the report's effective date, when one is (``None`` before 1 Dec 2016).
    regime: str | None
    report: AnyReport

    # eventsourcing's DomainEventProtocol
    @property
    def originator_id(self) -> UUID:
        return self.case_id

    @property
    def originator_version(self) -> int:
        return self.version

    @property
    def timestamp(self) -> datetime:
        return self.recorded_at

    @property
    def type(self) -> str:
        return tag_of(self.report)


CASE_EVENT_DECODER = msgspec.json.Decoder(CaseEvent)
CASE_EVENT_ENCODER = msgspec.json.Encoder()
