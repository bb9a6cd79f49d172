"""``reintegration dead-letters list|replay|discard`` over a real nats-server, the real benefits application and its
real trajectory consumer, and a real intake store holding the true events."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from typer.testing import CliRunner, Result

from lab.bench.derived import build_histories, interleave, write_intake
from lab.chaos.trajectory import compare, publish_all, relay_message
from reintegration.cli import app as cli
from services.benefits.application import BenefitsApplication, build_benefits
from shared.embedded.natsserver import EmbeddedNatsServer
from shared.events.envelope import CaseEvent
from shared.events.subjects import TRAJECTORY_PREFIX
from shared.infra.consumer import TrajectoryConsumer
from shared.infra.settings import Settings

ENCODER = msgspec.json.Encoder()


class Live:
    """The benefits service's consumer running in this process, as it runs in the service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: BenefitsApplication = build_benefits(settings)
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.consumer = TrajectoryConsumer(name="benefits", apply=self.app.apply_batch, park=self.app.park,
                                           executor=self.executor, poison_delay=0.05, gap_delay=0.05)

    async def start(self) -> None:
        self.nc = await nats.connect(self.settings.nats_url)
        self.js = self.nc.jetstream()
        await self.consumer.start(self.js)

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.nc.close()
        self.executor.shutdown()
        self.app.close()


@pytest.fixture
async def live(nats_server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[Live]:
    service = Live(Settings(data_dir=tmp_path / "data", nats_url=nats_server.url))
    await service.start()
    yield service
    await service.stop()


def histories(cases: int) -> list[CaseEvent]:
    return interleave(build_histories(cases, seed=11), seed=11)


async def until(check: Any, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def run(settings: Settings, *args: str) -> Result:
    """The CLI as an operator runs it (in a thread: it runs its own event loop)."""
    env = {"REINTEGRATION_NATS_URL": settings.nats_url, "COLUMNS": "250"}
    return await asyncio.to_thread(CliRunner().invoke, cli, ["dead-letters", *args, "--data-dir",
                                                             str(settings.data_dir)], env=env)


def rule_breaking(event: CaseEvent, later: CaseEvent) -> bytes:
    """``event`` rewritten into a later kind of report: a case must open with its incapacity."""
    report = msgspec.structs.replace(later.report, case_id=event.case_id)
    return ENCODER.encode(msgspec.structs.replace(event, report=report))


async def dead_letter_some(live: Live) -> tuple[list[CaseEvent], uuid.UUID, uuid.UUID]:
    """Publish the intake log as the relay would, but with event 2 of case A undecodable and event 1 of case B
    rule-breaking (the events behind them wait in the dead letters), and one message that names no case."""
    log = histories(12)
    write_intake(live.settings, log)
    counts: dict[uuid.UUID, int] = {}
    for event in log:
        counts[event.case_id] = counts.get(event.case_id, 0) + 1
    a, b = [case for case, n in counts.items() if n >= 3][:2]
    later = next(e for e in log if e.version >= 2)
    messages = []
    for position, event in enumerate(log, start=1):
        data = None
        if (event.case_id, event.version) == (a, 2):
            data = ENCODER.encode(event)[:-9] + b"\xff"
        elif (event.case_id, event.version) == (b, 1):
            data = rule_breaking(event, later)
        messages.append(relay_message(event, position, data=data))
    messages.append((f"{TRAJECTORY_PREFIX}.not-a-case.garbage", b"\x00garbage", {}))
    await publish_all(live.js, messages)
    behind = counts[a] - 2 + counts[b] - 1
    await until(lambda: live.consumer.counts["dead_lettered"] == 3 + behind)
    await until(lambda: live.consumer.counts["applied"] == len(log) - (counts[a] - 1) - counts[b])
    return log, a, b


async def test_list_shows_each_dead_letter_with_its_origin_error_and_deliveries(live: Live) -> None:
    log, a, b = await dead_letter_some(live)
    result = await run(live.settings, "list", "--json")
    assert result.exit_code == 0, result.output
    letters = json.loads(result.stdout)
    assert {letter["service"] for letter in letters} == {"benefits"}
    poison = [letter for letter in letters if letter["kind"] == "poison"]
    assert sorted((p["case_id"] or "none", p["deliveries"]) for p in poison) == sorted(
        [(str(a), 5), (str(b), 5), ("none", 5)])
    undecodable = next(p for p in poison if p["case_id"] == str(a))
    assert undecodable["version"] is None and undecodable["original_subject"].startswith(f"{TRAJECTORY_PREFIX}.{a}.")
    assert "DecodeError" in undecodable["error"] or "JSON" in undecodable["error"]
    breaking = next(p for p in poison if p["case_id"] == str(b))
    assert breaking["version"] == 1 and "incapacity" in breaking["error"]
    behind = sorted((letter["case_id"], letter["version"]) for letter in letters if letter["kind"] == "behind")
    expected = sorted((str(e.case_id), e.version) for e in log
                      if (e.case_id == a and e.version > 2) or (e.case_id == b and e.version > 1))
    assert behind == expected
    assert all(letter["dead_at"] and letter["position"] for letter in letters if letter["case_id"])
    table = await run(live.settings, "list")
    assert "benefits:" in table.stdout and str(a) in table.stdout and "replay" in table.stdout


async def test_replay_catches_the_cases_up_from_the_intake_store_once(live: Live) -> None:
    log, a, b = await dead_letter_some(live)
    assert live.app.parked(a) and live.app.parked(b)
    dry = await run(live.settings, "replay", "--dry-run")
    assert dry.exit_code == 0 and "would release" in dry.stdout
    assert live.app.parked(a)  # a dry run changes nothing

    result = await run(live.settings, "replay")
    assert result.exit_code == 0, result.output
    assert f"case {a}: caught up" in result.stdout and f"case {b}: caught up" in result.stdout
    assert "name no case" in result.stdout
    assert live.app.parked(a) is None and live.app.parked(b) is None
    comparison = compare(live.settings, log, "benefits")
    assert (comparison.applied, comparison.lost, comparison.doubled, comparison.out_of_order) == (len(log), 0, 0, 0)

    again = await run(live.settings, "replay")
    assert "caught up" not in again.stdout  # resolved letters are not replayed twice
    remaining = json.loads((await run(live.settings, "list", "--json")).stdout)
    assert [letter["case_id"] for letter in remaining] == [None]

    discarded = await run(live.settings, "discard", str(remaining[0]["seq"]), "--reason", "test garbage")
    assert discarded.exit_code == 0 and f"discarded {remaining[0]['seq']}" in discarded.stdout
    assert json.loads((await run(live.settings, "list", "--json")).stdout) == []
    everything = json.loads((await run(live.settings, "list", "--all", "--json")).stdout)
    assert all(letter["resolved"] for letter in everything)
    assert {letter["resolved"].split()[0] for letter in everything} == {"replayed", "discarded"}


async def test_a_case_whose_event_still_fails_is_parked_again_and_its_letters_kept(live: Live) -> None:
    """An event the service cannot fold even from the intake store (here written there directly): the fix did
    not cover it, so the replay says so and changes nothing about its dead letters."""
    log = histories(3)
    case = log[0].case_id
    later = next(e for e in log if e.version >= 2)
    bad = msgspec.structs.replace(log[0], report=msgspec.structs.replace(later.report, case_id=case))
    stored = [bad if e is log[0] else e for e in log]
    write_intake(live.settings, stored)
    await publish_all(live.js, [relay_message(e, p) for p, e in enumerate(stored, start=1)])
    await until(lambda: live.consumer.counts["dead_lettered"] >= 1 and live.app.parked(case) is not None)
    await until(lambda: live.consumer.counts["applied"] + live.consumer.counts["dead_lettered"] == len(log))
    letters = json.loads((await run(live.settings, "list", "--json")).stdout)
    result = await run(live.settings, "replay", "--case", str(case))
    assert result.exit_code == 1
    assert f"case {case}: version 1 fails again" in result.stdout and "stay unresolved" in result.stdout
    assert live.app.parked(case) is not None
    assert json.loads((await run(live.settings, "list", "--json")).stdout) == letters


async def test_clear_errors(live: Live, tmp_path: Path) -> None:
    await dead_letter_some(live)
    unknown = await run(live.settings, "replay", "--seq", "9999")
    assert unknown.exit_code == 2 and "no dead letter with sequence 9999" in unknown.output
    bad_case = await run(live.settings, "list", "--case", "not-a-case")
    assert bad_case.exit_code == 2 and "'not-a-case' is not a case id" in bad_case.output
    # as an operator runs it: one line that says what and how (exit code 3: unreachable), not the client library's
    # tracebacks first
    process = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "reintegration", "dead-letters", "list", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "REINTEGRATION_NATS_URL": "nats://127.0.0.1:1"})
    said = process.stdout + process.stderr
    assert process.returncode == 3 and "cannot reach NATS at nats://127.0.0.1:1" in said, said
    assert "Traceback" not in said and "reintegration env --data-dir" in said, said


