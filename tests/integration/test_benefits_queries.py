"""The ledger's read paths with real entries: `reintegration benefits CASE_ID` over a real store, `simulate` (table
and --json, under the deployment's settings) and the read-only NATS query subject.

One case carries a late declaration (-10 %), a partial-resumption reduction (10 of 38 hours: 6.3157... %, first
declared as 19 hours, so a reversed entry too), the employer's 1,725 EUR return-to-work premium and a
rehabilitation hourly premium. Each path must give every entry with its explanation: rule id, legal basis, regime
and causing events.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats

from services.intake.application import build_intake
from shared.embedded.natsserver import EmbeddedNatsServer
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import wait_until
from shared.events import reports as r
from shared.events.common import Party
from shared.events.subjects import QUERY_PREFIX
from shared.infra.settings import Settings
from tests.factories import FUND_PARTY, incapacity

CLI = [sys.executable, "-m", "reintegration"]
#: Every report is received on this day (``simulate --today`` the same), so that both paths judge time alike.
RECEIVED = datetime(2024, 7, 1, 9, tzinfo=UTC)
TODAY = "2024-07-01"
#: Wide enough that no table cell wraps: the checks below read whole phrases.
WIDE = {"COLUMNS": "2000"}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def opening() -> r.IncapacityReported:
    return incapacity(date(2022, 11, 7), report_id=uuid.UUID("6f1c1a3e-0000-4111-8111-000000000001"))


def case_reports(case_id: uuid.UUID) -> list[tuple[Party, r.AnyReport]]:
    """After the opening: a late declaration of 19 hours, authorised at 10 hours, ended after the 3 months; then
    a rehabilitation project with 10 hours of training."""
    ids = (uuid.UUID(f"6f1c1a3e-0000-4111-8111-00000000001{n}") for n in range(10))
    return [
        (FUND_PARTY, r.PartialResumptionDeclared(
            report_id=next(ids), case_id=case_id, declared_on=date(2024, 1, 10), starts_on=date(2024, 1, 8),
            weekly_hours=19, full_time_hours=38)),
        (FUND_PARTY, r.PartialResumptionAuthorised(
            report_id=next(ids), case_id=case_id, authorised_on=date(2024, 1, 15), weekly_hours=10)),
        (FUND_PARTY, r.PartialResumptionEnded(report_id=next(ids), case_id=case_id, ended_on=date(2024, 5, 31))),
        (FUND_PARTY, r.VocationalRehabilitationProposed(report_id=next(ids), case_id=case_id,
                                                        proposed_on=date(2024, 6, 3))),
        (FUND_PARTY, r.VocationalRehabilitationApproved(report_id=next(ids), case_id=case_id,
                                                        approved_on=date(2024, 6, 10))),
        (FUND_PARTY, r.TrainingHoursAttended(report_id=next(ids), case_id=case_id, period_start=date(2024, 6, 17),
                                             period_end=date(2024, 6, 21), hours=Decimal("10"))),
    ]


#: rule -> (kind, amount, percentage, period, regime, the report types among its causes)
EXPECTED: dict[str, tuple[str, str | None, str | None, tuple[str, str | None], str, set[str]]] = {
    "partial_resumption.late_declaration": (
        "reduction", None, "10", ("2024-01-08", "2024-01-10"), "BE-2022", {"partial_resumption_declared.v1"}),
    "partial_resumption.reduction": (
        "reduction", None, "6.315789473684210526315789474", ("2024-01-08", "2024-05-31"), "BE-2022",
        {"partial_resumption_declared.v1", "partial_resumption_authorised.v1", "partial_resumption_ended.v1"}),
    "return_to_work_premium.2024": (
        "premium", "1725.00", None, ("2024-04-08", "2024-04-08"), "BE-2022",
        {"incapacity_reported.v1", "partial_resumption_declared.v1", "partial_resumption_authorised.v1"}),
    "rehabilitation.hourly_premium": (
        "premium", "50.00", None, ("2024-06-17", "2024-06-21"), "BE-2022", {"training_hours_attended.v1"}),
}
LEGAL_BASIS = {
    "partial_resumption.late_declaration": "KB 3 Jul 1996 (declaration of authorised work)",
    "partial_resumption.reduction": "KB 3 Jul 1996 art. 230",
    "return_to_work_premium.2024": "Programmawet 26 Dec 2022; KB 17 Jul 2023 (werkhervattingspremie)",
    "rehabilitation.hourly_premium": "RIZIV rules on socio-professional rehabilitation",
}


def record(settings: Settings) -> uuid.UUID:
    intake = build_intake(settings)
    try:
        case_id = intake.submit(FUND_PARTY, opening(), RECEIVED).case_id
        for party, report in case_reports(case_id):
            intake.submit(party, report, RECEIVED)
        return case_id
    finally:
        intake.close()


def simulate_file(tmp_path: Path, extra: list[dict[str, Any]] = ()) -> Path:  # type: ignore[assignment]
    """The same reports as a simulate file: JSON lines without case ids (the first line opens the case)."""
    lines = [msgspec.json.encode(opening()).decode()]
    for _party, report in case_reports(uuid.uuid4()):
        data = msgspec.to_builtins(report)
        del data["case_id"]
        lines.append(json.dumps(data))
    lines.extend(json.dumps(e) for e in extra)
    path = tmp_path / "case.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def check_entries(entries: list[dict[str, Any]], events: dict[str, dict[str, Any]]) -> None:
    """Each expected entry once among ``entries`` (the ones in force), with its whole explanation."""
    by_rule = {e["rule"]: e for e in entries}
    assert set(by_rule) == set(EXPECTED), sorted(by_rule)
    for rule, (kind, amount, percentage, period, regime, causes) in EXPECTED.items():
        e = by_rule[rule]
        assert (e["kind"], e["amount"], e["percentage"]) == (kind, amount, percentage), rule
        assert (e["period_start"], e["period_end"], e["regime"]) == (*period, regime), rule
        assert LEGAL_BASIS[rule] in e["legal_basis"], rule
        assert f"rule {rule}" in e["explanation"] and regime in e["explanation"], rule
        assert {events[c]["type"] for c in e["causing_events"]} >= causes, rule
    assert by_rule["partial_resumption.late_declaration"]["status"] == "U"
    assert "reduced by 6.32%" in by_rule["partial_resumption.reduction"]["explanation"]
    assert by_rule["return_to_work_premium.2024"]["concerns_employer"] is True


def check_table(out: str) -> None:
    """The table: rounded percentages, no "None %", euro amounts, legal basis and causing events per row."""
    assert "None %" not in out and "None" not in out
    assert "6.32% of the daily incapacity benefit" in out and "6.315789" not in out
    assert "10% of the daily incapacity benefit" in out
    assert "1,725.00 EUR" in out and "50.00 EUR" in out
    for rule, basis in LEGAL_BASIS.items():
        assert rule in out and basis in out
    assert "(uncertain)" in out  # the late declaration's rule is U
    assert "caused by: v1 incapacity_reported.v1 (2022-11-07)" in out
    assert "v3 partial_resumption_authorised.v1 (2024-01-15)" in out


# --- reintegration benefits CASE_ID over a real store -------------------------------------------------------------


def test_benefits_command_shows_a_real_ledger_with_its_explanations(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    case_id = record(settings)
    env = settings.to_env()
    rebuilt = run("benefits", "rebuild", "--data-dir", str(settings.data_dir), env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    shown = run("benefits", str(case_id), "--json", "--data-dir", str(settings.data_dir), env=env)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["source_version"] == 7
    effective = [e for e in view["entries"] if e["id"] in set(view["effective"])]
    check_entries(effective, view["events"])
    # Corrections are reversals, never edits: the 30 % of the declared 19 hours, and the open-ended 6.32 % before
    # the end was reported, are both still there, each reversed.
    reversed_ids = {e["reverses"] for e in view["entries"] if e["kind"] == "reversal"}
    assert {e["percentage"] for e in view["entries"] if e["id"] in reversed_ids} == {
        "30", "6.315789473684210526315789474"}

    table = run("benefits", str(case_id), "--data-dir", str(settings.data_dir), env={**env, **WIDE})
    assert table.returncode == 0, table.stderr
    check_table(table.stdout)
    rows = {e["id"]: n for n, e in enumerate(view["entries"], start=1)}
    for entry in view["entries"]:
        if entry["kind"] == "reversal":
            assert f"REVERSED by #{rows[entry['id']]}" in table.stdout
            assert f"reverses #{rows[entry['reverses']]}" in table.stdout
    assert "30% of the daily incapacity benefit" in table.stdout  # the reversed entry, marked as such


# --- simulate -------------------------------------------------------------------------------------------------------


def test_simulate_shows_the_same_entries_as_json_and_as_a_table(tmp_path: Path) -> None:
    file = simulate_file(tmp_path)
    result = run("simulate", str(file), "--json", "--today", TODAY)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    [case] = out["cases"]
    assert out["rejected"] == [] and len(case["events"]) == 7
    events = {e["event_id"]: {"type": e["report"]["type"]} for e in case["events"]}
    check_entries(case["ledger"], events)
    assert case["options"] == {"policy": "no-roll-forward", "roll_forward": False, "employer_policies": [],
                               "enabled_announced": [], "prior_premium": False}
    table = run("simulate", str(file), "--today", TODAY, env=WIDE)
    assert table.returncode == 0, table.stderr
    check_table(table.stdout)
    assert "REVERSED" not in table.stdout  # simulate shows the ledger in force only


def missed_twice() -> list[dict[str, Any]]:
    return [{"type": "return_to_work_examination_missed.v1", "report_id": f"6f1c1a3e-0000-4111-8111-0000000000{n}",
             "missed_on": day, "justified": False} for n, day in ((30, "2024-06-11"), (31, "2024-06-25"))]


def test_simulate_applies_the_deployments_settings_and_its_own_switches(tmp_path: Path) -> None:
    file = simulate_file(tmp_path, missed_twice())
    [plain] = json.loads(run("simulate", str(file), "--json", "--today", TODAY).stdout)["cases"]
    assert not [e for e in plain["ledger"] if e["rule"] == "sanction.worker.invitation"]

    deployed = {"REINTEGRATION_ENABLED_ANNOUNCED": "sanction.worker.invitation", "REINTEGRATION_ROLL_FORWARD": "yes"}
    result = run("simulate", str(file), "--json", "--today", TODAY, env=deployed)
    assert result.returncode == 0, result.stdout + result.stderr
    [out] = json.loads(result.stdout)["cases"]
    assert out["options"]["enabled_announced"] == ["sanction.worker.invitation"]
    assert out["options"]["policy"] == "roll-forward"
    assert {d["policy"] for d in out["deadlines"]} == {"roll-forward"}
    announced = [e for e in out["ledger"] if e["rule"] == "sanction.worker.invitation"]
    assert [(e["percentage"], e["status"]) for e in announced] == [("10", "A"), ("10", "A")]

    switched = run("simulate", str(file), "--json", "--today", TODAY, "--enable-announced",
                   "sanction.worker.invitation", "--no-roll-forward")
    [out] = json.loads(switched.stdout)["cases"]
    assert out["options"]["policy"] == "no-roll-forward"
    assert len([e for e in out["ledger"] if e["rule"] == "sanction.worker.invitation"]) == 2

    table = run("simulate", str(file), "--today", TODAY, env={**deployed, **WIDE})
    assert "announced sanctions enabled: sanction.worker.invitation" in table.stdout
    assert "(announced, never enacted)" in table.stdout

    bad = run("simulate", str(file), "--enable-announced", "sanction.worker.nonsense")
    assert bad.returncode == 2
    assert "--enable-announced" in bad.stderr and "'sanction.worker.nonsense' is not an announced rule" in bad.stderr


def test_simulate_agrees_with_a_deployed_service(tmp_path: Path) -> None:
    """Under one deployment's settings, simulate's ledger and deadlines are the services' own, id for id."""
    file = simulate_file(tmp_path, missed_twice())
    settings = Settings(data_dir=tmp_path / "data", roll_forward=True, enabled_announced=("sanction.worker.invitation",))
    intake = build_intake(settings)
    try:
        case_id = intake.submit(FUND_PARTY, opening(), RECEIVED).case_id
        for party, report in case_reports(case_id):
            intake.submit(party, report, RECEIVED)
        for miss in missed_twice():
            miss = {**miss, "case_id": str(case_id)}
            intake.submit(FUND_PARTY, msgspec.convert(miss, r.ReturnToWorkExaminationMissed), RECEIVED)
    finally:
        intake.close()
    env = settings.to_env()
    for service in ("deadlines", "benefits"):
        assert run(service, "rebuild", "--data-dir", str(settings.data_dir), env=env).returncode == 0
    ledger = json.loads(run("benefits", str(case_id), "--json", "--data-dir", str(settings.data_dir), env=env).stdout)
    deadlines = json.loads(run("deadlines", str(case_id), "--json", "--data-dir", str(settings.data_dir),
                               env=env).stdout)
    [simulated] = json.loads(run("simulate", str(file), "--json", "--today", TODAY, env=env).stdout)["cases"]
    assert sorted(ledger["effective"]) == sorted(e["id"] for e in simulated["ledger"])
    assert any(e["rule"] == "sanction.worker.invitation" for e in simulated["ledger"])
    assert {d["id"]: (d["due_on"], d["policy"]) for d in deadlines["deadlines"]} == {
        d["id"]: (d["due_on"], d["policy"]) for d in simulated["deadlines"]}


