"""The auditor's console in a real browser (Debian's Chromium, driven by Playwright) against a real system: a
nats-server with the generated accounts, the audit service, the recorded cases in SQLite stores.

What the pages show is compared with what the auditor computes from the same stores (what ``reintegration audit``
prints); every page passes axe-core's checks with no serious or critical violation; screenshots of the main pages
are kept under ``$REINTEGRATION_TEST_ARTIFACTS/console`` (default ``test-artifacts/console``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.audit import Auditor
from shared.events.envelope import event_id_for
from tests.integration.console_system import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Running, free_port, start

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: the browser tests need Debian's chromium package (.ci/run installs it)",
                allow_module_level=True)

INSPECTORATE = "auditor:inspectorate"
EMPLOYER = "employer:0403170701"
#: axe-core's impacts that fail a page
FAILING = ("serious", "critical")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    system = start(tmp_path_factory.mktemp("console"))
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def accessible(page: Any, name: str) -> None:
    """axe-core over the page as it stands: no serious or critical violation (the full result is kept)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.axe.json").write_text(json.dumps(results.response["violations"], indent=1))
    failing = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]
               if v["impact"] in FAILING]
    assert failing == [], f"{name}: {failing}"


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def rows(page: Any, table: str) -> int:
    return int(page.locator(f"table.{table} tbody tr[id]").count())


def reflows_at_200_percent(page: Any) -> bool:
    """At 200% zoom a 1280-pixel window is 640 CSS pixels wide: nothing but the charts' frames may scroll sideways."""
    page.set_viewport_size({"width": 640, "height": 900})
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.set_viewport_size({"width": 1280, "height": 900})
    return bool(fits)


# ---------------------------------------------------------------------------------------------------- the case


def test_a_case_opened_with_the_keyboard_shows_every_event_deadline_and_ledger_entry_the_auditor_gives(
    running: Running, page: Any,
) -> None:
    console = running.console(INSPECTORATE)
    page.goto(console.url)
    accessible(page, "lookup")
    shot(page, "lookup")
    for _ in range(3):  # skip link, the console's name, then the case id field
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "case_id"
    for name in ("rehab", "open"):
        case = running.cases[name]
        page.goto(console.url)
        page.focus("#case_id")
        page.keyboard.type(str(case))
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/case/{case}")
        with Auditor(running.settings) as auditor:
            history = auditor.history(case)
            now = auditor.as_of(case, version=len(history))
        assert page.locator("svg.timeline a.point").count() == rows(page, "events") == len(history) > 0
        assert page.locator("svg.deadlines a.bar").count() == rows(page, "deadlines") == len(now.deadlines)
        assert rows(page, "ledger") == len(now.recorded_entries)
        assert page.locator("table.ledger tbody tr[id]:not(.not-in-force)").count() == len(now.ledger)
        cells = page.locator("table.deadlines tbody tr td:nth-child(5)").all_inner_texts()
        assert cells == [d["due_on"] for d in now.deadlines]
        assert page.locator("#integrity .verdict strong").inner_text() == "verified"
        assert reflows_at_200_percent(page)
        accessible(page, f"case-{name}")
        shot(page, f"case-{name}")
    assert len(now.deadlines) > 0 and len(history) == 4  # the "open" case: deadlines to draw, four reports
    rehab_entries = Auditor(running.settings).as_of(running.cases["rehab"], version=5).recorded_entries
    assert any(e["amount"] is not None for e in rehab_entries)  # a ledger with money in it was shown


def test_the_disclosures_panel_lists_who_was_told_what_about_the_case(running: Running, page: Any) -> None:
    case = running.cases["closed"]
    console = running.console(INSPECTORATE)
    page.goto(f"{console.url}/case/{case}")  # asks asof, verify and disclosures: each answer leaves a record
    page.goto(f"{console.url}/case/{case}")
    with Auditor(running.settings) as auditor:
        logged = auditor.disclosures(case).records
    shown = page.locator("table.disclosures tbody tr").all_inner_texts()
    first_visit = logged[:3]  # the first visit's three answers were recorded before the second asked anything
    assert sorted(r.what.split(" ")[0] for r in first_visit) == sorted(
        f"reintegration.audit.{q}" for q in ("asof", "disclosures", "verify"))
    assert len(shown) >= 3 and all(INSPECTORATE in row for row in shown)
    assert all(any(r.what in row for row in shown) for r in first_visit)


