"""The 2026 benefit rules as data: moving an uncertain start (a deployment setting), the 1,800 EUR on a mutual
agreement on medical grounds, and the responsibility contribution left to incapacities before 2026."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from shared.infra.settings import Settings, parse_rule_starts
from shared.rulebook.benefits import (
    BenefitRule,
    MissedExaminationReduction,
    ResponsibilityContributionRule,
    compute_ledger,
    find_rule,
    responsibility_contribution,
)
from shared.rulebook.model import Status, default_rulebook
from tests.unit.test_benefits_2026_builder import TNW_2026, Case2026
from tests.unit.test_benefits_builder import RB
from tests.unit.test_benefits_rules import figures

D = Decimal


def test_every_2026_rule_says_which_date_selects_it_and_has_a_basis() -> None:
    rules = [r for r in RB.rules(BenefitRule) if r.regime == "BE-2026"]
    assert {r.id for r in rules} == {
        "partial_resumption.guaranteed_wage_exemption", TNW_2026, "return_to_work.no_show_suspension",
        "incapacity.relapse_window", "force_majeure.contribution", "employer.solidarity_contribution"}
    for rule in rules:
        assert rule.legal_basis and "selected by" in rule.note, rule.id
    assert [r.id for r in RB.rules() if r.start_uncertain] == [TNW_2026]


def test_an_uncertain_start_may_be_moved_and_the_rulebook_says_so() -> None:
    moved = RB.with_rule_starts({TNW_2026: date(2026, 1, 1)})
    assert moved.label == f"{RB.label} (starts: {TNW_2026}=2026-01-01)" and moved.moved_starts == {
        TNW_2026: date(2026, 1, 1)}
    for rulebook, rule in ((RB, "return_to_work.missed_examination_reduction"), (moved, TNW_2026)):
        found = find_rule(rulebook, MissedExaminationReduction, date(2026, 1, 15))  # each keeps its own answers
        assert found is not None and found.rule.id == rule and found.status() is Status.UNCERTAIN
    assert RB.with_rule_starts({}) is RB and len(moved.rules()) == len(RB.rules())
    assert default_rulebook(starts=((TNW_2026, date(2026, 1, 1)),)) is default_rulebook(
        starts=((TNW_2026, date(2026, 1, 1)),))  # built once per process
    assert default_rulebook(starts=((TNW_2026, date(2026, 1, 1)),)).label == moved.label
    # a deployment that moves nothing shares the one rulebook (rules compare it by identity), however it asks
    assert default_rulebook(starts=()) is default_rulebook() is default_rulebook("be", ())


@pytest.mark.parametrize(
    ("starts", "message"),
    [
        ({"no.such.rule": date(2026, 1, 1)}, "has no rule no.such.rule"),
        ({"return_to_work_premium.2025": date(2025, 5, 1)}, "is not marked uncertain"),
        ({"return_to_work.missed_examination_reduction": date(2026, 1, 1)}, "is not marked uncertain"),
        ({TNW_2026: date(2025, 12, 31)}, "belongs to BE-2026, which starts 2026-01-01"),
    ],
)
def test_only_starts_marked_uncertain_move_and_within_their_regime(starts: dict[str, date], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RB.with_rule_starts(starts)


def test_the_setting_is_read_as_id_equals_date_pairs() -> None:
    assert parse_rule_starts("") == {}
    assert parse_rule_starts(f" {TNW_2026} = 2026-01-01 ,") == {TNW_2026: date(2026, 1, 1)}
    for bad, message in ((TNW_2026, "is not <rule id>="), (f"{TNW_2026}=1 March", "is not a date"),
                         (f"{TNW_2026}=2026-01-01,{TNW_2026}=2026-03-01", "given twice")):
        with pytest.raises(ValueError, match=message):
            parse_rule_starts(bad)
    settings = Settings.from_env({"REINTEGRATION_RULE_STARTS": f"{TNW_2026}=2026-01-01"})
    assert settings.rule_starts == ((TNW_2026, date(2026, 1, 1)),)
    assert Settings.from_env(settings.to_env()).rule_starts == settings.rule_starts  # passed on to the services
    assert Settings.from_env({}).rule_starts == ()


# --- the 1,800 EUR on a termination by mutual agreement on medical grounds -----------------------------------------


def terminated(on: date, reason: str, *, decision: bool) -> Case2026:
    h = Case2026(start=date(2025, 1, 6))
    if decision:
        h.force_majeure(date(2025, 10, 1), date(2025, 11, 17))
    h.terminate(on, reason)
    return h


@pytest.mark.parametrize(
    ("on", "reason", "decision", "status"),
    [
        (date(2025, 12, 31), "mutual_agreement_medical", True, None),  # before 2026: not due
        (date(2026, 1, 1), "mutual_agreement_medical", False, Status.UNCERTAIN),  # rests on "no decision needed"
        (date(2026, 1, 1), "mutual_agreement_medical", True, Status.CONFIRMED),  # due under any reading
        (date(2026, 1, 1), "medical_force_majeure", True, Status.CONFIRMED),
        (date(2026, 1, 1), "medical_force_majeure", False, None),  # force majeure still needs the decision
        (date(2026, 1, 1), "mutual_agreement", False, None),  # not on medical grounds
    ],
)
def test_force_majeure_contribution_also_on_a_mutual_agreement_from_2026(on: date, reason: str, decision: bool,
                                                                        status: Status | None) -> None:
    entries = [e for e in compute_ledger(terminated(on, reason, decision=decision).events, RB)
               if e.rule == "force_majeure.contribution"]
    assert [(e.amount, e.status, e.regime) for e in entries] == (
        [] if status is None else [(D("1800.00"), status, "BE-2026")])
    for e in entries:
        assert ("mutual agreement on medical grounds" in e.explanation) is (reason == "mutual_agreement_medical")
        assert ("requiring none for a mutual agreement: uncertain" in e.explanation) is (status is Status.UNCERTAIN)


# --- the responsibility contribution, replaced for incapacities from 2026 ------------------------------------------


def test_the_responsibility_contribution_counts_only_incapacities_started_before_2026() -> None:
    [rule] = RB.rules(ResponsibilityContributionRule)
    assert isinstance(rule, ResponsibilityContributionRule) and rule.incapacity_until == date(2025, 12, 31)
    before = responsibility_contribution(figures(year=2025, quarter=4), RB)
    after = responsibility_contribution(figures(year=2026, quarter=1), RB)
    assert (before.incapacities_until, before.status) == (None, Status.CONFIRMED)
    assert "solidarity" not in before.explanation
    assert (after.due, after.incapacities_until, after.status) == (True, date(2025, 12, 31), Status.UNCERTAIN)
    assert ("only workers whose incapacity started on or before 2025-12-31 count" in after.explanation
            and "from 2026-01-01 fall under the solidarity contribution" in after.explanation)
