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


def test_the_broker_holds_no_national_number_or_medical_text_in_clear(tmp_path: Path) -> None:
    """With a key, the relay seals TRAJECTORY payloads with the stores' cipher and the embedded server encrypts its
    JetStream store; a consumer with the key reads the events, one without it is told why it cannot."""
    import asyncio

    import nats

    from services.intake.outbox import build_relay
    from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
    from shared.events.envelope import CIPHER_HEADER, SealedPayloadError, decode_case_event
    from shared.events.subjects import TRAJECTORY_STREAM, TRAJECTORY_SUBJECTS
    from shared.infra.streams import ensure_stream

    now = datetime(2024, 8, 1, 9, tzinfo=UTC)

    def run(name: str, key: str | None) -> tuple[list[bytes], list[object]]:
        settings = Settings(data_dir=tmp_path / name / "data", cipher_key=key)
        intake = build_intake(settings)
        case = intake.submit(FUND_PARTY, incapacity(date(2024, 1, 10), diagnosis=CANARY), now).case_id
        intake.submit(EMPLOYER_PARTY, request(case, date(2024, 4, 10)), now)
        server = EmbeddedNatsServer(NatsServerConfig(store_dir=tmp_path / name / "nats",
                                                     encryption_key=settings.jetstream_key),
                                    run_dir=tmp_path / name / "run")
        server.start()

        async def relay_and_read() -> list[object]:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            await ensure_stream(js, TRAJECTORY_STREAM, [TRAJECTORY_SUBJECTS])
            await build_relay(intake, js).replay(1)
            messages = [await js.get_msg(TRAJECTORY_STREAM, seq) for seq in (1, 2)]
            await nc.close()
            return messages

        try:
            messages = asyncio.run(relay_and_read())
        finally:
            server.stop()
            intake.close()
        files = [f.read_bytes() for f in (tmp_path / name).rglob("*") if f.is_file() and "data" not in f.parts]
        return files, [(m.data, m.headers, intake.mapper.cipher) for m in messages]

    key = AESCipher.create_key(16)
    files, messages = run("sealed", key)
    assert files and not any(WORKER.encode() in f or CANARY.encode() in f for f in files)
    # Neither key is written beside the store (the configuration names only the variable that carries it).
    secret = Settings(cipher_key=key).jetstream_key
    assert all(key.encode() not in f and secret.encode() not in f for f in files)  # type: ignore[union-attr]
    assert any(b"$REINTEGRATION_JETSTREAM_KEY" in f for f in files)
    for data, headers, cipher in messages:
        assert headers[CIPHER_HEADER] and WORKER.encode() not in data
        assert decode_case_event(data, headers, cipher).case_id  # the consumers' way in, with the key
        try:
            decode_case_event(data, headers, None)
        except SealedPayloadError as exc:
            assert "REINTEGRATION_CIPHER_KEY" in str(exc)
        else:
            raise AssertionError("a sealed payload opened without a key")

    files, messages = run("plain", None)  # without a key the broker holds them: the test can fail
    assert any(WORKER.encode() in f for f in files)
    assert all(CIPHER_HEADER not in (headers or {}) for _, headers, _ in messages)
