"""What the console draws, from the audit service's answers (JSON as it came over NATS): pure functions, no I/O and
no clock (the page's moment is passed in).

* :func:`timeline`: the case's events on two time axes, the effective date (x: the day the fact happened) and the
  recorded time (y: when the intake received it). A report received the day its fact happened lies on the diagonal;
  a late report lies far to the left of it; a back-dated one (a fact placed before a fact already recorded: how a
  correction of the past arrives) is marked as such.
* :func:`deadline_chart`: each deadline's window from the day it counts from to its due day, with the day it was
  met or cancelled, a missed or expired outcome, and the due days a recomputation under a later regime replaced.
* :func:`ledger_rows`: the ledger's entries and reversals in the order recorded, each with the running total of its
  payer and beneficiary, and the totals per beneficiary and per payer.
* :func:`parse_known`, :func:`parse_applying`, :func:`parse_case_id`: the time-travel and lookup inputs, refused
  with :class:`BadInput` naming the field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.rulebook.calendar import BRUSSELS, FIRST_DAY, LAST_DAY

#: A report received more than this many days after the day its fact happened is drawn as late.
LATE_AFTER_DAYS = 7


class BadInput(ValueError):
    """An input the console cannot use: ``field`` names it (the form field or URL part), ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


# ------------------------------------------------------------------------------------------------------ inputs


def parse_case_id(value: str) -> uuid.UUID:
    text = value.strip()
    try:
        return uuid.UUID(text)
    except ValueError:
        raise BadInput("case_id", f"{text!r} is not a case id: a case id is a UUID such as "
                       "7d8b3c1e-1111-4111-8111-111111111111") from None


def _in_range(day: date, name: str) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadInput(name, f"{day.isoformat()} is outside the days the rulebook covers ({FIRST_DAY.isoformat()} "
                       f"to {LAST_DAY.isoformat()})")
    return day


def parse_known(value: str) -> datetime | date:
    """"As known on": a day (the end of that Belgian day), a time in Belgian time (``2024-06-03T10:00``, what a
    browser's date-and-time field sends) or a time with its offset (``...Z``, ``...+02:00``)."""
    text = value.strip()
    try:
        moment: datetime | date = (date.fromisoformat(text) if len(text) == 10
                                   else datetime.fromisoformat(text.replace(" ", "T", 1)))
    except ValueError:
        raise BadInput("known", f"{text!r} is neither a day (2024-06-03) nor a time (2024-06-03T10:00 in Belgian "
                       "time, or with its offset: 2024-06-03T08:00:00Z)") from None
    if not isinstance(moment, datetime):
        return _in_range(moment, "known")
    _in_range(moment.date(), "known")
    return moment.replace(tzinfo=BRUSSELS) if moment.tzinfo is None else moment


def parse_applying(value: str) -> date:
    """"As applying on": a day."""
    text = value.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadInput("applying", f"{text!r} is not a day: give one as 2024-06-03") from None
    return _in_range(day, "applying")


def when(value: str) -> datetime:
    """A time of an answer (RFC 3339), timezone-aware."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Box:
    """The plotting area inside the SVG's ``width`` x ``height``."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


@dataclass(frozen=True)
class DayScale:
    """Days onto ``[start, start + length]`` pixels."""

    first: date
    last: date
    start: float
    length: float

    @classmethod
    def over(cls, days: list[date], start: float, length: float, pad: int = 15) -> DayScale:
        first, last = min(days), max(days)
        if first == last:
            first, last = first - timedelta(days=pad), last + timedelta(days=pad)
        return cls(first, last, start, length)

    def __call__(self, day: date) -> float:
        return round(self.start + (day - self.first).days / (self.last - self.first).days * self.length, 1)

    def ticks(self, count: int = 6) -> list[Tick]:
        span = (self.last - self.first).days
        days = sorted({self.first + timedelta(days=round(span * i / (count - 1))) for i in range(count)})
        return [Tick(self(d), d.isoformat()) for d in days]


