"""The rulebook at its edges: who may request when, force-majeure preconditions, the Belgian calendar."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.calendar import add_months, belgian_legal_holidays, calendar_for
from shared.rulebook.eligibility import (
    IncapacityTimeline,
    Ineligible,
    Interruption,
    check_force_majeure_start,
    check_request_right,
)

BE = calendar_for("BE-legal-holidays")
RB = default_rulebook()


def allowed(initiator: str, start: date, received: date, *, gaps: tuple[Interruption, ...] = (),
            certificate: date | None = None, consent: bool = False) -> str:
    """The regime that allows the request, or the refusal's message prefixed by 'refused:'."""
    try:
        in_force = check_request_right(
            RB, initiator=initiator, received_on=received,
            timeline=IncapacityTimeline(start=start, interruptions=gaps),
            certificate_on=certificate, worker_consent=consent,
        )
    except Ineligible as exc:
        return f"refused:{exc.rule}:{exc.regime}"
    return in_force.regime.id


@pytest.mark.parametrize(
    ("regime_start", "initiator", "start", "day_before", "opening_day", "regime"),
    [
        # BE-2022: the employer from 3 months of incapacity
        ("BE-2022", "employer", date(2023, 1, 10), date(2023, 4, 9), date(2023, 4, 10), "BE-2022"),
        # month ends: 3 months from 30 Nov end on the last day of February (it has no 30th), the right opens the
        # day after
        ("BE-2022", "employer", date(2023, 11, 30), date(2024, 2, 29), date(2024, 3, 1), "BE-2022"),
        ("BE-2022", "employer", date(2022, 11, 30), date(2023, 2, 28), date(2023, 3, 1), "BE-2022"),
        ("BE-2022", "employer", date(2023, 1, 31), date(2023, 4, 30), date(2023, 5, 1), "BE-2022"),
        # BE-2016: the employer from 4 months, the advising physician from 2
        ("BE-2016", "employer", date(2018, 3, 15), date(2018, 7, 14), date(2018, 7, 15), "BE-2016"),
        ("BE-2016", "advising_physician", date(2019, 5, 31), date(2019, 7, 30), date(2019, 7, 31), "BE-2016"),
        # BE-2026 keeps the 3 months without the worker's consent (uncertain rule, inherited figure)
        ("BE-2026", "employer", date(2026, 2, 1), date(2026, 4, 30), date(2026, 5, 1), "BE-2026"),
    ],
)
def test_request_right_opens_on_the_day(
    regime_start: str, initiator: str, start: date, day_before: date, opening_day: date, regime: str
) -> None:
    assert allowed(initiator, start, day_before).startswith(f"refused:trajectory.request.{initiator}:{regime}")
    assert allowed(initiator, start, opening_day) == regime


def test_worker_may_request_any_time_but_not_before_the_regime() -> None:
    assert allowed("worker", date(2016, 10, 1), date(2016, 12, 31)) == "refused:trajectory.request.worker:BE-2016"
    assert allowed("worker", date(2016, 10, 1), date(2017, 1, 1)) == "BE-2016"
    assert allowed("worker", date(2016, 10, 1), date(2016, 11, 30)).startswith("refused:trajectory.request.worker:None")
    assert allowed("worker", date(2024, 5, 1), date(2024, 5, 2)) == "BE-2022"


def test_advising_physician_request_30_sep_vs_1_oct_2022() -> None:
    start = date(2022, 3, 1)
    assert allowed("advising_physician", start, date(2022, 9, 30)) == "BE-2016"
    assert allowed("advising_physician", start, date(2022, 10, 1)) == (
        "refused:trajectory.request.advising_physician:BE-2022"
    )
    assert allowed("advising_physician", date(2016, 9, 1), date(2016, 12, 1)) == "BE-2016"
    assert allowed("advising_physician", date(2016, 9, 1), date(2016, 11, 30)).startswith("refused")


@pytest.mark.parametrize(("days_back", "expected"), [(13, "BE-2022"), (14, "refused")])
def test_return_under_14_days_does_not_interrupt_under_2022(days_back: int, expected: str) -> None:
    start = date(2023, 1, 10)
    gap = Interruption(returned_on=date(2023, 2, 1), resumed_on=date(2023, 2, 1 + days_back))
    assert allowed("employer", start, date(2023, 4, 10), gaps=(gap,)).startswith(expected)


def test_any_return_interrupts_under_2016() -> None:
    start = date(2018, 1, 10)
    gap = Interruption(returned_on=date(2018, 2, 1), resumed_on=date(2018, 2, 3))
    assert allowed("employer", start, date(2018, 5, 10), gaps=(gap,)).startswith("refused")
    assert allowed("employer", start, date(2018, 6, 3), gaps=(gap,)) == "BE-2016"


def test_request_while_back_at_work_is_refused() -> None:
    gap = Interruption(returned_on=date(2023, 5, 1))
    assert allowed("worker", date(2023, 1, 10), date(2023, 5, 2), gaps=(gap,)).startswith("refused")


