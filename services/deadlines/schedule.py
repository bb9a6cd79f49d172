"""The DeadlineSchedule aggregate: one case's deadlines as derived, with the events and timers behind them.

Each ``ScheduleStep`` records the Case event it applied (``source``) and how the deadlines changed. The service
folds each event into the schedule's :class:`DeadlineFold` (the running deadlines only, so a step costs the same
on a long case as on a short one) and records the deadlines the event changed; those are exactly the changes
between ``compute_deadlines`` over the history before and after the event, so the schedule is, after every step,
the pure function of the history (property tests check both). A ``TimerFired`` records that a deadline's timer
fired while it was still open: the outcome (missed, or expired for a window), when, and how late.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from uuid import UUID

import msgspec

from shared.infra.derived import DerivedStep
from shared.rulebook.deadlines import Deadline, DeadlineFold


class DeadlineChange(msgspec.Struct, frozen=True, kw_only=True):
    #: opened / met / cancelled / recomputed / changed / withdrawn
    change: str
    deadline: Deadline


class ScheduleStep(DerivedStep, frozen=True, kw_only=True, tag="schedule_step.v1", tag_field="envelope"):
    changes: list[DeadlineChange]


class TimerFired(msgspec.Struct, frozen=True, kw_only=True, tag="timer_fired.v1", tag_field="envelope"):
    originator_id: UUID
    originator_version: int
    timestamp: datetime
    deadline: Deadline
    #: missed (an obligation) or expired (a right's window closed)
    outcome: str
    #: When the server fired the timer (the fired message's timestamp in the TIMERS stream).
    fired_at: datetime
    #: Seconds between the moment the timer was due and the moment the server fired it (both the server's time;
    #: when the outcome was recorded is ``timestamp``, the service's clock).
    lag_seconds: float
    #: Case version the schedule knew when it decided (every earlier report had been applied).
    known_version: int
    enterprise_number: str
    insz: str
    #: The timer that fired: the moment it was scheduled for, and its fired message's sequence in TIMERS.
    scheduled_for: datetime | None = None
    timer_sequence: int | None = None


class ScheduleRecomputed(msgspec.Struct, frozen=True, kw_only=True, tag="schedule_recomputed.v1",
                         tag_field="envelope"):
    """The case's deadlines recomputed over the same history under another rulebook or policy (a deployment
    changed them): the changes, and which rulebook and policy, so the schedule stays the pure function of its
    history under the rules now in force. Recorded by ``reintegration deadlines recompute``."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    #: the rulebook (``<country> <version>``) and policy the deadlines were recomputed under
    rulebook: str
    policy: str
    #: the case version the schedule had applied (its history is unchanged)
    source_version: int
    changes: list[DeadlineChange]
    enterprise_number: str
    insz: str


