"""The rule kinds of benefit adjustments and premiums, and how the version in force on a day is found.

Every figure lives in ``be-benefits.toml``; these classes only say what a rule of each kind holds. Amounts and
percentages are written as TOML strings (``"1725.00"``, ``"2.5"``) so that they are read as exact decimals, never
through a binary float. A percentage is a percent value: ``"2.5"`` means 2.5 %.

Several versions of one rule may live in one regime under different ids (the return-to-work premium is 1,000 EUR
from 1 Apr 2023 and 1,725 EUR from 1 Jan 2024, both in BE-2022), so a version is found by *kind*:
:func:`find_rule` takes the regime in force on the day (falling back to the regime it inherits, as
``Rulebook.rule_on`` does), and among that regime's rules of the kind the one with the latest ``applies_from`` not
after the day. When none of the regime's own rules of the kind has started yet on the day, the inherited regime's
version still applies (BE-2026 keeps the 2022 figures until its own version starts: the 10% Terug Naar Werk
reduction from 1 Mar 2026 leaves the 2.5% in force for January and February). A rule of status A (announced, never
enacted) is applied only where the deployment lists its id.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TypeVar

from .model import Regime, RuleBase, Rulebook, Status, inherited_status, rule_kind


class Payee(enum.StrEnum):
    """Who pays or receives an entry."""

    WORKER = "worker"
    EMPLOYER = "employer"
    HEALTH_FUND = "health_fund"
    RETURN_TO_WORK_FUND = "return_to_work_fund"
    RIZIV = "riziv"
    #: The National Social Security Office (RSZ/ONSS), which collects the responsibility contribution.
    NSSO = "nsso"


class BenefitRule(RuleBase, frozen=True, kw_only=True):
    """Fields every benefit rule has (not a kind itself: the kinds below subclass it)."""

    payer: Payee
    beneficiary: Payee
    #: Last day (inclusive) of the step that the rule still covers; ``None``: open-ended.
    until: date | None = None
    #: Set on a kind's earliest version: facts before it were governed by a rule this rulebook does not carry,
    #: so they get a notice instead of silence.
    earlier_law_not_carried: bool = False


@rule_kind
class ResumptionReduction(BenefitRule, frozen=True, kw_only=True, tag="resumption_reduction"):
    """Benefit reduction while working: max(0, weekly hours / full-time hours - exempt share)."""

    exempt_percentage: Decimal
    base: str


@rule_kind
class LateDeclarationReduction(BenefitRule, frozen=True, kw_only=True, tag="late_declaration_reduction"):
    """Reduction when the resumption is declared after the working day before it starts, but within a window."""

    percentage: Decimal
    base: str
    #: Calendar days after the start within which a late declaration is still sanctioned by this rule only.
    late_window_days: int
    #: Whether the day the declaration arrives is still reduced.
    includes_declaration_day: bool = True


@rule_kind
class BenefitRestoration(BenefitRule, frozen=True, kw_only=True, tag="benefit_restoration"):
    """The full benefit returns when an authorised resumption fails."""

    base: str


@rule_kind
class GuaranteedWageExemption(BenefitRule, frozen=True, kw_only=True, tag="guaranteed_wage_exemption"):
    """No guaranteed wage on a relapse within ``weeks`` after the first authorisation (0: never exempt), or, with
    ``whole_resumption``, on any relapse during the authorised partial resumption (no week limit)."""

    weeks: int = 0
    whole_resumption: bool = False
    base: str


@rule_kind
class MissedExaminationReduction(BenefitRule, frozen=True, kw_only=True, tag="missed_examination_reduction"):
    """Terug Naar Werk: reduction for the ``nth`` unjustified missed examination or invitation, for
    ``duration_months`` or, with ``until_contact``, until the day before the worker contacts the advising physician
    (open-ended until then)."""

    percentage: Decimal
    base: str
    nth: int
    #: Whether every further unjustified miss after the ``nth`` is reduced again.
    repeat: bool = False
    duration_months: int | None = None
    until_contact: bool = False
    #: Only for incapacities that started on or after this day.
    incapacity_from: date | None = None

    def __post_init__(self) -> None:
        if (self.duration_months is None) == (not self.until_contact):
            raise ValueError(f"{self.id}: give either duration_months or until_contact = true")


@rule_kind
class NoShowSuspension(BenefitRule, frozen=True, kw_only=True, tag="no_show_suspension"):
    """An unjustified no-show at an appointment in person with the advising physician suspends ``percentage`` of
    the benefit from the appointment until the day before the worker's next contact (open-ended until then). Such a
    miss gets no :class:`MissedExaminationReduction` besides (it still counts among the unjustified misses)."""

    percentage: Decimal
    base: str


@rule_kind
class RelapseWindow(BenefitRule, frozen=True, kw_only=True, tag="relapse_window"):
    """A new incapacity that starts within ``days`` days after the last day of the previous one (so: a return to
    work of fewer than ``days`` days) continues it: the same primary incapacity (chosen by the new start)."""

    days: int
    #: How the window is read (documentation; listed in ``uncertain`` where the counting is not known).
    counting: str


@rule_kind
class SolidarityContribution(BenefitRule, frozen=True, kw_only=True, tag="solidarity_contribution"):
    """The employer's contribution of ``percentage`` of the sickness benefit of each indemnified day from day
    ``from_day`` of the primary incapacity for ``window_months`` calendar months (chosen by the incapacity's start)."""

    percentage: Decimal
    base: str
    min_staff: int
    #: Age in whole years on the first day of the incapacity, both bounds included.
    min_age: int
    max_age: int
    #: Months of employment with the employer complete on the first day of the incapacity.
    min_employment_months: int
    #: ``IncapacityReported.contract_kind`` values left out.
    excluded_contracts: tuple[str, ...]
    #: Days of authorised partial resumption in the window are not counted.
    excludes_partial_resumption: bool = True
    from_day: int
    window_months: int
    #: ISO weekdays (1 Monday ... 7 Sunday) the benefit is paid for (the six-day week: 1-6).
    indemnified_weekdays: tuple[int, ...]


@rule_kind
class ReturnToWorkPremium(BenefitRule, frozen=True, kw_only=True, tag="return_to_work_premium"):
    """The employer's premium for an authorised resumption after a long incapacity (chosen by the start)."""

    amount: Decimal
    min_incapacity_months: int
    min_work_months: int
    #: A full return to work shorter than this does not interrupt the incapacity counted for the minimum.
    return_tolerance_days: int = 0


@rule_kind
class RehabilitationHourlyPremium(BenefitRule, frozen=True, kw_only=True, tag="rehabilitation_hourly_premium"):
    amount_per_hour: Decimal


@rule_kind
class RehabilitationCompletionPremium(BenefitRule, frozen=True, kw_only=True, tag="rehabilitation_completion_premium"):
    amount: Decimal


@rule_kind
class RehabilitationCosts(BenefitRule, frozen=True, kw_only=True, tag="rehabilitation_costs"):
    """Costs reimbursed as reported, for the listed kinds of cost."""

    cost_kinds: tuple[str, ...]


@rule_kind
class RehabilitationExclusion(BenefitRule, frozen=True, kw_only=True, tag="rehabilitation_exclusion"):
    """Rehabilitation premiums and costs are not paid for incapacities with one of these causes (when ``applies``)."""

    applies: bool = True
    excluded_causes: tuple[str, ...]


@rule_kind
class ForceMajeureContribution(BenefitRule, frozen=True, kw_only=True, tag="force_majeure_contribution"):
    """The employer's contribution when it terminates the contract for medical force majeure."""

    amount: Decimal
    #: ``ContractTerminated.reason`` codes that mean the employer invoked medical force majeure.
    termination_reasons: tuple[str, ...]
    #: Whether a decision of definitive unfitness (force-majeure procedure) must be on the case.
    requires_definitive_decision: bool = True
    #: ``ContractTerminated.reason`` codes of a termination by mutual agreement on medical grounds: the contribution
    #: is due on them too.
    mutual_agreement_reasons: tuple[str, ...] = ()
    #: Whether such a mutual agreement needs the decision of definitive unfitness as well.
    mutual_agreement_needs_decision: bool = False


@rule_kind
class ResponsibilityContributionRule(BenefitRule, frozen=True, kw_only=True, tag="responsibility_contribution"):
    """Employer-level quarterly contribution for an excessive inflow into invalidity."""

    percentage: Decimal
    min_staff: int
    min_invalidity_entries: int
    sector_factor: Decimal
    private_sector_factor: Decimal
    #: Only workers whose incapacity started on or before this day count: later incapacities fall under the
    #: solidarity contribution instead (the invalidity entries and inflow must be counted so).
    incapacity_until: date | None = None


@rule_kind
class AnnouncedEmployerFine(BenefitRule, frozen=True, kw_only=True, tag="announced_employer_fine"):
    """Fine per worker for an employer that does not cooperate (seed material; status A)."""

    amount: Decimal
    min_staff: int
    #: ``TrajectoryEnded.reason`` codes that record the employer's non-cooperation.
    trigger_reasons: tuple[str, ...]


class WorkerTrigger(enum.StrEnum):
    QUESTIONNAIRE_NOT_RETURNED = "questionnaire_not_returned"
    EXAMINATION_MISSED = "examination_missed"


@rule_kind
class AnnouncedWorkerReduction(BenefitRule, frozen=True, kw_only=True, tag="announced_worker_reduction"):
    """Benefit reduction for a worker who does not cooperate (seed material; status A)."""

    trigger: WorkerTrigger
    percentage: Decimal
    base: str
    duration_months: int
    #: For ``questionnaire_not_returned``: days after sending within which the questionnaire must come back.
    grace_days: int = 0
    #: For ``examination_missed``: the first unjustified miss reduced, and whether later ones are too.
    nth: int = 1
    repeat: bool = True


R = TypeVar("R", bound=BenefitRule)


@dataclass(frozen=True)
class Found:
    """The version of a rule of some kind in force on a day."""

    rule: BenefitRule
    #: The regime in force on the day.
    regime: Regime
    #: The regime that defines the rule (differs from ``regime`` when inherited).
    defined_in: str
    #: The day is after the rule's ``until``: the rule no longer covers it.
    expired: bool = False

    @property
    def label(self) -> str:
        """``BE-2026 (rule of BE-2022)`` or ``BE-2022``."""
        if self.defined_in != self.regime.id:
            return f"{self.regime.id} (rule of {self.defined_in})"
        return self.regime.id

    def status(self, *used: str) -> Status:
        """The rule's status, lowered to U when an uncertain parameter among ``used`` decided the entry, when the
        rule's start is uncertain (every entry of the rule rests on it being in force), or when an uncertain
        regime merely inherits the rule (BE-2026: "as 2022")."""
        inherited = self.defined_in if self.defined_in != self.regime.id else None
        status = inherited_status(self.rule.status, self.regime, inherited)
        if status is Status.CONFIRMED and (
                self.rule.start_uncertain or any(name in self.rule.uncertain for name in used)):
            return Status.UNCERTAIN
        return status


def find_rule(
    rulebook: Rulebook, kind: type[R], day: date, *, where: Callable[[R], bool] | None = None
) -> Found | None:
    """The version of the rule of ``kind`` in force on ``day``, or ``None`` when none is (yet).

    Remembered per rulebook (the answer depends on the rulebook, the kind, the day and ``where`` only), so pass a
    ``where`` defined once, not a new function on every call."""
    return rulebook.derived(_Finder).find(kind, day, where)


class _Finder:
    """:func:`find_rule` over one rulebook, remembering its latest answers."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook
        self.find = functools.lru_cache(maxsize=1 << 14)(self._find)

    def _find(self, kind: type[R], day: date, where: Callable[[R], bool] | None) -> Found | None:
        return _find_rule(self.rulebook, kind, day, where)


def _find_rule(rulebook: Rulebook, kind: type[R], day: date, where: Callable[[R], bool] | None) -> Found | None:
    regime = rulebook.regime_on(day)
    current: Regime | None = regime
    while current is not None and regime is not None:
        own = [r for r in _of_kind(rulebook, kind, where) if r.regime == current.id]
        started = [r for r in own if r.applies_from is None or r.applies_from <= day]
        if started:
            latest = max(r.applies_from or date.min for r in started)
            chosen = [r for r in started if (r.applies_from or date.min) == latest]
            if len(chosen) > 1:
                names = ", ".join(r.id for r in chosen)
                raise ValueError(f"{current.id}: rules {names} of one kind start the same day")
            rule = chosen[0]
            expired = rule.until is not None and day > rule.until
            return Found(rule=rule, regime=regime, defined_in=current.id, expired=expired)
        current = rulebook.regime(current.inherits) if current.inherits else None
    return None


def first_version(
    rulebook: Rulebook, kind: type[R], *, where: Callable[[R], bool] | None = None
) -> tuple[BenefitRule, date] | None:
    """The earliest version of a kind and the day it starts (its ``applies_from`` or its regime's start)."""
    dated = [(r.applies_from or rulebook.regime(r.regime).valid_from, r) for r in _of_kind(rulebook, kind, where)]
    if not dated:
        return None
    start, rule = min(dated, key=lambda pair: (pair[0], pair[1].id))
    return rule, start


def not_carried(
    rulebook: Rulebook, kind: type[R], day: date, *, where: Callable[[R], bool] | None = None
) -> tuple[BenefitRule, date] | None:
    """The earliest version and its start, when ``day`` precedes it and earlier law is flagged as not carried."""
    first = first_version(rulebook, kind, where=where)
    if first is None or day >= first[1] or not first[0].earlier_law_not_carried:
        return None
    return first


def enabled(rule: BenefitRule, enabled_announced: frozenset[str]) -> bool:
    """Whether the deployment applies ``rule``: always, unless it is announced (A) and not switched on."""
    return rule.status is not Status.ANNOUNCED or rule.id in enabled_announced


def _of_kind(rulebook: Rulebook, kind: type[R], where: Callable[[R], bool] | None) -> list[R]:
    return [r for r in rulebook.rules(kind) if isinstance(r, kind) and (where is None or where(r))]
