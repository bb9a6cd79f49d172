"""The auditor's questions over NATS: contracts, strict decoding, who asked, and one answer per request.

``reintegration.audit.<question>`` (request-reply) asks one thing about one case, read-only:

* ``history``  ``{"case_id"}``: who reported what, when received, effective date and regime;
* ``asof``     ``{"case_id", "time" | "date" | "version"}``: what the system knew at a time (RFC 3339 with an offset),
  by the end of a Belgian day, or at a version: the case, its deadlines and ledger recomputed, and whether the
  services recorded the same;
* ``applied``  ``{"case_id", "on"?}``: the law that applied, each event under the regime of its effective date;
  with ``on``, which facts had happened and which were known by that day;
* ``explain``  ``{"case_id", "item_id"}``: one deadline or ledger entry (id or a prefix of at least 4 characters);
* ``verify``   ``{"case_id"}``: recompute one case and check its hash chains;
* ``dossier``  ``{"case_id"}``: the case's dossier (the JSON of ``reintegration audit dossier``);
* ``disclosures`` ``{"case_id"}``: who was told what about the case, when, on which legal basis: the disclosure
  log's records of the case (deliveries to employers, auditors' questions), oldest first. Asking it is recorded
  like any question (its own record follows the answer, so the next answer lists it).

The answers are exactly what :class:`services.audit.Auditor` returns to ``reintegration audit``, wrapped in
:class:`AuditAnswer` (question, who asked, the disclosure record's reference, when). A refusal is
:class:`AuditRefusal` (``error``, ``code``, ``field``).

**Who asked** comes from the server, never from the request: a request that crosses from an auditor's account into
the service account through its service import carries the ``Nats-Request-Info`` header (``{"acc": "<account>",
...}``), which the server sets itself (a client's own header of that name is replaced). The account is mapped to an
auditor of the parties file. A request without it did not come through an auditor's import and is refused. Only a
service running without credentials (an open development server, where anybody can set any header) answers
without it; such questions are recorded as asked by ``unauthenticated``.

**Disclosure.** Each answered question leaves one record in the disclosure log (who, the question and its ids and
dates, the legal basis, when), written before the answer is sent: an answer whose record could not be written is
not sent. A question refused before any store was read (undecodable, unknown field, unknown question, no or
unknown identity, or an answer too large to send) discloses nothing and records nothing. A question the auditor
could not answer after reading the stores (no such case, an ambiguous item id) is recorded, with the refusal.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final
from uuid import UUID

import msgspec
import structlog
from eventsourcing.persistence import PersistenceError

from services.disclosures.log import AUDIT_BASIS, DisclosureLog
from shared.infra.clock import Clock, system_clock
from shared.infra.parties import AUDIT_PREFIX, Parties, UnknownRequester, auditor_asking
from shared.infra.settings import Settings
from shared.rulebook.calendar import FIRST_DAY, LAST_DAY, end_of_belgian_day

from .auditor import Auditor
from .disclosed import Disclosures
from .history import Applied, AsOf, HistoryEntry
from .stores import AuditError
from .verify import CaseVerdict

log = structlog.get_logger("audit")

#: Requests are a few ids and dates; anything larger is refused before it is parsed.
MAX_REQUEST_BYTES: Final = 4096


# --------------------------------------------------------------------------------------------------- requests


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class CaseRequest(_Strict, frozen=True):
    """One case: ``{"case_id": "<uuid>"}``."""

    case_id: UUID


#: No case has more versions than this; a larger number is refused by its type, not by the store.
MAX_VERSION = 2**31 - 1


def _check_day(day: dt.date | None, field: str) -> None:
    if day is not None and not FIRST_DAY <= day <= LAST_DAY:
        raise Refused("invalid_field", f"{field} {day.isoformat()} is outside the days the rulebook covers "
                      f"({FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()})", field=f"$.{field}")


class HistoryRequest(CaseRequest, frozen=True):
    pass


class AsOfRequest(CaseRequest, frozen=True):
    """Exactly one of ``time`` (RFC 3339 with an offset), ``date`` (up to the end of that Belgian day) and
    ``version`` (the first n events)."""

    time: dt.datetime | None = None
    date: dt.date | None = None
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)] | None = None


class AppliedRequest(CaseRequest, frozen=True):
    """``on``: also say which facts had happened and which were known by that day."""

    on: dt.date | None = None


class ExplainRequest(CaseRequest, frozen=True):
    """``item_id``: a deadline or ledger entry id, or a prefix of at least 4 characters."""

    item_id: Annotated[str, msgspec.Meta(min_length=4, max_length=36, pattern="^[0-9a-fA-F-]+$(?!\n)")]


class VerifyRequest(CaseRequest, frozen=True):
    pass


class DossierRequest(CaseRequest, frozen=True):
    pass


class DisclosuresRequest(CaseRequest, frozen=True):
    pass


# ---------------------------------------------------------------------------------------------------- replies


class AuditAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """An answered question: ``answer`` is what ``reintegration audit <question> --json`` prints."""

    question: str
    #: the auditor, as the server authenticated it (``auditor:<name>``), or ``unauthenticated`` on an open server
    asked_by: str
    #: the reference of the disclosure record this answer left (``reintegration disclosures --who ...``)
    disclosure: str
    answered_at: dt.datetime
    answer: Any


class AuditRefusal(msgspec.Struct, frozen=True, kw_only=True):
    """A refused question: why, a code, and the field at fault (a JSON path such as ``$.version``) if any."""

    error: str
    #: ``malformed``, ``invalid_field``, ``unknown_question``, ``unauthenticated``, ``not_an_auditor``,
    #: ``not_answerable`` (no such case, an ambiguous item ...), ``too_large``, ``failed``
    code: str
    field: str | None = None
    #: ``true`` when asking again may succeed (the store was briefly unavailable)
    retry: bool = False


class Refused(Exception):
    def __init__(self, code: str, message: str, field: str | None = None, retry: bool = False) -> None:
        super().__init__(message)
        self.refusal = AuditRefusal(error=message, code=code, field=field, retry=retry)


# -------------------------------------------------------------------------------------------------- questions


def _check_as_of(q: AsOfRequest) -> None:
    given = [name for name in ("time", "date", "version") if getattr(q, name) is not None]
    if len(given) != 1:
        raise Refused("invalid_field", "give exactly one of time, date and version" + (
            f" (got {', '.join(given)})" if given else ""), field=f"$.{given[1]}" if len(given) > 1 else "$")
    if q.time is not None and q.time.utcoffset() is None:
        raise Refused("invalid_field", "time needs an offset (e.g. 2024-08-02T12:00:00+02:00 or ...Z)", "$.time")
    _check_day(q.date, "date")


def _as_of(auditor: Auditor, q: AsOfRequest) -> AsOf:
    # the end of a Belgian day: every event received on or before it (as ``audit asof --time DATE``)
    moment = q.time if q.time is not None else end_of_belgian_day(q.date) if q.date is not None else None
    return auditor.as_of(q.case_id, time=moment, version=q.version)


@dataclass(frozen=True)
class Question:
    name: str
    request: type[CaseRequest]
    #: the type of ``AuditAnswer.answer`` (for the contract document)
    answer: Any
    ask: Callable[[Auditor, Any], Any]
    summary: str
    #: checks that need more than the types (raises :class:`Refused`), before any store is opened
    check: Callable[[Any], None] = lambda request: None

    @property
    def subject(self) -> str:
        return f"{AUDIT_PREFIX}.{self.name}"


QUESTIONS: Final[dict[str, Question]] = {q.name: q for q in (
    Question("history", HistoryRequest, list[HistoryEntry], lambda a, q: a.history(q.case_id),
             "A case's full history: who reported what, when it was received, its effective date and regime."),
    Question("asof", AsOfRequest, AsOf, _as_of,
             "What the system knew at a time (`time`, RFC 3339 with an offset), by the end of a Belgian day "
             "(`date`) or at a `version`: the case, its deadlines and ledger recomputed over the events recorded "
             "by then, beside what the services recorded.", _check_as_of),
    Question("applied", AppliedRequest, Applied, lambda a, q: a.applied(q.case_id, q.on),
             "The law that applied: each event under the regime in force on its effective date; with `on`, which "
             "facts had happened and which were known by that day.", lambda q: _check_day(q.on, "on")),
    Question("explain", ExplainRequest, dict[str, Any], lambda a, q: a.explain(q.case_id, q.item_id),
             "One deadline or ledger entry (`item_id`, or a prefix of at least 4 characters): rule, legal basis, "
             "regime, inputs, causing events, explanation."),
    Question("verify", VerifyRequest, CaseVerdict, lambda a, q: a.verify(q.case_id),
             "Recompute one case's deadlines and ledger from its history and check its hash chains: `verified`, "
             "`behind`, `parked`, `different` (with the exact differences) or `broken`."),
    Question("dossier", DossierRequest, dict[str, Any], lambda a, q: a.dossier(q.case_id),
             "The case's dossier for an inspector: history, deadlines and ledger explained, the verification."),
    Question("disclosures", DisclosuresRequest, Disclosures, lambda a, q: a.disclosures(q.case_id),
             "Who was told what about the case, when, on which legal basis: the disclosure log's records of the "
             "case (deliveries to employers' feeds, auditors' questions), oldest first."),
)}

_DECODERS: Final = {name: msgspec.json.Decoder(q.request) for name, q in QUESTIONS.items()}
_PATH = re.compile(r" - at `(\$[^`]*)`$")
_NAMED = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]*)`")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refused("malformed", f"duplicate key {key!r} in a JSON object", field=f"$.{key}")
        seen[key] = value
    return seen


def decode_request(question: str, raw: bytes) -> CaseRequest:
    """The request of ``question``, strictly: a bounded JSON object, no duplicate key, no unknown field, every
    field of its type; otherwise :class:`Refused` naming the field."""
    if question not in QUESTIONS:
        raise Refused("unknown_question", f"unknown audit question {question!r}; ask one of "
                      f"{', '.join(q.subject for q in QUESTIONS.values())}")
    if len(raw) > MAX_REQUEST_BYTES:
        raise Refused("malformed", f"request of {len(raw)} bytes exceeds {MAX_REQUEST_BYTES} bytes")
    if not raw.strip():
        raise Refused("malformed", 'empty request: send a JSON object, e.g. {"case_id": "<uuid>"}')
    try:
        request = _DECODERS[question].decode(raw)
    except msgspec.ValidationError as exc:
        # msgspec gives the field's path only in its message ("... - at `$.version`"): read it from there.
        text = str(exc)
        path = (m.group(1) if (m := _PATH.search(text)) else None)
        message = _PATH.sub("", text)
        if named := _NAMED.match(message):
            path = f"{path or '$'}.{named.group(1)}"
        raise Refused("invalid_field", message, field=path) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise Refused("malformed", f"not valid JSON: {exc}") from None
    try:  # msgspec keeps the last of duplicate keys: refuse them (the request is small, a second parse is cheap)
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except ValueError as exc:  # a duplicate key raises Refused itself
        raise Refused("malformed", f"not valid JSON: {exc}") from None
    QUESTIONS[question].check(request)
    return request


def describe(question: str, request: CaseRequest) -> str:
    """What was asked, for the disclosure record: the subject and the request's ids and dates (nothing else)."""
    return f"{AUDIT_PREFIX}.{question} {msgspec.json.encode(request).decode()}"


