"""The one calendar: a rulebook's calendar id decides every working day the rules count, Belgian days and their
first and last instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from importlib import resources

import pytest

from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.benefits import LedgerEntry, compute_ledger
from shared.rulebook.calendar import belgian_date, calendar_for, end_of_belgian_day, start_of_belgian_day
from shared.rulebook.model import load_rule_kinds
from tests.unit.test_benefits_builder import History

BE_CALENDAR, NL_CALENDAR = "BE-legal-holidays", "NL-algemene-termijnenwet"


def belgian_rules_on(calendar_id: str) -> Rulebook:
    """The shipped Belgian rulebook, its rules unchanged, counting working days on the calendar ``calendar_id``."""
    load_rule_kinds()
    folder = resources.files("shared.rulebook")
    main = folder.joinpath("be.toml").read_text().replace(f'id = "{BE_CALENDAR}"', f'id = "{calendar_id}"')
    rule_files = sorted((f for f in folder.iterdir() if f.name.startswith("be-") and f.name.endswith(".toml")),
                        key=lambda f: f.name)
    return Rulebook.from_toml(main, *(f.read_bytes() for f in rule_files), source=f"be.toml on {calendar_id}")


def late_declaration(rulebook: Rulebook, starts_on: date, declared_on: date) -> LedgerEntry:
    h = History(start=date(2022, 1, 10))
    h.declare(starts_on, 19, declared_on=declared_on)
    [entry] = [e for e in compute_ledger(h.events, rulebook) if e.rule == "partial_resumption.late_declaration"]
    return entry


@pytest.mark.parametrize(
    ("starts_on", "declared_on", "due_in_belgium", "due_in_the_netherlands"),
    [
        # Fri 27 Dec 2024: 26 Dec is a working day in Belgium, the Second Day of Christmas in the Netherlands
        (date(2024, 12, 27), date(2024, 12, 30), date(2024, 12, 26), date(2024, 12, 24)),
        # Tue 16 Aug 2022: Mon 15 Aug is Assumption Day in Belgium, a working day in the Netherlands
        (date(2022, 8, 16), date(2022, 8, 17), date(2022, 8, 12), date(2022, 8, 15)),
    ],
)
def test_the_late_declaration_deadline_counts_the_working_days_of_the_rulebooks_calendar(
    starts_on: date, declared_on: date, due_in_belgium: date, due_in_the_netherlands: date
) -> None:
    belgian, dutch = belgian_rules_on(BE_CALENDAR), belgian_rules_on(NL_CALENDAR)
    assert belgian.calendar.id == BE_CALENDAR and dutch.calendar.id == NL_CALENDAR

    on_belgian_days = late_declaration(belgian, starts_on, declared_on)
    on_dutch_days = late_declaration(dutch, starts_on, declared_on)

    assert f"due by {due_in_belgium.isoformat()}, the working day before" in on_belgian_days.explanation
    assert f"due by {due_in_the_netherlands.isoformat()}, the working day before" in on_dutch_days.explanation
    # the same reduction otherwise: only the calendar changed
    assert (on_dutch_days.period_start, on_dutch_days.period_end, on_dutch_days.percentage) == (
        on_belgian_days.period_start, on_belgian_days.period_end, on_belgian_days.percentage)


def test_the_shipped_belgian_rulebook_counts_belgian_working_days() -> None:
    assert default_rulebook().calendar.id == BE_CALENDAR
    entry = late_declaration(default_rulebook(), date(2024, 12, 27), date(2024, 12, 30))
    assert "due by 2024-12-26" in entry.explanation


def test_previous_working_day_on_both_calendars() -> None:
    be, nl = calendar_for(BE_CALENDAR), calendar_for(NL_CALENDAR)
    assert be.previous_working_day(date(2024, 12, 27)) == date(2024, 12, 26)
    assert nl.previous_working_day(date(2024, 12, 27)) == date(2024, 12, 24)
    assert be.previous_working_day(date(2022, 8, 16)) == date(2022, 8, 12)
    assert nl.previous_working_day(date(2022, 8, 16)) == date(2022, 8, 15)


@pytest.mark.parametrize("day", [date(2024, 3, 30), date(2024, 3, 31), date(2024, 10, 27), date(2024, 7, 1)])
def test_a_belgian_day_runs_from_its_first_to_its_last_instant(day: date) -> None:
    first, last = start_of_belgian_day(day), end_of_belgian_day(day)
    assert belgian_date(first) == belgian_date(last) == day
    assert belgian_date(first - timedelta(microseconds=1)) == day - timedelta(days=1)
    assert belgian_date(last + timedelta(microseconds=1)) == day + timedelta(days=1)
    assert last.astimezone(UTC) < datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def test_the_belgian_day_of_a_utc_instant_is_brusselss_across_every_clock_change() -> None:
    """The UTC fast path (before 22:00 UTC, Belgium's day is UTC's) agrees with the zone database every 7 minutes
    from 2019 to 2027, both clock changes of each year included, and at each minute around them."""
    brussels = start_of_belgian_day(date(2024, 1, 1)).tzinfo
    moment, end = datetime(2019, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    while moment < end:
        assert belgian_date(moment) == moment.astimezone(brussels).date(), moment
        moment += timedelta(minutes=7)
    for change in (datetime(2024, 3, 31, 1, tzinfo=UTC), datetime(2024, 10, 27, 1, tzinfo=UTC)):
        for minutes in range(-24 * 60, 24 * 60):
            moment = change + timedelta(minutes=minutes, microseconds=999_999)
            assert belgian_date(moment) == moment.astimezone(brussels).date(), moment
