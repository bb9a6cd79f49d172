"""The employer's side: the force-majeure contribution to the Terug Naar Werk fund, the announced non-cooperation
fine (status A), and the employer responsibility contribution (an employer-level computation, not per case).

"Invoking medical force majeure" is read as the employer's termination of the contract for that reason: a
``ContractTerminated`` whose reason is one of the rule's ``termination_reasons`` (``medical_force_majeure``), dated
on or after the rule's start, with (when the rule requires it) a force-majeure decision of definitive unfitness
reported on the case on or before the termination. Public sources tie the 1,800 EUR to terminations from
1 Apr 2024 on the employer's initiative, whoever started the procedure; a termination by mutual agreement or by
the worker should be reported with another reason code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal, localcontext
from typing import Any

import msgspec

from shared.events import reports as r

from .benefits_base import Ctx, entry
from .benefits_ledger import DECIMAL_CONTEXT, EntryKind, LedgerEntry, cents, show_euro, show_percent
from .benefits_rules import AnnouncedEmployerFine, ForceMajeureContribution, ResponsibilityContributionRule, find_rule
from .model import Rulebook, Status


def employer_entries(ctx: Ctx) -> Iterator[LedgerEntry]:
    yield from _force_majeure(ctx)
    yield from _non_cooperation(ctx)


def _force_majeure(ctx: Ctx) -> Iterator[LedgerEntry]:
    for event in ctx.facts.terminations:
        report = event.report
        assert isinstance(report, r.ContractTerminated)
        found = ctx.rule(ForceMajeureContribution, report.terminated_on)
        if found is None:
            continue
        rule = found.rule
        assert isinstance(rule, ForceMajeureContribution)
        if report.reason not in rule.termination_reasons:
            continue
        decisions = [
            d for d in ctx.facts.force_majeure_decisions
            if isinstance(d.report, r.MedicalForceMajeureDecided)
            and d.report.definitively_unfit and d.report.decided_on <= report.terminated_on
        ]
        decision = max(decisions, key=lambda d: (d.report.effective_date, d.version)) if decisions else None
        if rule.requires_definitive_decision and decision is None:
            continue
        amount = cents(rule.amount)
        after = f" after the decision of definitive unfitness of {decision.report.effective_date.isoformat()}" if (
            decision is not None) else ""
        yield entry(
            ctx, found, kind=EntryKind.CONTRIBUTION, period_start=report.terminated_on,
            period_end=report.terminated_on, amount=amount, causing=(decision, event), concerns_employer=True,
            explanation=(
                f"The employer terminated the contract for medical force majeure on "
                f"{report.terminated_on.isoformat()}{after}: it pays {show_euro(amount)} to the Terug Naar Werk fund"
            ),
        )


def _non_cooperation(ctx: Ctx) -> Iterator[LedgerEntry]:
    incapacity = ctx.facts.incapacity
    for event in ctx.facts.trajectory_ends:
        report = event.report
        assert isinstance(report, r.TrajectoryEnded)
        found = ctx.rule(AnnouncedEmployerFine, report.ended_on)
        if found is None or incapacity is None:
            continue
        rule = found.rule
        assert isinstance(rule, AnnouncedEmployerFine)
        if report.reason not in rule.trigger_reasons or incapacity.staff_count < rule.min_staff:
            continue
        amount = cents(rule.amount)
        yield entry(
            ctx, found, kind=EntryKind.FINE, period_start=report.ended_on, period_end=report.ended_on, amount=amount,
            causing=(ctx.facts.opening, event), concerns_employer=True,
            explanation=(
                f"Announced sanction, never enacted, applied because this deployment enables it: the trajectory "
                f"ended on {report.ended_on.isoformat()} for the employer's non-cooperation ({incapacity.staff_count} "
                f"staff, at least {rule.min_staff}), a fine of {show_euro(amount)} for this worker"
            ),
        )


# --- the employer responsibility contribution ---------------------------------------------------------------


class ResponsibilityInput(msgspec.Struct, frozen=True, kw_only=True):
    """One employer's figures for one quarter, as the NSSO computes them."""

    enterprise_number: str
    year: int
    #: The quarter Q the contribution is computed for (1-4).
    quarter: int
    #: Average number of workers over the reference period.
    staff: int
    #: Workers who entered invalidity over the four reference quarters (Q-3 to Q).
    invalidity_entries: int
    #: The employer's, its sector's and the whole private sector's inflow into invalidity (entries per worker).
    inflow_rate: Decimal
    sector_inflow_rate: Decimal
    private_sector_inflow_rate: Decimal
    #: Wages of the quarter before Q, euro.
    previous_quarter_wages: Decimal

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * (self.quarter - 1) + 1, 1)


