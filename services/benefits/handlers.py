"""The benefits service's edge: the read-only query (the TRAJECTORY consumer is the one every derived service
shares, :mod:`shared.infra.consumer`)."""

from __future__ import annotations

from typing import Any

from shared.events.queries import Query

from .application import BenefitsApplication
from .views import ledger_view


def answer(app: BenefitsApplication, query: Query) -> dict[str, Any]:
    """The query subject's answer: the case's ledger (as it was at ``query.version``), or why there is none."""
    ledger = app.ledger(query.case_id, query.version)
    if ledger is None:
        return {"case_id": str(query.case_id), "error": "no ledger for this case (yet)"}
    return ledger_view(ledger, app.sources(query.case_id, ledger.version))
