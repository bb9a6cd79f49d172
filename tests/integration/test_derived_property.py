"""For any case history, the derived services' incremental state equals the pure functions over the whole history.

Histories come from the seeded generator (every kind of case the demo feeds), recorded by the real Case rules in
memory; each event is then applied one by one to the deadlines and benefits applications (in-memory stores).
The deadlines are also checked over free-form histories (the strategy of ``tests/unit/test_deadlines_props.py``),
some of them moved so that the 1 Oct 2022 or 28 Nov 2022 switch falls in the middle of the case.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from eventsourcing.utils import get_topic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.generator import Generator
from services.benefits.application import BenefitsApplication
from services.deadlines.application import DeadlinesApplication
from services.intake.application import IntakeApplication
from services.intake.decide import Rejection
from shared.events.codec import ContractError
from shared.infra.derived import Outcome
from shared.infra.store import MsgspecMapper, NullTranscoder
from shared.rulebook import default_rulebook
from shared.rulebook.benefits import compute_ledger, effective
from shared.rulebook.deadlines import Policy, compute_deadlines
from tests.unit.test_deadlines import BE, EMPLOYER, History
from tests.unit.test_deadlines_props import histories

MEMORY = {
    "PERSISTENCE_MODULE": "eventsourcing.popo",
    "MAPPER_TOPIC": get_topic(MsgspecMapper),
    "TRANSCODER_TOPIC": get_topic(NullTranscoder),
}
NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)


def history(seed: int):
    """One generated case, recorded by the real intake rules; its accepted events."""
    script = Generator(seed).script()
    intake = IntakeApplication(env=MEMORY)
    try:
        case_id = intake.submit(script.opener, script.opening, NOW).case_id
    except Rejection:
        return []
    for step in script.steps:
        report = step.build(case_id)
        if isinstance(report, bytes):
            continue
        with contextlib.suppress(Rejection, ContractError):
            intake.submit(step.party, report, NOW)
    return intake.case_events(case_id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_incremental_deadlines_equal_the_pure_function(seed: int) -> None:
    events = history(seed)
    app = DeadlinesApplication(env=MEMORY)
    rulebook = default_rulebook()
    for position, event in enumerate(events, start=1):
        assert app.process(event, position, NOW) is Outcome.APPLIED
        schedule = app.schedule(event.case_id)
        assert schedule is not None
        expected = {d.id: d for d in compute_deadlines(events[:position], rulebook)}
        assert schedule.deadlines == expected
    for position, event in enumerate(events, start=1):
        assert app.process(event, position, NOW) is Outcome.DUPLICATE


#: The days a Belgian rule changes: BE-2022 takes effect, and the separate force-majeure procedure begins.
SWITCHES = [date(2022, 10, 1), date(2022, 11, 28)]


def _moved(h: History, delta: timedelta) -> History:
    """The same history ``delta`` later: every date of every report moved, the regimes looked up again."""
    opening = h.events[0].report
    moved = History(opening.effective_date + delta, h.rulebook)
    for event in h.events[1:]:
        report = event.report
        fields: dict[str, Any] = {}
        for name in report.__struct_fields__:
            if name in ("report_id", "case_id", "regime"):
                continue
            value = getattr(report, name)
            fields[name] = value + delta if isinstance(value, date) else value
        moved.add(type(report), **fields)
    return moved


@st.composite
def histories_across_switches(draw: st.DrawFn) -> History:
    """A free-form history, moved so that one of its reports falls within a month of 1 Oct or 28 Nov 2022."""
    h = draw(histories(BE))
    switch = draw(st.sampled_from(SWITCHES))
    pivot = draw(st.sampled_from(h.events)).report.effective_date
    return _moved(h, switch + timedelta(days=draw(st.integers(-30, 30))) - pivot)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(histories(BE), histories_across_switches()), st.booleans())
def test_incremental_deadlines_of_free_form_histories_equal_the_pure_function(h: History, coach: bool) -> None:
    """Applied event by event, as the service does, under both roll-forward policies (and with or without an
    employer policy), the schedule is the pure function of the history so far, and at the end of the whole."""
    events = h.events
    employer_policies = {"flemish-government-return-coach": frozenset({EMPLOYER})} if coach else {}
    for roll in (False, True):
        app = DeadlinesApplication(env=MEMORY, policy=Policy(roll_forward=roll), employer_policies=employer_policies)
        policy = app.policy_for(EMPLOYER)
        assert policy.roll_forward is roll and bool(policy.employer_policies) is coach
        for position, event in enumerate(events, start=1):
            assert app.process(event, position, NOW) is Outcome.APPLIED
            schedule = app.schedule(event.case_id)
            assert schedule is not None and schedule.source_version == position
            expected = {d.id: d for d in compute_deadlines(events[:position], BE, policy)}
            assert schedule.deadlines == expected, (roll, position)
        final = app.schedule(h.case_id)
        assert final is not None
        assert sorted(final.deadlines.values(), key=lambda d: (d.due_on, d.rule, d.starts_on, str(d.id))) == (
            compute_deadlines(events, BE, policy))
        assert all(d.policy == policy.id for d in final.deadlines.values())
        for position, event in enumerate(events, start=1):
            assert app.process(event, position, NOW) is Outcome.DUPLICATE


def test_moved_histories_reach_across_the_2022_switches() -> None:
    """The strategy's move keeps the history and looks the regimes up again (the switch falls inside the case)."""
    h = History(date(2022, 6, 1))
    h.request(date(2022, 9, 15))
    h.assess(date(2022, 10, 20), "A")
    moved = _moved(h, timedelta(days=31))
    assert [e.report.effective_date for e in moved.events] == [date(2022, 7, 2), date(2022, 10, 16),
                                                               date(2022, 11, 20)]
    assert [e.regime for e in moved.events] == ["BE-2016", "BE-2022", "BE-2022"]
    assert msgspec.structs.replace(moved.events[1].report, report_id=h.events[1].report.report_id,
                                   case_id=h.case_id, received_on=date(2022, 9, 15)) == h.events[1].report


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_incremental_ledger_equals_the_pure_function(seed: int) -> None:
    events = history(seed)
    app = BenefitsApplication(env=MEMORY)
    rulebook = default_rulebook()
    for position, event in enumerate(events, start=1):
        assert app.process(event, position, NOW) is Outcome.APPLIED
        ledger = app.ledger(event.case_id)
        assert ledger is not None
        assert effective(ledger.entries) == compute_ledger(events[:position], rulebook)
        assert len({e.id for e in ledger.entries}) == len(ledger.entries)


