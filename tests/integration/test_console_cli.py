"""``reintegration console`` as the auditor starts it: a process serving the console on 127.0.0.1 with the
auditor's credentials file, which says where to open it and which says so when the server cannot be reached."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from lab.probes import PARTIES
from shared.infra.parties import generate
from tests.integration.console_system import free_port


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_console_command_serves_the_pages_on_this_machine_with_the_auditors_credentials(tmp_path: Path) -> None:
    _, credentials = generate(PARTIES, tmp_path / "parties")
    port, nowhere = free_port(), f"nats://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "reintegration", "console", "--creds", str(credentials["auditor:inspectorate"]),
         "--server", nowhere, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def up() -> bool:
            try:
                return fetch(f"http://127.0.0.1:{port}/")[0] == 200
            except OSError:
                return False

        deadline = time.monotonic() + 30  # a poll with a deadline: the process imports, then binds
        while not up():
            assert process.poll() is None and time.monotonic() < deadline, "the console did not answer"
            time.sleep(0.1)
        status, page = fetch(f"http://127.0.0.1:{port}/")
        assert status == 200 and "Asking as <strong>auditor:inspectorate</strong>" in page
        status, page = fetch(f"http://127.0.0.1:{port}/case/{uuid.uuid4()}")
        assert status == 503 and f"the NATS server at {nowhere} cannot be reached" in page
    finally:
        process.terminate()
        said, _ = process.communicate(timeout=10)
    assert f"asking {nowhere}: http://127.0.0.1:{port}/" in said
