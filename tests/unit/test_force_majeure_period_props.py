"""The earliest force-majeure letter is the first day intake's ``check_force_majeure_start`` accepts a letter, over
random histories of returns to work (short and long), resumptions and trajectories around the 1 Jan 2026 switch
(9 months under BE-2022, 6 under BE-2026); the deadlines fold follows those histories as the whole history does."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.rulebook.deadlines import DeadlineKind, Policy
from tests.unit.test_deadline_fold import check_fold
from tests.unit.test_deadlines import BE, History
from tests.unit.test_force_majeure_period import deadline_id, eligible, first_accepted, timeline_of, tolerance_on

# --- the property: the deadline is intake's first acceptance ---------------------------------------------


@st.composite
def periods(draw: st.DrawFn) -> tuple[History, bool]:
    """A case from mid-2024 to 2026 with returns to work (about 14 days and others), some around the earliest date,
    and trajectories (some spanning a return); whether a trajectory still runs at the end."""
    near_the_switch = st.dates(date(2025, 2, 1), date(2025, 8, 31))
    start = draw(st.one_of(st.dates(date(2024, 6, 1), date(2026, 9, 30)), near_the_switch))
    h = History(start)
    day, running = start, False
    for _ in range(draw(st.integers(0, 6))):
        step = draw(st.sampled_from(["return", "return", "return_near_the_date", "trajectory"]))
        if step == "trajectory":
            day += timedelta(days=draw(st.integers(1, 150)))
            if running:
                h.add(r.TrajectoryEnded, ended_on=day, reason="test")
            else:
                h.add(r.TrajectoryRequested, initiator=r.Initiator.WORKER, received_on=day)
            running = not running
            continue
        returned = day + timedelta(days=draw(st.integers(1, 200)))
        if step == "return_near_the_date":  # back at work a few days before the day a letter would be accepted
            timeline = timeline_of(h)
            earliest = first_accepted(timeline, timeline.spell_start(day, tolerance_on(day)) or day)
            returned = max(day + timedelta(days=1), earliest - timedelta(days=draw(st.integers(0, 12))))
        resumed = returned + timedelta(days=draw(st.one_of(st.integers(1, 40), st.sampled_from([13, 14]))))
        h.add(r.IncapacityInterrupted, returned_on=returned)
        h.add(r.IncapacityResumed, resumed_on=resumed)
        day = resumed
    return h, running


def starters(h: History) -> list[CaseEvent]:
    """The events that (re)start the earliest-letter deadline: the opening report, a resumption after 14 days or
    more back at work outside a trajectory, the end of a trajectory."""
    found, running, returned = [h.events[0]], False, None
    for event in h.events[1:]:
        report = event.report
        if isinstance(report, r.TrajectoryRequested):
            running = True
        elif isinstance(report, r.TrajectoryEnded):
            running = False
            found.append(event)
        elif isinstance(report, r.IncapacityInterrupted):
            returned = report.returned_on
        elif isinstance(report, r.IncapacityResumed):
            assert returned is not None
            if (report.resumed_on - returned).days >= 14 and not running:
                found.append(event)
    return found


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(periods())
def test_the_earliest_letter_is_the_first_day_intake_accepts_one(case: tuple[History, bool]) -> None:
    h, running = case
    version = {e.event_id: e.version for e in h.events}
    found = sorted(eligible(h), key=lambda d: version[d.started_by])
    # one deadline per start: a short return to work neither cancels it nor starts another
    assert [d.started_by for d in found] == [e.event_id for e in starters(h)]
    opened = [d for d in found if d.state == "open"]
    if running:  # a letter is refused while a trajectory runs: no earliest date
        assert opened == []
        return
    [d] = opened
    timeline = timeline_of(h)
    last = max(e.report.effective_date for e in h.events)
    first_day = timeline.spell_start(last, tolerance_on(last))
    assert first_day is not None
    earliest = first_accepted(timeline, first_day)
    assert (d.starts_on, d.due_on, d.deadline_kind) == (first_day, earliest, DeadlineKind.NOT_BEFORE)
    assert d.id == deadline_id(h, starters(h)[-1])
    assert f"from {first_day} (the current period's first day;" in d.explanation
    assert f"so not before {earliest}" in d.explanation
    assert d.regime == ("BE-2026" if earliest >= date(2026, 1, 1) else "BE-2022")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(periods())
def test_the_fold_follows_the_periods_as_the_whole_history_does(case: tuple[History, bool]) -> None:
    check_fold(case[0].events, BE, Policy())
