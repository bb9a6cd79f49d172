"""What the deadlines service publishes: one :class:`DeadlineEvent` per change of a case's deadlines."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from shared.rulebook.deadlines import Deadline


class DeadlineEvent(msgspec.Struct, frozen=True, kw_only=True, tag="deadline_event.v1", tag_field="type"):
    """What the deadlines service publishes per change, on ``reintegration.deadlines.<case_id>.<change>``."""

    case_id: UUID
    change: str
    deadline: Deadline
    #: The Case event that caused the change (none for a fired timer or a recomputation under a new rulebook).
    caused_by: UUID | None
    fired_at: datetime | None = None
    lag_seconds: float | None = None
