"""A case's history, and the two questions of time an inspector asks.

* **As known then** (:func:`as_of`): what the system knew at a moment T, i.e. the events recorded at or before T
  (``recorded_at <= T``), or the case as of version n: the Case as it stood, its deadlines and ledger recomputed
  over that prefix, set beside what the services recorded at the matching version (the derived step whose history
  length is n: each derived step embeds its source event).
* **The law that applied** (:func:`applied`): for each event, the regime in force on its effective date (the day
  the fact happened), whatever day it was reported; optionally, which facts had happened and which were known by
  a date D.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from services.benefits.ledger import LedgerRecomputed, LedgerStep, project_ledger
from services.deadlines.schedule import DeadlineSchedule, ScheduleRecomputed, ScheduleStep, TimerFired, project_schedule
from services.intake.case import project_case
from shared.events.envelope import CaseEvent
from shared.events.reports import tag_of
from shared.rulebook.benefits import effective
from shared.rulebook.calendar import belgian_date
from shared.rulebook.deadlines import Deadline, overdue

from .rules import Rules
from .stores import AuditError, Stores
from .verify import Difference, compare_deadlines, compare_ledger, plain

KNOWN_LABEL = "As known then: the events recorded at or before {when} (recorded_at <= {when})"
VERSION_LABEL = "As of version {n}: the first {n} recorded events"
APPLIED_LABEL = ("The law that applied: each event under the regime in force on its effective date (the day the "
                 "fact happened), whatever the day it was reported")


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    event_id: str
    type: str
    #: who reported it: ``<party kind>:<id>``
    reported_by: str
    #: when the intake received it (UTC)
    recorded_at: datetime
    #: the Belgian day it was received (what the system knew from that day)
    known_on: date
    #: the report's date that places it on the case's timeline, and its name
    effective_date: date
    effective_field: str
    #: the regime in force on the effective date, as the intake recorded it
    regime: str | None
    report: dict[str, Any]


def entry_of(event: CaseEvent) -> HistoryEntry:
    report = event.report
    return HistoryEntry(
        version=event.version, event_id=str(event.event_id), type=tag_of(report), reported_by=str(event.reported_by),
        recorded_at=event.recorded_at, known_on=belgian_date(event.recorded_at),
        effective_date=report.effective_date, effective_field=report.effective_field, regime=event.regime,
        report=plain(report),
    )


def history(stores: Stores, case_id: UUID) -> list[HistoryEntry]:
    return [entry_of(e) for e in stores.case_history(case_id)]


class AppliedEntry(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    event_id: str
    type: str
    reported_by: str
    effective_date: date
    #: the regime in force on the effective date, per the rulebook now
    regime: str | None
    #: the regime the intake recorded with the event
    recorded_regime: str | None
    recorded_at: datetime
    #: the regime in force on the day it was received (differs for a fact reported after a regime change)
    regime_when_received: str | None
    #: with ``on``: had the fact happened by then / had the system been told by then
    effective_by_then: bool | None = None
    known_by_then: bool | None = None


class Applied(msgspec.Struct, frozen=True, kw_only=True):
    question: str
    case_id: str
    rulebook: str
    on: date | None
    regime_on: str | None
    events: list[AppliedEntry]


def _regime_id(rules: Rules, day: date) -> str | None:
    regime = rules.rulebook.regime_on(day)
    return regime.id if regime else None


def applied(stores: Stores, rules: Rules, case_id: UUID, on: date | None = None) -> Applied:
    rows = []
    for event in stores.case_history(case_id):
        day = event.report.effective_date
        received = belgian_date(event.recorded_at)
        rows.append(AppliedEntry(
            version=event.version, event_id=str(event.event_id), type=tag_of(event.report),
            reported_by=str(event.reported_by), effective_date=day, regime=_regime_id(rules, day),
            recorded_regime=event.regime, recorded_at=event.recorded_at,
            regime_when_received=_regime_id(rules, received),
            effective_by_then=None if on is None else day <= on,
            known_by_then=None if on is None else received <= on,
        ))
    return Applied(question=APPLIED_LABEL, case_id=str(case_id), rulebook=rules.rulebook.version, on=on,
                   regime_on=_regime_id(rules, on) if on else None, events=rows)


class AsOf(msgspec.Struct, frozen=True, kw_only=True):
    question: str
    case_id: str
    time: datetime | None
    version: int
    latest_version: int
    events: list[HistoryEntry]
    #: the intake's Case as of ``version``
    case: dict[str, Any] | None
    #: every deadline recomputed over the prefix, with the timer outcome known then
    deadlines: list[dict[str, Any]]
    open_deadlines: list[str]
    #: the ledger in force, recomputed over the prefix
    ledger: list[dict[str, Any]]
    #: every entry the benefits store had recorded once it had applied ``version`` events, reversals included, in
    #: the order recorded (entries are never edited: a reversal cancels one); empty when it had not applied them
    recorded_entries: list[dict[str, Any]] = []
    #: the derived stores at the matching version: their versions, agreement and differences
    recorded: dict[str, Any]
    notes: list[str]


class _Step(Protocol):
    """A derived step: it records the Case event it applied."""

    @property
    def source(self) -> CaseEvent: ...


class _Recomputation(Protocol):
    """A recomputation of a derived aggregate, recorded at its ``timestamp``."""

    @property
    def timestamp(self) -> datetime: ...


def _schedule_at(events: Sequence[Any], n: int, time: datetime | None) -> DeadlineSchedule | None:
    """The recorded schedule once it had applied ``n`` events, with the timer outcomes recorded before the next
    step (or, at a time, recorded before that time: an outcome counts from when it was recorded, not from when its
    timer fired)."""
    kept = [e for e in _included(events, ScheduleStep, ScheduleRecomputed, n, time)
            if not (isinstance(e, TimerFired) and time is not None and e.timestamp > time)]
    state = project_schedule(None, kept)
    return state if state is not None and state.source_version == n else None


def _included(events: Sequence[Any], step_type: type[_Step], recomputed_type: type[_Recomputation], n: int,
              time: datetime | None) -> list[Any]:
    """A derived aggregate's events once it had applied ``n`` Case events: its steps up to the ``n``-th and the
    recomputations before the next step, less those recorded after ``time`` (unless an included step followed
    one: that step was taken against the recomputed state)."""
    out: list[Any] = []
    last_step = max((i for i, e in enumerate(events) if isinstance(e, step_type) and e.source.version <= n),
                    default=-1)
    for index, event in enumerate(events):
        if isinstance(event, step_type) and event.source.version > n:
            break
        if isinstance(event, recomputed_type) and time is not None and event.timestamp > time and index > last_step:
            continue
        out.append(event)
    return out


def _ledger_at(events: Sequence[Any], n: int, time: datetime | None) -> tuple[list[Any], datetime | None]:
    """The recorded ledger's events once it had applied ``n`` events, with its recomputations, and when its
    ``n``-th step was recorded; ``([], None)`` when it had not applied them."""
    ledger_events = [e for e in events if isinstance(e, LedgerStep | LedgerRecomputed)]
    steps = [e for e in ledger_events if isinstance(e, LedgerStep)]
    if not n or len(steps) < n:
        return [], None
    return _included(ledger_events, LedgerStep, LedgerRecomputed, n, time), steps[n - 1].timestamp


def _prefix(events: Sequence[CaseEvent], case_id: UUID, time: datetime | None, version: int | None
            ) -> tuple[int, str, list[str]]:
    """How many of the case's events were known (at ``time``, or as of ``version``), the question so put, and
    notes on it."""
    notes: list[str] = []
    if time is None:
        if version is None or not 0 < version <= len(events):
            raise AuditError(f"case {case_id} has versions 1 to {len(events)}, not {version}")
        return version, VERSION_LABEL.format(n=version), notes
    n = 0
    while n < len(events) and events[n].recorded_at <= time:
        n += 1
    if any(e.recorded_at <= time for e in events[n:]):
        notes.append("a later version was recorded with an earlier clock: the prefix stops at the first "
                     "event recorded after the time")
    return n, KNOWN_LABEL.format(when=time.isoformat()), notes


def _deadline_rows(computed: Sequence[Deadline], schedule: DeadlineSchedule | None,
                   time: datetime | None) -> list[dict[str, Any]]:
    """The deadlines recomputed over the prefix, each with the timer outcome recorded for it then (and, at a time,
    whether it was overdue that day)."""
    outcomes = schedule.outcomes if schedule else {}
    rows = []
    for d in computed:
        fired = outcomes.get(d.id)
        row = {**plain(d), "outcome": fired.outcome if fired and fired.deadline.due_on == d.due_on else None}
        if time is not None:
            row["overdue_then"] = overdue(d, belgian_date(time))
        rows.append(row)
    return rows


def as_of(stores: Stores, rules: Rules, case_id: UUID, *, time: datetime | None = None,
          version: int | None = None) -> AsOf:
    if (time is None) == (version is None):
        raise AuditError("give either a time or a version")
    if time is not None and time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    events = stores.case_history(case_id)
    n, question, notes = _prefix(events, case_id, time, version)
    prefix = events[:n]
    case = project_case(None, prefix)  # the events already read, folded as the intake folds them
    computed = rules.deadlines(prefix)
    schedule = _schedule_at(stores.derived_events("deadlines", case_id), n, time) if n else None
    rows = _deadline_rows(computed, schedule, time)
    open_ids = [r["id"] for r in rows if r["state"] == "open" and r["outcome"] is None]
    # the recorded ledger once it had applied ``n`` events; and whether it was computed with another case holding
    # the premium
    included, ledger_recorded_at = _ledger_at(stores.derived_events("benefits", case_id), n, time)
    recorded_ledger = project_ledger(None, included) if included else None
    prior = bool(included) and included[-1].prior_premium
    ledger = effective(rules.ledger(prefix, prior_premium=prior))
    recorded: dict[str, Any] = {}
    diffs: list[Difference] = []
    if schedule is None:
        notes.append(f"the deadlines store had not applied version {n}" if n else "no event yet")
        recorded["deadlines_version"] = None
    else:
        recorded["deadlines_version"] = schedule.version
        diffs += compare_deadlines(schedule.deadlines, computed)
    if recorded_ledger is not None and ledger_recorded_at is not None:
        recorded["ledger_version"] = recorded_ledger.version
        recorded["ledger_recorded_at"] = ledger_recorded_at.isoformat()
        diffs += compare_ledger(recorded_ledger.effective, ledger)
    else:
        recorded["ledger_version"] = None
        notes.append(f"the benefits store had not applied version {n}" if n else "")
    recorded["agree"] = not diffs
    recorded["differences"] = plain(diffs)
    return AsOf(question=question, case_id=str(case_id), time=time, version=n, latest_version=len(events),
                events=[entry_of(e) for e in prefix], case=plain(case) if case else None, deadlines=rows,
                open_deadlines=open_ids, ledger=plain(ledger),
                recorded_entries=plain(list(recorded_ledger.entries)) if recorded_ledger is not None else [],
                recorded=recorded, notes=[x for x in notes if x])
