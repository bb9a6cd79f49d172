"""The intake application: one method per use case, over eventsourcing's event store."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from shared.events import reports as r
from shared.events.common import Party
from shared.events.envelope import CaseEvent, case_id_for, event_id_for
from shared.events.replies import Accepted, RejectionCode
from shared.infra.retry import WriteConflictError, retry_on_conflict
from shared.infra.settings import Settings
from shared.infra.store import prepare_store, setup_lock
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.calendar import belgian_date

from .case import Case, evolve, project_case
from .decide import Rejection, authorise, decide, unknown_case

#: Attempts at an optimistic write before answering "conflict, try again".
WRITE_ATTEMPTS = 5


class IntakeApplication(Application[UUID]):
    """Records the reports of health funds, occupational health services and employers as Case events."""

    name = "intake"

    def __init__(self, env: dict[str, str] | None = None, rulebook: Rulebook | None = None) -> None:
        super().__init__(env)
        self.rulebook = rulebook or default_rulebook()

    def submit(self, party: Party, report: r.AnyReport, now: datetime) -> Accepted:
        """Record ``report`` from ``party`` received at ``now`` (UTC), or raise :class:`Rejection`.

        Idempotent by report id: a report already recorded is answered with its original acceptance.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        case_id = self._case_id(report)
        try:
            return retry_on_conflict(lambda: self._decide_and_record(case_id, party, report, now),
                                     attempts=WRITE_ATTEMPTS, what=f"case {case_id}")
        except WriteConflictError:
            raise Rejection(
                RejectionCode.CONFLICT,
                f"case {case_id} changed {WRITE_ATTEMPTS} times while this report was decided; send it again",
            ) from None

    def _decide_and_record(self, case_id: UUID, party: Party, report: r.AnyReport, now: datetime) -> Accepted:
        """One attempt: decide ``report`` against the case as stored now and record it (``IntegrityError`` when
        another writer took the case's next version first)."""
        case = self._load(case_id)
        authorise(case, report, party)  # before anything about the case is told, duplicates included
        if case is not None and (duplicate := self._duplicate(case, report)) is not None:
            return duplicate
        if isinstance(report, r.IncapacityReported) and case is not None:
            raise Rejection(
                RejectionCode.CASE_EXISTS,
                f"this incapacity is already case {case_id} (reported with another report id)",
                field="$.report_id",
            )
        if not isinstance(report, r.IncapacityReported) and case is None:
            raise unknown_case(case_id, party)
        regime = decide(case, report, party, belgian_date(now), self.rulebook)
        version = 1 if case is None else case.version + 1
        event = CaseEvent(
            case_id=case_id,
            version=version,
            event_id=event_id_for(case_id, version),
            recorded_at=now,
            reported_by=party,
            regime=regime,
            report=report,
        )
        evolve(case, event)  # the event must fold: never store what cannot be replayed
        self.save(event)
        return Accepted(
            report_id=report.report_id, case_id=case_id, version=version, event_ids=[event.event_id], regime=regime,
        )

    def get_case(self, case_id: UUID, version: int | None = None) -> Case:
        return self.repository.get(case_id, version=version, projector_func=project_case)

    def case_events(self, case_id: UUID, *, gt: int | None = None, lte: int | None = None) -> list[CaseEvent]:
        """The case's events (after version ``gt``, up to ``lte``), in order."""
        return [_case_event(event) for event in self.events.get(case_id, gt=gt, lte=lte)]

    def _load(self, case_id: UUID) -> Case | None:
        try:
            return self.get_case(case_id)
        except AggregateNotFoundError:
            return None

    @staticmethod
    def _case_id(report: r.Report) -> UUID:
        if isinstance(report, r.IncapacityReported):
            return case_id_for(
                report.insz, report.enterprise_number, report.start_date.isoformat(), report.health_fund
            )
        assert isinstance(report, r.CaseReport)
        return report.case_id

    def _duplicate(self, case: Case, report: r.Report) -> Accepted | None:
        version = case.reports.get(report.report_id)
        if version is None:
            return None
        (original,) = self.case_events(case.id, gt=version - 1, lte=version)
        if original.report != report:
            raise Rejection(
                RejectionCode.REPORT_ID_REUSED,
                f"report id {report.report_id} was already used for a different report "
                f"({original.type}, version {version} of case {case.id})",
                field="$.report_id",
            )
        return Accepted(
            report_id=report.report_id,
            case_id=case.id,
            version=version,
            event_ids=[original.event_id],
            duplicate=True,
            regime=original.regime,
        )


def _case_event(event: object) -> CaseEvent:
    """What the intake store holds: Case events only."""
    if not isinstance(event, CaseEvent):
        raise TypeError(f"the intake store holds a {type(event).__name__}, not a Case event")
    return event


def build_intake(settings: Settings, rulebook: Rulebook | None = None, **env: Any) -> IntakeApplication:
    """Composition root of the intake application."""
    with setup_lock(settings, IntakeApplication.name):
        return IntakeApplication(env={**prepare_store(settings, IntakeApplication.name), **env}, rulebook=rulebook)