class ResponsibilityThreshold(msgspec.Struct, frozen=True, kw_only=True):
    """One condition of the contribution against the employer's figure (thresholds are inclusive): so that an
    employer sees how far it is from each one, not only which failed."""

    #: ``staff``, ``invalidity_entries``, ``sector_inflow`` or ``private_sector_inflow`` (the names in ``unmet``).
    name: str
    figure: Decimal
    #: The figure must be at least this (for the inflows: the factor times the sector's or private sector's rate).
    at_least: Decimal
    met: bool
    description: str


class ResponsibilityContribution(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the contribution is due for the quarter, how much, and why (or why not)."""

    enterprise_number: str
    year: int
    quarter: int
    due: bool
    amount: Decimal | None
    rule: str | None
    legal_basis: str | None
    regime: str | None
    status: Status | None
    #: The conditions that failed (empty when due).
    unmet: tuple[str, ...]
    explanation: str
    #: Every condition with the employer's figure (empty when no rule is in force for the quarter).
    thresholds: tuple[ResponsibilityThreshold, ...] = ()
    #: The rule's percentage of the previous quarter's wages (percent: 0.625 is 0.625 %).
    percentage: Decimal | None = None


def responsibility_contribution(data: ResponsibilityInput, rulebook: Rulebook) -> ResponsibilityContribution:
    """The employer responsibility contribution for ``data``'s quarter (a pure function; thresholds inclusive)."""
    with localcontext(DECIMAL_CONTEXT):
        return _responsibility(data, rulebook)


def _responsibility(data: ResponsibilityInput, rulebook: Rulebook) -> ResponsibilityContribution:
    if not 1 <= data.quarter <= 4:
        raise ValueError(f"quarter must be 1-4, not {data.quarter}")
    label = f"Q{data.quarter} {data.year}"
    found = find_rule(rulebook, ResponsibilityContributionRule, data.first_day)
    base: dict[str, Any] = {"enterprise_number": data.enterprise_number, "year": data.year, "quarter": data.quarter}
    if found is None:
        return ResponsibilityContribution(
            **base, due=False, amount=None, rule=None, legal_basis=None, regime=None, status=None,
            unmet=("rule_in_force",), explanation=f"No responsibility contribution exists for {label}.",
        )
    rule = found.rule
    assert isinstance(rule, ResponsibilityContributionRule)
    checks = {
        "staff": (Decimal(data.staff), Decimal(rule.min_staff), f"{data.staff} staff (at least {rule.min_staff})"),
        "invalidity_entries": (
            Decimal(data.invalidity_entries), Decimal(rule.min_invalidity_entries),
            f"{data.invalidity_entries} workers entering invalidity (at least {rule.min_invalidity_entries})",
        ),
        "sector_inflow": (
            data.inflow_rate, rule.sector_factor * data.sector_inflow_rate,
            f"inflow {data.inflow_rate} against {rule.sector_factor:f} x the sector's {data.sector_inflow_rate}",
        ),
        "private_sector_inflow": (
            data.inflow_rate, rule.private_sector_factor * data.private_sector_inflow_rate,
            f"{rule.private_sector_factor:f} x the private sector's {data.private_sector_inflow_rate}",
        ),
    }
    thresholds = tuple(
        ResponsibilityThreshold(name=name, figure=figure, at_least=least, met=figure >= least, description=text)
        for name, (figure, least, text) in checks.items()
    )
    unmet = tuple(t.name for t in thresholds if not t.met)
    inputs = "; ".join(t.description for t in thresholds)
    where = f"(rule {rule.id}, {found.label})"
    found_base: dict[str, Any] = {
        "rule": rule.id, "legal_basis": rule.legal_basis, "regime": found.regime.id, "status": found.status(),
        "thresholds": thresholds, "percentage": rule.percentage,
    }
    if unmet:
        return ResponsibilityContribution(
            **base, **found_base, due=False, amount=None, unmet=unmet,
            explanation=f"No responsibility contribution for {label}: not met: {', '.join(unmet)}; {inputs} {where}.",
        )
    amount = cents(data.previous_quarter_wages * rule.percentage / 100)
    return ResponsibilityContribution(
        **base, **found_base, due=True, amount=amount, unmet=(),
        explanation=(
            f"Responsibility contribution for {label}: {show_percent(rule.percentage)} of the previous quarter's "
            f"wages of {show_euro(data.previous_quarter_wages)} is {show_euro(amount)}; {inputs} {where}."
        ),
    )
