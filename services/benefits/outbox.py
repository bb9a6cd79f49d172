"""The benefits service's outbox: each recorded step rendered into the messages its relay publishes."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.events.feed import FeedLedgerEntry
from shared.events.subjects import BENEFITS_PREFIX, employer_feed_subject
from shared.infra.relay import Outgoing
from shared.rulebook.benefits import LedgerEntry

from .ledger import LedgerRecomputed, LedgerStep

_ENCODER = msgspec.json.Encoder()


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
    """What the employer's feed says of an entry that concerns it: no medical field, no free text."""
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
        case_version=step.source.version if isinstance(step, LedgerStep) else step.source_version,
    )
