"""The outbox relay as a real process, killed with SIGKILL in the middle of thousands of events."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import nats
import pytest
from nats.js.api import DeliverPolicy

from lab.generator import insz
from services.intake.application import IntakeApplication, build_intake
from shared.embedded.natsserver import EmbeddedNatsServer
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import until, wait_until
from shared.events import reports as r
from shared.events.envelope import CASE_EVENT_DECODER, CaseEvent
from shared.events.subjects import POSITION_HEADER, TRAJECTORY_STREAM, TRAJECTORY_SUBJECTS
from shared.infra.relay import Outgoing
from shared.infra.settings import Settings
from shared.infra.streams import ensure_stream
from tests.factories import FUND_PARTY, NOW, incapacity, rid


def write_cases(app: IntakeApplication, first: int, count: int) -> None:
    rng = random.Random(first)
    for n in range(first, first + count):
        start = date(2023, 1, 2) + timedelta(days=n % 900)
        opened = app.submit(FUND_PARTY, incapacity(start, insz=insz(rng), report_id=rid()), NOW)
        back = r.IncapacityInterrupted(report_id=rid(), case_id=opened.case_id, returned_on=start + timedelta(days=20))
        app.submit(FUND_PARTY, back, NOW)


async def stream_messages(url: str) -> list[tuple[int, int, str]]:
    """(stream sequence, store position, event id) of every message, in stream order."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    total = (await js.stream_info(TRAJECTORY_STREAM)).state.messages
    sub = await js.pull_subscribe(TRAJECTORY_SUBJECTS, stream=TRAJECTORY_STREAM,
                                  config=nats.js.api.ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    out: list[tuple[int, int, str]] = []
    while len(out) < total:
        for msg in await sub.fetch(500, timeout=5):
            event = CASE_EVENT_DECODER.decode(msg.data)
            headers = msg.headers or {}
            out.append((msg.metadata.sequence.stream, int(headers[POSITION_HEADER]), str(event.event_id)))
            await msg.ack()
    await nc.close()
    return out


def stored_event_ids(app: IntakeApplication) -> list[str]:
    """The event id of every stored event, in store order."""
    ids = []
    for notification in app.recorder.select_notifications(1, 10_000):
        event = app.mapper.to_domain_event(notification)
        assert isinstance(event, CaseEvent)
        ids.append(str(event.event_id))
    return ids


def at_least(count: int) -> Callable[[int], bool]:
    return lambda messages: messages >= count


async def stream_count(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(TRAJECTORY_STREAM)).state.messages
    finally:
        await nc.close()


async def make_stream(url: str) -> None:
    nc = await nats.connect(url)
    await ensure_stream(nc.jetstream(), TRAJECTORY_STREAM, [TRAJECTORY_SUBJECTS])
    await nc.close()


def test_relay_killed_mid_stream_publishes_every_event_once_in_order(
    nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    asyncio.run(make_stream(nats_server.url))
    app = build_intake(settings)
    write_cases(app, 0, 1500)  # 3,000 events waiting before the relay first starts
    writer = threading.Thread(target=write_cases, args=(app, 1500, 1000))  # 2,000 more while it runs
    supervisor = Supervisor(stop_timeout=10)
    supervisor.add(Child("relay", python_module("reintegration", "relay"), env=settings.to_env(),
                         log_path=tmp_path / "logs" / "relay.log"))

    def published() -> int:
        supervisor.check_alive()
        return asyncio.run(stream_count(nats_server.url))

    kills = 0
    with supervisor:
        supervisor.start("relay")
        writer.start()
        for threshold in (400, 1500, 2600, 3700):
            wait_until(published, timeout=60, interval=0.01, ready=at_least(threshold),
                       what=f"the relay published {threshold} messages")
            supervisor.kill("relay")
            kills += 1
            supervisor.start("relay")
        writer.join()
        expected = app.recorder.max_notification_id()
        assert expected == 5000
        wait_until(published, timeout=60, interval=0.05, ready=at_least(expected),
                   what="the relay caught up with the store")
    messages = asyncio.run(stream_messages(nats_server.url))
    stored_ids = stored_event_ids(app)
    app.close()
    assert kills == 4
    assert [seq for seq, _, _ in messages] == list(range(1, 5001))
    assert [pos for _, pos, _ in messages] == list(range(1, 5001))  # every position, once, in store order
    assert [eid for _, _, eid in messages] == stored_ids
    assert len(set(stored_ids)) == 5000


async def _run_relay_until(relay, url: str, stream: str, count: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    nc = await nats.connect(url)

    async def published() -> int:
        if task.done():
            task.result()  # the relay's own error, at once
        return (await nc.jetstream().stream_info(stream)).state.messages

    try:
        await until(published, timeout=6, interval=0.02, ready=at_least(count),
                    what=f"the relay published {count} messages")
        await asyncio.sleep(0.2)  # let it go on: it must not publish more
    finally:
        stop.set()
        await task
        await nc.close()


def test_relay_restarts_over_events_that_yield_no_message_and_after_a_replay(
    nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    """Filtered renders (some events yield nothing, some two messages) and a replay: the live relay resumes right."""
    from services.intake.outbox import build_relay, render

    def filtered(event):
        (message,) = render(event)
        second = Outgoing(message.subject, message.payload, f"{message.msg_id}:2")
        return [] if event.version == 2 else [message, second]

    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    app = build_intake(settings)
    write_cases(app, 0, 3)  # 6 events: versions 1 (two messages each) and 2 (none)

    async def scenario() -> list[tuple[int, int, str]]:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_stream(js, TRAJECTORY_STREAM, [TRAJECTORY_SUBJECTS], duplicate_window=1.0)
        await _run_relay_until(build_relay(app, js, render=filtered), nats_server.url, TRAJECTORY_STREAM, 6)
        await _run_relay_until(build_relay(app, js, render=filtered), nats_server.url, TRAJECTORY_STREAM, 6)
        await asyncio.sleep(1.5)  # past the duplicate window: the replay is appended
        replayed = await build_relay(app, js, render=filtered).replay(1, 2)
        assert replayed == 2
        await asyncio.to_thread(write_cases, app, 3, 1)  # 2 more events: positions 7 (two messages) and 8
        await _run_relay_until(build_relay(app, js, render=filtered), nats_server.url, TRAJECTORY_STREAM, 10)
        await nc.close()
        return await stream_messages(nats_server.url)

    messages = asyncio.run(scenario())
    app.close()
    positions = [pos for _, pos, _ in messages]
    assert positions == [1, 1, 3, 3, 5, 5, 1, 1, 7, 7]  # nothing lost, nothing repeated but the replay itself


def test_relay_refuses_a_stream_ahead_of_its_store(nats_server: EmbeddedNatsServer, tmp_path: Path) -> None:
    from services.intake.outbox import build_relay
    from shared.infra.relay import RelayError

    first = Settings(data_dir=tmp_path / "first", nats_url=nats_server.url)
    app = build_intake(first)
    write_cases(app, 0, 3)

    async def publish_then_switch_store() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_stream(js, TRAJECTORY_STREAM, [TRAJECTORY_SUBJECTS])
        await _run_relay_until(build_relay(app, js), nats_server.url, TRAJECTORY_STREAM, 6)
        rebuilt = build_intake(Settings(data_dir=tmp_path / "rebuilt", nats_url=nats_server.url))
        write_cases(rebuilt, 0, 1)  # a store with 2 events while the stream ends at position 6
        with pytest.raises(RelayError, match="purge stream TRAJECTORY"):
            await build_relay(rebuilt, js).run(asyncio.Event())
        rebuilt.close()
        await nc.close()

    asyncio.run(publish_then_switch_store())
    app.close()


def test_relay_from_replays_a_range_from_the_command_line(nats_server: EmbeddedNatsServer, tmp_path: Path) -> None:
    """`reintegration relay --from N --to M` as an operator runs it: the range once, JetStream dropping what it holds."""
    from services.intake.outbox import build_relay
    from shared.infra.streams import ensure_trajectory_stream

    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    app = build_intake(settings)
    write_cases(app, 0, 5)  # 10 events

    async def relay_all() -> None:
        nc = await nats.connect(nats_server.url)
        await ensure_trajectory_stream(nc.jetstream())
        await _run_relay_until(build_relay(app, nc.jetstream()), nats_server.url, TRAJECTORY_STREAM, 10)
        await nc.close()

    asyncio.run(relay_all())
    app.close()
    env = {**os.environ, **settings.to_env(), "COLUMNS": "200"}
    command = [sys.executable, "-m", "reintegration", "relay"]
    done = subprocess.run([*command, "--from", "3", "--to", "6"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "replayed positions 3-6: 4 messages published" in done.stderr
    assert asyncio.run(stream_count(nats_server.url)) == 10  # all four still in the duplicate window: dropped

    beyond = subprocess.run([*command, "--from", "11"], env=env, capture_output=True, text=True, timeout=120)
    assert beyond.returncode == 0
    assert "nothing to replay: the store's last position is 10" in beyond.stderr

    for args, message in ((["--to", "4"], "--to needs --from"), (["--from", "5", "--to", "4"], "is before --from"),
                          (["--from", "0"], "store positions start at 1")):
        refused = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2, (args, refused.stderr)
        assert message in " ".join(refused.stderr.split()), (args, refused.stderr)
    assert asyncio.run(stream_count(nats_server.url)) == 10


def test_relay_records_a_stream_tail_that_its_store_had_not_recorded(
    nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    """A relay stopped between the stream's acknowledgement and its own record (or a second relay over one store)
    leaves the record behind the stream; the next relay has nothing to publish and must still record the tail."""
    import sqlite3

    from services.intake.outbox import build_relay

    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    app = build_intake(settings)
    write_cases(app, 0, 3)

    async def scenario() -> int:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_stream(js, TRAJECTORY_STREAM, [TRAJECTORY_SUBJECTS])
        first = build_relay(app, js)
        await _run_relay_until(first, nats_server.url, TRAJECTORY_STREAM, 6)
        assert first.recorded_position() == 6
        with sqlite3.connect(settings.data_dir / "intake.sqlite") as db:  # the record the stopped relay never wrote
            db.execute("UPDATE tracking SET notification_id = 4 WHERE application_name = ?", (first.name,))
        second = build_relay(app, js)
        assert second.recorded_position() == 4
        await _run_relay_until(second, nats_server.url, TRAJECTORY_STREAM, 6)
        await nc.close()
        return second.recorded_position()

    recorded = asyncio.run(scenario())
    app.close()
    assert recorded == 6