def test_time_travel_to_before_a_late_report_shows_what_asof_gives_for_that_time(running: Running,
                                                                                page: Any) -> None:
    case = running.cases["open"]
    console = running.console(INSPECTORATE)
    with Auditor(running.settings) as auditor:
        history = auditor.history(case)
        late = next(h for h in history if h.type == "assessment_issued.v1")  # effective 2 May, recorded 3 June
        assert (late.known_on - late.effective_date).days > 7
        before = late.recorded_at - timedelta(hours=1)
        then = auditor.as_of(case, time=before)
    page.goto(f"{console.url}/case/{case}")
    assert rows(page, "events") == len(history)
    before_path = shot(page, "case-before-time-travel")
    page.focus("#known")
    page.keyboard.type(before.isoformat())
    page.keyboard.press("Enter")
    page.wait_for_url("**known=*")
    assert then.version == late.version - 1
    assert page.locator("svg.timeline a.point").count() == rows(page, "events") == then.version
    assert page.locator("#moment").inner_text().startswith(f"As known on {before:%Y-%m-%d %H:%M:%S} UTC")
    due = page.locator("table.deadlines tbody tr td:nth-child(5)").all_inner_texts()
    assert due == [d["due_on"] for d in then.deadlines]
    assert rows(page, "ledger") == len(then.recorded_entries or then.ledger)
    assert page.locator("svg.timeline line.horizon").count() == 1
    accessible(page, "case-known-then")
    after_path = shot(page, "case-after-time-travel")
    page.goto(f"{console.url}/case/{case}?applying={late.effective_date.isoformat()}")
    assert page.locator("svg.timeline a.point.dimmed").count() == sum(
        h.effective_date > late.effective_date or h.known_on > late.effective_date for h in history)
    accessible(page, "case-applying-then")
    shot(page, "case-applying-then")
    assert before_path.exists() and after_path.exists()


def test_an_event_and_a_deadline_open_from_the_case_page_with_their_recorded_content(running: Running,
                                                                                    page: Any) -> None:
    case = running.cases["open"]
    console = running.console(INSPECTORATE)
    page.goto(f"{console.url}/case/{case}")
    page.locator("svg.timeline a.point[data-version='2']").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/case/{case}/event/2")
    with Auditor(running.settings) as auditor:
        event = auditor.history(case)[1]
        deadline = auditor.as_of(case, version=4).deadlines[0]
        explained = auditor.explain(case, deadline["id"])
    assert page.locator("h1").inner_text().startswith(f"Version 2 of 4: {event.type}")
    assert str(event.report["report_id"]) in page.locator("main").inner_text()
    accessible(page, "event")
    shot(page, "event")
    page.goto(f"{console.url}/case/{case}")
    page.locator(f"#deadline-{deadline['id']} a").click()
    page.wait_for_url(f"**/item/{deadline['id']}")
    text = page.locator("main").inner_text()
    assert explained["legal_basis"] in text and explained["explanation"] in text
    accessible(page, "deadline")
    shot(page, "deadline")
    rehab = running.cases["rehab"]
    with Auditor(running.settings) as auditor:
        entry = auditor.as_of(rehab, version=5).recorded_entries[0]
    page.goto(f"{console.url}/case/{rehab}")
    page.locator(f"#entry-{entry['id']} td:nth-child(9) a").click()
    page.wait_for_url(f"**/item/{entry['id']}")
    assert page.locator("h1").inner_text() == f"Ledger entry: {entry['rule']}"
    assert entry["legal_basis"] in page.locator("main").inner_text()
    accessible(page, "ledger-entry")
    shot(page, "ledger-entry")


def test_the_dossier_downloads_as_one_self_contained_page_with_a_print_style(running: Running, page: Any) -> None:
    case = running.cases["rehab"]
    console = running.console(INSPECTORATE)
    page.goto(f"{console.url}/case/{case}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the dossier").click()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    saved = ARTIFACTS / download.value.suggested_filename  # kept, and opened as the HTML file it is
    download.value.save_as(saved)
    document = saved.read_text(encoding="utf-8")
    assert download.value.suggested_filename == f"dossier-{case}.html"
    assert "@media print" in document and "<script" not in document
    assert "http://" not in document and "https://" not in document
    with Auditor(running.settings) as auditor:
        assert all(h.event_id in document or h.type in document for h in auditor.history(case))
    page.goto(saved.resolve().as_uri())
    accessible(page, "dossier")


