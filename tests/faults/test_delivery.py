"""R6, R7 and R8 of the fault catalogue at their quick sizes: a real nats-server, the real consumer and the real
deadlines and benefits applications (as processes where the scenario pauses or runs them as deployed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.chaos.r6_duplicates import r6_duplicates
from lab.chaos.r7_out_of_order import r7_out_of_order
from lab.chaos.r8_poison import r8_poison
from lab.chaos.report import SCENARIOS

pytestmark = pytest.mark.faults


def test_the_three_scenarios_are_registered() -> None:
    assert SCENARIOS["R6"].run is r6_duplicates
    assert SCENARIOS["R7"].run is r7_out_of_order
    assert SCENARIOS["R8"].run is r8_poison


def test_r6_duplicates_change_nothing(tmp_path: Path) -> None:
    row = r6_duplicates(tmp_path, True)
    assert row.passed, row.detail
    assert (row.lost, row.doubled) == (0, 0)
    events = row.extra["events"]
    assert row.extra["copies"] == events  # every event stored a second time under a new id
    assert row.extra["again"] > 0  # and again under its own id once the window had passed
    seen = row.extra["seen"]
    assert all(seen[name] >= events for name in ("deadlines", "benefits"))
    assert all(count > 0 for count in row.extra["redelivered"].values())  # what a paused replica held came back
    assert row.extra["verify"]["different"] == 0 and row.extra["verify"]["behind"] == 0


def test_r7_out_of_order_redelivery_skips_nothing(tmp_path: Path) -> None:
    row = r7_out_of_order(tmp_path, True)
    assert row.passed, row.detail
    assert (row.lost, row.doubled) == (0, 0)
    assert all(gaps > 0 for gaps in row.extra["gaps"].values())
    assert all(size > 1 for size in row.extra["largest_batch"].values())
    assert all(naks > 0 for naks in row.extra["naks"].values())
    for comparison in row.extra["comparisons"].values():
        assert comparison["out_of_order"] == 0 and comparison["applied"] == row.extra["events"]


def test_r8_poison_is_dead_lettered_after_exactly_max_deliver_and_replayed(tmp_path: Path) -> None:
    row = r8_poison(tmp_path, True)
    assert row.passed, row.detail
    events = row.extra["events"]
    assert row.extra["letters"] == 20  # 10 per service
    assert row.extra["deliveries"] == {"deadlines": [5], "benefits": [5]}
    assert row.extra["extra_deliveries"] == {"deadlines": 40, "benefits": 40}
    assert row.extra["processed"] == {"deadlines": events - 10, "benefits": events - 10}
    assert row.extra["after_replay"] == {"deadlines": events, "benefits": events}
    assert row.extra["unresolved"] == 0
