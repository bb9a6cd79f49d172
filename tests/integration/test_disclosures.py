"""Every message delivered to an employer leaves one disclosure record, also across a restart of the recorder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats

from lab.demo import feed
from lab.generator import Generator
from reintegration.runtime import Runtime
from services.disclosures.log import DisclosureRecorded, build_disclosures
from shared.embedded.waiting import wait_until
from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM, EMPLOYER_FEED_PREFIX
from shared.infra.settings import Settings


async def feed_messages(url: str, **options: Any) -> int:
    nc = await nats.connect(url, **options)
    js = nc.jetstream()
    total = 0
    for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
        info = await js.stream_info(stream, subjects_filter=f"{EMPLOYER_FEED_PREFIX}.>")
        total += sum((info.state.subjects or {}).values())
    await nc.close()
    return total


def recorded(settings: Settings) -> list[DisclosureRecorded]:
    log = build_disclosures(settings)
    try:
        return list(log.records())
    finally:
        log.close()


def test_each_employer_delivery_is_recorded_once(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), nats_port=0)
    settings = runtime.start()
    try:
        runtime.wait_ready()
        generator = Generator(3)
        asyncio.run(feed(settings.nats_url, [generator.script() for _ in range(80)], concurrency=8,
                         **settings.nats_options()))
        runtime.supervisor.kill("disclosures", hold=False)  # the recorder dies mid-way and comes back
        runtime.supervise_once()
        deliveries: list[int] = []

        def deliveries_and_records() -> tuple[int, int]:
            """(messages delivered to employers, disclosure records), the deliveries counted first."""
            runtime.supervise_once()
            deliveries.append(asyncio.run(feed_messages(settings.nats_url, **settings.nats_options())))
            return deliveries[-1], len(recorded(settings))

        def every_delivery_recorded(answer: tuple[int, int]) -> bool:
            """A record for each delivery, and no delivery since the reading before (1 s earlier)."""
            delivered, records_seen = answer
            steady = len(deliveries) >= 2 and deliveries[-2] == delivered
            return bool(delivered) and records_seen >= delivered and steady

        delivered, _ = wait_until(deliveries_and_records, timeout=90, interval=1, ready=every_delivery_recorded,
                                  what="a disclosure record of every delivery (deliveries, records)")
        records = recorded(settings)
        assert len(records) == delivered
        assert len({r.reference for r in records}) == delivered
        assert all(r.who.startswith("employer:") and r.legal_basis and r.case_id for r in records)
        assert all(r.who.split(":")[1] in r.what for r in records)  # each went to that employer's own subject
    finally:
        runtime.stop()


def test_auditor_queries_are_recorded(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    from datetime import UTC, date, datetime

    from services.intake.application import build_intake
    from tests.factories import FUND_PARTY, incapacity

    settings = Settings(data_dir=tmp_path / "data")
    intake = build_intake(settings)
    case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), datetime(2024, 2, 1, tzinfo=UTC)).case_id
    intake.close()
    env = {**os.environ, **settings.to_env(), "REINTEGRATION_AUDITOR": "inspector-7"}
    for command in (["history", str(case)], ["applied", str(case)]):
        result = subprocess.run([sys.executable, "-m", "reintegration", "audit", *command, "--data-dir",
                                 str(settings.data_dir)], capture_output=True, text=True, env=env, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stderr
    queries = [r for r in recorded(settings) if r.kind == "query"]
    assert [r.who for r in queries] == ["auditor:inspector-7", "auditor:inspector-7"]
    assert all(r.case_id == case and "audit" in r.what and r.legal_basis for r in queries)
