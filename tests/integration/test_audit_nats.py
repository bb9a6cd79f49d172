"""The audit service over a real nats-server running the generated parties configuration.

The auditors' questions (``reintegration.audit.<question>``) are answered from the same stores as the CLI's
auditor, who asked is the account the server authenticated (not a name in the request), every answer leaves one
disclosure record, bad requests get refusals that name the field, and nobody but an auditor reaches the subjects.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from faststream import FastStream

from lab.probes import AUDITORS, EMPLOYERS, FUNDS, OHS, SERVICES, System, connect, start_system
from services.audit import Auditor
from services.audit.main import build_app
from services.disclosures.log import AUDIT_BASIS, DisclosureRecorded, build_disclosures
from shared.embedded.natsserver import EmbeddedNatsServer
from shared.infra.parties import AUDIT_PREFIX
from shared.infra.settings import Settings
from tests.integration.test_audit import apply_all, cli, jsonable, record_cases

INSPECTORATE, COURT = (f"auditor:{name}" for name in AUDITORS)
STORES = ("intake", "deadlines", "benefits")


def parties_toml(path: Path) -> Path:
    """The parties file the ``system`` fixture's server was generated from, as the audit service reads it."""
    path.write_text("dev = true\n" + "".join(
        f"{key} = {json.dumps(values)}\n" for key, values in (
            ("health_funds", FUNDS), ("occupational_health_services", OHS), ("employers", EMPLOYERS),
            ("auditors", AUDITORS), ("services", SERVICES))))
    return path