def _interleaved(seeds: range) -> list[tuple[int, object]]:
    """Several generated cases, their events interleaved as a log holds them (each case in its own order)."""
    histories = [h for h in (history(seed) for seed in seeds) if h]
    log, cursors = [], [0] * len(histories)
    while any(c < len(h) for c, h in zip(cursors, histories, strict=True)):
        for i, h in enumerate(histories):
            if cursors[i] < len(h):
                log.append(h[cursors[i]])
                cursors[i] += 1
    return list(enumerate(log, start=1))


def _stored(app: DeadlinesApplication | BenefitsApplication, log: list[tuple[int, object]]) -> dict[object, object]:
    return {event.case_id: app.load(event.case_id) for _, event in log}  # type: ignore[attr-defined]


def _stored_bytes(app: DeadlinesApplication | BenefitsApplication) -> dict[tuple[object, int], tuple[str, bytes]]:
    """Every stored event as the store holds it: (aggregate, version) -> (topic, state bytes)."""
    notifications = app.recorder.select_notifications(1, 1_000_000)
    return {(n.originator_id, n.originator_version): (n.topic, bytes(n.state)) for n in notifications}


def test_a_batched_rebuild_stores_what_one_event_at_a_time_stores() -> None:
    log = _interleaved(range(40))
    for cls in (DeadlinesApplication, BenefitsApplication):
        one_by_one = cls(env=MEMORY)
        for position, event in log:
            assert one_by_one.process(event, position, NOW) is Outcome.APPLIED  # type: ignore[arg-type]
        for batch in (1, 7, 500):
            batched = cls(env=MEMORY)
            counts = batched.rebuild_from(log, now=lambda: NOW, batch=batch)  # type: ignore[arg-type]
            assert counts[Outcome.APPLIED] == len(log), (cls.__name__, batch)
            assert _stored(batched, log) == _stored(one_by_one, log), (cls.__name__, batch)
            # byte for byte: the same steps, versions and encodings as the live path's one event at a time
            stored = _stored_bytes(batched)
            assert len(stored) >= len(log) and stored == _stored_bytes(one_by_one), (cls.__name__, batch)
            again = batched.rebuild_from(log, now=lambda: NOW, batch=batch)  # type: ignore[arg-type]
            assert again[Outcome.DUPLICATE] == len(log)


def test_a_batch_that_meets_a_concurrent_writer_is_redone_one_event_at_a_time(tmp_path) -> None:
    """A running service applies an event of the batch while the rebuild steps it: the batch's transaction fails as
    a whole and is redone event by event, so that event counts as already applied and nothing is doubled."""
    from services.deadlines.application import build_deadlines
    from shared.infra.settings import Settings

    log = _interleaved(range(10))
    settings = Settings(data_dir=tmp_path / "data")
    rebuilding, running = build_deadlines(settings), build_deadlines(settings)
    position, first = log[0]
    written: list[bool] = []

    def now() -> datetime:
        if not written:  # the rebuild has loaded the first case's state: the running service writes meanwhile
            written.append(running.process(first, position, NOW) is Outcome.APPLIED)  # type: ignore[arg-type]
        return NOW

    counts = rebuilding.rebuild_from(log, now=now, batch=500)  # type: ignore[arg-type]
    assert written == [True]
    assert counts[Outcome.DUPLICATE] == 1 and counts[Outcome.APPLIED] == len(log) - 1
    reference = DeadlinesApplication(env=MEMORY)
    for p, event in log:
        reference.process(event, p, NOW)  # type: ignore[arg-type]
    assert _stored(rebuilding, log) == _stored(reference, log)
    rebuilding.close()
    running.close()
