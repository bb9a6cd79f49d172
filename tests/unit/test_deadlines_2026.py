"""BE-2026 deadlines of RULEBOOK section 10: the duty to start a trajectory (employers of at least 20, incapacities
from 1 Jan 2026), the work-potential request met by the estimate, and the ``at_least`` condition they rely on.

Each selecting date is tested the day before and the day of it; dates were counted by hand (comments)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import msgspec
import pytest

from shared.events import reports as r
from shared.rulebook.deadlines import DeadlineRule, EventMatch, PenaltyRange, PenaltyScale, _Index, _unconditional
from shared.rulebook.model import Status
from tests.unit.test_deadlines import BE, History

DUTY = "employer.trajectory_duty"
WORK_POTENTIAL = "employer.work_potential"


def history(start: date, staff_count: int = 120) -> History:
    """A case opened on ``start`` by an employer of ``staff_count`` workers on average."""
    h = History(start)
    first = h.events[0]
    h.events[0] = msgspec.structs.replace(first, report=msgspec.structs.replace(first.report, staff_count=staff_count))
    return h


def opening(staff_count: int) -> r.IncapacityReported:
    report = history(date(2026, 1, 5), staff_count).events[0].report
    assert isinstance(report, r.IncapacityReported)
    return report


# --- at_least -------------------------------------------------------------------------------------------------


def test_at_least_accepts_the_bound_and_more_not_less() -> None:
    match = EventMatch(report="incapacity_reported.v1", at_least={"staff_count": 20})
    assert [match.fits(opening(n), None) for n in (0, 19, 20, 21, 5000)] == [False, False, True, True, True]
    assert match.matches(opening(20), None)


@pytest.mark.parametrize(
    ("at_least", "error"),
    [
        ({"headcount": 20}, "has no field headcount"),
        ({"start_date": 20}, "start_date is not an integer"),  # a date
        ({"insz": 20}, "insz is not an integer"),  # a string
        ({"staff_count": True}, "the bound of staff_count is not an integer"),
    ],
)
def test_at_least_is_validated_like_where(at_least: dict[str, int], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        EventMatch(report="incapacity_reported.v1", at_least=at_least)


def test_at_least_is_a_condition_so_the_match_is_not_unconditional() -> None:
    matches = [EventMatch(report="incapacity_reported.v1", at_least={"staff_count": 20}),
               EventMatch(report="incapacity_resumed.v1")]
    assert _unconditional(matches) == frozenset({"incapacity_resumed.v1"})
    duty = BE.derived(_Index).versions["BE-2026", DUTY]
    assert duty is not None and "incapacity_reported.v1" not in duty.starters


def test_at_least_reads_from_a_rulebook_file() -> None:
    rule = next(rule for rule in BE.rules(DeadlineRule) if rule.id == DUTY)
    assert isinstance(rule, DeadlineRule)
    assert rule.starts_on == [EventMatch(report="incapacity_reported.v1", at_least={"staff_count": 20})]


# --- the duty to start (RULEBOOK section 10, C+) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (date(2025, 12, 31), None),  # began before 2026: the rule does not reach back
        (date(2026, 1, 1), date(2026, 7, 1)),  # first day 2 Jan; 6 months end on the eve of 2 Jul
        (date(2026, 1, 31), date(2026, 7, 31)),  # 1 Feb + 6 months: the eve of 1 Aug
        (date(2026, 8, 31), date(2027, 2, 28)),  # 1 Sep + 6 months: the eve of 1 Mar 2027
    ],
)
def test_the_duty_to_start_is_selected_by_the_incapacitys_start(start: date, due: date | None) -> None:
    found = [d for d in history(start).deadlines() if d.rule == DUTY]
    assert [(d.due_on, d.regime, d.deadline_kind, d.party, d.concerns_employer, d.status, d.starts_on)
            for d in found] == ([(due, "BE-2026", "due", "employer", True, "C", start)] if due else [])
    if due:
        assert found[0].legal_basis == ("Law of 19 Dec 2025 and KB of 17 Dec 2025 amending the Codex welzijn op het "
                                        "werk, Book I Title 4 Chapter VI")
        assert found[0].inherited_from is None


@pytest.mark.parametrize(("staff_count", "has_duty"), [(19, False), (20, True)])
def test_the_duty_to_start_binds_employers_of_at_least_20(staff_count: int, has_duty: bool) -> None:
    assert (DUTY in history(date(2026, 2, 3), staff_count).rules()) == has_duty


@pytest.mark.parametrize(("requested", "late"), [(date(2026, 7, 1), False), (date(2026, 7, 2), True)])
def test_a_trajectory_request_meets_the_duty(requested: date, late: bool) -> None:
    h = history(date(2026, 1, 1))
    h.add(r.TrajectoryRequested, initiator=r.Initiator.EMPLOYER, received_on=requested)
    d = h.one(DUTY)
    assert (d.state, d.closed_on, d.late) == ("met", requested, late)


def test_an_estimate_without_work_potential_cancels_the_duty_and_one_with_it_does_not() -> None:
    h = history(date(2026, 1, 1))
    h.add(r.WorkPotentialEstimated, estimated_on=date(2026, 3, 1), work_potential=True)
    assert h.one(DUTY).state == "open"
    h.add(r.WorkPotentialEstimated, estimated_on=date(2026, 4, 1), work_potential=False)
    d = h.one(DUTY)
    assert (d.state, d.closed_on) == ("cancelled", date(2026, 4, 1))
    assert "cancelled on 2026-04-01 by work_potential_estimated.v1" in d.explanation


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (r.IncapacityEnded, {"ended_on": date(2026, 5, 4)}),
        (r.ContractTerminated, {"terminated_on": date(2026, 5, 4), "reason": "dismissal"}),
        (r.CaseClosed, {"closed_on": date(2026, 5, 4), "reason": "test"}),
    ],
)
def test_the_end_of_the_incapacity_the_contract_or_the_case_cancels_the_duty(
    cls: type[r.Report], fields: dict[str, object]
) -> None:
    h = history(date(2026, 1, 1))
    h.add(cls, **fields)
    assert (h.one(DUTY).state, h.one(DUTY).closed_on) == ("cancelled", date(2026, 5, 4))


def test_the_duty_notes_the_estimate_and_the_sanction() -> None:
    rule = next(rule for rule in BE.rules() if rule.id == DUTY)
    assert "estimate found work potential" in rule.note and "inspectorate, not computed here" in rule.note
    assert "Social Penal Code level 2" in rule.note


SCALE = "social_penal_code.level_2"
FINES_2026 = "200.00 to 2,000.00 EUR administrative or 400.00 to 4,000.00 EUR criminal per worker concerned"
FINES_FEB_2026 = "250.00 to 2,500.00 EUR administrative or 500.00 to 5,000.00 EUR criminal per worker concerned"


@pytest.mark.parametrize(("offence", "low", "high"), [
    (date(2025, 12, 31), None, None),  # before BE-2026: no level-2 scale in this rulebook
    (date(2026, 1, 31), Decimal("200.00"), Decimal("4000.00")),
    (date(2026, 2, 1), Decimal("250.00"), Decimal("5000.00")),  # offences from 1 Feb 2026: multiplier 10
])
def test_the_level_2_fines_are_selected_by_the_offence_date(offence: date, low: Decimal | None,
                                                            high: Decimal | None) -> None:
    if low is None:
        with pytest.raises(LookupError):
            BE.rule_on(SCALE, offence)
        return
    scale = BE.rule_on(SCALE, offence).rule
    assert isinstance(scale, PenaltyScale) and (scale.level, scale.per) == (2, "worker concerned")
    fines = scale.range_on(offence)
    assert fines is not None and (fines.administrative[0], fines.criminal[1]) == (low, high)


def test_an_open_duty_cites_the_fines_for_an_offence_the_day_after_and_a_met_one_does_not() -> None:
    h = history(date(2026, 1, 1))  # due 1 Jul 2026: an offence from 2 Jul, after 1 Feb 2026
    d = h.one(DUTY)
    assert d.explanation.endswith(f"on 2026-07-02 a fine of {FINES_FEB_2026}, established by the inspectorate "
                                  "(not computed here); open.")
    assert f"level 2 of the Social Penal Code ({SCALE})" in d.explanation
    h.add(r.TrajectoryRequested, initiator=r.Initiator.EMPLOYER, received_on=date(2026, 7, 1))
    assert "Social Penal Code" not in h.one(DUTY).explanation  # met in time: nothing to sanction
    late = history(date(2026, 1, 1))
    late.add(r.TrajectoryRequested, initiator=r.Initiator.EMPLOYER, received_on=date(2026, 7, 3))
    assert "(late)" in late.one(DUTY).explanation and FINES_FEB_2026 in late.one(DUTY).explanation


def test_a_due_date_in_january_2026_cites_the_lower_fines() -> None:
    """No duty falls due before July 2026 under the shipped rulebook; a scale of its own shows the offence date
    choosing the range: a due date of 30 Jan 2026 is an offence on the 31st, under the multiplier 8."""
    text = _sanction_words(date(2026, 1, 30))
    assert f"on 2026-01-31 a fine of {FINES_2026}" in text
    assert f"on 2026-02-01 a fine of {FINES_FEB_2026}" in _sanction_words(date(2026, 1, 31))


def _sanction_words(due: date) -> str:
    from shared.rulebook.deadlines import _sanction

    rule = next(rule for rule in BE.rules() if rule.id == DUTY)
    assert isinstance(rule, DeadlineRule)
    return _sanction(BE, rule, due)


def test_a_scale_needs_its_ranges_in_order() -> None:
    one = PenaltyRange(offences_from=date(2026, 2, 1), administrative=(Decimal(1), Decimal(2)),
                       criminal=(Decimal(2), Decimal(4)))
    earlier = msgspec.structs.replace(one, offences_from=date(2026, 1, 1))
    with pytest.raises(ValueError, match="in order of offences_from"):
        PenaltyScale(id="x", regime="BE-2026", legal_basis="b", status=Status.CONFIRMED, code="c", level=2, per="w",
                     ranges=[one, earlier])
    assert PenaltyScale(id="x", regime="BE-2026", legal_basis="b", status=Status.CONFIRMED, code="c", level=2,
                        per="w", ranges=[earlier, one]).range_on(date(2025, 12, 31)) is None


# --- the work-potential request (met by the estimate from now on) -----------------------------------------------


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (date(2025, 11, 5), None),  # + 8 weeks = Wed 31 Dec 2025: over before the 2026 law
        (date(2025, 11, 6), date(2026, 1, 1)),  # + 8 weeks = 1 Jan 2026, the day the law applies: reaches back
    ],
)
def test_the_work_potential_request_reaches_back_to_the_day(start: date, due: date | None) -> None:
    assert [d.due_on for d in History(start).deadlines() if d.rule == WORK_POTENTIAL] == ([due] if due else [])


@pytest.mark.parametrize("potential", [True, False])
@pytest.mark.parametrize(("estimated", "late"), [(date(2026, 3, 2), False), (date(2026, 3, 3), True)])
def test_the_estimate_meets_the_work_potential_request(potential: bool, estimated: date, late: bool) -> None:
    h = History(date(2026, 1, 5))  # Mon 5 Jan 2026 + 8 weeks = Mon 2 Mar 2026
    h.add(r.WorkPotentialEstimated, estimated_on=estimated, work_potential=potential)
    d = h.one(WORK_POTENTIAL)
    assert (d.due_on, d.state, d.closed_on, d.late) == (date(2026, 3, 2), "met", estimated, late)
    assert "met on" in d.explanation and "by work_potential_estimated.v1" in d.explanation


def test_a_trajectory_request_still_meets_the_work_potential_request() -> None:
    h = History(date(2026, 1, 5))
    h.request(date(2026, 2, 2))
    assert (h.one(WORK_POTENTIAL).state, h.one(WORK_POTENTIAL).late) == ("met", False)
