"""The states a derived service keeps between a case's events never decide against the store: two applications
over one SQLite store (a service and a command in another process, such as a replay or a rebuild)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.deadlines.application import build_deadlines
from shared.infra.derived import Outcome
from shared.infra.settings import Settings
from tests.integration.test_derived_property import history

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)


def _case_with(events: int) -> list:
    for seed in range(200):
        found = history(seed)
        if len(found) >= events:
            return found
    raise AssertionError("no generated case is long enough")


def test_a_remembered_state_that_another_process_overtook_is_read_again(tmp_path: Path) -> None:
    events = _case_with(4)
    settings = Settings(data_dir=tmp_path / "data")
    service, other = build_deadlines(settings), build_deadlines(settings)
    try:
        assert service.process(events[0], 1, NOW) is Outcome.APPLIED  # the service remembers version 1
        assert other.process(events[1], 2, NOW) is Outcome.APPLIED
        assert other.process(events[2], 3, NOW) is Outcome.APPLIED
        # version 4 follows what the store holds, not what the service remembered: no gap
        assert service.process(events[3], 4, NOW) is Outcome.APPLIED
        # version 2 arriving again is a duplicate whatever was remembered
        assert service.process(events[1], 2, NOW) is Outcome.DUPLICATE
        schedule = service.schedule(events[0].case_id)
        assert schedule is not None and schedule.source_version == 4 and schedule.version == 4
    finally:
        service.close()
        other.close()


def test_a_step_from_a_stale_state_conflicts_and_is_redone_from_the_store(tmp_path: Path) -> None:
    events = _case_with(3)
    settings = Settings(data_dir=tmp_path / "data")
    service, other = build_deadlines(settings), build_deadlines(settings)
    try:
        assert service.process(events[0], 1, NOW) is Outcome.APPLIED
        assert other.process(events[1], 2, NOW) is Outcome.APPLIED
        # the service still remembers version 1 and steps version 2 again: its write conflicts, it reads the
        # store and finds the event applied
        assert service.apply_batch([(2, events[1]), (3, events[2])], NOW) == [Outcome.DUPLICATE, Outcome.APPLIED]
        fresh = build_deadlines(settings)
        try:
            assert fresh.schedule(events[0].case_id) == service.schedule(events[0].case_id)
            assert [e.originator_version for e in fresh.repository.event_store.get(
                fresh.derived_id(events[0].case_id))] == [1, 2, 3]
        finally:
            fresh.close()
    finally:
        service.close()
        other.close()


def test_a_first_event_delivered_again_is_a_duplicate_though_it_is_stepped_without_a_read(tmp_path: Path) -> None:
    """A batch steps a case's first event without asking the store (the case is new, unless the event is delivered
    again). Delivered again to a process that does not remember the case, it writes version 1 again: the batch
    conflicts, is redone reading every case, and the event is a duplicate while the rest of the batch applies."""
    events = _case_with(3)
    settings = Settings(data_dir=tmp_path / "data")
    service, restarted = build_deadlines(settings), build_deadlines(settings)
    try:
        assert service.apply_batch([(1, events[0])], NOW) == [Outcome.APPLIED]
        assert restarted.apply_batch([(1, events[0]), (2, events[1])], NOW) == [Outcome.DUPLICATE, Outcome.APPLIED]
        # the same batch once more (a rebuild run over a built store): nothing is written twice
        assert restarted.apply_batch([(1, events[0]), (2, events[1])], NOW) == [Outcome.DUPLICATE] * 2
        fresh = build_deadlines(settings)
        try:
            assert [e.originator_version for e in fresh.repository.event_store.get(
                fresh.derived_id(events[0].case_id))] == [1, 2]
            assert fresh.schedule(events[0].case_id) == restarted.schedule(events[0].case_id)
        finally:
            fresh.close()
    finally:
        service.close()
        restarted.close()


def test_a_process_remembers_no_more_states_than_its_cache_holds(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    app = build_deadlines(settings)
    app.state_cache = 3
    try:
        cases = [h for h in (history(seed) for seed in range(30)) if h][:6]
        for position, events in enumerate(cases, start=1):
            assert app.process(events[0], position, NOW) is Outcome.APPLIED
        assert len(app._states) == 3 and len(app._case_of) == 3
        assert list(app._states) == [events[0].case_id for events in cases[-3:]]
    finally:
        app.close()


def test_a_fired_timer_is_not_held_behind_by_a_remembered_state(tmp_path: Path) -> None:
    """The service remembers version 1; another process applied version 2, which the timer's check of TRAJECTORY
    knows: the outcome is decided on the store (recorded), not on the remembered state (which would say behind)."""
    from services.deadlines.application import FiredTimer, TimerOutcome

    events = next(h for h in (history(seed) for seed in range(300))
                  if len(h) >= 2 and _open_after(h[:2], tmp_path))
    settings = Settings(data_dir=tmp_path / "data")
    service, other = build_deadlines(settings), build_deadlines(settings)
    try:
        assert service.process(events[0], 1, NOW) is Outcome.APPLIED
        assert other.process(events[1], 2, NOW) is Outcome.APPLIED
        schedule = other.schedule(events[0].case_id)
        assert schedule is not None
        deadline = next(d for d in schedule.deadlines.values() if d.state == "open")
        timer = FiredTimer(events[0].case_id, deadline.id, deadline.due_on, NOW, NOW, 2, None)
        assert service.timers_fired([timer], NOW) == [TimerOutcome.RECORDED]
        assert service.timers_fired([timer], NOW) == [TimerOutcome.STALE]  # recorded once
    finally:
        service.close()
        other.close()


def test_a_timer_delivered_twice_in_one_batch_is_recorded_once_in_one_transaction(tmp_path: Path) -> None:
    """Two deliveries of one fired timer in a batch, the case remembered: the first is recorded, the second is
    stale against the batch's own unsaved outcome (not re-decided on the store, which has not seen it, and would
    record the outcome twice and make the batch's write conflict). The batch is written at once: the case stays
    remembered (a conflict would have made the service forget it and redo each timer from the store)."""
    from services.deadlines.application import FiredTimer, TimerOutcome

    events = next(h for h in (history(seed) for seed in range(300)) if h and _open_after(h[:1], tmp_path))
    settings = Settings(data_dir=tmp_path / "data")
    service = build_deadlines(settings)
    try:
        case_id = events[0].case_id
        assert service.process(events[0], 1, NOW) is Outcome.APPLIED
        schedule = service.schedule(case_id)
        assert schedule is not None and case_id in service._states
        deadline = next(d for d in schedule.deadlines.values() if d.state == "open")
        timer = FiredTimer(case_id, deadline.id, deadline.due_on, NOW, NOW, 1, None)
        assert service.timers_fired([timer, timer], NOW) == [TimerOutcome.RECORDED, TimerOutcome.STALE]
        assert case_id in service._states  # written in one go: no conflict, no fallback
        recorded = service.repository.event_store.get(service.derived_id(case_id))
        assert [type(e).__name__ for e in recorded] == ["ScheduleStep", "TimerFired"]
    finally:
        service.close()


def _open_after(events: list, tmp_path: Path) -> bool:
    from services.deadlines.application import DeadlinesApplication
    from tests.integration.test_derived_property import MEMORY

    app = DeadlinesApplication(env=MEMORY)
    for position, event in enumerate(events, start=1):
        app.process(event, position, NOW)
    schedule = app.schedule(events[0].case_id)
    return schedule is not None and any(d.state == "open" for d in schedule.deadlines.values())
