"""The operator's first hour, through the real command line: a running system is found by every command, the
operator's one identity does what the operator commands do, and expected failures are one line with a documented
exit code (``--debug`` shows the traceback)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from eventsourcing.cipher import AESCipher

from reintegration.errors import CIPHER, EXIT_CODES, REFUSED, STORE, UNREACHABLE, USAGE
from reintegration.runtime import SERVICES_FILE
from services.deadlines.application import build_deadlines
from services.intake.application import build_intake
from shared.infra.parties import connect_as
from shared.infra.settings import (
    SYSTEM_FILE,
    Settings,
    mark_system_ready,
    read_system_file,
    remove_system_file,
    write_system_file,
)
from shared.infra.telemetry import readiness
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, incapacity, request

CLI = [sys.executable, "-m", "reintegration"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any REINTEGRATION_* setting (as a new operator's shell), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REINTEGRATION_")}
    return {**env, "COLUMNS": "80", **extra}


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False,
                          env=clean_env(**env))


def said(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def one_line_failure(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    out = said(result)
    assert result.returncode == code, out
    assert words in " ".join(out.split()), out
    assert "Traceback" not in out and "╭" not in out, out  # no traceback, plain or rich


def test_a_running_system_is_found_by_every_operator_command_through_its_system_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = subprocess.Popen([*CLI, "up", "--data-dir", str(data), "--port", "0"], env=clean_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while (system := read_system_file(data)) is None and time.monotonic() < deadline:
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            time.sleep(0.2)
        assert system is not None and system.running and system.pid == up.pid
        exports = run("env", "--data-dir", str(data), "--wait", "90")  # returns once every service answers ready
        assert exports.returncode == 0, said(exports)
        system = read_system_file(data)
        assert system is not None and system.ready
        children = json.loads((data / SERVICES_FILE).read_text())["children"]
        assert children and all(readiness(child["metrics_port"]) == (True, None) for child in children), children
        values = json.loads(run("env", "--data-dir", str(data), "--json").stdout)
        assert values["REINTEGRATION_NATS_CREDENTIALS"].endswith("service-operator.creds")
        assert f"export REINTEGRATION_NATS_URL={values['REINTEGRATION_NATS_URL']}" in exports.stdout
        assert values["REINTEGRATION_NATS_URL"] != "nats://127.0.0.1:4222"  # a free port: only the file knows it

        async def report() -> str:
            nc = await connect_as(data / "parties" / "health_fund-100.creds", values["REINTEGRATION_NATS_URL"])
            try:
                sent = {"type": "incapacity_reported.v1", "report_id": str(uuid.uuid4()), "insz": "85073003328",
                        "enterprise_number": "0403170701", "staff_count": 120, "health_fund": "100",
                        "occupational_health_service": "0202239951", "start_date": "2025-03-03",
                        "cause": "illness"}
                reply = json.loads((await nc.request("reintegration.intake.health_fund.100",
                                                     json.dumps(sent).encode(), timeout=10)).data)
                assert reply["type"] == "accepted.v1", reply
                return str(reply["case_id"])
            finally:
                await nc.close()

        case = asyncio.run(report())
        # Nothing but --data-dir: the URL and the operator's credentials come from the system file.
        letters = run("dead-letters", "list", "--data-dir", str(data))
        assert letters.returncode == 0 and "no dead letters" in said(letters), said(letters)
        replay = run("relay", "--from", "1", "--data-dir", str(data))
        assert replay.returncode == 0 and "replayed positions 1-1" in " ".join(said(replay).split()), said(replay)
        while run("deadlines", case, "--data-dir", str(data), "--json").returncode != 0:
            assert time.monotonic() < deadline, "the deadlines service did not apply the case"
            time.sleep(0.3)

        # Another identity than the operator's: refused by the server, said in one line (exit code 4).
        runtime = str(data / "parties" / "service-runtime.creds")
        refused = run("relay", "--from", "1", "--data-dir", str(data), REINTEGRATION_NATS_CREDENTIALS=runtime)
        one_line_failure(refused, REFUSED, "permissions violation for publish to \"reintegration.trajectory.")
        debug = run("--debug", "relay", "--from", "1", "--data-dir", str(data), REINTEGRATION_NATS_CREDENTIALS=runtime)
        assert debug.returncode != 0 and "Traceback" in said(debug), said(debug)
        # A second system on the same folder is refused, and the first one's file stays.
        again = run("up", "--data-dir", str(data), "--port", "0")
        one_line_failure(again, USAGE, f"a system already runs with data in {data} (pid {up.pid}")
        assert (data / SYSTEM_FILE).exists()
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    assert not (data / SYSTEM_FILE).exists()
    gone = run("env", "--data-dir", str(data))
    one_line_failure(gone, USAGE, f"no system runs with data in {data}")


def test_only_an_operator_command_reads_a_running_systems_file_and_a_stale_one_is_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("REINTEGRATION_")]:
        monkeypatch.delenv(name)
    running = Settings(data_dir=tmp_path, nats_url="nats://10.0.0.1:4999")
    lock = write_system_file(running, credentials=None, started_by="up")
    assert (tmp_path / SYSTEM_FILE).stat().st_mode & 0o077 == 0  # the owner's only
    # Starting: the settings are there (with a warning), but whoever waits waits for every service to be ready.
    starting = run("env", "--data-dir", str(tmp_path))
    assert starting.returncode == 0 and "still starting" in starting.stderr, said(starting)
    assert "export REINTEGRATION_NATS_URL=nats://10.0.0.1:4999" in starting.stdout
    one_line_failure(run("env", "--data-dir", str(tmp_path), "--wait", "0.5"), USAGE, "is not ready after 0.5 s")
    mark_system_ready(lock)
    ready = run("env", "--data-dir", str(tmp_path), "--wait", "0.5")
    assert ready.returncode == 0 and "starting" not in ready.stderr, said(ready)
    system = read_system_file(tmp_path)
    assert system is not None and system.running and system.ready
    assert Settings.from_env(data_dir=tmp_path).nats_url == "nats://10.0.0.1:4999"  # an operator's command
    assert Settings.from_env(data_dir=tmp_path, system_file=False).nats_url == Settings.nats_url  # a service
    assert Settings.from_env({}, data_dir=tmp_path).nats_url == Settings.nats_url  # an explicit environment
    text = (tmp_path / SYSTEM_FILE).read_text()
    remove_system_file(tmp_path, lock)
    assert Settings.from_env(data_dir=tmp_path).nats_url == Settings.nats_url
    # Left behind by a killed process (or a rebooted machine, where its pid may be another process's): no lock.
    (tmp_path / SYSTEM_FILE).write_text(re.sub(r"# pid: \d+", f"# pid: {os.getpid()}", text))  # a live pid
    system = read_system_file(tmp_path)
    assert system is not None and not system.running
    assert Settings.from_env(data_dir=tmp_path).nats_url == Settings.nats_url
    stale = run("env", "--data-dir", str(tmp_path))
    one_line_failure(stale, USAGE, f"(pid {os.getpid()}) stopped with data in")


def test_expected_failures_are_one_line_with_a_documented_exit_code(tmp_path: Path) -> None:
    key = AESCipher.create_key(16)
    settings = Settings(data_dir=tmp_path / "data", cipher_key=key)
    now = datetime(2024, 8, 1, 9, tzinfo=UTC)
    intake, deadlines = build_intake(settings), build_deadlines(settings)
    case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), now).case_id
    intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 10)), now)
    for position, event in enumerate(intake.case_events(case), start=1):
        deadlines.process(event, position, now)
    intake.close()
    deadlines.close()
    data = str(settings.data_dir)

    assert run("deadlines", str(case), "--data-dir", data, REINTEGRATION_CIPHER_KEY=key).returncode == 0
    one_line_failure(run("deadlines", str(case), "--data-dir", data), CIPHER,
                     "the deadlines store's events are encrypted (or unreadable): set REINTEGRATION_CIPHER_KEY")
    wrong = AESCipher.create_key(16)
    one_line_failure(run("audit", "verify", "--data-dir", data, REINTEGRATION_CIPHER_KEY=wrong), CIPHER,
                     "REINTEGRATION_CIPHER_KEY does not decrypt the")
    one_line_failure(run("deadlines", str(case), "--data-dir", data, REINTEGRATION_CIPHER_KEY=key,
                         REINTEGRATION_REQUEST_TIMEOUT="soon"), USAGE,
                     "REINTEGRATION_REQUEST_TIMEOUT must be a number, not 'soon'")
    one_line_failure(run("relay", "--from", "1", "--data-dir", data, REINTEGRATION_CIPHER_KEY=key,
                         REINTEGRATION_NATS_URL="nats://127.0.0.1:1"), UNREACHABLE,
                     "cannot reach NATS at nats://127.0.0.1:1")
    one_line_failure(run("dead-letters", "list", "--data-dir", data,
                         REINTEGRATION_NATS_CREDENTIALS=str(tmp_path / "none.creds")), USAGE,
                     f"no credentials file {tmp_path / 'none.creds'}")
    debug = run("--debug", "deadlines", str(case), "--data-dir", data)
    assert debug.returncode != 0 and "StoreKeyError" in said(debug), said(debug)

    (settings.data_dir / "deadlines.sqlite").write_bytes(b"not a database, but the name of one" * 200)
    for suffix in ("-wal", "-shm"):
        (settings.data_dir / f"deadlines.sqlite{suffix}").unlink(missing_ok=True)
    one_line_failure(run("deadlines", str(case), "--data-dir", data, REINTEGRATION_CIPHER_KEY=key), STORE,
                     "another version of reintegration wrote it")


def test_the_readme_lists_every_exit_code_a_command_ends_with() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n## ", 1)[0]
    rows = {int(line.split("|")[1]) for line in table.splitlines() if line.startswith("| ") and
            line.split("|")[1].strip().isdigit()}
    assert rows == set(EXIT_CODES)
