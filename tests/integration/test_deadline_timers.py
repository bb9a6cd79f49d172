"""Deadline timers over a real nats-server: a deadline that expires fires exactly one outcome, one met in time
fires none, and a service that was down when its timer fired records it once after its restart.

Outcomes are checked on the wire too: the messages the DEADLINES stream holds on the case's ``missed`` subject and on
the employer's feed subject are counted, and so are the schedules the TIMERS stream holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
import nats
import nats.js.errors
import pytest

from services.deadlines.application import build_deadlines
from services.deadlines.schedule import TimerFired
from services.deadlines.timers import Timer
from services.intake.application import build_intake
from shared.embedded.natsserver import EmbeddedNatsServer
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import wait_until
from shared.events.subjects import (
    DEADLINES_PREFIX,
    DEADLINES_STREAM,
    TIMER_FIRED_PREFIX,
    TIMER_SCHEDULE_PREFIX,
    TIMERS_STREAM,
    employer_feed_subject,
)
from shared.infra.settings import Settings
from shared.rulebook.deadlines import Deadline
from tests.factories import EMPLOYER, EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, assessment, incapacity, plan, request

# The Belgian day, as intake dates receipts (a run around midnight UTC would otherwise be a day off).
TODAY = datetime.now(ZoneInfo("Europe/Brussels")).date()


T = TypeVar("T")


@pytest.fixture
def system(nats_server: EmbeddedNatsServer, tmp_path: Path) -> Iterator[tuple[Settings, Supervisor]]:
    """The relay and the deadlines service as processes; a test may kill and restart ``deadlines``."""
    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    with Supervisor() as supervisor:
        for name, args in (("relay", ["relay"]), ("deadlines", ["serve", "deadlines"])):
            supervisor.add(Child(name, python_module("reintegration", *args), env=settings.to_env(),
                                 log_path=tmp_path / "logs" / f"{name}.log"))
        supervisor.start_all()
        yield settings, supervisor


def wait_for(check: Callable[[], T | None], *, what: str, ready: Callable[[T], object] = bool) -> T:
    """``check()``'s answer once it is there and ``ready`` (by default: truthy), asked every 0.1 s for 30 s."""
    answer = wait_until(check, timeout=30, interval=0.1, what=what,
                        ready=lambda found: found is not None and ready(found))
    assert answer is not None
    return answer


def outcomes(settings: Settings, case_id: UUID) -> dict[str, tuple[str, TimerFired | None]]:
    app = build_deadlines(settings)
    try:
        schedule = app.schedule(case_id)
        return {} if schedule is None else {d.rule: (d.state, schedule.outcomes.get(d.id)) for d in
                                            schedule.deadlines.values()}
    finally:
        app.close()


def assessment_rule(settings: Settings, case_id: UUID) -> tuple[str, TimerFired | None] | None:
    return next((v for k, v in outcomes(settings, case_id).items() if "assessment" in k), None)


def fired_assessment(settings: Settings, case_id: UUID) -> tuple[str, TimerFired] | None:
    """The state of the case's assessment deadline and the outcome its timer recorded, once it has fired."""
    found = assessment_rule(settings, case_id)
    return None if found is None or found[1] is None else (found[0], found[1])


def test_expired_deadline_fires_one_missed_and_a_met_one_none(system: tuple[Settings, Supervisor]) -> None:
    settings, _ = system
    intake = build_intake(settings)
    # Expired: a request received 60 days ago, never assessed (BE-2022: 49 days).
    late = intake.submit(FUND_PARTY, incapacity(TODAY - timedelta(days=200)), datetime.now(UTC)).case_id
    intake.submit(EMPLOYER_PARTY, request(late, TODAY - timedelta(days=60)), datetime.now(UTC))
    # Met: assessed 10 days after the request.
    met = intake.submit(FUND_PARTY, incapacity(TODAY - timedelta(days=201), insz="74091512374"),
                        datetime.now(UTC)).case_id
    intake.submit(EMPLOYER_PARTY, request(met, TODAY - timedelta(days=60)), datetime.now(UTC))
    intake.submit(OHS_PARTY, assessment(met, TODAY - timedelta(days=50), "BE-2022", "A"), datetime.now(UTC))
    intake.close()
    state, fired = wait_for(lambda: fired_assessment(settings, late), what="the late case's assessment timer fired")
    assert state == "open" and fired.outcome == "missed"
    time.sleep(2)  # let any second firing arrive: there must be none
    state, fired_again = assessment_rule(settings, late) or ("", None)
    assert fired_again == fired
    _met_state, met_fired = wait_for(lambda: assessment_rule(settings, met), ready=lambda rule: rule[0] == "met",
                                     what="the other case's assessment met")
    assert met_fired is None


