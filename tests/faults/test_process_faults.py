"""Process-level fault scenarios (R1-R4, R10, R11 of ../shared/FAULTS.md) at their quick size.

Each scenario starts its own nats-server and stores in a temp dir and the services as real processes, injects its
faults, and checks every store against what was sent; ``reintegration chaos run R1 ...`` runs the full sizes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.chaos import (  # noqa: F401 - registers the scenarios
    r1_crashes,
    r2_broker_crash,
    r3_pauses,
    r4_broker_amnesia,
    r10_store_full_or_down,
    r11_clock_skew,
)
from lab.chaos.report import SCENARIOS

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("scenario_id", ["R1", "R2", "R3", "R4", "R10", "R11"])
def test_process_fault_scenario(scenario_id: str, tmp_path: Path) -> None:
    if scenario_id not in SCENARIOS:
        pytest.fail(f"scenario {scenario_id} is not registered")
    row = SCENARIOS[scenario_id].run(tmp_path, True)
    lost = {k: v for k, v in row.extra.get("check", {}).get("lost", {}).items() if v}
    assert row.faults > 0, row.detail
    assert row.sent > 0, row.detail
    assert row.lost == 0, (lost, row.detail)
    assert row.doubled == 0, row.detail
    assert row.passed, row.detail