# --------------------------------------------------------------------------------------------------- identity


def auditor_of(headers: Mapping[str, str] | None, reply: str, parties: Parties | None) -> str:
    """Who asked: the auditor whose account the server says the request came from (:func:`auditor_asking`), or
    :data:`~shared.infra.parties.UNAUTHENTICATED` on a server without accounts; otherwise :class:`Refused`."""
    try:
        return auditor_asking(headers, reply, parties, "the audit questions")
    except UnknownRequester as exc:
        raise Refused("not_an_auditor" if exc.code == "not_a_party" else exc.code, exc.message) from None


# ----------------------------------------------------------------------------------------------------- answer


@dataclass
class Responder:
    """Answers one request at a time (blocking: call it from a worker thread) and keeps the disclosure log."""

    settings: Settings
    disclosures: DisclosureLog
    #: ``None``: the server runs without accounts (see :func:`auditor_of`).
    parties: Parties | None
    #: The largest reply the server carries (its ``max_payload``).
    max_reply: Callable[[], int] = lambda: 1024 * 1024
    clock: Clock = system_clock

    def answer(self, question: str, raw: bytes, headers: Mapping[str, str] | None, reply: str = "") -> bytes:
        """The reply to one request: its ``question`` (the subject's last token), body, headers and reply
        subject."""
        try:
            return self._answer(question, raw, headers, reply)
        except Refused as exc:
            log.info("audit question refused", question=question, code=exc.refusal.code, error=exc.refusal.error,
                     field=exc.refusal.field)
            return msgspec.json.encode(exc.refusal)

    def _answer(self, question: str, raw: bytes, headers: Mapping[str, str] | None, reply: str) -> bytes:
        who = auditor_of(headers, reply, self.parties)
        request = decode_request(question, raw)
        asked = describe(question, request)
        reference = str(uuid.uuid4())
        now = self.clock()
        refusal: Refused | None = None
        try:
            with Auditor(self.settings, disclosures=self.disclosures) as auditor:
                answer = QUESTIONS[question].ask(auditor, request)
        except AuditError as exc:
            refusal = Refused("not_answerable", str(exc))
        except Exception as exc:
            log.exception("audit question failed", question=question, asked_by=who, reference=reference)
            if isinstance(exc, PersistenceError | sqlite3.OperationalError | OSError):
                raise Refused("failed", "the stores could not be read just now; ask again", retry=True) from None
            raise Refused("failed", f"the audit service could not answer this question (its log names the error "
                          f"under reference {reference}); asking again gives the same answer") from None
        if refusal is None:
            body = msgspec.json.encode(AuditAnswer(question=question, asked_by=who, disclosure=reference,
                                                   answered_at=now, answer=answer))
            if len(body) > self.max_reply():
                raise Refused("too_large", f"the answer has {len(body)} bytes, more than the {self.max_reply()} the "
                              f"server carries; use `reintegration audit {question}` on the stores")
        self._record(who, asked + (f" -> refused: {refusal.refusal.error}" if refusal else ""), request.case_id,
                     now, reference)
        if refusal is not None:
            raise refusal
        log.info("audit question answered", question=question, asked_by=who, case_id=str(request.case_id),
                 disclosure=reference, bytes=len(body))
        return body

    def _record(self, who: str, what: str, case_id: UUID, now: dt.datetime, reference: str) -> None:
        try:
            self.disclosures.record(kind="query", who=who, what=what, case_id=case_id, legal_basis=AUDIT_BASIS,
                                    disclosed_at=now, reference=reference)
        except Exception as exc:
            log.exception("disclosure not recorded; answer withheld", who=who, error=repr(exc))
            raise Refused("failed", "the disclosure could not be recorded, so nothing is disclosed; ask again",
                          retry=True) from None
