"""The auditor over real SQLite stores: verification against the pure functions, precise differences when a
derived store was altered, time travel, the law that applied, explanations.

The helpers here (recording the cases, applying them, editing stored bytes) are shared by ``test_audit_*.py``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from reintegration.audit_cli import audit_app
from reintegration.operate import intake_log
from services.audit import Auditor
from services.benefits.application import build_benefits
from services.deadlines.application import build_deadlines
from services.intake.application import build_intake
from services.intake.case import project_case
from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.infra.settings import Settings
from shared.rulebook import default_rulebook
from shared.rulebook.benefits import compute_ledger, effective
from shared.rulebook.deadlines import compute_deadlines
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, assessment, incapacity, plan, request, rid

DAY = timedelta(days=1)
START = datetime(2024, 6, 1, 9, tzinfo=UTC)


# --- shared helpers ------------------------------------------------------------------------------------------------


def record_cases(settings: Settings, diagnosis: str = "lumbar hernia") -> dict[str, uuid.UUID]:
    """Five cases, each report received one day after the previous one (so that time travel has steps):

    * ``open``: BE-2022 trajectory, assessed and planned; ``waiting``: BE-2022 request, no assessment yet;
    * ``closed``: BE-2022 request, then closed; ``old``: a BE-2016 trajectory of 2019 (reported in 2024);
    * ``rehab``: vocational rehabilitation with an hourly premium and a reimbursement (a ledger with amounts).
    """
    intake = build_intake(settings)
    clock = iter(START + n * DAY for n in range(100))
    cases: dict[str, uuid.UUID] = {}

    def opened(name: str, start: date, insz: str) -> uuid.UUID:
        cases[name] = intake.submit(FUND_PARTY, incapacity(start, insz=insz, diagnosis=diagnosis), next(clock)).case_id
        return cases[name]

    c = opened("open", date(2024, 1, 10), "85073003328")
    intake.submit(EMPLOYER_PARTY, request(c, date(2024, 4, 10)), next(clock))
    intake.submit(OHS_PARTY, assessment(c, date(2024, 5, 2), "BE-2022", "A"), next(clock))
    intake.submit(EMPLOYER_PARTY, plan(c, date(2024, 6, 3)), next(clock))
    c = opened("waiting", date(2024, 1, 11), "74091512374")
    intake.submit(EMPLOYER_PARTY, request(c, date(2024, 4, 11)), next(clock))
    c = opened("closed", date(2024, 1, 12), "90010100123")
    intake.submit(EMPLOYER_PARTY, request(c, date(2024, 4, 12)), next(clock))
    intake.submit(FUND_PARTY, r.CaseClosed(report_id=rid(), case_id=c, closed_on=date(2024, 5, 1), reason="recovered"),
                  next(clock))
    c = opened("old", date(2019, 1, 10), "85073003328")
    intake.submit(EMPLOYER_PARTY, request(c, date(2019, 6, 10)), next(clock))
    intake.submit(OHS_PARTY, assessment(c, date(2019, 7, 2), "BE-2016", "A"), next(clock))
    c = opened("rehab", date(2023, 1, 10), "90010100123")
    for report in (
        r.VocationalRehabilitationProposed(report_id=rid(), case_id=c, proposed_on=date(2024, 1, 10)),
        r.VocationalRehabilitationApproved(report_id=rid(), case_id=c, approved_on=date(2024, 2, 1)),
        r.TrainingHoursAttended(report_id=rid(), case_id=c, period_start=date(2024, 3, 4), period_end=date(2024, 3, 8),
                                hours=Decimal("10")),
        r.RehabilitationCostsReported(report_id=rid(), case_id=c, incurred_on=date(2024, 3, 4),
                                      cost_kind=r.CostKind.TRANSPORT, amount=Decimal("250.40")),
    ):
        intake.submit(FUND_PARTY, report, next(clock))
    intake.close()
    return cases


def apply_all(settings: Settings, skip: Callable[[CaseEvent], bool] = lambda e: False) -> None:
    """Apply the intake store's log to both derived services, as ``rebuild`` does (no NATS)."""
    events = [(p, e) for p, e in intake_log(settings) if not skip(e)]
    for build in (build_deadlines, build_benefits):
        app = build(settings)
        app.rebuild_from(events, now=lambda: datetime(2024, 9, 1, tzinfo=UTC))
        app.close()


