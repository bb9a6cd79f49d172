"""`reintegration benefits recompute`: a deployment that enables announced rules (or a new rulebook) reaches every
stored ledger once, with new entries and reversals, never edits. Real SQLite stores."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

from services.benefits.application import build_benefits
from services.benefits.ledger import LedgerRecomputed
from services.benefits.outbox import render
from shared.infra.derived import Outcome
from shared.infra.settings import Settings
from shared.infra.store import logged_events
from shared.rulebook import default_rulebook
from shared.rulebook.benefits import EntryKind, Options, compute_ledger
from tests.factories import NOW
from tests.integration.test_deadlines_recompute import recorded_case
from tests.unit.test_benefits_builder import History

FINE = "sanction.employer.non_cooperation"


def sanctions_case() -> History:
    h = History(start=date(2023, 1, 10), staff=120)
    h.questionnaire_sent(date(2024, 2, 1))
    h.miss(date(2024, 2, 20))
    h.trajectory_ended(date(2024, 3, 1), date(2024, 5, 31), "employer_non_cooperation")
    return h


def test_enabling_an_announced_rule_adds_its_entry_once_and_disabling_it_reverses_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    h = sanctions_case()
    app = build_benefits(settings)
    for position, event in enumerate(h.events, start=1):
        assert app.process(event, position, NOW) is Outcome.APPLIED
    assert not [e for e in app.ledger(h.case_id).effective if e.rule == FINE]
    app.close()

    enabled = dataclasses.replace(settings, enabled_announced=(FINE,))
    app = build_benefits(enabled)
    version = app.ledger(h.case_id).version
    assert app.recompute(h.case_id, NOW, record=False) and app.ledger(h.case_id).version == version  # a dry run
    [fine] = app.recompute(h.case_id, NOW)
    assert (fine.rule, fine.kind, fine.amount, fine.status) == (FINE, EntryKind.FINE, Decimal("800.00"), "A")
    ledger = app.ledger(h.case_id)
    rulebook = default_rulebook()
    expected = compute_ledger(h.events, rulebook, Options(enabled_announced=frozenset({FINE})))
    assert ledger.effective == expected and ledger.version == version + 1 and ledger.source_version == len(h.events)
    assert app.recompute(h.case_id, NOW) == []  # a second run changes nothing
    [(_, recorded)] = [(p, e) for p, e in logged_events(app) if isinstance(e, LedgerRecomputed)]
    assert recorded.enabled_announced == (FINE,) and recorded.rulebook == f"{rulebook.country} {rulebook.version}"
    subjects = [m.subject for m in render(recorded)]
    assert f"reintegration.benefits.{h.case_id}.fine" in subjects
    assert any(s.startswith("reintegration.employer.") for s in subjects)  # the employer's own fine: its feed
    app.close()

    app = build_benefits(settings)  # switched off again: the fine is reversed, not edited away
    [reversal] = app.recompute(h.case_id, NOW)
    assert (reversal.kind, reversal.reverses, reversal.amount) == (EntryKind.REVERSAL, fine.id, Decimal("-800.00"))
    assert "recomputed under rulebook" in reversal.explanation
    entries = app.ledger(h.case_id).entries
    assert fine in entries and reversal in entries
    assert app.ledger(h.case_id).effective == compute_ledger(h.events, rulebook, Options())
    app.close()


def test_the_command_is_a_dry_run_unless_told(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    case, events = recorded_case(settings)
    app = build_benefits(settings)
    for position, event in enumerate(events, start=1):
        app.process(event, position, NOW)
    app.close()
    env = {**os.environ, **settings.to_env(), "COLUMNS": "200"}
    command = [sys.executable, "-m", "reintegration", "benefits", "recompute", "--data-dir", str(settings.data_dir)]
    dry = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    said = " ".join(dry.stderr.split())
    assert "benefits: 1 case(s) examined" in said and "0 would change (no change)" in said
    assert "REINTEGRATION_ENABLED_ANNOUNCED=none" in said and "run again with --yes" in said
    done = subprocess.run([*command, "--yes"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "0 changed (no change)" in done.stderr
    both = subprocess.run([*command, "--yes", "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert both.returncode == 2
    case_with_yes = subprocess.run([sys.executable, "-m", "reintegration", "benefits", str(case), "--yes",
                                    "--data-dir", str(settings.data_dir)], env=env, capture_output=True, text=True,
                                   timeout=120)
    assert case_with_yes.returncode == 2


TNW_2026 = "return_to_work.missed_examination_reduction.2026"


def test_a_moved_rule_start_reaches_the_service_and_a_recomputation(tmp_path: Path) -> None:
    """REINTEGRATION_RULE_STARTS moves the 10 % Terug Naar Werk sanction to 1 Jan 2026: the benefits service built from
    the environment applies it to a second miss in January, and a recomputation after the move reverses the 2.5 %
    it had recorded under the default start. Real SQLite store."""
    settings = Settings.from_env({"REINTEGRATION_DATA_DIR": str(tmp_path / "data")})
    h = History(start=date(2025, 9, 1))
    h.miss(date(2025, 11, 3))
    h.miss(date(2026, 1, 20))
    app = build_benefits(settings)
    for position, event in enumerate(h.events, start=1):
        assert app.process(event, position, NOW) is Outcome.APPLIED
    [before] = [e for e in app.ledger(h.case_id).effective if e.kind is EntryKind.REDUCTION]
    assert (before.rule, before.percentage) == ("return_to_work.missed_examination_reduction", Decimal("2.5"))
    app.close()

    moved = Settings.from_env({**settings.to_env(), "REINTEGRATION_RULE_STARTS": f"{TNW_2026}=2026-01-01"})
    app = build_benefits(moved)
    assert app.rulebook.label.endswith(f"(starts: {TNW_2026}=2026-01-01)")
    made = app.recompute(h.case_id, NOW)
    assert {(e.kind, e.reverses) for e in made} == {(EntryKind.REVERSAL, before.id), (EntryKind.REDUCTION, None)}
    [after] = [e for e in app.ledger(h.case_id).effective if e.kind is EntryKind.REDUCTION]
    assert (after.rule, after.percentage, after.period_start) == (TNW_2026, Decimal("10"), date(2026, 1, 20))
    [(_, recorded)] = [(p, e) for p, e in logged_events(app) if isinstance(e, LedgerRecomputed)]
    assert recorded.rulebook == app.rulebook.label  # the record names the moved start
    app.close()

    env = {**os.environ, **moved.to_env(), "COLUMNS": "200"}
    dry = subprocess.run([sys.executable, "-m", "reintegration", "benefits", "recompute", "--data-dir",
                          str(settings.data_dir)], env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert f"REINTEGRATION_RULE_STARTS={TNW_2026}=2026-01-01" in " ".join(dry.stderr.split())
    wrong = subprocess.run([sys.executable, "-m", "reintegration", "benefits", "recompute", "--data-dir",
                            str(settings.data_dir)], env={**env, "REINTEGRATION_RULE_STARTS": "force_majeure.contribution=2026-02-01"},
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0 and "is not marked uncertain" in wrong.stderr
