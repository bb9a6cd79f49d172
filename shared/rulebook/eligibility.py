"""Eligibility rules: who may request a trajectory when, and the force-majeure preconditions.

Pure functions over an :class:`IncapacityTimeline` and the rule in force on the date of the step. A refusal is a
:class:`Ineligible` naming the rule, its regime and the reason, so that intake can reject with exactly that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import msgspec

from .calendar import add_calendar_days, months_after
from .model import ForceMajeureStart, RequestRight, Rulebook, RulebookError, RuleInForce


class Interruption(msgspec.Struct, frozen=True, kw_only=True):
    """A return to work from ``returned_on``; ``resumed_on`` is the first day of incapacity again."""

    returned_on: date
    resumed_on: date | None = None

    def days(self) -> int | None:
        return None if self.resumed_on is None else (self.resumed_on - self.returned_on).days


class IncapacityTimeline(msgspec.Struct, frozen=True, kw_only=True):
    start: date
    interruptions: tuple[Interruption, ...] = ()
    ended_on: date | None = None

    def incapacitated_on(self, day: date) -> bool:
        if day < self.start or (self.ended_on is not None and day > self.ended_on):
            return False
        for gap in self.interruptions:
            if gap.returned_on <= day and (gap.resumed_on is None or day < gap.resumed_on):
                return False
        return True

    def spell_start(self, day: date, tolerance_days: int) -> date | None:
        """Start of the uninterrupted incapacity running on ``day``, or ``None`` if not incapacitated then.

        A return to work of fewer than ``tolerance_days`` days does not interrupt (0: every return does).
        """
        if not self.incapacitated_on(day):
            return None
        start = self.start
        for gap in self.interruptions:
            if gap.resumed_on is None or gap.resumed_on > day:
                break
            length = gap.days()
            assert length is not None
            if length >= tolerance_days:
                start = gap.resumed_on
        return start


@dataclass(frozen=True)
class Ineligible(Exception):
    """A step the rule in force does not allow."""

    message: str
    rule: str | None
    regime: str | None
    #: No version of the rule is in force on that day yet (see :class:`RulebookError`).
    not_yet: bool = False

    def __str__(self) -> str:
        return self.message


def _in_force(rulebook: Rulebook, rule_id: str, day: date) -> RuleInForce:
    try:
        return rulebook.rule_on(rule_id, day)
    except RulebookError as exc:
        raise Ineligible(exc.message, exc.rule, exc.regime, not_yet=exc.not_yet) from None


def _refuser(in_force: RuleInForce) -> Callable[[str], Ineligible]:
    """Builds refusals that name the rule and the regime in force."""

    def refuse(reason: str) -> Ineligible:
        return Ineligible(f"{in_force.rule.id} ({in_force.regime.id}): {reason}", in_force.rule.id, in_force.regime.id)

    return refuse


def check_request_right(
    rulebook: Rulebook,
    *,
    initiator: str,
    received_on: date,
    timeline: IncapacityTimeline,
    certificate_on: date | None,
    worker_consent: bool,
    work_potential: bool | None = None,
) -> RuleInForce:
    """The rule that allows ``initiator``'s request received on ``received_on``, or :class:`Ineligible`.
    ``work_potential``: what the latest work-potential estimate made by then found (``None``: none made)."""
    in_force = _in_force(rulebook, f"trajectory.request.{initiator}", received_on)
    rule = in_force.rule
    assert isinstance(rule, RequestRight)
    refuse = _refuser(in_force)

    if not rule.allowed:
        raise refuse(f"a request by the {initiator.replace('_', ' ')} is not allowed ({rule.note})")
    spell = timeline.spell_start(received_on, rule.return_tolerance_days)
    if spell is None:
        raise refuse(f"the worker is not incapacitated on {received_on.isoformat()}")
    if rule.min_months == 0:
        return in_force
    if rule.certificate_exempts and certificate_on is not None and certificate_on <= received_on:
        return in_force
    if rule.consent_exempts and worker_consent:
        return in_force
    if rule.estimate_exempts and work_potential:
        return in_force
    opens_on = months_after(spell, rule.min_months)
    if received_on < opens_on:
        exempt = [what for what, applies in (("the worker's consent", rule.consent_exempts),
                                             ("an estimate that found work potential", rule.estimate_exempts),
                                             ("a certificate of definitive unfitness", rule.certificate_exempts))
                  if applies]
        raise refuse(
            f"request received on {received_on.isoformat()} but the right opens on {opens_on.isoformat()} "
            f"({rule.min_months} months of incapacity from {spell.isoformat()})"
            + (f"; earlier only with {' or '.join(exempt)}" if exempt else "")
        )
    return in_force


def check_force_majeure_start(
    rulebook: Rulebook,
    *,
    letter_sent_on: date,
    timeline: IncapacityTimeline,
    trajectory_running: bool,
) -> RuleInForce:
    in_force = _in_force(rulebook, "force_majeure.start", letter_sent_on)
    rule = in_force.rule
    assert isinstance(rule, ForceMajeureStart)
    refuse = _refuser(in_force)

    if not rule.allowed:
        raise refuse(rule.note)
    if rule.no_trajectory_running and trajectory_running:
        raise refuse("a re-integration trajectory is running")
    spell = timeline.spell_start(letter_sent_on, rule.return_tolerance_days)
    if spell is None:
        raise refuse(f"the worker is not incapacitated on {letter_sent_on.isoformat()}")
    opens_on = months_after(spell, rule.min_months)
    if letter_sent_on < opens_on:
        raise refuse(
            f"letter sent on {letter_sent_on.isoformat()} but {rule.min_months} months of uninterrupted "
            f"incapacity from {spell.isoformat()} are complete only on the eve of {opens_on.isoformat()}"
        )
    return in_force


def earliest_force_majeure_decision(in_force: RuleInForce, letter_sent_on: date) -> date:
    rule = in_force.rule
    assert isinstance(rule, ForceMajeureStart)
    return add_calendar_days(letter_sent_on, rule.min_days_to_invitation)
