"""Force majeure, Terug Naar Werk, partial resumption, rehabilitation, and the Dutch timeline from the same function."""

from __future__ import annotations

import inspect
from datetime import date
from pathlib import Path

import pytest

from shared.events import reports as r
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook import deadlines as deadlines_module
from shared.rulebook.calendar import calendar_for
from shared.rulebook.deadlines import compute_deadlines
from tests.unit.test_deadlines import ROLL, History

NL = default_rulebook("nl")


# --- medical force majeure (from 28 Nov 2022) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "earliest", "regime"),
    [
        (date(2023, 1, 31), date(2023, 10, 31), "BE-2022"),  # 9 months complete on 31 Oct (as the eligibility test)
        # month end in a leap year: 9 months from 31 May end on 29 Feb (February has no 31st), the right opens on
        # 1 Mar, the day intake's eligibility check opens it too
        (date(2023, 5, 31), date(2024, 3, 1), "BE-2022"),
        (date(2022, 3, 1), date(2022, 12, 1), "BE-2022"),  # began under BE-2016; the procedure reaches back
        (date(2022, 10, 15), date(2023, 7, 15), "BE-2022"),  # began before 28 Nov 2022
        (date(2022, 2, 1), None, None),  # 1 Nov 2022: over before the procedure existed
        (date(2026, 3, 15), date(2026, 9, 15), "BE-2026"),  # 6 months from 1 Jan 2026 (RULEBOOK section 10)
        # running on 1 Jan 2026: the 9-month count (10 Jun 2026) is recomputed under the 6 months that day
        (date(2025, 9, 10), date(2026, 3, 10), "BE-2026"),
        (date(2025, 3, 1), date(2025, 12, 1), "BE-2022"),  # reached before 2026: left as it was
    ],
)
def test_force_majeure_earliest_letter(start: date, earliest: date | None, regime: str | None) -> None:
    found = [d for d in History(start).deadlines(ROLL) if d.rule == "force_majeure.eligible"]
    expected = [(earliest, earliest, "not_before", regime)] if earliest else []
    assert [(d.counted_due_on, d.due_on, d.deadline_kind, d.regime) for d in found] == expected


@pytest.mark.parametrize("start", [date(2023, 5, 31), date(2023, 11, 30), date(2023, 1, 31), date(2023, 3, 15),
                                   date(2023, 12, 31), date(2024, 2, 29), date(2026, 3, 15), date(2026, 8, 31),
                                   date(2025, 9, 10)])
def test_the_earliest_letter_is_the_day_intake_accepts_it(start: date) -> None:
    """The deadline's earliest date and intake's eligibility check are one rule counted one way, month ends too."""
    from datetime import timedelta

    from shared.rulebook.eligibility import IncapacityTimeline, Ineligible, check_force_majeure_start

    [earliest] = [d.due_on for d in History(start).deadlines() if d.rule == "force_majeure.eligible"]
    timeline = IncapacityTimeline(start=start)
    check_force_majeure_start(default_rulebook(), letter_sent_on=earliest, timeline=timeline, trajectory_running=False)
    with pytest.raises(Ineligible):
        check_force_majeure_start(default_rulebook(), letter_sent_on=earliest - timedelta(days=1), timeline=timeline,
                                  trajectory_running=False)


def test_force_majeure_opens_after_6_months_for_letters_from_2026_also_for_a_running_incapacity() -> None:
    """BE-2026 (letter date): 6 months instead of 9. An incapacity of 31 May 2025 has its 6 months by December
    2025, but a letter of 31 Dec 2025 is still judged under BE-2022 (9 months: March 2026); from 1 Jan 2026 the
    6 months apply to it too."""
    from shared.rulebook.eligibility import IncapacityTimeline, Ineligible, check_force_majeure_start

    timeline = IncapacityTimeline(start=date(2025, 5, 31))
    with pytest.raises(Ineligible) as refused:
        check_force_majeure_start(default_rulebook(), letter_sent_on=date(2025, 12, 31), timeline=timeline,
                                  trajectory_running=False)
    assert "9 months" in str(refused.value)
    in_force = check_force_majeure_start(default_rulebook(), letter_sent_on=date(2026, 1, 1), timeline=timeline,
                                         trajectory_running=False)
    assert (in_force.rule.regime, in_force.rule.min_months) == ("BE-2026", 6)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("letter", "early"), [(date(2023, 10, 31), False), (date(2023, 10, 30), True)])