class DeadlineSchedule(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    case_id: UUID
    enterprise_number: str
    insz: str
    #: the case version it has applied (its last step's source)
    source_version: int
    deadlines: dict[UUID, Deadline]
    #: deadline id -> the TimerFired that recorded its outcome
    outcomes: dict[UUID, TimerFired]
    #: the running deadlines as :class:`DeadlineFold` carries them, when the service projected the schedule (a
    #: reader of the recorded steps alone, such as the auditor, has none); never stored, never changed in place
    fold: DeadlineFold | None = None

    def open_deadlines(self) -> list[Deadline]:
        """Open deadlines whose outcome for their current due date is not recorded yet."""
        return [
            d for d in self.deadlines.values()
            if d.state == "open" and (d.id not in self.outcomes or self.outcomes[d.id].deadline.due_on != d.due_on)
        ]


def diff(before: dict[UUID, Deadline], after: list[Deadline], *, complete: bool = True) -> list[DeadlineChange]:
    """The changes that turn ``before`` into ``after``. ``complete``: ``after`` is every deadline (those of
    ``before`` it lacks are withdrawn); else only the ones an event changed (:meth:`DeadlineFold.apply`)."""
    changes = []
    seen = set()
    for new in after:
        seen.add(new.id)
        old = before.get(new.id)
        if old is None and new.superseded:
            # Opened under the regime of its start, then recomputed when a later regime took effect: both are
            # recorded, so that the schedule shows what the parties were held to until the switch.
            for index, version in enumerate(new.superseded):
                changes.append(DeadlineChange(change="opened" if index == 0 else "recomputed", deadline=version))
            changes.append(DeadlineChange(change="recomputed" if new.state == "open" else new.state, deadline=new))
        elif old is None:
            changes.append(DeadlineChange(change="opened" if new.state == "open" else new.state, deadline=new))
        elif old != new:
            change: str
            if old.state == "open" and new.state != "open":
                change = new.state
            elif old.due_on != new.due_on or old.regime != new.regime:
                change = "recomputed"
            else:
                change = "changed"
            changes.append(DeadlineChange(change=change, deadline=new))
    if complete:
        for old_id, old in before.items():
            if old_id not in seen:
                changes.append(DeadlineChange(change="withdrawn", deadline=old))
    return changes


def apply_changes(deadlines: dict[UUID, Deadline], changes: list[DeadlineChange]) -> dict[UUID, Deadline]:
    """The deadlines after ``changes``: a new dict (states are never changed in place), or the same one when
    there are none (most steps change no deadline; a long case holds hundreds)."""
    if not changes:
        return deadlines
    out = dict(deadlines)
    for change in changes:
        if change.change == "withdrawn":
            out.pop(change.deadline.id, None)
        else:
            out[change.deadline.id] = change.deadline
    return out


def schedule_after(state: DeadlineSchedule | None, step: ScheduleStep, fold: DeadlineFold | None) -> DeadlineSchedule:
    """The schedule after one of its steps, carrying ``fold`` (already past the step's source event)."""
    return DeadlineSchedule(
        id=step.originator_id,
        version=step.originator_version,
        case_id=step.source.case_id,
        enterprise_number=step.enterprise_number,
        insz=step.insz,
        source_version=step.source.version,
        deadlines=apply_changes(state.deadlines if state else {}, step.changes),
        outcomes=state.outcomes if state else {},
        fold=fold,
    )


#: The fold a service starts a case's schedule with (its rulebook, the policy of the case's employer).
NewFold = Callable[[str], DeadlineFold]


def project_schedule(
    state: DeadlineSchedule | None, events: Iterable[ScheduleStep | TimerFired | ScheduleRecomputed],
    new_fold: NewFold | None = None,
) -> DeadlineSchedule | None:
    """The schedule after ``events``. With ``new_fold`` (the service's), its fold is carried along: each step's
    source walked without building a deadline (the recorded changes hold them)."""
    fold = state.fold.copy() if state is not None and state.fold is not None else None
    for event in events:
        if isinstance(event, ScheduleStep):
            if fold is None and state is None and new_fold is not None:
                fold = new_fold(event.enterprise_number)
            if fold is not None:
                fold.apply(event.source, build=False)
            state = schedule_after(state, event, fold)
        elif isinstance(event, ScheduleRecomputed):
            assert state is not None, "only a known schedule is recomputed"
            state = msgspec.structs.replace(
                state, version=event.originator_version, deadlines=apply_changes(state.deadlines, event.changes),
            )
        else:
            assert state is not None, "a timer fires for a known schedule"
            state = msgspec.structs.replace(
                state,
                version=event.originator_version,
                outcomes={**state.outcomes, event.deadline.id: event},
            )
    return state


def timer_due(deadline: Deadline) -> date:
    """The day after the deadline: its timer fires at the start of that Belgian day. A deadline that a later regime
    recomputed to a date before that regime took effect is overdue from the switch day only (until then the
    earlier regime's longer period ran): its timer fires then."""
    from datetime import timedelta

    day = deadline.due_on + timedelta(days=1)
    if deadline.recomputed_on is not None and deadline.recomputed_on > day:
        return deadline.recomputed_on
    return day
