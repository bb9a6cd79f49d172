"""S2 and S4 of the fault catalogue, quick-sized, over the real system (nats-server, services as processes)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lab.chaos.canaries import CANARY_PREFIX, canary_scripts, restricted_report_types, restricted_values
from lab.chaos.report import SCENARIOS
from lab.chaos.s2_medical_data_to_employers import medical_data_to_employers
from lab.chaos.s4_unlogged_disclosure import unlogged_disclosure
from shared.events import reports as r
from shared.events.common import restricted_fields

pytestmark = pytest.mark.faults


def test_both_scenarios_are_registered() -> None:
    assert SCENARIOS["S2"].run is medical_data_to_employers
    assert SCENARIOS["S4"].run is unlogged_disclosure


def test_canaries_fill_every_restricted_field_even_where_the_generator_leaves_it_empty() -> None:
    reports = []
    for script in canary_scripts(200):
        reports.append(script.opening)
        built = [step.build(uuid.uuid4()) for step in script.steps]
        reports += [report for report in built if not isinstance(report, bytes)]
    restricted = [report for report in reports if restricted_values(report)]
    assert {type(report) for report in restricted} == set(restricted_report_types())
    assert all(isinstance(v, str) and v.startswith(CANARY_PREFIX) for rep in restricted for v in restricted_values(rep))


def test_s2_no_canary_reaches_an_employer_and_every_medical_report_type_is_exercised(tmp_path: Path) -> None:
    row = medical_data_to_employers(tmp_path, True)
    x = row.extra
    assert row.passed, row.detail
    # Coverage: every report type with a medical or free-text field was accepted with canaries in all of them.
    needed = {r.tag_of(cls) for cls in r.REPORT_TYPES if restricted_fields(cls)}
    assert len(needed) == 7
    assert set(x["needed"]) == needed and x["uncovered"] == []
    assert set(x["covered"]) == needed and all(n > 0 for n in x["covered"].values())
    assert x["unplanted"] == 0 and row.faults == x["canary_fields"] > 0
    # Capture: messages on employer subjects, each delivered to its own employer only, none with a canary.
    assert x["employer_messages"] > 0 and x["delivered"] == x["employer_messages"]
    assert x["leaked"] == 0 and x["leaked_delivered"] == 0 and x["foreign"] == 0 and x["undecodable"] == 0
    assert row.lost == 0 and row.doubled == 0 and x["no_credentials"] == []
    # Schema: no feed type carries a medical or free-text field, whichever report type fed it.
    assert x["schema_ok"] and x["feed_markers"] == [] and not any(x["feed_restricted"].values())
    assert not any(x["shared_names"].values()) and sorted(x["report_types_marked"]) == sorted(needed)


def test_s4_every_delivery_and_auditor_query_leaves_one_disclosure_record(tmp_path: Path) -> None:
    row = unlogged_disclosure(tmp_path, True)
    x = row.extra
    assert row.passed, row.detail
    assert x["deliveries"] >= 50 and x["delivery_records"] == x["deliveries"]
    assert x["queries"] == 50 and x["query_records"] == 50
    assert x["delivery_lost"] == 0 and x["query_lost"] == 0 and row.lost == 0 and row.doubled == 0
    assert x["bad_deliveries"] == 0 and x["bad_queries"] == 0 and x["medical"] == 0 and x["failures"] == []
    assert row.sent == x["deliveries"] + x["queries"]
