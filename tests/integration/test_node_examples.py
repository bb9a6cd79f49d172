"""Interoperability: the Node examples (`examples/node`, nats.js) against a running system (all services, the
generated accounts, real nats-server and SQLite), connecting with the standard files only (seed and profile).

Every report a Node sender sends is stored once (a re-run answered as duplicates); another party's subject is
refused by the server as a permissions violation; a Node follower killed again and again while cases are fed ends
with every message of its employer's feed, none lost and none twice; a Node auditor's question is answered and
names the authenticated auditor. Skipped, with the reason in the summary, where Node.js or npm is absent."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import msgspec
import pytest

from lab.demo import feed
from lab.generator import Generator
from reintegration.operate import intake_log
from reintegration.runtime import Runtime
from shared.embedded.waiting import wait_until
from shared.infra.settings import Settings
from tests.integration.test_follow import feed_count
from tests.integration.test_submit import case_reports

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                reason="Node.js and npm are not installed: the nats.js examples cannot run here")


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples with nats.js installed from the npm registry."""
    folder = tmp_path_factory.mktemp("node") / "examples"
    shutil.copytree(ROOT / "examples" / "node", folder)
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[Runtime, Settings]]:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), nats_port=0)
    settings = runtime.start()
    try:
        runtime.wait_ready()
        yield runtime, settings
    finally:
        runtime.stop()


def node(examples: Path, script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", str(examples / script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def profile(settings: Settings, name: str) -> str:
    return str(settings.data_dir / "parties" / f"{name}.json")


@pytest.mark.slow
def test_node_parties_send_follow_and_ask_with_the_standard_files(examples: Path, system: tuple[Runtime, Settings],
                                                                  tmp_path: Path) -> None:
    runtime, settings = system
    url = settings.nats_url
    reports = case_reports(date(2025, 3, 3), 3)
    file = tmp_path / "reports.jsonl"
    file.write_text("\n".join(msgspec.json.encode(x).decode() for x in reports) + "\n")
    fund = profile(settings, "health_fund-300")

    sent = node(examples, "submit.js", fund, str(file), url)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert [json.loads(x)["outcome"] for x in sent.stdout.splitlines()] == ["accepted"] * 3
    again = node(examples, "submit.js", fund, str(file), url)
    assert [json.loads(x)["outcome"] for x in again.stdout.splitlines()] == ["duplicate"] * 3
    stored = [str(e.report.report_id) for _, e in intake_log(settings)]
    assert stored == [str(x.report_id) for x in reports]  # each once

    other = node(examples, "submit.js", fund, str(file), url, env={"INTAKE_SUBJECT": "reintegration.intake.health_fund.100"})
    refusals = [json.loads(x) for x in other.stdout.splitlines()]
    assert other.returncode == 1 and {r["outcome"] for r in refusals} == {"refused by the server"}
    assert "permissions violation" in refusals[0]["reply"].lower()

    asked = node(examples, "ask.js", profile(settings, "auditor-inspectorate"), "history",
                 str(reports[1].case_id), url)  # type: ignore[attr-defined]
    assert asked.returncode == 0, asked.stderr
    reply = json.loads(asked.stdout)
    assert reply["asked_by"] == "auditor:inspectorate" and len(reply["answer"]) == 3

    scripts = Generator(2026).scripts(300)
    enterprise = Counter(s.opening.enterprise_number for s in scripts).most_common(1)[0][0]
    feeding = threading.Thread(target=lambda: asyncio.run(feed(url, scripts, concurrency=8,
                                                               **settings.nats_options())))
    feeding.start()
    out = tmp_path / "feed.jsonl"
    follower = [str(examples / "follow.js"), profile(settings, f"employer-{enterprise}"), str(out), url]
    rng, kills = random.Random(7), 0
    while feeding.is_alive() or kills < 4:
        child = subprocess.Popen(["node", *follower], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 2.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
        runtime.supervise_once()
    feeding.join()

    def caught_up() -> tuple[int, int]:
        runtime.supervise_once()
        expected = asyncio.run(feed_count(settings, enterprise))
        done = node(examples, "follow.js", *follower[1:], "--until-caught-up")
        assert done.returncode == 0, done.stderr
        return expected, len(out.read_text().splitlines())

    expected, written = wait_until(caught_up, timeout=120, interval=1, times=2,
                                   ready=lambda answer: answer[0] > 0 and answer[0] == answer[1],
                                   what="the Node follower's file holding every message of its feed")
    records = [json.loads(x) for x in out.read_text().splitlines()]
    ids = Counter(r["headers"]["Nats-Msg-Id"] for r in records)
    assert len(ids) == expected == written and max(ids.values()) == 1  # none lost, none twice
    for stream in ("DEADLINES", "BENEFITS"):
        sequences = [r["sequence"] for r in records if r["stream"] == stream]
        assert sequences == sorted(sequences)
    assert all(r["message"]["enterprise_number"] == enterprise for r in records)
    print(f"node: 3 reports sent once (a re-run: 3 duplicates), 3 refusals seen as permission errors; the feed of "
          f"{enterprise}: {len(records)} messages, the Node follower SIGKILLed {kills} times: none lost, none twice")
