"""What the rule functions remember or arrange once per rulebook gives the answers they would compute afresh.

The indexes (``Rulebook.derived``), the remembered lookups (rule versions, period dates, ``find_rule``), the
shortcut that follows only the rules a case's reports can start, and the faster id and month arithmetic are
checked against the plain definitions; the properties of the results themselves live in the other test modules.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from pathlib import Path

from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shared.rulebook as rulebook_package
from shared.events.ids import uuid5
from shared.rulebook import Rulebook, default_rulebook
from shared.rulebook.benefits import BenefitRule, Options, compute_ledger
from shared.rulebook.benefits_route import _is_invitation, _is_questionnaire
from shared.rulebook.benefits_rules import AnnouncedWorkerReduction, _find_rule, find_rule
from shared.rulebook.calendar import add_months
from shared.rulebook.deadlines import Deadline, Policy, _Computation, compute_deadlines
from tests.unit.test_benefits_builder import History as LedgerHistory
from tests.unit.test_benefits_properties import cases
from tests.unit.test_deadlines import History
from tests.unit.test_deadlines_props import NL, POLICIES, histories

BE = default_rulebook()
FOLDER = Path(rulebook_package.__file__).parent
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fresh(rulebook: Rulebook) -> Rulebook:
    """The same rulebook loaded again: nothing arranged or remembered yet."""
    return Rulebook.from_path(FOLDER / f"{rulebook.country.lower()}.toml")


def every_rule(history: History, rulebook: Rulebook, policy: Policy) -> list[Deadline]:
    """The deadlines with every rule followed through the whole history (no rule passed over)."""
    computation = _Computation(history.events, rulebook, policy)
    found: list[Deadline] = []
    for rule_id in computation.index.rule_ids:
        computation.follow(rule_id, found)
    return sorted(found, key=lambda d: (d.due_on, d.rule, d.starts_on, str(d.id)))


@PROPERTY
@given(st.sampled_from([BE, NL]).flatmap(histories), POLICIES)
def test_deadlines_are_those_of_a_fresh_rulebook_and_of_every_rule_followed(h: History, policy: Policy) -> None:
    found = compute_deadlines(h.events, h.rulebook, policy)
    assert found == compute_deadlines(h.events, fresh(h.rulebook), policy)
    assert found == every_rule(h, h.rulebook, policy)


@PROPERTY
@given(cases())
def test_the_ledger_is_that_of_a_fresh_rulebook(case: tuple[LedgerHistory, Options, bool]) -> None:
    h, options, prior = case
    computed = compute_ledger(h.events, BE, options, prior_premium=prior)
    assert computed == compute_ledger(h.events, fresh(BE), options, prior_premium=prior)


def test_find_rule_remembers_what_it_would_find_afresh() -> None:
    kinds = {type(rule) for rule in BE.rules(BenefitRule)} - {AnnouncedWorkerReduction}
    day = date(2015, 1, 1)
    while day < date(2028, 1, 1):
        for kind in sorted((k for k in kinds if issubclass(k, BenefitRule)), key=lambda k: k.__name__):
            assert find_rule(BE, kind, day) == _find_rule(BE, kind, day, None), (kind.__name__, day)
        for where in (_is_invitation, _is_questionnaire):  # two rules of this kind, told apart by their trigger
            found = find_rule(BE, AnnouncedWorkerReduction, day, where=where)
            assert found == _find_rule(BE, AnnouncedWorkerReduction, day, where)
        day += timedelta(days=11)


def test_regime_on_is_the_last_regime_started_on_or_before_the_day() -> None:
    for rulebook in (BE, NL):
        for regime in rulebook.regimes:
            for day in (regime.valid_from - timedelta(days=1), regime.valid_from, regime.valid_from + timedelta(1)):
                started = [r for r in rulebook.regimes if r.valid_from <= day]
                assert rulebook.regime_on(day) == (started[-1] if started else None)
    assert BE.regime_on(date.min) is None


def test_rules_of_a_kind_are_a_copy_the_caller_may_change() -> None:
    rules = BE.rules(BenefitRule)
    rules.clear()
    assert BE.rules(BenefitRule) and len(BE.rules()) > len(BE.rules(BenefitRule))


def test_derived_is_built_once_per_rulebook() -> None:
    built: list[Rulebook] = []

    def build(rulebook: Rulebook) -> int:
        built.append(rulebook)
        return len(built)

    other = fresh(BE)
    assert (BE.derived(build), BE.derived(build), other.derived(build)) == (1, 1, 2)
    assert built == [BE, other]


def test_uuid5_is_the_standard_librarys() -> None:
    rng = random.Random(11)
    for n in range(2000):
        namespace = uuid.UUID(int=rng.getrandbits(128))
        name = f"deadline:rule.{n}:{uuid.UUID(int=rng.getrandbits(128))}" + "é€" * (n % 3)
        ours, theirs = uuid5(namespace, name), uuid.uuid5(namespace, name)
        assert ours == theirs and str(ours) == str(theirs) and ours.version == 5 and ours.is_safe is theirs.is_safe


def test_add_months_is_dateutils_relativedelta() -> None:
    day = date(2015, 12, 25)
    while day < date(2029, 3, 5):
        for months in (-25, -13, -12, -1, 0, 1, 2, 3, 9, 11, 12, 13, 24, 40):
            assert add_months(day, months) == day + relativedelta(months=months), (day, months)
        day += timedelta(days=1)
