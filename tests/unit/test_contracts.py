"""Every contract round-trips; malformed, unknown and hostile messages are refused with the field path."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import msgspec
import pytest

from shared.events import CASE_EVENT_DECODER, REPLY_DECODER, REPORT_TYPES, Accepted, CaseEvent, Rejected
from shared.events import reports as r
from shared.events.codec import MAX_REPORT_BYTES, ContractError, decode_report, encode
from shared.events.common import (
    IdentifierError,
    PartyKind,
    normalise_enterprise_number,
    normalise_insz,
    normalise_party,
    restricted_fields,
)
from shared.events.replies import RejectionCode
from tests.factories import EMPLOYER_PARTY, NOW, incapacity

CASE = uuid.UUID("0b5f8a52-3f1c-4d59-9b0d-1f2a3b4c5d6e")


def example(cls: type[r.Report]) -> r.Report:
    """A valid instance of every report type, built from its field types."""
    ins = msgspec.inspect
    values = {
        ins.UUIDType: CASE,
        ins.DateType: date(2024, 3, 1),
        ins.BoolType: True,
        ins.IntType: 19,
        ins.StrType: "text",
        ins.DecimalType: Decimal("12.5"),
    }
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    kwargs = {}
    for field in info.fields:
        t = field.type
        if isinstance(t, msgspec.inspect.Metadata):
            t = t.type
        if isinstance(t, msgspec.inspect.UnionType):
            t = next(m for m in t.types if not isinstance(m, msgspec.inspect.NoneType))
            if isinstance(t, msgspec.inspect.Metadata):
                t = t.type
        if isinstance(t, msgspec.inspect.EnumType):
            kwargs[field.name] = next(iter(t.cls))
        elif isinstance(t, msgspec.inspect.ListType):
            kwargs[field.name] = [r.PlanMeasure(kind="adapted_hours", description="free")]
        elif field.name == "decision":
            kwargs[field.name] = "A"
        elif field.name == "regime":
            kwargs[field.name] = "BE-2022"
        elif field.name == "full_time_hours":
            kwargs[field.name] = 38
        else:
            kwargs[field.name] = values[type(t)]
    return cls(**kwargs)


@pytest.mark.parametrize("cls", REPORT_TYPES, ids=lambda c: c.__struct_config__.tag)
def test_every_report_round_trips(cls: type[r.Report]) -> None:
    report = example(cls)
    assert decode_report(encode(report)) == report
    event = CaseEvent(
        case_id=CASE, version=3, event_id=uuid.uuid4(), recorded_at=NOW, reported_by=EMPLOYER_PARTY,
        regime="BE-2022", report=report,
    )
    assert CASE_EVENT_DECODER.decode(encode(event)) == event


def test_replies_round_trip() -> None:
    accepted = Accepted(report_id=CASE, case_id=CASE, version=2, event_ids=[CASE], regime="BE-2016")
    rejected = Rejected(code=RejectionCode.NOT_ELIGIBLE, message="m", field="$.received_on", rule="x", regime="BE-2022")
    assert REPLY_DECODER.decode(encode(accepted)) == accepted
    assert REPLY_DECODER.decode(encode(rejected)) == rejected


def test_every_tag_is_versioned_and_unique() -> None:
    tags = [cls.__struct_config__.tag for cls in REPORT_TYPES]
    assert len(set(tags)) == len(tags)
    assert all(isinstance(t, str) and t.endswith(".v1") for t in tags)


def _raw(**changes: object) -> bytes:
    data = msgspec.to_builtins(incapacity())
    data.update(changes)
    return msgspec.json.encode({k: v for k, v in data.items() if v is not ...})


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (_raw(mood="fine"), RejectionCode.INVALID_FIELD, "$.mood"),
        (_raw(staff_count="many"), RejectionCode.INVALID_FIELD, "$.staff_count"),
        (_raw(staff_count=-1), RejectionCode.INVALID_FIELD, "$.staff_count"),
        (_raw(start_date="10/01/2024"), RejectionCode.INVALID_FIELD, "$.start_date"),
        (_raw(cause="boredom"), RejectionCode.INVALID_FIELD, "$.cause"),
        (_raw(insz=...), RejectionCode.INVALID_FIELD, "$.insz"),
        (_raw(type="incapacity_reported.v9"), RejectionCode.UNKNOWN_TYPE, "$.type"),
        (_raw(type=...), RejectionCode.MALFORMED, "$.type"),
        (_raw(report_id="not-a-uuid"), RejectionCode.INVALID_FIELD, "$.report_id"),
        (_raw(staff_count=1e400), RejectionCode.INVALID_FIELD, "$.staff_count"),
        (b'{"type": "incapacity_reported.v1", "type": "case_closed.v1"}', RejectionCode.INVALID_FIELD, None),
        (b"[1, 2", RejectionCode.MALFORMED, None),
        (b"\xff\xfe", RejectionCode.MALFORMED, None),
        (b"[" * 5000 + b"]" * 5000, RejectionCode.MALFORMED, None),
        # ``$`` alone also matches before a final newline: the patterns must not.
        *[(msgspec.json.encode({**msgspec.to_builtins(report), name: value}), RejectionCode.INVALID_FIELD, f"$.{name}")
          for report, name, value in (
              (r.CaseClosed(report_id=uuid.uuid4(), case_id=uuid.uuid4(), closed_on=date(2024, 5, 1), reason="ab"),
               "reason", "ab\n"),
              (r.AssessmentIssued(report_id=uuid.uuid4(), case_id=uuid.uuid4(), issued_on=date(2024, 5, 1),
                                  regime="BE-2022", decision="A"), "decision", "A\n"),
              (r.AssessmentIssued(report_id=uuid.uuid4(), case_id=uuid.uuid4(), issued_on=date(2024, 5, 1),
                                  regime="BE-2022", decision="A"), "regime", "BE-2022\n"),
          )],
    ],
)
def test_bad_messages_are_refused_with_the_field(raw: bytes, code: RejectionCode, field: str | None) -> None:
    with pytest.raises(ContractError) as caught:
        decode_report(raw)
    assert caught.value.code is code
    if field is not None:
        assert caught.value.field == field


def test_nested_unknown_field_names_its_path() -> None:
    data = msgspec.to_builtins(
        r.PlanSubmitted(
            report_id=CASE, case_id=CASE, submitted_on=date(2024, 1, 1), unfitness=r.Unfitness.TEMPORARY,
            measures=[r.PlanMeasure(kind="a"), r.PlanMeasure(kind="b")],
        )
    )
    data["measures"][1]["weight"] = 3
    with pytest.raises(ContractError) as caught:
        decode_report(msgspec.json.encode(data))
    assert caught.value.field == "$.measures[1].weight"


def test_duplicate_keys_are_refused() -> None:
    raw = _raw()[:-1] + b', "staff_count": 5}'
    with pytest.raises(ContractError) as caught:
        decode_report(raw)
    assert caught.value.code is RejectionCode.MALFORMED
    assert caught.value.field == "$.staff_count"


def test_oversized_payload_is_refused_before_parsing() -> None:
    raw = _raw(diagnosis="x" * MAX_REPORT_BYTES)
    with pytest.raises(ContractError) as caught:
        decode_report(raw)
    assert caught.value.code is RejectionCode.TOO_LARGE


def test_medical_and_free_text_fields_are_marked_by_type() -> None:
    assert restricted_fields(r.IncapacityReported) == {"diagnosis"}
    assert restricted_fields(r.AssessmentIssued) == {"conditions"}
    assert restricted_fields(r.PlanSubmitted) == {"measures"}
    assert restricted_fields(r.TrajectoryRequested) == frozenset()
    schema = msgspec.json.schema(r.AssessmentIssued)
    assert schema["$defs"]["AssessmentIssued"]["properties"]["conditions"]["anyOf"][0]["x-medical"] is True


def test_identifiers_use_the_mod97_checks() -> None:
    assert normalise_insz("85.07.30-033.28") == "85073003328"
    assert normalise_enterprise_number("BE 0403.170.701") == "0403170701"
    with pytest.raises(IdentifierError, match="national number"):
        normalise_insz("85073003329")
    with pytest.raises(IdentifierError, match="enterprise number"):
        normalise_enterprise_number("0403170702")
    with pytest.raises(IdentifierError, match="health fund"):
        normalise_party(PartyKind.HEALTH_FUND, "700")


def test_stored_events_tolerate_fields_a_newer_writer_added() -> None:
    event = CaseEvent(case_id=CASE, version=1, event_id=CASE, recorded_at=NOW, reported_by=EMPLOYER_PARTY,
                      regime="BE-2022", report=incapacity())
    data = msgspec.to_builtins(event)
    data["report"]["employment_fraction"] = 0.8  # a field a later contract version added, with a default
    data["trace_id"] = "abc"
    assert CASE_EVENT_DECODER.decode(msgspec.json.encode(data)) == event
    with pytest.raises(ContractError, match="employment_fraction"):
        decode_report(msgspec.json.encode(data["report"]))  # the edge stays strict


def test_invalid_utf8_is_a_malformed_report() -> None:
    with pytest.raises(ContractError) as caught:
        decode_report(b'{"type": "case_closed.v1", "reason": "\xc3\x28"}')
    assert caught.value.code in {RejectionCode.MALFORMED, RejectionCode.INVALID_FIELD}
