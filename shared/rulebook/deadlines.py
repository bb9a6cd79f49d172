"""The legal deadlines of a case: rules as data (:class:`DeadlineRule`) and one pure function,
:func:`compute_deadlines`.

A deadline rule says which report starts a clock (``starts_on``, with optional conditions on the report's fields:
accepted values ``where``, integer lower bounds ``at_least`` such as ``{ staff_count = 20 }``, or the regime's
decision-code tables ``decision_in``), from which date of that report it counts (``anchor``, default its effective
date, or the case's incapacity period, below), how long the period is (``period``: amount, unit, and whether the
trigger day itself counts), and which reports meet it, cancel it, or suspend it until a later report restarts it.
Every rule lives in a rulebook file (``be-deadlines.toml``, ``nl-deadlines.toml``); no figure and no country is
written in this module.

Counting. ``next_day`` periods start on the day after the trigger, as the Belgian Judicial Code (art. 52) counts:
*n* calendar days end on trigger + *n*, *n* working days on the *n*-th working day after the trigger, *n* months
"from date to the eve of the same date" (art. 54) from the period's first day: a receipt on 15 Jan starts on 16 Jan
and one month ends on 15 Feb; a receipt on 28 Feb (1 Mar first) ends on 31 Mar; an end month that lacks the date
ends the period on its last day (a receipt on 30 Jan: 28/29 Feb). ``same_day`` periods count the trigger day as
day 1 ("in week 10 of incapacity", "during the 4th month"): the trigger day is the period's first day. A negative
amount counts backwards ("by the working day before the resumption"). Working days are Monday to Friday less the
holidays of the rulebook's calendar (``calendar.calendar_for``). Whether an expiry on a Saturday, Sunday or holiday
moves to the next working day (Judicial Code art. 53) is uncertain: :class:`Policy` switches it, for obligations
(``due``) and rights (``window``) only, and every deadline records the calendar and the policy it was computed
with.

Regime boundaries. The version of a rule is chosen by the date of the step that starts the clock (the trigger's
effective date). But the 2022 Belgian rules applied at once to running trajectories, and nothing suggests a later
regime behaves otherwise, so for any rulebook: when a regime takes effect on a day *b* after the clock started,
and the deadline is still running on *b* (not closed before *b*, and its due date not before *b*), the deadline is
recomputed under the version of the same rule in the new regime, from the same starting date, keeping its id and
recording ``recomputed_from``, ``recomputed_on`` and the version it replaces (``superseded``: rule, regime and date
the parties were held to until *b*; the service publishes it as opened, then the recomputation). A deadline that
had already expired before *b* is left alone: the new law cannot revive a period that was over. If the new regime
has no such rule, the deadline is cancelled on *b* with no closing event (``closed_by=None``, ``closed_on=b``). If
the new regime merely inherits the same version, nothing is recomputed. The recomputed date may lie before *b*
(49 calendar days are shorter than 40 working days): the deadline is then overdue at once, which is what applying
the new rule "from the same starting date" means; an earliest date (``not_before``) recomputed to a day before *b*
is *b* itself (``counted_due_on`` keeps the counted day), since the act it allows is possible from then on (a
force-majeure letter for an incapacity that had 6 months but not 9 on 1 Jan 2026 may go on that day).
A rule that a new regime introduces does not reach triggers before it, unless it says ``reaches_back``: then it
also applies to an earlier trigger whose deadline falls on or after the day the rule took effect (the 2022 contact
after 4 weeks for an absence that began in September 2022, the 2026 work-potential request).

Suspension. A rule may name reports that suspend it (an appeal against a definitive unfitness suspends the
trajectory): the running deadline is cancelled by that report, and a later report in ``restarted_by`` (the panel
upholding the assessment) starts a fresh full period, under the regime in force on that report's date; a report in
``cancelled_by`` in between (the trajectory ended) disarms the restart.

Incapacity periods. ``anchor = "incapacity_period"`` counts from the first day of the case's current uninterrupted
incapacity: its start (``incapacity_reported.v1``), or the resumption (``incapacity_resumed.v1``) after a return to
work (``incapacity_interrupted.v1``) of at least ``return_tolerance_days`` days, read from the rule that
``return_tolerance_of`` names in the same regime (the eligibility rule that judges the same period, so that both
count one period); a shorter return does not interrupt it. The walk follows the case's incapacity beside the rules
(the fold keeps it too): each period's first day and the short returns since then. Such a rule's version is chosen
by the period's first day (then recomputed at each later switch, as above). A resumption that opens a new period
starts it again, if ``starts_on`` lists the resumption (the running deadline is cancelled, a new one counts from
the resumption, with that event's id), or else cancels it; a resumption after a short return starts nothing, so
the id stays. An earliest date that falls in a short return moves to the resumption, the first day of incapacity
after it (its id kept, ``counted_due_on`` the counted day); a return still open is not known to be short, so it
moves nothing yet. A suspended rule anchored on the period stays suspended through a new period, and its restart
counts from the then current period's first day, not from the restarting report (the earliest force-majeure
letter: none while a trajectory runs, back when it ends with the date it had).

Identity. One open deadline per rule and case: a new trigger of the same rule cancels the open one ("started
again"). A deadline's id is ``uuid5(case_id, "deadline:<rule id>:<starting event id>")``: stable across policies,
recomputations and replays; an event starts a rule at most once, so no occurrence number is needed.
The function never reads a clock: an open deadline past its date stays open (the service records "missed" when its
timer fires); :func:`overdue` answers for a given day.
"""

from __future__ import annotations

import bisect
import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

import msgspec
import msgspec.inspect

from shared.events.envelope import CaseEvent
from shared.events.ids import uuid5
from shared.events.reports import (
    REPORTS_BY_TAG,
    IncapacityInterrupted,
    IncapacityReported,
    IncapacityResumed,
    Report,
    tag_of,
)

from .calendar import WorkingCalendar, calendar_for, last_day_of_months, months_after
from .model import Regime, RuleBase, Rulebook, RulebookError, Status, inherited_status, rule_kind


class DeadlineKind(enum.StrEnum):
    DUE = "due"  # an obligation: missed when it expires
    WINDOW = "window"  # a right that closes (the appeal)
    NOT_BEFORE = "not_before"  # an earliest date (the force-majeure invitation)
    REMINDER = "reminder"  # a moment to act on, without a fixed legal expiry


class Unit(enum.StrEnum):
    CALENDAR_DAYS = "calendar_days"
    WORKING_DAYS = "working_days"
    WEEKS = "weeks"
    MONTHS = "months"


