"""The dossier (escaped HTML, round-tripping JSON), the impact of a draft rulebook, and verify_all at some scale."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from lab.bench.derived import build_histories, write_intake
from services.audit import Auditor
from services.audit.dossier import events_of
from services.intake.application import build_intake
from shared.events import reports as r
from shared.infra.settings import Settings
from shared.rulebook.model import Rulebook
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, incapacity, request, rid
from tests.integration.test_audit import apply_all, cli, history_of, record_cases


class Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text += data


HOSTILE = "</td><script>alert('x')</script><img src=x onerror=\"alert(1)\">&amp; \u00e9"


def test_the_dossier_html_escapes_everything_and_the_json_round_trips(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    cases = record_cases(settings, diagnosis=HOSTILE)
    case = cases["open"]
    intake = build_intake(settings)
    intake.submit(OHS_PARTY, r.AssessmentIssued(report_id=rid(), case_id=cases["waiting"], issued_on=date(2024, 5, 3),
                                                regime="BE-2022", decision="A", conditions=HOSTILE),
                  datetime(2024, 9, 1, tzinfo=UTC))
    intake.close()
    apply_all(settings)
    page, data = tmp_path / "out" / "dossier.html", tmp_path / "out" / "dossier.json"
    for c in (case, cases["waiting"]):
        assert cli("dossier", str(c), "--out", str(page), "--html", data_dir=settings.data_dir).exit_code == 0
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower() and "<img" not in text.lower() and "onerror=\"" not in text
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text and "&amp;amp;" in text
        assert not re.search(r"https?://|@import|url\(", text, re.I)  # nothing to fetch
        parsed = Parsed()
        parsed.feed(text)
        assert parsed.tags <= {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "p", "code", "span",
                               "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "b", "br", "small"}, parsed.tags
        assert parsed.attributes <= {"lang", "charset", "http-equiv", "content", "class"}, parsed.attributes
        assert HOSTILE in parsed.text  # shown as text, exactly as reported
    text = page.read_text(encoding="utf-8")
    assert "assessment_issued.v1" in text and "trajectory.assessment" in text and "verified" in text
    assert '<span class="ok">verified</span>' in text  # the status styled by what it means
    result = cli("dossier", str(case), "--out", str(data), data_dir=settings.data_dir)
    assert result.exit_code == 0, result.output
    loaded = json.loads(data.read_text(encoding="utf-8"))
    with Auditor(settings) as auditor:
        fresh = auditor.dossier(case)
    assert {**loaded, "generated_at": None} == {**fresh, "generated_at": None}
    assert json.loads(json.dumps(loaded)) == loaded
    assert events_of(loaded) == history_of(settings, case)
    assert loaded["verification"]["status"] == "verified"
    assert {d["rule"] for d in loaded["deadlines"]} >= {"trajectory.assessment", "trajectory.plan.answer"}
    assert loaded["history"][0]["report"]["diagnosis"] == HOSTILE


def _draft(tmp_path: Path, amount: int) -> Path:
    folder = tmp_path / "draft"
    folder.mkdir(parents=True)
    source = resources.files("shared.rulebook")
    for entry in source.iterdir():
        if entry.name.startswith("be") and entry.name.endswith(".toml"):
            (folder / entry.name).write_bytes(entry.read_bytes())
    path = folder / "be-deadlines.toml"
    text = path.read_text()
    rule = re.search(r'id = "trajectory\.assessment"\nregime = "BE-2022"\n(?:.*\n)*?period = \{ amount = 49,', text)
    assert rule is not None
    path.write_text(text[: rule.end() - 3] + f"{amount}," + text[rule.end():])
    return folder / "be.toml"


def test_the_impact_of_a_draft_lists_exactly_the_affected_open_cases(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    cases = record_cases(settings)
    apply_all(settings)
    draft = _draft(tmp_path, 50)
    result = cli("impact", str(draft), "--json", data_dir=settings.data_dir)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["open_cases"] == 4  # the closed case is left out
    by_case = {c["case_id"]: c["changes"] for c in report["affected"]}
    assert set(by_case) == {str(cases["open"]), str(cases["waiting"])}
    for name, due_from, due_to in (("open", "2024-05-29", "2024-05-30"), ("waiting", "2024-05-30", "2024-05-31")):
        [change] = by_case[str(cases[name])]
        assert (change["item"], change["change"], change["rule"]) == ("deadline", "changed", "trajectory.assessment")
        assert change["fields"]["due_on"] == [due_from, due_to] and change["fields"]["amount"] == [49, 50]
    table = cli("impact", str(draft), data_dir=settings.data_dir)
    assert "2 of 4 open case(s) affected" in table.stdout and "due_on 2024-05-29 -> 2024-05-30" in table.stdout
    # counted by rule first, then each case's items by the short id `audit explain` takes, rule ids whole
    assert re.search(r"trajectory\.assessment +deadline +changed +2\n", table.stdout), table.stdout
    for name in ("open", "waiting"):
        [change] = by_case[str(cases[name])]
        assert f"case {cases[name]}" in table.stdout and change["id"][:8] in table.stdout
    narrow = cli("impact", str(draft), data_dir=settings.data_dir, COLUMNS="80").stdout
    # every line fits but a piece of the draft's path, which has no space to wrap at
    assert max(len(line) for line in narrow.splitlines() if "/" not in line) <= 80, narrow
    assert "trajectory.assessment" in narrow
    same = cli("impact", str(_draft(tmp_path / "same", 49)), "--json", data_dir=settings.data_dir)
    assert json.loads(same.stdout)["affected"] == []


def test_an_assessment_late_today_is_on_time_under_the_draft(tmp_path: Path) -> None:
    """An assessment on day 50: late under the 49 days, on time under the draft's 50; the report says both."""
    settings = Settings(data_dir=tmp_path / "data")
    intake = build_intake(settings)
    now = datetime(2024, 8, 1, 9, tzinfo=UTC)
    case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), now).case_id
    intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 10)), now)
    intake.submit(OHS_PARTY, r.AssessmentIssued(report_id=rid(), case_id=case, issued_on=date(2024, 5, 30),
                                                regime="BE-2022", decision="A"), now)
    intake.close()
    with Auditor(settings) as auditor:
        report = auditor.impact(Rulebook.from_path(_draft(tmp_path, 50)))
    [affected] = report.affected
    [change] = affected.changes
    assert change.fields["late"] == [True, False] and change.fields["due_on"] == ["2024-05-29", "2024-05-30"]


@pytest.mark.slow
def test_verify_all_over_many_cases_is_timed(tmp_path: Path) -> None:
    cases = 1000
    settings = Settings(data_dir=tmp_path / "data")
    histories = build_histories(cases)
    write_intake(settings, [e for h in histories for e in h])
    apply_all(settings)
    with Auditor(settings) as auditor:
        started = time.perf_counter()
        sealed = auditor.seal()
        seal_seconds = time.perf_counter() - started
        report = auditor.verify_all()
    events = sum(len(h) for h in histories)
    print(f"\n{cases} cases, {events} events: seal {seal_seconds:.2f} s ({sealed.events} stored events), "
          f"verify_all {report.seconds:.2f} s ({report.seconds / cases * 1000:.2f} ms per case)")
    assert report.cases == cases and report.ok, report.counts
    assert report.counts["verified"] == cases
    assert report.seconds < 120
