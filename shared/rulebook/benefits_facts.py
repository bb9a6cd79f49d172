"""The facts of a case's history that benefit rules read, each kept with the event that reported it.

A light fold of its own (the intake's ``Case`` lives in a service, which the rulebook does not depend on). It is
lenient: a report that does not fit (an authorisation with no resumption declared) is ignored, not an error, so
the ledger of any history can be computed. Events are read in version order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from msgspec.structs import replace

from shared.events import reports as r
from shared.events.envelope import CaseEvent

from .calendar import belgian_date
from .eligibility import IncapacityTimeline, Interruption


def recorded_on(event: CaseEvent) -> date:
    """The day in Belgium on which ``event`` was recorded."""
    return belgian_date(event.recorded_at)


class Resumption(msgspec.Struct, frozen=True, kw_only=True):
    """One declared partial resumption and what became of it."""

    declared: CaseEvent
    authorised: CaseEvent | None = None
    ended: CaseEvent | None = None
    failed: CaseEvent | None = None

    @property
    def declaration(self) -> r.PartialResumptionDeclared:
        report = self.declared.report
        assert isinstance(report, r.PartialResumptionDeclared)
        return report

    @property
    def authorisation(self) -> r.PartialResumptionAuthorised | None:
        report = self.authorised.report if self.authorised else None
        return report if isinstance(report, r.PartialResumptionAuthorised) else None

    @property
    def starts_on(self) -> date:
        return self.declaration.starts_on

    @property
    def weekly_hours(self) -> Decimal:
        """The authorised hours when the authorisation gives them, else the declared ones."""
        auth = self.authorisation
        if auth is not None and auth.weekly_hours is not None:
            return auth.weekly_hours
        return self.declaration.weekly_hours

    @property
    def active(self) -> bool:
        return self.ended is None and self.failed is None

    def last_day(self) -> tuple[date, CaseEvent] | None:
        """The last day of authorised work known (failure - 1, end, authorisation's expiry) and its event."""
        ends: list[tuple[date, CaseEvent]] = []
        if self.failed is not None:
            assert isinstance(self.failed.report, r.PartialResumptionFailed)
            ends.append((self.failed.report.failed_on - timedelta(days=1), self.failed))
        if self.ended is not None:
            assert isinstance(self.ended.report, r.PartialResumptionEnded)
            ends.append((self.ended.report.ended_on, self.ended))
        auth = self.authorisation
        if auth is not None and auth.valid_until is not None and self.authorised is not None:
            ends.append((auth.valid_until, self.authorised))
        return min(ends, key=lambda pair: (pair[0], pair[1].version)) if ends else None


class Questionnaire(msgspec.Struct, frozen=True, kw_only=True):
    sent: CaseEvent
    returned: CaseEvent | None = None


class CaseFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the benefit rules need from one case's history."""

    case_id: UUID
    #: The Belgian date of the latest recorded event: time-dependent conditions are judged as of this day.
    as_of: date
    opening: CaseEvent | None = None
    timeline: IncapacityTimeline | None = None
    #: The reports that shaped the timeline (interruptions, resumptions, end), for the entries that read it.
    timeline_events: tuple[CaseEvent, ...] = ()
    resumptions: tuple[Resumption, ...] = ()
    misses: tuple[CaseEvent, ...] = ()
    questionnaires: tuple[Questionnaire, ...] = ()
    training_hours: tuple[CaseEvent, ...] = ()
    costs: tuple[CaseEvent, ...] = ()
    completions: tuple[CaseEvent, ...] = ()
    trajectory_ends: tuple[CaseEvent, ...] = ()
    force_majeure_decisions: tuple[CaseEvent, ...] = ()
    terminations: tuple[CaseEvent, ...] = ()
    #: The health fund's daily benefit, each from its ``applies_from`` until a later one (2026 reports).
    daily_benefits: tuple[CaseEvent, ...] = ()
    #: The worker's contacts with the advising physician after a missed examination or appointment.
    contacts: tuple[CaseEvent, ...] = ()

    @property
    def incapacity(self) -> r.IncapacityReported | None:
        report = self.opening.report if self.opening else None
        return report if isinstance(report, r.IncapacityReported) else None

    def first_authorisation(self) -> tuple[date, CaseEvent] | None:
        """The earliest authorisation of authorised work in this case, with its event."""
        found = [
            (p.authorisation.authorised_on, p.authorised)
            for p in self.resumptions
            if p.authorisation is not None and p.authorised is not None
        ]
        return min(found, key=lambda pair: (pair[0], pair[1].version)) if found else None

    def contact_from(self, day: date) -> CaseEvent | None:
        """The worker's first contact with the advising physician on or after ``day`` (by date, then version)."""
        after = [e for e in self.contacts if e.report.effective_date >= day]
        return min(after, key=lambda e: (e.report.effective_date, e.version)) if after else None

    def daily_benefits_by_date(self) -> list[tuple[date, Decimal, CaseEvent]]:
        """The daily benefit from each date a report gives (a later report for the same date corrects it), in date
        order: each applies until the next one's date."""
        latest: dict[date, CaseEvent] = {}
        for event in self.daily_benefits:
            report = event.report
            assert isinstance(report, r.DailyBenefitReported)
            known = latest.get(report.applies_from)
            if known is None or known.version < event.version:
                latest[report.applies_from] = event
        out = []
        for day in sorted(latest):
            report = latest[day].report
            assert isinstance(report, r.DailyBenefitReported)
            out.append((day, report.daily_benefit, latest[day]))
        return out


_LISTS = {
    r.ReturnToWorkExaminationMissed: "misses",
    r.TrainingHoursAttended: "training_hours",
    r.RehabilitationCostsReported: "costs",
    r.TrainingCompleted: "completions",
    r.TrajectoryEnded: "trajectory_ends",
    r.MedicalForceMajeureDecided: "force_majeure_decisions",
    r.ContractTerminated: "terminations",
    r.DailyBenefitReported: "daily_benefits",
    r.AdvisingPhysicianContacted: "contacts",
}


def collect(events: Sequence[CaseEvent]) -> CaseFacts | None:
    """The facts of one case's events (``None`` for no events); ``ValueError`` if they mix cases."""
    if not events:
        return None
    ordered = sorted(events, key=lambda e: e.version)
    case_ids = {e.case_id.int for e in ordered}
    if len(case_ids) != 1:
        raise ValueError(f"events of {len(case_ids)} cases given; a ledger is computed per case")
    facts: CaseFacts | None = None
    for event in ordered:
        facts = fold_facts(facts, event)
    return facts


def fold_facts(facts: CaseFacts | None, event: CaseEvent) -> CaseFacts:
    """``facts`` with the case's next event: what :func:`collect` gives of the history with it, at the cost of
    one event. The day time-dependent conditions are judged on is the latest event's (the Belgian day never goes
    back as time goes on, so the latest recorded day is that of the latest event)."""
    day = recorded_on(event)
    if facts is None:
        facts = CaseFacts(case_id=event.case_id, as_of=day)
    elif day > facts.as_of:
        facts = replace(facts, as_of=day)
    return _fold(facts, event)


#: The other reports the fold reads (every other report leaves the facts as they are).
_READ = frozenset({
    r.IncapacityReported, r.IncapacityInterrupted, r.IncapacityResumed, r.IncapacityEnded, r.IncapacityReviewed,
    r.PartialResumptionDeclared, r.PartialResumptionAuthorised, r.PartialResumptionEnded, r.PartialResumptionFailed,
    r.ReturnToWorkQuestionnaireSent, r.ReturnToWorkQuestionnaireReturned,
})


def _fold(facts: CaseFacts, event: CaseEvent) -> CaseFacts:
    report = event.report
    name = _LISTS.get(type(report))
    if name is not None:
        changes: dict[str, Any] = {name: (*getattr(facts, name), event)}
        return replace(facts, **changes)
    if type(report) not in _READ:
        return facts
    if isinstance(report, r.IncapacityReported):
        if facts.opening is not None:
            return facts
        return replace(facts, opening=event, timeline=IncapacityTimeline(start=report.start_date))
    if isinstance(report, (r.IncapacityInterrupted, r.IncapacityResumed, r.IncapacityEnded, r.IncapacityReviewed)):
        changed = _timeline(facts, report)
        if changed is facts:
            return facts
        return replace(changed, timeline_events=(*facts.timeline_events, event))
    if isinstance(report, r.PartialResumptionDeclared):
        return replace(facts, resumptions=(*facts.resumptions, Resumption(declared=event)))
    if isinstance(report, (r.PartialResumptionAuthorised, r.PartialResumptionEnded, r.PartialResumptionFailed)):
        return _resumption(facts, event, report)
    if isinstance(report, r.ReturnToWorkQuestionnaireSent):
        return replace(facts, questionnaires=(*facts.questionnaires, Questionnaire(sent=event)))
    if (isinstance(report, r.ReturnToWorkQuestionnaireReturned) and facts.questionnaires
            and facts.questionnaires[-1].returned is None):
        last = replace(facts.questionnaires[-1], returned=event)
        return replace(facts, questionnaires=(*facts.questionnaires[:-1], last))
    return facts


def _timeline(facts: CaseFacts, report: r.Report) -> CaseFacts:
    timeline = facts.timeline
    if timeline is None:
        return facts
    if isinstance(report, r.IncapacityInterrupted):
        gaps = (*timeline.interruptions, Interruption(returned_on=report.returned_on))
        timeline = replace(timeline, interruptions=gaps)
    elif isinstance(report, r.IncapacityResumed):
        if not timeline.interruptions or timeline.interruptions[-1].resumed_on is not None:
            return facts
        *done, last = timeline.interruptions
        resumed = replace(last, resumed_on=report.resumed_on)
        timeline = replace(timeline, interruptions=(*done, resumed))
    elif isinstance(report, r.IncapacityEnded):
        timeline = replace(timeline, ended_on=report.ended_on)
    elif isinstance(report, r.IncapacityReviewed):
        # as the Case does: a review that ends the incapacity ends it unless it already ended
        if report.outcome is not r.ReviewOutcome.INCAPACITY_ENDS or timeline.ended_on is not None:
            return facts
        timeline = replace(timeline, ended_on=report.reviewed_on)
    return replace(facts, timeline=timeline)


def _resumption(facts: CaseFacts, event: CaseEvent, report: r.Report) -> CaseFacts:
    if not facts.resumptions or not facts.resumptions[-1].active:
        return facts
    current = facts.resumptions[-1]
    if isinstance(report, r.PartialResumptionAuthorised):
        if current.authorised is not None:
            return facts
        current = replace(current, authorised=event)
    elif isinstance(report, r.PartialResumptionEnded):
        current = replace(current, ended=event)
    else:
        current = replace(current, failed=event)
    return replace(facts, resumptions=(*facts.resumptions[:-1], current))
