"""Counting days the way the law does: calendar days, working days, weeks and calendar months.

Working days are Monday to Friday less the Belgian legal holidays. The holidays come from the ``holidays``
package, restricted to the ten legal holidays (its Easter Sunday and Whit Sunday are Sundays anyway).
Periods run from the day after the step that starts them.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import holidays
from dateutil.relativedelta import relativedelta

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
    days = frozenset(day for day, name in found.items() if name in _BE_LEGAL)
    if len(days) != 10:
        raise RuntimeError(f"expected 10 Belgian legal holidays in {year}, the holidays package gave {len(days)}")
    return days


def is_holiday(day: date) -> bool:
    return day in belgian_legal_holidays(day.year)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and not is_holiday(day)


def add_calendar_days(start: date, days: int) -> date:
    return start + timedelta(days=days)


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself does not count)."""
    if days < 0:
        raise ValueError("days must be >= 0")
    day = start
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day


def add_months(start: date, months: int) -> date:
    """Calendar-month arithmetic: 31 Jan + 1 month = 28 (or 29) Feb."""
    return start + relativedelta(months=months)


def previous_working_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_working_day(day):
        day -= timedelta(days=1)
    return day


def next_working_day_on_or_after(day: date) -> date:
    while not is_working_day(day):
        day += timedelta(days=1)
    return day
