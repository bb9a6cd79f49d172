"""Properties of the ledger over random histories under the 2026 law (daily benefits, returns and relapses, partial
resumptions, no-shows and contacts, terminations): incremental equals whole, deterministic, and an entry's words
are fixed by its id, so that a kept entry never differs from its recomputation (what ``audit verify`` compares)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import reports as r
from shared.rulebook.benefits import LedgerEntry, compute_ledger, effective, reconcile
from shared.rulebook.model import Rulebook, Status
from tests.unit.test_benefits_2026_builder import BIS_NUMBER, BORN_1985, TNW_2026, Case2026, insz
from tests.unit.test_benefits_builder import RB

MOVED = RB.with_rule_starts({TNW_2026: date(2026, 1, 1)})
Action = Callable[[st.DrawFn, Case2026, date], object]


def _back(draw: st.DrawFn, day: date, start: date, most: int) -> date:
    return max(start, day - timedelta(days=draw(st.integers(0, most))))


ACTIONS: dict[str, Action] = {
    "benefit": lambda draw, h, day: h.benefit(h.start + timedelta(days=draw(st.integers(0, 60))),
                                              f"{draw(st.integers(4000, 9900)) / 100:.2f}"),
    "interrupt": lambda draw, h, day: h.interrupt(day),
    "resume": lambda draw, h, day: h.resume(day),
    "review": lambda draw, h, day: h.review(day),
    "ended": lambda draw, h, day: h.ended(_back(draw, day, h.start, 30)),
    "declare": lambda draw, h, day: h.declare(_back(draw, day, h.start, 20), draw(st.integers(8, 30))),
    "authorise": lambda draw, h, day: h.authorise(day),
    "end": lambda draw, h, day: h.end(_back(draw, day, h.start, 20)),
    "no_show": lambda draw, h, day: h.no_show(_back(draw, day, h.start, 10), physical=draw(st.booleans()),
                                              justified=draw(st.booleans())),
    "contact": lambda draw, h, day: h.contact(_back(draw, day, h.start, 5)),
    "terminate": lambda draw, h, day: h.terminate(day, draw(st.sampled_from(
        ["medical_force_majeure", "mutual_agreement_medical"]))),
}
WEIGHTED = [*sorted(ACTIONS), "benefit", "benefit", "review", "review", "interrupt", "resume", "no_show", "contact"]


@st.composite
def cases(draw: st.DrawFn) -> Case2026:
    start = draw(st.dates(date(2025, 10, 1), date(2026, 6, 1)))
    h = Case2026(
        start=start, staff=draw(st.sampled_from([49, 50, 120])),
        insz=draw(st.sampled_from([BORN_1985] * 4 + [BIS_NUMBER, insz(date(1971, 3, 1)), insz(date(2008, 2, 1))])),
        employed_since=draw(st.sampled_from([None, start - timedelta(days=20), *[date(2020, 1, 1)] * 4])),
        contract=draw(st.sampled_from([None, *list(r.ContractKind), *[r.ContractKind.OPEN_ENDED] * 6])),
    )
    day = start
    for _ in range(draw(st.integers(1, 12))):
        day += timedelta(days=draw(st.integers(0, 30) | st.integers(50, 70)))
        h.now = datetime.combine(day, time(draw(st.sampled_from([8, 22])), 30), tzinfo=UTC)
        ACTIONS[draw(st.sampled_from(WEIGHTED))](draw, h, day)
    return h


def incremental(h: Case2026, rulebook: Rulebook) -> list[LedgerEntry]:
    """Reconcile after each prefix; every entry computed under one id has the same words each time."""
    recorded: list[LedgerEntry] = []
    words: dict[object, str] = {}
    for k in range(1, len(h.events) + 1):
        computed = compute_ledger(h.events[:k], rulebook)
        for entry in computed:
            assert words.setdefault(entry.id, entry.explanation) == entry.explanation, entry.rule
        recorded += reconcile(recorded, computed, h.events[k - 1].event_id)
        assert effective(recorded) == computed
    return recorded


PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(cases(), st.sampled_from([RB, MOVED]))
def test_incremental_ledger_equals_the_whole_and_words_follow_ids(h: Case2026, rulebook: Rulebook) -> None:
    recorded = incremental(h, rulebook)
    whole = compute_ledger(h.events, rulebook)
    assert effective(recorded) == whole
    assert len({e.id for e in recorded}) == len(recorded)
    for e in whole:
        assert e.amount is None or e.amount.as_tuple().exponent == -2
        if "uncertain" in e.explanation and e.rule.startswith(("employer.", "return_to_work", "force_majeure")):
            assert e.status is Status.UNCERTAIN, e.explanation
        if e.rule == "employer.solidarity_contribution" and e.amount is not None:  # one calendar month each
            assert e.period_end is not None and e.period_start <= e.period_end
            assert (e.period_start.year, e.period_start.month) == (e.period_end.year, e.period_end.month)


@PROPERTY
@given(cases(), st.randoms(use_true_random=False))
def test_the_2026_ledger_does_not_depend_on_the_order_given(h: Case2026, rnd: random.Random) -> None:
    first = compute_ledger(h.events, RB)
    shuffled = list(h.events)
    rnd.shuffle(shuffled)
    assert compute_ledger(shuffled, RB) == first
