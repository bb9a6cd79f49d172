"""The case-history builder of the benefit tests with the facts of the 2026 law: the worker's national number,
seniority and kind of contract on the opening report, the daily benefit, appointments in person and the contact
with the advising physician; and national numbers for a chosen birth date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from shared.events import reports as r
from shared.events.envelope import CASE_EVENT_DECODER, CASE_EVENT_ENCODER, CaseEvent, case_id_for
from shared.rulebook.benefits import EntryKind, LedgerEntry, compute_ledger
from shared.rulebook.benefits_employer import birth_date
from shared.rulebook.model import Rulebook
from tests.unit.test_benefits_builder import EMPLOYER, FUND, OHS, RB, History

D = Decimal
SOLIDARITY = "employer.solidarity_contribution"
TNW_2026 = "return_to_work.missed_examination_reduction.2026"
NO_SHOW = "return_to_work.no_show_suspension"


def insz(born: date, serial: int = 33) -> str:
    """A valid national number for someone born on ``born`` (the check digits differ for the 2000s)."""
    first = f"{born:%y%m%d}{serial:03d}"
    base = int(("2" if born.year >= 2000 else "") + first)
    return f"{first}{97 - base % 97:02d}"


#: A worker born on 30 Jul 1985 (the builder's default national number).
BORN_1985 = "85073003328"
#: An unknown birth date (the fictitious 1900-00-01) and a bis number (month + 40).
UNKNOWN_BIRTH = "00000100195"
BIS_NUMBER = f"85473003{97 - 854730033 % 97:02d}"


@dataclass
class Case2026(History):
    """A history whose opening report carries the 2026 facts (seniority, contract, any national number)."""

    insz: str = BORN_1985
    employed_since: date | None = date(2020, 1, 1)
    contract: r.ContractKind | None = r.ContractKind.OPEN_ENDED

    def __post_init__(self) -> None:
        self.case_id = case_id_for(self.insz, EMPLOYER, self.start.isoformat(), FUND)
        self.add(
            r.IncapacityReported(
                report_id=self._rid(), insz=self.insz, enterprise_number=EMPLOYER, staff_count=self.staff,
                health_fund=FUND, occupational_health_service=OHS, start_date=self.start, cause=self.cause,
                employed_since=self.employed_since, contract_kind=self.contract,
            )
        )

    def benefit(self, applies_from: date, amount: str, at: date | None = None) -> CaseEvent:
        return self.add(r.DailyBenefitReported(
            report_id=self._rid(), case_id=self.case_id, applies_from=applies_from, daily_benefit=D(amount)), at=at)

    def no_show(self, on: date, physical: bool = True, justified: bool = False) -> CaseEvent:
        return self.add(r.ReturnToWorkExaminationMissed(
            report_id=self._rid(), case_id=self.case_id, missed_on=on, justified=justified,
            physical_appointment=physical))

    def contact(self, on: date) -> CaseEvent:
        return self.add(r.AdvisingPhysicianContacted(report_id=self._rid(), case_id=self.case_id, contacted_on=on))

    def ended(self, on: date) -> CaseEvent:
        return self.add(r.IncapacityEnded(report_id=self._rid(), case_id=self.case_id, ended_on=on))


def of(h: History, rule: str, rulebook: Rulebook = RB, kind: EntryKind | None = None) -> list[LedgerEntry]:
    """The entries of ``rule`` (exactly that id) in ``h``'s ledger."""
    return [e for e in compute_ledger(h.events, rulebook) if e.rule == rule and (kind is None or e.kind is kind)]


def test_national_numbers_for_a_birth_date_are_read_back() -> None:
    for born in (date(1971, 3, 2), date(2007, 12, 31), date(1985, 7, 30)):
        assert birth_date(insz(born)) == born
    assert insz(date(1985, 7, 30)) == BORN_1985
    assert birth_date(UNKNOWN_BIRTH) is None and birth_date(BIS_NUMBER) is None


def test_the_2026_reports_survive_the_wire() -> None:
    h = Case2026(start=date(2026, 1, 5), employed_since=date(2025, 12, 5), contract=r.ContractKind.FLEXI_JOB)
    h.benefit(date(2026, 2, 4), "62.50")
    h.no_show(date(2026, 3, 2))
    h.contact(date(2026, 3, 9))
    for event in h.events:
        assert CASE_EVENT_DECODER.decode(CASE_EVENT_ENCODER.encode(event)) == event