class CountFrom(enum.StrEnum):
    NEXT_DAY = "next_day"  # the period starts on the day after the trigger
    SAME_DAY = "same_day"  # the trigger day is the period's first day


class DeadlineState(enum.StrEnum):
    OPEN = "open"
    MET = "met"
    CANCELLED = "cancelled"


_CODE_TABLES = ("decision_codes", "definitive_codes", "plan_codes")
#: the ``anchor`` of a rule that counts from the first day of the case's current uninterrupted incapacity
INCAPACITY_PERIOD = "incapacity_period"


class EventMatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A report that starts, meets or cancels a deadline: its tag and optional conditions on its fields."""

    report: str
    #: field -> accepted values, e.g. ``{ decision = ["E"] }`` or ``{ assessment_upheld = [true] }``
    where: dict[str, list[str | bool | int]] = {}
    #: integer field -> its lowest accepted value, e.g. ``{ staff_count = 20 }`` (an employer of at least 20)
    at_least: dict[str, int] = {}
    #: the report's ``decision`` must be in this table of the regime in force: ``definitive_codes``,
    #: ``plan_codes`` (any plan) or ``plan_codes.<unfitness>``
    decision_in: str | None = None

    def __post_init__(self) -> None:
        cls = REPORTS_BY_TAG.get(self.report)
        if cls is None:
            raise ValueError(f"unknown report {self.report!r}")
        fields = set(cls.__struct_fields__)
        if unknown := (set(self.where) | set(self.at_least)) - fields:
            raise ValueError(f"{self.report} has no field {', '.join(sorted(unknown))}")
        types = {field.name: field.type for field in msgspec.structs.fields(cls)}
        for name, bound in self.at_least.items():
            if not isinstance(msgspec.inspect.type_info(types[name]), msgspec.inspect.IntType):
                raise ValueError(f"at_least: {self.report}'s {name} is not an integer")
            if isinstance(bound, bool):
                raise ValueError(f"at_least: the bound of {name} is not an integer")
        if self.decision_in is not None:
            if "decision" not in fields:
                raise ValueError(f"{self.report} has no decision for decision_in")
            if self.decision_in.partition(".")[0] not in _CODE_TABLES:
                raise ValueError(f"decision_in must name one of {', '.join(_CODE_TABLES)}")

    def matches(self, report: Report, regime: Regime | None) -> bool:
        return tag_of(report) == self.report and self.fits(report, regime)

    def fits(self, report: Report, regime: Regime | None) -> bool:
        """Whether ``report``, already known to be of this match's tag, meets its conditions."""
        for name, accepted in self.where.items():
            value = getattr(report, name)
            if (value.value if isinstance(value, enum.Enum) else value) not in accepted:
                return False
        for name, bound in self.at_least.items():
            if getattr(report, name) < bound:
                return False
        if self.decision_in is not None:
            # validated above: the report has a decision
            return regime is not None and getattr(report, "decision", None) in _codes(regime, self.decision_in)
        return True


def _codes(regime: Regime, table: str) -> set[str]:
    name, _, unfitness = table.partition(".")
    if name == "plan_codes":
        return {code for code, kind in regime.plan_codes.items() if not unfitness or kind == unfitness}
    return set(getattr(regime, name))


