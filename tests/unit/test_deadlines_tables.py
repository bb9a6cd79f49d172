"""Dated edge tables for deadline rules that lacked them: the partial resumption (BE-2016, BE-2022, BE-2026),
socio-professional rehabilitation, the month ends of calendar-month periods, a receipt on the Friday before Easter
Monday, and a receipt between 24 and 31 December, each with the roll-forward policy on and off.

Every expected date was counted by hand on a calendar from RULEBOOK.md sections 2, 3, 5, 6 and 9 (the comments show
the count), never by calling the code under test. Working days are Monday to Friday less the 10 Belgian legal
holidays (1 Jan, Easter Monday, 1 May, Ascension, Whit Monday, 21 Jul, 15 Aug, 1 Nov, 11 Nov, 25 Dec); a holiday on
a Saturday or Sunday is not moved. Month periods follow the Judicial Code art. 54: n months whose first day is F end
on the eve of the same date n months later, or on the last day of the end month when it lacks that date. A period
counted from the day after the trigger X has F = X + 1; one that counts its first day (``same_day``) has F = X.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from shared.events import reports as r
from shared.rulebook.deadlines import Deadline, DeadlineState, Policy
from tests.unit.test_deadlines import History

COACH = "flemish-government-return-coach"
POLICIES = [pytest.param(False, id="no-roll"), pytest.param(True, id="roll")]


def _policy(roll: bool, *employer_policies: str) -> Policy:
    return Policy(roll_forward=roll, employer_policies=frozenset(employer_policies))


def _one(h: History, rule: str, policy: Policy) -> Deadline:
    found = [d for d in h.deadlines(policy) if d.rule == rule]
    assert len(found) == 1, f"{rule}: {found}"
    return found[0]


# --- authorised partial resumption (RULEBOOK.md section 5) ---------------------------------------------------


def _declared(declared: date, starts: date) -> History:
    h = History(declared - timedelta(days=200))
    h.add(r.PartialResumptionDeclared, declared_on=declared, starts_on=starts, weekly_hours=19, full_time_hours=38)
    return h


PARTIAL_RESUMPTION = [
    # (declared, starts, regime of the declaration, declaration due, late, authorisation due, its regime, recomputed)
    pytest.param(
        # Mon 2 Jan 2017 (1 Jan was a Sunday, not moved): the working day before is Fri 30 Dec 2016.
        # 30 working days from Tue 3 Jan: Jan 3-6 (4), 9-13 (9), 16-20 (14), 23-27 (19), 30-31 (21),
        # Feb 1-3 (24), 6-10 (29), Mon 13 Feb (30).
        date(2016, 12, 28), date(2017, 1, 2), "BE-2016", date(2016, 12, 30), False, date(2017, 2, 13), "BE-2016",
        None, id="2016-new-year-on-a-sunday",
    ),
    pytest.param(
        # Tue 18 Apr 2017, the day after Easter Monday 17 Apr: the working day before is Fri 14 Apr (Good Friday
        # is no legal holiday); declared on the start day itself, so late. Authorisation: Apr 19-21 (3),
        # 24-28 (8), 1 May skipped, May 2-5 (12), 8-12 (17), 15-19 (22), 22-24 (25), Ascension 25 May skipped,
        # 26 (26), 29-31 (29), Thu 1 Jun (30).
        date(2017, 4, 18), date(2017, 4, 18), "BE-2016", date(2017, 4, 14), True, date(2017, 6, 1), "BE-2016",
        None, id="2016-after-easter-monday-late",
    ),
    pytest.param(
        # Declared Mon 26 Sep 2022 under BE-2016 for Mon 3 Oct 2022: the working day before is Fri 30 Sep. The
        # authorisation is still running on 1 Oct 2022 and is recomputed under BE-2022 (same figure): Oct 4-7 (4),
        # 10-14 (9), 17-21 (14), 24-28 (19), 31 (20), 1 Nov skipped, Nov 2-4 (23), 7-10 (27), 11 Nov skipped,
        # 14-16 (30) = Wed 16 Nov 2022.
        date(2022, 9, 26), date(2022, 10, 3), "BE-2016", date(2022, 9, 30), False, date(2022, 11, 16), "BE-2022",
        "BE-2016", id="2016-crossing-1-oct-2022",
    ),
    pytest.param(
        # Mon 3 Jan 2022 (1 Jan 2022 a Saturday): the working day before is Fri 31 Dec 2021, the declaration day
        # itself (on time). Authorisation: Jan 4-7 (4), 10-14 (9), 17-21 (14), 24-28 (19), 31 (20), Feb 1-4 (24),
        # 7-11 (29), Mon 14 Feb 2022 (30).
        date(2021, 12, 31), date(2022, 1, 3), "BE-2016", date(2021, 12, 31), False, date(2022, 2, 14), "BE-2016",
        None, id="2016-year-end",
    ),
    pytest.param(
        # Wed 2 Nov 2022, the day after All Saints: the working day before is Mon 31 Oct. Authorisation:
        # Nov 3-4 (2), 7-10 (6), 11 Nov skipped, 14-18 (11), 21-25 (16), 28-30 (19), Dec 1-2 (21), 5-9 (26),
        # 12-15 (30) = Thu 15 Dec 2022.
        date(2022, 10, 25), date(2022, 11, 2), "BE-2022", date(2022, 10, 31), False, date(2022, 12, 15), "BE-2022",
        None, id="2022-after-all-saints",
    ),
    pytest.param(
        # Fri 29 Mar 2024, the Friday before Easter Monday 1 Apr: the working day before is Thu 28 Mar.
        # Authorisation: Easter Monday skipped, Apr 2-5 (4), 8-12 (9), 15-19 (14), 22-26 (19), 29-30 (21),
        # 1 May skipped, May 2-3 (23), 6-8 (26), Ascension 9 May skipped, 10 (27), 13-15 (30) = Wed 15 May 2024.
        date(2024, 3, 27), date(2024, 3, 29), "BE-2022", date(2024, 3, 28), False, date(2024, 5, 15), "BE-2022",
        None, id="2022-good-friday",
    ),
    pytest.param(
        # Thu 2 May 2024: the working day before is Tue 30 Apr (1 May a holiday); declared on 1 May, so late.
        # Authorisation: May 3 (1), 6-8 (4), Ascension 9 May skipped, 10 (5), 13-17 (10), Whit Monday 20 May
        # skipped, 21-24 (14), 27-31 (19), Jun 3-7 (24), 10-14 (29), Mon 17 Jun 2024 (30).
        date(2024, 5, 1), date(2024, 5, 2), "BE-2022", date(2024, 4, 30), True, date(2024, 6, 17), "BE-2022",
        None, id="2022-after-labour-day-late",
    ),
    pytest.param(
        # Mon 22 Jul 2024 (National Day on Sun 21 Jul): the working day before is Fri 19 Jul. Authorisation:
        # Jul 23-26 (4), 29-31 (7), Aug 1-2 (9), 5-9 (14), 12-14 (17), 15 Aug skipped, 16 (18), 19-23 (23),
        # 26-30 (28), Sep 2 (29), Tue 3 Sep 2024 (30).
        date(2024, 7, 15), date(2024, 7, 22), "BE-2022", date(2024, 7, 19), False, date(2024, 9, 3), "BE-2022",
        None, id="2022-national-day-on-a-sunday",
    ),
    pytest.param(
        # Fri 27 Dec 2024: the working day before is Thu 26 Dec. Authorisation: Dec 30-31 (2), 1 Jan skipped,
        # Jan 2-3 (4), 6-10 (9), 13-17 (14), 20-24 (19), 27-31 (24), Feb 3-7 (29), Mon 10 Feb 2025 (30).
        date(2024, 12, 23), date(2024, 12, 27), "BE-2022", date(2024, 12, 26), False, date(2025, 2, 10), "BE-2022",
        None, id="2022-year-end-27-dec",
    ),
    pytest.param(
        # Thu 2 Jan 2025: the working day before is Tue 31 Dec 2024 (1 Jan a holiday), the declaration day (on
        # time). Authorisation: Jan 3 (1), 6-10 (6), 13-17 (11), 20-24 (16), 27-31 (21), Feb 3-7 (26),
        # 10-13 (30) = Thu 13 Feb 2025.
        date(2024, 12, 31), date(2025, 1, 2), "BE-2022", date(2024, 12, 31), False, date(2025, 2, 13), "BE-2022",
        None, id="2022-year-end-31-dec",
    ),
    pytest.param(
        # BE-2026 inherits the 2022 rules. Tue 26 May 2026, the day after Whit Monday 25 May: the working day
        # before is Fri 22 May. Authorisation: May 27-29 (3), Jun 1-5 (8), 8-12 (13), 15-19 (18), 22-26 (23),
        # 29-30 (25), Jul 1-3 (28), 6-7 (30) = Tue 7 Jul 2026.
        date(2026, 5, 18), date(2026, 5, 26), "BE-2026", date(2026, 5, 22), False, date(2026, 7, 7), "BE-2026",
        None, id="2026-after-whit-monday",
    ),
]


@pytest.mark.parametrize("roll", POLICIES)
@pytest.mark.parametrize(
    ("declared", "starts", "regime", "declaration_due", "late", "authorisation_due", "authorisation_regime",
     "recomputed_from"),
    PARTIAL_RESUMPTION,
)
def test_partial_resumption_declaration_and_authorisation(
    declared: date, starts: date, regime: str, declaration_due: date, late: bool, authorisation_due: date,
    authorisation_regime: str, recomputed_from: str | None, roll: bool,
) -> None:
    h = _declared(declared, starts)
    policy = _policy(roll)
    declaration = _one(h, "partial_resumption.declaration", policy)
    assert (declaration.starts_on, declaration.counted_due_on, declaration.due_on) == (
        starts, declaration_due, declaration_due)
    assert (declaration.regime, declaration.amount, declaration.counting) == (regime, -1, "working_days")
    assert (declaration.state, declaration.closed_on, declaration.late) == (DeadlineState.MET, declared, late)
    authorisation = _one(h, "partial_resumption.authorisation", policy)
    # a count of working days ends on a working day: the policy changes nothing
    assert (authorisation.starts_on, authorisation.counted_due_on, authorisation.due_on) == (
        starts, authorisation_due, authorisation_due)
    assert (authorisation.regime, authorisation.recomputed_from) == (authorisation_regime, recomputed_from)
    assert authorisation.inherited_from == ("BE-2022" if authorisation_regime == "BE-2026" else None)
    assert (authorisation.state, authorisation.amount, authorisation.party) == (
        DeadlineState.OPEN, 30, "advising_physician")


@pytest.mark.parametrize(
    ("authorised", "late"),
    # starts Mon 2 Jan 2017, due Mon 13 Feb 2017 (counted above): met on the day, or the day after (late)
    [(date(2017, 2, 13), False), (date(2017, 2, 14), True)],
)
def test_partial_resumption_authorisation_met_on_time_or_late(authorised: date, late: bool) -> None:
    h = _declared(date(2016, 12, 28), date(2017, 1, 2))
    event = h.add(r.PartialResumptionAuthorised, authorised_on=authorised)
    d = _one(h, "partial_resumption.authorisation", Policy())
    assert (d.due_on, d.state, d.closed_by, d.late) == (date(2017, 2, 13), DeadlineState.MET, event.event_id, late)


# --- socio-professional rehabilitation (RULEBOOK.md section 6) ------------------------------------------------


def _job_search(started: date) -> History:
    h = History(started - timedelta(days=400))
    h.add(r.JobSearchStarted, started_on=started)
    return h


REHABILITATION = [
    # (job search started X, regime, counted end of the 6 months, rolled to a working day, recomputed from)
    # F = X + 1; 6 months end on the eve of F's date 6 months later.
    pytest.param(date(2017, 8, 31), "BE-2016", date(2018, 2, 28), date(2018, 2, 28), None,
                 id="2016-31-aug"),  # F 1 Sep 2017 -> eve of 1 Mar 2018 = Wed 28 Feb 2018
    pytest.param(date(2019, 3, 15), "BE-2016", date(2019, 9, 15), date(2019, 9, 16), None,
                 id="2016-sunday"),  # F 16 Mar -> eve of 16 Sep = Sun 15 Sep 2019 -> Mon 16 Sep
    pytest.param(date(2020, 1, 31), "BE-2016", date(2020, 7, 31), date(2020, 7, 31), None,
                 id="2016-31-jan"),  # F 1 Feb 2020 -> eve of 1 Aug = Fri 31 Jul 2020
    pytest.param(date(2022, 8, 30), "BE-2022", date(2023, 2, 28), date(2023, 2, 28), "BE-2016",
                 id="2016-crossing-1-oct-2022"),  # F 31 Aug 2022 -> no 31 Feb 2023: Tue 28 Feb 2023
    pytest.param(date(2023, 6, 14), "BE-2022", date(2023, 12, 14), date(2023, 12, 14), None,
                 id="2022-mid-month"),  # F 15 Jun 2023 -> eve of 15 Dec = Thu 14 Dec 2023
    pytest.param(date(2023, 12, 22), "BE-2022", date(2024, 6, 22), date(2024, 6, 24), None,
                 id="2022-saturday"),  # F 23 Dec 2023 -> eve of 23 Jun 2024 = Sat 22 Jun -> Mon 24 Jun
    pytest.param(date(2024, 5, 1), "BE-2022", date(2024, 11, 1), date(2024, 11, 4), None,
                 id="2022-all-saints"),  # F 2 May 2024 -> eve of 2 Nov = Fri 1 Nov, a holiday -> Mon 4 Nov
]


@pytest.mark.parametrize("roll", POLICIES)
@pytest.mark.parametrize(("started", "regime", "counted", "rolled", "recomputed_from"), REHABILITATION)
def test_rehabilitation_job_search_and_review(
    started: date, regime: str, counted: date, rolled: date, recomputed_from: str | None, roll: bool
) -> None:
    h = _job_search(started)
    policy = _policy(roll)
    search = _one(h, "rehabilitation.job_search", policy)
    review = _one(h, "rehabilitation.review", policy)
    for d, kind, party in ((search, "window", "worker"), (review, "due", "advising_physician")):
        assert (d.starts_on, d.counted_due_on, d.due_on) == (started, counted, rolled if roll else counted), d.rule
        assert (d.deadline_kind, d.party, d.amount, d.counting, d.count_from) == (kind, party, 6, "months",
                                                                                    "next_day")
        assert (d.regime, d.recomputed_from, d.state) == (regime, recomputed_from, DeadlineState.OPEN)


@pytest.mark.parametrize(
    ("report", "on", "search_state", "review_state", "review_late"),
    [
        # job search started Thu 31 Aug 2023: both end Thu 29 Feb 2024 (F 1 Sep -> eve of 1 Mar 2024)
        (r.IncapacityReviewed, date(2024, 2, 29), DeadlineState.CANCELLED, DeadlineState.MET, False),
        (r.IncapacityReviewed, date(2024, 3, 1), DeadlineState.CANCELLED, DeadlineState.MET, True),
        # work found: the window is used, the review is moot
        (r.IncapacityEnded, date(2024, 1, 15), DeadlineState.MET, DeadlineState.CANCELLED, False),
    ],
)
def test_rehabilitation_closed_by_the_review_or_the_end_of_the_incapacity(
    report: type[r.Report], on: date, search_state: str, review_state: str, review_late: bool
) -> None:
    h = _job_search(date(2023, 8, 31))
    if report is r.IncapacityReviewed:
        event = h.add(report, reviewed_on=on, outcome=r.ReviewOutcome.INCAPACITY_CONTINUES)
    else:
        event = h.add(report, ended_on=on)
    search, review = _one(h, "rehabilitation.job_search", Policy()), _one(h, "rehabilitation.review", Policy())
    assert (search.due_on, review.due_on) == (date(2024, 2, 29), date(2024, 2, 29))
    assert (search.state, search.closed_by, search.late) == (search_state, event.event_id, False)
    assert (review.state, review.closed_by, review.late) == (review_state, event.event_id, review_late)


# --- month ends of calendar-month periods (Judicial Code art. 54) ---------------------------------------------


def _incapacity(x: date) -> History:
    return History(x)


def _authorised(x: date) -> History:
    h = _declared(x - timedelta(days=20), x - timedelta(days=10))
    h.add(r.PartialResumptionAuthorised, authorised_on=x)
    return h


def _assessed(decision: str) -> Callable[[date], History]:
    def build(x: date) -> History:
        h = History(x - timedelta(days=300))
        h.request(x - timedelta(days=20))
        h.assess(x, decision)
        return h

    return build


def _force_majeure(x: date) -> History:
    h = History(x - timedelta(days=300))
    h.add(r.MedicalForceMajeureStarted, letter_sent_on=x)
    return h


MONTH_ENDS = [
    # (rule, history builder for trigger X, X, employer policies, counted end, rolled end)
    # rehabilitation: 6 months, from the day after (F = X + 1)
    pytest.param("rehabilitation.review", _job_search, date(2024, 1, 31), (), date(2024, 7, 31), date(2024, 7, 31),
                 id="6m-next-31-jan"),  # F 1 Feb -> eve of 1 Aug = Wed 31 Jul 2024
    pytest.param("rehabilitation.review", _job_search, date(2024, 2, 29), (), date(2024, 8, 31), date(2024, 9, 2),
                 id="6m-next-29-feb"),  # F 1 Mar -> eve of 1 Sep = Sat 31 Aug 2024 -> Mon 2 Sep
    pytest.param("rehabilitation.review", _job_search, date(2023, 8, 31), (), date(2024, 2, 29), date(2024, 2, 29),
                 id="6m-next-31-aug"),  # F 1 Sep -> eve of 1 Mar 2024 = Thu 29 Feb 2024
    pytest.param("rehabilitation.review", _job_search, date(2023, 12, 31), (), date(2024, 6, 30), date(2024, 7, 1),
                 id="6m-next-31-dec"),  # F 1 Jan 2024 -> eve of 1 Jul = Sun 30 Jun 2024 -> Mon 1 Jul
    pytest.param("rehabilitation.review", _job_search, date(2024, 3, 1), (), date(2024, 9, 1), date(2024, 9, 2),
                 id="6m-next-1-mar"),  # F 2 Mar -> eve of 2 Sep = Sun 1 Sep 2024 -> Mon 2 Sep
    pytest.param("rehabilitation.review", _job_search, date(2024, 4, 30), (), date(2024, 10, 31), date(2024, 10, 31),
                 id="6m-next-30-apr"),  # F 1 May -> eve of 1 Nov = Thu 31 Oct 2024
    pytest.param("rehabilitation.review", _job_search, date(2023, 8, 30), (), date(2024, 2, 29), date(2024, 2, 29),
                 id="6m-next-30-aug"),  # F 31 Aug 2023 -> no 31 Feb 2024: its last day, Thu 29 Feb
    # the Flemish return coach: 2 months from the day after the absence starts
    pytest.param("employer_policy.return_coach", _incapacity, date(2023, 1, 31), (COACH,), date(2023, 3, 31),
                 date(2023, 3, 31), id="2m-next-31-jan"),  # F 1 Feb 2023 -> eve of 1 Apr = Fri 31 Mar 2023
    pytest.param("employer_policy.return_coach", _incapacity, date(2023, 1, 30), (COACH,), date(2023, 3, 30),
                 date(2023, 3, 30), id="2m-next-30-jan"),  # F 31 Jan 2023 -> eve of 31 Mar = Thu 30 Mar 2023
    pytest.param("employer_policy.return_coach", _incapacity, date(2024, 2, 29), (COACH,), date(2024, 4, 30),
                 date(2024, 4, 30), id="2m-next-29-feb"),  # F 1 Mar 2024 -> eve of 1 May = Tue 30 Apr 2024
    pytest.param("employer_policy.return_coach", _incapacity, date(2023, 8, 31), (COACH,), date(2023, 10, 31),
                 date(2023, 10, 31), id="2m-next-31-aug"),  # F 1 Sep -> eve of 1 Nov = Tue 31 Oct 2023
    pytest.param("employer_policy.return_coach", _incapacity, date(2023, 12, 30), (COACH,), date(2024, 2, 29),
                 date(2024, 2, 29), id="2m-next-30-dec"),  # F 31 Dec 2023 -> no 31 Feb 2024: Thu 29 Feb
    pytest.param("employer_policy.return_coach", _incapacity, date(2023, 12, 31), (COACH,), date(2024, 2, 29),
                 date(2024, 2, 29), id="2m-next-31-dec"),  # F 1 Jan 2024 -> eve of 1 Mar = Thu 29 Feb 2024
    pytest.param("employer_policy.return_coach", _incapacity, date(2024, 3, 1), (COACH,), date(2024, 5, 1),
                 date(2024, 5, 2), id="2m-next-1-mar"),  # F 2 Mar -> eve of 2 May = Wed 1 May, a holiday -> Thu 2
    pytest.param("employer_policy.return_coach", _incapacity, date(2024, 4, 30), (COACH,), date(2024, 6, 30),
                 date(2024, 7, 1), id="2m-next-30-apr"),  # F 1 May -> eve of 1 Jul = Sun 30 Jun 2024 -> Mon 1 Jul
    # Terug Naar Werk: the 4th month of incapacity, its first day counted (F = X)
    pytest.param("return_to_work.first_estimate", _incapacity, date(2023, 1, 31), (), date(2023, 5, 30),
                 date(2023, 5, 30), id="4m-same-31-jan"),  # eve of 31 May 2023 = Tue 30 May
    pytest.param("return_to_work.first_estimate", _incapacity, date(2024, 2, 29), (), date(2024, 6, 28),
                 date(2024, 6, 28), id="4m-same-29-feb"),  # eve of 29 Jun 2024 = Fri 28 Jun
    pytest.param("return_to_work.first_estimate", _incapacity, date(2023, 8, 31), (), date(2023, 12, 30),
                 date(2024, 1, 2), id="4m-same-31-aug"),  # eve of 31 Dec = Sat 30 Dec 2023 -> Tue 2 Jan 2024
    pytest.param("return_to_work.first_estimate", _incapacity, date(2023, 12, 31), (), date(2024, 4, 30),
                 date(2024, 4, 30), id="4m-same-31-dec"),  # no 31 Apr: its last day, Tue 30 Apr 2024
    pytest.param("return_to_work.first_estimate", _incapacity, date(2024, 3, 1), (), date(2024, 6, 30),
                 date(2024, 7, 1), id="4m-same-1-mar"),  # eve of 1 Jul = Sun 30 Jun 2024 -> Mon 1 Jul
    pytest.param("return_to_work.first_estimate", _incapacity, date(2024, 4, 30), (), date(2024, 8, 29),
                 date(2024, 8, 29), id="4m-same-30-apr"),  # eve of 30 Aug = Thu 29 Aug 2024
    pytest.param("return_to_work.first_estimate", _incapacity, date(2023, 10, 31), (), date(2024, 2, 29),
                 date(2024, 2, 29), id="4m-same-31-oct-leap"),  # no 31 Feb 2024: Thu 29 Feb
    pytest.param("return_to_work.first_estimate", _incapacity, date(2022, 10, 31), (), date(2023, 2, 28),
                 date(2023, 2, 28), id="4m-same-31-oct"),  # no 31 Feb 2023: Tue 28 Feb
    # the two-year maximum of an authorisation, its first day counted (F = X)
    pytest.param("partial_resumption.authorisation_expiry", _authorised, date(2024, 2, 29), (), date(2026, 2, 28),
                 date(2026, 3, 2), id="24m-same-29-feb"),  # no 29 Feb 2026: Sat 28 Feb -> Mon 2 Mar 2026
    pytest.param("partial_resumption.authorisation_expiry", _authorised, date(2024, 1, 31), (), date(2026, 1, 30),
                 date(2026, 1, 30), id="24m-same-31-jan"),  # eve of 31 Jan 2026 = Fri 30 Jan
    pytest.param("partial_resumption.authorisation_expiry", _authorised, date(2023, 8, 31), (), date(2025, 8, 30),
                 date(2025, 9, 1), id="24m-same-31-aug"),  # eve of 31 Aug 2025 = Sat 30 Aug -> Mon 1 Sep
    pytest.param("partial_resumption.authorisation_expiry", _authorised, date(2023, 12, 31), (), date(2025, 12, 30),
                 date(2025, 12, 30), id="24m-same-31-dec"),  # eve of 31 Dec 2025 = Tue 30 Dec
    pytest.param("partial_resumption.authorisation_expiry", _authorised, date(2024, 3, 1), (), date(2026, 2, 28),
                 date(2026, 3, 2), id="24m-same-1-mar"),  # eve of 1 Mar 2026 = Sat 28 Feb -> Mon 2 Mar
    pytest.param("partial_resumption.authorisation_expiry", _authorised, date(2024, 4, 30), (), date(2026, 4, 29),
                 date(2026, 4, 29), id="24m-same-30-apr"),  # eve of 30 Apr 2026 = Wed 29 Apr
    # the employer's plan for a definitive unfitness: 12 months (BE-2016, C), 6 months (BE-2022, B)
    pytest.param("trajectory.plan.definitive", _assessed("C"), date(2019, 2, 28), (), date(2020, 2, 29),
                 date(2020, 3, 2), id="12m-next-28-feb"),  # F 1 Mar 2019 -> eve of 1 Mar 2020 = Sat 29 Feb -> Mon 2
    pytest.param("trajectory.plan.definitive", _assessed("C"), date(2020, 2, 29), (), date(2021, 2, 28),
                 date(2021, 3, 1), id="12m-next-29-feb"),  # F 1 Mar 2020 -> eve of 1 Mar 2021 = Sun 28 Feb -> Mon 1
    pytest.param("trajectory.plan.definitive", _assessed("B"), date(2023, 8, 31), (), date(2024, 2, 29),
                 date(2024, 2, 29), id="6m-next-plan-31-aug"),  # F 1 Sep 2023 -> eve of 1 Mar 2024 = Thu 29 Feb
    pytest.param("trajectory.plan.definitive", _assessed("B"), date(2023, 12, 31), (), date(2024, 6, 30),
                 date(2024, 7, 1), id="6m-next-plan-31-dec"),  # F 1 Jan 2024 -> eve of 1 Jul = Sun 30 Jun -> Mon 1
    # the force-majeure decision: 3 months from the day after the letter
    pytest.param("force_majeure.decision", _force_majeure, date(2024, 1, 31), (), date(2024, 4, 30),
                 date(2024, 4, 30), id="3m-next-31-jan"),  # F 1 Feb -> eve of 1 May = Tue 30 Apr 2024
    pytest.param("force_majeure.decision", _force_majeure, date(2024, 2, 29), (), date(2024, 5, 31),
                 date(2024, 5, 31), id="3m-next-29-feb"),  # F 1 Mar -> eve of 1 Jun = Fri 31 May 2024
    pytest.param("force_majeure.decision", _force_majeure, date(2023, 9, 30), (), date(2023, 12, 31),
                 date(2024, 1, 2), id="3m-next-30-sep"),  # F 1 Oct -> eve of 1 Jan = Sun 31 Dec -> Tue 2 Jan 2024
    pytest.param("force_majeure.decision", _force_majeure, date(2023, 11, 30), (), date(2024, 2, 29),
                 date(2024, 2, 29), id="3m-next-30-nov"),  # F 1 Dec -> eve of 1 Mar 2024 = Thu 29 Feb
]


@pytest.mark.parametrize("roll", POLICIES)
@pytest.mark.parametrize(("rule", "build", "x", "employer_policies", "counted", "rolled"), MONTH_ENDS)
def test_month_periods_at_month_ends(
    rule: str, build: Callable[[date], History], x: date, employer_policies: tuple[str, ...], counted: date,
    rolled: date, roll: bool,
) -> None:
    d = _one(build(x), rule, _policy(roll, *employer_policies))
    assert d.counting == "months" and d.starts_on == x
    assert (d.counted_due_on, d.due_on) == (counted, rolled if roll else counted)


# --- working-day periods: a receipt on the Friday before Easter Monday, and at the year end ---------------------


def _requested(x: date) -> History:
    h = History(x - timedelta(days=200))
    h.request(x)
    return h


def _appealed(x: date) -> History:
    h = _assessed("C")(x - timedelta(days=3))
    h.add(r.AppealLodged, lodged_on=x)
    return h


def _planned(x: date) -> History:
    h = _assessed("A")(x - timedelta(days=20))
    h.plan(x)
    return h


def _resuming(x: date) -> History:
    return _declared(x - timedelta(days=7), x)


WORKING_DAY_PERIODS = [
    # (rule, history builder for trigger X, X, due: the n-th working day after X)
    # Easter 2017: Good Friday 14 Apr, Easter Monday 17 Apr; 1 May, Ascension 25 May, Whit Monday 5 Jun 2017.
    # Working days from Tue 18 Apr: Apr 18-21 (1-4), 24-28 (5-9), May 2-5 (10-13), 8-12 (14-18), 15-19 (19-23),
    # 22-24 (24-26), 26 (27), 29-31 (28-30), Jun 1-2 (31-32), 6-9 (33-36), 12-16 (37-41), 19-23 (42-46),
    # 26-30 (47-51), Jul 3-6 (52-55).
    pytest.param("trajectory.plan.answer", _planned, date(2017, 4, 14), date(2017, 4, 24), id="easter-2017-5wd"),
    pytest.param("trajectory.appeal", _assessed("C"), date(2017, 4, 14), date(2017, 4, 26), id="easter-2017-7wd"),
    pytest.param("trajectory.appeal.decision", _appealed, date(2017, 4, 14), date(2017, 6, 1),
                 id="easter-2017-31wd"),
    pytest.param("trajectory.assessment", _requested, date(2017, 4, 14), date(2017, 6, 15), id="easter-2017-40wd"),
    pytest.param("trajectory.plan.temporary", _assessed("A"), date(2017, 4, 14), date(2017, 7, 6),
                 id="easter-2017-55wd"),
    # Easter 2019: Easter Monday 22 Apr, 1 May a Wednesday. From Fri 19 Apr: Apr 23-26 (1-4), 29-30 (5-6),
    # May 2 (7).
    pytest.param("trajectory.plan.answer", _planned, date(2019, 4, 19), date(2019, 4, 29), id="easter-2019-5wd"),
    pytest.param("trajectory.appeal", _assessed("D"), date(2019, 4, 19), date(2019, 5, 2), id="easter-2019-7wd"),
    # Easter 2021: Easter Monday 5 Apr. From Fri 2 Apr: Apr 6-9 (1-4), 12 (5).
    pytest.param("trajectory.plan.answer", _planned, date(2021, 4, 2), date(2021, 4, 12), id="easter-2021-5wd"),
    # Easter 2024 (BE-2022): from Fri 29 Mar, 30 working days = Wed 15 May 2024 (counted in the table above)
    pytest.param("partial_resumption.authorisation", _resuming, date(2024, 3, 29), date(2024, 5, 15),
                 id="easter-2024-30wd"),
    # Year end 2018: Mon 24, Tue 25 (Christmas), Wed 26 ... Mon 31 Dec 2018, Tue 1 Jan 2019 (New Year).
    # Working days: Dec 24, 26, 27, 28, 31, Jan 2, 3, 4, 7, 8, 9, 10, ...
    pytest.param("trajectory.plan.answer", _planned, date(2018, 12, 24), date(2019, 1, 2), id="2018-12-24-5wd"),
    pytest.param("trajectory.plan.answer", _planned, date(2018, 12, 25), date(2019, 1, 2), id="2018-12-25-5wd"),
    pytest.param("trajectory.plan.answer", _planned, date(2018, 12, 26), date(2019, 1, 3), id="2018-12-26-5wd"),
    pytest.param("trajectory.plan.answer", _planned, date(2018, 12, 27), date(2019, 1, 4), id="2018-12-27-5wd"),
    pytest.param("trajectory.plan.answer", _planned, date(2018, 12, 28), date(2019, 1, 7), id="2018-12-28-5wd"),
    pytest.param("trajectory.plan.answer", _planned, date(2018, 12, 29), date(2019, 1, 7), id="2018-12-29-5wd"),
    pytest.param("trajectory.plan.answer", _planned, date(2018, 12, 30), date(2019, 1, 7), id="2018-12-30-5wd"),
    pytest.param("trajectory.plan.answer", _planned, date(2018, 12, 31), date(2019, 1, 8), id="2018-12-31-5wd"),
    pytest.param("trajectory.appeal", _assessed("C"), date(2018, 12, 24), date(2019, 1, 4), id="2018-12-24-7wd"),
    pytest.param("trajectory.appeal", _assessed("D"), date(2018, 12, 27), date(2019, 1, 8), id="2018-12-27-7wd"),
    pytest.param("trajectory.appeal", _assessed("C"), date(2018, 12, 31), date(2019, 1, 10), id="2018-12-31-7wd"),
    # 40 working days. From Mon 24 Dec 2018: Dec 26-28, 31 (1-4), Jan 2-4 (5-7), 7-11 (8-12), 14-18 (13-17),
    # 21-25 (18-22), 28-Feb 1 (23-27), Feb 4-8 (28-32), 11-15 (33-37), 18-20 (38-40).
    pytest.param("trajectory.assessment", _requested, date(2018, 12, 24), date(2019, 2, 20), id="2018-12-24-40wd"),
    # From Mon 31 Dec 2018: Jan 2-4 (1-3), 7-11 (4-8), 14-18 (9-13), 21-25 (14-18), 28-Feb 1 (19-23),
    # Feb 4-8 (24-28), 11-15 (29-33), 18-22 (34-38), 25-26 (39-40).
    pytest.param("trajectory.assessment", _requested, date(2018, 12, 31), date(2019, 2, 26), id="2018-12-31-40wd"),
    # Year end 2021: Christmas on Sat 25 Dec, New Year on Sat 1 Jan 2022 (weekend holidays are not moved).
    pytest.param("trajectory.plan.answer", _planned, date(2021, 12, 24), date(2021, 12, 31),
                 id="2021-12-24-5wd"),  # Dec 27-31 (1-5)
    pytest.param("trajectory.plan.answer", _planned, date(2021, 12, 31), date(2022, 1, 7),
                 id="2021-12-31-5wd"),  # Jan 3-7 2022 (1-5)
    # Year end 2024 (BE-2022): 30 working days from the start of a partial resumption (counted in the table above)
    pytest.param("partial_resumption.authorisation", _resuming, date(2024, 12, 27), date(2025, 2, 10),
                 id="2024-12-27-30wd"),
    pytest.param("partial_resumption.authorisation", _resuming, date(2024, 12, 31), date(2025, 2, 12),
                 id="2024-12-31-30wd"),  # Jan 2-3 (1-2), 6-10 (3-7), ..., Feb 3-7 (23-27), 10-12 (28-30)
    # From Tue 24 Dec 2024: Dec 26-27, 30-31 (1-4), Jan 2-3 (5-6), 6-10 (7-11), ..., 27-31 (22-26), Feb 3-6 (27-30).
    pytest.param("partial_resumption.authorisation", _resuming, date(2024, 12, 24), date(2025, 2, 6),
                 id="2024-12-24-30wd"),
]


@pytest.mark.parametrize("roll", POLICIES)
@pytest.mark.parametrize(("rule", "build", "x", "due"), WORKING_DAY_PERIODS)
def test_working_day_periods_over_easter_and_the_year_end(
    rule: str, build: Callable[[date], History], x: date, due: date, roll: bool
) -> None:
    d = _one(build(x), rule, _policy(roll))
    assert (d.counting, d.count_from, d.starts_on) == ("working_days", "next_day", x)
    # a working-day period ends on a working day, so rolling forward never moves it
    assert (d.counted_due_on, d.due_on) == (due, due)