@dataclass
class Audit:
    settings: Settings
    cases: dict[str, uuid.UUID]
    url: str
    system: System | None = None

    async def ask(self, nc: nats.NATS, question: str, body: Any, **options: Any) -> dict[str, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = await nc.request(f"{AUDIT_PREFIX}.{question}", data, timeout=10, **options)
        return json.loads(reply.data)

    def records(self) -> list[DisclosureRecorded]:
        log = build_disclosures(self.settings)
        try:
            return list(log.records())
        finally:
            log.close()


def recorded_settings(tmp_path: Path) -> tuple[Settings, dict[str, uuid.UUID]]:
    settings = Settings(data_dir=tmp_path / "data")
    cases = record_cases(settings)
    apply_all(settings)
    return settings, cases


async def started(app: FastStream) -> FastStream:
    await app.start()
    return app


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """A nats-server with the generated accounts of the probe parties (and an unrestricted service-account user)."""
    running = start_system(tmp_path)
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture
async def audit(system: System, tmp_path: Path) -> AsyncIterator[Audit]:
    """Five recorded and applied cases, and the audit service connected as ``service:audit``."""
    settings, cases = recorded_settings(tmp_path)
    service = replace(settings, nats_url=system.url, nats_credentials=system.credentials["service:audit"])
    app = await started(build_app(service, parties_path=parties_toml(tmp_path / "parties.toml")))
    try:
        yield Audit(settings, cases, system.url, system)
    finally:
        await app.stop()


def fingerprint(settings: Settings) -> dict[str, str]:
    """The bytes of every store the auditor reads: the database file and its write-ahead log (a reader may create
    an empty log and the shared-memory index; neither holds data)."""
    out = {}
    for store in STORES:
        for suffix in ("", "-wal"):
            path = settings.data_dir / f"{store}.sqlite{suffix}"
            out[path.name] = hashlib.sha256(path.read_bytes() if path.exists() else b"").hexdigest()
    return out


# --------------------------------------------------------------------------------------------------- answers


async def test_an_auditor_gets_the_answers_of_the_cli_auditor_and_changes_no_store(audit: Audit) -> None:
    assert audit.system is not None
    before = fingerprint(audit.settings)
    client = await connect(audit.system, INSPECTORATE)
    nc, open_case, rehab = client.nc, audit.cases["open"], audit.cases["rehab"]
    try:
        with Auditor(audit.settings) as auditor:
            history = await audit.ask(nc, "history", {"case_id": str(open_case)})
            assert history["question"] == "history" and history["asked_by"] == INSPECTORATE
            assert history["answer"] == jsonable(auditor.history(open_case))
            assert [h["version"] for h in history["answer"]] == [1, 2, 3, 4]

            by_version = await audit.ask(nc, "asof", {"case_id": str(open_case), "version": 2})
            assert by_version["answer"] == jsonable(auditor.as_of(open_case, version=2))
            assert by_version["answer"]["recorded"]["agree"] is True
            moment = datetime.fromisoformat(history["answer"][2]["recorded_at"])
            by_time = await audit.ask(nc, "asof", {"case_id": str(open_case), "time": moment.isoformat()})
            assert by_time["answer"] == jsonable(auditor.as_of(open_case, time=moment))
            assert by_time["answer"]["version"] == 3
            known_on = date.fromisoformat(history["answer"][1]["known_on"])  # the end of that Belgian day
            by_date = await audit.ask(nc, "asof", {"case_id": str(open_case), "date": known_on.isoformat()})
            assert by_date["answer"]["version"] == 2 and by_date["answer"]["case_id"] == str(open_case)

            applied = await audit.ask(nc, "applied", {"case_id": str(audit.cases["old"]), "on": "2019-06-30"})
            assert applied["answer"] == jsonable(auditor.applied(audit.cases["old"], date(2019, 6, 30)))
            assert applied["answer"]["regime_on"] == "BE-2016"

            deadline = by_version["answer"]["deadlines"][0]["id"]
            explained = await audit.ask(nc, "explain", {"case_id": str(open_case), "item_id": deadline[:8]})
            assert explained["answer"] == jsonable(auditor.explain(open_case, deadline))
            assert explained["answer"]["id"] == deadline and explained["answer"]["legal_basis"]
            latest = auditor.as_of(rehab, version=len(auditor.history(rehab)))
            entry = latest.ledger[0]["id"]
            # every entry the benefits store recorded, reversals included: the dossier's ledger, in its order
            assert [x["id"] for x in latest.recorded_entries] == [x["id"] for x in auditor.dossier(rehab)["ledger"]]
            assert {x["id"] for x in latest.ledger} <= {x["id"] for x in latest.recorded_entries}
            explained = await audit.ask(nc, "explain", {"case_id": str(rehab), "item_id": entry})
            assert explained["answer"]["item"] == "ledger_entry" and explained["answer"]["id"] == entry

            verified = await audit.ask(nc, "verify", {"case_id": str(rehab)})
            assert verified["answer"] == jsonable(auditor.verify(rehab))
            assert verified["answer"]["status"] == "verified"

            dossier = await audit.ask(nc, "dossier", {"case_id": str(open_case)})
            expected = auditor.dossier(open_case)
        for doc in (dossier["answer"], expected):
            doc.pop("generated_at")
        assert dossier["answer"] == expected and dossier["answer"]["format"] == "reintegration.audit.dossier.v1"
        assert cli("history", str(open_case), "--json", data_dir=audit.settings.data_dir).exit_code == 0
        assert json.loads(cli("history", str(open_case), "--json", data_dir=audit.settings.data_dir).stdout) \
            == history["answer"]
    finally:
        await nc.close()
    assert fingerprint(audit.settings) == before  # read-only: only the disclosure log was written
    assert not (audit.settings.data_dir / "audit.sqlite").exists()


async def test_each_answer_is_recorded_as_asked_by_the_authenticated_auditor_not_the_name_it_gives(
    audit: Audit,
) -> None:
    assert audit.system is not None
    case = audit.cases["closed"]
    court = await connect(audit.system, COURT)
    try:
        # A name in the request is not part of the contract: refused, and nothing is recorded.
        forged_body = await audit.ask(court.nc, "history", {"case_id": str(case), "who": INSPECTORATE})
        assert forged_body == {"error": "Object contains unknown field `who`", "code": "invalid_field",
                               "field": "$.who", "retry": False}
        assert audit.records() == []
        # A header of its own naming another auditor is replaced by the server's.
        info = json.dumps({"acc": INSPECTORATE, "user": "forged"})
        answer = await audit.ask(court.nc, "history", {"case_id": str(case)}, headers={"Nats-Request-Info": info})
        assert answer["asked_by"] == COURT
        verdict = await audit.ask(court.nc, "verify", {"case_id": str(case)})
    finally:
        await court.nc.close()
    records = audit.records()
    assert [(r.kind, r.who, r.case_id, r.legal_basis) for r in records] == [("query", COURT, case, AUDIT_BASIS)] * 2
    assert [r.reference for r in records] == [answer["disclosure"], verdict["disclosure"]]
    assert records[0].what == f'{AUDIT_PREFIX}.history {{"case_id":"{case}"}}'
    assert records[1].what == f'{AUDIT_PREFIX}.verify {{"case_id":"{case}"}}'
    assert all(r.disclosed_at.tzinfo is not None for r in records)


async def test_bad_requests_are_refused_with_the_field_and_why_and_record_nothing(audit: Audit) -> None:
    assert audit.system is not None
    case = str(audit.cases["open"])
    client = await connect(audit.system, INSPECTORATE)
    refusals: list[tuple[str, Any, str, str | None, str]] = [
        # question, body, code, field, words in the error
        ("history", b"", "malformed", None, "empty request"),
        ("history", b"{not json", "malformed", None, "not valid JSON"),
        ("history", b"[]", "invalid_field", None, "Expected `object`, got `array`"),
        ("history", {}, "invalid_field", "$.case_id", "missing required field `case_id`"),
        ("history", {"case_id": "case-1"}, "invalid_field", "$.case_id", "Invalid UUID"),
        ("history", {"case_id": case, "version": 3}, "invalid_field", "$.version", "unknown field `version`"),
        ("history", f'{{"case_id": "{case}", "case_id": "{uuid.uuid4()}"}}'.encode(), "malformed", "$.case_id",
         "duplicate key"),
        ("history", {"case_id": case, "pad": "x" * 5000}, "malformed", None, "exceeds 4096 bytes"),
        ("asof", {"case_id": case}, "invalid_field", "$", "exactly one of time, date and version"),
        ("asof", {"case_id": case, "version": 2, "date": "2024-06-01"}, "invalid_field", "$.version",
         "(got date, version)"),
        ("asof", {"case_id": case, "time": "2024-06-03T10:00:00"}, "invalid_field", "$.time", "needs an offset"),
        ("asof", {"case_id": case, "version": 0}, "invalid_field", "$.version", "Expected `int` >= 1"),
        ("asof", {"case_id": case, "date": "3 June"}, "invalid_field", "$.date", "Invalid RFC3339"),
        ("applied", {"case_id": case, "on": 20240601}, "invalid_field", "$.on", "Expected `date | null`"),
        ("explain", {"case_id": case, "item_id": "ab"}, "invalid_field", "$.item_id", "length >= 4"),
        ("explain", {"case_id": case}, "invalid_field", "$.item_id", "missing required field `item_id`"),
        # nested deeper than any request (inside the size bound): refused, never left unanswered
        ("history", b"[" * 2000 + b"]" * 2000, "invalid_field", None, "Expected `object`, got `array`"),
        ("history", b'{"case_id": ' + b"[" * 1900 + b"]" * 1900 + b"}", "invalid_field", "$.case_id", "Expected"),
        ("asof", {"case_id": case, "version": 2**70}, "invalid_field", "$.version", "Expected `int`"),
    ]
    try:
        for question, body, code, field, words in refusals:
            reply = await audit.ask(client.nc, question, body)
            assert (reply.get("code"), reply.get("field")) == (code, field), (question, body, reply)
            assert words in reply["error"], (question, body, reply)
            assert "answer" not in reply
        for subject in ("everything", "history.all"):  # no such question: nobody answers
            with pytest.raises(nats.errors.NoRespondersError):
                await audit.ask(client.nc, subject, {"case_id": case})
        assert audit.records() == []
        # Valid in form, but nothing to answer: the stores were read, so the question is recorded, with its refusal.
        nobody = uuid.uuid4()
        reply = await audit.ask(client.nc, "history", {"case_id": str(nobody)})
        assert reply == {"error": f"no case {nobody} in the intake store", "code": "not_answerable", "field": None,
                         "retry": False}
        too_late = await audit.ask(client.nc, "asof", {"case_id": case, "version": 9})
        assert too_late["code"] == "not_answerable" and "has versions 1 to 4, not 9" in too_late["error"]
        last_day = await audit.ask(client.nc, "asof", {"case_id": case, "date": "9999-12-31"})  # asking again fails too
        assert (last_day.get("code"), last_day.get("retry")) == ("invalid_field", False), last_day
        assert last_day["field"] == "$.date" and "9999-12-31" in last_day["error"]
    finally:
        await client.nc.close()
    records = audit.records()
    assert [(r.who, r.case_id) for r in records] == [(INSPECTORATE, nobody), (INSPECTORATE, audit.cases["open"])]
    assert records[0].what.endswith(f"-> refused: no case {nobody} in the intake store")


async def test_only_auditors_reach_the_audit_subjects(audit: Audit) -> None:
    system = audit.system
    assert system is not None
    subject = f"{AUDIT_PREFIX}.history"
    body = json.dumps({"case_id": str(audit.cases["open"])}).encode()
    for party in (f"employer:{EMPLOYERS[0]}", f"health_fund:{FUNDS[0]}", f"occupational_health_service:{OHS[0]}",
                  "service:intake", "service:runtime"):
        client = await connect(system, party)
        try:
            assert not await client.publish(subject), party  # the server refuses it: a permissions violation
            with pytest.raises(nats.errors.TimeoutError):
                await client.nc.request(subject, body, timeout=0.5)
        finally:
            await client.nc.close()
    # A user of the service account with no restriction (the fixture's witness) asks without crossing an import:
    # the server sets no Nats-Request-Info and maps no reply subject, so there is no identity, whatever header the
    # client writes itself.
    witness = await nats.connect(system.url, nkeys_seed_str=system.observer_seed)
    try:
        for headers in (None, {"Nats-Request-Info": json.dumps({"acc": INSPECTORATE})}):
            reply = json.loads((await witness.request(subject, body, timeout=10, headers=headers)).data)
            assert reply["code"] == "unauthenticated", reply
            assert "did not come through an auditor's account" in reply["error"]
    finally:
        await witness.close()
    assert audit.records() == []


async def test_on_a_server_without_accounts_questions_are_answered_and_recorded_as_unauthenticated(
    nats_server: EmbeddedNatsServer, tmp_path: Path,
) -> None:
    settings, cases = recorded_settings(tmp_path)
    app = await started(build_app(replace(settings, nats_url=nats_server.url)))
    nc = await nats.connect(nats_server.url)
    try:
        audit = Audit(settings, cases, nats_server.url)
        forged = {"Nats-Request-Info": json.dumps({"acc": INSPECTORATE})}
        reply = await audit.ask(nc, "verify", {"case_id": str(cases["open"])}, headers=forged)
        assert reply["asked_by"] == "unauthenticated" and reply["answer"]["status"] == "verified"
    finally:
        await nc.close()
        await app.stop()
    [record] = audit.records()
    assert (record.who, record.case_id, record.reference) == ("unauthenticated", cases["open"], reply["disclosure"])



async def test_an_auditors_query_of_a_derived_service_is_recorded_and_the_service_accounts_own_is_not(
    system: System, tmp_path: Path,
) -> None:
    """``reintegration.query.deadlines|benefits`` as the services answer it, over the generated accounts: an
    auditor's question leaves a disclosure record (who, what, case, legal basis) before its answer; the same query
    from inside the service account (an operator's CLI) discloses nothing to a party and leaves none."""
    from faststream.nats import NatsBroker, NatsRouter

    from services.benefits.application import build_benefits
    from services.benefits.handlers import answer
    from services.disclosures.log import auditor_queries
    from shared.events.subjects import query_subject
    from shared.infra.service import attach_query

    settings, cases = recorded_settings(tmp_path)
    service = replace(settings, nats_url=system.url, nats_credentials=system.credentials["service:benefits"])
    app = build_benefits(settings)
    disclosure = auditor_queries(service, parties_path=parties_toml(tmp_path / "parties.toml"))
    router = NatsRouter()
    attach_query(router, "benefits", query_subject("benefits"), ThreadPoolExecutor(1), lambda q: answer(app, q),
                 disclosure)
    broker = NatsBroker(service.nats_servers, **service.nats_options())
    broker.include_router(router)
    stream_app = await started(FastStream(broker))
    audit = Audit(settings, cases, system.url, system)
    case = str(cases["open"])
    auditor, runtime = await connect(system, INSPECTORATE), await connect(system, "service:runtime")
    try:
        asked = json.loads((await auditor.nc.request(query_subject("benefits"), json.dumps(
            {"case_id": case}).encode(), timeout=10)).data)
        own = json.loads((await runtime.nc.request(query_subject("benefits"), json.dumps(
            {"case_id": case}).encode(), timeout=10)).data)
    finally:
        await auditor.nc.close()
        await runtime.nc.close()
        await stream_app.stop()
        disclosure.close()
        app.close()
    assert asked == own and "error" not in asked and asked["case_id"] == case
    [record] = audit.records()
    assert (record.kind, record.who, record.case_id, record.legal_basis) == ("query", INSPECTORATE, cases["open"],
                                                                            AUDIT_BASIS)
    assert record.what.startswith("reintegration.query.benefits ") and case in record.what


async def test_who_was_told_what_about_a_case_is_answered_from_the_disclosure_log_and_recorded_itself(
    audit: Audit,
) -> None:
    assert audit.system is not None
    case, other = audit.cases["open"], audit.cases["closed"]
    log = build_disclosures(audit.settings)
    try:  # what the disclosures service records for an employer's feed delivery
        for about in (case, other):
            log.record(kind="delivery", who=f"employer:{EMPLOYERS[0]}", what=f"feed.deadline.v1 on "
                       f"reintegration.employer.{EMPLOYERS[0]}.deadlines.{about}", case_id=about,
                       legal_basis="employer duties", disclosed_at=datetime(2024, 7, 1, 8, tzinfo=UTC),
                       reference=f"feed:{about}")
    finally:
        log.close()
    client = await connect(audit.system, COURT)
    try:
        asked = await audit.ask(client.nc, "history", {"case_id": str(case)})
        told = await audit.ask(client.nc, "disclosures", {"case_id": str(case)})
        refused = await audit.ask(client.nc, "disclosures", {"case_id": str(case), "who": COURT})
    finally:
        await client.nc.close()
    assert told["question"] == "disclosures" and told["asked_by"] == COURT
    records = told["answer"]["records"]
    assert [(r["kind"], r["who"], r["reference"]) for r in records] == [
        ("delivery", f"employer:{EMPLOYERS[0]}", f"feed:{case}"), ("query", COURT, asked["disclosure"])]
    assert records[1]["what"] == f'{AUDIT_PREFIX}.history {{"case_id":"{case}"}}'
    assert records[1]["legal_basis"] == AUDIT_BASIS and records[0]["disclosed_at"] == "2024-07-01T08:00:00Z"
    assert (refused["code"], refused["field"]) == ("invalid_field", "$.who")
    # the question left its own record (after its answer), and the refused one none
    after = [r for r in audit.records() if r.case_id == case]
    assert [r.reference for r in after] == [f"feed:{case}", asked["disclosure"], told["disclosure"]]
    assert after[-1].what == f'{AUDIT_PREFIX}.disclosures {{"case_id":"{case}"}}' and after[-1].who == COURT
    with Auditor(audit.settings) as auditor:  # the local auditor reads the same log
        assert jsonable(auditor.disclosures(case))["records"][:2] == records