@dataclass(frozen=True)
class TimeScale:
    """Times onto pixels, the earliest at ``start + length`` (the bottom) and the latest at ``start``."""

    first: datetime
    last: datetime
    start: float
    length: float

    @classmethod
    def over(cls, times: list[datetime], start: float, length: float) -> TimeScale:
        first, last = min(times), max(times)
        if first == last:
            first, last = first - timedelta(days=1), last + timedelta(days=1)
        return cls(first, last, start, length)

    def __call__(self, moment: datetime) -> float:
        share = (moment - self.first) / (self.last - self.first)
        return round(self.start + (1 - share) * self.length, 1)

    def ticks(self, count: int = 5) -> list[Tick]:
        span = self.last - self.first
        moments = [self.first + span * i / (count - 1) for i in range(count)]
        shape = "%Y-%m-%d %H:%M" if span < timedelta(days=count * 2) else "%Y-%m-%d"
        return [Tick(self(m), m.astimezone(UTC).strftime(shape)) for m in moments]


# --------------------------------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class Point:
    version: int
    event_id: str
    type: str
    reported_by: str
    regime: str | None
    effective_date: date
    recorded_at: datetime
    known_on: date
    #: days between the fact and the day the intake received it
    lag_days: int
    late: bool
    #: placed before a fact already recorded: the past was completed or corrected
    backdated: bool
    x: float
    y: float
    #: the abscissa of the day it was known (a late report's lag runs from ``x`` to here)
    x_known: float
    #: with "as applying on D": the fact had not happened by D / the system was told after D
    after_day: bool = False
    unknown_then: bool = False

    @property
    def label(self) -> str:
        flags = [w for w, on in (("late", self.late), ("back-dated", self.backdated)) if on]
        return (f"version {self.version}: {self.type}, effective {self.effective_date.isoformat()}, recorded "
                f"{self.recorded_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC"
                + (f" ({', '.join(flags)})" if flags else ""))


@dataclass(frozen=True)
class Timeline:
    box: Box
    points: list[Point]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    #: reported the day it happened: ``(x1, y1, x2, y2)``, or ``None`` when the axes share no day
    diagonal: tuple[float, float, float, float] | None
    #: "as known at T": the height of T; "as applying on D": the abscissa of D
    horizon_y: float | None = None
    day_x: float | None = None

    @property
    def late(self) -> int:
        return sum(p.late for p in self.points)

    @property
    def backdated(self) -> int:
        return sum(p.backdated for p in self.points)


TIMELINE_BOX = Box(width=960, height=400, left=150, top=20, right=60, bottom=60)


def timeline(events: list[dict[str, Any]], *, known_at: datetime | None = None, applying_on: date | None = None,
             box: Box = TIMELINE_BOX) -> Timeline:
    """``events``: the history entries of an ``asof`` or ``history`` answer, in version order."""
    rows = [(e, date.fromisoformat(e["effective_date"]), when(e["recorded_at"]), date.fromisoformat(e["known_on"]))
            for e in events]
    days = [d for _, d, _, _ in rows] + [k for _, _, _, k in rows] + ([applying_on] if applying_on else [])
    times = [t for _, _, t, _ in rows] + ([known_at] if known_at else [])
    if not days:
        days = [applying_on or date(2000, 1, 1)]
    if not times:
        times = [known_at or datetime(2000, 1, 1, tzinfo=UTC)]
    xs = DayScale.over(days, box.left, box.plot_width)
    ys = TimeScale.over(times, box.top, box.plot_height)
    points, latest = [], None
    for e, effective, recorded, known in rows:
        lag = (known - effective).days
        points.append(Point(
            version=e["version"], event_id=e["event_id"], type=e["type"], reported_by=e["reported_by"],
            regime=e.get("regime"), effective_date=effective, recorded_at=recorded, known_on=known, lag_days=lag,
            late=lag > LATE_AFTER_DAYS, backdated=latest is not None and effective < latest,
            x=xs(effective), y=ys(recorded), x_known=xs(known),
            after_day=applying_on is not None and effective > applying_on,
            unknown_then=applying_on is not None and known > applying_on))
        latest = effective if latest is None else max(latest, effective)
    # the diagonal: a fact reported on the day it happened (drawn at midnight UTC of that day)
    first = max(xs.first, ys.first.date() + timedelta(days=1))
    last = min(xs.last, ys.last.date())
    diagonal = None
    if first < last:
        start, end = (datetime.combine(d, time(), UTC) for d in (first, last))
        diagonal = (xs(first), ys(start), xs(last), ys(end))
    return Timeline(box=box, points=points, x_ticks=xs.ticks(), y_ticks=ys.ticks(), diagonal=diagonal,
                    horizon_y=ys(known_at) if known_at else None, day_x=xs(applying_on) if applying_on else None)


