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
