"""Tables for people (issue 17, item 4), through the real command line in a pipe at 80 columns, over real stores.

At 80 columns and with output not a terminal, every table command prints no line longer than 80; every amount
("185.00 EUR") and ISO date stands unbroken on one line and every rule id whole; `deadlines CASE` and `benefits CASE`
show the item id that `audit explain` takes (and it takes it); a deadline whose timer fired shows the outcome as its
state and an explanation that says so rather than "open."; `disclosures` shows whole case ids; every table command
also prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from reintegration.cli import app
from services.deadlines.application import build_deadlines
from services.deadlines.views import schedule_view
from shared.infra.settings import Settings
from shared.rulebook.benefits_ledger import show_euro
from tests.integration.test_audit import apply_all, record_cases
from tests.integration.test_benefits_queries import TODAY, simulate_file
from tests.integration.test_benefits_queries import record as record_ledger_case
from tests.integration.test_dead_letters import Live, dead_letter_some
from tests.integration.test_dead_letters import live as live  # the fixture: a live benefits consumer

CLI = [sys.executable, "-m", "reintegration"]
NARROW = {"COLUMNS": "80"}
AMOUNT = re.compile(r"-?\d[\d,]*\.\d+ EUR")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
#: a ledger row: its number, then the id `audit explain` takes
LEDGER_ROW = re.compile(r"^\s*(\d+)  ([0-9a-f]{8})  ")
#: a deadline row: its due date, then the id `audit explain` takes
DEADLINE_ROW = re.compile(r"^(\d{4}-\d{2}-\d{2})  ([0-9a-f]{8})  ")


def run(*args: str, columns: str = "80") -> str:
    """The command as an operator runs it in a pipe (stdout not a terminal), ``COLUMNS`` wide; its stdout."""
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "COLUMNS": columns})
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def fits(out: str, width: int = 80) -> list[str]:
    """The output's lines, after checking that none is wider than ``width``."""
    lines = out.splitlines()
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, "\n".join(too_long)
    return lines


def whole(out: str, texts: Any) -> None:
    """Each of ``texts`` stands unbroken on one line of ``out``."""
    lines = out.splitlines()
    broken = [t for t in texts if not any(t in line for line in lines)]
    assert not broken, broken


def paragraph_after(lines: list[str], n: int) -> str:
    """The text below row line ``n``: its indented lines, up to the next blank line."""
    below = []
    for line in lines[n + 1:]:
        if not line.strip():
            break
        below.append(line.strip())
    return " ".join(below)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, uuid.UUID]]:
    """The auditor's five cases (test_audit), applied; the "waiting" case's assessment deadline (due 2024-05-30,
    never met) had its timer fire the day after: missed."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("audited") / "data")
    cases = record_cases(settings)
    apply_all(settings)
    app = build_deadlines(settings)
    try:
        schedule = app.schedule(cases["waiting"])
        assert schedule is not None
        deadline = next(d for d in schedule.deadlines.values() if d.rule == "trajectory.assessment")
        fired = datetime(2024, 5, 31, 4, tzinfo=UTC)
        app.timer_fired(cases["waiting"], deadline.id, deadline.due_on, fired, fired, schedule.source_version)
    finally:
        app.close()
    return settings.data_dir, cases


@pytest.fixture(scope="module")
def ledger_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, uuid.UUID]:
    """The ledger of test_benefits_queries: 8 entries (reductions, two reversed, reversals, two premiums)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("ledger") / "data")
    case_id = record_ledger_case(settings)
    apply_all(settings)
    return settings.data_dir, case_id


