"""`reintegration bench derived` and `bench recompute` run end to end at tiny sizes (figures are not checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "reintegration", "bench"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=50, check=False,
                          env={**os.environ, "COLUMNS": "200"})


def test_bench_derived_and_recompute_run_at_tiny_sizes(tmp_path: Path) -> None:
    derived = run("derived", "--cases", "12", "--data-dir", str(tmp_path / "derived"))
    assert derived.returncode == 0, derived.stdout + derived.stderr
    for row in ("deadlines: trajectory events/s applied", "benefits: trajectory events/s applied",
                "consume + republish", "timers held in TIMERS", "nats-server VmRSS"):
        assert row in derived.stdout, derived.stdout

    recompute = run("recompute", "--cases", "30", "--data-dir", str(tmp_path / "recompute"))
    assert recompute.returncode == 0, recompute.stdout + recompute.stderr
    for row in ("compute_deadlines: cases/s", "compute_ledger: cases/s", "msgspec decode",
                "deadlines rebuild --fresh: events/s", "benefits rebuild --fresh: events/s", "N = 30 cases"):
        assert row in recompute.stdout, recompute.stdout