async def _schedule_now(url: str, timer: Timer) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    when = datetime.now(UTC) + timedelta(seconds=1)
    await js.publish(
        f"{TIMER_SCHEDULE_PREFIX}.{timer.deadline_id}",
        msgspec.json.encode(msgspec.structs.replace(timer, fires_at=when)),
        headers={"Nats-Schedule": f"@at {when.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                 "Nats-Schedule-Target": f"{TIMER_FIRED_PREFIX}.{timer.deadline_id}"},
    )
    await nc.close()


async def _timer_for(url: str, deadline_id: UUID) -> Timer:
    nc = await nats.connect(url)
    msg = await nc.jetstream().get_last_msg(TIMERS_STREAM, f"{TIMER_SCHEDULE_PREFIX}.{deadline_id}")
    await nc.close()
    return msgspec.json.decode(msg.data or b"", type=Timer)


def test_service_down_when_the_timer_fires_records_it_once_after_restart(system: tuple[Settings, Supervisor]) -> None:
    """Also on the wire: exactly one message on the case's ``missed`` subject, however often the service restarts."""
    settings, supervisor = system
    intake = build_intake(settings)
    case = intake.submit(FUND_PARTY, incapacity(TODAY - timedelta(days=100)), datetime.now(UTC)).case_id
    intake.submit(EMPLOYER_PARTY, request(case, TODAY - timedelta(days=2)), datetime.now(UTC))  # due in 47 days
    intake.close()

    def open_assessment() -> Deadline | None:
        app = build_deadlines(settings)
        try:
            schedule = app.schedule(case)
            if schedule is None:
                return None
            return next((d for d in schedule.deadlines.values() if "assessment" in d.rule), None)
        finally:
            app.close()

    deadline = wait_for(open_assessment, what="the assessment deadline")
    timer = wait_for(lambda: _try(lambda: asyncio.run(_timer_for(settings.nats_url, deadline.id))),
                     what="the assessment's timer scheduled")
    assert timer.due_on == deadline.due_on
    supervisor.kill("deadlines")
    # The clock moves past the deadline while the service is down: the server fires the same timer.
    asyncio.run(_schedule_now(settings.nats_url, timer))
    time.sleep(2)
    supervisor.start("deadlines")
    _state, fired = wait_for(lambda: fired_assessment(settings, case), what="the fired timer recorded after a restart")
    assert fired.outcome == "missed"
    # The record names the timer that fired, when the server fired it, and when the service (down for 2 s and
    # more) recorded it.
    assert fired.scheduled_for is not None and fired.timer_sequence is not None
    assert (fired.timestamp - fired.fired_at).total_seconds() >= 1
    supervisor.kill("deadlines")
    supervisor.start("deadlines")
    time.sleep(3)
    app = build_deadlines(settings)
    recorded = [e for e in app.events.get(app.derived_id(case)) if isinstance(e, TimerFired)]
    app.close()
    assert [e.outcome for e in recorded if e.deadline.id == deadline.id] == ["missed"]  # once, after restarts
    missed = published(settings, f"{DEADLINES_PREFIX}.{case}.missed")
    assert [m["change"] for m in missed if m["deadline"]["id"] == str(deadline.id)] == ["missed"]
    assert_one_message_per_recorded_outcome(missed, recorded, "missed")
    # the assessment does not concern the employer: nothing about it on the employer's feed
    feed = published(settings, employer_feed_subject(EMPLOYER, "deadlines", case))
    assert not [m for m in feed if m["deadline_id"] == str(deadline.id)]


def _try(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


# --- on the wire: the DEADLINES stream's messages and the TIMERS stream's schedules ---------------------------


async def _published(url: str, stream: str, subject: str) -> list[dict[str, Any]]:
    """Every message ``stream`` holds on ``subject``, in stream order, decoded."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    out: list[dict[str, Any]] = []
    seq = 1
    try:
        while True:
            try:
                msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return out
            out.append(msgspec.json.decode(msg.data or b""))
            seq = (msg.seq or seq) + 1
    finally:
        await nc.close()


def published(settings: Settings, subject: str) -> list[dict[str, Any]]:
    return asyncio.run(_published(settings.nats_url, DEADLINES_STREAM, subject))


async def _schedules(url: str, deadline_id: UUID) -> tuple[int, bool]:
    """How many messages TIMERS holds on the deadline's schedule subject (stream state), and whether
    get_last_msg finds one."""
    subject = f"{TIMER_SCHEDULE_PREFIX}.{deadline_id}"
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        info = await js.stream_info(TIMERS_STREAM, subjects_filter=subject)
        held = sum((info.state.subjects or {}).values())
        try:
            await js.get_last_msg(TIMERS_STREAM, subject)
            found = True
        except nats.js.errors.NotFoundError:
            found = False
        return held, found
    finally:
        await nc.close()


def schedules(settings: Settings, deadline_id: UUID) -> tuple[int, bool]:
    return asyncio.run(_schedules(settings.nats_url, deadline_id))


def recorded_fired(settings: Settings, case_id: UUID) -> list[TimerFired]:
    app = build_deadlines(settings)
    try:
        return [e for e in app.events.get(app.derived_id(case_id)) if isinstance(e, TimerFired)]
    finally:
        app.close()


def rule_deadline(settings: Settings, case_id: UUID, rule: str) -> tuple[Deadline, TimerFired | None] | None:
    """The case's deadline of ``rule`` and its recorded outcome (None while the timer has not fired)."""
    app = build_deadlines(settings)
    try:
        schedule = app.schedule(case_id)
        if schedule is None:
            return None
        found = next((d for d in schedule.deadlines.values() if d.rule == rule), None)
        return None if found is None else (found, schedule.outcomes.get(found.id))
    finally:
        app.close()


def fired_rule(settings: Settings, case_id: UUID, rule: str) -> tuple[Deadline, TimerFired] | None:
    """The case's deadline of ``rule`` and the outcome its timer recorded, once it has fired."""
    found = rule_deadline(settings, case_id, rule)
    return None if found is None or found[1] is None else (found[0], found[1])


def assert_one_message_per_recorded_outcome(messages: list[dict[str, Any]], fired: list[TimerFired],
                                            outcome: str) -> None:
    """The case's ``<outcome>`` subject holds one message per recorded outcome: same deadlines, none twice."""
    ids = [m["deadline"]["id"] for m in messages]
    assert len(ids) == len(set(ids)), f"an outcome was published twice: {ids}"
    assert sorted(ids) == sorted(str(e.deadline.id) for e in fired if e.outcome == outcome)
    assert {m["change"] for m in messages} <= {outcome}


def settled(read: Callable[[], T], pause: float = 3.0, patience: float = 60.0) -> T:
    """``read()`` once it is non-empty and unchanged over ``pause`` seconds (a second firing would show); a result
    still changing after ``patience`` seconds fails the test."""
    wait_for(read, what="a first reading")
    readings: list[T] = []

    def reading() -> T:
        readings.append(read())
        return readings[-1]

    return wait_until(reading, timeout=patience, interval=pause, what=f"the same reading {pause:g} s apart",
                      ready=lambda now: len(readings) >= 2 and readings[-2] == now)


def test_an_expired_plan_publishes_one_missed_message_and_one_on_the_employer_feed(
    system: tuple[Settings, Supervisor],
) -> None:
    settings, _ = system
    intake = build_intake(settings)
    case = intake.submit(FUND_PARTY, incapacity(TODAY - timedelta(days=300)), datetime.now(UTC)).case_id
    intake.submit(EMPLOYER_PARTY, request(case, TODAY - timedelta(days=120)), datetime.now(UTC))
    # Decision A: a plan for a temporary unfitness is due 63 calendar days later, 37 days ago, and never comes.
    intake.submit(OHS_PARTY, assessment(case, TODAY - timedelta(days=100), "BE-2022", "A"), datetime.now(UTC))
    intake.close()
    plan_deadline, fired = wait_for(lambda: fired_rule(settings, case, "trajectory.plan.temporary"),
                                    what="the plan's timer fired")
    assert fired.outcome == "missed" and plan_deadline.concerns_employer
    assert plan_deadline.due_on == TODAY - timedelta(days=37)
    plan_id = str(plan_deadline.id)
    missed_subject = f"{DEADLINES_PREFIX}.{case}.missed"
    feed_subject = employer_feed_subject(EMPLOYER, "deadlines", case)

    # wait until the plan's outcome is out on both subjects, then until nothing more arrives
    wait_for(lambda: any(m["deadline"]["id"] == plan_id for m in published(settings, missed_subject)),
             what="the plan's missed message")
    wait_for(lambda: any(m["deadline_id"] == plan_id and m["change"] == "missed"
                         for m in published(settings, feed_subject)), what="the plan's missed message on the feed")
    missed = settled(lambda: published(settings, missed_subject))
    feed = settled(lambda: published(settings, feed_subject))

    plan_missed = [m for m in missed if m["deadline"]["id"] == plan_id]
    assert len(plan_missed) == 1
    assert plan_missed[0]["case_id"] == str(case) and plan_missed[0]["caused_by"] is None
    assert plan_missed[0]["deadline"]["rule"] == "trajectory.plan.temporary"
    plan_feed_missed = [m for m in feed if m["deadline_id"] == plan_id and m["change"] == "missed"]
    assert len(plan_feed_missed) == 1
    assert (plan_feed_missed[0]["state"], plan_feed_missed[0]["enterprise_number"]) == ("missed", EMPLOYER)
    # every missed message of the case stands for one recorded outcome, none twice; on the feed only the ones that
    # concern the employer
    fired_events = recorded_fired(settings, case)
    assert [e.outcome for e in fired_events if str(e.deadline.id) == plan_id] == ["missed"]
    assert_one_message_per_recorded_outcome(missed, fired_events, "missed")
    feed_missed = [m["deadline_id"] for m in feed if m["change"] == "missed"]
    assert sorted(feed_missed) == sorted(
        str(e.deadline.id) for e in fired_events if e.outcome == "missed" and e.deadline.concerns_employer)


def test_a_future_deadline_met_in_time_loses_its_timer_and_is_never_missed(
    system: tuple[Settings, Supervisor],
) -> None:
    settings, _ = system
    intake = build_intake(settings)
    # Recent dates, so that every deadline of the case lies in the future (the 4-week contact too).
    case = intake.submit(FUND_PARTY, incapacity(TODAY - timedelta(days=20)), datetime.now(UTC)).case_id
    intake.submit(EMPLOYER_PARTY, request(case, TODAY - timedelta(days=10), worker_consent=True), datetime.now(UTC))

    # The assessment is due in 39 days (49 from the request): its timer is armed in the future.
    assessment_deadline, _ = wait_for(lambda: rule_deadline(settings, case, "trajectory.assessment"),
                                      what="the assessment deadline")
    assert assessment_deadline.due_on == TODAY + timedelta(days=39) and assessment_deadline.state == "open"
    timer = wait_for(lambda: _try(lambda: asyncio.run(_timer_for(settings.nats_url, assessment_deadline.id))),
                     what="the assessment's timer scheduled")
    assert timer.due_on == assessment_deadline.due_on and timer.fires_at > datetime.now(UTC)
    assert schedules(settings, assessment_deadline.id) == (1, True)

    # Met: the assessment (A) arrives; it starts the employer's plan, due in 60 days, armed in the future too.
    intake.submit(OHS_PARTY, assessment(case, TODAY - timedelta(days=3), "BE-2022", "A"), datetime.now(UTC))
    plan_deadline, _ = wait_for(lambda: rule_deadline(settings, case, "trajectory.plan.temporary"),
                                what="the plan deadline")
    assert plan_deadline.due_on == TODAY + timedelta(days=60) and plan_deadline.concerns_employer
    wait_for(lambda: schedules(settings, plan_deadline.id) == (1, True), what="the plan's timer scheduled")
    wait_for(lambda: schedules(settings, assessment_deadline.id) == (0, False),
             what="the met assessment's timer removed")

    # Met: the plan arrives.
    intake.submit(EMPLOYER_PARTY, plan(case, TODAY), datetime.now(UTC))
    intake.close()
    wait_for(lambda: rule_deadline(settings, case, "trajectory.plan.temporary"),
             ready=lambda found: found[0].state == "met", what="the plan met")
    wait_for(lambda: schedules(settings, plan_deadline.id) == (0, False), what="the met plan's timer removed")
    assert schedules(settings, assessment_deadline.id) == (0, False)

    # A stale firing of the met assessment's timer (as the server would deliver it) records and publishes nothing.
    asyncio.run(_fire_now(settings.nats_url, timer))
    wait_for(lambda: asyncio.run(_fired_held(settings.nats_url, assessment_deadline.id)) == 0,
             what="the stale firing handled")
    time.sleep(2)
    for deadline in (assessment_deadline, plan_deadline):
        found = rule_deadline(settings, case, deadline.rule)
        assert found is not None
        state, outcome = found
        assert (state.state, outcome) == ("met", None)
        assert schedules(settings, deadline.id) == (0, False)
    assert recorded_fired(settings, case) == []
    assert published(settings, f"{DEADLINES_PREFIX}.{case}.missed") == []
    feed = published(settings, employer_feed_subject(EMPLOYER, "deadlines", case))
    assert [m["change"] for m in feed if m["deadline_id"] == str(plan_deadline.id)] == ["opened", "met"]
    assert not [m for m in feed if m["change"] in ("missed", "expired")]


async def _fire_now(url: str, timer: Timer) -> None:
    """Deliver ``timer`` on its fired subject at once, as the server does when a schedule falls due."""
    nc = await nats.connect(url)
    await nc.jetstream().publish(f"{TIMER_FIRED_PREFIX}.{timer.deadline_id}", msgspec.json.encode(timer))
    await nc.close()


async def _fired_held(url: str, deadline_id: UUID) -> int:
    """How many fired timers of the deadline TIMERS still holds (handled ones are deleted)."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(TIMERS_STREAM, subjects_filter=f"{TIMER_FIRED_PREFIX}.{deadline_id}")
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()
