"""The dead-letter record is the one reader and writer of the Reintegration-* dead-letter headers."""

from __future__ import annotations

from shared.events.dead_letters import PARKED_BEHIND, DeadLetterRecord

#: Headers as every release so far wrote them (a letter parked behind an earlier one, and a poison letter).
STORED_BEHIND = {
    "Nats-Msg-Id-Was-Removed": "x",
    "Reintegration-Original-Subject": "reintegration.trajectory.0f9d1a4e-7a43-4b8e-9a51-0b1b7c1f2e3d.plan_submitted.3",
    "Reintegration-Error": "its case is parked behind an earlier dead-lettered event",
    "Reintegration-Deliveries": "1",
    "Reintegration-Stream-Sequence": "42",
    "Reintegration-Case-Id": "0f9d1a4e-7a43-4b8e-9a51-0b1b7c1f2e3d",
    "Reintegration-Case-Version": "3",
    "Reintegration-Letter-Id": "5d2c3b4a-1111-4222-8333-944455566677",
}
STORED_POISON_WITHOUT_ID = {
    "Reintegration-Original-Subject": "reintegration.trajectory.garbage",
    "Reintegration-Error": "DecodeError('Input data was truncated')",
    "Reintegration-Deliveries": "5",
    "Reintegration-Stream-Sequence": "",
    "Reintegration-Case-Id": "",
    "Reintegration-Case-Version": "",
}


def test_a_letter_parked_behind_reads_as_such_and_writes_the_same_headers() -> None:
    record = DeadLetterRecord.from_headers(STORED_BEHIND)
    assert record.behind and record.error == PARKED_BEHIND
    assert (record.deliveries, record.stream_sequence, record.case_version) == (1, 42, 3)
    assert record.case_id == "0f9d1a4e-7a43-4b8e-9a51-0b1b7c1f2e3d"
    assert record.letter_id == "5d2c3b4a-1111-4222-8333-944455566677"
    written = {k: v for k, v in STORED_BEHIND.items() if k.startswith("Reintegration-")}
    assert record.to_headers() == written
    assert list(record.to_headers()) == list(written)  # and in the same order


def test_a_poison_letter_without_an_id_reads_with_nothing_made_up() -> None:
    record = DeadLetterRecord.from_headers(STORED_POISON_WITHOUT_ID)
    assert not record.behind and record.error.startswith("DecodeError")
    assert (record.deliveries, record.stream_sequence, record.case_id, record.case_version, record.letter_id) == (
        5, None, None, None, None)
    assert record.to_headers() == STORED_POISON_WITHOUT_ID


def test_parked_behind_is_a_field_written_as_the_stored_text() -> None:
    poison = DeadLetterRecord(original_subject="s", error="ValueError('x')", deliveries=0, letter_id="id")
    behind = poison.parked_behind()
    assert behind.behind and not poison.behind
    assert behind.to_headers()["Reintegration-Error"] == PARKED_BEHIND
    assert DeadLetterRecord.from_headers(behind.to_headers()) == behind


def test_a_long_error_is_cut_and_missing_headers_read_as_none() -> None:
    assert len(DeadLetterRecord(original_subject="s", error="x" * 5000).to_headers()["Reintegration-Error"]) == 1000
    empty = DeadLetterRecord.from_headers(None)
    assert empty == DeadLetterRecord(original_subject="", error="")
