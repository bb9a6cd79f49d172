"""F1 hostile input: per intake subject (a health fund, an occupational health service, an employer, each with
its own credentials) schema-generated reports, most of them then mutated, plus deep nesting, 1 MiB strings,
oversized payloads and broken bytes, through the real ``reintegration serve intake`` process on a real
nats-server. Every hostile message must get a clear rejection (code, message, the field path where one field is
at fault), the intake must never crash or fall silent, and the store must hold exactly the reports that were
valid, each once."""

from __future__ import annotations

import asyncio
import random
import shutil
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

from lab.chaos.report import Row, scenario
from lab.chaos.system import (
    EMPLOYER,
    FUND,
    OHS,
    PARTIES,
    TODAY,
    credentials_name,
    seed_cases,
    start_runtime,
    store_count,
)
from shared.events import reports as r
from shared.events.common import Party, PartyKind
from shared.events.replies import REPLY_DECODER, Accepted, Rejected, RejectionCode
from shared.events.subjects import intake_subject
from shared.infra.retry import Backoff
from shared.infra.settings import Settings

# ================================================================================================ F1 hostile input

_INFO = {cls: msgspec.inspect.type_info(cls) for cls in r.REPORT_TYPES}
_TEXT = "abcdefghijklmnopqrstuvwxyz ÀéïøßĳŒ€漢字🙂"
_SHORT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
_REGIMES = ["BE-2016", "BE-2022", "BE-2026", "NL-2002"]


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
            length = rng.randint(t.min_length or 0, min(t.max_length or 60, 60))
            return "".join(rng.choice(_TEXT) for _ in range(length))
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
            backoff = Backoff(first=0.2, cap=1.0)
            for _attempt in range(1 if message.hostile else 5):
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
                await asyncio.sleep(backoff.next())
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
    runtime = start_runtime(data_dir, ("intake",))
    settings = runtime.settings
    url = settings.nats_url
    creds = {kind: runtime.credentials[credentials_name(p)] for kind, p in PARTIES.items()}
    tallies = {kind: Tally() for kind in PARTIES}
    try:
        async def seed() -> list[uuid.UUID]:
            conns = {kind: await connect_as(creds[kind], url) for kind in PARTIES}
            try:
                return await seed_cases(conns, 20 if quick else 200, 2026)
            finally:
                for nc in conns.values():
                    await nc.close()

        cases = asyncio.run(seed())
        events_before, top_before = store_count(settings)
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
        alive = runtime.children["intake"].running
    finally:
        runtime.stop()
    events_after, _top_after = store_count(settings)
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
               "resends": resends, "crashes": total.crashes, "no_reply": dict(total.no_reply), "alive": alive,
               "replies": dict(total.replies),
               "categories": dict(total.by_category), "lost": lost, "unexpected_stored": unexpected,
               "per_subject": per_subject},
    )


