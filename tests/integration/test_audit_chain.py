"""Tamper evidence on real SQLite files: a changed byte, two swapped events, a deleted row, each found by verify
with the case and the event named; an encrypted store; the audit store's own checkpoints."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from eventsourcing.cipher import AESCipher

from services.audit import Auditor
from services.audit.chain import GENESIS, chain_link
from services.intake.application import build_intake
from shared.events.envelope import event_id_for
from shared.infra.settings import Settings
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, assessment, incapacity, request
from tests.integration.test_audit import apply_all, cli, record_cases, stored_rows, write_state

Recorded = tuple[Settings, dict[str, uuid.UUID]]


@pytest.fixture
def sealed(tmp_path: Path) -> Recorded:
    settings = Settings(data_dir=tmp_path / "data")
    cases = record_cases(settings)
    apply_all(settings)
    with Auditor(settings) as auditor:
        report = auditor.seal()
    assert report.anomalies == [] and report.events > 0
    return settings, cases


def _only_broken(settings: Settings, cases: dict[str, uuid.UUID], name: str) -> tuple[object, dict[str, str]]:
    with Auditor(settings) as auditor:
        report = auditor.verify_all()
        statuses = {v.case_id: v.status for v in report.verdicts}
    assert not report.ok
    assert {k: statuses[str(c)] for k, c in cases.items() if k != name} == {k: "verified" for k in cases if k != name}
    verdict = next(v for v in report.verdicts if v.case_id == str(cases[name]))
    assert verdict.status == "broken"
    [chain] = [c for c in verdict.chains if c.broken]
    return chain.broken, statuses


def test_the_chain_is_the_documented_hash_over_the_stored_bytes(sealed: Recorded) -> None:
    settings, cases = sealed
    case = cases["open"]
    link = GENESIS
    for version, topic, state in stored_rows(settings.data_dir / "intake.sqlite", case):
        link = chain_link(link, case, version, topic, state)
    with sqlite3.connect(settings.data_dir / "audit.sqlite") as db:
        (head,) = db.execute("SELECT link FROM links WHERE store='intake' AND originator_id=? ORDER BY version DESC "
                             "LIMIT 1", (str(case),)).fetchone()
    assert head == link


def test_a_changed_byte_in_one_intake_event_is_found_naming_case_and_event(sealed: Recorded) -> None:
    settings, cases = sealed
    case, path = cases["open"], settings.data_dir / "intake.sqlite"
    (state,) = (s for v, _, s in stored_rows(path, case) if v == 2)
    assert state.count(b'"2024-04-10"') == 1
    write_state(path, case, 2, state.replace(b'"2024-04-10"', b'"2024-04-11"'))  # still valid JSON: one digit
    broken, _ = _only_broken(settings, cases, "open")
    assert (broken.store, broken.case_id, broken.version, broken.kind) == ("intake", str(case), 2, "changed")
    assert broken.event_id == str(event_id_for(case, 2))
    result = cli("verify", data_dir=settings.data_dir)
    assert result.exit_code == 1
    assert f"case {case}, event {event_id_for(case, 2)} (version 2): the stored bytes differ from those sealed" \
        in result.stdout
    # the derived stores saw the original event: the recomputation says so too
    with Auditor(settings) as auditor:
        verdict = auditor.verify(case)
    assert any(d.store == "deadlines" and "report.received_on" in (d.field or "") for d in verdict.differences)


def test_two_swapped_events_are_found(sealed: Recorded) -> None:
    settings, cases = sealed
    case, path = cases["open"], settings.data_dir / "intake.sqlite"
    with sqlite3.connect(path) as db:
        for old, new in ((2, -2), (3, 2), (-2, 3)):
            db.execute("UPDATE stored_events SET originator_version=? WHERE originator_id=? AND originator_version=?",
                       (new, case.hex, old))
    broken, _ = _only_broken(settings, cases, "open")
    assert (broken.version, broken.kind, broken.event_id) == (2, "moved", str(event_id_for(case, 2)))
    assert "holds the bytes sealed for version 3 (events swapped or reordered)" in broken.message


@pytest.mark.parametrize("version", [2, 4])
def test_a_deleted_row_is_found_even_the_last_one(sealed: Recorded, version: int) -> None:
    settings, cases = sealed
    case, path = cases["open"], settings.data_dir / "intake.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM stored_events WHERE originator_id=? AND originator_version=?", (case.hex, version))
    broken, _ = _only_broken(settings, cases, "open")
    assert (broken.version, broken.kind, broken.event_id) == (version, "missing", str(event_id_for(case, version)))
    assert "sealed but no longer stored (deleted)" in broken.message


def test_a_dropped_last_step_looks_behind_to_the_recomputation_but_breaks_its_chain(sealed: Recorded) -> None:
    settings, cases = sealed
    schedule = uuid.uuid5(cases["waiting"], "deadlines")
    with sqlite3.connect(settings.data_dir / "deadlines.sqlite") as db:
        db.execute("DELETE FROM stored_events WHERE originator_id=? AND originator_version=2", (schedule.hex,))
    broken, _ = _only_broken(settings, cases, "waiting")
    assert (broken.store, broken.version, broken.kind) == ("deadlines", 2, "missing")


def test_an_encrypted_store_is_chained_over_its_ciphertext(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", cipher_key=AESCipher.create_key(16))
    intake = build_intake(settings)
    now = datetime(2024, 8, 1, 9, tzinfo=UTC)
    case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), now).case_id
    intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 10)), now)
    intake.submit(OHS_PARTY, assessment(case, date(2024, 5, 2), "BE-2022", "A"), now)
    intake.close()
    apply_all(settings)
    with Auditor(settings) as auditor:
        auditor.seal()
        assert auditor.verify(case).status == "verified"
    path = settings.data_dir / "intake.sqlite"
    (state,) = (s for v, _, s in stored_rows(path, case) if v == 3)
    flipped = bytearray(state)
    flipped[len(state) // 2] ^= 0x01
    write_state(path, case, 3, bytes(flipped))
    with Auditor(settings) as auditor:
        verdict = auditor.verify(case)
    assert verdict.status == "broken"
    [chain] = [c for c in verdict.chains if c.broken]
    assert (chain.broken.version, chain.broken.kind) == (3, "changed")
    assert verdict.differences[0].item == "version 3" and "cannot be read" in verdict.differences[0].message
    # The key still opens the store (its other events decrypt): the one damaged event is a finding, not a key error.
    result = cli("verify", str(case), data_dir=settings.data_dir, REINTEGRATION_CIPHER_KEY=settings.cipher_key or "")
    assert result.exit_code == 1 and str(event_id_for(case, 3)) in result.stdout


def test_seals_extend_chains_and_checkpoints_anchor_them(sealed: Recorded) -> None:
    settings, cases = sealed
    intake = build_intake(settings)
    intake.submit(OHS_PARTY, assessment(cases["waiting"], date(2024, 5, 3), "BE-2022", "A"),
                  datetime(2024, 9, 1, 9, tzinfo=UTC))
    intake.close()
    with Auditor(settings) as auditor:
        verdict = auditor.verify(cases["waiting"])
        assert verdict.status == "behind" and "1 event(s) recorded since the last seal" in verdict.notes
    apply_all(settings)
    result = cli("checkpoint", data_dir=settings.data_dir)
    assert result.exit_code == 0, result.output
    assert "seal #2: 3 new event(s) sealed" in result.stdout  # the event and its two derived steps
    digest = next(line.split("sha256:")[1] for line in result.stdout.splitlines() if line.startswith("digest"))
    assert cli("verify", "--checkpoint", digest, data_dir=settings.data_dir).exit_code == 0
    unknown = cli("verify", "--checkpoint", "ab" * 32, data_dir=settings.data_dir)
    assert unknown.exit_code == 1 and "matches no recorded checkpoint" in unknown.stdout
    # a forger who changes an event *and* rewrites its sealed links consistently (after dropping the guard) keeps
    # every chain intact, but changes a head: the checkpoint held outside no longer matches
    case, path = cases["waiting"], settings.data_dir / "intake.sqlite"
    rows = stored_rows(path, case)
    forged = [(v, t, s.replace(b'"2024-04-11"', b'"2024-04-12"') if v == 2 else s) for v, t, s in rows]
    write_state(path, case, 2, forged[1][2])
    link = GENESIS
    with sqlite3.connect(settings.data_dir / "audit.sqlite") as db:
        db.execute("DROP TRIGGER links_no_update")
        for version, topic, state in forged:
            link = chain_link(link, case, version, topic, state)
            db.execute("UPDATE links SET link=?, state_digest=? WHERE store='intake' AND originator_id=? AND "
                       "version=?", (link, hashlib.sha256(state).digest(), str(case), version))
    with Auditor(settings) as auditor:
        assert all(c.broken is None for c in auditor.verify(case).chains)
    result = cli("verify", "--checkpoint", digest, data_dir=settings.data_dir)
    assert result.exit_code == 1
    assert "checkpoint #1: the sealed heads now give" in result.stdout


def _tamper_version(settings: Settings, case: uuid.UUID, version: int) -> None:
    """Change one byte of a stored intake event, on SQLite or PostgreSQL."""
    if settings.store == "sqlite":
        path = settings.data_dir / "intake.sqlite"
        (state,) = (s for v, _, s in stored_rows(path, case) if v == version)
        write_state(path, case, version, state[:-2] + bytes([state[-2] ^ 1]) + state[-1:])
        return
    import psycopg

    with psycopg.connect(settings.postgres_url or "", autocommit=True) as conn:
        changed = conn.execute(
            "UPDATE intake.intake_events SET state = overlay(state placing '\\x20'::bytea from 3 for 1) "
            "WHERE originator_id = %s AND originator_version = %s", (case, version)).rowcount
    assert changed == 1


def test_verify_and_the_chains_on_each_event_store(settings: Settings) -> None:
    intake = build_intake(settings)
    now = datetime(2024, 8, 1, 9, tzinfo=UTC)
    case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), now).case_id
    intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 10)), now)
    intake.close()
    apply_all(settings)
    with Auditor(settings) as auditor:
        assert auditor.seal().events == 6
        assert auditor.verify(case).status == "verified"
    _tamper_version(settings, case, 2)
    with Auditor(settings) as auditor:
        verdict = auditor.verify(case)
    assert verdict.status == "broken"
    assert [(c.store, c.broken.version) for c in verdict.chains if c.broken] == [("intake", 2)]


def test_a_case_that_never_existed_is_not_called_tampered_but_a_deleted_sealed_case_is(sealed: Recorded) -> None:
    """An id nobody recorded gets "no such case" (the CLI's exit 2, as for history); a sealed case whose every
    intake event was deleted stays a broken chain."""
    from services.audit import AuditError

    settings, cases = sealed
    nobody = uuid.uuid4()
    with Auditor(settings) as auditor, pytest.raises(AuditError, match=f"no case {nobody}"):
        auditor.verify(nobody)
    result = cli("verify", str(nobody), data_dir=settings.data_dir)
    assert result.exit_code == 2 and "no case" in result.output and "sealed" not in result.output
    case = cases["open"]
    with sqlite3.connect(settings.data_dir / "intake.sqlite") as db:
        db.execute("DELETE FROM stored_events WHERE originator_id=?", (case.hex,))
    with Auditor(settings) as auditor:
        verdict = auditor.verify(case)
    assert verdict.status == "broken" and "sealed but no longer in the intake store" in str(verdict.differences)