# -------------------------------------------------------------------------------------------------- deadlines


@dataclass(frozen=True)
class Superseded:
    due_on: date
    regime: str
    rule: str
    x: float


@dataclass(frozen=True)
class Bar:
    id: str
    rule: str
    regime: str
    legal_basis: str
    explanation: str
    party: str
    kind: str
    starts_on: date
    due_on: date
    state: str
    closed_on: date | None
    late: bool
    #: the timer's outcome (missed, expired, reminded, reached), if one was recorded
    outcome: str | None
    recomputed_from: str | None
    recomputed_on: date | None
    superseded: list[Superseded]
    #: what the deadline was on "as applying on D" (``None`` without one)
    on_day: str | None
    y: float
    x_start: float
    x_due: float
    x_closed: float | None

    @property
    def status(self) -> str:
        if self.state == "met":
            said = f"met on {self.closed_on}" + (" (late)" if self.late else "")
        elif self.state == "cancelled":
            said = f"cancelled on {self.closed_on}" if self.closed_on else "cancelled"
        elif self.outcome:
            said = self.outcome
        else:
            said = f"open, due {self.due_on}"
        if self.recomputed_from:
            was = "; ".join(f"was due {s.due_on} under {s.regime}" for s in self.superseded)
            said += f"; recomputed under {self.regime} on {self.recomputed_on}" + (f" ({was})" if was else "")
        return said


@dataclass(frozen=True)
class DeadlineChart:
    box: Box
    bars: list[Bar]
    x_ticks: list[Tick]
    day_x: float | None
    row_height: int


def _on_day(d: dict[str, Any], starts: date, due: date, closed: date | None, day: date) -> str:
    if starts > day:
        return "not opened yet"
    if closed is not None and closed <= day:
        return f"{d['state']} by then"
    if d["deadline_kind"] == "not_before":
        return "earliest date reached" if day >= due else "waiting for its earliest date"
    return f"overdue ({'missed' if d['deadline_kind'] == 'due' else 'passed'})" if day > due else "open"


