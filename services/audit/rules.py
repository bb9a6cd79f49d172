"""The pure computations as the services run them: same rulebook, same policy per employer, same options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.infra.settings import Settings
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.benefits import LedgerEntry, Options, compute_ledger
from shared.rulebook.deadlines import (
    Deadline,
    Policy,
    case_policy,
    compute_deadlines,
    parse_employer_policies,
)


@dataclass
class Rules:
    rulebook: Rulebook
    policy: Policy = Policy()
    options: Options = Options()
    employer_policies: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, rulebook: Rulebook | None = None) -> Rules:
        """What ``build_deadlines`` and ``build_benefits`` configure from the same settings."""
        rulebook = rulebook or default_rulebook(starts=settings.rule_starts)
        return cls(
            rulebook=rulebook,
            policy=Policy(roll_forward=settings.roll_forward),
            options=Options(enabled_announced=frozenset(settings.enabled_announced)),
            employer_policies=parse_employer_policies(settings.employer_policies, rulebook),
        )

    def with_rulebook(self, rulebook: Rulebook) -> Rules:
        return Rules(rulebook=rulebook, policy=self.policy, options=self.options,
                     employer_policies=self.employer_policies)

    def policy_for(self, enterprise_number: str) -> Policy:
        # the deadlines service's own function, so that the auditor can never drift from it
        return case_policy(self.policy, self.employer_policies, enterprise_number)

    def deadlines(self, history: Sequence[CaseEvent]) -> list[Deadline]:
        if not history:
            return []
        opening = history[0].report
        assert isinstance(opening, r.IncapacityReported), "a case starts with its incapacity"
        return compute_deadlines(history, self.rulebook, self.policy_for(opening.enterprise_number))

    def ledger(self, history: Sequence[CaseEvent], prior_premium: bool = False) -> list[LedgerEntry]:
        return compute_ledger(history, self.rulebook, self.options, prior_premium=prior_premium) if history else []
