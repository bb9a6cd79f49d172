"""The outbox relay as a real process, killed with SIGKILL in the middle of thousands of events."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import nats
from nats.js.api import DeliverPolicy

from services.intake.application import IntakeApplication, build_intake
from shared.events import reports as r
from shared.events.envelope import CASE_EVENT_DECODER
from shared.events.subjects import POSITION_HEADER, TRAJECTORY_STREAM, TRAJECTORY_SUBJECTS
from shared.infra.natsserver import EmbeddedNatsServer
from shared.infra.relay import ensure_stream
from shared.infra.settings import Settings
from reintegration.generator import insz
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
            out.append((msg.metadata.sequence.stream, int(msg.headers[POSITION_HEADER]), str(event.event_id)))
            await msg.ack()
    await nc.close()
    return out


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
    env = {**os.environ, **settings.to_env()}

    def start_relay() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "reintegration", "relay"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    relay = start_relay()
    writer.start()
    kills = 0
    try:
        for threshold in (400, 1500, 2600, 3700):
            deadline = time.monotonic() + 60
            while asyncio.run(stream_count(nats_server.url)) < threshold:
                assert time.monotonic() < deadline, f"relay stalled below {threshold}"
                time.sleep(0.01)
            relay.send_signal(signal.SIGKILL)
            relay.wait()
            kills += 1
            relay = start_relay()
        writer.join()
        expected = app.recorder.max_notification_id()
        assert expected == 5000
        deadline = time.monotonic() + 60
        while asyncio.run(stream_count(nats_server.url)) < expected:
            assert time.monotonic() < deadline, "relay did not catch up"
            time.sleep(0.05)
    finally:
        relay.terminate()
        relay.wait(timeout=10)
    messages = asyncio.run(stream_messages(nats_server.url))
    stored_ids = [str(app.mapper.to_domain_event(n).event_id) for n in app.recorder.select_notifications(1, 10_000)]
    app.close()
    assert kills == 4
    assert [seq for seq, _, _ in messages] == list(range(1, 5001))
    assert [pos for _, pos, _ in messages] == list(range(1, 5001))  # every position, once, in store order
    assert [eid for _, _, eid in messages] == stored_ids
    assert len(set(stored_ids)) == 5000
