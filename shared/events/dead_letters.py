"""The dead-letter record: why a consumer gave up on a message, carried in the dead letter's headers.

A dead letter is the original message's bytes, unchanged, on ``reintegration.dead.<service>`` (stream
``DEAD_LETTERS``), with its original headers and these ones. :meth:`DeadLetterRecord.to_headers` is the one place
they are written and :meth:`DeadLetterRecord.from_headers` the one place they are read, so letters stored by any
release read the same::

    Reintegration-Original-Subject   the subject it was consumed from
    Reintegration-Error              why it failed (a letter parked behind an earlier one: PARKED_BEHIND)
    Reintegration-Deliveries         how often it was delivered
    Reintegration-Stream-Sequence    its sequence in the stream it was consumed from ("" when unknown)
    Reintegration-Case-Id            its case ("" when it names none)
    Reintegration-Case-Version       its case version ("" when it could not be decoded)
    Reintegration-Letter-Id          the letter's own id (absent from letters written before letters had ids)
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

ORIGINAL_SUBJECT_HEADER = "Reintegration-Original-Subject"
ERROR_HEADER = "Reintegration-Error"
DELIVERIES_HEADER = "Reintegration-Deliveries"
STREAM_SEQUENCE_HEADER = "Reintegration-Stream-Sequence"
CASE_ID_HEADER = "Reintegration-Case-Id"
CASE_VERSION_HEADER = "Reintegration-Case-Version"
#: The letter's own id: resolutions are recorded by it, not by its sequence in DEAD_LETTERS, which starts over if
#: the broker loses its store (a new letter must never look resolved).
LETTER_ID_HEADER = "Reintegration-Letter-Id"
#: The error of a message dead-lettered behind its case's first dead letter (its case is parked).
PARKED_BEHIND = "its case is parked behind an earlier dead-lettered event"
#: What identifies that error in a stored letter (the start of :data:`PARKED_BEHIND`).
_PARKED_PREFIX = "its case is parked"
#: The longest error a header carries.
MAX_ERROR = 1000


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class DeadLetterRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Why a message was dead-lettered, where it came from and whose it is."""

    original_subject: str
    #: Why it failed: the error, or :data:`PARKED_BEHIND` for a message that waited behind its case's dead letter.
    error: str
    #: It failed on nothing of its own: an earlier event of its case was dead-lettered (the case is parked).
    behind: bool = False
    deliveries: int | None = None
    #: Its sequence in the stream it was consumed from.
    stream_sequence: int | None = None
    #: Its case, as the header names it (the consumer writes a case id; a foreign letter may hold anything).
    case_id: str | None = None
    case_version: int | None = None
    #: The letter's own id; ``None`` for letters written before letters had ids.
    letter_id: str | None = None

    def parked_behind(self) -> DeadLetterRecord:
        """This letter as one dead-lettered because its case is parked behind an earlier dead letter."""
        return msgspec.structs.replace(self, error=PARKED_BEHIND, behind=True)

    def to_headers(self) -> dict[str, str]:
        """The headers that carry this record, added to the original message's own."""
        headers = {
            ORIGINAL_SUBJECT_HEADER: self.original_subject,
            ERROR_HEADER: self.error[:MAX_ERROR],
            DELIVERIES_HEADER: "" if self.deliveries is None else str(self.deliveries),
            STREAM_SEQUENCE_HEADER: "" if self.stream_sequence is None else str(self.stream_sequence),
            CASE_ID_HEADER: self.case_id or "",
            CASE_VERSION_HEADER: "" if self.case_version is None else str(self.case_version),
        }
        if self.letter_id is not None:
            headers[LETTER_ID_HEADER] = self.letter_id
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> DeadLetterRecord:
        """The record a stored dead letter carries (tolerant: a missing or unreadable header is ``None``)."""
        headers = headers or {}
        error = headers.get(ERROR_HEADER, "")
        return cls(
            original_subject=headers.get(ORIGINAL_SUBJECT_HEADER, ""),
            error=error,
            behind=error.startswith(_PARKED_PREFIX),
            deliveries=_int(headers.get(DELIVERIES_HEADER)),
            stream_sequence=_int(headers.get(STREAM_SEQUENCE_HEADER)),
            case_id=headers.get(CASE_ID_HEADER) or None,
            case_version=_int(headers.get(CASE_VERSION_HEADER)),
            letter_id=headers.get(LETTER_ID_HEADER) or None,
        )
