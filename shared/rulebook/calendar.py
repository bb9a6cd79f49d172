"""Counting days the way the law does: calendar days, working days, weeks and calendar months; the one calendar.

Belgian time (:data:`BRUSSELS`) is the one time zone of the code base: a Belgian day (:func:`belgian_date`), its
first and last instants. Working days are Monday to Friday less the holidays of the rulebook's calendar
(:class:`WorkingCalendar`, chosen by :func:`calendar_for`): nothing counts working days outside it, so a second
country's rules never count Belgian holidays. The holidays come from the ``holidays`` package, restricted to the ten
legal holidays (its Easter Sunday and Whit Sunday are Sundays anyway).
Periods run from the day after the step that starts them. A rulebook names its calendar by id; ``calendar_for``
gives the :class:`WorkingCalendar` of that id (the Belgian legal holidays, or the Dutch Algemene termijnenwet).
"""

from __future__ import annotations

import functools
from calendar import monthrange
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

#: Belgian time: the law counts Belgian days (a report recorded at 23:30 UTC in summer is recorded the next day).
BRUSSELS = ZoneInfo("Europe/Brussels")
#: The days the project's dates may name: no report of a working life's incapacity takes effect before the first,
#: and the calendar of legal holidays ends with the last.
FIRST_DAY, LAST_DAY = date(1950, 1, 1), date(2100, 12, 31)


def belgian_date(moment: datetime) -> date:
    """The calendar day in Belgium at ``moment`` (timezone-aware)."""
    if moment.tzinfo is UTC and moment.hour < 22:
        # Belgium is one or two hours ahead of UTC, never behind: before 22:00 UTC it is the same day there
        return moment.date()
    return moment.astimezone(BRUSSELS).date()


def start_of_belgian_day(day: date) -> datetime:
    """The first instant of ``day`` in Belgium (midnight, Belgian time)."""
    return datetime.combine(day, time(0), tzinfo=BRUSSELS)


def end_of_belgian_day(day: date) -> datetime:
    """The last instant of ``day`` in Belgium: every moment on or before it is on or before that day."""
    return start_of_belgian_day(day + timedelta(days=1)) - timedelta(microseconds=1)


#: The ten Belgian legal holidays by the names the ``holidays`` package gives them.
_BE_LEGAL = frozenset(
    {
        "New Year's Day",
        "Easter Monday",
        "Labor Day",
        "Ascension Day",
        "Pentecost Monday",
        "National Day",
        "Assumption Day",
        "All Saints' Day",
        "Armistice Day",
        "Christmas Day",
    }
)


@functools.cache
def belgian_legal_holidays(year: int) -> frozenset[date]:
    """The ten Belgian legal holidays of ``year``."""
    found = holidays.country_holidays("BE", years=year, language="en_US")
    # Two holidays on one day come as one entry with both names ("Ascension Day; Labor Day" in 2008).
    named = {(day, part) for day, names in found.items() for part in names.split("; ") if part in _BE_LEGAL}
    if len(named) != 10:
        raise RuntimeError(f"expected 10 Belgian legal holidays in {year}, the holidays package gave {len(named)}")
    return frozenset(day for day, _ in named)


def add_calendar_days(start: date, days: int) -> date:
    return start + timedelta(days=days)


def add_months(start: date, months: int) -> date:
    """Calendar-month arithmetic: 31 Jan + 1 month = 28 (or 29) Feb (as ``dateutil``'s ``relativedelta(months=n)``:
    the same day of the month ``months`` later, or that month's last day when it is shorter)."""
    year, month = divmod(start.year * 12 + start.month - 1 + months, 12)
    month += 1
    return start.replace(year=year, month=month, day=min(start.day, monthrange(year, month)[1]))


def last_day_of_months(first: date, months: int) -> date:
    """The last day of a period of ``months`` calendar months whose first day is ``first``: "from date to the eve
    of the same date" (Judicial Code art. 54), so 1 Mar + 1 month ends 31 Mar and 16 Jan + 1 month ends 15 Feb.
    When the end month lacks that date (a period from 31 Jan or 29 Feb), it ends on that month's last day."""
    same = add_months(first, months)
    if same.day != first.day:  # clipped: the end month has no such date
        return same
    return same - timedelta(days=1)