def test_certificate_opens_the_employer_right_at_once() -> None:
    start = date(2023, 1, 10)
    assert allowed("employer", start, date(2023, 1, 20), certificate=date(2023, 1, 19)) == "BE-2022"
    assert allowed("employer", start, date(2023, 1, 20), certificate=date(2023, 1, 21)).startswith("refused")


def test_employer_from_day_one_with_consent_from_2026() -> None:
    assert allowed("employer", date(2026, 2, 1), date(2026, 2, 2), consent=True) == "BE-2026"
    assert allowed("employer", date(2025, 2, 1), date(2025, 2, 2), consent=True).startswith("refused")


def fm(start: date, letter: date, running: bool = False, gaps: tuple[Interruption, ...] = ()) -> str:
    try:
        return check_force_majeure_start(
            RB, letter_sent_on=letter, timeline=IncapacityTimeline(start=start, interruptions=gaps),
            trajectory_running=running,
        ).regime.id
    except Ineligible as exc:
        return f"refused:{exc.regime}"


def test_force_majeure_preconditions() -> None:
    start = date(2021, 6, 1)
    assert fm(start, date(2022, 11, 27)) == "refused:BE-2022"  # the separate procedure starts on 28 Nov 2022
    assert fm(start, date(2022, 11, 28)) == "BE-2022"
    assert fm(start, date(2022, 11, 28), running=True) == "refused:BE-2022"
    assert fm(date(2023, 1, 31), date(2023, 10, 30)) == "refused:BE-2022"  # 9 months complete on 31 Oct
    assert fm(date(2023, 1, 31), date(2023, 10, 31)) == "BE-2022"
    short = (Interruption(returned_on=date(2023, 3, 1), resumed_on=date(2023, 3, 14)),)
    assert fm(date(2023, 1, 31), date(2023, 10, 31), gaps=short) == "BE-2022"
    assert fm(date(2019, 1, 1), date(2020, 1, 1)) == "refused:BE-2016"


def test_belgian_legal_holidays() -> None:
    days = belgian_legal_holidays(2025)
    assert len(days) == 10
    assert {date(2025, 4, 21), date(2025, 5, 29), date(2025, 6, 9), date(2025, 7, 21), date(2025, 11, 11)} <= days
    assert date(2025, 7, 11) not in days  # Flemish community holiday, not national
    assert len(belgian_legal_holidays(2008)) == 9  # Ascension fell on 1 May
    assert not BE.is_working_day(date(2025, 12, 25))
    assert BE.is_working_day(date(2025, 12, 24))


def test_working_days_skip_weekends_and_holidays() -> None:
    assert BE.add_working_days(date(2024, 12, 20), 5) == date(2024, 12, 30)  # Fri; skips 25 Dec
    # Good Friday is a working day; Easter Monday is not
    assert BE.add_working_days(date(2025, 4, 18), 1) == date(2025, 4, 22)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)


def test_rulebook_is_data_and_inherits() -> None:
    in_force = RB.rule_on("trajectory.request.worker", date(2026, 3, 1))
    assert in_force.regime.id == "BE-2026" and in_force.inherited_from == "BE-2022"
    draft = Rulebook.from_toml(
        """
        version = "test"
        country = "NL"
        [calendar]
        id = "NL"
        description = "test"
        country = "NL"
        [[regimes]]
        id = "NL-2002"
        country = "NL"
        valid_from = 2002-04-01
        instrument = "Wet verbetering poortwachter"
        status = "C"
        decision_codes = []
        definitive_codes = []
        plan_codes = {}
        counting = "weeks"
        [[rules]]
        kind = "request_right"
        id = "trajectory.request.employer"
        regime = "NL-2002"
        initiator = "employer"
        min_months = 0
        legal_basis = "test"
        status = "C"
        """
    )
    assert draft.rule_on("trajectory.request.employer", date(2024, 1, 1)).regime.id == "NL-2002"
    with pytest.raises(Exception, match="unknown field"):
        Rulebook.from_toml('version = "x"\ncountry = "BE"\nbogus = 1')


@pytest.mark.parametrize(
    ("first", "months", "last"),
    [
        (date(2024, 1, 16), 1, date(2024, 2, 15)),  # from date to the eve of the date
        (date(2023, 3, 1), 1, date(2023, 3, 31)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),  # February has no 31st: its last day
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 24, date(2026, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 28)),  # 29 Feb 2028 exists: its eve
        (date(2023, 8, 31), 6, date(2024, 2, 29)),
        (date(2023, 12, 31), 2, date(2024, 2, 29)),
        (date(2023, 12, 1), 1, date(2023, 12, 31)),  # a year end
        (date(2023, 11, 15), 2, date(2024, 1, 14)),
    ],
)
def test_a_period_of_months_ends_on_the_eve_of_the_same_date(first: date, months: int, last: date) -> None:
    from shared.rulebook.calendar import last_day_of_months, months_after

    assert last_day_of_months(first, months) == last
    assert months_after(first, months) == last + timedelta(days=1)
