"""Every benefit adjustment and premium of a case, as data (``be-benefits.toml``) plus pure functions.

``compute_ledger(events, rulebook)`` reads a case's history and returns the entries it calls for: reductions of
the worker's benefit (partial resumption, late declaration, Terug Naar Werk, from 2026 the suspension after a
no-show at an appointment in person), the full benefit restored after a failed resumption, the employer's
guaranteed-wage exemption, the employer's return-to-work premium, rehabilitation premiums and reimbursements, the
employer's force-majeure contribution and (from 2026) solidarity contribution, the announced sanctions where a
deployment switches them on, and notices where a rule gives nothing for a reason the case worker should see.

No clock and no I/O: time-dependent conditions (three months of authorised work, a questionnaire not back in time)
are judged as of the Belgian date (Europe/Brussels) of the latest ``recorded_at`` among the events, so the result
depends on the history only. A premium that becomes due with the mere passing of time appears with the next
event recorded on the case. ``reconcile`` turns a new computation into the entries to record (reversals, never
edits) and ``effective`` reads the ledger in force. Importing this module registers the benefit rule kinds, which
``default_rulebook()`` relies on to read ``be-benefits.toml``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import localcontext

from shared.events.envelope import CaseEvent

from .benefits_base import Ctx
from .benefits_employer import (
    ResponsibilityContribution,
    ResponsibilityInput,
    employer_entries,
    responsibility_contribution,
)
from .benefits_facts import CaseFacts, collect, fold_facts
from .benefits_ledger import (
    CENT,
    DECIMAL_CONTEXT,
    EntryKind,
    LedgerEntry,
    Options,
    amount_of,
    cents,
    effective,
    natural_id,
    reconcile,
    reversal_of,
    sort_key,
)
from .benefits_resumption import reduction_percentage, resumption_entries
from .benefits_route import route_entries
from .benefits_rules import (
    AnnouncedEmployerFine,
    AnnouncedWorkerReduction,
    BenefitRestoration,
    BenefitRule,
    ForceMajeureContribution,
    Found,
    GuaranteedWageExemption,
    LateDeclarationReduction,
    MissedExaminationReduction,
    NoShowSuspension,
    Payee,
    RehabilitationCompletionPremium,
    RehabilitationCosts,
    RehabilitationExclusion,
    RehabilitationHourlyPremium,
    RelapseWindow,
    ResponsibilityContributionRule,
    ResumptionReduction,
    ReturnToWorkPremium,
    SolidarityContribution,
    WorkerTrigger,
    find_rule,
)
from .model import Rulebook


def compute_ledger(
    events: Sequence[CaseEvent], rulebook: Rulebook, options: Options = Options(), *, prior_premium: bool = False
) -> list[LedgerEntry]:
    """The ledger ``events`` (one case's history, any order) call for, in ledger order (period start, rule, id).

    ``prior_premium`` says that another case of the same worker and employer already received the return-to-work
    premium (one premium per worker per employer; the service knows across cases).
    """
    facts = collect(events)
    if facts is None:
        return []
    return ledger_of(facts, rulebook, options, prior_premium=prior_premium)


def ledger_of(facts: CaseFacts, rulebook: Rulebook, options: Options = Options(), *,
              prior_premium: bool = False) -> list[LedgerEntry]:
    """:func:`compute_ledger` from a case's facts (:func:`collect`, or :func:`fold_facts` one event at a time)."""
    ctx = Ctx(facts=facts, rulebook=rulebook, options=options, prior_premium=prior_premium)
    with localcontext(DECIMAL_CONTEXT):
        entries = [*resumption_entries(ctx), *route_entries(ctx), *employer_entries(ctx)]
    by_id = {e.id: e for e in entries}
    if len(by_id) != len(entries):
        raise AssertionError("two ledger entries of one case got the same id")
    return sorted(by_id.values(), key=sort_key)


def premium_rule_ids(rulebook: Rulebook) -> frozenset[str]:
    """Ids of the return-to-work premium's rules (entries of kind ``premium`` also come from rehabilitation)."""
    return frozenset(rule.id for rule in rulebook.rules(ReturnToWorkPremium))


def is_premium(entry: LedgerEntry, premium_rules: frozenset[str]) -> bool:
    """The employer's return-to-work premium itself (not a notice about it, not a rehabilitation premium)."""
    return entry.rule in premium_rules and entry.kind is EntryKind.PREMIUM and entry.reverses is None


def holds_premium(ledger: Iterable[LedgerEntry], premium_rules: frozenset[str]) -> bool:
    """Whether a case's ledger has the return-to-work premium in force (granted and not reversed): the case holds
    the worker's and employer's one premium."""
    return any(is_premium(entry, premium_rules) for entry in effective(ledger))


__all__ = [
    "CENT",
    "DECIMAL_CONTEXT",
    "AnnouncedEmployerFine",
    "AnnouncedWorkerReduction",
    "BenefitRestoration",
    "BenefitRule",
    "CaseFacts",
    "EntryKind",
    "ForceMajeureContribution",
    "Found",
    "GuaranteedWageExemption",
    "LateDeclarationReduction",
    "LedgerEntry",
    "MissedExaminationReduction",
    "NoShowSuspension",
    "Options",
    "Payee",
    "RehabilitationCompletionPremium",
    "RehabilitationCosts",
    "RehabilitationExclusion",
    "RehabilitationHourlyPremium",
    "RelapseWindow",
    "ResponsibilityContribution",
    "ResponsibilityContributionRule",
    "ResponsibilityInput",
    "ResumptionReduction",
    "ReturnToWorkPremium",
    "SolidarityContribution",
    "WorkerTrigger",
    "amount_of",
    "cents",
    "compute_ledger",
    "effective",
    "find_rule",
    "fold_facts",
    "holds_premium",
    "is_premium",
    "ledger_of",
    "natural_id",
    "premium_rule_ids",
    "reconcile",
    "reduction_percentage",
    "responsibility_contribution",
    "reversal_of",
]