def test_benefits_table_is_readable_at_80_columns_and_shows_the_ids_audit_explain_takes(
    ledger_case: tuple[Path, uuid.UUID],
) -> None:
    data, case = ledger_case
    view = json.loads(run("benefits", str(case), "--json", "--data-dir", str(data)))
    entries = view["entries"]
    assert len(entries) == 8
    out = run("benefits", str(case), "--data-dir", str(data))
    lines = fits(out)
    assert len(lines) <= 14 * len(entries), len(lines)  # it was 1822 lines: rule ids two letters a line
    whole(out, {show_euro(Decimal(e["amount"])) for e in entries if e["amount"]})
    whole(out, {a for e in entries for a in AMOUNT.findall(e["explanation"])} | {"5.00 EUR", "1,725.00 EUR"})
    whole(out, {d for e in entries for d in [e["period_start"], e["period_end"], *DATE.findall(e["explanation"])]
                if d})
    whole(out, {e["rule"] for e in entries})
    shown = {int(m[1]): m[2] for line in lines if (m := LEDGER_ROW.match(line))}
    assert shown == {n: e["id"][:8] for n, e in enumerate(entries, start=1)}
    premium = next(e for e in entries if e["rule"] == "return_to_work_premium.2024")
    explained = run("audit", "explain", str(case), shown[entries.index(premium) + 1], "--data-dir", str(data))
    assert f"id: {premium['id']}" in explained and "rule: return_to_work_premium.2024" in explained
    fits(explained)


def test_deadlines_table_is_readable_and_a_missed_deadline_is_not_explained_as_open(
    audited: tuple[Path, dict[str, uuid.UUID]],
) -> None:
    data, cases = audited
    case = cases["waiting"]
    view = json.loads(run("deadlines", str(case), "--json", "--data-dir", str(data)))
    by_rule = {d["rule"]: d for d in view["deadlines"]}
    missed = by_rule["trajectory.assessment"]
    assert (missed["state"], missed["outcome"], missed["shown_state"]) == ("open", "missed", "missed")
    assert "; open" not in missed["explanation"] and not missed["explanation"].endswith("open.")
    assert missed["explanation"].endswith("missed: its timer fired on 2024-05-31 and no report had met it.")

    out = run("deadlines", str(case), "--data-dir", str(data))
    lines = fits(out)
    whole(out, {d["rule"] for d in view["deadlines"]})
    whole(out, {x for d in view["deadlines"] for x in [d["due_on"], *DATE.findall(d["explanation"])]})
    rows = {m[2]: n for n, line in enumerate(lines) if (m := DEADLINE_ROW.match(line))}
    assert set(rows) == {d["id"][:8] for d in view["deadlines"]}
    row = rows[missed["id"][:8]]
    assert lines[row].split()[-1] == "missed" and "trajectory.assessment" in lines[row]
    below = paragraph_after(lines, row)
    assert "no report had met it." in below and "open." not in below and "; open" not in below

    explained = run("audit", "explain", str(case), missed["id"][:8], "--data-dir", str(data))
    fits(explained)
    assert f"id: {missed['id']}" in explained and "state: missed" in explained
    assert "; open" not in " ".join(explained.split())


def test_a_timer_outcome_for_an_earlier_due_date_does_not_make_a_recomputed_deadline_missed(
    audited: tuple[Path, dict[str, uuid.UUID]],
) -> None:
    """The view (services.deadlines.views): an outcome recorded for the date a deadline was due on before it was
    recomputed is not its outcome now; its explanation says what the timer recorded then."""
    data, cases = audited
    app = build_deadlines(Settings(data_dir=data))
    try:
        schedule = app.schedule(cases["waiting"])
    finally:
        app.close()
    assert schedule is not None
    fired_rows = schedule_view(schedule)["deadlines"]
    assert [d["shown_state"] for d in fired_rows if d["outcome"]] == ["missed"]
    deadline = next(d for d in schedule.deadlines.values() if d.rule == "trajectory.assessment")
    earlier = msgspec.structs.replace(schedule.outcomes[deadline.id].deadline,
                                      due_on=deadline.due_on.replace(day=1))
    moved = msgspec.structs.replace(schedule, outcomes={deadline.id: msgspec.structs.replace(
        schedule.outcomes[deadline.id], deadline=earlier)})
    row = next(d for d in schedule_view(moved)["deadlines"] if d["id"] == str(deadline.id))
    assert (row["outcome"], row["shown_state"]) == (None, "open")
    assert row["explanation"].endswith("(Its timer had fired for the earlier due date 2024-05-01: missed.)")