# --- the read-only NATS query subject -------------------------------------------------------------------------------


async def _ask(url: str, subject: str, payload: bytes) -> dict[str, Any]:
    nc = await nats.connect(url)
    try:
        return json.loads((await nc.request(subject, payload, timeout=10)).data)
    finally:
        await nc.close()


def test_benefits_query_subject_answers_with_explained_entries(nats_server: EmbeddedNatsServer,
                                                               tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    case_id = record(settings)
    with Supervisor() as supervisor:
        for name, args in (("relay", ["relay"]), ("benefits", ["serve", "benefits"])):
            supervisor.add(Child(name, python_module("reintegration", *args), env=settings.to_env(),
                                 log_path=tmp_path / "logs" / f"{name}.log"))
        supervisor.start_all()
        question = msgspec.json.encode({"case_id": str(case_id)})

        def answer() -> dict[str, Any]:
            supervisor.check_alive()
            try:
                return asyncio.run(_ask(nats_server.url, f"{QUERY_PREFIX}.benefits", question))
            except nats.errors.NoRespondersError:
                return {}

        view = wait_until(answer, timeout=60, ready=lambda view: view.get("source_version") == 7,
                          what="the benefits service answers at version 7")
        effective = [e for e in view["entries"] if e["id"] in set(view["effective"])]
        check_entries(effective, view["events"])
        then = asyncio.run(_ask(nats_server.url, f"{QUERY_PREFIX}.benefits",
                                msgspec.json.encode({"case_id": str(case_id), "version": 2})))
        assert then["source_version"] == 2  # as it was after the late declaration
        assert {e["rule"] for e in then["entries"]} == {"partial_resumption.reduction",
                                                         "partial_resumption.late_declaration"}
