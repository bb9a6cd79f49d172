"""The rulebook's data model: regimes and rules as typed, effective-dated data, loaded from TOML.

A second country's regime (or a draft version of this one) is new TOML, not new code: the lookup below is the
only place that knows how a rule's version is chosen. A rulebook is one main file (version, country, calendar,
regimes, rules) plus any number of rule files beside it (``<main>-*.toml``, rules only). Each kind of rule is a
``RuleBase`` subclass with its own tag, registered with :func:`rule_kind` by the module that computes with it.

A rule whose start date is uncertain lists ``applies_from`` among its ``uncertain`` parameters; a deployment may
move such a start (and only such a start) with :meth:`Rulebook.with_rule_starts` (the setting
``REINTEGRATION_RULE_STARTS``, ``<rule id>=<date>,...``, read by ``shared.infra.settings.parse_rule_starts``).
"""

from __future__ import annotations

import bisect
import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TypeVar, Union, cast

import msgspec


class Status(enum.StrEnum):
    CONFIRMED = "C"
    UNCERTAIN = "U"
    ANNOUNCED = "A"


class Regime(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    country: str
    valid_from: date
    instrument: str
    status: Status
    decision_codes: list[str]
    definitive_codes: list[str]
    #: Which decision codes call for a plan (or a motivated report), and for which unfitness.
    plan_codes: dict[str, str]
    counting: str
    inherits: str | None = None
    #: What each decision code means for the employer, as the assessment form it receives states it.
    decision_meanings: dict[str, str] = {}


def inherited_status(status: Status, regime: Regime, inherited_from: str | None) -> Status:
    """The status of a rule as applied in ``regime``: a confirmed rule that an uncertain regime merely inherits
    ("the 2022 figures apply unless a rule says otherwise") is only as sure as that regime: uncertain."""
    if inherited_from is not None and status is Status.CONFIRMED and regime.status is not Status.CONFIRMED:
        return Status.UNCERTAIN
    return status


class RuleBase(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    id: str
    regime: str
    legal_basis: str
    status: Status
    note: str = ""
    #: A rule may start later than its regime (e.g. BE-2016's worker requests from 1 Jan 2017).
    applies_from: date | None = None
    #: Parameters whose value is uncertain (U) although the rule is stated (C): what depends on one is U.
    #: ``applies_from`` here: the day the rule starts is uncertain, and a deployment may move it
    #: (:meth:`Rulebook.with_rule_starts`).
    uncertain: tuple[str, ...] = ()

    @property
    def start_uncertain(self) -> bool:
        """Whether the day this rule starts is uncertain (``applies_from`` listed in ``uncertain``)."""
        return "applies_from" in self.uncertain


class RequestRight(RuleBase, frozen=True, tag="request_right"):
    """Who may request a re-integration trajectory, from how long an incapacity."""

    initiator: str
    allowed: bool = True
    min_months: int = 0
    #: A return to work shorter than this many days does not interrupt the incapacity (0: every return does).
    return_tolerance_days: int = 0
    certificate_exempts: bool = False
    consent_exempts: bool = False
    #: The occupational health service's latest estimate before the request found work potential (2026).
    estimate_exempts: bool = False


class ForceMajeureStart(RuleBase, frozen=True, tag="force_majeure_start"):
    """Preconditions of the separate medical force-majeure procedure."""

    allowed: bool = True
    min_months: int = 0
    return_tolerance_days: int = 0
    no_trajectory_running: bool = False
    min_days_to_invitation: int = 0


#: Every registered kind of rule, by its tag. Modules add theirs with :func:`rule_kind`.
RULE_KINDS: dict[str, type[RuleBase]] = {}


def rule_kind(cls: type[RuleBase]) -> type[RuleBase]:
    """Register a kind of rule so that rulebook files may use it (class decorator)."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str), f"{cls.__name__} needs a tag"
    RULE_KINDS[tag] = cls
    return cls


rule_kind(RequestRight)
rule_kind(ForceMajeureStart)

AnyRule = RuleBase


class CalendarSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    description: str
    country: str


class RulebookHead(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    country: str
    calendar: CalendarSpec
    regimes: list[Regime]


def _rules_type() -> type:
    kinds = tuple(RULE_KINDS.values())
    return list[Union[kinds]]  # type: ignore[valid-type]  # noqa: UP007


def _convert_rules(data: dict[str, object], source: str) -> list[RuleBase]:
    unknown = set(data) - {"rules"}
    if unknown:
        raise ValueError(f"{source}: a rule file holds only [[rules]], not {', '.join(sorted(unknown))}")
    try:
        return list(msgspec.convert(data.get("rules", []), type=_rules_type()))
    except msgspec.ValidationError as exc:
        raise ValueError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class RuleInForce:
    """The version of a rule that applies on a date, with where it came from."""

    rule: RuleBase
    regime: Regime
    #: The regime the rule was inherited from, when the regime in force does not define it itself.
    inherited_from: str | None = None

    @property
    def status(self) -> Status:
        """The rule's status as applied in the regime in force (see :func:`inherited_status`)."""
        return inherited_status(self.rule.status, self.regime, self.inherited_from)


class RuleStartError(ValueError):
    """A rule start a deployment moves (:meth:`Rulebook.with_rule_starts`) that this rulebook cannot move: an unknown
    rule, a start that is stated, a day before the rule's regime."""


class RulebookError(LookupError):
    """No regime or no rule applies: carries the rule id and regime for the rejection. ``not_yet``: the regime
    has the rule, but it applies only from a later date (``applies_from``)."""

    def __init__(self, message: str, rule: str | None = None, regime: str | None = None, *,
                 not_yet: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.regime = regime
        self.not_yet = not_yet


T = TypeVar("T")


class Rulebook:
    """Regimes and rules of one country, chosen by date. Never changed once built: the lookups below and the
    indexes that the rule modules arrange once per rulebook (:meth:`derived`) rely on it."""

    def __init__(self, head: RulebookHead, rules: list[RuleBase], *, moved: Mapping[str, date] | None = None
                 ) -> None:
        self._head = head
        #: Rule starts a deployment moved (:meth:`with_rule_starts`), by rule id.
        self.moved_starts: dict[str, date] = dict(sorted((moved or {}).items()))
        self.version = head.version
        self.country = head.country
        #: How records name the rulebook they were computed under: ``<country> <version>``, plus the rule starts
        #: a deployment moved (``BE 2026.12-1 (starts: <rule id>=2026-01-01)``).
        self.label = f"{head.country} {head.version}"
        if self.moved_starts:
            moved_text = ", ".join(f"{rule_id}={day.isoformat()}" for rule_id, day in self.moved_starts.items())
            self.label += f" (starts: {moved_text})"
        self.calendar = head.calendar
        self.regimes = sorted(head.regimes, key=lambda r: r.valid_from)
        self._starts = [r.valid_from for r in self.regimes]
        self._by_id = {r.id: r for r in self.regimes}
        self._by_kind: dict[type[RuleBase] | None, list[RuleBase]] = {}
        self._derived: dict[Callable[[Rulebook], object], object] = {}
        self._rules: dict[tuple[str, str], RuleBase] = {}
        for rule in rules:
            key = (rule.regime, rule.id)
            if rule.regime not in self._by_id:
                raise ValueError(f"rule {rule.id}: unknown regime {rule.regime}")
            if key in self._rules:
                raise ValueError(f"rule {rule.id} defined twice for regime {rule.regime}")
            self._rules[key] = rule
        for regime in self.regimes:
            if regime.inherits and regime.inherits not in self._by_id:
                raise ValueError(f"regime {regime.id} inherits unknown regime {regime.inherits}")

    @classmethod
    def from_toml(cls, text: str | bytes, *rule_files: str | bytes, source: str = "rulebook") -> Rulebook:
        """A rulebook from its main file's text and the texts of its rule files."""
        head_data = msgspec.toml.decode(text)
        rules = _convert_rules({"rules": head_data.pop("rules", [])}, source)
        unknown = set(head_data) - {"version", "country", "calendar", "regimes"}
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            head = msgspec.convert(head_data, type=RulebookHead)
        except msgspec.ValidationError as exc:
            raise ValueError(f"{source}: {exc}") from None
        for n, extra in enumerate(rule_files, start=1):
            rules.extend(_convert_rules(msgspec.toml.decode(extra), f"{source} rule file {n}"))
        return cls(head, rules)

    @classmethod
    def from_path(cls, path: Path) -> Rulebook:
        """The rulebook at ``path`` with its rule files ``<stem>-*.toml`` beside it."""
        load_rule_kinds()
        extra = sorted(path.parent.glob(f"{path.stem}-*.toml"))
        return cls.from_toml(path.read_bytes(), *(p.read_bytes() for p in extra), source=str(path))

    def with_rule_starts(self, starts: Mapping[str, date]) -> Rulebook:
        """This rulebook with the start (``applies_from``) of the named rules moved: a new rulebook, with its own
        indexes and remembered lookups, named by its label (``self`` when nothing moves).

        Only a rule whose start is marked uncertain (``applies_from`` in its ``uncertain``) may move, to a day not
        before its regime's start; an unknown id, a rule whose start is stated, or an id that several regimes
        mark uncertain is refused with :class:`RuleStartError`."""
        if not starts:
            return self
        rules = dict(self._rules)
        for rule_id, day in starts.items():
            versions = [key for key, rule in self._rules.items() if rule.id == rule_id]
            if not versions:
                raise RuleStartError(f"{self.label} has no rule {rule_id}")
            movable = [key for key in versions if self._rules[key].start_uncertain]
            if not movable:
                raise RuleStartError(f"the start of rule {rule_id} is not marked uncertain (applies_from "
                                 "in its uncertain parameters), so it cannot be moved")
            if len(movable) > 1:
                raise RuleStartError(f"rule {rule_id} has an uncertain start in several regimes "
                                 f"({', '.join(k[0] for k in movable)})")
            key = movable[0]
            regime = self._by_id[key[0]]
            if day < regime.valid_from:
                raise RuleStartError(f"rule {rule_id} belongs to {regime.id}, which starts "
                                 f"{regime.valid_from.isoformat()}; it cannot start on {day.isoformat()}")
            rules[key] = msgspec.structs.replace(self._rules[key], applies_from=day)
        moved = {**self.moved_starts, **starts}
        return Rulebook(self._head, list(rules.values()), moved=moved)

    def rules(self, kind: type[RuleBase] | None = None) -> list[RuleBase]:
        """All rules (of one kind), in file order."""
        found = self._by_kind.get(kind)
        if found is None:
            found = self._by_kind[kind] = [r for r in self._rules.values() if kind is None or isinstance(r, kind)]
        return list(found)

    def derived(self, build: Callable[[Rulebook], T]) -> T:
        """``build(self)``, built on the first call and kept with the rulebook: how a rule module arranges the
        rules once for the lookups of every computation under this rulebook."""
        if build not in self._derived:
            self._derived[build] = build(self)
        return cast(T, self._derived[build])

    def regime(self, regime_id: str) -> Regime:
        return self._by_id[regime_id]

    def lineage(self, regime_id: str) -> list[str]:
        """The regime and those it inherits from, nearest first (BE-2026, BE-2022)."""
        chain = [regime_id]
        while (parent := self._by_id[chain[-1]].inherits) is not None:
            chain.append(parent)
        return chain

    def has_rule(self, regime_id: str, rule_id: str) -> bool:
        """Whether ``regime_id`` has ``rule_id``, its own or inherited, whatever day the rule starts."""
        return any((regime, rule_id) in self._rules for regime in self.lineage(regime_id))

    def regime_on(self, day: date) -> Regime | None:
        """The regime in force on ``day``, or ``None`` before the first one (the last to start on or before it)."""
        index = bisect.bisect_right(self._starts, day)
        return self.regimes[index - 1] if index else None

    def rule_on(self, rule_id: str, day: date) -> RuleInForce:
        """The version of ``rule_id`` in force on ``day``; :class:`RulebookError` when none is."""
        regime = self.regime_on(day)
        if regime is None:
            raise RulebookError(
                f"no {self.country} regime is in force on {day.isoformat()} "
                f"(the first starts {self.regimes[0].valid_from.isoformat()})",
                rule=rule_id,
            )
        current: Regime | None = regime
        while current is not None:
            rule = self._rules.get((current.id, rule_id))
            if rule is not None:
                if rule.applies_from is not None and day < rule.applies_from:
                    raise RulebookError(
                        f"rule {rule_id} of {current.id} applies from {rule.applies_from.isoformat()}, "
                        f"not on {day.isoformat()}",
                        rule=rule_id,
                        regime=regime.id,
                        not_yet=True,
                    )
                inherited = current.id if current is not regime else None
                return RuleInForce(rule=rule, regime=regime, inherited_from=inherited)
            current = self._by_id.get(current.inherits) if current.inherits else None
        raise RulebookError(f"regime {regime.id} has no rule {rule_id}", rule=rule_id, regime=regime.id)


def load_rule_kinds() -> None:
    """Import the modules that register rule kinds (deadlines, benefits), so their rule files decode."""
    import importlib

    for name in ("shared.rulebook.deadlines", "shared.rulebook.benefits"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def default_rulebook(country: str = "be", starts: tuple[tuple[str, date], ...] = ()) -> Rulebook:
    """The rulebook shipped with the project for ``country`` (``be``; ``nl`` for the Dutch comparison), with the
    rule starts a deployment moved (``starts``: ``(rule id, day)`` pairs, see :meth:`Rulebook.with_rule_starts`),
    built once per process for each: however it is called, the same arguments give the same object."""
    return _default_rulebook(country, tuple(sorted(starts)))


@functools.cache
def _default_rulebook(country: str, starts: tuple[tuple[str, date], ...]) -> Rulebook:
    if starts:
        return _default_rulebook(country, ()).with_rule_starts(dict(starts))
    load_rule_kinds()
    folder = resources.files("shared.rulebook")
    main = folder.joinpath(f"{country}.toml")
    extra = sorted(
        (f for f in folder.iterdir() if f.name.startswith(f"{country}-") and f.name.endswith(".toml")),
        key=lambda f: f.name,
    )
    return Rulebook.from_toml(main.read_bytes(), *(f.read_bytes() for f in extra), source=f"{country}.toml")