def test_audit_tables_are_readable_at_80_columns(audited: tuple[Path, dict[str, uuid.UUID]]) -> None:
    data, cases = audited
    case = cases["old"]
    history = json.loads(run("audit", "history", str(case), "--json", "--data-dir", str(data)))
    out = run("audit", "history", str(case), "--data-dir", str(data))
    fits(out)
    whole(out, {h["type"] for h in history} | {h["effective_date"] for h in history}
          | {h["reported_by"] for h in history} | {h["recorded_at"][:19] for h in history})

    applied = run("audit", "applied", str(case), "--on", "2019-06-30", "--data-dir", str(data))
    fits(applied)
    whole(applied, {h["type"] for h in history} | {h["effective_date"] for h in history} | {"BE-2016"})

    rehab = cases["rehab"]
    asof = json.loads(run("audit", "asof", str(rehab), "--version", "5", "--json", "--data-dir", str(data)))
    out = run("audit", "asof", str(rehab), "--version", "5", "--data-dir", str(data))
    fits(out)
    whole(out, {d["id"][:8] for d in asof["deadlines"]} | {e["id"][:8] for e in asof["ledger"]}
          | {d["rule"] for d in asof["deadlines"]} | {e["rule"] for e in asof["ledger"]} | {"50.00 EUR"})

    verified = subprocess.run([*CLI, "audit", "verify", str(rehab), "--data-dir", str(data)], capture_output=True,
                              text=True, timeout=120, check=False, env={**os.environ, **NARROW})
    fits(verified.stdout)
    assert str(rehab) in verified.stdout


def test_disclosures_show_whole_case_ids(audited: tuple[Path, dict[str, uuid.UUID]]) -> None:
    data, cases = audited
    run("audit", "history", str(cases["open"]), "--json", "--data-dir", str(data))  # leaves a disclosure record
    records = [json.loads(line) for line in run("disclosures", "--json", "--data-dir", str(data)).splitlines()]
    ids = {r["case_id"] for r in records if r["case_id"]}
    assert ids
    for columns in ("80", "160"):
        out = run("disclosures", "--data-dir", str(data), columns=columns)
        fits(out, int(columns))
        whole(out, ids | {r["who"] for r in records})


def test_simulate_and_contribution_are_readable_at_80_columns(tmp_path: Path) -> None:
    file = simulate_file(tmp_path)
    [simulated] = json.loads(run("simulate", str(file), "--json", "--today", TODAY))["cases"]
    out = run("simulate", str(file), "--today", TODAY)
    fits(out)
    whole(out, {e["rule"] for e in simulated["ledger"]} | {d["rule"] for d in simulated["deadlines"]}
          | {d["id"][:8] for d in simulated["deadlines"]} | {"1,725.00 EUR", "50.00 EUR"})
    contribution = run("benefits", "contribution", "--enterprise", "0403170701", "--quarter", "2024-Q3",
                       "--previous-quarter-wages", "1234567.89", "--staff", "50", "--invalidity-entries", "3",
                       "--inflow-rate", "0.0060", "--sector-inflow-rate", "0.0030",
                       "--private-sector-inflow-rate", "0.0020")
    fits(contribution)
    whole(contribution, {"7,716.05 EUR", "1,234,567.89 EUR", "employer.responsibility_contribution"})


async def test_dead_letters_list_is_readable_at_80_columns(live: Live) -> None:
    _log, a, b = await dead_letter_some(live)
    env = {**os.environ, **NARROW, "REINTEGRATION_NATS_URL": live.settings.nats_url}

    def listed(*args: str) -> str:
        result = subprocess.run([*CLI, "dead-letters", "list", *args, "--data-dir", str(live.settings.data_dir)],
                                capture_output=True, text=True, timeout=120, check=False, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    letters = json.loads(await asyncio.to_thread(listed, "--json"))
    out = await asyncio.to_thread(listed)
    lines = fits(out)
    whole(out, {str(a), str(b)})
    rows = [line.split() for line in lines if re.match(r"^\s*\d+  ", line)]
    assert sorted((int(r[0]), r[1]) for r in rows) == sorted(
        (letter["seq"], letter["case_id"] or "-") for letter in letters)  # what `replay --seq` / `--case` take


@pytest.mark.parametrize("command", [
    ["deadlines"], ["benefits"], ["benefits", "contribution"], ["simulate"], ["disclosures"],
    ["dead-letters", "list"], ["audit", "history"], ["audit", "asof"], ["audit", "applied"], ["audit", "explain"],
    ["audit", "verify"], ["audit", "impact"],
])
def test_every_table_command_prints_json_for_machines(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "--json" in result.output