# ------------------------------------------------------------------------------------------- what goes wrong


def test_a_flipped_byte_in_a_stored_event_is_named_in_the_integrity_panel(running: Running, page: Any) -> None:
    case = running.cases["waiting"]
    path = running.settings.data_dir / "intake.sqlite"
    with sqlite3.connect(path) as db:
        (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id=? AND originator_version=2",
                              (case.hex,)).fetchone()
        assert state.count(b'"2024-04-11"') == 1
        db.execute("UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=2",
                   (state.replace(b'"2024-04-11"', b'"2024-04-12"'), case.hex))  # one digit: still valid JSON
    page.goto(f"{running.console(INSPECTORATE).url}/case/{case}")
    problem = page.locator("#integrity .problem").inner_text()
    assert f"case {case}" in problem and f"event {event_id_for(case, 2)}" in problem
    assert page.locator("#integrity .verdict strong").inner_text() == "broken"
    accessible(page, "integrity-broken")
    shot(page, "integrity-broken")


def test_an_employers_credentials_are_refused_by_the_server_and_the_page_says_so(running: Running,
                                                                                page: Any) -> None:
    before = len(Auditor(running.settings).disclosures(running.cases["open"]).records)
    response = page.goto(f"{running.console(EMPLOYER).url}/case/{running.cases['open']}")
    assert response.status == 403
    assert page.locator("h1").inner_text() == "The server refused these credentials"
    said = page.locator(".problem").inner_text()
    assert EMPLOYER in said and 'permissions violation for publish to "reintegration.audit.' in said
    assert len(Auditor(running.settings).disclosures(running.cases["open"]).records) == before  # nothing disclosed
    accessible(page, "refused")
    shot(page, "refused")


@pytest.mark.parametrize(("path", "status", "field", "words"), [
    ("/?case_id=case-1", 400, "case_id", "'case-1' is not a case id"),
    ("/case/{case}?known=yesterday", 400, "known", "'yesterday' is neither a day"),
    ("/case/{case}?applying=2024-02-30", 400, "applying", "'2024-02-30' is not a day"),
    ("/case/{unknown}", 404, None, "no case {unknown} in the intake store"),
    ("/case/{case}/event/9", 404, None, "has versions 1 to 4, not 9"),
    ("/case/{case}/item/zz", 400, "$.item_id", "length >= 4"),
])
def test_bad_input_and_unknown_cases_get_a_page_that_names_the_field(running: Running, page: Any, path: str,
                                                                     status: int, field: str | None,
                                                                     words: str) -> None:
    unknown = uuid.UUID(int=7)
    filled = {"case": running.cases["open"], "unknown": unknown}
    response = page.goto(running.console(INSPECTORATE).url + path.format(**filled))
    assert response.status == status
    text = page.locator("main").inner_text()
    assert words.format(**filled) in text
    if field is not None:
        assert field in text
    if path.startswith("/?"):
        assert page.get_attribute("#case_id", "aria-invalid") == "true"
    accessible(page, f"error-{status}-{field or 'none'}")


def test_an_unreachable_server_gets_a_page_that_says_so(running: Running, page: Any) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = datetime.now()
    response = page.goto(f"{running.console(INSPECTORATE, url).url}/case/{running.cases['open']}")
    assert response.status == 503 and datetime.now() - started < timedelta(seconds=10)
    assert page.locator("h1").inner_text() == "The server cannot be reached"
    assert f"the NATS server at {url} cannot be reached" in page.locator(".problem").inner_text()
    accessible(page, "unreachable")
    shot(page, "unreachable")


def test_screenshots_of_the_main_pages_are_kept() -> None:
    """Runs last in this module: the pages above left their pictures."""
    kept = {p.stem for p in ARTIFACTS.glob("*.png")}
    missing = {"lookup", "case-open", "case-before-time-travel", "case-after-time-travel", "integrity-broken",
               "refused"} - kept
    assert not missing, missing
