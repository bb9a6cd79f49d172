"""`reintegration ask`: an auditor's questions over NATS with its own credentials, against a running system (all
services, the generated accounts, real nats-server and SQLite): each answer equals the local `reintegration audit`
answer, and each leaves one disclosure record naming the authenticated auditor."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.demo import feed, wait_for_derived
from lab.generator import Generator
from reintegration.operate import intake_log
from reintegration.runtime import Runtime
from services.disclosures.log import build_disclosures
from shared.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
AUDITOR = "auditor:inspectorate"


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reintegration", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120",
                               "REINTEGRATION_DATA_DIR": str(settings.data_dir), "REINTEGRATION_AUDITOR": "local"})


def auditor_records(settings: Settings) -> list[Any]:
    log = build_disclosures(settings)
    try:
        return [r for r in log.records() if r.who == AUDITOR]
    finally:
        log.close()


@pytest.mark.slow
def test_each_answer_over_nats_equals_the_local_one_and_leaves_one_record_naming_the_auditor(
        tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), nats_port=0)
    settings = runtime.start()
    try:
        runtime.wait_ready()
        asyncio.run(feed(settings.nats_url, Generator(2026).scripts(20, tour_first=True), concurrency=4,
                         **settings.nats_options()))
        assert wait_for_derived(settings, runtime)
        versions: dict[Any, int] = {}
        for _, event in intake_log(settings):
            versions[event.case_id] = event.version
        case = str(max(versions, key=lambda c: versions[c]))  # the longest history
        deadlines = json.loads(cli(settings, "deadlines", case, "--json").stdout)["deadlines"]
        creds = str(settings.data_dir / "parties" / "auditor-inspectorate.creds")
        questions = [
            ["history", case], ["asof", case, "--version", "2"], ["applied", case, "--on", "2024-06-01"],
            ["explain", case, deadlines[0]["id"][:8]], ["verify", case],
        ]
        before = len(auditor_records(settings))
        for n, question in enumerate(questions, start=1):
            remote = cli(settings, "ask", *question, "--creds", creds, "--server", settings.nats_url, "--json")
            assert remote.returncode == 0, (question, remote.stderr)
            reply = json.loads(remote.stdout)
            assert reply["asked_by"] == AUDITOR and reply["question"].startswith(question[0])
            local_args = ["audit", question[0], question[1]]
            if question[0] == "asof":
                local_args += ["--version", "2"]
            elif question[0] == "applied":
                local_args += ["--on", "2024-06-01"]
            elif question[0] == "explain":
                local_args += [question[2]]
            local = cli(settings, *local_args, "--json")
            assert local.returncode == 0, (question, local.stderr)
            assert reply["answer"] == json.loads(local.stdout), question
            records = auditor_records(settings)
            assert len(records) == before + n, question  # one record per answer, naming the authenticated auditor
            assert records[-1].case_id is not None and str(records[-1].case_id) == case
            assert str(reply["disclosure"]) in {str(r.reference) for r in records}
        table = cli(settings, "ask", "verify", case, "--creds", creds, "--server", settings.nats_url)
        assert table.returncode == 0 and f"case {case}: verified" in " ".join(table.stdout.split())
        assert "asked as auditor:inspectorate" in table.stderr
        refused = cli(settings, "ask", "history", "00000000-0000-4000-8000-000000000000", "--creds", creds,
                      "--server", settings.nats_url)
        assert refused.returncode == 2 and "refused:" in refused.stderr
        employer = cli(settings, "ask", "history", case, "--creds",
                       str(settings.data_dir / "parties" / f"employer-{Generator(2026).employers[0][0]}.creds"),
                       "--server", settings.nats_url)
        assert employer.returncode != 0  # an employer may not ask the auditor's questions
    finally:
        runtime.stop()
