"""The read-only questions a derived service answers on ``reintegration.query.<service>`` (request-reply)."""

from __future__ import annotations

from uuid import UUID

import msgspec


class Query(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A read-only question about one case; ``version`` asks for the derived state as it was then."""

    case_id: UUID
    version: int | None = None
