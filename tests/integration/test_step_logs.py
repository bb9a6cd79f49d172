"""Every log line written while a derived service steps a Case event carries that event's case id, event id and
trace id (its report id), as JSON when asked; lines outside a step carry none. Over a real SQLite store."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from reintegration import logs
from shared.events.envelope import CaseEvent, event_id_for
from shared.infra import tracing
from shared.infra.settings import Settings
from shared.infra.store import prepare_store
from tests.factories import FUND_PARTY, NOW, incapacity
from tests.integration.test_consumer import CountingApplication, Tally

step_log = structlog.get_logger("step")


class LoggingApplication(CountingApplication):
    """A derived application whose step writes a log line, as a rule that warns would."""

    def step(self, state: Any, event: CaseEvent, position: int, now: datetime) -> list[Tally]:
        step_log.warning("a rule warns")
        return super().step(state, event, position, now)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure(stream=out, json_lines=True)
    try:
        yield out
    finally:
        structlog.reset_defaults()
        logs.configure()


def test_a_step_s_log_lines_name_its_case_event_and_trace(tmp_path: Path, captured: io.StringIO) -> None:
    app = LoggingApplication(env=prepare_store(Settings(data_dir=tmp_path), "counting"))
    try:
        report = incapacity()
        case_id = uuid.uuid4()
        event = CaseEvent(case_id=case_id, version=1, event_id=event_id_for(case_id, 1), recorded_at=NOW,
                          reported_by=FUND_PARTY, regime="BE-2022", report=report)
        assert app.apply_batch([(1, event)], NOW)[0].value == "applied"
        step_log.info("between batches")
    finally:
        app.close()
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    [warned] = [line for line in lines if line["event"] == "a rule warns"]
    assert warned["case_id"] == str(case_id) and warned["event_id"] == str(event.event_id)
    assert warned["trace_id"] == tracing.trace_hex(report.report_id) == f"{report.report_id.int:032x}"
    assert warned["level"] == "warning" and warned["timestamp"].endswith("Z")
    [after] = [line for line in lines if line["event"] == "between batches"]
    assert not {"case_id", "event_id", "trace_id"} & set(after)  # no step in progress: no ids
