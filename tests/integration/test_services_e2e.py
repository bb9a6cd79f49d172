"""All services as processes on the embedded runtime, fed generated cases while the derived services are killed:
nothing lost, nothing doubled, and every derived state equals the pure functions over the recorded history."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats
import pytest

from lab.demo import feed
from lab.generator import Generator
from reintegration.operate import intake_log
from reintegration.runtime import Runtime
from services.benefits.application import build_benefits
from services.deadlines.application import build_deadlines
from shared.embedded.waiting import wait_until
from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM
from shared.infra.settings import Settings
from shared.rulebook import default_rulebook
from shared.rulebook.benefits import compute_ledger, effective
from shared.rulebook.deadlines import compute_deadlines


async def message_ids(url: str, stream: str, **options: Any) -> list[str]:
    nc = await nats.connect(url, **options)
    js = nc.jetstream()
    state = (await js.stream_info(stream)).state
    ids = [((await js.get_msg(stream, seq=seq)).headers or {})["Nats-Msg-Id"]
           for seq in range(state.first_seq, state.last_seq + 1)]
    await nc.close()
    return ids


@pytest.mark.slow
def test_derived_services_killed_during_load_lose_and_double_nothing(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), nats_port=0)
    settings = runtime.start()
    try:
        runtime.wait_ready()
        generator = Generator(11)
        scripts = [generator.script() for _ in range(150)]
        feeding = threading.Thread(target=lambda: asyncio.run(feed(settings.nats_url, scripts, concurrency=8,
                                                                         **settings.nats_options())))
        feeding.start()
        kills: Counter[str] = Counter()
        for _ in range(2):
            for name in ("deadlines", "benefits"):
                time.sleep(0.7)
                runtime.supervisor.kill(name, hold=False)  # a crash: supervision brings it back
                kills[name] += 1
                runtime.supervise_once()
        feeding.join()
        history: dict = {}
        for _position, event in intake_log(settings):
            history.setdefault(event.case_id, []).append(event)
        rulebook = default_rulebook()

        def caught_up() -> bool:
            runtime.supervise_once()
            deadlines, benefits = build_deadlines(settings), build_benefits(settings)
            try:
                return all(
                    (s := deadlines.schedule(case)) is not None and s.source_version == len(events)
                    and (b := benefits.ledger(case)) is not None and b.source_version == len(events)
                    for case, events in history.items()
                )
            finally:
                deadlines.close()
                benefits.close()

        wait_until(caught_up, timeout=90, interval=0.5, what="deadlines and benefits caught up with every case")

        deadlines, benefits = build_deadlines(settings), build_benefits(settings)
        entries = 0
        for case, events in history.items():
            schedule = deadlines.schedule(case)
            ledger = benefits.ledger(case)
            assert schedule is not None and ledger is not None
            assert schedule.deadlines == {d.id: d for d in compute_deadlines(events, rulebook)}
            assert sorted(e.id for e in effective(ledger.entries)) == sorted(
                e.id for e in compute_ledger(events, rulebook)
            )
            entries += len(ledger.entries)
        deadlines.close()
        benefits.close()
        assert kills == {"deadlines": 2, "benefits": 2}
        for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
            ids = asyncio.run(message_ids(settings.nats_url, stream, **settings.nats_options()))
            assert len(ids) == len(set(ids)), f"{stream} holds a message twice"
        assert entries > 0
    finally:
        runtime.stop()
