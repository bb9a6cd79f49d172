"""The benefit rules as data: the responsibility contribution at its thresholds, the TOML's shape, versions by date."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from importlib import resources

import pytest

from shared.rulebook import Rulebook
from shared.rulebook.benefits import (
    AnnouncedWorkerReduction,
    BenefitRule,
    ResponsibilityInput,
    ReturnToWorkPremium,
    compute_ledger,
    find_rule,
    responsibility_contribution,
)
from shared.rulebook.model import RULE_KINDS, Status
from tests.unit.test_benefits_builder import RB, History

D = Decimal
BENEFIT_TOML = resources.files("shared.rulebook").joinpath("be-benefits.toml")


def figures(**changes: object) -> ResponsibilityInput:
    base: dict[str, object] = {
        "enterprise_number": "0403170701", "year": 2024, "quarter": 3, "staff": 50, "invalidity_entries": 3,
        "inflow_rate": D("0.0060"), "sector_inflow_rate": D("0.0030"), "private_sector_inflow_rate": D("0.0020"),
        "previous_quarter_wages": D("1234567.89"),
    }
    base.update(changes)
    return ResponsibilityInput(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "unmet"),
    [
        ({}, ()),  # every threshold met exactly: 50 staff, 3 entries, exactly 2x and 3x
        ({"staff": 49}, ("staff",)),
        ({"invalidity_entries": 2}, ("invalidity_entries",)),
        ({"sector_inflow_rate": D("0.0030001")}, ("sector_inflow",)),  # just under 2x the sector
        ({"private_sector_inflow_rate": D("0.0020001")}, ("private_sector_inflow",)),  # just under 3x
        ({"inflow_rate": D("0.0059999")}, ("sector_inflow", "private_sector_inflow")),
        ({"year": 2023, "quarter": 1}, ("rule_in_force",)),  # first due in Q2 2023
    ],
)
def test_responsibility_contribution_thresholds(changes: dict[str, object], unmet: tuple[str, ...]) -> None:
    result = responsibility_contribution(figures(**changes), RB)
    assert result.unmet == unmet
    assert result.due is (unmet == ())
    if result.due:
        assert result.amount == D("7716.05")  # 0.625% of 1,234,567.89 = 7,716.0493125
        assert (result.rule, result.regime, result.status) == ("employer.responsibility_contribution", "BE-2022",
                                                               Status.CONFIRMED)
        assert "7,716.05 EUR" in result.explanation
    else:
        assert result.amount is None


@pytest.mark.parametrize(
    ("year", "quarter", "wages", "amount", "regime"),
    [(2023, 2, D("80000.00"), D("500.00"), "BE-2022"), (2026, 1, D("1000.04"), D("6.25"), "BE-2026")],
)
def test_responsibility_contribution_amount(year: int, quarter: int, wages: Decimal, amount: Decimal, regime: str) -> None:
    # 1000.04 x 0.625% = 6.25025 -> 6.25
    result = responsibility_contribution(figures(year=year, quarter=quarter, previous_quarter_wages=wages), RB)
    assert (result.due, result.amount, result.regime) == (True, amount, regime)
    assert "0.625% of the previous quarter's wages" in result.explanation


def test_benefit_rules_are_complete_data() -> None:
    rules = [rule for rule in RB.rules() if isinstance(rule, BenefitRule)]
    assert len(rules) == 36  # 29 before the 2026 rules (TNW 10%, no-show, relapse x3, force majeure, solidarity)
    for rule in rules:
        assert rule.legal_basis and rule.note, rule.id
        assert type(rule).__struct_config__.tag in RULE_KINDS
        start = rule.applies_from or RB.regime(rule.regime).valid_from
        assert RB.rule_on(rule.id, start).rule is rule  # the model's own lookup agrees
        where = (lambda r, t=rule.trigger: r.trigger is t) if isinstance(rule, AnnouncedWorkerReduction) else None
        found = find_rule(RB, type(rule), start, where=where)  # raises on two versions starting the same day
        assert found is not None and found.rule is rule
    assert {r.id for r in rules if r.status is Status.ANNOUNCED} == {
        "sanction.employer.non_cooperation", "sanction.worker.questionnaire", "sanction.worker.invitation"}


def test_amounts_and_percentages_are_written_as_strings_never_floats() -> None:
    data = tomllib.loads(BENEFIT_TOML.read_text())
    decimal_fields = {"amount", "amount_per_hour", "percentage", "exempt_percentage", "sector_factor",
                      "private_sector_factor"}
    for rule in data["rules"]:
        for name in decimal_fields & rule.keys():
            assert isinstance(rule[name], str), (rule["id"], name)
            assert not isinstance(rule[name], float)


@pytest.mark.parametrize(
    ("day", "rule", "regime", "expired"),
    [
        (date(2023, 3, 31), None, None, False),
        (date(2023, 4, 1), "return_to_work_premium.2023", "BE-2022", False),
        (date(2024, 1, 1), "return_to_work_premium.2024", "BE-2022", False),
        (date(2025, 3, 31), "return_to_work_premium.2024", "BE-2022", False),
        (date(2025, 4, 1), "return_to_work_premium.2025", "BE-2022", False),  # no end date (RULEBOOK section 10)
        (date(2026, 1, 1), "return_to_work_premium.2025", "BE-2026", False),  # inherited from BE-2022
    ],
)
def test_premium_versions_by_date(day: date, rule: str | None, regime: str | None, expired: bool) -> None:
    found = find_rule(RB, ReturnToWorkPremium, day)
    got = (found.rule.id, found.regime.id, found.expired) if found else (None, None, False)
    assert got == (rule, regime, expired)


def test_a_figure_changed_in_the_data_changes_the_ledger() -> None:
    """Rules are data: a draft rulebook with another premium amount pays that amount, no code involved."""
    main = resources.files("shared.rulebook").joinpath("be.toml").read_bytes()
    text = BENEFIT_TOML.read_text()
    assert text.count('amount = "1725.00"') == 2  # the 2024 version and the one without end date
    draft = Rulebook.from_toml(main, text.replace('amount = "1725.00"', 'amount = "2000.00"'), source="draft")
    h = History(start=date(2022, 1, 3))
    h.declare(date(2024, 1, 1), 19)
    h.authorise(date(2024, 1, 5))
    h.review(date(2024, 5, 1))
    [premium] = [e for e in compute_ledger(h.events, draft) if e.rule.startswith("return_to_work_premium")]
    assert premium.amount == D("2000.00")
