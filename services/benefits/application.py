"""The benefits application: applies Case events to each case's BenefitLedger, exactly once, in order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.events.envelope import CASE_NAMESPACE, CaseEvent
from shared.infra.derived import DerivedApplication
from shared.infra.settings import Settings
from shared.infra.store import prepare_store, setup_lock
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.benefits import EntryKind, Options, compute_ledger, premium_rule_ids, reconcile

from .ledger import BenefitLedger, LedgerStep, PremiumGranted, project_ledger, project_premium



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

    def project(self, state: BenefitLedger | None, events: Any) -> BenefitLedger | None:
        return project_ledger(state, events)

    def step(self, state: BenefitLedger | None, event: CaseEvent, position: int, now: datetime) -> list[Any]:
        history, opening = self.history_with(state, event)
        register_id = self._premium_register(opening.insz, opening.enterprise_number)
        register = self._load_register(register_id)
        prior = register is not None and register.case_id != event.case_id
        computed = compute_ledger(history, self.rulebook, self.options, prior_premium=prior)
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
        granted = next(
            (e for e in entries if e.rule in self.premium_rules and e.kind == EntryKind.PREMIUM and e.reverses is None),
            None,
        )
        if granted is not None and register is None:
            out.append(
                PremiumGranted(
                    originator_id=register_id, originator_version=1, timestamp=now, case_id=event.case_id,
                    entry_id=granted.id,
                )
            )
        return out

    def ledger(self, case_id: UUID, version: int | None = None) -> BenefitLedger | None:
        return self.load(case_id, version)

    @staticmethod
    def _premium_register(insz: str, enterprise_number: str) -> UUID:
        return uuid.uuid5(CASE_NAMESPACE, f"premium:{insz}:{enterprise_number}")

    def _load_register(self, register_id: UUID) -> PremiumGranted | None:
        from eventsourcing.application import AggregateNotFoundError

        try:
            return self.repository.get(register_id, projector_func=project_premium)
        except AggregateNotFoundError:
            return None


def build_benefits(settings: Settings, rulebook: Rulebook | None = None, **env: str) -> BenefitsApplication:
    """Composition root of the benefits application."""
    with setup_lock(settings, BenefitsApplication.name):
        return BenefitsApplication(
            env={**prepare_store(settings, BenefitsApplication.name), **env},
            rulebook=rulebook,
            options=Options(enabled_announced=frozenset(settings.enabled_announced)),
        )