class Period(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: int
    unit: Unit
    count_from: CountFrom = CountFrom.NEXT_DAY

    def __post_init__(self) -> None:
        if self.amount == 0 or (self.amount < 0 and self.count_from is CountFrom.SAME_DAY):
            raise ValueError("a period is not 0, and a backward period counts from the next day")


class PenaltyRange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The fines of one level for offences from a day: (lowest, highest) in euro, administrative and criminal."""

    offences_from: date
    administrative: tuple[Decimal, Decimal]
    criminal: tuple[Decimal, Decimal]


@rule_kind
class PenaltyScale(RuleBase, frozen=True, kw_only=True, tag="penalty_scale"):
    """A level of the Social Penal Code: the fines for an offence, by offence date. Data that the explanation of a
    deadline whose breach it sanctions (``DeadlineRule.sanction``) cites; never computed or booked: the
    inspectorate establishes an offence, and the administration or the court sets the amount within the range."""

    #: the code that sets the levels, e.g. "Social Penal Code"
    code: str
    level: int
    #: what the fine is counted per, e.g. "worker concerned"
    per: str
    ranges: list[PenaltyRange]

    def __post_init__(self) -> None:
        days = [r.offences_from for r in self.ranges]
        if not days or days != sorted(set(days)):
            raise ValueError(f"{self.id}: ranges must be given in order of offences_from, each day once")

    def range_on(self, day: date) -> PenaltyRange | None:
        """The range for an offence on ``day`` (the latest ``offences_from`` not after it), ``None`` before any."""
        found = [r for r in self.ranges if r.offences_from <= day]
        return found[-1] if found else None


@rule_kind
class DeadlineRule(RuleBase, frozen=True, kw_only=True, tag="deadline"):
    """A legal deadline: what starts it, how long it runs, who must act, and what meets or cancels it."""

    description: str
    deadline_kind: DeadlineKind
    #: who must act: occupational_physician, employer, worker, advising_physician, medical_inspector, return_coach
    party: str
    #: the employer is told (its plan, the worker's answer, its own requests)
    concerns_employer: bool = False
    starts_on: list[EventMatch]
    #: the starting report's date field the period counts from (default: the report's effective date), or
    #: ``incapacity_period``: the first day of the case's current uninterrupted incapacity (module docstring)
    anchor: str | None = None
    #: with ``anchor = "incapacity_period"``: the rule whose ``return_tolerance_days`` (in the same regime) says
    #: how short a return to work leaves the incapacity uninterrupted, e.g. ``force_majeure.start``
    return_tolerance_of: str | None = None
    period: Period
    met_by: list[EventMatch] = msgspec.field(default_factory=list)
    #: the starting report itself fulfils the obligation (it is checked, not awaited)
    met_on_start: bool = False
    cancelled_by: list[EventMatch] = msgspec.field(default_factory=list)
    #: closes the deadline (cancelled) and arms ``restarted_by``: a new full period from that report
    suspended_by: list[EventMatch] = msgspec.field(default_factory=list)
    restarted_by: list[EventMatch] = msgspec.field(default_factory=list)
    #: an employer policy that must be switched on in :class:`Policy` (rules that are no law apply only then)
    applies_when: str | None = None
    #: also applies to triggers before the rule took effect, when the deadline falls on or after that day
    reaches_back: bool = False
    #: the ``penalty_scale`` rule that sanctions missing it: its range on the day after the due date (the offence
    #: day) is cited in the explanation, never computed
    sanction: str | None = None

    def __post_init__(self) -> None:
        if not self.starts_on:
            raise ValueError(f"{self.id}: starts_on is empty")
        if (self.anchor == INCAPACITY_PERIOD) != (self.return_tolerance_of is not None):
            raise ValueError(f"{self.id}: anchor = {INCAPACITY_PERIOD!r} goes with return_tolerance_of, and only it")
        if self.anchor is not None and self.anchor != INCAPACITY_PERIOD:
            for match in self.starts_on:
                if self.anchor not in REPORTS_BY_TAG[match.report].__struct_fields__:
                    raise ValueError(f"{self.id}: {match.report} has no date {self.anchor}")
        if self.status is Status.ANNOUNCED and self.applies_when is None:
            raise ValueError(f"{self.id}: a rule never enacted (A) needs applies_when")


class Policy(msgspec.Struct, frozen=True):
    """How the uncertain parts are settled: roll an expiry to the next working day, employer policies in force."""

    roll_forward: bool = False
    employer_policies: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        """A stable name, stored with every deadline: ``no-roll-forward`` or ``roll-forward``, ``+`` each policy."""
        return "+".join(["roll-forward" if self.roll_forward else "no-roll-forward", *sorted(self.employer_policies)])


class Deadline(msgspec.Struct, frozen=True, kw_only=True):
    """One computed deadline of a case, with everything needed to recompute and explain it."""

    id: UUID
    case_id: UUID
    rule: str
    #: the regime whose rule was applied (after a recomputation: the later regime)
    regime: str
    #: the regime that defines the rule, when ``regime`` inherits it
    inherited_from: str | None = None
    legal_basis: str
    status: Status
    deadline_kind: DeadlineKind
    party: str
    concerns_employer: bool
    calendar: str
    policy: str
    counting: Unit
    amount: int
    count_from: CountFrom
    started_by: UUID
    #: the date the period counts from (the trigger's effective date unless the rule names another of its dates)
    starts_on: date
    counted_due_on: date
    due_on: date
    state: DeadlineState
    closed_by: UUID | None = None
    closed_on: date | None = None
    #: met after ``due_on`` (never for a not_before)
    late: bool = False
    #: met before the earliest date of a not_before
    early: bool = False
    recomputed_from: str | None = None
    #: the day the regime that recomputed it took effect
    recomputed_on: date | None = None
    #: the versions it had before each recomputation, oldest first, each open and under its own regime and rule:
    #: what the case's parties were held to until the new regime took effect
    superseded: tuple[Deadline, ...] = ()
    explanation: str


def overdue(deadline: Deadline, as_of: date) -> bool:
    """Still open after its date on ``as_of``: an obligation missed, a window passed unused (never a not_before).
    One that a later regime recomputed to a date before that regime took effect is overdue from the switch day
    (until then the earlier regime's period ran)."""
    return (
        deadline.state is DeadlineState.OPEN
        and deadline.deadline_kind is not DeadlineKind.NOT_BEFORE
        and as_of > deadline.due_on
        and (deadline.recomputed_on is None or as_of >= deadline.recomputed_on)
    )


# --- the computation -----------------------------------------------------------------------------------------
#
# What depends on the rulebook alone (the version each regime applies, the words every deadline of a version
# repeats, the reports that can start each rule) is arranged once per rulebook in an :class:`_Index`, which also
# remembers its latest answers to the pure questions "which version for a trigger on this day" and "which dates
# for a period from this day". A case's history is then walked once per rule that one of its reports can start,
# and a report that starts, meets, cancels or suspends nothing is passed over after one set lookup.

_STATUS_WORDS = {Status.CONFIRMED: "confirmed", Status.UNCERTAIN: "uncertain", Status.ANNOUNCED: "never enacted"}
_UNIT_WORDS = {Unit.CALENDAR_DAYS: "calendar day", Unit.WORKING_DAYS: "working day", Unit.WEEKS: "week",
               Unit.MONTHS: "month"}
_KIND_WORDS = {DeadlineKind.DUE: "due on", DeadlineKind.WINDOW: "open until", DeadlineKind.NOT_BEFORE: "not before",
               DeadlineKind.REMINDER: "reminder on"}
_TAG_OF_TYPE = {cls: tag for tag, cls in REPORTS_BY_TAG.items()}


def _tag(report: Report) -> str:
    return _TAG_OF_TYPE.get(type(report)) or tag_of(report)


@dataclass(frozen=True, eq=False)
class _Version:
    """A version of a rule as one regime applies it, with what every deadline computed under it repeats."""

    rule: DeadlineRule
    regime: Regime
    #: the regime that defines the rule, when ``regime`` inherits it
    inherited_from: str | None
    status: Status
    #: the reports that may meet, cancel or suspend it
    closers: frozenset[str]
    #: the reports that start, meet or cancel it whatever their fields say (a match with no condition)
    starters: frozenset[str]
    meeters: frozenset[str]
    cancellers: frozenset[str]
    #: the explanation's opening: the rule, its regime and status, its legal basis
    head: str
    #: the counting in words, around the anchor date: ("40 working days counted from the day after ", "")
    counting: tuple[str, str]
    #: anchored on the incapacity period: a return to work shorter than this many days does not interrupt it
    tolerance: int | None = None

    @classmethod
    def of(cls, rule: DeadlineRule, regime: Regime, inherited_from: str | None, tolerance: int | None = None
           ) -> _Version:
        status = inherited_status(rule.status, regime, inherited_from)
        where = regime.id + (f" (rule inherited from {inherited_from})" if inherited_from else "")
        p = rule.period
        n = abs(p.amount)
        period = f"{n} {_UNIT_WORDS[p.unit]}{'s' if n != 1 else ''}"
        if p.amount < 0:
            counting = (f"{period} before ", "")
        elif p.count_from is CountFrom.SAME_DAY:
            counting = (f"{period} counted from ", " included")
        else:
            counting = (f"{period} counted from the day after ", "")
        if tolerance is not None:
            first_day = (f" (the current period's first day; a return to work of less than {tolerance} days does "
                         f"not interrupt it)")
            if _opens_after_whole_months(rule):
                counting = (f"{period} of uninterrupted incapacity from ", first_day)
            else:
                counting = (counting[0], counting[1] + first_day)
        return cls(
            rule=rule, regime=regime, inherited_from=inherited_from, status=status, tolerance=tolerance,
            closers=frozenset(m.report for m in (*rule.met_by, *rule.cancelled_by, *rule.suspended_by)),
            starters=_unconditional(rule.starts_on), meeters=_unconditional(rule.met_by),
            cancellers=_unconditional(rule.cancelled_by),
            head=f"{rule.description} ({rule.id}, {where}, {status.value} {_STATUS_WORDS[status]}; {rule.legal_basis})",
            counting=counting,
        )


def _unconditional(matches: list[EventMatch]) -> frozenset[str]:
    """The tags of the matches with no condition: every report of such a tag matches."""
    return frozenset(m.report for m in matches if not m.where and not m.at_least and m.decision_in is None)


class _Index:
    """The deadline rules of one rulebook arranged for lookups, built once per rulebook (``Rulebook.derived``)."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook
        self.calendar: WorkingCalendar = calendar_for(rulebook.calendar.id)
        rules = [r for r in rulebook.rules(DeadlineRule) if isinstance(r, DeadlineRule)]
        self.rule_ids = list(dict.fromkeys(r.id for r in rules))
        own = {(r.regime, r.id): r for r in rules}
        every = {(r.regime, r.id): r for r in rulebook.rules()}
        #: (regime id, rule id) -> the version that regime applies (its own or inherited), if any
        self.versions = {
            (regime.id, rule_id): _inherited_version(rulebook, own, every, rule_id, regime)
            for regime in rulebook.regimes
            for rule_id in self.rule_ids
        }
        tolerance_of: dict[str, int] = {}
        for rule_id in self.rule_ids:
            found = [v for v in self.versions.values() if v is not None and v.rule.id == rule_id]
            kinds = {v.tolerance for v in found}
            if len(kinds) > 1:  # one period for every version: a recomputation keeps the day it counts from
                raise ValueError(f"{rule_id}: all its versions or none count from the {INCAPACITY_PERIOD}, with one "
                                 f"return tolerance (not {', '.join(sorted(map(str, kinds)))})")
            if kinds and (tolerance := kinds.pop()) is not None:
                tolerance_of[rule_id] = tolerance
        #: the return tolerances (days) of the rules anchored on the incapacity period, each followed once
        self.tolerances = tuple(sorted(set(tolerance_of.values())))
        #: the rules anchored on the incapacity period -> the position of their tolerance in ``tolerances``
        self.period_rules = {rule_id: self.tolerances.index(t) for rule_id, t in tolerance_of.items()}
        regime_days = {regime.valid_from for regime in rulebook.regimes}
        #: the days on which a version of each rule may begin to apply: regime starts and its applies_from dates
        self.start_days = {
            rule_id: sorted(regime_days | {r.applies_from for r in rules if r.id == rule_id and r.applies_from})
            for rule_id in self.rule_ids
        }
        #: the reports that may start (or restart) each rule under any version: no other report can start it
        self.start_tags = {
            rule_id: frozenset(m.report for r in rules if r.id == rule_id for m in (*r.starts_on, *r.restarted_by))
            for rule_id in self.rule_ids
        }
        #: report tag -> the rules it may start (the inverse of ``start_tags``)
        self.started_by: dict[str, list[str]] = {}
        for rule_id, tags in self.start_tags.items():
            for tag in tags:
                self.started_by.setdefault(tag, []).append(rule_id)
        self.switch_days = [regime.valid_from for regime in rulebook.regimes]
        # bounded: a service keeps the recent days' answers, not every day's
        self.in_force = functools.lru_cache(maxsize=1 << 14)(self._in_force)
        self.dates = functools.lru_cache(maxsize=1 << 14)(self._dates)

    def _dates(self, version: _Version, anchor: date, roll_forward: bool) -> tuple[date, date]:
        """The counted last day of the period from ``anchor``, and the due date: the same, or the next working day
        when ``roll_forward`` moves an obligation's or a right's expiry."""
        rule = version.rule
        counted = _counted(self.calendar, rule, anchor)
        if roll_forward and rule.deadline_kind in (DeadlineKind.DUE, DeadlineKind.WINDOW):
            return counted, self.calendar.next_working_day_on_or_after(counted)
        return counted, counted

    def switch_after(self, day: date) -> date:
        """The first day after ``day`` on which a regime takes effect (``date.max``: none)."""
        index = bisect.bisect_right(self.switch_days, day)
        return self.switch_days[index] if index < len(self.switch_days) else date.max

    def _in_force(
        self, rule_id: str, trigger_day: date, policies: frozenset[str]
    ) -> tuple[_Version, date, date] | None:
        """The version for a trigger on ``trigger_day``, the day it governs from (later if it reaches back), and
        the first day after that on which a regime takes effect."""
        for day in [trigger_day, *(d for d in self.start_days[rule_id] if d > trigger_day)]:
            regime = self.rulebook.regime_on(day)
            found = self.versions[regime.id, rule_id] if regime is not None else None
            if found is None:
                continue
            if day > trigger_day and not found.rule.reaches_back:
                return None
            if _applies(found.rule, policies, trigger_day, day):
                return found, day, self.switch_after(day)
            if day == trigger_day and not found.rule.reaches_back:
                return None
        return None


def _inherited_version(
    rulebook: Rulebook, own: dict[tuple[str, str], DeadlineRule], every: dict[tuple[str, str], RuleBase],
    rule_id: str, regime: Regime,
) -> _Version | None:
    """The version of ``rule_id`` that ``regime`` defines or inherits."""
    rule = _inherited(rulebook, own, rule_id, regime)
    if rule is None:
        return None
    inherited_from = rule.regime if rule.regime != regime.id else None
    tolerance = None
    if rule.return_tolerance_of is not None:
        other = _inherited(rulebook, every, rule.return_tolerance_of, regime)
        tolerance = getattr(other, "return_tolerance_days", None)
        if not isinstance(tolerance, int):
            raise ValueError(f"{rule_id}: {regime.id} has no rule {rule.return_tolerance_of} with "
                             f"return_tolerance_days (its return_tolerance_of)")
    return _Version.of(rule, regime, inherited_from, tolerance)


R = TypeVar("R", bound=RuleBase)


def _inherited(rulebook: Rulebook, rules: dict[tuple[str, str], R], rule_id: str, regime: Regime) -> R | None:
    """The rule ``rule_id`` that ``regime`` defines or inherits, among ``rules`` ((regime id, rule id) -> rule)."""
    current: Regime | None = regime
    while current is not None:
        rule = rules.get((current.id, rule_id))
        if rule is not None:
            return rule
        current = rulebook.regime(current.inherits) if current.inherits else None
    return None


def _applies(rule: DeadlineRule, policies: frozenset[str], trigger_day: date, on_day: date) -> bool:
    if rule.applies_when is not None and rule.applies_when not in policies:
        return False
    if rule.applies_from is None or trigger_day >= rule.applies_from:
        return True
    return rule.reaches_back and on_day >= rule.applies_from


def _opens_after_whole_months(rule: DeadlineRule) -> bool:
    """An earliest date "at the earliest n months after": the day after n whole months from the anchor."""
    p = rule.period
    return (rule.deadline_kind is DeadlineKind.NOT_BEFORE and p.unit is Unit.MONTHS
            and p.count_from is CountFrom.NEXT_DAY and p.amount > 0)


def _counted(calendar: WorkingCalendar, rule: DeadlineRule, anchor: date) -> date:
    """The last day of the rule's period counted from ``anchor``, before any roll forward."""
    p = rule.period
    start = anchor - timedelta(days=1) if p.count_from is CountFrom.SAME_DAY else anchor
    if p.unit is Unit.WORKING_DAYS:
        return calendar.add_working_days(start, p.amount)
    if p.unit is Unit.MONTHS:
        if _opens_after_whole_months(rule):
            # "at the earliest n months after": the first day after n whole months counted from the anchor (as
            # "at the earliest 10 days after" is the anchor + 10): 31 May + 9 months gives 1 Mar, the day the
            # intake's eligibility check opens the same right
            return months_after(anchor, p.amount)
        return last_day_of_months(start + timedelta(days=1), p.amount)  # the period's first day: start + 1
    days = p.amount * (7 if p.unit is Unit.WEEKS else 1)
    return start + timedelta(days=days)


def _matching(matches: list[EventMatch], report: Report, tag: str, regime: Regime | None) -> bool:
    """Whether one of ``matches`` matches ``report``, whose tag is ``tag``."""
    return any(match.report == tag and match.fits(report, regime) for match in matches)


#: A return to work: (returned_on, resumed_on), the first day back at work and the first day of incapacity again.
_Return = tuple[date, date]


@dataclass(frozen=True, slots=True)
class _Incapacity:
    """The case's incapacity after an event, as the rules anchored on its current period read it (never changed in
    place: the folds copied from one another share it). For each return tolerance of the rulebook's rules
    (``_Index.tolerances``): the current period's first day, and the returns to work since then too short to
    interrupt it."""

    periods: tuple[tuple[date, tuple[_Return, ...]], ...] = ()
    #: the first day back at work of a return not over yet
    returned_on: date | None = None
    #: the return to work that the event just folded ended (None after any other event)
    ended: _Return | None = None

    def after(self, report: Report, tolerances: tuple[int, ...]) -> _Incapacity:
        """The incapacity after ``report``: only the opening report, a return to work and a resumption change it
        (a second return before the resumption, or a resumption with no return open, changes nothing)."""
        if isinstance(report, IncapacityReported):
            return _Incapacity(tuple((report.start_date, ()) for _ in tolerances))
        if isinstance(report, IncapacityInterrupted) and self.periods and self.returned_on is None:
            return _Incapacity(self.periods, report.returned_on)
        if isinstance(report, IncapacityResumed) and self.returned_on is not None:
            back: _Return = (self.returned_on, report.resumed_on)
            days = (report.resumed_on - self.returned_on).days
            return _Incapacity(
                tuple((report.resumed_on, ()) if days >= tolerance else (first, (*short, back))
                      for tolerance, (first, short) in zip(tolerances, self.periods, strict=True)),
                None, back)
        return self if self.ended is None else _Incapacity(self.periods, self.returned_on)


_NO_INCAPACITY = _Incapacity()


@dataclass(slots=True)
class _Run:
    """A deadline being followed through the history."""

    #: the deadline's id: ``uuid5(case_id, "deadline:<rule id>:<starting event id>")``
    id: UUID
    version: _Version
    event: CaseEvent
    trigger_day: date
    anchor: date
    governs_from: date
    #: the first day after ``governs_from`` on which a regime takes effect (``date.max``: none)
    switch: date
    recomputed_from: str | None = None
    recomputed_on: date | None = None
    superseded: tuple[Deadline, ...] = ()
    #: anchored on the incapacity period: the returns to work since its first day too short to interrupt it
    returns: tuple[_Return, ...] = ()

    def clone(self) -> _Run:
        """An independent copy (:meth:`_Computation.advance` changes a run in place)."""
        return _Run(self.id, self.version, self.event, self.trigger_day, self.anchor, self.governs_from, self.switch,
                    self.recomputed_from, self.recomputed_on, self.superseded, self.returns)


@dataclass(slots=True)
class _Track:
    """One rule followed through a case's history: its running deadline and the restart a suspension armed."""

    rule_id: str
    #: the reports that may start (or restart) the rule under any version
    starters: frozenset[str]
    run: _Run | None = None
    armed: DeadlineRule | None = None

    def copy(self) -> _Track:
        return _Track(self.rule_id, self.starters, self.run.clone() if self.run else None, self.armed)


#: One event as every rule reads it: the event, its report's tag and effective date, the regime in force then, and
#: the case's incapacity after it.
_Step = tuple[CaseEvent, str, date, Regime | None, _Incapacity]


class _Computation:
    def __init__(self, events: Sequence[CaseEvent], rulebook: Rulebook, policy: Policy) -> None:
        self.index = rulebook.derived(_Index)
        self.rulebook = rulebook
        self.policy = policy
        self.policy_id = policy.id
        self.calendar = self.index.calendar
        regime_on = rulebook.regime_on
        tolerances = self.index.tolerances
        incapacity = _NO_INCAPACITY
        self.steps: list[_Step] = []
        for event in sorted(events, key=lambda e: e.version):
            report = event.report
            day = report.effective_date
            if tolerances:
                incapacity = incapacity.after(report, tolerances)
            self.steps.append((event, _tag(report), day, regime_on(day), incapacity))

    def due_of(self, run: _Run) -> date:
        return self.dates_of(run)[1]

    def dates_of(self, run: _Run) -> tuple[date, date, str]:
        """The counted last day of ``run``'s period, its due date, and why the two differ beyond a roll forward.

        An earliest date (``not_before``) is a day the act is possible on: one that a later regime recomputed to a
        day before it took effect is that day, and one that falls in a return to work too short to interrupt the
        incapacity period it counts from is the resumption, the first day of incapacity after it."""
        counted, due = self.index.dates(run.version, run.anchor, self.policy.roll_forward)
        if run.version.rule.deadline_kind is not DeadlineKind.NOT_BEFORE or not (run.recomputed_on or run.returns):
            return counted, due, ""
        why = []
        if run.recomputed_on is not None and due < run.recomputed_on:
            why.append(f"the recomputed {counted} lies before {run.version.regime.id} took effect on "
                       f"{run.recomputed_on}, the earliest day under it")
            due = run.recomputed_on
        for returned, resumed in run.returns:
            if returned <= due < resumed:
                why.append(f"{due} lies in the return to work from {returned}: the incapacity resumed on {resumed}")
                due = resumed
        return counted, due, "; ".join(why)

    # the walk

    def run(self) -> list[Deadline]:
        out: list[Deadline] = []
        started_by = self.index.started_by
        # only the rules that a report of the case can start: no other rule gives a deadline
        for rule_id in dict.fromkeys(r for _, tag, *_ in self.steps for r in started_by.get(tag, ())):
            self.follow(rule_id, out)
        # a deadline's id is unique, so the order is total (UUIDs compare as their text does)
        return sorted(out, key=_order)

    def follow(self, rule_id: str, out: list[Deadline]) -> list[Deadline]:
        """Walk one rule over the whole history: every deadline it gives, appended to ``out``."""
        track = _Track(rule_id, self.index.start_tags[rule_id])
        starters, step = track.starters, self.step
        for each in self.steps:
            if track.run is None and track.armed is None and each[1] not in starters:
                continue  # what :meth:`step` returns at once, without the call
            step(track, each, out)
        if track.run is not None:
            out.append(self.view(track.run))
        return out

    def step(self, track: _Track, step: _Step, out: list[Deadline]) -> bool:
        """Walk ``track`` over one event: the deadlines it closes go to ``out``; whether it started a new run or
        moved the running one's date."""
        event, tag, day, regime, incapacity = step
        run, armed = track.run, track.armed
        if run is None and armed is None and tag not in track.starters:
            return False  # nothing runs, nothing is armed, and this report starts nothing
        report = event.report
        if run is not None and run.switch <= day and (ended := self.advance(run, day)) is not None:
            out.append(ended)
            run = None
        if run is not None:
            closing = _closing(run.version, report, tag, regime) if tag in run.version.closers else None
            if closing is not None:
                reason = None
                if closing[1]:
                    armed = run.version.rule
                    reason = "suspended" + "".join(f": {m.report} restarts it" for m in armed.restarted_by[:1])
                out.append(self.close(run, closing[0], event, reason=reason))
                run = None
        elif armed is not None and _matching(armed.cancelled_by, report, tag, regime):
            armed = None
        started = self.start(track.rule_id, event, tag, day, armed, incapacity) if tag in track.starters else None
        moved = False
        if started is not None:
            if run is not None:
                reason = _new_period(incapacity, run) or "started again"
                out.append(self.close(run, DeadlineState.CANCELLED, event, reason=reason))
            run, armed = started, None
            if run.version.rule.met_on_start:
                out.append(self.close(run, DeadlineState.MET, event))
                run = None
        elif run is not None and incapacity.ended is not None and run.version.tolerance is not None:
            first, returns = incapacity.periods[self.index.period_rules[track.rule_id]]
            if first == run.anchor:  # a return too short to interrupt the period: it may move an earliest date
                due = self.due_of(run)
                run.returns = returns
                moved = self.due_of(run) != due
            else:  # a new period the rule does not start in: the count from the period before is over
                out.append(self.close(run, DeadlineState.CANCELLED, event, reason=_new_period(incapacity, run)))
                run = None
        track.run, track.armed = run, armed
        return (started is not None or moved) and run is not None

    def view(self, run: _Run) -> Deadline:
        """The deadline of a run still open after the last event: every later regime it runs into applied."""
        run = run.clone()
        return self.advance(run, None) or self.close(run, DeadlineState.OPEN, None)

    def start(
        self, rule_id: str, event: CaseEvent, tag: str, trigger_day: date, armed: DeadlineRule | None,
        incapacity: _Incapacity,
    ) -> _Run | None:
        report = event.report
        position = self.index.period_rules.get(rule_id)
        returns: tuple[_Return, ...] = ()
        opens = True  # whether the report may start the rule (not only restart it)
        if position is not None and incapacity.periods:
            # counted from the current period's first day, which also selects the version; a resumption starts it
            # only when it opens a new period, and a suspended rule only comes back when its restart says so
            first, returns = incapacity.periods[position]
            trigger_day = first
            opens = armed is None and (not isinstance(report, IncapacityResumed)
                                       or (incapacity.ended is not None and incapacity.ended[1] == first))
        found = self.index.in_force(rule_id, trigger_day, self.policy.employer_policies)
        if found is None:
            return None
        version, governs_from, switch = found
        rule = version.rule
        starts = opens and (tag in version.starters or _matching(rule.starts_on, report, tag, version.regime))
        restarts = armed is not None and _matching(rule.restarted_by, report, tag, version.regime)
        if not (starts or restarts):
            return None
        anchor = getattr(report, rule.anchor) if starts and rule.anchor and position is None else trigger_day
        run = _Run(uuid5(event.case_id, f"deadline:{rule_id}:{event.event_id}"), version, event, trigger_day, anchor,
                   governs_from, switch, returns=returns)
        if governs_from > trigger_day and self.due_of(run) < governs_from:
            return None  # reaches back, but the period was over before the rule took effect
        return run

    def advance(self, run: _Run, until: date | None) -> Deadline | None:
        """Apply the regimes that take effect while ``run`` is running, up to ``until``; a cancellation or None."""
        regimes = self.rulebook.regimes
        for regime in regimes[bisect.bisect_right(self.index.switch_days, run.governs_from):]:
            switch = regime.valid_from
            if switch <= run.governs_from:
                continue
            if (until is not None and switch > until) or self.due_of(run) < switch:
                break
            found = self.index.versions[regime.id, run.version.rule.id]
            if found is None or not _applies(found.rule, self.policy.employer_policies, run.trigger_day, switch):
                return self.close(run, DeadlineState.CANCELLED, None, closed_on=switch,
                                  reason=f"{regime.id} took effect and has no such rule")
            if found.rule is run.version.rule:
                continue
            before = self.close(run, DeadlineState.OPEN, None)
            run.superseded = (*run.superseded, msgspec.structs.replace(before, superseded=()))
            run.recomputed_from, run.recomputed_on = run.version.regime.id, switch
            run.version, run.governs_from, run.switch = found, switch, self.index.switch_after(switch)
        return None

    def close(
        self, run: _Run, state: DeadlineState, event: CaseEvent | None, *, closed_on: date | None = None,
        reason: str | None = None,
    ) -> Deadline:
        version = run.version
        rule = version.rule
        counted, due, why = self.dates_of(run)
        if event is not None:
            closed_on = event.report.effective_date
        met = state is DeadlineState.MET
        assert closed_on is not None or state is DeadlineState.OPEN
        not_before = rule.deadline_kind is DeadlineKind.NOT_BEFORE
        return Deadline(
            id=run.id,
            case_id=run.event.case_id,
            rule=rule.id,
            regime=version.regime.id,
            inherited_from=version.inherited_from,
            legal_basis=rule.legal_basis,
            status=version.status,
            deadline_kind=rule.deadline_kind,
            party=rule.party,
            concerns_employer=rule.concerns_employer,
            calendar=self.calendar.id,
            policy=self.policy_id,
            counting=rule.period.unit,
            amount=rule.period.amount,
            count_from=rule.period.count_from,
            started_by=run.event.event_id,
            starts_on=run.anchor,
            counted_due_on=counted,
            due_on=due,
            state=state,
            closed_by=event.event_id if event is not None else None,
            closed_on=closed_on,
            late=met and not not_before and closed_on is not None and closed_on > due,
            early=met and not_before and closed_on is not None and closed_on < due,
            recomputed_from=run.recomputed_from,
            recomputed_on=run.recomputed_on,
            superseded=run.superseded,
            explanation=_explain(self, run, counted, due, why, state, event, closed_on, reason),
        )


def _closing(version: _Version, report: Report, tag: str, regime: Regime | None) -> tuple[DeadlineState, bool] | None:
    """Whether ``report`` closes a deadline under ``version``: met or cancelled, and whether it suspends it."""
    rule = version.rule
    if tag in version.meeters or _matching(rule.met_by, report, tag, regime):
        return DeadlineState.MET, False
    suspends = _matching(rule.suspended_by, report, tag, regime)
    if suspends or tag in version.cancellers or _matching(rule.cancelled_by, report, tag, regime):
        return DeadlineState.CANCELLED, suspends
    return None


def _new_period(incapacity: _Incapacity, run: _Run) -> str | None:
    """Why a run anchored on the incapacity period ends at a resumption that opened a new period (None: it did not)."""
    if incapacity.ended is None or run.version.tolerance is None or run.anchor == incapacity.ended[1]:
        return None
    (returned, resumed), tolerance = incapacity.ended, run.version.tolerance
    if (resumed - returned).days < tolerance:
        return None
    return (f"the return to work from {returned} to {resumed}, {(resumed - returned).days} days (at least "
            f"{tolerance}), ended the incapacity period of {run.anchor}: a new one began on {resumed}")


def _explain(
    c: _Computation, run: _Run, counted: date, due: date, why: str, state: DeadlineState, event: CaseEvent | None,
    closed_on: date | None, reason: str | None,
) -> str:
    """One sentence: the rule, the figure, from which date, under which regime, calendar and policy, and the state."""
    version = run.version
    rule, (before, after) = version.rule, version.counting
    text = f"{version.head}: {before}{run.anchor}{after}, so {_KIND_WORDS[rule.deadline_kind]} {due}"
    if why:
        text += f" ({why})"
    elif due != counted:
        text += f" (the counted {counted} is not a working day: moved to the next one)"
    text += f", calendar {c.calendar.id}, policy {c.policy_id}"
    if run.recomputed_from:
        text += (f"; recomputed from the {run.recomputed_from} rule when {version.regime.id} took effect on "
                 f"{run.recomputed_on}")
    if run.governs_from > run.trigger_day and not run.recomputed_from:
        text += f"; the rule took effect on {run.governs_from} and reaches back to this earlier start"
    if state is DeadlineState.OPEN:
        return text + _sanction(c.rulebook, rule, due) + "; open."
    by = f" by {_tag(event.report)}" if event is not None else ""
    why = f" ({reason})" if reason else ""
    if state is DeadlineState.MET:
        timing = " (late)" if closed_on and closed_on > due else ""
        if timing:
            text += _sanction(c.rulebook, rule, due)
        if rule.deadline_kind is DeadlineKind.NOT_BEFORE:
            timing = " (before the earliest date)" if closed_on and closed_on < due else ""
        return text + f"; met on {closed_on}{by}{timing}."
    return text + f"; cancelled on {closed_on}{by}{why}."


def _sanction(rulebook: Rulebook, rule: DeadlineRule, due: date) -> str:
    """The fines that missing ``rule`` by ``due`` exposes to (its ``sanction``'s range for an offence on the day
    after), as words for the explanation; empty when the rule names none or none is in force that day."""
    if rule.sanction is None:
        return ""
    offence = due + timedelta(days=1)
    try:
        found = rulebook.rule_on(rule.sanction, offence)
    except RulebookError:
        return ""
    scale = found.rule
    fines = scale.range_on(offence) if isinstance(scale, PenaltyScale) else None
    if fines is None:
        return ""
    assert isinstance(scale, PenaltyScale)

    def euro(low_high: tuple[Decimal, Decimal]) -> str:
        return f"{low_high[0]:,.2f} to {low_high[1]:,.2f} EUR"

    return (f"; missing it is an offence sanctioned at level {scale.level} of the {scale.code} ({scale.id}): on "
            f"{offence} a fine of {euro(fines.administrative)} administrative or {euro(fines.criminal)} criminal per "
            f"{scale.per}, established by the inspectorate (not computed here)")


def _order(deadline: Deadline) -> tuple[date, str, date, UUID]:
    """The order :func:`compute_deadlines` returns deadlines in: due date, rule, start, id (total: ids are unique)."""
    return deadline.due_on, deadline.rule, deadline.starts_on, deadline.id


class DeadlineFold:
    """:func:`compute_deadlines`, one event at a time, in time that does not grow with the case's history.

    The state is each rule's running deadline and armed restart (what :meth:`_Computation.follow` carries from one
    event to the next) and the case's incapacity (its current period under each return tolerance, for the rules
    anchored on it); a deadline, once closed, never changes again, and a running one changes only when an event
    closes it, starts another run of its rule, or (an earliest date in a short return to work) moves it. So
    :meth:`apply` returns only the deadlines the event closed, started, restarted or moved; those of every other
    rule are as they were. Folding a whole history and keeping the
    latest version of each deadline returned gives exactly ``compute_deadlines`` of that history (a property test
    checks it, and that the changes a schedule records are the same either way).

    ``apply(event, build=False)`` walks the event without building any deadline: how a schedule read back from its
    store catches up its fold (the deadlines themselves are in the recorded changes)."""

    __slots__ = ("_computation", "_owned", "incapacity", "tracks", "version")

    def __init__(self, rulebook: Rulebook, policy: Policy = Policy()) -> None:
        self._computation = _Computation((), rulebook, policy)
        #: rule id -> its track, for the rules an event of the case could start
        self.tracks: dict[str, _Track] = {}
        #: the tracks this fold may change in place: the others it shares with the folds it was copied from or to
        self._owned: set[str] = set()
        #: the version of the last event folded (0: none)
        self.version = 0
        #: the case's incapacity after the last event (never changed in place: copies share it)
        self.incapacity = _NO_INCAPACITY

    @property
    def policy(self) -> Policy:
        return self._computation.policy

    def copy(self) -> DeadlineFold:
        """An independent copy: :meth:`apply` on it leaves this one as it is."""
        other = DeadlineFold.__new__(DeadlineFold)
        other._computation = self._computation
        other.tracks = dict(self.tracks)  # shared until one of the two changes a track (copied then)
        other._owned = set()
        other.version = self.version
        other.incapacity = self.incapacity
        self._owned = set()
        return other

    def __eq__(self, other: object) -> bool:
        """Equal folds: same rulebook and policy, same events folded, same running deadlines and armed restarts, same
        incapacity."""
        if not isinstance(other, DeadlineFold):
            return NotImplemented
        mine, theirs = self._computation, other._computation
        return (self.version == other.version and mine.rulebook is theirs.rulebook and mine.policy == theirs.policy
                and self.incapacity == other.incapacity and self.tracks == other.tracks)

    __hash__ = None  # type: ignore[assignment]

    def apply(self, event: CaseEvent, *, build: bool = True) -> list[Deadline]:
        """Fold the case's next event (its version must follow the last one's); the deadlines it changed, in the
        order of :func:`compute_deadlines` (none when ``build`` is false)."""
        if event.version != self.version + 1:
            raise ValueError(f"case event version {event.version} does not follow {self.version}")
        c = self._computation
        report = event.report
        day = report.effective_date
        tag = _tag(report)
        if c.index.tolerances:
            self.incapacity = self.incapacity.after(report, c.index.tolerances)
        step: _Step = (event, tag, day, c.rulebook.regime_on(day), self.incapacity)
        for rule_id in c.index.started_by.get(tag, ()):
            if rule_id not in self.tracks:
                self.tracks[rule_id] = _Track(rule_id, c.index.start_tags[rule_id])
                self._owned.add(rule_id)
        out: list[Deadline] = []
        for rule_id, track in self.tracks.items():
            if track.run is None and track.armed is None and tag not in track.starters:
                continue
            if rule_id not in self._owned:  # shared with another fold: this one changes its own copy
                track = self.tracks[rule_id] = track.copy()
                self._owned.add(rule_id)
            if c.step(track, step, out) and build and track.run is not None:
                out.append(c.view(track.run))  # a run this event started or moved
        self.version = event.version
        if not build:
            return []
        return sorted(out, key=_order)

    def deadlines(self) -> list[Deadline]:
        """The deadlines still running, as :func:`compute_deadlines` returns them (closed ones are not kept, nor a
        run that a later regime's switch, on or before its due date, cancels)."""
        c = self._computation
        views = (c.view(t.run) for t in self.tracks.values() if t.run is not None)
        return sorted((d for d in views if d.state is DeadlineState.OPEN), key=_order)


def compute_deadlines(events: Sequence[CaseEvent], rulebook: Rulebook, policy: Policy = Policy()) -> list[Deadline]:
    """Every deadline the case's history starts under ``rulebook`` and ``policy``, by due date then rule id.

    Pure and deterministic: no clock, no I/O; the same events, rulebook and policy give equal deadlines.
    """
    if not events:
        return []
    return _Computation(events, rulebook, policy).run()


__all__ = [
    "CountFrom",
    "Deadline",
    "DeadlineFold",
    "DeadlineKind",
    "DeadlineRule",
    "DeadlineState",
    "EventMatch",
    "PenaltyRange",
    "PenaltyScale",
    "Period",
    "Policy",
    "Unit",
    "compute_deadlines",
    "employer_policy_names",
    "overdue",
]


#: What a fired timer means for each kind of deadline.
OUTCOME_BY_KIND = {"due": "missed", "window": "expired", "reminder": "reminded", "not_before": "reached"}


def case_policy(policy: Policy, employer_policies: dict[str, frozenset[str]], enterprise_number: str) -> Policy:
    """``policy`` with the employer policies (policy name -> enterprise numbers, or ``*``) of this case's employer
    only: what the deadlines service, the auditor and ``simulate`` all apply to a case."""
    own = frozenset(
        name for name, employers in employer_policies.items() if "*" in employers or enterprise_number in employers
    )
    return msgspec.structs.replace(policy, employer_policies=policy.employer_policies | own)


def employer_policy_names(rulebook: Rulebook) -> frozenset[str]:
    """The employer policies the rulebook's rules name (their ``applies_when``)."""
    return frozenset(rule.applies_when for rule in rulebook.rules(DeadlineRule)
                     if isinstance(rule, DeadlineRule) and rule.applies_when)


def parse_employer_policies(values: tuple[str, ...], rulebook: Rulebook | None = None) -> dict[str, frozenset[str]]:
    """``("flemish-government-return-coach=0316381039 0207437468", "other=*")`` -> policy name -> employers.

    ``rulebook``: a policy it has no rule for (:func:`employer_policy_names`) would change nothing, so it is refused
    rather than accepted without a word (a typo would silently drop a policy)."""
    known = employer_policy_names(rulebook) if rulebook is not None else None
    out: dict[str, frozenset[str]] = {}
    for value in values:
        name, _, employers = value.partition("=")
        name = name.strip()
        if not name or not employers.strip():
            raise ValueError(f"employer policy {value!r}: write <policy>=<enterprise number ...> or <policy>=*")
        if known is not None and name not in known:
            raise ValueError(f"employer policy {name!r} (REINTEGRATION_EMPLOYER_POLICIES) has no rule in the rulebook; "
                             f"known: {', '.join(sorted(known)) or 'none'}")
        out[name] = frozenset(employers.split())
    return out