def history_of(settings: Settings, case_id: uuid.UUID) -> list[CaseEvent]:
    intake = build_intake(settings)
    try:
        return intake.case_events(case_id)
    finally:
        intake.close()


def stored_rows(path: Path, originator: uuid.UUID) -> list[tuple[int, str, bytes]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT originator_version, topic, state FROM stored_events WHERE originator_id=? "
                          "ORDER BY originator_version", (originator.hex,)).fetchall()


def write_state(path: Path, originator: uuid.UUID, version: int, state: bytes) -> None:
    with sqlite3.connect(path) as db:
        changed = db.execute("UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=?",
                             (state, originator.hex, version)).rowcount
    assert changed == 1


def edit_json(path: Path, originator: uuid.UUID, version: int, edit: Callable[[dict[str, Any]], None]) -> None:
    """Decode one stored event's JSON, change it, re-encode it and write it back (what a forger would do)."""
    (state,) = (s for v, _, s in stored_rows(path, originator) if v == version)
    data = json.loads(state)
    edit(data)
    write_state(path, originator, version, json.dumps(data).encode())


def jsonable(value: Any) -> Any:
    return json.loads(msgspec.json.encode(value))


def cli(*args: str, data_dir: Path, **env: str) -> Any:
    result = CliRunner().invoke(audit_app, [*args, "--data-dir", str(data_dir)], env={"COLUMNS": "250", **env})
    return result


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Settings, dict[str, uuid.UUID]]:
    settings = Settings(data_dir=tmp_path / "data")
    cases = record_cases(settings)
    apply_all(settings)
    return settings, cases


# --- verification --------------------------------------------------------------------------------------------------


