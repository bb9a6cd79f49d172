"""What intake answers: accepted (with the case id, event ids and version) or rejected (with the reason)."""

from __future__ import annotations

import enum
from typing import Union
from uuid import UUID

import msgspec


class RejectionCode(enum.StrEnum):
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    INVALID_IDENTIFIER = "invalid_identifier"
    NOT_ALLOWED_FOR_PARTY = "not_allowed_for_party"
    CASE_NOT_FOUND = "case_not_found"
    CASE_EXISTS = "case_exists"
    REPORT_ID_REUSED = "report_id_reused"
    NOT_ELIGIBLE = "not_eligible"
    INVALID_STATE = "invalid_state"
    INVALID_DATE = "invalid_date"
    NO_REGIME = "no_regime"
    CASE_CLOSED = "case_closed"
    CONFLICT = "conflict"
    STORE_UNAVAILABLE = "store_unavailable"
    INTERNAL_ERROR = "internal_error"


#: Codes after which the same report may succeed later, unchanged.
RETRYABLE = frozenset({RejectionCode.CONFLICT, RejectionCode.STORE_UNAVAILABLE, RejectionCode.INTERNAL_ERROR})


class Accepted(msgspec.Struct, frozen=True, kw_only=True, tag="accepted.v1", tag_field="type"):
    report_id: UUID
    case_id: UUID
    version: int
    event_ids: list[UUID]
    #: True when this report id was accepted before: nothing new was stored.
    duplicate: bool = False
    regime: str | None = None


class Rejected(msgspec.Struct, frozen=True, kw_only=True, tag="rejected.v1", tag_field="type"):
    code: RejectionCode
    message: str
    report_id: UUID | None = None
    #: JSON path of the offending field (``$.measures[0].kind``), when one field is at fault.
    field: str | None = None
    #: Rule id of the rulebook rule that refused it, with the regime it belongs to.
    rule: str | None = None
    regime: str | None = None
    #: True when the same report may be sent again unchanged (conflict, store briefly unavailable).
    retry: bool = False


Reply = Union[Accepted, Rejected]  # noqa: UP007
REPLY_DECODER = msgspec.json.Decoder(Reply)
