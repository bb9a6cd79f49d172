"""Deadline timers over a real nats-server: a deadline that expires fires exactly one outcome, one met in time
fires none, and a service that was down when its timer fired records it once after its restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec
import nats
import pytest

from services.deadlines.application import build_deadlines
from services.deadlines.schedule import TimerFired
from services.deadlines.timers import Timer
from services.intake.application import build_intake
from shared.events.subjects import TIMER_FIRED_PREFIX, TIMER_SCHEDULE_PREFIX, TIMERS_STREAM
from shared.infra.natsserver import EmbeddedNatsServer
from shared.infra.settings import Settings
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, assessment, incapacity, request

TODAY = datetime.now(UTC).date()


def start(kind: list[str], settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.to_env()}
    return subprocess.Popen([sys.executable, "-m", "reintegration", *kind], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def system(nats_server: EmbeddedNatsServer, tmp_path: Path) -> Iterator[tuple[Settings, dict[str, subprocess.Popen[bytes]]]]:
    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    procs = {"relay": start(["relay"], settings), "deadlines": start(["serve", "deadlines"], settings)}
    try:
        yield settings, procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=15)


def wait_for(check, timeout: float = 30):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def outcomes(settings: Settings, case_id) -> dict:  # noqa: ANN001
    app = build_deadlines(settings)
    try:
        schedule = app.schedule(case_id)
        return {} if schedule is None else {d.rule: (d.state, schedule.outcomes.get(d.id)) for d in
                                            schedule.deadlines.values()}
    finally:
        app.close()


def assessment_rule(settings: Settings, case_id) -> tuple:  # noqa: ANN001
    return next((v for k, v in outcomes(settings, case_id).items() if "assessment" in k), None)


def test_expired_deadline_fires_one_missed_and_a_met_one_none(system) -> None:  # noqa: ANN001
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
    state, fired = wait_for(lambda: (r := assessment_rule(settings, late)) and r[1] and r)
    assert state == "open" and fired.outcome == "missed"
    time.sleep(2)  # let any second firing arrive: there must be none
    state, fired_again = assessment_rule(settings, late)
    assert fired_again == fired
    met_state, met_fired = wait_for(lambda: (r := assessment_rule(settings, met)) and r[0] == "met" and r)
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


async def _timer_for(url: str, deadline_id) -> Timer:  # noqa: ANN001
    nc = await nats.connect(url)
    msg = await nc.jetstream().get_last_msg(TIMERS_STREAM, f"{TIMER_SCHEDULE_PREFIX}.{deadline_id}")
    await nc.close()
    return msgspec.json.decode(msg.data, type=Timer)


def test_service_down_when_the_timer_fires_records_it_once_after_restart(system) -> None:  # noqa: ANN001
    settings, procs = system
    intake = build_intake(settings)
    case = intake.submit(FUND_PARTY, incapacity(TODAY - timedelta(days=100)), datetime.now(UTC)).case_id
    intake.submit(EMPLOYER_PARTY, request(case, TODAY - timedelta(days=2)), datetime.now(UTC))  # due in 47 days
    intake.close()

    def open_assessment():  # noqa: ANN202
        app = build_deadlines(settings)
        try:
            schedule = app.schedule(case)
            return schedule and next((d for d in schedule.deadlines.values() if "assessment" in d.rule), None)
        finally:
            app.close()

    deadline = wait_for(open_assessment)
    timer = wait_for(lambda: _try(lambda: asyncio.run(_timer_for(settings.nats_url, deadline.id))))
    assert timer.due_on == deadline.due_on
    procs["deadlines"].send_signal(signal.SIGKILL)
    procs["deadlines"].wait()
    # The clock moves past the deadline while the service is down: the server fires the same timer.
    asyncio.run(_schedule_now(settings.nats_url, timer))
    time.sleep(2)
    procs["deadlines"] = start(["serve", "deadlines"], settings)
    state, fired = wait_for(lambda: (r := assessment_rule(settings, case)) and r[1] and r)
    assert fired.outcome == "missed" and fired.lag_seconds >= 1
    procs["deadlines"].send_signal(signal.SIGKILL)
    procs["deadlines"].wait()
    procs["deadlines"] = start(["serve", "deadlines"], settings)
    time.sleep(3)
    app = build_deadlines(settings)
    recorded = [e for e in app.events.get(app.derived_id(case)) if isinstance(e, TimerFired)]
    app.close()
    assert [e.outcome for e in recorded if e.deadline.id == deadline.id] == ["missed"]  # once, after restarts


def _try(fn):  # noqa: ANN001, ANN202
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None