def test_force_majeure_letter_before_nine_months_is_early(letter: date, early: bool) -> None:
    h = History(date(2023, 1, 31))
    h.add(r.MedicalForceMajeureStarted, letter_sent_on=letter)
    d = h.one("force_majeure.eligible")
    assert (d.state, d.early, d.late) == ("met", early, False)


@pytest.mark.parametrize(
    ("letter", "invitation", "decision", "decision_rolled"),
    [
        # Wed 1 Nov 2023 + 10 = Sat 11 Nov (an earliest date never rolls); + 3 months = Thu 1 Feb 2024
        (date(2023, 11, 1), date(2023, 11, 11), date(2024, 2, 1), date(2024, 2, 1)),
        # Thu 30 Nov 2023: 3 months from Fri 1 Dec end on Thu 29 Feb 2024 (the eve of 1 Mar); Sat 30 Sep 2023:
        # 3 months from 1 Oct end on Sun 31 Dec (from date to the eve of the date, Judicial Code art. 54)
        # -> Tue 2 Jan 2024 (1 Jan is a holiday)
        (date(2023, 11, 30), date(2023, 12, 10), date(2024, 2, 29), date(2024, 2, 29)),
        (date(2023, 9, 30), date(2023, 10, 10), date(2023, 12, 31), date(2024, 1, 2)),
    ],
)
def test_force_majeure_invitation_and_decision(letter: date, invitation: date, decision: date,
                                               decision_rolled: date) -> None:
    h = History(date(2022, 12, 1))
    h.add(r.MedicalForceMajeureStarted, letter_sent_on=letter)
    assert h.one("force_majeure.invitation", ROLL).due_on == invitation
    assert h.one("force_majeure.decision").due_on == decision
    assert h.one("force_majeure.decision", ROLL).due_on == decision_rolled
    h.add(r.MedicalForceMajeureDecided, decided_on=invitation, definitively_unfit=True)
    assert {h.one(rule).state for rule in ("force_majeure.invitation", "force_majeure.decision")} == {"met"}


# --- Terug Naar Werk (incapacities from 1 Jan 2022) -----------------------------------------------------------


def test_terug_naar_werk_timeline() -> None:
    h = History(date(2022, 1, 3))  # Mon: week 10 ends on day 70, Sun 13 Mar 2022; the 4th month on Mon 2 May
    q = h.one("return_to_work.questionnaire")
    assert (q.due_on, q.count_from, h.one("return_to_work.questionnaire", ROLL).due_on) == (
        date(2022, 3, 13), "same_day", date(2022, 3, 14))
    assert h.one("return_to_work.first_estimate").due_on == date(2022, 5, 2)
    h.add(r.ReturnToWorkQuestionnaireSent, sent_on=date(2022, 3, 1))  # + 2 weeks = Tue 15 Mar 2022
    h.add(r.ReturnToWorkQuestionnaireReturned, returned_on=date(2022, 3, 16))
    back = h.one("return_to_work.questionnaire.return")
    assert (back.due_on, back.state, back.late, back.party) == (date(2022, 3, 15), "met", True, "worker")
    assert h.one("return_to_work.questionnaire").state == "met"


def test_terug_naar_werk_only_for_incapacities_from_2022() -> None:
    assert not any(rule.startswith("return_to_work") for rule in History(date(2021, 12, 31)).rules())


