"""`reintegration follow`: an employer's follower of its own feed (deadlines, ledger entries, plan updates), over a
running system (all services, the generated accounts, real nats-server and SQLite), killed again and again while
cases are fed and a derived service is killed too: every message of its own feed written once, in stream order,
plan updates in case order, nothing of another employer, and no canary from a medical or free-text field."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import nats
import pytest

from lab.chaos.canaries import canaries_in, canary_scripts
from lab.demo import feed
from lab.generator import Generator
from reintegration.runtime import Runtime
from shared.embedded.waiting import wait_until
from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM, EMPLOYER_FEED_PREFIX
from shared.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


async def feed_count(settings: Settings, enterprise: str) -> int:
    """The messages both streams hold for ``enterprise``'s feed."""
    nc = await nats.connect(settings.nats_url, **settings.nats_options())
    try:
        js = nc.jetstream()
        total = 0
        for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
            info = await js.stream_info(stream, subjects_filter=f"{EMPLOYER_FEED_PREFIX}.{enterprise}.>")
            total += sum((info.state.subjects or {}).values())
        return total
    finally:
        await nc.close()


def follower(settings: Settings, enterprise: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reintegration", "follow", "--creds",
            str(settings.data_dir / "parties" / f"employer-{enterprise}.creds"), "--server", settings.nats_url,
            "--out", str(out), *extra]


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_a_follower_killed_again_and_again_writes_every_message_of_its_feed_once_and_in_order(
        tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), nats_port=0)
    settings = runtime.start()
    out = tmp_path / "feed.jsonl"
    rng = random.Random(5)
    try:
        runtime.wait_ready()
        # the demo's seed (its employers are those of deploy/parties.dev.toml), with a canary in every medical or
        # free-text field of every report
        scripts = canary_scripts(400, Generator(2026))
        employers = Counter(s.opening.enterprise_number for s in scripts)
        enterprise, _ = employers.most_common(1)[0]
        feeding = threading.Thread(target=lambda: asyncio.run(
            feed(settings.nats_url, scripts, concurrency=8, **settings.nats_options())))
        feeding.start()
        kills = Counter[str]()
        while feeding.is_alive() or kills["follow"] < 6:
            child = subprocess.Popen(follower(settings, enterprise, out), env=ENV, cwd=tmp_path,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.8, 2.0))
            child.send_signal(signal.SIGKILL)  # no chance to finish anything
            child.wait()
            kills["follow"] += 1
            if kills["follow"] % 2 == 1:
                runtime.supervisor.kill("deadlines", hold=False)  # a crash: supervision brings it back
                kills["deadlines"] += 1
            runtime.supervise_once()
        feeding.join()

        def caught_up() -> tuple[int, int]:
            runtime.supervise_once()
            expected = asyncio.run(feed_count(settings, enterprise))
            done = subprocess.run(follower(settings, enterprise, out, "--until-caught-up"), env=ENV, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            return expected, len(out.read_text().splitlines())

        expected, written = wait_until(caught_up, timeout=120, interval=1, times=2,
                                       ready=lambda answer: answer[0] > 0 and answer[0] == answer[1],
                                       what="the follower's file holding every message of its feed")
        replay = tmp_path / "replay.jsonl"  # --from: the whole feed again from a time, into another file
        again = subprocess.run(follower(settings, enterprise, replay, "--from", "2000-01-01T00:00:00+00:00",
                                        "--until-caught-up"), env=ENV, cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0, again.stderr
        future = subprocess.run(follower(settings, enterprise, tmp_path / "none.jsonl", "--from",
                                         "2999-01-01T00:00:00+00:00", "--until-caught-up"), env=ENV, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert future.returncode == 0 and "0 message(s) handled" in future.stderr, future.stderr
    finally:
        runtime.stop()

    assert not canaries_in(out.read_bytes()), "a medical or free-text value reached the employer"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    replayed = [json.loads(line) for line in replay.read_text().splitlines()]
    for stream in (DEADLINES_STREAM, BENEFITS_STREAM):  # the same messages, in the same order in each stream
        assert ([r["headers"]["Nats-Msg-Id"] for r in replayed if r["stream"] == stream]
                == [r["headers"]["Nats-Msg-Id"] for r in records if r["stream"] == stream])
    assert len(records) == expected == written and kills["follow"] >= 6 and kills["deadlines"] >= 3
    positions = [(r["stream"], r["sequence"]) for r in records]
    assert len(set(positions)) == len(positions), "a message written twice"
    assert len({r["headers"]["Nats-Msg-Id"] for r in records}) == len(records)
    for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
        sequences = [n for s, n in positions if s == stream]
        assert sequences == sorted(sequences), f"{stream} out of order"
    assert all(r["subject"].startswith(f"{EMPLOYER_FEED_PREFIX}.{enterprise}.") for r in records)
    assert all(r["message"]["enterprise_number"] == enterprise for r in records)
    assert {r["message"]["type"] for r in records} <= {"feed.deadline.v1", "feed.benefit.v1", "feed.trajectory.v1"}
    updates = [r["message"] for r in records if r["message"]["type"] == "feed.trajectory.v1"]
    assert updates, "no plan update reached the employer"
    by_case: dict[str, list[int]] = {}
    for u in updates:
        by_case.setdefault(u["case_id"], []).append(u["case_version"])
    assert all(v == sorted(set(v)) for v in by_case.values()), "plan updates out of case order, or twice"
    print(f"follow: {len(records)} messages ({len(updates)} plan updates) of employer {enterprise}, the follower SIGKILLed {kills['follow']} "
          f"times and deadlines {kills['deadlines']} times: none lost, none doubled, in stream order")
