"""The deadlines fold is ``compute_deadlines`` one event at a time, and records the very steps the whole-history
computation recorded: for any history (both rulebooks, every policy, histories that cross a regime switch, long
ones), after each event

* the deadlines folded so far (the latest version of each one the fold returned) equal ``compute_deadlines`` of
  the history so far, and
* the changes the fold gives (``diff(before, fold.apply(event), complete=False)``) are exactly those of the
  whole-history step the schedule recorded before the fold: ``diff(before, compute_deadlines(history so far))``.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.deadlines.schedule import apply_changes, diff
from shared.events.envelope import CaseEvent
from shared.rulebook import Rulebook
from shared.rulebook.deadlines import DeadlineFold, Policy, compute_deadlines
from tests.unit.test_deadlines import BE, History
from tests.unit.test_deadlines_props import NL, POLICIES, histories


def check_fold(events: list[CaseEvent], rulebook: Rulebook, policy: Policy) -> None:
    fold = DeadlineFold(rulebook, policy)
    recorded: dict = {}
    for n, event in enumerate(events, start=1):
        whole = compute_deadlines(events[:n], rulebook, policy)
        expected_changes = diff(recorded, whole)
        changes = diff(recorded, fold.apply(event), complete=False)
        assert changes == expected_changes, n
        recorded = apply_changes(recorded, changes)
        assert recorded == {d.id: d for d in whole}, n
        assert fold.version == n
    assert fold.deadlines() == [d for d in compute_deadlines(events, rulebook, policy) if d.state == "open"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([BE, NL]).flatmap(histories), POLICIES)
def test_the_fold_records_the_steps_of_the_whole_history_computation(h: History, policy: Policy) -> None:
    check_fold(h.events, h.rulebook, policy)


@st.composite
def long_histories(draw: st.DrawFn) -> History:
    """One long case (up to 120 reports, years long): the fold's state stays the running deadlines only."""
    pieces = [draw(histories(BE)) for _ in range(draw(st.integers(2, 6)))]
    h = History(pieces[0].events[0].report.effective_date, BE)
    day = h.events[0].report.effective_date
    for piece in pieces:
        for event in piece.events[1:]:
            report = event.report
            shift = day - piece.events[0].report.effective_date
            fields = {name: getattr(report, name) + shift if isinstance(getattr(report, name), date)
                      else getattr(report, name)
                      for name in report.__struct_fields__ if name not in ("report_id", "case_id", "regime")}
            h.add(type(report), **fields)
        day = h.events[-1].report.effective_date + timedelta(days=draw(st.integers(0, 90)))
    return h


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(long_histories(), POLICIES)
def test_the_fold_holds_over_long_histories(h: History, policy: Policy) -> None:
    check_fold(h.events, BE, policy)
    fold = DeadlineFold(BE, policy)
    for event in h.events:
        fold.apply(event)
    # what the fold keeps: one track per rule the case could start, never the history
    assert len(fold.tracks) <= len(BE.derived(type(fold._computation.index)).rule_ids)


def test_a_fold_walked_without_building_is_the_same_fold() -> None:
    """How a service reads a schedule back (``build=False``) leaves the fold where building it would."""
    h = History(date(2022, 6, 1))
    h.request(date(2022, 9, 15))
    h.assess(date(2022, 10, 20), "A")
    built, walked = DeadlineFold(BE), DeadlineFold(BE)
    for event in h.events:
        built.apply(event)
        assert walked.apply(event, build=False) == []
    assert built == walked and built.deadlines() == walked.deadlines()
    copy = built.copy()
    assert copy == built and copy is not built


def test_an_event_out_of_order_is_refused() -> None:
    h = History(date(2024, 1, 10))
    h.request(date(2024, 3, 1))
    fold = DeadlineFold(BE)
    try:
        fold.apply(h.events[1])
    except ValueError as exc:
        assert "does not follow" in str(exc)
    else:
        raise AssertionError("an event that does not follow the last one was folded")


def test_a_run_a_later_switch_cancels_is_not_among_the_running_deadlines() -> None:
    """Found by the property above: a BE-2016 re-evaluation due on 1 Oct 2022, the day BE-2022 (which has no such
    rule) took effect, is cancelled by the switch; the fold's running deadlines left it in, as cancelled."""
    from shared.events import reports as r

    h = History(date(2022, 2, 1))
    h.add(r.TrajectoryRequested, initiator=r.Initiator.EMPLOYER, received_on=date(2022, 6, 1))
    h.add(r.AssessmentIssued, issued_on=date(2022, 8, 1), decision="E")
    check_fold(h.events, BE, Policy())
    fold = DeadlineFold(BE, Policy())
    for event in h.events:
        fold.apply(event)
    assert "trajectory.reevaluation" not in {d.rule for d in fold.deadlines()}
