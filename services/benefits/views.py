"""What the benefits service shows of a case: its query answer, ``reintegration benefits <case>`` and
``reintegration simulate``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.rulebook.benefits import LedgerEntry

from .ledger import BenefitLedger


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


def ledger_view(ledger: BenefitLedger, history: Iterable[CaseEvent]) -> dict[str, Any]:
    """The case's ledger: every entry, those in force, and the Case events (of its ``history``) they cite."""
    return {
        "case_id": str(ledger.case_id),
        "version": ledger.version,
        "source_version": ledger.source_version,
        "entries": msgspec.to_builtins(list(ledger.entries)),
        "effective": [str(e.id) for e in ledger.effective],
        "events": cited_events(ledger.entries, history),
    }
