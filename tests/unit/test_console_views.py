"""The console's pure view code: the timeline's geometry and what stands out on it, the deadlines chart, the
ledger's running totals, and the inputs refused with the field named."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from reintegration.console import views
from reintegration.console.views import BadInput, Box
from shared.rulebook.calendar import BRUSSELS

BOX = Box(width=500, height=300, left=100, top=20, right=0, bottom=80)  # a plot of 400 x 200 pixels


def event(version: int, effective: str, recorded: str, known: str | None = None) -> dict[str, Any]:
    return {"version": version, "event_id": f"e{version}", "type": "x.v1", "reported_by": "health_fund:100",
            "regime": "BE-2022", "effective_date": effective, "recorded_at": recorded,
            "known_on": known or recorded[:10]}


def test_the_timeline_places_effective_dates_across_and_recorded_times_upwards() -> None:
    timeline = views.timeline([
        event(1, "2024-01-01", "2024-01-01T00:00:00Z"),
        event(2, "2024-01-03", "2024-01-05T00:00:00Z"),
        event(3, "2024-01-02", "2024-01-09T00:00:00Z"),
    ], box=BOX)
    # days 2024-01-01 .. 2024-01-09 over 400 pixels (50 a day); times over 200 pixels, the earliest at the bottom
    assert [(p.x, p.y) for p in timeline.points] == [(100.0, 220.0), (200.0, 120.0), (150.0, 20.0)]
    assert [p.x_known for p in timeline.points] == [100.0, 300.0, 500.0]
    assert [(p.lag_days, p.late, p.backdated) for p in timeline.points] == [(0, False, False), (2, False, False),
                                                                           (7, False, True)]
    assert timeline.diagonal == (150.0, 195.0, 500.0, 20.0)  # from the second day: midnight of day 2 .. of day 9
    assert (timeline.x_ticks[0].label, timeline.x_ticks[-1].label) == ("2024-01-01", "2024-01-09")
    assert timeline.horizon_y is None and timeline.day_x is None


def test_a_report_more_than_a_week_after_its_fact_is_late_and_one_before_a_known_fact_back_dated() -> None:
    timeline = views.timeline([
        event(1, "2024-03-01", "2024-03-01T10:00:00Z"),
        event(2, "2024-03-10", "2024-03-18T10:00:00Z"),  # 8 days
        event(3, "2024-03-05", "2024-03-19T10:00:00Z"),  # before 10 March, already known: back-dated, and late
        event(4, "2024-03-19", "2024-03-19T11:00:00Z"),
    ], box=BOX)
    assert [(p.late, p.backdated) for p in timeline.points] == [(False, False), (True, False), (True, True),
                                                                (False, False)]
    assert (timeline.late, timeline.backdated) == (2, 1)
    assert "version 3" in timeline.points[2].label and "(late, back-dated)" in timeline.points[2].label


def test_as_known_at_a_time_draws_its_horizon_and_as_applying_on_a_day_marks_what_came_after() -> None:
    events = [event(1, "2024-01-01", "2024-01-01T00:00:00Z"), event(2, "2024-01-05", "2024-01-09T00:00:00Z")]
    known = views.timeline(events, known_at=datetime(2024, 1, 5, tzinfo=UTC), box=BOX)
    assert known.horizon_y == 120.0
    applying = views.timeline(events, applying_on=date(2024, 1, 3), box=BOX)
    assert applying.day_x == 200.0
    assert [(p.after_day, p.unknown_then) for p in applying.points] == [(False, False), (True, True)]


def test_one_event_still_gets_axes_with_a_width() -> None:
    [point] = views.timeline([event(1, "2024-01-01", "2024-01-01T12:00:00Z")], box=BOX).points
    assert (point.x, point.y) == (300.0, 120.0)  # the middle: the axes are padded around the one event


def deadline(**fields: Any) -> dict[str, Any]:
    base = {"id": "d1", "rule": "plan.submit", "regime": "BE-2022", "legal_basis": "art. 1", "explanation": "why",
            "party": "employer", "deadline_kind": "due", "starts_on": "2024-01-01", "due_on": "2024-01-11",
            "state": "open", "closed_on": None, "late": False, "outcome": None, "recomputed_from": None,
            "recomputed_on": None, "superseded": []}
    return {**base, **fields}


def test_the_deadlines_chart_draws_each_window_with_its_end_and_what_a_later_regime_replaced() -> None:
    chart = views.deadline_chart([
        deadline(),
        deadline(id="d2", state="met", closed_on="2024-01-21", late=True),
        deadline(id="d3", outcome="missed"),
        deadline(id="d4", regime="BE-2022", recomputed_from="BE-2016", recomputed_on="2024-01-05",
                 due_on="2024-01-21", superseded=[{"due_on": "2024-01-16", "regime": "BE-2016", "rule": "old"}]),
    ], applying_on=date(2024, 1, 15), left=100, width=300, row_height=30)  # 20 days over 140 pixels
    open_, met, missed, recomputed = chart.bars
    assert (open_.x_start, open_.x_due, open_.y) == (100.0, 170.0, 35.0)
    assert (met.x_closed, met.status) == (240.0, "met on 2024-01-21 (late)")
    assert missed.status == "missed"
    assert recomputed.superseded[0].x == 205.0
    assert recomputed.status == "open, due 2024-01-21; recomputed under BE-2022 on 2024-01-05 (was due 2024-01-16 " \
        "under BE-2016)"
    assert [b.on_day for b in chart.bars] == ["overdue (missed)", "overdue (missed)", "overdue (missed)", "open"]
    assert chart.day_x == 198.0


def entry(id_: str, amount: str | None, payer: str = "health_fund", beneficiary: str = "worker",
          reverses: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": id_, "kind": "reversal" if reverses else "premium", "payer": payer, "beneficiary": beneficiary,
            "amount": amount, "percentage": None, "base": None, "period_start": "2024-03-04", "reverses": reverses,
            **fields}


def test_the_ledger_keeps_a_running_total_per_payer_and_beneficiary_and_reversals_cancel_to_the_cent() -> None:
    ledger = views.ledger_rows([
        entry("a", "50.00"),
        entry("b", "1800.00", payer="employer", beneficiary="health_fund", period_start="2024-05-01"),
        entry("c", "250.40"),
        entry("r", "-50.00", reverses="a"),
        entry("p", None, percentage="30", base="daily benefit"),
    ], in_force={"b", "c", "p"}, applying_on=date(2024, 4, 1))
    assert [r.running for r in ledger.rows] == [Decimal("50.00"), Decimal("1800.00"), Decimal("300.40"),
                                               Decimal("250.40"), Decimal("250.40")]
    assert ledger.by_beneficiary == {"worker": Decimal("250.40"), "health_fund": Decimal("1800.00")}
    assert ledger.by_payer == {"health_fund": Decimal("250.40"), "employer": Decimal("1800.00")}
    assert [(r.in_force, r.reversed_by) for r in ledger.rows][:1] == [(False, "r")]
    assert ledger.reversals == 1 and [r.after_day for r in ledger.rows] == [False, True, False, False, False]
    assert [r.figure for r in ledger.rows][3:] == ["-50.00 EUR", "30 % of daily benefit"]


@pytest.mark.parametrize(("parse", "text", "field", "words"), [
    (views.parse_case_id, "case-1", "case_id", "'case-1' is not a case id"),
    (views.parse_known, "yesterday", "known", "neither a day"),
    (views.parse_known, "1900-01-01", "known", "outside the days the rulebook covers"),
    (views.parse_applying, "2024-02-30", "applying", "is not a day"),
    (views.parse_applying, "2024-06-03T10:00", "applying", "is not a day"),
    (views.parse_applying, "2101-01-01", "applying", "outside the days the rulebook covers"),
])
def test_bad_input_is_refused_naming_the_field(parse: Any, text: str, field: str, words: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse(text)
    assert refused.value.field == field and words in refused.value.message


def test_as_known_on_takes_a_day_a_belgian_time_or_a_time_with_its_offset() -> None:
    assert views.parse_known("2024-06-03") == date(2024, 6, 3)
    assert views.parse_known("2024-06-03T10:00") == datetime(2024, 6, 3, 10, tzinfo=BRUSSELS)
    assert views.parse_known("2024-06-03T08:00:00Z") == datetime(2024, 6, 3, 8, tzinfo=UTC)
    assert views.parse_known("2024-06-03T08:00:00Z") == views.parse_known("2024-06-03T10:00")