async def test_a_new_letter_after_the_broker_lost_the_stream_is_not_taken_for_a_resolved_one(live: Live) -> None:
    """Resolutions are recorded under each letter's own id: when DEAD_LETTERS starts over (a broker that lost its
    store), a new letter at a sequence an old, resolved letter had is still listed, and still resolvable."""
    from shared.events.subjects import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM
    from shared.infra.streams import ensure_stream

    await dead_letter_some(live)
    assert (await run(live.settings, "replay")).exit_code == 0
    [garbage] = json.loads((await run(live.settings, "list", "--json")).stdout)
    assert (await run(live.settings, "discard", str(garbage["seq"]), "--reason", "garbage")).exit_code == 0
    resolved = json.loads((await run(live.settings, "list", "--all", "--json")).stdout)
    assert resolved and all(letter["resolved"] and letter["letter_id"] for letter in resolved)

    await live.js.delete_stream(DEAD_LETTER_STREAM)  # the broker's store is gone: sequences start over
    await ensure_stream(live.js, DEAD_LETTER_STREAM, [f"{DEAD_LETTER_PREFIX}.>"])
    before = live.consumer.counts["dead_lettered"]
    await publish_all(live.js, [(f"{TRAJECTORY_PREFIX}.not-a-case.garbage", b"\x00more garbage", {})])
    await until(lambda: live.consumer.counts["dead_lettered"] == before + 1)
    [new] = json.loads((await run(live.settings, "list", "--json")).stdout)
    assert new["seq"] in {letter["seq"] for letter in resolved}  # a sequence a resolved letter had
    assert new["resolved"] is None and new["letter_id"] not in {letter["letter_id"] for letter in resolved}
    assert (await run(live.settings, "discard", str(new["seq"]), "--reason", "more garbage")).exit_code == 0
    assert json.loads((await run(live.settings, "list", "--json")).stdout) == []
