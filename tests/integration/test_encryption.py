"""With a cipher key, stored events are encrypted at rest: no national number or medical text in the store files."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from eventsourcing.cipher import AESCipher

from services.benefits.application import build_benefits
from services.deadlines.application import build_deadlines
from services.intake.application import build_intake
from shared.infra.settings import Settings
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, OHS_PARTY, WORKER, assessment, incapacity, request

CANARY = "CANARYDIAGNOSISXYZ"


def test_store_files_hold_no_national_number_or_medical_text_in_clear(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", cipher_key=AESCipher.create_key(16))
    now = datetime(2024, 8, 1, 9, tzinfo=UTC)
    intake = build_intake(settings)
    case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10), diagnosis=CANARY), now).case_id
    intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 10)), now)
    intake.submit(OHS_PARTY, assessment(case, date(2024, 5, 2), "BE-2022", "A"), now)
    events = intake.case_events(case)
    assert intake.get_case(case).insz == WORKER  # decrypted on the way out
    deadlines, benefits = build_deadlines(settings), build_benefits(settings)
    for position, event in enumerate(events, start=1):
        deadlines.process(event, position, now)
        benefits.process(event, position, now)
    assert deadlines.schedule(case) is not None and benefits.ledger(case) is not None
    def scan() -> None:
        files = sorted(settings.data_dir.glob("*.sqlite*"))  # the database files and their write-ahead logs
        assert {f.name.split(".")[0] for f in files} >= {"intake", "deadlines", "benefits"}
        for file in files:
            data = file.read_bytes()
            assert WORKER.encode() not in data, file.name
            assert CANARY.encode() not in data, file.name

    scan()  # while open: the write-ahead logs too
    for app in (intake, deadlines, benefits):
        app.close()
    scan()  # after the logs were folded into the files

    plain = Settings(data_dir=tmp_path / "plain")  # the same without a key does hold them: the test can fail
    intake = build_intake(plain)
    intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10), diagnosis=CANARY), now)
    intake.close()
    assert any(WORKER.encode() in f.read_bytes() for f in plain.data_dir.glob("intake.sqlite*"))
