"""Who was told what about one case: the disclosure log's records of that case, as an auditor reads them.

Every delivery of the case to an employer's feed and every auditor's question about it leaves one record (who,
what, the legal basis, when); this lists them in the order they were written. The records hold ids, subjects,
message types and dates, never anything medical.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from services.disclosures.log import DisclosureLog


class Disclosure(msgspec.Struct, frozen=True, kw_only=True):
    #: ``delivery`` (to an employer's feed) or ``query`` (an auditor's question)
    kind: str
    #: the party told: ``employer:<enterprise number>`` or ``auditor:<name>``
    who: str
    #: the message type and subject delivered, or the question and its ids and dates
    what: str
    legal_basis: str
    disclosed_at: datetime
    #: the delivered message's id, or the answered question's disclosure reference
    reference: str


class Disclosures(msgspec.Struct, frozen=True, kw_only=True):
    case_id: str
    #: every record of the case, oldest first (this question's own record is written after it is answered)
    records: list[Disclosure]


def disclosures(log: DisclosureLog, case_id: UUID) -> Disclosures:
    return Disclosures(case_id=str(case_id), records=[
        Disclosure(kind=r.kind, who=r.who, what=r.what, legal_basis=r.legal_basis, disclosed_at=r.disclosed_at,
                   reference=r.reference)
        for r in log.records(case_id=case_id)])
