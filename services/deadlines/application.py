"""The deadlines application: applies Case events to each case's DeadlineSchedule and records fired timers."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from shared.events.envelope import CaseEvent
from shared.infra.derived import DerivedApplication
from shared.infra.retry import retry_on_conflict
from shared.infra.settings import Settings
from shared.infra.store import prepare_store, setup_lock
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.deadlines import (
    OUTCOME_BY_KIND,
    DeadlineFold,
    Policy,
    case_policy,
    compute_deadlines,
    parse_employer_policies,
)

from .schedule import (
    DeadlineChange,
    DeadlineSchedule,
    ScheduleRecomputed,
    ScheduleStep,
    TimerFired,
    diff,
    project_schedule,
    schedule_after,
)


class TimerOutcome(enum.StrEnum):
    RECORDED = "recorded"
    #: the deadline was met, cancelled or moved since the timer was set, or its outcome is already recorded
    STALE = "stale"
    #: the schedule has not applied every report of the case yet: decide later
    BEHIND = "behind"


class DeadlinesApplication(DerivedApplication[DeadlineSchedule]):
    name = "deadlines"
    purpose = "deadlines"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        rulebook: Rulebook | None = None,
        policy: Policy | None = None,
        employer_policies: dict[str, frozenset[str]] | None = None,
    ) -> None:
        super().__init__(env)
        self.rulebook = rulebook or default_rulebook()
        self.policy = policy or Policy()
        #: policy name -> the employers (enterprise numbers, or ``*``) whose own policy it is
        self.employer_policies = employer_policies or {}

    def policy_for(self, enterprise_number: str) -> Policy:
        """The deployment's policy, with the employer policies of this case's employer only."""
        return case_policy(self.policy, self.employer_policies, enterprise_number)

    def project(self, state: DeadlineSchedule | None, events: Any) -> DeadlineSchedule | None:
        return project_schedule(state, events, self.new_fold)

    def new_fold(self, enterprise_number: str) -> DeadlineFold:
        """A case's fold before its first event: this application's rulebook, the policy of the case's employer."""
        return DeadlineFold(self.rulebook, self.policy_for(enterprise_number))

    def advance(self, state: DeadlineSchedule | None, event: CaseEvent, position: int, now: datetime,
                ) -> tuple[list[Any], DeadlineSchedule | None]:
        if state is None:
            opening = self.opening_of(None, event)
            enterprise, insz, fold = opening.enterprise_number, opening.insz, self.new_fold(opening.enterprise_number)
        else:
            assert state.fold is not None, "the application projects its schedules with their fold"
            enterprise, insz, fold = state.enterprise_number, state.insz, state.fold.copy()
        changes = diff(state.deadlines if state else {}, fold.apply(event), complete=False)
        step = ScheduleStep(
            originator_id=self.derived_id(event.case_id),
            originator_version=(state.version if state else 0) + 1,
            timestamp=now,
            source=event,
            position=position,
            enterprise_number=enterprise,
            insz=insz,
            changes=changes,
        )
        return [step], schedule_after(state, step, fold)

    def schedule(self, case_id: UUID, version: int | None = None) -> DeadlineSchedule | None:
        return self.load(case_id, version)

    def recompute(self, case_id: UUID, now: datetime, *, record: bool = True) -> list[DeadlineChange]:
        """The changes that recomputing the case's deadlines over the history it applied, under this application's
        rulebook and policy, makes to its schedule; recorded as one :class:`ScheduleRecomputed` unless ``record``
        is false. Nothing when they agree (a second run changes nothing). An optimistic write on the schedule's
        version, retried when the running service records a step meanwhile."""
        return retry_on_conflict(lambda: self._recompute(case_id, now, record), attempts=self.write_attempts,
                                 what=f"case {case_id}: the recomputation of its deadlines")

    def _recompute(self, case_id: UUID, now: datetime, record: bool) -> list[DeadlineChange]:
        with self.writing:
            return self._recompute_locked(case_id, now, record)

    def _recompute_locked(self, case_id: UUID, now: datetime, record: bool) -> list[DeadlineChange]:
        state = self.load(case_id)
        if state is None:
            return []
        policy = self.policy_for(state.enterprise_number)
        changes = diff(state.deadlines, compute_deadlines(self.sources(case_id, state.version), self.rulebook, policy))
        if not changes or not record:
            return changes
        self.save(ScheduleRecomputed(
            originator_id=state.id, originator_version=state.version + 1, timestamp=now,
            rulebook=self.rulebook.label, policy=policy.id,
            source_version=state.source_version, changes=changes,
            enterprise_number=state.enterprise_number, insz=state.insz,
        ))
        return changes

    def timer_fired(
        self, case_id: UUID, deadline_id: UUID, due_on: date, fired_at: datetime, scheduled_for: datetime,
        known_version: int, *, now: datetime | None = None, timer_sequence: int | None = None,
    ) -> TimerOutcome:
        """Record the outcome of a deadline whose timer fired, once, if it is still open as the case stands.

        ``fired_at``: when the server fired the timer (its stream timestamp); ``now``: when the outcome is recorded
        (default ``fired_at``); ``timer_sequence``: the fired message's sequence in the TIMERS stream.
        """
        timer = FiredTimer(case_id, deadline_id, due_on, fired_at, scheduled_for, known_version, timer_sequence)
        return self.timers_fired([timer], now or fired_at)[0]

    def timers_fired(self, timers: list[FiredTimer], now: datetime) -> list[TimerOutcome]:
        """:meth:`timer_fired` for a batch of fired timers, their outcomes recorded in one transaction (each case's
        schedule carried from one of its timers to the next). A transaction that meets another writer is redone
        one timer at a time, each an optimistic write retried on conflict."""
        with self.writing:
            return self._timers_fired(timers, now)

    def _timers_fired(self, timers: list[FiredTimer], now: datetime) -> list[TimerOutcome]:
        states: dict[UUID, DeadlineSchedule | None] = {}
        remembered: set[UUID] = set()  # cases whose state came from this process's memory, not the store
        outcomes: list[TimerOutcome] = []
        pending: list[TimerFired] = []
        for timer in timers:
            case_id = timer.case_id
            if case_id not in states:
                if case_id in self._states:
                    remembered.add(case_id)
                states[case_id] = self.current(case_id)
            outcome, fired = self._decide(states[case_id], timer, now)
            if outcome is not TimerOutcome.RECORDED and case_id in remembered:
                # Only a write is checked against the store (its version): "behind" or "stale" are decided on
                # what the store holds, which another process may have moved on (a replay, a recomputation).
                remembered.discard(case_id)
                self._forget(case_id)
                states[case_id] = self.load(case_id)
                outcome, fired = self._decide(states[case_id], timer, now)
            outcomes.append(outcome)
            if fired is not None:
                pending.append(fired)
                states[case_id] = project_schedule(states[case_id], [fired])
                # From here the case's state holds this batch's unsaved outcome, which the store does not: a later
                # timer of the case is decided on it (a duplicate of this one is stale), never on the store. The
                # write checks it: it succeeds only if the state it started from was the store's.
                remembered.discard(case_id)
        if not pending:
            return outcomes
        try:
            self.save(*pending)
        except IntegrityError:
            for case_id in states:
                self._forget(case_id)
            return [self._retried(timer, now) for timer in timers]
        for fired in pending:
            self._remember(fired.deadline.case_id, states[fired.deadline.case_id])
        return outcomes

    def _retried(self, timer: FiredTimer, now: datetime) -> TimerOutcome:
        return retry_on_conflict(lambda: self._one_timer(timer, now), attempts=self.write_attempts,
                                 what=f"case {timer.case_id}: the timer of {timer.deadline_id}")

    def _one_timer(self, timer: FiredTimer, now: datetime) -> TimerOutcome:
        outcome, fired = self._decide(self.load(timer.case_id), timer, now)
        if fired is not None:
            self.save(fired)
        return outcome

    @staticmethod
    def _decide(state: DeadlineSchedule | None, timer: FiredTimer, now: datetime,
                ) -> tuple[TimerOutcome, TimerFired | None]:
        """What a fired timer means for the schedule as it stands: the outcome to record, or why nothing is."""
        deadline = state.deadlines.get(timer.deadline_id) if state else None
        if state is None or state.source_version < timer.known_version:
            return TimerOutcome.BEHIND, None
        if deadline is None:
            return TimerOutcome.STALE, None
        decided = state.outcomes.get(timer.deadline_id)
        if deadline.state != "open" or deadline.due_on != timer.due_on or (
            decided is not None and decided.deadline.due_on == timer.due_on
        ):
            return TimerOutcome.STALE, None
        return TimerOutcome.RECORDED, TimerFired(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            deadline=deadline,
            outcome=OUTCOME_BY_KIND.get(deadline.deadline_kind, "missed"),
            fired_at=timer.fired_at,
            lag_seconds=max(0.0, (timer.fired_at - timer.scheduled_for).total_seconds()),
            scheduled_for=timer.scheduled_for,
            timer_sequence=timer.timer_sequence,
            known_version=state.source_version,
            enterprise_number=state.enterprise_number,
            insz=state.insz,
        )


@dataclass(frozen=True)
class FiredTimer:
    """A fired timer, as :meth:`DeadlinesApplication.timers_fired` decides it."""

    case_id: UUID
    deadline_id: UUID
    due_on: date
    fired_at: datetime
    scheduled_for: datetime
    known_version: int
    timer_sequence: int | None


def build_deadlines(settings: Settings, rulebook: Rulebook | None = None, **env: str) -> DeadlinesApplication:
    """Composition root of the deadlines application."""
    rulebook = rulebook or default_rulebook(starts=settings.rule_starts)
    policies = parse_employer_policies(settings.employer_policies, rulebook)
    with setup_lock(settings, DeadlinesApplication.name):
        return DeadlinesApplication(
            env={**prepare_store(settings, DeadlinesApplication.name), **env},
            rulebook=rulebook,
            policy=Policy(roll_forward=settings.roll_forward),
            employer_policies=policies,
        )
