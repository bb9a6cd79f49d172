"""The deadlines service's outbox: each recorded step rendered into the messages its relay publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from shared.events.deadlines import DeadlineEvent
from shared.events.feed import FeedDeadline, FeedTrajectory
from shared.events.subjects import DEADLINES_PREFIX, employer_feed_subject
from shared.infra.relay import Outgoing
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.deadlines import Deadline
from shared.rulebook.plan_updates import plan_update

from .schedule import ScheduleRecomputed, ScheduleStep, TimerFired

_ENCODER = msgspec.json.Encoder()
#: One change to publish: (change, deadline, the Case event that caused it, when its timer fired, timer lag).
_Change = tuple[str, Deadline, UUID | None, datetime | None, float | None]


def feed_deadline(deadline: Deadline, change: str, enterprise: str, insz: str,
                  case_version: int | None = None) -> FeedDeadline:
    """What the employer's feed says of a deadline that concerns it: no medical field, no free text."""
    return FeedDeadline(
        case_id=deadline.case_id, enterprise_number=enterprise, insz=insz, change=change, deadline_id=deadline.id,
        rule=deadline.rule, regime=deadline.regime, legal_basis=deadline.legal_basis, party=deadline.party,
        due_on=deadline.due_on, state=change if change in {"missed", "expired"} else deadline.state,
        explanation=deadline.explanation, case_version=case_version,
    )


def _case_version(event: Any) -> int | None:
    """The Case version a recorded step was at."""
    if isinstance(event, ScheduleStep):
        return event.source.version
    if isinstance(event, TimerFired):
        return event.known_version
    if isinstance(event, ScheduleRecomputed):
        return event.source_version
    return None


def changes(event: Any) -> list[_Change]:
    """The deadline changes a recorded event makes: what its messages (and the service's metrics) say."""
    if isinstance(event, ScheduleStep):
        return [(c.change, c.deadline, event.source.event_id, None, None) for c in event.changes]
    if isinstance(event, ScheduleRecomputed):
        return [(c.change, c.deadline, None, None, None) for c in event.changes]
    if isinstance(event, TimerFired):
        return [(event.outcome, event.deadline, None, event.fired_at, event.lag_seconds)]
    return []


def render(event: Any, rulebook: Rulebook | None = None) -> list[Outgoing]:
    """Each change on its case's subject; the ones that concern the employer also on its feed; and after them, the
    plan update of the Case event a step applied, when the step is the employer's to know (``rulebook``: the one the
    service runs with, for the update's words)."""
    items = changes(event)
    update = _plan_update(event, rulebook) if isinstance(event, ScheduleStep) else None
    if not items and update is None:
        return []
    enterprise, insz, origin = event.enterprise_number, event.insz, f"{event.originator_id}:{event.originator_version}"
    out = []
    for index, (change, deadline, caused_by, fired_at, lag) in enumerate(items):
        message = DeadlineEvent(case_id=deadline.case_id, change=change, deadline=deadline, caused_by=caused_by,
                                fired_at=fired_at, lag_seconds=lag)
        msg_id = f"{origin}:{index}"
        out.append(Outgoing(f"{DEADLINES_PREFIX}.{deadline.case_id}.{change}", _ENCODER.encode(message), msg_id))
        if deadline.concerns_employer:
            subject = employer_feed_subject(enterprise, "deadlines", deadline.case_id)
            feed = feed_deadline(deadline, change, enterprise, insz, _case_version(event))
            out.append(Outgoing(subject, _ENCODER.encode(feed), f"feed:{msg_id}"))
    if update is not None:
        out.append(Outgoing(employer_feed_subject(enterprise, "trajectory", update.case_id), _ENCODER.encode(update),
                            f"feed:{origin}:trajectory"))
    return out


def _plan_update(step: ScheduleStep, rulebook: Rulebook | None) -> FeedTrajectory | None:
    """The plan update of the step's Case event, with the plan's due date when the step opened that deadline."""
    due = next((c.deadline.due_on for c in step.changes
                if c.change == "opened" and c.deadline.rule in ("trajectory.plan.temporary",
                                                                 "trajectory.plan.definitive")), None)
    return plan_update(step.source, step.enterprise_number, step.insz, rulebook or default_rulebook(), due)
