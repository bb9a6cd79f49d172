"""The benefits application: applies Case events to each case's BenefitLedger, exactly once, in order."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from shared.events.envelope import CASE_NAMESPACE, CaseEvent
from shared.events.reports import IncapacityReported
from shared.infra.derived import DerivedApplication
from shared.infra.retry import retry_on_conflict
from shared.infra.settings import Settings
from shared.infra.store import prepare_store, setup_lock
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.benefits import (
    LedgerEntry,
    Options,
    fold_facts,
    holds_premium,
    is_premium,
    ledger_of,
    premium_rule_ids,
    reconcile,
)

from .ledger import (
    BenefitLedger,
    LedgerRecomputed,
    LedgerStep,
    PremiumGranted,
    ledger_after,
    project_ledger,
    project_premium,
)


class BenefitsApplication(DerivedApplication[BenefitLedger]):
    name = "benefits"
    purpose = "benefits"

    def __init__(
        self, env: dict[str, str] | None = None, rulebook: Rulebook | None = None, options: Options | None = None
    ) -> None:
        super().__init__(env)
        self.rulebook = rulebook or default_rulebook()
        self.options = options or Options()
        #: The employer's return-to-work premium: once per worker and employer, across cases.
        self.premium_rules = premium_rule_ids(self.rulebook)

    #: The registers a batch read or stepped (not saved yet): a batch is stepped in memory and saved at once, and a
    #: later step of the batch must see what an earlier one did to the register. ``None`` outside a batch.
    _unsaved: dict[UUID, PremiumGranted | None] | None = None

    def project(self, state: BenefitLedger | None, events: Any) -> BenefitLedger | None:
        return project_ledger(state, events)

    @contextlib.contextmanager
    def batch_scope(self) -> Iterator[None]:
        """One batch of a rebuild, with the premium register's unsaved records visible to its later steps: without
        them a case that grants and withdraws the premium inside one batch would be saved as still holding it."""
        self._unsaved = {}
        try:
            yield
        finally:
            self._unsaved = None

    def advance(self, state: BenefitLedger | None, event: CaseEvent, position: int, now: datetime,
                ) -> tuple[list[Any], BenefitLedger | None]:
        opening = self.opening_of(state, event)
        register_id, register, prior = self._premium_holder(opening, event.case_id)
        facts = fold_facts(state.facts if state else None, event)
        computed = ledger_of(facts, self.rulebook, self.options, prior_premium=prior)
        entries = reconcile(state.entries if state else (), computed, event.event_id)
        step = LedgerStep(
            originator_id=self.derived_id(event.case_id),
            originator_version=(state.version if state else 0) + 1,
            timestamp=now,
            source=event,
            position=position,
            enterprise_number=opening.enterprise_number,
            insz=opening.insz,
            entries=entries,
            prior_premium=prior,
        )
        out: list[Any] = [step]
        recorded = (*(state.entries if state else ()), *entries)
        record = self._register_change(register_id, register, event.case_id, entries, recorded, now)
        if record is not None:
            out.append(record)
            if self._unsaved is not None:
                self._unsaved[register_id] = record
        return out, ledger_after(state, step)

    def _register_change(self, register_id: UUID, register: PremiumGranted | None, case_id: UUID,
                         new: list[LedgerEntry], recorded: tuple[LedgerEntry, ...], now: datetime
                         ) -> PremiumGranted | None:
        """The register record this step calls for, saved in the same transaction as the step: this case takes the
        premium when it grants one and the premium is free, or gives it back when its premium is no longer in force
        (reversed, not granted again), so that another case of the worker and employer may receive it.

        The record's version is the register's next one, so two cases that take the premium at once collide, and
        the second is retried and then sees the first (``prior``)."""
        granted = next((e for e in new if self._is_premium(e)), None)
        version = (register.originator_version if register else 0) + 1
        if granted is not None and (register is None or register.withdrawn):
            return PremiumGranted(originator_id=register_id, originator_version=version, timestamp=now,
                                  case_id=case_id, entry_id=granted.id)
        held = register is not None and not register.withdrawn and register.case_id == case_id
        if held and not holds_premium(recorded, self.premium_rules):
            assert register is not None
            return PremiumGranted(originator_id=register_id, originator_version=version, timestamp=now,
                                  case_id=case_id, entry_id=register.entry_id, withdrawn=True)
        return None

    def _is_premium(self, entry: LedgerEntry) -> bool:
        return is_premium(entry, self.premium_rules)

    def ledger(self, case_id: UUID, version: int | None = None) -> BenefitLedger | None:
        return self.load(case_id, version)

    def recompute(self, case_id: UUID, now: datetime, *, record: bool = True) -> list[LedgerEntry]:
        """The entries that recomputing the case's ledger over the history it applied, under this application's
        rulebook and options, adds (new entries, reversals of those that no longer hold); recorded as one
        :class:`LedgerRecomputed` (with the premium register's change, in the same transaction) unless ``record``
        is false. Nothing when they agree. An optimistic write, retried when the service records a step meanwhile.
        """
        self._unsaved = None
        return retry_on_conflict(lambda: self._recompute(case_id, now, record), attempts=self.write_attempts,
                                 what=f"case {case_id}: the recomputation of its ledger")

    def _recompute(self, case_id: UUID, now: datetime, record: bool) -> list[LedgerEntry]:
        state = self.load(case_id)
        if state is None:
            return []
        opening = state.opening
        register_id, register, prior = self._premium_holder(opening, case_id)
        computed = ledger_of(state.facts, self.rulebook, self.options, prior_premium=prior)
        entries = reconcile(state.entries, computed, self.sources(case_id, state.version)[-1].event_id,
                            why=f"when the ledger was recomputed under rulebook {self.rulebook.label}")
        if not entries or not record:
            return entries
        recomputed = LedgerRecomputed(
            originator_id=state.id, originator_version=state.version + 1, timestamp=now,
            rulebook=self.rulebook.label,
            enabled_announced=tuple(sorted(self.options.enabled_announced)), source_version=state.source_version,
            entries=entries, prior_premium=prior, enterprise_number=opening.enterprise_number, insz=opening.insz,
        )
        change = self._register_change(register_id, register, case_id, entries, (*state.entries, *entries), now)
        self.save(recomputed, *([change] if change is not None else []))
        return entries

    def _premium_holder(self, opening: IncapacityReported, case_id: UUID) -> tuple[UUID, PremiumGranted | None, bool]:
        """The premium register of the case's worker and employer, its latest record, and whether another case
        holds the premium (a withdrawn one no longer does)."""
        register_id = self._premium_register(opening.insz, opening.enterprise_number)
        register = self._load_register(register_id)
        return register_id, register, register is not None and not register.withdrawn and register.case_id != case_id

    @staticmethod
    def _premium_register(insz: str, enterprise_number: str) -> UUID:
        return uuid.uuid5(CASE_NAMESPACE, f"premium:{insz}:{enterprise_number}")

    def _load_register(self, register_id: UUID) -> PremiumGranted | None:
        """The register's latest record; within a batch, read once (a batch is one transaction: what its steps
        record is in ``_unsaved``, what another writer records meanwhile makes the batch's write conflict)."""
        if self._unsaved is not None and register_id in self._unsaved:
            return self._unsaved[register_id]
        try:
            found = self.repository.get(register_id, projector_func=project_premium)
        except AggregateNotFoundError:
            found = None
        if self._unsaved is not None:
            self._unsaved[register_id] = found
        return found


def build_benefits(settings: Settings, rulebook: Rulebook | None = None, **env: str) -> BenefitsApplication:
    """Composition root of the benefits application."""
    with setup_lock(settings, BenefitsApplication.name):
        return BenefitsApplication(
            env={**prepare_store(settings, BenefitsApplication.name), **env},
            rulebook=rulebook or default_rulebook(starts=settings.rule_starts),
            options=Options(enabled_announced=frozenset(settings.enabled_announced)),
        )
