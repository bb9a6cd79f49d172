"""The effective-dated rulebook and the Belgian calendar, shared by intake, deadlines, benefits and the auditor."""

from .model import Regime, Rulebook, RulebookError, RuleInForce, Status, default_rulebook

__all__ = ["Regime", "RuleInForce", "Rulebook", "RulebookError", "Status", "default_rulebook"]
