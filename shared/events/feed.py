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
    #: The Case version whose step published it (the version applied then, for a fired timer or a recomputation):
    #: the order of the case's messages.
    case_version: int | None = None


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
    #: The Case version whose step published it (the version applied then, for a recomputation).
    case_version: int | None = None


class FeedTrajectory(FeedMessage, frozen=True, tag="feed.trajectory.v1"):
    """A step of the case's re-integration trajectory that the law lets the employer know (a plan update): the
    request and who made it, the assessment's outcome as the form the employer receives states it, the plan and
    the worker's answer, the end; the medical force-majeure procedure; an authorised partial resumption. Built from
    the Case event by :func:`shared.rulebook.plan_updates.plan_update`: codes, dates and the rulebook's words, never a
    report's free text or medical field."""

    #: requested, work_potential_estimated, examination_refused, assessed, appeal_lodged, appeal_decided,
    #: plan_submitted, impossibility_reported, plan_accepted, plan_refused, plan_unanswered, trajectory_ended,
    #: force_majeure_started, force_majeure_decided, partial_resumption_authorised, partial_resumption_ended,
    #: partial_resumption_failed
    step: str
    #: The day it happened (the report's effective date), and the Case version that recorded it: a case's plan
    #: updates are published in this order.
    on: date
    case_version: int
    #: The regime in force on that day, and the rule or instrument that gives the employer this step.
    regime: str
    legal_basis: str
    #: What happened, in the rulebook's words.
    summary: str
    initiator: str | None = None
    decision: str | None = None
    decision_meaning: str | None = None
    #: temporary or definitive (the unfitness a plan answers)
    unfitness: str | None = None
    #: When the employer's plan (or its motivated report that no plan is possible) is due, when an assessment
    #: calls for one.
    plan_due_on: date | None = None
    #: A code: why a trajectory ended, or whether an appeal upheld the assessment (``upheld``/``overturned``).
    outcome: str | None = None
    definitively_unfit: bool | None = None
    valid_until: date | None = None


AnyFeedMessage = Union[FeedDeadline, FeedLedgerEntry, FeedTrajectory]  # noqa: UP007
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


class FeedReply(msgspec.Struct, frozen=True, kw_only=True):
    """The feeds service's answer to a :class:`FeedRequest`: the consumer to pull from, and where."""

    stream: str
    #: ``employer-<enterprise>`` (live) or ``employer-<enterprise>-replay``
    consumer: str
    filter: str
    #: messages the consumer has not delivered yet
    num_pending: int
    #: the JetStream API prefix to pull and acknowledge through (the employer's import of the services' API)
    api_prefix: str
    #: a live consumer reopened with unacknowledged messages starts again after this stream sequence (its
    #: acknowledgement floor): those messages come back at once
    redelivered_after: int | None = None


class FeedRefusal(msgspec.Struct, frozen=True, kw_only=True):
    """A refused :class:`FeedRequest`: why (a field, a filter outside the employer's feed, an option that would be
    ignored)."""

    error: str


class FeedError(RuntimeError):
    """The feeds service refused to open a consumer (its reply is ``{"error": ...}``)."""
