"""The timer writer over a real nats-server: a timer still to fire is purged when its deadline no longer wants it;
one whose time has come is not asked for (a one-shot schedule leaves the stream when it fires)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import msgspec
import nats

from services.deadlines.schedule import DeadlineChange, ScheduleStep, TimerFired
from services.deadlines.timers import TimerWriter
from shared.embedded.natsserver import EmbeddedNatsServer
from shared.events.subjects import TIMER_FIRED_PREFIX, TIMER_SCHEDULE_PREFIX, TIMERS_STREAM
from shared.infra.streams import ensure_timer_stream
from shared.rulebook import default_rulebook
from shared.rulebook.deadlines import Deadline, compute_deadlines
from tests.integration.test_derived_property import history

NOW = datetime.now(UTC)


def _a_deadline() -> tuple[object, Deadline]:
    for seed in range(100):
        events = history(seed)
        found = compute_deadlines(events, default_rulebook())
        if found:
            return events[0], found[0]
    raise AssertionError("no generated case has a deadline")


def _step(source: object, version: int, *changes: tuple[str, Deadline]) -> ScheduleStep:
    deadline = changes[0][1]
    return ScheduleStep(
        originator_id=uuid.uuid5(deadline.case_id, "deadlines"), originator_version=version, timestamp=NOW,
        source=source, position=version, enterprise_number="0403170701", insz="85073003328",  # type: ignore[arg-type]
        changes=[DeadlineChange(change=change, deadline=d) for change, d in changes],
    )


def _fired(deadline: Deadline, version: int) -> TimerFired:
    return TimerFired(
        originator_id=uuid.uuid5(deadline.case_id, "deadlines"), originator_version=version, timestamp=NOW,
        deadline=deadline, outcome="missed", fired_at=NOW, lag_seconds=0.0, known_version=1,
        enterprise_number="0403170701", insz="85073003328",
    )


async def _schedules(js: nats.js.JetStreamContext) -> dict[str, int]:
    info = await js.stream_info(TIMERS_STREAM, subjects_filter=">")
    return dict(info.state.subjects or {})


def test_only_a_timer_still_to_fire_is_purged(nats_server: EmbeddedNatsServer) -> None:
    source, template = _a_deadline()
    future = msgspec.structs.replace(template, id=uuid.uuid4(), state="open", due_on=NOW.date() + timedelta(days=30))
    past = msgspec.structs.replace(template, id=uuid.uuid4(), state="open", due_on=date(2024, 1, 10))
    decided = msgspec.structs.replace(template, id=uuid.uuid4(), state="open", due_on=date(2024, 2, 10))

    async def scenario() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_timer_stream(js)
        writer = TimerWriter(recorder=None, mapper=None, tracking=None, js=js)  # type: ignore[arg-type]
        try:
            await writer.apply_all([_step(source, 1, ("opened", future), ("opened", past), ("opened", decided))])
            assert writer.written == 3

            async def fired() -> dict[str, int]:
                for _ in range(100):  # the two past timers fire at once; their schedules leave the stream
                    held = await _schedules(js)
                    if f"{TIMER_SCHEDULE_PREFIX}.{past.id}" not in held and \
                            f"{TIMER_SCHEDULE_PREFIX}.{decided.id}" not in held:
                        return held
                    await asyncio.sleep(0.05)
                raise AssertionError(f"the past timers did not fire: {held}")

            held = await fired()
            assert held == {f"{TIMER_SCHEDULE_PREFIX}.{future.id}": 1, f"{TIMER_FIRED_PREFIX}.{past.id}": 1,
                            f"{TIMER_FIRED_PREFIX}.{decided.id}": 1}
            # the future deadline met, the past one met late, the other's outcome recorded
            await writer.apply_all([
                _step(source, 2, ("met", msgspec.structs.replace(future, state="met")),
                      ("met", msgspec.structs.replace(past, state="met"))),
                _fired(decided, 3),
            ])
            assert (writer.purged, writer.fired_already) == (1, 2)
            assert await _schedules(js) == {f"{TIMER_FIRED_PREFIX}.{past.id}": 1,
                                            f"{TIMER_FIRED_PREFIX}.{decided.id}": 1}
        finally:
            await nc.close()

    asyncio.run(scenario())
