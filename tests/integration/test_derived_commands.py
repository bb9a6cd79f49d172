"""The case worker's and operator's commands: simulate without a server, rebuild without NATS, query over NATS."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import nats

from services.intake.application import build_intake
from shared.embedded.natsserver import EmbeddedNatsServer
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import wait_until
from shared.events.subjects import QUERY_PREFIX
from shared.infra.settings import Settings
from shared.rulebook import default_rulebook
from shared.rulebook.deadlines import compute_deadlines
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, assessment, incapacity, plan, request

CLI = [sys.executable, "-m", "reintegration"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_simulate_prints_deadlines_and_ledger_without_a_server(tmp_path: Path) -> None:
    lines = [
        msgspec.json.encode(incapacity(date(2024, 1, 10))).decode(),
        json.dumps({"type": "trajectory_requested.v1", "report_id": "5b0e3a52-1d0c-4c1e-9a55-0c5a6a1d2e01",
                    "initiator": "employer", "received_on": "2024-04-10"}),
        json.dumps({"type": "assessment_issued.v1", "report_id": "5b0e3a52-1d0c-4c1e-9a55-0c5a6a1d2e02",
                    "issued_on": "2024-05-02", "regime": "BE-2022", "decision": "A"}),
        json.dumps({"type": "plan_submitted.v1", "report_id": "5b0e3a52-1d0c-4c1e-9a55-0c5a6a1d2e03",
                    "submitted_on": "2024-07-05", "unfitness": "temporary", "measures": [{"kind": "adapted_hours"}]}),
    ]
    file = tmp_path / "case.jsonl"
    file.write_text("\n".join(lines) + "\n")
    result = run("simulate", str(file), "--json", "--today", "2024-07-10")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    [case] = out["cases"]
    by_rule = {d["rule"]: d for d in case["deadlines"]}
    assert by_rule["trajectory.assessment"]["state"] == "met"
    assert by_rule["trajectory.assessment"]["due_on"] == "2024-05-29"  # 49 days from the day after 10 Apr
    assert by_rule["trajectory.plan.temporary"]["late"] is True  # 63 days from 2 May: 4 Jul; submitted 5 Jul
    assert by_rule["trajectory.plan.answer"]["due_on"] == "2024-07-19"  # 14 days after 5 Jul
    assert len(case["events"]) == 4 and out["rejected"] == []
    table = run("simulate", str(file), "--today", "2024-07-10")
    assert table.returncode == 0 and "trajectory.plan.answer" in table.stdout

    file.write_text("\n".join([*lines, json.dumps({"type": "plan_submitted.v1", "report_id":
                     "5b0e3a52-1d0c-4c1e-9a55-0c5a6a1d2e04", "submitted_on": "2024-07-06", "unfitness": "temporary",
                     "measures": [{"kind": "x"}]})]) + "\n")
    rejected = run("simulate", str(file), "--today", "2024-07-10")
    assert rejected.returncode == 1 and "line 5 rejected" in rejected.stdout and "already submitted" in rejected.stdout
    as_json = json.loads(run("simulate", str(file), "--json", "--today", "2024-07-10").stdout)
    [refusal] = as_json["rejected"]  # an object a machine reads, not a sentence to parse
    assert refusal["line"] == 5 and refusal["code"] == "invalid_state" and "already submitted" in refusal["message"]
    assert set(refusal) == {"line", "code", "field", "rule", "regime", "message"}


def test_simulate_says_why_when_the_first_line_is_refused_rather_than_a_missing_case_id(tmp_path: Path) -> None:
    """A refused opening does not cascade: each later line says the case was not opened and why; a line that is
    not JSON is a rejection of that line, not a traceback."""
    file = tmp_path / "case.jsonl"
    file.write_text("\n".join([
        msgspec.json.encode(incapacity(date(2024, 1, 10), insz="85073003300")).decode(),  # not a national number
        json.dumps({"type": "trajectory_requested.v1", "report_id": "5b0e3a52-1d0c-4c1e-9a55-0c5a6a1d2e01",
                    "initiator": "employer", "received_on": "2024-04-10"}),
        "{not json",
        json.dumps({"party": "employr:0403170701", "report": {"type": "case_closed.v1"}}),
    ]) + "\n")
    result = run("simulate", str(file), "--json", "--today", "2024-07-10")
    assert result.returncode == 1, result.stderr
    first, second, third, fourth = json.loads(result.stdout)["rejected"]
    assert (fourth["line"], fourth["code"], fourth["field"]) == (4, "invalid_field", "$.party")
    assert (first["line"], first["code"], first["field"]) == (1, "invalid_identifier", "$.insz")
    assert (second["line"], second["code"]) == (2, "case_not_opened")
    assert "line 1 was rejected" in second["message"] and "case_id" not in second["message"]
    assert (third["line"], third["code"]) == (3, "malformed")


def test_simulate_runs_every_case_of_a_file_so_the_once_per_employer_premium_goes_to_the_first(
        tmp_path: Path) -> None:
    """Two incapacities of one worker at one employer, each with a qualifying resumption: the second case's lines
    follow its own opening line and belong to it; the premium is the first case's, the second is told why not; a
    premium known from outside the file (--prior-premium) leaves none to either."""
    from tests.integration.test_benefits_premium import FIRST, SECOND, WORKER, reports

    lines = []
    for q in (FIRST, SECOND):
        lines.append(msgspec.json.encode(incapacity(q.start, insz=WORKER)).decode())
        for report in reports(uuid.uuid4(), q):  # the case id is left out: the line belongs to the case above
            data = msgspec.to_builtins(report)
            del data["case_id"]
            lines.append(json.dumps(data))
    file = tmp_path / "two-cases.jsonl"
    file.write_text("\n".join(lines) + "\n")

    def premiums(*options: str) -> list[list[tuple[str, str]]]:
        result = run("simulate", str(file), "--json", "--today", "2025-02-03", *options)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert [len(c["events"]) for c in out["cases"]] == [4, 3] and out["rejected"] == []
        return [[(e["kind"], e["rule"]) for e in c["ledger"] if e["rule"].startswith("return_to_work_premium")]
                for c in out["cases"]]

    first, second = premiums()
    assert first == [("premium", "return_to_work_premium.2023")]
    assert second == [("notice", "return_to_work_premium.2024")]
    assert premiums("--prior-premium") == [[("notice", "return_to_work_premium.2023")],
                                           [("notice", "return_to_work_premium.2024")]]
    table = run("simulate", str(file), "--today", "2025-02-03")
    assert table.returncode == 0 and "2 case(s), 7 reports recorded" in table.stdout
    assert "the premium was already received in another case" in " ".join(table.stdout.split())


def _record_cases(settings: Settings) -> list:
    intake = build_intake(settings)
    now = datetime(2024, 8, 1, 9, tzinfo=UTC)
    cases = []
    for n, insz in enumerate(["85073003328", "74091512374"]):
        case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10 + n), insz=insz), now).case_id
        intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 10 + n)), now)
        intake.submit(OHS_PARTY, assessment(case, date(2024, 5, 2), "BE-2022", "A"), now)
        intake.submit(EMPLOYER_PARTY, plan(case, date(2024, 6, 3)), now)
        cases.append(case)
    history = {c: intake.case_events(c) for c in cases}
    intake.close()
    return [(c, history[c]) for c in cases]


def test_rebuild_from_the_intake_store_without_nats(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    cases = _record_cases(settings)
    env = settings.to_env()
    for service in ("deadlines", "benefits"):
        first = run(service, "rebuild", "--data-dir", str(settings.data_dir), env=env)
        assert first.returncode == 0, first.stderr
        assert "8 applied" in first.stdout
        again = run(service, "rebuild", "--data-dir", str(settings.data_dir), env=env)
        assert "0 applied, 8 already applied" in again.stdout  # idempotent
        fresh = run(service, "rebuild", "--fresh", "--data-dir", str(settings.data_dir), env=env)
        assert "8 applied" in fresh.stdout
    for case, events in cases:
        shown = run("deadlines", str(case), "--json", "--data-dir", str(settings.data_dir), env=env)
        assert shown.returncode == 0, shown.stderr
        recorded = {d["id"]: d for d in json.loads(shown.stdout)["deadlines"]}
        expected = {str(d.id): json.loads(msgspec.json.encode(d)) for d in compute_deadlines(events, default_rulebook())}
        assert {k: {f: v[f] for f in expected[k]} for k, v in recorded.items()} == expected
        ledger = run("benefits", str(case), "--json", "--data-dir", str(settings.data_dir), env=env)
        assert ledger.returncode == 0 and json.loads(ledger.stdout)["source_version"] == 4
    missing = run("deadlines", "not-a-case", "--data-dir", str(settings.data_dir), env=env)
    assert missing.returncode == 2 and "neither a case id nor `rebuild`" in missing.stderr + missing.stdout


async def _ask(url: str, subject: str, payload: bytes) -> dict:
    nc = await nats.connect(url)
    try:
        return json.loads((await nc.request(subject, payload, timeout=10)).data)
    finally:
        await nc.close()


def test_read_only_query_subjects_over_nats(nats_server: EmbeddedNatsServer, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    cases = _record_cases(settings)
    with Supervisor() as supervisor:
        for name, args in (("relay", ["relay"]), ("deadlines", ["serve", "deadlines"]),
                           ("benefits", ["serve", "benefits"])):
            supervisor.add(Child(name, python_module("reintegration", *args), env=settings.to_env(),
                                 log_path=tmp_path / "logs" / f"{name}.log"))
        supervisor.start_all()
        case = cases[0][0]
        question = msgspec.json.encode({"case_id": str(case)})

        def answers() -> tuple[dict, dict]:
            supervisor.check_alive()
            try:
                return (asyncio.run(_ask(nats_server.url, f"{QUERY_PREFIX}.deadlines", question)),
                        asyncio.run(_ask(nats_server.url, f"{QUERY_PREFIX}.benefits", question)))
            except nats.errors.NoRespondersError:
                return {}, {}

        answer, _ledger = wait_until(
            answers, timeout=60, what="deadlines and benefits answer at version 4",
            ready=lambda both: all(view.get("source_version") == 4 for view in both))
        rules = {d["rule"]: d["state"] for d in answer["deadlines"]}
        assert rules["trajectory.assessment"] == "met" and rules["trajectory.plan.answer"] == "open"
        bad = asyncio.run(_ask(nats_server.url, f"{QUERY_PREFIX}.deadlines", b'{"case": 1}'))
        assert "bad query" in bad["error"]


def test_read_only_commands_create_no_store_and_point_to_the_folder_that_holds_one(tmp_path: Path) -> None:
    """`deadlines CASE`, `benefits CASE` and `disclosures` pointed at a folder without their store create nothing,
    exit 2 and name the file; when a folder below holds one (the demo writes `data/demo`), they name it."""
    data = tmp_path / "data"
    (data / "demo").mkdir(parents=True)
    case = "5b0e3a52-1d0c-4c1e-9a55-0c5a6a1d2e01"
    for service, args in (("deadlines", ["deadlines", case]), ("benefits", ["benefits", case]),
                          ("disclosures", ["disclosures"])):
        (data / "demo" / f"{service}.sqlite").write_bytes(b"")  # as a demo leaves it (content does not matter)
        result = run(*args, env={"REINTEGRATION_DATA_DIR": str(data)})
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        said = " ".join((result.stdout + result.stderr).split())
        assert f"no {service} store at {data / f'{service}.sqlite'}" in said, said
        assert str(data / "demo") in said and "Traceback" not in said
    assert sorted(p.name for p in data.iterdir()) == ["demo"]  # nothing created
