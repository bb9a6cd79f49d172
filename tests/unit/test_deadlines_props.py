"""Properties of compute_deadlines over random valid-looking histories (both rulebooks, every policy)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import reports as r
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.calendar import calendar_for
from shared.rulebook.deadlines import Deadline, Policy, compute_deadlines
from tests.unit.test_deadlines import BE, History

NL = default_rulebook("nl")
#: Every report about a case except the two money reports, which no deadline reads.
KINDS = [cls for cls in r.REPORT_TYPES if issubclass(cls, r.CaseReport)
         and cls not in (r.TrainingHoursAttended, r.RehabilitationCostsReported)]
#: Drawn more often: returns to work and resumptions (short and long ones: the incapacity periods some rules count
#: from) and trajectories that start and end (they suspend and restart rules).
OFTEN = [r.IncapacityInterrupted, r.IncapacityResumed] * 3 + [r.TrajectoryRequested, r.TrajectoryEnded] * 2
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "initiator": st.sampled_from(list(r.Initiator)),
    "decision": st.sampled_from("ABCDE"),
    "assessment_upheld": st.booleans(),
    "unfitness": st.sampled_from(list(r.Unfitness)),
    "answer": st.sampled_from(list(r.PlanAnswer)),
    "reason": st.just("test"),
    "weekly_hours": st.just(19),
    "full_time_hours": st.just(38),
    "definitively_unfit": st.booleans(),
    "outcome": st.sampled_from(list(r.ReviewOutcome)),
    "justified": st.booleans(),
    "successful": st.booleans(),
    "measures": st.just([r.PlanMeasure(kind="adapted_hours")]),
    "work_potential": st.booleans(),
    "daily_benefit": st.just(Decimal("62.50")),
}


#: Starts a few months before a regime switch, so that running deadlines cross it.
NEAR_SWITCHES = [st.dates(date(2022, 6, 1), date(2022, 9, 30)), st.dates(date(2025, 9, 1), date(2025, 12, 31))]


@st.composite
def histories(draw: st.DrawFn, rulebook: Rulebook) -> History:
    start = draw(st.one_of(st.dates(date(2016, 6, 1), date(2027, 12, 31)), *NEAR_SWITCHES))
    h = History(start, rulebook)
    day = start
    for _ in range(draw(st.integers(0, 20))):
        day += timedelta(days=draw(st.one_of(st.integers(0, 20), st.integers(0, 150))))
        cls = draw(st.sampled_from(KINDS + OFTEN))
        fields: dict[str, Any] = {cls.effective_field: day}
        for field in msgspec.structs.fields(cls):
            if field.name in fields or field.name in ("report_id", "case_id", "regime"):
                continue
            if field.required and field.name == "starts_on":
                fields["starts_on"] = day + timedelta(days=draw(st.integers(-3, 20)))
            elif field.required:
                fields[field.name] = draw(VALUES[field.name])
        h.add(cls, **fields)
    return h


POLICIES = st.builds(Policy, st.booleans(), st.sampled_from([frozenset(), frozenset({"flemish-government-return-coach"})]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([BE, NL]).flatmap(histories), POLICIES)
def test_compute_deadlines_properties(h: History, policy: Policy) -> None:
    rulebook = h.rulebook
    found = compute_deadlines(h.events, rulebook, policy)
    # deterministic, and the order of the input does not matter (the versions do)
    assert found == compute_deadlines(list(reversed(h.events)), rulebook, policy)
    assert found == sorted(found, key=lambda d: (d.due_on, d.rule, d.starts_on, str(d.id)))
    assert len({d.id for d in found}) == len(found)
    assert msgspec.json.decode(msgspec.json.encode(found), type=list[Deadline]) == found  # as the services store them
    calendar = calendar_for(rulebook.calendar.id)
    switches = {regime.valid_from for regime in rulebook.regimes}
    for d in found:
        assert d.due_on >= d.counted_due_on
        # forward periods end on or after their start; the one backward rule ends before it
        assert d.due_on >= d.starts_on if d.amount > 0 else d.due_on < d.starts_on
        assert (d.state == "open") == (d.closed_on is None)
        if d.state != "open" and d.closed_by is None:
            assert d.state == "cancelled" and d.closed_on in switches
        assert not (d.late and d.early) and (d.state == "met" or not (d.late or d.early))
        if policy.roll_forward and d.deadline_kind in ("due", "window"):
            assert calendar.is_working_day(d.due_on)
        elif d.deadline_kind != "not_before":  # an earliest date may move past a regime switch or a return to work
            assert d.due_on == d.counted_due_on
        assert d.policy == policy.id and d.calendar == rulebook.calendar.id
        assert (d.rule == "employer_policy.return_coach") <= bool(policy.employer_policies)
    # deadlines never vanish as the history grows (the service would otherwise withdraw them)
    before = {d.id for d in compute_deadlines(h.events[:-1], rulebook, policy)}
    assert before <= {d.id for d in found}
