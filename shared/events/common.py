"""Building blocks shared by every contract: base structs, identifiers, parties and field markers.

Every message is a frozen, keyword-only, tagged ``msgspec.Struct``. Fields that carry medical content or free
text are annotated with :data:`Medical` or :data:`FreeText`; :func:`restricted_fields` finds them by inspecting
the type, so a feed for employers can leave them out by construction instead of by a list kept by hand.
"""

from __future__ import annotations

import enum
import functools
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from stdnum.be import bis, nn, vat

CONTRACT_VERSION = 1

#: JSON-schema extension keys that mark a field as restricted (never sent to an employer).
MEDICAL_KEY = "x-medical"
FREE_TEXT_KEY = "x-free-text"

Medical = Annotated[
    str,
    msgspec.Meta(
        max_length=4000,
        description="Medical content: never leaves the case file towards an employer.",
        extra_json_schema={MEDICAL_KEY: True},
    ),
]
FreeText = Annotated[
    str,
    msgspec.Meta(
        max_length=4000,
        description="Free text: may hold anything, so it is treated like medical content.",
        extra_json_schema={FREE_TEXT_KEY: True},
    ),
]
ShortCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$(?!\n)")]
#: Hours a week, exact to the hundredth (Belgian part-time schedules are often 7.6 or 30.4 hours): a JSON number or a
#: decimal string; the bounds (0 to 168, at most 2 decimals) are checked by intake, which names the field.
Hours = Annotated[Decimal, msgspec.Meta(description="hours a week, 0 to 168, at most 2 decimals (e.g. 30.4)")]
FullTimeHours = Annotated[Decimal, msgspec.Meta(
    description="hours of a full-time week at the employer, above 0 to 60, at most 2 decimals (e.g. 37.5)")]
StaffCount = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
#: Euro a day, cents (e.g. 72.35); bounds are checked by the Case (0 < amount <= 1000).
DailyAmount = Annotated[Decimal, msgspec.Meta(
    description="euro a day, more than 0 and at most 1000, at most 2 decimals (e.g. 72.35)")]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]

#: The Belgian health funds' national unions (landsbonden / unions nationales), by their RIZIV code.
HEALTH_FUNDS: dict[str, str] = {
    "100": "Christelijke Mutualiteit / Mutualité chrétienne",
    "200": "Neutrale ziekenfondsen / Mutualités neutres",
    "300": "Socialistische mutualiteiten / Solidaris",
    "400": "Liberale mutualiteiten / Mutualités libérales",
    "500": "Onafhankelijke ziekenfondsen / Mutualités libres",
    "600": "Hulpkas voor ziekte- en invaliditeitsverzekering / CAAMI",
    "900": "Kas der geneeskundige verzorging van HR Rail / Caisse des soins de santé de HR Rail",
}


class Struct(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """Base of the contracts: frozen and keyword-only.

    Strict at the edge, tolerant inside: :func:`shared.events.codec.decode_report` refuses unknown fields in what a
    party sends, while stored and streamed events decode with unknown fields ignored, so that a newer writer (a new
    field with a default) never turns an older reader's events into poison.
    """


class PartyKind(enum.StrEnum):
    """Who talks to the system. The kind and id of a reporting party come from the NATS subject it used."""

    HEALTH_FUND = "health_fund"
    OCCUPATIONAL_HEALTH_SERVICE = "occupational_health_service"
    EMPLOYER = "employer"


class Party(msgspec.Struct, frozen=True, kw_only=True):
    """A party as identified by its subject (and, with issue 5's credentials, by the server)."""

    kind: PartyKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


class IdentifierError(ValueError):
    """A national or enterprise number that fails its format or mod-97 check."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def normalise_insz(value: str, field: str = "insz") -> str:
    """Validate a Belgian national number (INSZ/NISS, including BIS numbers); return its 11 digits."""
    try:
        return nn.validate(value)
    except Exception:  # noqa: BLE001 - stdnum raises several ValidationError subclasses
        try:
            return bis.validate(value)
        except Exception as exc:  # noqa: BLE001
            raise IdentifierError(field, f"not a valid Belgian national number ({exc})") from None


def normalise_enterprise_number(value: str, field: str = "enterprise_number") -> str:
    """Validate a Belgian enterprise (KBO/BCE) number; return its 10 digits."""
    try:
        return vat.validate(value)
    except Exception as exc:  # noqa: BLE001
        raise IdentifierError(field, f"not a valid Belgian enterprise number ({exc})") from None


def normalise_health_fund(value: str, field: str = "health_fund") -> str:
    """Validate a health fund's national-union code (100, 200, ... 900)."""
    if value not in HEALTH_FUNDS:
        raise IdentifierError(field, f"unknown health fund {value!r}; expected one of {', '.join(HEALTH_FUNDS)}")
    return value


def normalise_party(kind: PartyKind, party_id: str) -> Party:
    """The canonical party for a subject's kind and id, or :class:`IdentifierError`."""
    if kind is PartyKind.HEALTH_FUND:
        return Party(kind=kind, id=normalise_health_fund(party_id, "subject.party_id"))
    return Party(kind=kind, id=normalise_enterprise_number(party_id, "subject.party_id"))


@functools.cache
def restricted_fields(cls: type[msgspec.Struct]) -> frozenset[str]:
    """Names of the fields of ``cls`` (direct, not nested) marked :data:`Medical` or :data:`FreeText`."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(field.name for field in info.fields if _is_restricted(field.type))


def _is_restricted(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.Metadata):
        extra = t.extra_json_schema or {}
        if extra.get(MEDICAL_KEY) or extra.get(FREE_TEXT_KEY):
            return True
        return _is_restricted(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_is_restricted(member) for member in t.types)
    if isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType, msgspec.inspect.SetType,
                      msgspec.inspect.FrozenSetType)):
        return _is_restricted(t.item_type)
    if isinstance(t, msgspec.inspect.TupleType):
        return any(_is_restricted(item) for item in t.item_types)
    if isinstance(t, msgspec.inspect.StructType):
        return any(_is_restricted(f.type) for f in t.fields)
    return False


def to_builtins(obj: Any) -> Any:
    """JSON-ready builtins of a contract (dates as ISO strings, decimals as strings)."""
    return msgspec.to_builtins(obj)


__all__ = [
    "CONTRACT_VERSION",
    "FREE_TEXT_KEY",
    "HEALTH_FUNDS",
    "MEDICAL_KEY",
    "FreeText",
    "FullTimeHours",
    "Hours",
    "IdentifierError",
    "Medical",
    "Party",
    "PartyKind",
    "ShortCode",
    "StaffCount",
    "Struct",
    "UtcTime",
    "date",
    "normalise_enterprise_number",
    "normalise_health_fund",
    "normalise_insz",
    "normalise_party",
    "restricted_fields",
    "to_builtins",
]