def test_terug_naar_werk_crosses_the_2022_switch_with_the_same_dates() -> None:
    d = History(date(2022, 8, 1)).one("return_to_work.questionnaire")  # + 69 days = Sun 9 Oct 2022
    assert (d.due_on, d.regime, d.recomputed_from) == (date(2022, 10, 9), "BE-2022", "BE-2016")
    # 31 Oct 2023 is day 1: the 4th month would end on the eve of 31 Feb, a date February lacks, so it ends on the
    # last day of February (29 Feb 2024), not a day earlier
    assert History(date(2023, 10, 31)).one("return_to_work.first_estimate").due_on == date(2024, 2, 29)


# --- authorised partial resumption --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "late"),
    # the resumption starts Tue 2 Apr 2024; Mon 1 Apr is Easter Monday, so the working day before is Fri 29 Mar
    [(date(2024, 3, 28), False), (date(2024, 3, 29), False), (date(2024, 4, 2), True)],
)
def test_partial_resumption_declaration(declared: date, late: bool) -> None:
    h = History(date(2023, 10, 2))
    event = h.add(r.PartialResumptionDeclared, declared_on=declared, starts_on=date(2024, 4, 2), weekly_hours=19,
                  full_time_hours=38)
    d = h.one("partial_resumption.declaration", ROLL)
    assert (d.starts_on, d.due_on, d.amount, d.state, d.closed_by, d.late) == (
        date(2024, 4, 2), date(2024, 3, 29), -1, "met", event.event_id, late)
    # 30 working days from Tue 2 Apr 2024: 1 May and Ascension 9 May skipped -> Thu 16 May 2024
    assert h.one("partial_resumption.authorisation").due_on == date(2024, 5, 16)


def test_partial_resumption_authorisation_and_its_two_year_maximum() -> None:
    h = History(date(2023, 10, 2))
    h.add(r.PartialResumptionDeclared, declared_on=date(2024, 2, 20), starts_on=date(2024, 2, 26), weekly_hours=19,
          full_time_hours=38)
    h.add(r.PartialResumptionAuthorised, authorised_on=date(2024, 3, 1))
    assert h.one("partial_resumption.authorisation").state == "met"
    expiry = h.one("partial_resumption.authorisation_expiry")
    # from Fri 1 Mar 2024, 2 years end on Sat 28 Feb 2026; a window rolls to Mon 2 Mar 2026 with the policy
    assert (expiry.due_on, expiry.deadline_kind, expiry.status) == (date(2026, 2, 28), "window", "U")
    assert h.one("partial_resumption.authorisation_expiry", ROLL).due_on == date(2026, 3, 2)
    ended = h.add(r.PartialResumptionEnded, ended_on=date(2025, 6, 30))
    assert h.one("partial_resumption.authorisation_expiry").closed_by == ended.event_id


def test_no_two_year_maximum_before_april_2018() -> None:
    h = History(date(2017, 10, 2))
    h.add(r.PartialResumptionDeclared, declared_on=date(2018, 3, 1), starts_on=date(2018, 3, 5), weekly_hours=19,
          full_time_hours=38)
    h.add(r.PartialResumptionAuthorised, authorised_on=date(2018, 3, 15))
    assert "partial_resumption.authorisation_expiry" not in h.rules()


# --- vocational rehabilitation --------------------------------------------------------------------------------


def test_job_search_then_review() -> None:
    h = History(date(2022, 5, 2))
    h.add(r.JobSearchStarted, started_on=date(2023, 8, 31))  # + 6 months = Thu 29 Feb 2024
    assert {(d.rule, d.due_on, d.party) for d in h.deadlines() if d.rule.startswith("rehabilitation")} == {
        ("rehabilitation.job_search", date(2024, 2, 29), "worker"),
        ("rehabilitation.review", date(2024, 2, 29), "advising_physician"),
    }
    h.add(r.IncapacityReviewed, reviewed_on=date(2024, 3, 1), outcome=r.ReviewOutcome.INCAPACITY_CONTINUES)
    review, search = h.one("rehabilitation.review"), h.one("rehabilitation.job_search")
    assert (review.state, review.late, search.state) == ("met", True, "cancelled")


