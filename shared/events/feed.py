"""What an employer receives about its own workers: no medical field and no free text, by construction; and how
it asks the feeds service for a consumer on its own feed (:class:`FeedRequest`).

Feed messages are built from derived facts (deadlines, ledger entries), never by copying a report; their types
hold no :data:`~shared.events.common.Medical` or :data:`~shared.events.common.FreeText` field, which a test checks
for every feed message type here.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, Union
from uuid import UUID

import msgspec


class FeedMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    case_id: UUID
    enterprise_number: str
    #: The worker's national number: the employer's own worker, needed to match its records.
    insz: str


class FeedDeadline(FeedMessage, frozen=True, tag="feed.deadline.v1"):
    """A deadline that concerns the employer: opened, met, missed, cancelled or recomputed."""

    change: str
    deadline_id: UUID
    rule: str
    regime: str
    legal_basis: str
    party: str
    due_on: date
    state: str
    explanation: str


class FeedLedgerEntry(FeedMessage, frozen=True, tag="feed.benefit.v1"):
    """A premium, contribution, exemption or fine that concerns the employer (never the worker's benefit)."""

    entry_id: UUID
    kind: str
    beneficiary: str
    payer: str
    amount: Decimal | None
    period_start: date
    period_end: date | None
    rule: str
    regime: str | None
    legal_basis: str
    explanation: str
    reverses: UUID | None = None


AnyFeedMessage = Union[FeedDeadline, FeedLedgerEntry]  # noqa: UP007
FEED_TYPES: tuple[type[FeedMessage], ...] = AnyFeedMessage.__args__  # type: ignore[attr-defined]


class FeedRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``reintegration.feed.<enterprise>``: open a pull consumer on the employer's own feed in one stream."""

    stream: str
    #: ``live``: the durable consumer ``employer-<enterprise>`` (kept; it resumes where it stopped) or ``replay``:
    #: ``employer-<enterprise>-replay``, replaced at every request, removed after 10 idle minutes.
    consumer: Literal["live", "replay"] = "replay"
    #: Deliver from this time on (RFC 3339 with an offset); otherwise everything (``all``) or only new messages.
    start_time: datetime | None = None
    #: Deliver from this stream sequence on (what a follower that recorded the last one it handled asks for);
    #: not with ``start_time``.
    start_sequence: Annotated[int, msgspec.Meta(ge=1)] | None = None
    deliver: Literal["all", "new"] = "all"
    #: A narrower filter inside ``reintegration.employer.<enterprise>.>`` (e.g. one case's deadlines).
    filter: str | None = None
    #: ``live`` only: delete and recreate the durable consumer (start over).
    reset: bool = False


class FeedError(RuntimeError):
    """The feeds service refused to open a consumer (its reply is ``{"error": ...}``)."""
