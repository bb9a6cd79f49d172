"""The benchmark commands run end to end at tiny sizes (figures are not checked, only that each is printed); where
the lab is not installed (the production image), the lab's commands say so and exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_bench_intake_runs_at_a_tiny_size(tmp_path: Path) -> None:
    intake = run("intake", "--reports", "60", "--concurrency", "8", "--relay-events", "400",
                 "--data-dir", str(tmp_path / "intake"))
    assert intake.returncode == 0, intake.stdout + intake.stderr
    for row in ("accepted reports/s", "(echo)", "request-reply p50 (ms)", "request-reply p99 (ms)",
                "relay events/s into JetStream", "(raw publish)"):
        assert row in intake.stdout, intake.stdout
    assert "60 reports (60 accepted)" in intake.stdout
    for row in ("request-reply p50 at 200/s", "request-reply p99 at 200/s", "60 more at a fixed 200 a second"):
        assert row in intake.stdout, intake.stdout  # the fixed-rate phase, below saturation
    assert "relay over 400 events" in intake.stdout  # the store topped up to the sample asked for


def test_bench_timers_runs_at_a_tiny_size(tmp_path: Path) -> None:
    timers = run("timers", "--timers", "200", "--fire", "20", "--data-dir", str(tmp_path / "timers"))
    assert timers.returncode == 0, timers.stdout + timers.stderr
    for row in ("timers armed/s", "(plain publish)", "timers held in TIMERS", "server memory per 1,000 timers",
                "fired timer lateness"):
        assert row in timers.stdout, timers.stdout
    # every armed timer is held (the writer's schedules on their own subjects), as many as the plain baseline
    held = next(line for line in timers.stdout.splitlines() if "timers held in TIMERS" in line)
    assert "│ 200 " in held and "200 (plain messages)" in held, held


def test_a_benchmark_without_a_data_dir_leaves_no_folder_behind_unless_asked(tmp_path: Path) -> None:
    """Without --data-dir a benchmark works in a temporary folder and removes it at exit (saying so);
    REINTEGRATION_BENCH_KEEP=1 keeps it."""
    env = {**os.environ, "COLUMNS": "200", "TMPDIR": str(tmp_path)}
    env.pop("REINTEGRATION_BENCH_KEEP", None)
    env.pop("REINTEGRATION_BENCH_PYSPY", None)
    args = [*CLI, "recompute", "--cases", "20"]
    gone = subprocess.run(args, capture_output=True, text=True, timeout=50, check=False, env=env)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "removed at exit" in " ".join(gone.stdout.split())
    assert not list(tmp_path.glob("reintegration-bench-*"))
    kept = subprocess.run(args, capture_output=True, text=True, timeout=50, check=False,
                          env={**env, "REINTEGRATION_BENCH_KEEP": "1"})
    assert kept.returncode == 0, kept.stdout + kept.stderr
    [folder] = tmp_path.glob("reintegration-bench-*")
    assert (folder / "data" / "intake.sqlite").exists()


ROOT = Path(__file__).resolve().parents[1]
#: Runs the CLI with the editable install's finder removed: only what is on PYTHONPATH is importable.
WITHOUT_THE_EDITABLE_INSTALL = (
    "import runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in getattr(f, '__name__', type(f).__name__)]\n"
    "sys.argv = ['reintegration', *sys.argv[1:]]\n"
    "runpy.run_module('reintegration', run_name='__main__', alter_sys=True)\n"
)


@pytest.mark.parametrize("command", [["chaos", "list"], ["chaos", "run", "R1", "--quick"], ["demo"],
                                     ["bench", "e2e", "--quick"], ["bench", "intake"], ["bench", "audit"]])
def test_without_the_lab_its_commands_say_so_and_exit_2(command: list[str], tmp_path: Path) -> None:
    """What the production image holds (the Dockerfile copies shared, services and reintegration, not lab)."""
    for package in ("shared", "services", "reintegration"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-c", WITHOUT_THE_EDITABLE_INSTALL, *command], capture_output=True,
                          text=True, timeout=50, check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the lab (demo, benchmarks, fault scenarios) is not installed in this image" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
