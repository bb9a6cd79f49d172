"""The BenefitLedger aggregate: the entries recorded for one case, and the Case events they were derived from.

Each step records the Case event it applied (``source``, the recorded event itself) and the ledger entries it
added: new entries and reversals of entries that no longer hold. Entries are never edited. The ledger keeps the
facts the rules read (folded one event per step), not the history, so a step costs the same on a long case as on
a short one; its effective entries always equal ``compute_ledger`` over the recorded history (a property test
checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import msgspec

from shared.events.envelope import CaseEvent
from shared.events.reports import IncapacityReported
from shared.infra.derived import DerivedStep
from shared.rulebook.benefits import CaseFacts, LedgerEntry, effective, fold_facts


class LedgerStep(DerivedStep, frozen=True, kw_only=True, tag="ledger_step.v1", tag_field="envelope"):
    entries: list[LedgerEntry]
    #: Another case of the same worker and employer already received the return-to-work premium.
    prior_premium: bool = False


class LedgerRecomputed(msgspec.Struct, frozen=True, kw_only=True, tag="ledger_recomputed.v1", tag_field="envelope"):
    """The case's ledger recomputed over the same history under another rulebook or deployment options (a release
    or a setting changed them): the entries added (new ones, and reversals of those that no longer hold), and which
    rulebook and options. Recorded by ``reintegration benefits recompute``."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    #: the rulebook (``<country> <version>``) and the announced rules enabled
    rulebook: str
    enabled_announced: tuple[str, ...]
    #: the case version the ledger had applied (its history is unchanged)
    source_version: int
    entries: list[LedgerEntry]
    prior_premium: bool = False
    enterprise_number: str
    insz: str


class PremiumGranted(msgspec.Struct, frozen=True, kw_only=True, tag="premium_granted.v1", tag_field="envelope"):
    """The once-per-worker-and-employer register of the return-to-work premium: each record says which case holds
    the premium (``case_id``, its entry ``entry_id``), or, with ``withdrawn``, that this case's premium was reversed
    (its resumption turned out not to qualify), so that the premium is free for another case of the same worker and
    employer again. The register's state is its latest record."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    case_id: UUID
    entry_id: UUID
    withdrawn: bool = False

    @property
    def id(self) -> UUID:  # the register is its own state: eventsourcing reads its id and version
        return self.originator_id

    @property
    def version(self) -> int:
        return self.originator_version


class BenefitLedger(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    case_id: UUID
    #: the event that opened the case (the first of its history)
    opening_event: CaseEvent
    #: the case version it has applied (its last step's source)
    source_version: int
    #: what the benefit rules read of the history applied (:func:`fold_facts`, one event per step)
    facts: CaseFacts
    entries: tuple[LedgerEntry, ...]
    positions: tuple[int, ...]

    @property
    def effective(self) -> list[LedgerEntry]:
        return effective(self.entries)

    @property
    def opening(self) -> IncapacityReported:
        """The report that opened the case: the first event of every ledger's history."""
        report = self.opening_event.report
        if not isinstance(report, IncapacityReported):
            raise TypeError(f"case {self.case_id} does not start with its incapacity ({type(report).__name__})")
        return report


def project_ledger(state: BenefitLedger | None, events: Iterable[LedgerStep | LedgerRecomputed]
                   ) -> BenefitLedger | None:
    for step in events:
        if isinstance(step, LedgerRecomputed):
            assert state is not None, "only a known ledger is recomputed"
            state = msgspec.structs.replace(state, version=step.originator_version,
                                            entries=(*state.entries, *step.entries))
            continue
        state = ledger_after(state, step)
    return state


def ledger_after(state: BenefitLedger | None, step: LedgerStep) -> BenefitLedger:
    """The ledger after one of its steps."""
    return BenefitLedger(
        id=step.originator_id,
        version=step.originator_version,
        case_id=step.source.case_id,
        opening_event=state.opening_event if state is not None else step.source,
        source_version=step.source.version,
        facts=fold_facts(state.facts if state is not None else None, step.source),
        entries=(*state.entries, *step.entries) if state is not None else tuple(step.entries),
        positions=(*state.positions, step.position) if state is not None else (step.position,),
    )


def project_premium(state: PremiumGranted | None, events: Iterable[PremiumGranted]) -> PremiumGranted | None:
    """The register's latest record (a grant, or the withdrawal of one)."""
    for event in events:
        state = event
    return state
