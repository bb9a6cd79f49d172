"""`reintegration submit`: a party's sender over a real nats-server with the generated accounts and a real intake
(SQLite): every report stored once, rejections named, a re-run answered with the original acceptances, and a
store locked for a while outlasted by sending the same report again."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import msgspec
import pytest

from reintegration.client import submit, summarise
from reintegration.operate import intake_log
from reintegration.runtime import Runtime
from shared.events import reports as r
from shared.events.envelope import case_id_for
from shared.infra.parties import connect_as
from shared.infra.settings import Settings
from tests.factories import EMPLOYER, FUND, WORKER, incapacity, rid

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[tuple[Runtime, Settings]]:
    """A nats-server with the parties' accounts and intake alone, answering within 80% of a 1 s timeout."""
    runtime = Runtime(Settings(data_dir=tmp_path / "data", request_timeout=1.0), nats_port=0, services=("intake",))
    settings = runtime.start()
    try:
        runtime.wait_ready()
        yield runtime, settings
    finally:
        runtime.stop()


def creds(settings: Settings, name: str) -> Path:
    return settings.data_dir / "parties" / name


def stored_report_ids(settings: Settings) -> list[str]:
    return [str(event.report.report_id) for _, event in intake_log(settings)]


def line(report: r.Report) -> str:
    return msgspec.json.encode(report).decode()


def case_reports(start: date, count: int) -> list[r.Report]:
    """An opening report and ``count - 1`` returns to work and resumptions of the same case."""
    opening = incapacity(start)
    case = case_id_for(WORKER, EMPLOYER, start.isoformat(), FUND)
    reports: list[r.Report] = [opening]
    day = start
    for n in range(count - 1):
        day = date.fromordinal(day.toordinal() + 20)
        reports.append(r.IncapacityInterrupted(report_id=rid(), case_id=case, returned_on=day) if n % 2 == 0 else
                       r.IncapacityResumed(report_id=rid(), case_id=case, resumed_on=day))
    return reports


def run_submit(settings: Settings, file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reintegration", "submit", str(file), "--creds",
         str(creds(settings, f"health_fund-{FUND}.creds")), "--server", settings.nats_url, *extra],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)},
    )


def test_a_file_is_sent_once_rejections_are_named_and_a_rerun_is_answered_with_the_acceptances(
        intake: tuple[Runtime, Settings], tmp_path: Path) -> None:
    _, settings = intake
    opening, interrupted = case_reports(date(2025, 3, 3), 2)
    assert isinstance(interrupted, r.IncapacityInterrupted)
    too_early = msgspec.structs.replace(interrupted, report_id=rid(), returned_on=date(2025, 1, 6))
    file = tmp_path / "reports.jsonl"
    file.write_text("\n".join([
        "# a health fund's reports",
        line(opening),
        line(interrupted),
        "",
        line(too_early),  # a return before the incapacity started
        json.dumps({"type": "incapacity_ended.v1", "case_id": str(interrupted.case_id), "ended_on": "2025-09-01"}),
        "{not json",
    ]) + "\n")
    replies = tmp_path / "replies.jsonl"

    first = run_submit(settings, file, "--replies", str(replies))
    assert first.returncode == 1, first.stdout + first.stderr
    said = " ".join(first.stdout.split())
    assert "5 report(s) in the file, sent as health_fund:300" in said and "2 accepted, 1 rejected, 2 not sent" in said
    assert "no report_id: every report needs its own id" in said and "not JSON" in said
    answers = [json.loads(x) for x in replies.read_text().splitlines()]
    assert [(a["line"], a["outcome"]) for a in answers] == [
        (2, "accepted"), (3, "accepted"), (5, "rejected"), (6, "not_sent"), (7, "not_sent")]
    rejected = answers[2]["reply"]
    assert rejected["type"] == "rejected.v1" and rejected["field"] == "$.returned_on" and not rejected["retry"]
    assert rejected["code"] in said  # the summary names the code and the field
    assert answers[0]["reply"]["case_id"] == str(interrupted.case_id)
    assert stored_report_ids(settings) == [str(opening.report_id), str(interrupted.report_id)]

    again = run_submit(settings, file, "--replies", str(replies), "--json")
    assert again.returncode == 1, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["accepted"], summary["duplicate"], summary["rejected"], summary["not_sent"]) == (0, 2, 1, 2)
    repeated = [json.loads(x) for x in replies.read_text().splitlines()]
    assert [a["reply"]["version"] for a in repeated[:2]] == [1, 2]  # the original acceptances
    assert stored_report_ids(settings) == [str(opening.report_id), str(interrupted.report_id)]  # nothing twice


def test_a_party_that_sends_no_reports_is_told_so(intake: tuple[Runtime, Settings], tmp_path: Path) -> None:
    _, settings = intake
    file = tmp_path / "reports.jsonl"
    file.write_text(line(incapacity(date(2025, 3, 3))) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "reintegration", "submit", str(file), "--creds",
         str(creds(settings, "auditor-inspectorate.creds")), "--server", settings.nats_url],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2, result.stderr
    assert "only health funds, occupational health services and employers send reports" in result.stderr


def test_a_store_locked_for_a_while_is_outlasted_and_every_report_is_stored_once(
        intake: tuple[Runtime, Settings]) -> None:
    _, settings = intake
    reports = case_reports(date(2025, 5, 5), 6)
    locked = threading.Event()

    def hold() -> None:
        lock = sqlite3.connect(settings.data_dir / "intake.sqlite", timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(3.0)  # three request timeouts: intake answers `retry: true` meanwhile
        lock.execute("COMMIT")
        lock.close()

    holder = threading.Thread(target=hold)

    async def send() -> list:
        nc = await connect_as(creds(settings, f"health_fund-{FUND}.creds"), settings.nats_url)
        try:
            holder.start()
            locked.wait(5)
            return await submit(nc, f"health_fund:{FUND}", [line(x) for x in reports], timeout=1.0)
        finally:
            await nc.close()

    results = asyncio.run(send())
    holder.join()
    summary = summarise(results)
    assert summary["accepted"] + summary["duplicate"] == len(reports) and summary["retried"] >= 1, summary
    assert not summary["rejected"] and not summary["unanswered"]
    assert stored_report_ids(settings) == [str(x.report_id) for x in reports]  # each once, in order
    print(f"submit: {len(reports)} reports through a store locked 3 s: {summary['accepted']} accepted, "
          f"{summary['duplicate']} answered as duplicates, {summary['retried']} sent more than once, "
          f"{max(x.attempts for x in results)} attempts at most; each stored once")