def months_after(first: date, months: int) -> date:
    """The first day after ``months`` whole calendar months that began on ``first`` (the day a right that needs
    them opens): 15 Jan + 3 months gives 15 Apr, 31 Jan + 1 month gives 1 Mar."""
    return last_day_of_months(first, months) + timedelta(days=1)


# --- calendars selectable by a rulebook's calendar id ---------------------------------------------------------

#: The holidays of the Dutch Algemene termijnenwet (art. 3) by the names the ``holidays`` package gives them;
#: 5 May is added for every year (the package lists Liberation Day only in lustrum years), Good Friday is left out.
_NL_TERMIJNENWET = frozenset(
    {
        "New Year's Day",
        "Easter Monday",
        "King's Day",
        "Ascension Day",
        "Pentecost Monday",
        "Christmas Day",
        "Second Day of Christmas",
    }
)
#: The monarch's birthday was Queen's Day until 2013 (art. 3: "the day the King's birthday is celebrated").
_NL_ALIASES = {"Queen's Day": "King's Day"}


@functools.cache
def dutch_legal_holidays(year: int) -> frozenset[date]:
    """The general holidays of the Dutch Algemene termijnenwet in ``year`` (8 dates, fewer when two coincide)."""
    found = holidays.country_holidays("NL", years=year, language="en_US")
    # Two holidays on one day come as one name joined by "; " (Ascension Day on 5 May 2005, for instance).
    pairs = ((_NL_ALIASES.get(name, name), day) for day, names in found.items() for name in names.split("; "))
    named = {name: day for name, day in pairs if name in _NL_TERMIJNENWET}
    if set(named) != _NL_TERMIJNENWET:
        missing = ", ".join(sorted(_NL_TERMIJNENWET - set(named)))
        raise RuntimeError(f"the holidays package gave no {missing} for the Netherlands in {year}")
    return frozenset({*named.values(), date(year, 5, 5)})


class WorkingCalendar:
    """Working days of one calendar: Monday to Friday less its holidays. Selected by the rulebook's calendar id."""

    def __init__(self, calendar_id: str, holidays_of: Callable[[int], frozenset[date]]) -> None:
        self.id = calendar_id
        self._holidays_of = holidays_of

    def __repr__(self) -> str:
        return f"WorkingCalendar({self.id!r})"

    def is_holiday(self, day: date) -> bool:
        return day in self._holidays_of(day.year)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and not self.is_holiday(day)

    def add_working_days(self, start: date, days: int) -> date:
        """The ``days``-th working day after ``start`` (before it when ``days`` < 0); ``start`` does not count."""
        step = timedelta(days=1 if days >= 0 else -1)
        day, remaining = start, abs(days)
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining -= 1
        return day

    def next_working_day_on_or_after(self, day: date) -> date:
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def previous_working_day(self, day: date) -> date:
        """The last working day before ``day``."""
        return self.add_working_days(day, -1)


#: Calendars by id: a rulebook's ``[calendar] id`` names one of these.
CALENDARS: dict[str, WorkingCalendar] = {}


def register_calendar(calendar: WorkingCalendar) -> WorkingCalendar:
    CALENDARS[calendar.id] = calendar
    return calendar


def calendar_for(calendar_id: str) -> WorkingCalendar:
    """The calendar a rulebook names; :class:`LookupError` naming the known ids when there is none."""
    try:
        return CALENDARS[calendar_id]
    except KeyError:
        raise LookupError(f"unknown calendar {calendar_id!r} (known: {', '.join(sorted(CALENDARS))})") from None


register_calendar(WorkingCalendar("BE-legal-holidays", belgian_legal_holidays))
register_calendar(WorkingCalendar("NL-algemene-termijnenwet", dutch_legal_holidays))