def test_a_clean_run_verifies_and_a_service_not_caught_up_is_behind(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    cases = record_cases(settings)
    last_of_rehab = len(history_of(settings, cases["rehab"]))
    apply_all(settings, skip=lambda e: e.case_id == cases["rehab"] and e.version == last_of_rehab)
    with Auditor(settings) as auditor:
        seen: list[tuple[int, int]] = []
        report = auditor.verify_all(lambda done, total: seen.append((done, total)))
    assert report.cases == 5 and seen[-1] == (5, 5)
    assert report.counts == {"verified": 4, "behind": 1, "parked": 0, "different": 0, "broken": 0}, report
    assert report.ok
    behind = next(v for v in report.verdicts if v.status == "behind")
    assert behind.case_id == str(cases["rehab"]) and behind.differences == []
    assert f"deadlines has applied {last_of_rehab - 1} of {last_of_rehab} events" in behind.notes
    result = cli("verify", data_dir=settings.data_dir)
    assert result.exit_code == 0, result.output
    assert "everything verifies" in result.stdout
    as_json = json.loads(cli("verify", "--json", data_dir=settings.data_dir).stdout)
    assert as_json["ok"] is True and as_json["counts"]["verified"] == 4


def test_a_tampered_recorded_deadline_is_reported_with_the_exact_field(
    recorded: tuple[Settings, dict[str, uuid.UUID]],
) -> None:
    settings, cases = recorded
    case = cases["open"]
    schedule_id = uuid.uuid5(case, "deadlines")
    path = settings.data_dir / "deadlines.sqlite"
    target = {}

    def move_due_date(step: dict[str, Any]) -> None:
        change = next(c for c in step["changes"] if c["deadline"]["rule"] == "trajectory.assessment")
        target["id"], target["due"] = change["deadline"]["id"], change["deadline"]["due_on"]
        change["deadline"]["due_on"] = "2024-06-30"

    met_step = 3  # the assessment (version 3) met the deadline: the last step that records it
    edit_json(path, schedule_id, met_step, move_due_date)
    with Auditor(settings) as auditor:
        verdict = auditor.verify(case)
        others = [auditor.verify(c).status for name, c in cases.items() if name != "open"]
    assert verdict.status == "different" and set(others) == {"verified"}
    [diff] = verdict.differences
    assert (diff.store, diff.item, diff.rule, diff.field) == ("deadlines", target["id"], "trajectory.assessment",
                                                              "due_on")
    assert (diff.recorded, diff.recomputed) == ("2024-06-30", target["due"])
    result = cli("verify", str(case), data_dir=settings.data_dir)
    assert result.exit_code == 1
    assert f"deadlines {target['id']} trajectory.assessment: due_on: recorded 2024-06-30, recomputed " \
           f"{target['due']}" in result.stdout
    assert cli("verify", data_dir=settings.data_dir).exit_code == 1


def test_a_dropped_step_and_a_tampered_ledger_entry_are_reported(
    recorded: tuple[Settings, dict[str, uuid.UUID]],
) -> None:
    settings, cases = recorded
    with sqlite3.connect(settings.data_dir / "deadlines.sqlite") as db:
        db.execute("DELETE FROM stored_events WHERE originator_id=? AND originator_version=2",
                   (uuid.uuid5(cases["open"], "deadlines").hex,))
    ledger_id = uuid.uuid5(cases["rehab"], "benefits")
    path = settings.data_dir / "benefits.sqlite"
    entry: dict[str, Any] = {}
    for version, _, state in stored_rows(path, ledger_id):
        found = [e for e in json.loads(state)["entries"] if e["rule"] == "rehabilitation.hourly_premium"]
        if found:
            entry.update(found[0], version=version)

    def raise_premium(step: dict[str, Any]) -> None:
        next(e for e in step["entries"] if e["id"] == entry["id"])["amount"] = "55.00"

    edit_json(path, ledger_id, entry["version"], raise_premium)
    with Auditor(settings) as auditor:
        dropped, ledger = auditor.verify(cases["open"]), auditor.verify(cases["rehab"])
    assert dropped.status == "different"
    assert dropped.differences[0].store == "deadlines" and "version 2 is missing" in dropped.differences[0].message
    assert ledger.status == "different"
    [diff] = ledger.differences
    assert (diff.store, diff.item, diff.rule, diff.field, diff.recorded, diff.recomputed) == (
        "benefits", entry["id"], "rehabilitation.hourly_premium", "amount", "55.00", "50.00")


# --- time travel and the law that applied ---------------------------------------------------------------------------


def test_the_case_as_of_a_date_is_the_state_built_from_the_events_known_then(
    recorded: tuple[Settings, dict[str, uuid.UUID]],
) -> None:
    settings, cases = recorded
    case = cases["open"]
    events = history_of(settings, case)
    rulebook = default_rulebook()
    for version in range(1, len(events) + 1):
        known = events[:version]
        day = known[-1].recorded_at.date()  # each report arrived on its own day (09:00 UTC)
        result = cli("asof", str(case), "--time", day.isoformat(), "--json", data_dir=settings.data_dir)
        assert result.exit_code == 0, result.output
        view = json.loads(result.stdout)
        assert view["version"] == version and view["question"].startswith("As known then")
        assert [e["version"] for e in view["events"]] == list(range(1, version + 1))
        assert view["case"] == jsonable(project_case(None, known))
        deadlines = [{k: v for k, v in d.items() if k not in ("outcome", "overdue_then")} for d in view["deadlines"]]
        assert deadlines == jsonable(compute_deadlines(known, rulebook))
        assert view["ledger"] == jsonable(effective(compute_ledger(known, rulebook)))
        assert view["recorded"]["agree"] is True and view["recorded"]["deadlines_version"] == version
    with Auditor(settings) as auditor:
        before_anything = auditor.as_of(case, time=START - DAY)
        by_version = auditor.as_of(case, version=2)
        open_then = {d["rule"] for d in by_version.deadlines if d["id"] in by_version.open_deadlines}
    assert before_anything.version == 0 and before_anything.case is None
    assert by_version.case == jsonable(project_case(None, events[:2]))
    assert "trajectory.assessment" in open_then  # requested, not yet assessed at version 2


def test_the_law_that_applied_is_the_regime_of_each_effective_date(
    recorded: tuple[Settings, dict[str, uuid.UUID]],
) -> None:
    settings, cases = recorded
    with Auditor(settings) as auditor:
        view = auditor.applied(cases["old"], on=date(2019, 6, 30))
    assert view.question.startswith("The law that applied") and view.regime_on == "BE-2016"
    rows = [(e.type, e.regime, e.recorded_regime, e.regime_when_received, e.effective_by_then, e.known_by_then)
            for e in view.events]
    assert rows == [
        ("incapacity_reported.v1", "BE-2016", "BE-2016", "BE-2022", True, False),
        ("trajectory_requested.v1", "BE-2016", "BE-2016", "BE-2022", True, False),
        ("assessment_issued.v1", "BE-2016", "BE-2016", "BE-2022", False, False),
    ]
    result = cli("applied", str(cases["old"]), data_dir=settings.data_dir)
    assert result.exit_code == 0 and "regime in force on its effective date" in result.stdout


def test_explain_names_rule_basis_regime_inputs_and_causing_events(
    recorded: tuple[Settings, dict[str, uuid.UUID]],
) -> None:
    settings, cases = recorded
    with Auditor(settings) as auditor:
        schedule = auditor.as_of(cases["open"], version=4)
        deadline_id = next(d["id"] for d in schedule.deadlines if d["rule"] == "trajectory.assessment")
        d = auditor.explain(cases["open"], deadline_id[:8])
        premium_id = next(e["id"] for e in auditor.as_of(cases["rehab"], version=5).ledger
                          if e["rule"] == "rehabilitation.hourly_premium")
        e = auditor.explain(cases["rehab"], premium_id)
    assert (d["rule"], d["regime"], d["status"], d["state"], d["calendar"], d["policy"]) == (
        "trajectory.assessment", "BE-2022", "C", "met", "BE-legal-holidays", "no-roll-forward")
    assert "KB 11 Sep 2022" in d["legal_basis"] and d["inputs"]["amount"] == 49
    assert d["inputs"]["due_on"] == "2024-05-29" and d["verified"] is True
    assert [(c["role"], c["type"], c["reported_by"], c["effective_date"]) for c in d["caused_by"]] == [
        ("started", "trajectory_requested.v1", "employer:0403170701", "2024-04-10"),
        ("closed", "assessment_issued.v1", "occupational_health_service:0202239951", "2024-05-02"),
    ]
    assert "49 calendar days" in d["explanation"]
    assert (e["kind"], e["inputs"]["amount"], e["in_force"], e["verified"]) == ("premium", "50.00", True, True)
    assert [c["type"] for c in e["caused_by"]] == ["training_hours_attended.v1"]
    shown = cli("explain", str(cases["open"]), deadline_id, data_dir=settings.data_dir)
    assert shown.exit_code == 0 and "started by" in shown.stdout and "trajectory_requested.v1" in shown.stdout
    missing = cli("explain", str(cases["open"]), "ffffffff", data_dir=settings.data_dir)
    assert missing.exit_code == 2 and "no deadline or ledger entry" in missing.stderr


def test_a_parked_case_is_not_verified(tmp_path: Path) -> None:
    """A case a derived service parked (it could not apply one of its events) waits for an operator for good: verify
    says so, names the service, version and reason, and does not report "everything verifies"."""
    from datetime import UTC, datetime

    from services.deadlines.application import build_deadlines

    settings = Settings(data_dir=tmp_path / "data")
    cases = record_cases(settings)
    last_of_rehab = len(history_of(settings, cases["rehab"]))
    apply_all(settings, skip=lambda e: e.case_id == cases["rehab"] and e.version == last_of_rehab)
    deadlines = build_deadlines(settings)
    deadlines.park(cases["rehab"], last_of_rehab, "ValueError: a step that failed", datetime(2026, 11, 2, tzinfo=UTC))
    deadlines.close()
    with Auditor(settings) as auditor:
        report = auditor.verify_all()
        verdict = auditor.verify(cases["rehab"])
    assert report.counts == {"verified": 4, "behind": 0, "parked": 1, "different": 0, "broken": 0}, report
    assert not report.ok
    assert verdict.status == "parked"
    assert f"deadlines parked the case at version {last_of_rehab} on 2026-11-02: ValueError" in " ".join(verdict.notes)
    result = cli("verify", data_dir=settings.data_dir)
    assert result.exit_code == 1 and "1 parked case(s)" in result.output and "everything verifies" not in result.output
    assert cli("verify", str(cases["rehab"]), data_dir=settings.data_dir).exit_code == 1
