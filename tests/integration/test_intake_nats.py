"""Intake over a real nats-server: accepted, rejected and duplicate reports; a store that is busy; a restart."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import msgspec
import nats
import pytest

from services.intake.application import build_intake
from services.intake.main import build_broker, build_server
from shared.embedded.natsserver import EmbeddedNatsServer
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import until
from shared.events import REPLY_DECODER, Accepted, Rejected
from shared.events.codec import encode
from shared.events.replies import RejectionCode
from shared.events.subjects import INTAKE_PREFIX, intake_subject
from shared.infra.settings import Settings
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, assessment, incapacity, plan, request


async def ask(nc: nats.NATS, subject: str, payload: bytes) -> Accepted | Rejected:
    msg = await nc.request(subject, payload, timeout=10)
    return REPLY_DECODER.decode(msg.data)


@pytest.fixture
async def intake(nats_server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[tuple[nats.NATS, Settings]]:
    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    app = build_intake(settings, SQLITE_LOCK_TIMEOUT="1")
    broker = build_broker(settings)
    await broker.start()
    server = build_server(app, settings)
    await server.start(broker.connection)
    nc = await nats.connect(nats_server.url)
    try:
        yield nc, settings
    finally:
        await nc.close()
        await server.stop()
        await broker.stop()
        app.close()


async def test_accepted_rejected_and_duplicate_over_nats(intake: tuple[nats.NATS, Settings]) -> None:
    nc, settings = intake
    opening = incapacity(date(2024, 1, 10))
    first = await ask(nc, intake_subject(FUND_PARTY), encode(opening))
    assert isinstance(first, Accepted) and first.version == 1 and not first.duplicate
    again = await ask(nc, intake_subject(FUND_PARTY), encode(opening))
    assert isinstance(again, Accepted) and again.duplicate and again.event_ids == first.event_ids

    early = await ask(nc, intake_subject(EMPLOYER_PARTY), encode(request(first.case_id, date(2024, 4, 9))))
    assert isinstance(early, Rejected)
    assert (early.code, early.rule, early.regime, early.field, early.retry) == (
        RejectionCode.NOT_ELIGIBLE, "trajectory.request.employer", "BE-2022", "$.received_on", False,
    )
    in_time = await ask(nc, intake_subject(EMPLOYER_PARTY), encode(request(first.case_id, date(2024, 4, 10))))
    assert isinstance(in_time, Accepted) and in_time.version == 2

    data = msgspec.to_builtins(plan(first.case_id, date(2024, 5, 1)))
    data["measures"][0]["cost"] = 12
    unknown = await ask(nc, intake_subject(EMPLOYER_PARTY), msgspec.json.encode(data))
    assert isinstance(unknown, Rejected) and unknown.field == "$.measures[0].cost"

    wrong_party = await ask(nc, intake_subject(OHS_PARTY), encode(opening))
    assert isinstance(wrong_party, Rejected) and wrong_party.code is RejectionCode.NOT_ALLOWED_FOR_PARTY
    bad_subject = await ask(nc, f"{INTAKE_PREFIX}.insurer.123", encode(opening))
    assert isinstance(bad_subject, Rejected) and bad_subject.field == "subject"
    bad_id = await ask(nc, f"{INTAKE_PREFIX}.employer.0403170702", encode(opening))
    assert isinstance(bad_id, Rejected) and bad_id.code is RejectionCode.INVALID_IDENTIFIER

    app = build_intake(settings)
    assert app.recorder.max_notification_id() == 2  # accepted reports only, each once
    app.close()


async def test_bodies_the_broker_could_not_parse_still_get_a_clear_rejection(
    intake: tuple[nats.NATS, Settings],
) -> None:
    """A content-type header must not make the broker parse the body first: deep nesting, broken JSON and bad UTF-8
    each get a ``malformed`` reply from the strict codec, and nothing is stored."""
    nc, settings = intake
    for body in (b"[" * 5000 + b"]" * 5000, b'{"type": "incapacity_reported.v1", ', b"\xff\xfe{}"):
        for headers in (None, {"content-type": "application/json"}):
            reply = await nc.request(intake_subject(FUND_PARTY), body, timeout=5, headers=headers)
            rejected = REPLY_DECODER.decode(reply.data)
            assert isinstance(rejected, Rejected) and rejected.code is RejectionCode.MALFORMED, (body[:20], headers)
    app = build_intake(settings)
    assert app.recorder.max_notification_id() in (None, 0)
    app.close()


async def test_a_locked_store_gets_a_try_again_reply_and_nothing_is_lost(intake: tuple[nats.NATS, Settings]) -> None:
    nc, settings = intake
    opened = await ask(nc, intake_subject(FUND_PARTY), encode(incapacity(date(2024, 1, 10))))
    assert isinstance(opened, Accepted)
    report = encode(request(opened.case_id, date(2024, 4, 10)))
    blocker = sqlite3.connect(settings.data_dir / "intake.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        busy = await ask(nc, intake_subject(EMPLOYER_PARTY), report)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert isinstance(busy, Rejected)
    assert (busy.code, busy.retry) == (RejectionCode.STORE_UNAVAILABLE, True)
    retried = await ask(nc, intake_subject(EMPLOYER_PARTY), report)
    assert isinstance(retried, Accepted) and retried.version == 2 and not retried.duplicate


async def test_intake_process_restarted_rebuilds_cases_from_the_store(
    nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    supervisor = Supervisor(stop_timeout=10)
    supervisor.add(Child("intake", python_module("reintegration", "serve", "intake"), env=settings.to_env(),
                         log_path=tmp_path / "logs" / "intake.log"))

    async def ask_until_up(nc: nats.NATS, subject: str, payload: bytes) -> Accepted | Rejected | None:
        async def reply() -> Accepted | Rejected | None:
            supervisor.check_alive()
            try:
                return await ask(nc, subject, payload)
            except nats.errors.NoRespondersError:
                return None

        return await until(reply, timeout=10, interval=0.1, ready=lambda answer: answer is not None,
                           what="intake answers")

    nc = await nats.connect(nats_server.url)
    with supervisor:
        supervisor.start("intake")
        try:
            opening = incapacity(date(2024, 1, 10))
            opened = await ask_until_up(nc, intake_subject(FUND_PARTY), encode(opening))
            assert isinstance(opened, Accepted)
            req = request(opened.case_id, date(2024, 4, 10))
            assert isinstance(await ask(nc, intake_subject(EMPLOYER_PARTY), encode(req)), Accepted)
            supervisor.kill("intake")
            supervisor.start("intake")
            # The new process knows the case: a duplicate is recognised and the next step fits the rebuilt state.
            dup = await ask_until_up(nc, intake_subject(EMPLOYER_PARTY), encode(req))
            assert isinstance(dup, Accepted) and dup.duplicate and dup.version == 2
            issued = await ask(nc, intake_subject(OHS_PARTY),
                               encode(assessment(opened.case_id, date(2024, 5, 2), "BE-2022", "A")))
            assert isinstance(issued, Accepted) and issued.version == 3
        finally:
            await nc.close()
