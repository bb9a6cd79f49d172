"""Seeded, realistic case histories for the demo, the benchmarks and the fault tests.

Each :class:`Script` is one case: the reports in the order a health fund, occupational health service and employer
would send them, each with the reply the rules call for ("accepted" or a rejection code), so that a run can check
the system's answers as well as count them. Some scripts are deliberately wrong (an employer asking too early, an
advising physician asking after 1 Oct 2022, a plan before any assessment, a bad national number, an unknown field,
broken JSON, a report on another employer's case).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from shared.events import reports as r
from shared.events.common import HEALTH_FUNDS, Party, PartyKind
from shared.rulebook import default_rulebook
from shared.rulebook.calendar import add_months

#: Every generated date lies on or before this day.
LATEST = date(2026, 10, 31)

Build = Callable[[uuid.UUID], "r.Report | bytes"]


@dataclass
class Step:
    party: Party
    build: Build
    expect: str = "accepted"
    label: str = ""


@dataclass
class Script:
    kind: str
    opening: r.IncapacityReported
    opener: Party
    steps: list[Step] = field(default_factory=list)
    open_expect: str = "accepted"


def insz(rng: random.Random, born: date | None = None) -> str:
    """A valid Belgian national number (birth date, serial, mod-97 check)."""
    born = born or date(rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28))
    serial = rng.randint(1, 997)
    base = f"{born:%y%m%d}{serial:03d}"
    number = int(("2" + base) if born.year >= 2000 else base)
    return f"{base}{97 - number % 97:02d}"


def enterprise_number(rng: random.Random) -> str:
    """A valid Belgian enterprise number (0 + 7 digits + mod-97 check)."""
    base = int(f"0{rng.randint(2_000_000, 9_999_999)}")
    return f"{base:08d}{97 - base % 97:02d}"


def months_complete(start: date, months: int) -> date:
    """A day on which ``months`` calendar months from ``start`` are complete under either reading of a period that
    starts on a day its last month lacks (30 Nov + 3 months: 28 Feb clipped, or 1 Mar): a script meant to be
    accepted must not depend on which one the rules take."""
    return add_months(start, months) + timedelta(days=1)


def corrupt(number: str) -> str:
    """The same number with its last check digit changed: the mod-97 check must refuse it."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.employers = [(enterprise_number(rng), rng.choice([12, 45, 80, 250, 1200])) for _ in range(25)]
        self.services = [enterprise_number(rng) for _ in range(4)]
        self.funds = list(HEALTH_FUNDS)
        self.rulebook = default_rulebook()

    def uid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def day(self, start: date, end: date) -> date:
        end = min(end, LATEST)
        return start + timedelta(days=self.rng.randint(0, max(0, (end - start).days)))

    def opening(self, start: date, *, by_fund: bool | None = None) -> tuple[r.IncapacityReported, Party]:
        employer, staff = self.rng.choice(self.employers)
        fund = self.rng.choice(self.funds)
        report = r.IncapacityReported(
            report_id=self.uid(),
            insz=insz(self.rng),
            enterprise_number=employer,
            staff_count=staff,
            health_fund=fund,
            occupational_health_service=self.rng.choice(self.services),
            start_date=start,
            cause=self.rng.choices(list(r.Cause), weights=[90, 7, 3])[0],
            diagnosis=self.rng.choice(["burn-out", "lumbar hernia", "depression", "knee surgery", None]),
        )
        by_fund = self.rng.random() < 0.6 if by_fund is None else by_fund
        party = Party(kind=PartyKind.HEALTH_FUND, id=fund) if by_fund else Party(kind=PartyKind.EMPLOYER, id=employer)
        return report, party

    def parties(self, o: r.IncapacityReported) -> tuple[Party, Party, Party]:
        return (
            Party(kind=PartyKind.HEALTH_FUND, id=o.health_fund),
            Party(kind=PartyKind.OCCUPATIONAL_HEALTH_SERVICE, id=o.occupational_health_service),
            Party(kind=PartyKind.EMPLOYER, id=o.enterprise_number),
        )

    # --- scripts -------------------------------------------------------------------------------------------

    def script(self) -> Script:
        """One case's story, of a kind drawn by weight."""
        kinds = self.kinds()
        make = self.rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
        return make()

    def tour(self) -> list[Script]:
        """One story of every kind, the Terug Naar Werk one missed twice after 2022: the first cases of a small demo
        show every kind of story and every kind of ledger entry, whatever the draw."""
        return [self.return_to_work(twice=True) if make == self.return_to_work else make()
                for make, _ in self.kinds()]

    def scripts(self, cases: int, *, tour_first: bool = False) -> list[Script]:
        """`cases` stories drawn by weight; with `tour_first`, a tour of every kind comes first."""
        first = self.tour()[:cases] if tour_first else []
        return first + [self.script() for _ in range(cases - len(first))]

    def kinds(self) -> list[tuple[Callable[[], Script], int]]:
        return [
            (self.company_trajectory, 30),
            (self.definitive_with_appeal, 8),
            (self.partial_resumption, 12),
            (self.return_to_work_premium, 5),
            (self.return_to_work, 10),
            (self.rehabilitation, 6),
            (self.force_majeure, 6),
            (self.short_return_boundary, 4),
            (self.law_2026, 10),
            (self.invalid, 24),
        ]

    def company_trajectory(self) -> Script:
        start = self.day(date(2017, 1, 2), date(2025, 10, 1))
        o, opener = self.opening(start)
        fund, ohs, employer = self.parties(o)
        s = Script("company trajectory", o, opener)
        regime_on = self.rulebook.regime_on
        initiator = self.rng.choice(["worker", "employer", "advising_physician"])
        months = {"worker": 1, "employer": 5, "advising_physician": 3}[initiator]
        received = self.day(months_complete(start, months), add_months(start, months + 2))
        if initiator == "advising_physician" and regime_on(received).id != "BE-2016":  # type: ignore[union-attr]
            initiator = "employer"
        if initiator == "worker" and received < date(2017, 1, 1):
            received = date(2017, 1, 2)
        who = {"worker": ohs, "employer": employer, "advising_physician": fund}[initiator]
        s.steps.append(Step(who, lambda c: r.TrajectoryRequested(
            report_id=self.uid(), case_id=c, initiator=r.Initiator(initiator), received_on=received), label="request"))
        assessed = self.day(received + timedelta(days=5), received + timedelta(days=45))
        regime = regime_on(assessed)
        assert regime is not None
        code = self.rng.choice(list(regime.plan_codes)) if self.rng.random() < 0.8 else regime.decision_codes[-1]
        s.steps.append(Step(ohs, lambda c: r.AssessmentIssued(
            report_id=self.uid(), case_id=c, issued_on=assessed, regime=regime.id, decision=code,
            conditions="no lifting over 5 kg"), label="assessment"))
        end_day = assessed + timedelta(days=30)
        if code in regime.plan_codes:
            unfit = r.Unfitness(regime.plan_codes[code])
            submitted = self.day(assessed + timedelta(days=10), assessed + timedelta(days=60))
            if self.rng.random() < 0.85:
                s.steps.append(Step(employer, lambda c: r.PlanSubmitted(
                    report_id=self.uid(), case_id=c, submitted_on=submitted, unfitness=unfit,
                    measures=[r.PlanMeasure(kind="adapted_hours", description="mornings only")]), label="plan"))
                answered = submitted + timedelta(days=self.rng.randint(1, 13))
                answer = self.rng.choice(list(r.PlanAnswer))
                s.steps.append(Step(employer, lambda c: r.PlanAnswered(
                    report_id=self.uid(), case_id=c, answered_on=answered, answer=answer), label="answer"))
                end_day = answered + timedelta(days=1)
            else:
                s.steps.append(Step(employer, lambda c: r.ImpossibilityReportSubmitted(
                    report_id=self.uid(), case_id=c, submitted_on=submitted, unfitness=unfit,
                    motivation="no adapted work in a 12-person bakery"), label="no plan possible"))
                end_day = submitted + timedelta(days=1)
        if end_day <= LATEST:
            s.steps.append(Step(employer, lambda c: r.TrajectoryEnded(
                report_id=self.uid(), case_id=c, ended_on=end_day, reason="plan_finished"), label="end"))
        return s

    def definitive_with_appeal(self) -> Script:
        start = self.day(date(2022, 10, 1), date(2025, 12, 1))
        o, opener = self.opening(start)
        _fund, ohs, employer = self.parties(o)
        s = Script("definitive unfitness, appeal", o, opener)
        certified = start + timedelta(days=self.rng.randint(10, 40))
        s.steps.append(Step(employer, lambda c: r.DefinitiveUnfitnessCertified(
            report_id=self.uid(), case_id=c, certified_on=certified), label="certificate"))
        received = certified + timedelta(days=3)  # early, allowed by the certificate
        s.steps.append(Step(employer, lambda c: r.TrajectoryRequested(
            report_id=self.uid(), case_id=c, initiator=r.Initiator.EMPLOYER, received_on=received),
            label="early request"))
        assessed = received + timedelta(days=self.rng.randint(10, 48))
        regime = self.rulebook.regime_on(assessed)
        assert regime is not None
        s.steps.append(Step(ohs, lambda c: r.AssessmentIssued(
            report_id=self.uid(), case_id=c, issued_on=assessed, regime=regime.id, decision="B"), label="assessment B"))
        lodged = assessed + timedelta(days=self.rng.randint(2, 20))
        s.steps.append(Step(ohs, lambda c: r.AppealLodged(report_id=self.uid(), case_id=c, lodged_on=lodged),
                            label="appeal"))
        s.steps.append(Step(employer, lambda c: r.PlanSubmitted(
            report_id=self.uid(), case_id=c, submitted_on=lodged + timedelta(days=1), unfitness=r.Unfitness.DEFINITIVE,
            measures=[r.PlanMeasure(kind="other_job")]), expect="invalid_state", label="plan during appeal"))
        decided = lodged + timedelta(days=self.rng.randint(10, 40))
        s.steps.append(Step(ohs, lambda c: r.AppealDecided(
            report_id=self.uid(), case_id=c, decided_on=decided, assessment_upheld=True), label="appeal decided"))
        s.steps.append(Step(employer, lambda c: r.PlanSubmitted(
            report_id=self.uid(), case_id=c, submitted_on=decided + timedelta(days=30),
            unfitness=r.Unfitness.DEFINITIVE,
            measures=[r.PlanMeasure(kind="other_job", description="warehouse planning")]), label="plan"))
        return s

    def partial_resumption(self) -> Script:
        start = self.day(date(2019, 1, 1), date(2025, 3, 1))
        o, opener = self.opening(start, by_fund=True)
        fund, _, _ = self.parties(o)
        s = Script("partial resumption", o, opener)
        starts = start + timedelta(days=self.rng.randint(60, 200))
        declared = starts - timedelta(days=self.rng.randint(1, 5))
        hours = Decimal(self.rng.choice([10, 19, 24, 30]))
        s.steps.append(Step(fund, lambda c: r.PartialResumptionDeclared(
            report_id=self.uid(), case_id=c, declared_on=declared, starts_on=starts, weekly_hours=hours,
            full_time_hours=Decimal(38)), label="declared"))
        s.steps.append(Step(fund, lambda c: r.PartialResumptionAuthorised(
            report_id=self.uid(), case_id=c, authorised_on=starts + timedelta(days=self.rng.randint(3, 25))),
            label="authorised"))
        last = starts + timedelta(days=self.rng.randint(60, 300))
        if self.rng.random() < 0.3:
            s.steps.append(Step(fund, lambda c: r.PartialResumptionFailed(
                report_id=self.uid(), case_id=c, failed_on=last), label="failed"))
        else:
            s.steps.append(Step(fund, lambda c: r.PartialResumptionEnded(
                report_id=self.uid(), case_id=c, ended_on=last), label="ended"))
        return s

    def return_to_work_premium(self) -> Script:
        """A partial resumption after more than a year of incapacity, started from 1 Apr 2023 to 31 Mar 2025 and
        worked for at least three months: the employer's return-to-work premium. Some are declared late (within
        the 14 days the -10% covers), so the demo also shows that reduction."""
        start = self.day(date(2022, 1, 3), date(2024, 1, 31))
        o, opener = self.opening(start, by_fund=True)
        fund, _, _ = self.parties(o)
        s = Script("return-to-work premium", o, opener)
        earliest = max(months_complete(start, 12), date(2023, 4, 1))
        starts = min(earliest + timedelta(days=self.rng.randint(0, 60)), date(2025, 3, 31))
        late = self.rng.random() < 0.3
        declared = starts + timedelta(days=self.rng.randint(1, 10)) if late else starts - timedelta(
            days=self.rng.randint(3, 10))
        hours = Decimal(self.rng.choice([10, 19, 24]))
        s.steps.append(Step(fund, lambda c: r.PartialResumptionDeclared(
            report_id=self.uid(), case_id=c, declared_on=declared, starts_on=starts, weekly_hours=hours,
            full_time_hours=Decimal(38)), label="declared late" if late else "declared"))
        authorised = max(starts, declared) + timedelta(days=self.rng.randint(3, 25))
        s.steps.append(Step(fund, lambda c: r.PartialResumptionAuthorised(
            report_id=self.uid(), case_id=c, authorised_on=authorised), label="authorised"))
        if self.rng.random() < 0.6:  # ended after the three months; otherwise still running
            ended = months_complete(starts, 3) + timedelta(days=self.rng.randint(0, 119))
            s.steps.append(Step(fund, lambda c: r.PartialResumptionEnded(
                report_id=self.uid(), case_id=c, ended_on=ended), label="ended"))
        return s

    def return_to_work(self, *, twice: bool = False) -> Script:
        """The health fund's questionnaire, returned or not; a missed examination, sometimes two (`twice` always,
        with an incapacity from 2023 to mid-2025, so the -2.5 % reduction applies)."""
        start = self.day(date(2023, 1, 2), date(2025, 6, 1)) if twice else self.day(date(2022, 1, 3), date(2026, 6, 1))
        o, opener = self.opening(start, by_fund=True)
        fund, _, _ = self.parties(o)
        s = Script("Terug Naar Werk", o, opener)
        sent = start + timedelta(weeks=9, days=self.rng.randint(0, 6))
        s.steps.append(Step(fund, lambda c: r.ReturnToWorkQuestionnaireSent(
            report_id=self.uid(), case_id=c, sent_on=sent)))
        if not twice and self.rng.random() < 0.4:
            s.steps.append(Step(fund, lambda c: r.ReturnToWorkQuestionnaireReturned(
                report_id=self.uid(), case_id=c, returned_on=sent + timedelta(days=self.rng.randint(2, 20)))))
            return s
        missed = sent + timedelta(days=30)
        s.steps.append(Step(fund, lambda c: r.ReturnToWorkExaminationMissed(
            report_id=self.uid(), case_id=c, missed_on=missed, justified=False), label="missed examination"))
        again = missed + timedelta(days=self.rng.randint(14, 45))
        if (twice or self.rng.random() < 0.6) and again <= LATEST:
            # A second unjustified miss: -2.5 % for one month when the incapacity started from 1 Jan 2023.
            s.kind = "Terug Naar Werk, missed twice"
            s.steps.append(Step(fund, lambda c: r.ReturnToWorkExaminationMissed(
                report_id=self.uid(), case_id=c, missed_on=again, justified=False), label="second missed examination"))
        return s

    def rehabilitation(self) -> Script:
        start = self.day(date(2018, 1, 1), date(2024, 1, 1))
        o, opener = self.opening(start, by_fund=True)
        fund, _, _ = self.parties(o)
        s = Script("vocational rehabilitation", o, opener)
        proposed = start + timedelta(days=self.rng.randint(200, 400))
        approved = proposed + timedelta(days=self.rng.randint(20, 60))
        s.steps.append(Step(fund, lambda c: r.VocationalRehabilitationProposed(
            report_id=self.uid(), case_id=c, proposed_on=proposed, project="bookkeeping course")))
        s.steps.append(Step(fund, lambda c: r.VocationalRehabilitationApproved(
            report_id=self.uid(), case_id=c, approved_on=approved)))
        for month in range(1, 4):
            first = approved + timedelta(days=30 * month)
            s.steps.append(Step(fund, lambda c, first=first: r.TrainingHoursAttended(
                report_id=self.uid(), case_id=c, period_start=first, period_end=first + timedelta(days=27),
                hours=r.TrainingHours(self.rng.randint(20, 80)))))
            if self.rng.random() < 0.5:  # costs the health fund reimburses as reported, in cents
                cost_kind = self.rng.choice(list(r.CostKind))
                cost = Decimal(self.rng.randint(1_500, 40_000)) / 100
                s.steps.append(Step(
                    fund, lambda c, first=first, kind=cost_kind, cost=cost: r.RehabilitationCostsReported(
                        report_id=self.uid(), case_id=c, incurred_on=first, cost_kind=kind, amount=cost),
                    label="costs"))
        done = approved + timedelta(days=130)
        s.steps.append(Step(fund, lambda c: r.TrainingCompleted(
            report_id=self.uid(), case_id=c, completed_on=done, successful=True)))
        s.steps.append(Step(fund, lambda c: r.JobSearchStarted(
            report_id=self.uid(), case_id=c, started_on=done + timedelta(days=3))))
        return s

    def force_majeure(self) -> Script:
        start = self.day(date(2022, 6, 1), date(2025, 6, 1))
        o, opener = self.opening(start)
        _, ohs, employer = self.parties(o)
        s = Script("medical force majeure", o, opener)
        letter = max(months_complete(start, 9) + timedelta(days=self.rng.randint(0, 60)), date(2022, 11, 28))
        s.steps.append(Step(employer, lambda c: r.MedicalForceMajeureStarted(
            report_id=self.uid(), case_id=c, letter_sent_on=letter)))
        s.steps.append(Step(ohs, lambda c: r.MedicalForceMajeureDecided(
            report_id=self.uid(), case_id=c, decided_on=letter + timedelta(days=5), definitively_unfit=True),
            expect="not_eligible", label="decision before the 10-day invitation"))
        decided = letter + timedelta(days=self.rng.randint(15, 80))
        s.steps.append(Step(ohs, lambda c: r.MedicalForceMajeureDecided(
            report_id=self.uid(), case_id=c, decided_on=decided, definitively_unfit=True)))
        s.steps.append(Step(employer, lambda c: r.ContractTerminated(
            report_id=self.uid(), case_id=c, terminated_on=decided + timedelta(days=1),
            reason="medical_force_majeure")))
        return s

    def law_2026(self) -> Script:
        """An incapacity under the 2026 law: the worker's seniority and contract on the opening, the daily benefit
        from day 31, the work-potential estimate at about 8 weeks, and then a trajectory request (a duty within 6
        months for an employer of 20 or more where the estimate found work potential), a missed appointment in
        person and the contact that ends its suspension, or a termination by mutual agreement on medical grounds."""
        start = self.day(date(2026, 1, 1), date(2026, 5, 1))
        o, opener = self.opening(start)
        o = msgspec.structs.replace(
            o, employed_since=start - timedelta(days=self.rng.choice([10, 200, 3000])),
            contract_kind=self.rng.choices(list(r.ContractKind), weights=[70, 15, 5, 3, 3, 2, 2])[0])
        fund, ohs, employer = self.parties(o)
        s = Script("2026 law", o, opener)
        day31 = start + timedelta(days=30)
        benefit = Decimal(self.rng.randint(4500, 9800)) / 100
        s.steps.append(Step(fund, lambda c: r.DailyBenefitReported(
            report_id=self.uid(), case_id=c, applies_from=day31, daily_benefit=benefit), label="daily benefit"))
        estimated = start + timedelta(weeks=8, days=self.rng.randint(0, 10))
        potential = self.rng.random() < 0.7
        s.steps.append(Step(ohs, lambda c: r.WorkPotentialEstimated(
            report_id=self.uid(), case_id=c, estimated_on=estimated, work_potential=potential),
            label="work-potential estimate"))
        what = self.rng.randrange(3)
        if what == 0 and potential:
            s.kind = "2026 law, trajectory requested"
            asked = estimated + timedelta(days=self.rng.randint(5, 100))
            s.steps.append(Step(employer, lambda c: r.TrajectoryRequested(
                report_id=self.uid(), case_id=c, initiator=r.Initiator.EMPLOYER, received_on=asked,
                worker_consent=True), label="request with consent"))
        elif what == 1:
            s.kind = "2026 law, missed appointment"
            missed = estimated + timedelta(days=self.rng.randint(3, 30))
            s.steps.append(Step(fund, lambda c: r.ReturnToWorkExaminationMissed(
                report_id=self.uid(), case_id=c, missed_on=missed, justified=False, physical_appointment=True),
                label="missed appointment in person"))
            if self.rng.random() < 0.7:
                s.steps.append(Step(fund, lambda c: r.AdvisingPhysicianContacted(
                    report_id=self.uid(), case_id=c, contacted_on=missed + timedelta(days=self.rng.randint(2, 20))),
                    label="contact"))
        elif not potential:
            s.kind = "2026 law, mutual agreement"
            s.steps.append(Step(employer, lambda c: r.ContractTerminated(
                report_id=self.uid(), case_id=c, terminated_on=estimated + timedelta(days=self.rng.randint(20, 60)),
                reason="mutual_agreement_medical"), label="mutual agreement"))
        return s

    def short_return_boundary(self) -> Script:
        """A return of 13 days does not interrupt the 3 months (BE-2022); one of 14 days does."""
        start = self.day(date(2023, 1, 2), date(2025, 12, 1))
        o, opener = self.opening(start, by_fund=False)
        _, _, employer = self.parties(o)
        length = self.rng.choice([13, 14])
        back = start + timedelta(days=30)
        s = Script(f"return of {length} days", o, opener)
        s.steps.append(Step(employer, lambda c: r.IncapacityInterrupted(
            report_id=self.uid(), case_id=c, returned_on=back)))
        s.steps.append(Step(employer, lambda c: r.IncapacityResumed(
            report_id=self.uid(), case_id=c, resumed_on=back + timedelta(days=length))))
        on = months_complete(start, 3)
        s.steps.append(Step(employer, lambda c: r.TrajectoryRequested(
            report_id=self.uid(), case_id=c, initiator=r.Initiator.EMPLOYER, received_on=on),
            expect="accepted" if length == 13 else "not_eligible",
            label=f"employer request after a {length}-day return"))
        return s

    def invalid(self) -> Script:
        start = self.day(date(2020, 1, 1), date(2026, 1, 1))
        o, opener = self.opening(start, by_fund=False)
        fund, ohs, employer = self.parties(o)
        choice = self.rng.randrange(8)
        s = Script("invalid report", o, opener)
        if choice == 0:
            early = max(add_months(start, 2), date(2022, 10, 3))
            s.kind = "employer request too early"
            s.steps.append(Step(employer, lambda c: r.TrajectoryRequested(
                report_id=self.uid(), case_id=c, initiator=r.Initiator.EMPLOYER,
                received_on=min(early, add_months(start, 2))), expect="not_eligible"))
        elif choice == 1:
            s.kind = "advising physician request after 1 Oct 2022"
            s.opening = msgspec.structs.replace(o, start_date=self.day(date(2022, 10, 1), date(2025, 1, 1)))
            day = add_months(s.opening.start_date, 3)
            s.steps.append(Step(fund, lambda c: r.TrajectoryRequested(
                report_id=self.uid(), case_id=c, initiator=r.Initiator.ADVISING_PHYSICIAN, received_on=day),
                expect="not_eligible"))
        elif choice == 2:
            s.kind = "plan before any assessment"
            s.steps.append(Step(employer, lambda c: r.PlanSubmitted(
                report_id=self.uid(), case_id=c, submitted_on=start + timedelta(days=40),
                unfitness=r.Unfitness.TEMPORARY, measures=[r.PlanMeasure(kind="adapted_hours")]),
                expect="invalid_state"))
        elif choice == 3:
            s.kind = "bad national number"
            s.opening = msgspec.structs.replace(o, insz=corrupt(o.insz))
            s.open_expect = "invalid_identifier"
        elif choice == 4:
            s.kind = "unknown field"
            s.steps.append(Step(employer, lambda c: _with_extra(r.IncapacityInterrupted(
                report_id=self.uid(), case_id=c, returned_on=start + timedelta(days=20)), "mood", "fine"),
                expect="invalid_field"))
        elif choice == 5:
            s.kind = "malformed JSON"
            s.steps.append(Step(employer, lambda c: b'{"type": "incapacity_ended.v1", "case_id": ', expect="malformed"))
        elif choice == 6:
            s.kind = "report on another employer's case"
            other = next(e for e, _ in self.employers if e != o.enterprise_number)
            s.steps.append(Step(Party(kind=PartyKind.EMPLOYER, id=other), lambda c: r.IncapacityInterrupted(
                report_id=self.uid(), case_id=c, returned_on=start + timedelta(days=20)),
                expect="case_not_found"))
        else:
            s.kind = "assessment coded under the wrong regime"
            s.opening = msgspec.structs.replace(o, start_date=self.day(date(2023, 1, 2), date(2025, 12, 1)))
            st = s.opening.start_date
            s.steps.append(Step(ohs, lambda c: r.TrajectoryRequested(
                report_id=self.uid(), case_id=c, initiator=r.Initiator.WORKER, received_on=st + timedelta(days=20))))
            s.steps.append(Step(ohs, lambda c: r.AssessmentIssued(
                report_id=self.uid(), case_id=c, issued_on=st + timedelta(days=40), regime="BE-2016", decision="D"),
                expect="not_eligible"))
        return s


def _with_extra(report: r.Report, key: str, value: Any) -> bytes:
    data = msgspec.to_builtins(report)
    data[key] = value
    return msgspec.json.encode(data)


def encode_report(report: r.Report | bytes) -> bytes:
    return report if isinstance(report, bytes) else msgspec.json.encode(report)
