"""The intake application: one method per use case, over eventsourcing's event store."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import ApplicationRecorder, IntegrityError, PersistenceError

from shared.events import reports as r
from shared.events.common import Party
from shared.events.envelope import CaseEvent, case_id_for, event_id_for
from shared.events.replies import Accepted, RejectionCode
from shared.infra.retry import WriteConflictError, retry_on_conflict
from shared.infra.settings import Settings
from shared.infra.store import check_cipher, logged_events, prepare_store, setup_lock
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.calendar import belgian_date

from .case import Case, evolve, project_case
from .decide import Rejection, authorise, decide, unknown_case
from .report_index import IntakeRecorder, backfill, intake_recorder

log = structlog.get_logger("intake")

#: Attempts at an optimistic write before answering "conflict, try again".
WRITE_ATTEMPTS = 5


class IntakeApplication(Application[UUID]):
    """Records the reports of health funds, occupational health services and employers as Case events."""

    name = "intake"
    #: How many cases a process keeps between their reports (:meth:`submit_batch`); 0: read each from the store.
    case_cache: int = 1000

    def __init__(self, env: dict[str, str] | None = None, rulebook: Rulebook | None = None) -> None:
        super().__init__(env)
        check_cipher(self)
        self._index_old_reports()
        self.rulebook = rulebook or default_rulebook()
        #: the cases this process last recorded or read, most recent last: what the next report is decided on
        self._cases: OrderedDict[UUID, Case] = OrderedDict()
        self._cases_lock = threading.Lock()  # store threads share it (several on PostgreSQL)

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

    def submit_batch(self, items: list[tuple[Party, r.AnyReport, datetime]]) -> list[Accepted | Exception]:
        """:meth:`submit` for reports that arrived together, recorded in one transaction (group commit): each
        decided against its case as the reports before it in the batch left it, the accepted ones saved at once.
        Per report its acceptance, or the exception it was refused with (a :class:`Rejection`: nothing of it is
        recorded). A transaction that meets another writer (a second intake) is redone one report at a time.
        A store that cannot be reached raises (nothing of the batch is recorded).

        Each case is decided on the state this process last recorded or read (kept for :attr:`case_cache` cases):
        a write from a state another intake overtook conflicts, and the batch is redone from the store; a refusal
        decided on a remembered state is decided again on the store before it is answered (a refusal writes
        nothing, so nothing else would check it)."""
        cases: dict[UUID, Case | None] = {}
        remembered: set[UUID] = set()  # cases decided on this process's memory, not yet checked by a write
        unsaved: dict[tuple[UUID, int], CaseEvent] = {}
        results: list[Accepted | Exception] = []
        for party, report, now in items:
            try:
                if now.tzinfo is None:
                    raise ValueError("now must be timezone-aware")
                case_id = self._case_id(report)
                if case_id not in cases:
                    cases[case_id] = self._current(case_id, remembered)
                try:
                    accepted, event, after = self._decide(cases[case_id], case_id, party, report, now, unsaved)
                except PersistenceError:
                    raise
                except Exception:
                    if case_id not in remembered:
                        raise
                    remembered.discard(case_id)
                    self._forget(case_id)
                    cases[case_id] = self._load(case_id)
                    accepted, event, after = self._decide(cases[case_id], case_id, party, report, now, unsaved)
                if event is not None:
                    cases[case_id] = after
                    unsaved[case_id, event.version] = event
                    remembered.discard(case_id)  # from here the write checks the state it started from
                results.append(accepted)
            except PersistenceError:
                raise
            except Exception as exc:  # noqa: BLE001 - the caller answers each refusal
                results.append(exc)
        if not unsaved:
            return results
        try:
            self._save(*unsaved.values())
        except IntegrityError:
            for case_id in cases:
                self._forget(case_id)
            return [self._submit_one(party, report, now) for party, report, now in items]
        for case_id, case in cases.items():
            self._remember(case_id, case)
        return results

    def _current(self, case_id: UUID, remembered: set[UUID]) -> Case | None:
        """The case as this process last knew it (noted in ``remembered``), else as stored."""
        with self._cases_lock:
            case = self._cases.get(case_id)
            if case is not None:
                self._cases.move_to_end(case_id)
        if case is not None:
            remembered.add(case_id)
            return case
        return self._load(case_id)

    def _remember(self, case_id: UUID, case: Case | None) -> None:
        if case is None or self.case_cache <= 0:
            return
        with self._cases_lock:
            self._cases[case_id] = case
            self._cases.move_to_end(case_id)
            while len(self._cases) > self.case_cache:
                self._cases.popitem(last=False)

    def _forget(self, case_id: UUID) -> None:
        with self._cases_lock:
            self._cases.pop(case_id, None)

    def _submit_one(self, party: Party, report: r.AnyReport, now: datetime) -> Accepted | Exception:
        try:
            return self.submit(party, report, now)
        except PersistenceError:
            raise
        except Exception as exc:  # noqa: BLE001 - as submit_batch answers it
            return exc

    def _decide_and_record(self, case_id: UUID, party: Party, report: r.AnyReport, now: datetime) -> Accepted:
        """One attempt: decide ``report`` against the case as stored now and record it (``IntegrityError`` when
        another writer took the case's next version first)."""
        self._forget(case_id)
        accepted, event, after = self._decide(self._load(case_id), case_id, party, report, now, {})
        if event is not None:
            self._save(event)
            self._remember(case_id, after)
        return accepted

    def _decide(self, case: Case | None, case_id: UUID, party: Party, report: r.AnyReport, now: datetime,
                unsaved: dict[tuple[UUID, int], CaseEvent]) -> tuple[Accepted, CaseEvent | None, Case | None]:
        """The acceptance of ``report`` against ``case``, the event to record (``None``: a duplicate, answered
        with its original acceptance) and the case after it; or :class:`Rejection`. ``unsaved``: events decided
        but not saved yet."""
        authorise(case, report, party)  # before anything about the case is told, duplicates included
        if case is not None and (duplicate := self._duplicate(case, report, unsaved)) is not None:
            return duplicate, None, case
        self._check_report_id(party, report, case_id, unsaved)
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
        after = evolve(case, event)  # the event must fold: never store what cannot be replayed
        return Accepted(
            report_id=report.report_id, case_id=case_id, version=version, event_ids=[event.event_id], regime=regime,
        ), event, after

    def _save(self, *events: CaseEvent) -> None:
        """Record ``events`` and, in the same transaction, each one's report id in the index of its party's report
        ids (:mod:`.report_index`)."""
        self.save(*events, report_ids=[(str(e.reported_by), str(e.report.report_id), str(e.case_id), e.version)
                                       for e in events])

    def _check_report_id(self, party: Party, report: r.Report, case_id: UUID,
                         unsaved: dict[tuple[UUID, int], CaseEvent]) -> None:
        """Refuse a report id that ``party`` already used for a report of another case (``report_id_reused``,
        naming that case and version). Asked after :meth:`_duplicate`, which answers for the case's own report ids
        (a resend is its original acceptance, even where old data used the id on another case too)."""
        found = self._recorder().find_report(str(party), str(report.report_id))
        if found is None:
            found = next(((e.case_id, e.version) for e in unsaved.values()
                          if e.report.report_id == report.report_id and e.reported_by == party), None)
        if found is None or found[0] == case_id:
            return
        original_case, version = found
        pending = unsaved.get((original_case, version))
        (original,) = [pending] if pending is not None else self.case_events(original_case, gt=version - 1,
                                                                             lte=version)
        raise Rejection(
            RejectionCode.REPORT_ID_REUSED,
            f"report id {report.report_id} was already used by {party} for another report "
            f"({original.type}, version {version} of case {original_case}): a new report needs a new report id",
            field="$.report_id",
        )

    def construct_recorder(self) -> ApplicationRecorder:
        return intake_recorder(self.factory)

    def _recorder(self) -> IntakeRecorder:
        recorder = self.recorder
        assert isinstance(recorder, IntakeRecorder), type(recorder)
        return recorder

    def _index_old_reports(self) -> None:
        """Index the report ids of a store recorded before the index existed (once: an index with rows is kept).
        A reader that opens the store without creating tables (the auditor, an operator's command) writes nothing.
        An intake of an earlier release must not write to the store after this one indexed it: stop the old intakes
        before starting new ones (docs/architecture.md)."""
        creates = getattr(self.factory, "env_create_table", None)  # the in-memory store has no such setting
        if creates is not None and not creates():
            return
        recorder = self._recorder()
        if recorder.index_size() != 0:
            return
        if not recorder.max_notification_id():
            return
        count = backfill(recorder, ((str(e.reported_by), str(e.report.report_id), e.case_id, e.version)
                                    for _, e in logged_events(self)))
        log.info("report_ids.indexed", reports=count)

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

    def _duplicate(self, case: Case, report: r.Report,
                   unsaved: dict[tuple[UUID, int], CaseEvent] | None = None) -> Accepted | None:
        version = case.reports.get(report.report_id)
        if version is None:
            return None
        found = (unsaved or {}).get((case.id, version))
        (original,) = [found] if found is not None else self.case_events(case.id, gt=version - 1, lte=version)
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
        return IntakeApplication(env={**prepare_store(settings, IntakeApplication.name), **env},
                                 rulebook=rulebook or default_rulebook(starts=settings.rule_starts))

