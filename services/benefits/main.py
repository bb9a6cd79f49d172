"""Composition root of the benefits service: consumer, outbox relay and query subject around the application."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.events.feed import FeedLedgerEntry
from shared.events.subjects import (
    BENEFITS_PREFIX,
    BENEFITS_STREAM,
    BENEFITS_SUBJECTS,
    QUERY_PREFIX,
    employer_feed_subject,
)
from shared.infra.relay import Outgoing
from shared.infra.service import DerivedService, Query, build_derived_service
from shared.infra.settings import Settings
from shared.rulebook.benefits import LedgerEntry

from .application import BenefitsApplication, build_benefits
from .ledger import LedgerRecomputed, LedgerStep

_ENCODER = msgspec.json.Encoder()
QUERY_SUBJECT = f"{QUERY_PREFIX}.benefits"


def render(event: Any) -> list[Outgoing]:
    """Each new ledger entry on its case's subject; the employer's own ones also on its feed, data-minimised."""
    if not isinstance(event, LedgerStep | LedgerRecomputed):
        return []
    out = []
    for entry in event.entries:
        out.append(Outgoing(f"{BENEFITS_PREFIX}.{entry.case_id}.{entry.kind}", _ENCODER.encode(entry), str(entry.id)))
        if entry.concerns_employer:
            feed = feed_entry(event, entry)
            subject = employer_feed_subject(event.enterprise_number, "benefits", entry.case_id)
            out.append(Outgoing(subject, _ENCODER.encode(feed), f"feed:{entry.id}"))
    return out


def feed_entry(step: LedgerStep | LedgerRecomputed, entry: LedgerEntry) -> FeedLedgerEntry:
    return FeedLedgerEntry(
        case_id=entry.case_id,
        enterprise_number=step.enterprise_number,
        insz=step.insz,
        entry_id=entry.id,
        kind=entry.kind,
        beneficiary=entry.beneficiary,
        payer=entry.payer,
        amount=entry.amount,
        period_start=entry.period_start,
        period_end=entry.period_end,
        rule=entry.rule,
        regime=entry.regime,
        legal_basis=entry.legal_basis,
        explanation=entry.explanation,
        reverses=entry.reverses,
    )


def cited_events(entries: Iterable[LedgerEntry], history: Iterable[CaseEvent]) -> dict[str, dict[str, Any]]:
    """The Case events the entries name as their causes, by event id: version, report type and effective date.

    An entry only carries event ids; a reader needs to know which report each one was to follow the explanation.
    Only the type and the date are given, never the report's content (a ledger view carries nothing medical).
    """
    wanted = {event_id for entry in entries for event_id in entry.causing_events}
    return {
        str(event.event_id): {"version": event.version, "type": r.tag_of(event.report),
                              "effective_date": event.report.effective_date.isoformat()}
        for event in history if event.event_id in wanted
    }


def ledger_view(app: BenefitsApplication, query: Query) -> dict[str, Any]:
    ledger = app.ledger(query.case_id, query.version)
    if ledger is None:
        return {"case_id": str(query.case_id), "error": "no ledger for this case (yet)"}
    return {
        "case_id": str(ledger.case_id),
        "version": ledger.version,
        "source_version": ledger.source_version,
        "entries": msgspec.to_builtins(list(ledger.entries)),
        "effective": [str(e.id) for e in ledger.effective],
        "events": cited_events(ledger.entries, ledger.history),
    }


def build_service(settings: Settings) -> DerivedService:
    app = build_benefits(settings)
    return build_derived_service(
        settings,
        app,
        stream=BENEFITS_STREAM,
        subjects=BENEFITS_SUBJECTS,
        render=render,
        query_subject=QUERY_SUBJECT,
        answer=lambda q: ledger_view(app, q),
    )
