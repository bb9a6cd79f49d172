"""`reintegration benefits contribution`: the employer responsibility contribution from the command line, with its
rule, legal basis and thresholds, and a usage error that names the option and says why for every bad input."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from reintegration.cli import app
from shared.rulebook.benefits import ResponsibilityInput, responsibility_contribution
from tests.unit.test_benefits_builder import RB

#: Every threshold met exactly (50 staff, 3 entries, exactly 2x the sector's and 3x the private sector's inflow).
FIGURES = {
    "--enterprise": "0403170701",
    "--quarter": "2024-Q3",
    "--previous-quarter-wages": "1234567.89",
    "--staff": "50",
    "--invalidity-entries": "3",
    "--inflow-rate": "0.0060",
    "--sector-inflow-rate": "0.0030",
    "--private-sector-inflow-rate": "0.0020",
}


def contribution(*extra: str, **changes: str):
    figures = {**FIGURES, **{f"--{k.replace('_', '-')}": v for k, v in changes.items()}}
    args = ["benefits", "contribution", *(x for pair in figures.items() for x in pair), *extra]
    return CliRunner().invoke(app, args, env={"COLUMNS": "400"})


def test_a_due_contribution_is_shown_with_its_rule_basis_and_thresholds() -> None:
    result = contribution()
    assert result.exit_code == 0, result.output
    out = result.output
    assert "due: 7,716.05 EUR" in out  # 0.625% of 1,234,567.89 = 7,716.0493125
    assert "0.625% of the previous quarter's wages of 1,234,567.89 EUR" in out
    assert "employer.responsibility_contribution" in out and "BE-2022" in out
    assert "Programmawet 27 Dec 2021, amended by the law of 20 Nov 2022" in out
    for name, shown in [("staff", "50 (at least 50)"), ("invalidity_entries", "3 (at least 3)"),
                        ("sector_inflow", "0.006 (at least 0.006)"),
                        ("private_sector_inflow", "0.006 (at least 0.006)")]:
        assert f"threshold {name}" in out and f"met: {shown}" in out
    assert "not met" not in out


def test_json_gives_exact_decimals_and_agrees_with_the_library_function() -> None:
    result = contribution("--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    expected = responsibility_contribution(ResponsibilityInput(
        enterprise_number="0403170701", year=2024, quarter=3, staff=50, invalidity_entries=3,
        inflow_rate=Decimal("0.0060"), sector_inflow_rate=Decimal("0.0030"),
        private_sector_inflow_rate=Decimal("0.0020"), previous_quarter_wages=Decimal("1234567.89")), RB)
    assert out["result"]["amount"] == "7716.05" == str(expected.amount)
    assert out["result"]["explanation"] == expected.explanation
    assert (out["result"]["rule"], out["result"]["regime"], out["result"]["status"]) == (
        "employer.responsibility_contribution", "BE-2022", "C")
    assert out["result"]["percentage"] == "0.625"
    assert out["input"]["previous_quarter_wages"] == "1234567.89"  # never through a float
    assert [(t["name"], t["figure"], t["at_least"], t["met"]) for t in out["result"]["thresholds"]] == [
        ("staff", "50", "50", True), ("invalidity_entries", "3", "3", True),
        ("sector_inflow", "0.0060", "0.0060", True), ("private_sector_inflow", "0.0060", "0.0060", True)]


@pytest.mark.parametrize(
    ("changes", "unmet"),
    [
        ({"staff": "49"}, "staff"),
        ({"invalidity_entries": "2"}, "invalidity_entries"),
        ({"sector_inflow_rate": "0.0030001"}, "sector_inflow"),
        ({"private_sector_inflow_rate": "0.0020001"}, "private_sector_inflow"),
    ],
)
def test_a_contribution_not_due_says_which_threshold_failed(changes: dict[str, str], unmet: str) -> None:
    result = contribution(**changes)
    assert result.exit_code == 0, result.output  # "not due" is an answer
    assert "not due" in result.output and "due: " not in result.output and "if it were due" in result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.output.splitlines()
            if line.startswith("│ threshold ")}
    assert {name: value.split(":")[0] for name, value in rows.items()} == {
        f"threshold {name}": "not met" if name == unmet else "met"
        for name in ("staff", "invalidity_entries", "sector_inflow", "private_sector_inflow")}
    assert f"not met: {unmet};" in result.output  # the explanation names it too
    out = json.loads(contribution("--json", **changes).output)
    assert (out["result"]["due"], out["result"]["amount"], out["result"]["unmet"]) == (False, None, [unmet])


def test_before_the_rule_no_contribution_exists() -> None:
    result = contribution(quarter="2023-Q1")
    assert result.exit_code == 0, result.output
    assert "none in force" in result.output and "No responsibility contribution exists for Q1 2023" in result.output


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--previous-quarter-wages", "1234567,89", "is not a decimal number"),
        ("--previous-quarter-wages", "1234567.891", "has more than 2 decimals"),
        ("--previous-quarter-wages", "-10.00", "is negative"),
        ("--previous-quarter-wages", "Infinity", "is not a finite number"),
        ("--previous-quarter-wages", "1e27", "is too large"),
        ("--inflow-rate", "six", "is not a decimal number"),
        ("--sector-inflow-rate", "NaN", "is not a finite number"),
        ("--private-sector-inflow-rate", "-0.1", "is negative"),
        ("--quarter", "2024-Q5", "write the year and quarter as 2024-Q2"),
        ("--quarter", "Q3", "write the year and quarter as 2024-Q2"),
        ("--enterprise", "0403170702", "not a valid Belgian enterprise number"),
        ("--staff", "-1", "greater than or equal to 0"),
        ("--invalidity-entries", "three", "valid integer"),
    ],
)
def test_bad_input_is_a_usage_error_naming_the_option(option: str, value: str, why: str) -> None:
    result = contribution(**{option.removeprefix("--").replace("-", "_"): value})
    assert result.exit_code == 2, result.output
    assert option in result.output and why in result.output


def test_a_missing_figure_is_named() -> None:
    args = ["benefits", "contribution", *(x for k, v in FIGURES.items() if k != "--staff" for x in (k, v))]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "Missing option '--staff'" in result.output


def test_help_reaches_the_sub_command_and_a_case_id_still_works_as_before() -> None:
    helped = CliRunner().invoke(app, ["benefits", "contribution", "--help"], env={"COLUMNS": "400"})
    assert helped.exit_code == 0 and "--previous-quarter-wages" in helped.output
    top = CliRunner().invoke(app, ["benefits", "--help"], env={"COLUMNS": "400"})
    assert top.exit_code == 0 and "contribution" in top.output and "--previous-quarter-wages" not in top.output
    stray = CliRunner().invoke(app, ["benefits", "not-a-case", "--staff", "3"], env={"COLUMNS": "400"})
    assert stray.exit_code == 2 and "unexpected" in stray.output
