"""Composition root of the deadlines service: consumer, outbox relay, timer writer, fired-timer consumer, query."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from faststream.nats import NatsRouter
from nats.js import JetStreamContext

from shared.events.feed import FeedDeadline
from shared.events.subjects import (
    DEADLINES_PREFIX,
    DEADLINES_STREAM,
    DEADLINES_SUBJECTS,
    QUERY_PREFIX,
    employer_feed_subject,
)
from shared.infra.relay import Outgoing
from shared.infra.service import DerivedService, Query, build_derived_service
from shared.infra.settings import Settings
from shared.infra.store import tracking_recorder
from shared.rulebook.deadlines import Deadline

from .application import DeadlinesApplication, build_deadlines
from .schedule import DeadlineSchedule, ScheduleRecomputed, ScheduleStep, TimerFired
from .timers import FiredTimers, TimerWriter, ensure_timer_stream

_ENCODER = msgspec.json.Encoder()
QUERY_SUBJECT = f"{QUERY_PREFIX}.deadlines"


class DeadlineEvent(msgspec.Struct, frozen=True, kw_only=True, tag="deadline_event.v1", tag_field="type"):
    """What the deadlines service publishes per change, on ``reintegration.deadlines.<case_id>.<change>``."""

    case_id: UUID
    change: str
    deadline: Deadline
    #: The Case event that caused the change (none for a fired timer or a recomputation under a new rulebook).
    caused_by: UUID | None
    fired_at: datetime | None = None
    lag_seconds: float | None = None


def _feed(deadline: Deadline, change: str, enterprise: str, insz: str) -> FeedDeadline:
    return FeedDeadline(
        case_id=deadline.case_id, enterprise_number=enterprise, insz=insz, change=change, deadline_id=deadline.id,
        rule=deadline.rule, regime=deadline.regime, legal_basis=deadline.legal_basis, party=deadline.party,
        due_on=deadline.due_on, state=change if change in {"missed", "expired"} else deadline.state,
        explanation=deadline.explanation,
    )


def render(event: Any) -> list[Outgoing]:
    """Each change on its case's subject; the ones that concern the employer also on its feed."""
    if isinstance(event, ScheduleStep):
        items = [(c.change, c.deadline, event.source.event_id, None, None) for c in event.changes]
    elif isinstance(event, ScheduleRecomputed):
        items = [(c.change, c.deadline, None, None, None) for c in event.changes]
    elif isinstance(event, TimerFired):
        items = [(event.outcome, event.deadline, None, event.fired_at, event.lag_seconds)]
    else:
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
            out.append(Outgoing(subject, _ENCODER.encode(_feed(deadline, change, enterprise, insz)), f"feed:{msg_id}"))
    return out


def schedule_view(schedule: DeadlineSchedule) -> dict[str, Any]:
    rows = []
    for deadline in sorted(schedule.deadlines.values(), key=lambda d: (d.due_on, d.rule)):
        fired = schedule.outcomes.get(deadline.id)
        rows.append({
            **msgspec.to_builtins(deadline),
            "outcome": fired.outcome if fired else None,
            "fired_at": fired.fired_at.isoformat() if fired else None,
            "timer_lag_seconds": fired.lag_seconds if fired else None,
            "timer_sequence": fired.timer_sequence if fired else None,
        })
    return {"case_id": str(schedule.case_id), "version": schedule.version,
            "source_version": schedule.source_version, "deadlines": rows}


def answer(app: DeadlinesApplication, query: Query) -> dict[str, Any]:
    schedule = app.schedule(query.case_id, query.version)
    if schedule is None:
        return {"case_id": str(query.case_id), "error": "no deadlines for this case (yet)"}
    return schedule_view(schedule)


def build_service(settings: Settings) -> DerivedService:
    app = build_deadlines(settings)
    fired: list[FiredTimers] = []

    def attach_timers(router: NatsRouter, executor: Executor) -> None:
        consumer = FiredTimers(app, executor)
        consumer.attach(router, inbox_prefix=settings.pull_inbox_prefix)
        fired.append(consumer)

    async def timer_streams(js: JetStreamContext) -> None:
        await ensure_timer_stream(js, settings.stream_replicas)
        for consumer in fired:
            consumer.js = js

    async def timer_job(js: JetStreamContext, stop: asyncio.Event) -> None:
        writer = TimerWriter(recorder=app.recorder, mapper=app.mapper,
                             tracking=tracking_recorder(app, settings, app.name), js=js)
        await writer.run(stop)

    return build_derived_service(
        settings,
        app,
        stream=DEADLINES_STREAM,
        subjects=DEADLINES_SUBJECTS,
        render=render,
        query_subject=QUERY_SUBJECT,
        answer=lambda q: answer(app, q),
        attach=[attach_timers],
        jobs=[timer_job],
        setup=[timer_streams],
    )
