"""For any case history, the derived services' incremental state equals the pure functions over the whole history.

Histories come from the seeded generator (every kind of case the demo feeds), recorded by the real Case rules in
memory; each event is then applied one by one to the deadlines and benefits applications (in-memory stores).
"""

from __future__ import annotations

from datetime import UTC, datetime

from eventsourcing.utils import get_topic
from hypothesis import HealthCheck, given, settings, strategies as st

from reintegration.generator import Generator
from services.benefits.application import BenefitsApplication
from services.deadlines.application import DeadlinesApplication
from services.intake.application import IntakeApplication
from services.intake.decide import Rejection
from shared.events.codec import ContractError
from shared.infra.derived import Outcome
from shared.infra.store import MsgspecMapper, NullTranscoder
from shared.rulebook import default_rulebook
from shared.rulebook.benefits import compute_ledger, effective
from shared.rulebook.deadlines import compute_deadlines

MEMORY = {
    "PERSISTENCE_MODULE": "eventsourcing.popo",
    "MAPPER_TOPIC": get_topic(MsgspecMapper),
    "TRANSCODER_TOPIC": get_topic(NullTranscoder),
}
NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)


def history(seed: int):  # noqa: ANN201
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
        try:
            intake.submit(step.party, report, NOW)
        except (Rejection, ContractError):
            pass
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
            again = batched.rebuild_from(log, now=lambda: NOW, batch=batch)  # type: ignore[arg-type]
            assert again[Outcome.DUPLICATE] == len(log)


def test_a_batch_that_meets_a_concurrent_writer_is_redone_one_event_at_a_time(tmp_path) -> None:  # noqa: ANN001
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