# --- the Dutch Wet verbetering poortwachter: another rulebook, the same function -------------------------------


def test_poortwachter_timeline_in_weeks_from_the_first_sick_day() -> None:
    h = History(date(2024, 1, 8), NL)  # Mon; every "end of week N" is a Sunday (day 7N)
    rows = [(d.rule, d.due_on, d.regime, d.calendar) for d in h.deadlines()]
    assert rows == [
        ("poortwachter.problem_analysis", date(2024, 2, 18), "NL-2002", "NL-algemene-termijnenwet"),  # day 42
        ("poortwachter.plan_of_action", date(2024, 3, 3), "NL-2002", "NL-algemene-termijnenwet"),  # day 56
        ("poortwachter.uwv_notice", date(2024, 10, 27), "NL-2002", "NL-algemene-termijnenwet"),  # day 294
        ("poortwachter.first_year_evaluation", date(2025, 1, 5), "NL-2002", "NL-algemene-termijnenwet"),
        ("poortwachter.reintegration_report", date(2025, 10, 5), "NL-2002", "NL-algemene-termijnenwet"),
        ("poortwachter.wage_payment_end", date(2026, 1, 4), "NL-2002", "NL-algemene-termijnenwet"),  # day 728
    ]
    # with roll-forward the obligations move to Monday; the end of wage payment is a reminder and stays
    assert [d.due_on.weekday() for d in h.deadlines(ROLL)] == [0, 0, 0, 0, 0, 6]


@pytest.mark.parametrize(
    ("start", "due", "rolled"),
    [
        (date(2026, 3, 17), date(2026, 4, 27), date(2026, 4, 28)),  # week 6 ends on King's Day (Mon 27 Apr 2026)
        (date(2026, 3, 25), date(2026, 5, 5), date(2026, 5, 6)),  # ... on 5 May (Algemene termijnenwet)
        (date(2024, 2, 20), date(2024, 4, 1), date(2024, 4, 2)),  # ... on Easter Monday
    ],
)
def test_poortwachter_rolls_over_dutch_holidays(start: date, due: date, rolled: date) -> None:
    h = History(start, NL)
    assert h.one("poortwachter.problem_analysis").due_on == due
    assert h.one("poortwachter.problem_analysis", ROLL).due_on == rolled
    h.add(r.AssessmentIssued, issued_on=due, regime="NL-2002", decision="A")
    assert h.one("poortwachter.problem_analysis").state == "met"


def test_poortwachter_second_year_only_from_2004_and_no_belgian_rule_leaks() -> None:
    assert History(date(2003, 6, 2), NL).rules() == ["poortwachter.problem_analysis", "poortwachter.plan_of_action"]
    assert not any(rule.startswith("poortwachter") for rule in History(date(2024, 1, 8)).rules())
    assert "NL" not in inspect.getsource(deadlines_module)  # no Dutch code path


def test_calendars_are_chosen_by_the_rulebook() -> None:
    be, nl = calendar_for("BE-legal-holidays"), calendar_for("NL-algemene-termijnenwet")
    assert be.is_working_day(date(2024, 12, 26)) and not nl.is_working_day(date(2024, 12, 26))
    assert be.is_working_day(date(2024, 7, 22)) and not be.is_working_day(date(2025, 7, 21))
    assert nl.is_working_day(date(2025, 7, 21)) and nl.is_working_day(date(2024, 3, 29))  # Good Friday works
    assert be.add_working_days(date(2025, 4, 22), -1) == date(2025, 4, 18)  # back over Easter Monday
    folder = Path(deadlines_module.__file__).parent
    renamed = (folder / "nl.toml").read_text().replace('id = "NL-algemene-termijnenwet"', 'id = "XX-none"')
    rulebook = Rulebook.from_toml(renamed, (folder / "nl-deadlines.toml").read_bytes())
    with pytest.raises(LookupError, match="unknown calendar 'XX-none'"):
        compute_deadlines(History(date(2024, 1, 8), NL).events, rulebook)
