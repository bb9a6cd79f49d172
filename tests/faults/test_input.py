"""Input, corruption, concurrency and access scenarios (F1, F2, R5, R9, S1, S3 of ../shared/FAULTS.md) at their
quick size, each on its own nats-server, stores and temp dir; ``reintegration chaos run F1 F2 R5 R9 S1 S3`` runs
the full sizes.
"""

from __future__ import annotations

import pytest

from lab.chaos import (  # noqa: F401 - registers the scenarios
    f1_hostile_input,
    f2_identifier_typos,
    r5_corruption,
    r9_concurrent_writers,
    s1_cross_party_access,
    s3_data_at_rest,
)
from lab.chaos.report import SCENARIOS, Row

pytestmark = pytest.mark.faults

_ROWS: dict[str, Row] = {}


def run(scenario_id: str, tmp_path_factory: pytest.TempPathFactory) -> Row:
    """Each scenario runs once per session, however many tests look at its row."""
    if scenario_id not in _ROWS:
        _ROWS[scenario_id] = SCENARIOS[scenario_id].run(tmp_path_factory.mktemp(scenario_id), True)
    return _ROWS[scenario_id]


def test_f1_hostile_input_is_rejected_clearly_and_only_valid_reports_are_stored_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    row = run("F1", tmp_path_factory)
    x = row.extra
    assert x["hostile"] >= 2_000 and row.sent >= 3_000, row.detail
    assert x["alive"], "the intake process died"
    assert x["unclear"] == [], x["unclear"]  # every reply has a code and a message, none an internal error
    # Store: exactly the reports accepted as new, each once; resends answered as duplicates.
    assert x["valid_accepted"] > 0 and x["stored_new"] == x["valid_accepted"], row.detail
    assert row.lost == 0 and row.doubled == 0 and x["unexpected_stored"] == 0, row.detail
    assert x["duplicates_ok"] == x["resends"] > 0, row.detail
    # Field paths: every mutation aimed at one field is refused naming that field.
    assert x["field_checked"] > 1_000
    assert x["wrong_field"] == [], x["wrong_field"]


def test_f1_passes(tmp_path_factory: pytest.TempPathFactory) -> None:
    row = run("F1", tmp_path_factory)
    assert row.extra["crashes"] == 0, row.extra["no_reply"]
    assert row.extra["hostile_accepted"] == [], row.extra["hostile_accepted"]
    assert row.passed, row.detail


def test_f2_identifier_typos_agree_with_stdnum(tmp_path_factory: pytest.TempPathFactory) -> None:
    row = run("F2", tmp_path_factory)
    x = row.extra
    assert x["typos"] >= 20_000 and x["numbers"] == 200
    assert x["agreement_pct"] == 100.0 and x["disagreements"] == []
    # Every swap is refused, except a national number's swap that gives another valid number (stdnum agrees).
    assert x["enterprise_swap_pct"] == 100.0 and x["swap_pct"] >= 99.5 and x["single_pct"] >= 99.8, row.detail
    assert x["originals_refused"] == [] and x["wrong_reason"] == []
    assert row.passed, row.detail


def test_r5_verify_names_every_tampered_case_and_event_and_the_services_outlive_a_damaged_broker_file(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    row = run("R5", tmp_path_factory)
    x = row.extra
    assert x["detected"] == x["tampered"] == 6 and x["missed"] == [] and x["false_alarms"] == [], row.detail
    assert x["broker_counts"].get("different") == 0 and x["broker_counts"].get("broken") == 0, x["broker_counts"]
    assert x["after_counts"]["broken"] == 6, x["after_counts"]
    assert x["stream_messages"] == x["stored_events"] > 0
    assert row.passed, row.detail


def test_r9_concurrent_writers_apply_every_command_once_without_gaps(tmp_path_factory: pytest.TempPathFactory) -> None:
    row = run("R9", tmp_path_factory)
    for store, x in row.extra["runs"].items():
        assert x["applied"] + x["already"] == x["commands"] == 200, (store, x)
        assert x["events"] == x["commands"] + x["cases"], (store, x)
        assert x["gaps"] == 0 and x["lost"] == 0 and x["doubled"] == 0 and x["errors"] == [], (store, x)
    assert "SQLite" in row.extra["runs"]
    assert "PostgreSQL" in row.extra["runs"] or row.extra["note"], row.detail
    assert row.passed, row.detail


def test_s1_every_cross_party_probe_is_refused_and_every_own_action_allowed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    row = run("S1", tmp_path_factory)
    x = row.extra
    assert x["parties"] == 8 and x["wrong"] == []
    assert x["cross_refused"] == x["cross"] >= 8 * 60 and x["own_allowed"] == x["own"] > 0, row.detail
    assert row.passed, row.detail


def test_s3_no_national_number_or_canary_in_clear_in_the_encrypted_stores(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    row = run("S3", tmp_path_factory)
    x = row.extra
    assert x["numbers"] > 0 and x["canaries"] > x["numbers"] and x["caught_up"], row.detail
    assert x["sqlite_running"] == {} and x["sqlite_stopped"] == {} and x["postgres"] == {}, row.detail
    # The broker's store is encrypted (chachapoly, key derived from the stores' key) and TRAJECTORY's payloads are
    # sealed with the stores' cipher: nothing in clear there either, nor in the logs.
    assert x["jetstream_numbers"] == 0 and x["jetstream_canaries"] == 0 and x["logs"] == 0, row.detail
    assert row.passed, row.detail
