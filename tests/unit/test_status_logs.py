"""`reintegration status` names each service's last error from its log, whichever way the line was written: the
project's key-value and JSON lines (as structlog renders them, exception included), and FastStream's standard-library
lines followed by a traceback, whose exception it names after the line that announced it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import structlog

from reintegration import logs
from reintegration.status import last_errors

FASTSTREAM = (
    "2026-12-05 07:58:22,547 \x1b[32mINFO\x1b[0m     - FastStream app started successfully!\n"
    "2026-12-05 07:59:05,932 \x1b[31mERROR\x1b[0m    -      |      - Task-19 raised an exception, retrying...\n"
    "If this behavior causes issues, you can disable it via setting the FASTSTREAM_SUPERVISOR_DISABLED env to 1.\n"
    "Traceback (most recent call last):\n"
    '  File "stream_pull_subscriber.py", line 250, in _consume_pull\n'
    "    messages += await self.subscription.fetch(\n"
    "TimeoutError\n"
    "2026-12-05 07:59:06,001 \x1b[32mINFO\x1b[0m     - callback for Task-20 is being executed...\n"
)


def rendered(json_lines: bool, *, fail: bool = True) -> str:
    out = io.StringIO()
    logs.configure(stream=out, json_lines=json_lines)
    try:
        log = structlog.get_logger("deadlines")
        log.info("applied", position=7)
        if fail:
            try:
                raise ValueError("decision: 'X' is not a decision of BE-2022")
            except ValueError:
                log.exception("step failed", position=8)
        log.warning("slow step", position=8)
        log.info("applied", position=9)
    finally:
        structlog.reset_defaults()
    return out.getvalue()


@pytest.mark.parametrize("json_lines", [False, True])
def test_the_projects_own_error_line_is_the_last_error(tmp_path: Path, json_lines: bool) -> None:
    (tmp_path / "deadlines.log").write_text(rendered(json_lines))
    (tmp_path / "benefits.log").write_text(rendered(json_lines, fail=False))
    found = last_errors(tmp_path)
    assert set(found) == {"deadlines"}
    assert "step failed" in found["deadlines"] and "is not a decision of BE-2022" in found["deadlines"]


def test_a_traceback_names_its_exception_after_the_line_that_announced_it(tmp_path: Path) -> None:
    (tmp_path / "disclosures.log").write_text(FASTSTREAM)
    (tmp_path / "feeds.log").write_text("Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'x'\n")
    (tmp_path / "audit.log").write_text(FASTSTREAM.replace("ERROR", "INFO").split("Traceback")[0])
    found = last_errors(tmp_path)
    assert found["disclosures"].endswith("Task-19 raised an exception, retrying...: TimeoutError")
    assert "\x1b" not in found["disclosures"]
    assert found["feeds"] == "KeyError: 'x'"  # no error line before it: the exception alone
    assert "audit" not in found


def test_a_chained_traceback_names_the_last_exception(tmp_path: Path) -> None:
    (tmp_path / "relay.log").write_text(
        "timestamp='t' level='error' event='publish failed'\n"
        "Traceback (most recent call last):\n  File \"a.py\", line 1\nTimeoutError\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n  File \"b.py\", line 2\nnats.errors.NoServersError: nats: no servers\n")
    assert last_errors(tmp_path)["relay"] == ("timestamp='t' level='error' event='publish failed': "
                                              "nats.errors.NoServersError: nats: no servers")
