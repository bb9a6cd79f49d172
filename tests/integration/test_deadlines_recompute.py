"""`reintegration deadlines recompute`: a changed policy (or rulebook) reaches every stored schedule, once.

Real SQLite stores: a case applied by the deadlines application under one policy, then recomputed under another.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from services.deadlines.application import build_deadlines
from services.deadlines.outbox import render
from services.deadlines.schedule import ScheduleRecomputed
from services.intake.application import build_intake
from shared.infra.derived import Outcome
from shared.infra.settings import Settings
from shared.infra.store import logged_events
from shared.rulebook import default_rulebook
from shared.rulebook.deadlines import Policy, compute_deadlines
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, NOW, OHS_PARTY, assessment, incapacity, request

ASSESSMENT = "trajectory.assessment"


def recorded_case(settings: Settings):
    """A request received on Saturday 13 Apr 2024: 49 days later is Saturday 1 Jun (Monday 3 Jun rolled)."""
    intake = build_intake(settings)
    case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), NOW).case_id
    intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 13)), NOW)
    intake.submit(OHS_PARTY, assessment(case, date(2024, 5, 20), "BE-2022", "A"), NOW)
    events = intake.case_events(case)
    intake.close()
    return case, events


def by_rule(deadlines) -> dict[str, object]:
    return {d.rule: d for d in deadlines}


def test_a_policy_change_is_recorded_once_and_published_as_recomputed(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    case, events = recorded_case(settings)
    before = build_deadlines(settings)
    for position, event in enumerate(events[:2], start=1):
        assert before.process(event, position, NOW) is Outcome.APPLIED
    assert by_rule(before.schedule(case).deadlines.values())[ASSESSMENT].due_on == date(2024, 6, 1)
    before.close()

    rolled = dataclasses.replace(settings, roll_forward=True)
    app = build_deadlines(rolled)
    version = app.schedule(case).version
    preview = app.recompute(case, NOW, record=False)
    assert app.schedule(case).version == version  # a dry run records nothing
    changes = app.recompute(case, NOW)
    assert changes == preview
    assessment_change = next(c for c in changes if c.deadline.rule == ASSESSMENT)
    assert (assessment_change.change, assessment_change.deadline.due_on, assessment_change.deadline.policy) == (
        "recomputed", date(2024, 6, 3), "roll-forward")
    rulebook = default_rulebook()
    expected = {d.id: d for d in compute_deadlines(events[:2], rulebook, Policy(roll_forward=True))}
    schedule = app.schedule(case)
    assert schedule.deadlines == expected and schedule.version == version + 1 and schedule.source_version == 2
    assert app.recompute(case, NOW) == []  # a second run changes nothing
    assert app.schedule(case).version == version + 1

    # recorded with the rulebook and policy, and published like any step: on the case's recomputed subject
    [(_, recorded)] = [(p, e) for p, e in logged_events(app) if isinstance(e, ScheduleRecomputed)]
    assert (recorded.policy, recorded.rulebook) == ("roll-forward", f"{rulebook.country} {rulebook.version}")
    subjects = [m.subject for m in render(recorded)]
    assert f"reintegration.deadlines.{case}.recomputed" in subjects

    # the next report is applied on top of the recomputed schedule: still the pure function of the history
    assert app.process(events[2], 3, NOW) is Outcome.APPLIED
    expected = {d.id: d for d in compute_deadlines(events, rulebook, Policy(roll_forward=True))}
    assert app.schedule(case).deadlines == expected
    assert by_rule(expected.values())[ASSESSMENT].state == "met"
    app.close()


def test_the_command_recomputes_every_case_and_says_what_changed(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    case, events = recorded_case(settings)
    app = build_deadlines(settings)
    for position, event in enumerate(events[:2], start=1):
        app.process(event, position, NOW)
    app.close()
    env = {**os.environ, **settings.to_env(), "COLUMNS": "200"}
    command = [sys.executable, "-m", "reintegration", "deadlines", "recompute", "--data-dir", str(settings.data_dir)]

    same = subprocess.run([*command, "--yes"], env=env, capture_output=True, text=True, timeout=120)
    assert same.returncode == 0, same.stderr
    assert "1 case(s) examined" in same.stderr and ": 0 changed (no change)" in same.stderr

    env["REINTEGRATION_ROLL_FORWARD"] = "yes"
    for dry_args in ([], ["--dry-run"]):  # a dry run unless --yes
        dry = subprocess.run([*command, *dry_args], env=env, capture_output=True, text=True, timeout=120)
        assert dry.returncode == 0, dry.stderr
        said = " ".join(dry.stderr.split())
        assert "1 would change" in said and "nothing recorded (a dry run)" in said, said
        assert "REINTEGRATION_ROLL_FORWARD=yes" in said and "run again with --yes" in said
    done = subprocess.run([*command, "--yes"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "policy roll-forward: 1 changed" in done.stderr and "recomputed" in done.stderr
    again = subprocess.run([*command, "--yes"], env=env, capture_output=True, text=True, timeout=120)
    assert ": 0 changed (no change)" in again.stderr
    both = subprocess.run([*command, "--yes", "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert both.returncode == 2

    check = build_deadlines(dataclasses.replace(settings, roll_forward=True))
    assert by_rule(check.schedule(case).deadlines.values())[ASSESSMENT].due_on == date(2024, 6, 3)
    check.close()


def test_the_auditor_verifies_a_recomputed_schedule(tmp_path: Path) -> None:
    """`audit verify` under the new policy: different before the recomputation, verified after it."""
    from services.audit.auditor import Auditor
    from services.benefits.application import build_benefits

    settings = Settings(data_dir=tmp_path / "data")
    case, events = recorded_case(settings)
    for build in (build_deadlines, build_benefits):
        app = build(settings)
        for position, event in enumerate(events, start=1):
            app.process(event, position, NOW)
        app.close()
    rolled = dataclasses.replace(settings, roll_forward=True)
    with Auditor(rolled) as auditor:
        assert auditor.verify(case).status == "different"
    app = build_deadlines(rolled)
    assert app.recompute(case, NOW)
    app.close()
    with Auditor(rolled) as auditor:
        verdict = auditor.verify(case)
    assert verdict.status == "verified", verdict
