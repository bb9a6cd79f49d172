"""Properties of the ledger over random histories: incremental equals whole, reversals cancel, determinism."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import reports as r
from shared.rulebook.benefits import EntryKind, LedgerEntry, Options, compute_ledger, effective, reconcile
from tests.unit.test_benefits_builder import RB, History

ANNOUNCED = ("sanction.employer.non_cooperation", "sanction.worker.questionnaire", "sanction.worker.invitation")
Action = Callable[[st.DrawFn, History, date], object]


def _back(draw: st.DrawFn, day: date, start: date, most: int) -> date:
    """A day up to ``most`` days before ``day``, not before the incapacity."""
    return max(start, day - timedelta(days=draw(st.integers(0, most))))


def _declare(draw: st.DrawFn, h: History, day: date) -> None:
    full = draw(st.sampled_from([38, 40]))
    starts_on = max(h.start, day + timedelta(days=draw(st.integers(-20, 20))))
    h.declare(starts_on, draw(st.integers(0, full)), full, declared_on=day)


def _authorise(draw: st.DrawFn, h: History, day: date) -> None:
    hours = draw(st.none() | st.integers(0, 38))
    until = draw(st.none() | st.integers(30, 800))
    h.authorise(day, hours=hours, valid_until=None if until is None else day + timedelta(days=until))


def _rehab(draw: st.DrawFn, h: History, day: date) -> None:
    what = draw(st.sampled_from(["approve", "hours", "cost", "completed"]))
    if what == "approve":
        h.rehabilitation(_back(draw, day, h.start, 30), day)
    elif what == "hours":
        hours = draw(st.decimals(Decimal("0.001"), Decimal("200"), places=3))
        h.training_hours(_back(draw, day, h.start, 20), day, str(hours))
    elif what == "cost":
        amount = draw(st.decimals(Decimal("0.001"), Decimal("900"), places=3))
        h.cost(day, str(amount), draw(st.sampled_from(list(r.CostKind))))
    else:
        h.completed(day, successful=draw(st.booleans()))


def _story(draw: st.DrawFn, h: History, day: date) -> None:
    """A resumption declared, authorised and perhaps failed, all reported on ``day`` (a late batch)."""
    starts_on = max(h.start, day - timedelta(days=draw(st.integers(0, 200))))
    h.declare(starts_on, draw(st.integers(10, 30)), 38, declared_on=starts_on - timedelta(days=3))
    h.authorise(starts_on + timedelta(days=2))
    if draw(st.booleans()):
        h.fail(starts_on + timedelta(days=draw(st.integers(0, 200))))


ACTIONS: dict[str, Action] = {
    "story": _story,
    "declare": _declare,
    "authorise": _authorise,
    "rehab": _rehab,
    "end": lambda draw, h, day: h.end(_back(draw, day, h.start, 40)),
    "fail": lambda draw, h, day: h.fail(_back(draw, day, h.start, 40)),
    "interrupt": lambda draw, h, day: h.interrupt(day),
    "resume": lambda draw, h, day: h.resume(day),
    "review": lambda draw, h, day: h.review(day),
    "miss": lambda draw, h, day: h.miss(_back(draw, day, h.start, 10), justified=draw(st.booleans())),
    "sent": lambda draw, h, day: h.questionnaire_sent(day),
    "returned": lambda draw, h, day: h.questionnaire_returned(_back(draw, day, h.start, 25)),
    "force_majeure": lambda draw, h, day: h.force_majeure(_back(draw, day, h.start, 60), day, unfit=draw(st.booleans())),
    "terminate": lambda draw, h, day: h.terminate(day, draw(st.sampled_from(["medical_force_majeure", "dismissal"]))),
    "trajectory_ended": lambda draw, h, day: h.trajectory_ended(
        _back(draw, day, h.start, 90), day, draw(st.sampled_from(["employer_non_cooperation", "plan_finished"]))),
}

#: Resumptions and the passing of time are drawn more often: premiums and exemptions need long chains of them.
WEIGHTED = [*sorted(ACTIONS), "declare", "authorise", "authorise", "fail", "review", "review"]
CAUSES = [r.Cause.ILLNESS, r.Cause.ILLNESS, r.Cause.WORK_ACCIDENT, r.Cause.OCCUPATIONAL_DISEASE]


@st.composite
def cases(draw: st.DrawFn) -> tuple[History, Options, bool]:
    """A random history (1-14 steps, each recorded on a later or equal day), options and the prior-premium flag."""
    start = draw(st.dates(date(2016, 6, 1), date(2026, 6, 1)))
    h = History(start=start, cause=draw(st.sampled_from(CAUSES)), staff=draw(st.sampled_from([10, 49, 50, 120])))
    day = start
    for _ in range(draw(st.integers(1, 14))):
        day = day + timedelta(days=draw(st.integers(0, 60) | st.integers(100, 420)))
        # recorded late in the evening sometimes: 22:30 UTC is already the next day in Brussels in summer
        h.now = datetime.combine(day, time(draw(st.sampled_from([8, 22])), 30), tzinfo=UTC)
        ACTIONS[draw(st.sampled_from(WEIGHTED))](draw, h, day)
    options = Options(enabled_announced=frozenset(draw(st.sets(st.sampled_from(ANNOUNCED)))))
    return h, options, draw(st.booleans())


def incremental(h: History, options: Options, prior: bool) -> list[LedgerEntry]:
    """Reconcile after each prefix of the history, accumulating the recorded entries."""
    recorded: list[LedgerEntry] = []
    for k in range(1, len(h.events) + 1):
        computed = compute_ledger(h.events[:k], RB, options, prior_premium=prior)
        recorded += reconcile(recorded, computed, h.events[k - 1].event_id)
        assert effective(recorded) == computed
    return recorded


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(cases())
def test_incremental_ledger_equals_the_ledger_of_the_whole_history(case: tuple[History, Options, bool]) -> None:
    h, options, prior = case
    recorded = incremental(h, options, prior)
    whole = compute_ledger(h.events, RB, options, prior_premium=prior)
    assert effective(recorded) == whole
    assert len({e.id for e in recorded}) == len(recorded)  # ids stay unique in the ledger
    assert reconcile(recorded, whole, h.events[-1].event_id) == []  # unchanged entries produce nothing


@PROPERTY
@given(cases())
def test_a_reversed_entry_and_its_reversal_sum_to_zero(case: tuple[History, Options, bool]) -> None:
    h, options, prior = case
    recorded = incremental(h, options, prior)
    by_id = {e.id: e for e in recorded}
    for reversal in (e for e in recorded if e.kind is EntryKind.REVERSAL):
        original = by_id[reversal.reverses]  # type: ignore[index]
        assert original.kind is not EntryKind.REVERSAL
        for field in ("amount", "percentage"):
            a, b = getattr(original, field), getattr(reversal, field)
            assert (a is None) == (b is None)
            if a is not None:
                assert a + b == 0
        assert (reversal.rule, reversal.period_start, reversal.period_end) == (
            original.rule, original.period_start, original.period_end)


@PROPERTY
@given(cases(), st.randoms(use_true_random=False))
def test_compute_ledger_is_deterministic(case: tuple[History, Options, bool], rnd: random.Random) -> None:
    h, options, prior = case
    first = compute_ledger(h.events, RB, options, prior_premium=prior)
    shuffled = list(h.events)
    rnd.shuffle(shuffled)
    with localcontext() as context:  # the caller's decimal context does not matter
        context.prec = 5
        again = compute_ledger(shuffled, RB, options, prior_premium=prior)
    assert again == first
    assert [e.id for e in again] == [e.id for e in first]
    for e in first:
        assert e.amount is None or e.amount.as_tuple().exponent == -2  # cents
