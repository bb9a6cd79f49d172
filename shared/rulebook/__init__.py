"""Rules as effective-dated data and pure functions over them (deadlines, benefits, eligibility, case policies) and
the one calendar: read by intake, deadlines, benefits and the auditor."""

from .model import Regime, Rulebook, RulebookError, RuleInForce, Status, default_rulebook

__all__ = ["Regime", "RuleInForce", "Rulebook", "RulebookError", "Status", "default_rulebook"]
