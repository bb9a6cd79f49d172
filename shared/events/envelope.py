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


# --- payloads encrypted in transit and in the broker's store ---------------------------------------------------

#: Set on a message whose payload is the stores' cipher text (``eventsourcing.cipher.AESCipher``, AES-GCM) of the
#: event's JSON: with a cipher key, the broker's files hold no national number or medical field in clear.
CIPHER_HEADER = "Reintegration-Cipher"
CIPHER_NAME = "AESCipher"


class SealedPayloadError(ValueError):
    """An encrypted payload that cannot be opened (no key, another key, damaged)."""


def seal_payload(data: bytes, cipher: object | None) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """``data`` encrypted with ``cipher`` (an eventsourcing cipher, or ``None`` for clear text) and its headers."""
    if cipher is None:
        return data, ()
    return cipher.encrypt(data), ((CIPHER_HEADER, CIPHER_NAME),)  # type: ignore[attr-defined]


def open_payload(data: bytes, headers: dict[str, str] | None, cipher: object | None) -> bytes:
    """The clear bytes of a payload that :func:`seal_payload` sealed (or that was never sealed)."""
    sealed = (headers or {}).get(CIPHER_HEADER)
    if sealed is None:
        return data
    if sealed != CIPHER_NAME:
        raise SealedPayloadError(f"payload sealed with {sealed!r}; this build opens {CIPHER_NAME!r} only")
    if cipher is None:
        raise SealedPayloadError("the payload is encrypted but this process has no REINTEGRATION_CIPHER_KEY")
    try:
        return bytes(cipher.decrypt(data))  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - a wrong key or damaged bytes: say which message cannot be opened
        raise SealedPayloadError(f"the encrypted payload cannot be opened with this key: {exc!r}") from None


def decode_case_event(data: bytes, headers: dict[str, str] | None = None, cipher: object | None = None) -> CaseEvent:
    """A Case event from a TRAJECTORY message, sealed or not."""
    return CASE_EVENT_DECODER.decode(open_payload(data, headers, cipher))
