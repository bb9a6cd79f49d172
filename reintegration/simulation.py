"""``reintegration simulate``: reports through the real Case rules in memory, no server, no files.

Each line is a report (an intake contract, JSON) or ``{"party": "employer:0403170701", "report": {...}}``. Every
``incapacity_reported.v1`` line opens a case (a file may hold several, e.g. two incapacities of one worker at one
employer); a report without ``case_id`` belongs to the case the last opening line before it opened. Without
``party`` the report is taken as sent by its case's own health fund, employer or occupational health service,
whichever may send it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.utils import get_topic

from services.intake.application import IntakeApplication
from services.intake.decide import Rejection
from shared.events import reports as r
from shared.events.codec import ContractError, decode_report
from shared.events.common import Party, PartyKind
from shared.events.envelope import CaseEvent
from shared.events.replies import RejectionCode
from shared.infra.store import MsgspecMapper, NullTranscoder


def _party(value: str) -> Party:
    kind, _, party_id = value.partition(":")
    return Party(kind=PartyKind(kind), id=party_id)


def _default_party(report: r.Report, opening: r.IncapacityReported | None) -> Party:
    ids = {
        PartyKind.HEALTH_FUND: opening.health_fund if opening else "",
        PartyKind.EMPLOYER: opening.enterprise_number if opening else "",
        PartyKind.OCCUPATIONAL_HEALTH_SERVICE: opening.occupational_health_service if opening else "",
    }
    if isinstance(report, r.IncapacityReported):
        ids = {PartyKind.HEALTH_FUND: report.health_fund, PartyKind.EMPLOYER: report.enterprise_number}
    if isinstance(report, r.TrajectoryRequested):
        kind = {"employer": PartyKind.EMPLOYER, "advising_physician": PartyKind.HEALTH_FUND}.get(
            report.initiator.value, PartyKind.OCCUPATIONAL_HEALTH_SERVICE
        )
        return Party(kind=kind, id=ids[kind])
    for kind in (PartyKind.HEALTH_FUND, PartyKind.EMPLOYER, PartyKind.OCCUPATIONAL_HEALTH_SERVICE):
        if kind in type(report).reporters and ids.get(kind):
            return Party(kind=kind, id=ids[kind])
    raise ContractError(RejectionCode.NOT_ALLOWED_FOR_PARTY, f"no party of the case may send {r.tag_of(report)}")


#: The code of a line about a case whose opening line was refused (not a wire code: nothing was sent).
CASE_NOT_OPENED = "case_not_opened"


def _refusal(line: int, code: str, message: str, field: str | None = None, rule: str | None = None,
             regime: str | None = None) -> dict[str, Any]:
    """One rejected line, as ``simulate --json`` prints it."""
    return {"line": line, "code": code, "field": field, "rule": rule, "regime": regime, "message": message}


def run_simulation(lines: list[str], today: str | None = None
                   ) -> tuple[list[tuple[UUID, list[CaseEvent]]], list[dict[str, Any]]]:
    """The simulated cases in the order the file opened them, each with its recorded events, and the rejected
    lines (:func:`_refusal`: line number, code, field, rule, regime and message)."""
    now = datetime.combine(date.fromisoformat(today), time(12), tzinfo=UTC) if today else datetime.now(UTC)
    app = IntakeApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.popo",
            "MAPPER_TOPIC": get_topic(MsgspecMapper),
            "TRANSCODER_TOPIC": get_topic(NullTranscoder),
        }
    )
    case_id: UUID | None = None  # the case the last opening line opened
    opening: r.IncapacityReported | None = None
    openings: dict[UUID, r.IncapacityReported] = {}  # every case opened, in order
    refused_opening: dict[str, Any] | None = None
    rejected: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data: Any = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            rejected.append(_refusal(number, RejectionCode.MALFORMED.value, f"not valid JSON: {exc}"))
            continue
        party = None
        if isinstance(data, dict) and "report" in data:
            try:
                party = _party(data["party"]) if data.get("party") else None
            except (ValueError, TypeError, AttributeError):
                rejected.append(_refusal(number, RejectionCode.INVALID_FIELD.value, f"party {data['party']!r}: "
                                         "write <kind>:<id>, e.g. employer:0403170701", "$.party"))
                continue
            data = data["report"]
        opens = isinstance(data, dict) and data.get("type") == "incapacity_reported.v1"
        if opens:
            case_id, opening = None, None  # the lines after it belong to the case it opens
        if isinstance(data, dict) and not opens and "case_id" not in data:
            if case_id is None and refused_opening is not None:
                rejected.append(_refusal(number, CASE_NOT_OPENED, f"the case was not opened: line "
                                         f"{refused_opening['line']} was rejected ({refused_opening['message']})"))
                continue
            if case_id is not None:
                data["case_id"] = str(case_id)
        try:
            report = decode_report(msgspec.json.encode(data))
            own = openings.get(report.case_id, opening) if isinstance(report, r.CaseReport) else opening
            accepted = app.submit(party or _default_party(report, own), report, now)
        except (Rejection, ContractError) as exc:
            rule, regime = (exc.rule, exc.regime) if isinstance(exc, Rejection) else (None, None)
            rejected.append(_refusal(number, exc.code.value, exc.message, exc.field, rule, regime))
            if opens and case_id is None:
                refused_opening = rejected[-1]
            continue
        if isinstance(report, r.IncapacityReported):
            case_id, opening, refused_opening = accepted.case_id, report, None
            openings.setdefault(case_id, report)
    return [(case, app.case_events(case)) for case in openings], rejected