def deadline_chart(deadlines: list[dict[str, Any]], *, applying_on: date | None = None, left: int = 300,
                   width: int = 960, row_height: int = 36) -> DeadlineChart:
    """``deadlines``: the rows of an ``asof`` answer (``Deadline`` fields with ``outcome``)."""
    parsed = []
    for d in deadlines:
        closed = date.fromisoformat(d["closed_on"]) if d.get("closed_on") else None
        superseded = [(date.fromisoformat(s["due_on"]), s["regime"], s["rule"]) for s in d.get("superseded") or ()]
        parsed.append((d, date.fromisoformat(d["starts_on"]), date.fromisoformat(d["due_on"]), closed, superseded))
    days = [x for _, s, due, c, sup in parsed for x in (s, due, c, *(s_[0] for s_ in sup)) if x is not None]
    if applying_on:
        days.append(applying_on)
    box = Box(width=width, height=20 + row_height * max(len(parsed), 1) + 50, left=left, top=20, right=60,
              bottom=50)
    xs = DayScale.over(days or [applying_on or date(2000, 1, 1)], box.left, box.plot_width)
    bars = []
    for i, (d, starts, due, closed, superseded) in enumerate(parsed):
        bars.append(Bar(
            id=d["id"], rule=d["rule"], regime=d["regime"], legal_basis=d["legal_basis"],
            explanation=d["explanation"], party=d["party"], kind=d["deadline_kind"], starts_on=starts, due_on=due,
            state=d["state"], closed_on=closed, late=bool(d.get("late")), outcome=d.get("outcome"),
            recomputed_from=d.get("recomputed_from"),
            recomputed_on=date.fromisoformat(d["recomputed_on"]) if d.get("recomputed_on") else None,
            superseded=[Superseded(day, regime, rule, xs(day)) for day, regime, rule in superseded],
            on_day=_on_day(d, starts, due, closed, applying_on) if applying_on else None,
            y=box.top + i * row_height + row_height / 2, x_start=xs(starts), x_due=xs(due),
            x_closed=xs(closed) if closed else None))
    return DeadlineChart(box=box, bars=bars, x_ticks=xs.ticks(), day_x=xs(applying_on) if applying_on else None,
                         row_height=row_height)


# ------------------------------------------------------------------------------------------------------ ledger


@dataclass(frozen=True)
class LedgerRow:
    number: int
    entry: dict[str, Any]
    amount: Decimal | None
    #: the total of this entry's payer -> beneficiary after it (amounts only; a percentage moves no total)
    running: Decimal
    in_force: bool
    reversed_by: str | None
    #: with "as applying on D": the entry's period had not begun by D
    after_day: bool = False

    @property
    def figure(self) -> str:
        e = self.entry
        if self.amount is not None:
            return f"{self.amount:.2f} EUR"
        if e.get("percentage") is not None:
            return f"{e['percentage']} % of {e.get('base') or 'the base'}"
        return "no amount (notice)"


@dataclass(frozen=True)
class Ledger:
    rows: list[LedgerRow]
    by_beneficiary: dict[str, Decimal] = field(default_factory=dict)
    by_payer: dict[str, Decimal] = field(default_factory=dict)

    @property
    def reversals(self) -> int:
        return sum(r.entry["kind"] == "reversal" for r in self.rows)


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


def ledger_rows(entries: list[dict[str, Any]], in_force: set[str], *, applying_on: date | None = None) -> Ledger:
    """``entries``: every recorded entry, reversals included, in the order recorded; ``in_force``: the ids of those
    in force (the ``ledger`` of an ``asof`` answer)."""
    reversed_by = {e["reverses"]: e["id"] for e in entries if e.get("reverses")}
    running: dict[tuple[str, str], Decimal] = {}
    by_beneficiary: dict[str, Decimal] = {}
    by_payer: dict[str, Decimal] = {}
    rows = []
    for number, e in enumerate(entries, start=1):
        amount = _amount(e.get("amount"))
        pair = (e["payer"], e["beneficiary"])
        running[pair] = running.get(pair, Decimal("0")) + (amount or Decimal("0"))
        if amount is not None:
            by_beneficiary[e["beneficiary"]] = by_beneficiary.get(e["beneficiary"], Decimal("0")) + amount
            by_payer[e["payer"]] = by_payer.get(e["payer"], Decimal("0")) + amount
        rows.append(LedgerRow(
            number=number, entry=e, amount=amount, running=running[pair], in_force=e["id"] in in_force,
            reversed_by=reversed_by.get(e["id"]),
            after_day=applying_on is not None and date.fromisoformat(e["period_start"]) > applying_on))
    return Ledger(rows=rows, by_beneficiary=by_beneficiary, by_payer=by_payer)
