"""Wire contracts, imported by every service, the CLI and the auditor: every report, recorded event and reply, the
published deadline events, queries, feed messages and requests, and the dead-letter record (``msgspec.Struct``s)."""

from .common import (
    HEALTH_FUNDS,
    IdentifierError,
    Party,
    PartyKind,
    normalise_enterprise_number,
    normalise_health_fund,
    normalise_insz,
    normalise_party,
    restricted_fields,
)
from .envelope import CASE_EVENT_DECODER, CaseEvent, case_id_for, event_id_for
from .replies import REPLY_DECODER, Accepted, Rejected, RejectionCode, Reply
from .reports import REPORT_TYPES, REPORTS_BY_TAG, AnyReport, CaseReport, Report, tag_of

__all__ = [
    "CASE_EVENT_DECODER",
    "HEALTH_FUNDS",
    "REPLY_DECODER",
    "REPORTS_BY_TAG",
    "REPORT_TYPES",
    "Accepted",
    "AnyReport",
    "CaseEvent",
    "CaseReport",
    "IdentifierError",
    "Party",
    "PartyKind",
    "Rejected",
    "RejectionCode",
    "Reply",
    "Report",
    "case_id_for",
    "event_id_for",
    "normalise_enterprise_number",
    "normalise_health_fund",
    "normalise_insz",
    "normalise_party",
    "restricted_fields",
    "tag_of",
]
