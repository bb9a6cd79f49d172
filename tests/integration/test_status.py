"""`reintegration status` against a running system (all services, the generated accounts, the operator's identity
from the system file): settled, every service runs and is ready with no case parked, every consumer has nothing
pending and the streams hold what the stores recorded; with the benefits service held down, it is shown down, its
consumer is behind, with a lag in seconds, and the command says so."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab.demo import feed, stored_events, wait_for_derived
from lab.generator import Generator
from reintegration.runtime import Runtime
from shared.embedded.waiting import wait_until
from shared.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def status(settings: Settings) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REINTEGRATION_")}
    done = subprocess.run([sys.executable, "-m", "reintegration", "status", "--json", "--data-dir",
                           str(settings.data_dir)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**env, "PYTHONPATH": str(ROOT)})
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def consumer(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in view["consumers"] if c["consumer"] == name)


@pytest.mark.slow
def test_status_shows_a_settled_system_and_then_a_service_that_falls_behind(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), nats_port=0)
    settings = runtime.start()
    try:
        runtime.wait_ready()
        generator = Generator(2026)
        asyncio.run(feed(settings.nats_url, generator.scripts(20, tour_first=True), **settings.nats_options()))
        assert wait_for_derived(settings, runtime)
        # Settled: deadlines and benefits have applied every event; the other consumers (disclosures, feeds) settle
        # within moments, and status says 0 once every consumer has nothing pending.
        code, view = wait_until(lambda: status(settings), timeout=30, interval=0.5, ready=lambda answer: answer[0] == 0,
                                what="status of a settled system")
        assert not view["dead_letters"]
        assert {s["service"] for s in view["services"]} == set(runtime.children)
        assert all(s["running"] and s["ready"] and s["restarts"] == 0 for s in view["services"]), view["services"]
        derived = {s["service"]: s["parked_cases"] for s in view["services"] if s["service"] in ("deadlines",
                                                                                                  "benefits")}
        assert derived == {"deadlines": {"deadlines": 0}, "benefits": {"benefits": 0}}
        assert {c["consumer"] for c in view["consumers"]} >= {"deadlines", "benefits", "deadlines-timers",
                                                              "disclosures-deadlines", "disclosures-benefits"}
        assert all(c["pending"] == 0 and c["unacknowledged"] == 0 and c["lag_seconds"] == 0
                   for c in view["consumers"])
        trajectory = next(s for s in view["streams"] if s["stream"] == "TRAJECTORY")
        assert trajectory["messages"] == stored_events(settings)  # every recorded event, relayed once
        assert {s["store"] for s in view["stores"]} >= {"intake", "deadlines", "benefits"}
        assert all(s["bytes"] > 0 for s in view["stores"])

        runtime.supervisor.kill("benefits")  # held down: the stream goes on filling
        asyncio.run(feed(settings.nats_url, generator.scripts(5), **settings.nats_options()))
        time.sleep(1.5)  # the oldest event it has not taken is now more than a second old
        code, view = wait_until(lambda: status(settings), timeout=60, interval=0.5,
                                ready=lambda answer: consumer(answer[1], "benefits")["pending"] > 0,
                                what="the held-down benefits consumer behind")
        behind = consumer(view, "benefits")
        assert code == 1 and behind["lag_seconds"] >= 1
        [benefits] = [s for s in view["services"] if s["service"] == "benefits"]
        assert not benefits["running"] and benefits["ready"] is False and benefits["not_ready_because"] == "not running"
        table = subprocess.run([sys.executable, "-m", "reintegration", "status", "--data-dir", str(settings.data_dir)],
                               capture_output=True, text=True, timeout=60, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"})
        assert table.returncode == 1 and "benefits" in table.stdout and "dead letters: none" in table.stdout
        assert max(len(line) for line in table.stdout.splitlines()) <= 80
    finally:
        runtime.stop()
