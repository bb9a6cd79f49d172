"""Strict decoding of inbound reports, with the traps msgspec leaves to the caller closed.

msgspec has no size limit of its own, raises ``RecursionError`` on very deep nesting, accepts duplicate keys
(last one wins) and decodes a lone tagged struct without its tag. This module bounds the payload, requires the
``type`` tag, rejects duplicate keys and unknown fields (the contract types themselves tolerate unknown fields, for
stored events), and turns every failure into a :class:`ContractError` that names the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from .replies import RejectionCode
from .reports import REPORTS_BY_TAG, AnyReport

#: Inbound reports are small; anything larger is refused before it is parsed.
MAX_REPORT_BYTES = 64 * 1024

_DECODER = msgspec.json.Decoder(AnyReport)
_PATH = re.compile(r" - at `(\$[^`]*)`$")
_NAMED = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]*)`")


class ContractError(ValueError):
    """An inbound message that does not fit the contract."""

    def __init__(self, code: RejectionCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ContractError(RejectionCode.MALFORMED, f"duplicate key {key!r} in a JSON object", field=f"$.{key}")
        seen[key] = value
    return seen


def decode_report(raw: bytes) -> AnyReport:
    """Decode one report or raise :class:`ContractError` with a code, a message and the field path."""
    if len(raw) > MAX_REPORT_BYTES:
        raise ContractError(RejectionCode.TOO_LARGE, f"report of {len(raw)} bytes exceeds {MAX_REPORT_BYTES} bytes")
    try:
        report = _DECODER.decode(raw)
    except RecursionError:
        raise ContractError(RejectionCode.MALFORMED, "JSON nested too deeply") from None
    except msgspec.ValidationError as exc:
        raise _validation_error(raw, str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ContractError(RejectionCode.MALFORMED, f"not valid JSON: {exc}") from None
    # Only accepted candidates pay for the duplicate-key and unknown-field scan (msgspec keeps the last of
    # duplicate keys, and the contract types ignore unknown fields).
    try:
        value = json.loads(raw, object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ContractError):
            raise
        raise ContractError(RejectionCode.MALFORMED, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ContractError(RejectionCode.MALFORMED, "JSON nested too deeply") from None
    if (path := unknown_field(value, _REPORT_INFO)) is not None:
        raise ContractError(RejectionCode.INVALID_FIELD, f"Object contains unknown field `{path.rsplit('.', 1)[-1]}`",
                            field=path)
    return report


_REPORT_INFO = msgspec.inspect.type_info(AnyReport)


def unknown_field(value: Any, t: msgspec.inspect.Type, path: str = "$") -> str | None:
    """The path of the first key in ``value`` (decoded JSON) that type ``t`` has no field for, else ``None``."""
    ins = msgspec.inspect
    while isinstance(t, ins.Metadata):
        t = t.type
    if isinstance(t, ins.UnionType):
        for member in t.types:
            inner = member.type if isinstance(member, ins.Metadata) else member
            if isinstance(inner, ins.StructType) and isinstance(value, dict):
                if inner.tag_field is None or value.get(inner.tag_field) == inner.tag:
                    return unknown_field(value, inner, path)
            elif isinstance(inner, (ins.ListType, ins.TupleType)) and isinstance(value, list):
                return unknown_field(value, inner, path)
        return None
    if isinstance(t, ins.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f for f in t.fields}
        for key in value:
            if key not in fields and key != t.tag_field:
                return f"{path}.{key}"
        for key, field in fields.items():
            if key in value and (found := unknown_field(value[key], field.type, f"{path}.{key}")) is not None:
                return found
        return None
    if isinstance(t, (ins.ListType, ins.TupleType)) and isinstance(value, list):
        item = t.item_type if isinstance(t, ins.ListType) else None
        for index, element in enumerate(value):
            if item is not None and (found := unknown_field(element, item, f"{path}[{index}]")) is not None:
                return found
    return None


def _validation_error(raw: bytes, text: str) -> ContractError:
    match = _PATH.search(text)
    path = match.group(1) if match else None
    message = _PATH.sub("", text)
    if (named := _NAMED.match(message)) and named.group(1) != "type":
        return ContractError(RejectionCode.INVALID_FIELD, message, field=f"{path or '$'}.{named.group(1)}")
    if path == "$.type" or message.startswith("Object missing required field `type`"):
        tag = _peek_tag(raw)
        if tag is not None and tag not in REPORTS_BY_TAG:
            return ContractError(
                RejectionCode.UNKNOWN_TYPE,
                f"unknown report type {tag!r}; known types: {', '.join(sorted(REPORTS_BY_TAG))}",
                field="$.type",
            )
        if message.startswith("Object missing required field `type`"):
            return ContractError(RejectionCode.MALFORMED, "report has no `type` tag", field="$.type")
    code = RejectionCode.INVALID_FIELD if path else RejectionCode.MALFORMED
    return ContractError(code, message, field=path)


def _peek_tag(raw: bytes) -> str | None:
    try:
        value = msgspec.json.decode(raw, type=dict[str, Any])
    except (msgspec.MsgspecError, RecursionError, UnicodeDecodeError):
        return None
    tag = value.get("type")
    return tag if isinstance(tag, str) else None


def encode(obj: Any) -> bytes:
    return msgspec.json.encode(obj)
