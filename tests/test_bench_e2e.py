"""`reintegration bench e2e` against real processes at a small size: every figure is there, and every accepted report
reached each store exactly once (figures are not checked against any speed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lab.bench.e2e import SERVICES, measure_e2e, start_cluster


def _positive(value: object, where: str) -> None:
    assert isinstance(value, int | float) and not math.isnan(value) and value > 0, f"{where} = {value!r}"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return measure_e2e(cases=60, concurrency=8, data_dir=tmp_path_factory.mktemp("e2e") / "run")


def test_every_figure_is_present_and_positive(result: dict) -> None:
    json.dumps(result)  # the dict a --json output would print
    _positive(result["reports"]["accepted_per_s"], "accepted reports/s")
    for name in ("report_to_deadline", "report_to_trajectory", "report_to_step", "reply"):
        for q in ("p50", "p99"):
            _positive(result["latency_ms"][name][q], f"latency {name} {q}")
    for name in SERVICES:
        for figure in ("events_per_s", "events_per_cpu_s", "peak_rss_mib", "cpu_seconds"):
            _positive(result["services"][name].get(figure), f"{name} {figure}")
    _positive(result["services"]["nats-server"]["peak_rss_mib"], "nats-server peak memory")
    for figure in ("per_report", "raw_per_message"):
        _positive(result["nats_server_cpu_ms"][figure], f"nats-server CPU {figure}")
    for figure in ("messages_per_s",):
        _positive(result["baseline"][figure], f"baseline {figure}")
    for q in ("p50", "p99"):
        _positive(result["baseline"]["latency_ms"][q], f"baseline latency {q}")
    for figure in ("raw_read_events_per_s", "deadlines_events_per_s", "benefits_events_per_s"):
        _positive(result["rebuild"][figure], f"rebuild {figure}")
    for name, ratio in result["ratios"].items():
        _positive(ratio, f"ratio {name}")
    _positive(result["services"]["deadlines"]["published"], "DEADLINES messages")
    _positive(result["services"]["benefits"]["published"], "BENEFITS messages")


def test_every_accepted_report_reached_every_store_exactly_once(result: dict) -> None:
    stores = result["stores"]
    accepted = stores["accepted_event_ids"]
    assert accepted >= result["reports"]["accepted"] > 0
    assert result["events"] == accepted
    for key, count in stores.items():
        assert count == accepted, f"{key}: {count} of {accepted} accepted events ({stores})"


def test_cluster_runs_three_nodes_and_two_replicas_and_still_delivers_exactly_once(tmp_path: Path) -> None:
    """``--cluster``: a 3-node NATS cluster, R3 streams, two replicas of each derived service (small run)."""
    cluster = measure_e2e(cases=20, concurrency=4, data_dir=tmp_path / "run", start_server=start_cluster, replicas=2)
    assert cluster["replicas"] == 2 and cluster["streams_replicas"] == 3
    processes = cluster["services"]
    assert {f"nats-server-{i}" for i in range(3)} <= set(processes)
    assert {"deadlines-0", "deadlines-1", "benefits-0", "benefits-1"} <= set(processes)
    for name in ("deadlines", "benefits"):
        assert processes[name]["replicas"] == 2
        _positive(processes[name]["events_per_cpu_s"], f"{name} events per CPU second")
    stores = cluster["stores"]
    accepted = stores["accepted_event_ids"]
    assert accepted > 0 and all(count == accepted for count in stores.values()), stores


def test_the_fixed_rate_mode_paces_the_load_and_the_baseline(tmp_path: Path) -> None:
    """``--rate``: no more reports per second than asked, and the raw baseline at the same rate."""
    paced = measure_e2e(cases=12, concurrency=8, data_dir=tmp_path / "run", rate=25)
    reports = paced["reports"]
    assert paced["rate"] == 25 and reports["accepted"] > 0
    # n sends at 25/s cannot take less than (n - 1) / 25 seconds
    assert reports["load_seconds"] >= (reports["sent"] - 1) / 25
    assert paced["baseline"]["seconds"] >= (paced["baseline"]["messages"] - 1) / 25 * 0.99
    assert all(count == paced["stores"]["accepted_event_ids"] for count in paced["stores"].values())
