"""``reintegration bench audit`` at a tiny size: it runs end to end and names its figures and their ratios."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.bench import audit as bench_audit
from lab.bench import derived as bench_derived
from shared.events import reports as r


def test_long_case_is_recorded_by_the_rules_with_the_asked_length() -> None:
    history = bench_audit.long_history(60)
    assert [e.version for e in history] == list(range(1, 61))
    kinds = {type(e.report) for e in history}
    assert {r.TrainingHoursAttended, r.RehabilitationCostsReported} <= kinds
    with pytest.raises(ValueError, match="at least 4 events"):
        bench_audit.long_history(3)


def test_bench_audit_prints_replay_and_verify_figures_with_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_derived.console, "_width", 200)  # one table row per line
    bench_audit.run_audit_bench(cases=20, events=60, data_dir=tmp_path / "bench")
    out = capsys.readouterr().out
    assert "reintegration bench audit" in out
    for question in ("audit history", "audit asof --version 60", "audit asof --time", "audit explain",
                     "audit verify CASE"):
        row = next(line for line in out.splitlines() if question in line and "one case of 60 events" in line)
        assert re.search(r"\d+\.\d+ / \d+\.\d+ .*select \+ decode.*\d+\.\dx", row), row
    verify = next(line for line in out.splitlines() if "audit verify: cases/s over 21 cases" in line)
    assert re.search(r"\d .*select \+ decode of \d+ events in 3 stores.*\d\.\d{3}", verify), verify
    assert "21 verified" in out
    assert "all 20 cases requested" in out


def test_bench_audit_caps_the_verified_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REINTEGRATION_BENCH_AUDIT_CASES", "5")
    monkeypatch.setattr(bench_derived.console, "_width", 200)
    bench_audit.run_audit_bench(cases=40, events=10, data_dir=tmp_path / "bench")
    out = capsys.readouterr().out
    assert "audit verify: cases/s over 6 cases" in out
    assert "5 of the 40 cases requested (capped at 5" in out
