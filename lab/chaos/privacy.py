"""Fault scenarios S2 (medical data to employers) and S4 (unlogged disclosure), over the real system.

Both run the embedded runtime as ``reintegration up`` does (nats-server with the development parties' accounts,
intake, relay, deadlines, benefits, disclosures and feeds as their own processes) under the scenario's folder, and
feed it generated cases through the real intake subjects. Every field of every report that is marked
:data:`~shared.events.common.Medical` or :data:`~shared.events.common.FreeText` (found by
:func:`~shared.events.common.restricted_fields`, nested plan measures included) carries a canary string
``MEDCANARY-<case>-<n>``, also where the generator leaves the field empty.

* **S2**: every message on the employer subjects (``reintegration.employer.>``) is read back from the DEADLINES
  and BENEFITS streams, and every employer replays its own feed with its own credentials (what it is delivered):
  0 canaries may appear in a subject, a header or a payload, and each employer must receive exactly the messages
  on its subjects. The intake store must show that the canaries were recorded in every restricted field of every
  report type that has one (coverage: a type never exercised fails the scenario). Then the schema check: no
  feed type (``FEED_TYPES``) has a medical or free-text field, by the type information and by the JSON schema,
  and no restricted field name of any report type is a field of a feed type.
* **S4**: after employer deliveries, auditors ask questions through the ``reintegration audit`` commands (the CLI
  path that records each query). Every delivery and every query must leave exactly one disclosure record with
  who, what, legal basis and when, none of which holds a canary.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from lab.chaos.report import Row, scenario
from lab.generator import Generator, Script, Step
from shared.events import reports as r
from shared.events.common import FREE_TEXT_KEY, MEDICAL_KEY, restricted_fields
from shared.events.feed import FEED_TYPES, AnyFeedMessage
from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM, EMPLOYER_FEED_PREFIX
from shared.infra.settings import Settings

CANARY_PREFIX = "MEDCANARY"
#: The seed whose 25 employers are in ``deploy/parties.dev.toml``: each has credentials to replay its own feed.
SEED = 2026
FEED_STREAMS = (DEADLINES_STREAM, BENEFITS_STREAM)
S2_CASES, S2_QUICK_CASES = 10_000, 250
S4_DELIVERIES, S4_QUICK_DELIVERIES = 1_000, 50
S4_QUERIES, S4_QUICK_QUERIES = 1_000, 50


# --- canaries -----------------------------------------------------------------------------------------------------


def restricted_report_types() -> list[type[r.Report]]:
    """The report types with at least one medical or free-text field (nested ones included)."""
    return [cls for cls in r.REPORT_TYPES if restricted_fields(cls)]


def plant(obj: Any, canary: str) -> Any:
    """``obj`` with ``canary`` in every medical or free-text field, also inside nested structs and lists."""
    if not isinstance(obj, msgspec.Struct):
        return obj
    changes: dict[str, Any] = {}
    for name in restricted_fields(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, (list, tuple)):
            changes[name] = type(value)(plant(item, canary) for item in value)
        elif isinstance(value, msgspec.Struct):
            changes[name] = plant(value, canary)
        else:
            changes[name] = canary
    return msgspec.structs.replace(obj, **changes) if changes else obj


def restricted_values(obj: Any) -> list[Any]:
    """The values of every medical or free-text leaf field of ``obj`` (the fields :func:`plant` fills)."""
    if not isinstance(obj, msgspec.Struct):
        return []
    out: list[Any] = []
    for name in restricted_fields(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, (list, tuple)):
            for item in value:
                out += restricted_values(item) if isinstance(item, msgspec.Struct) else [item]
        elif isinstance(value, msgspec.Struct):
            out += restricted_values(value)
        else:
            out.append(value)
    return out


def canary_scripts(count: int, generator: Generator | None = None, start: int = 0) -> list[Script]:
    """``count`` generated cases (the next ones of ``generator``, numbered from ``start``) with a canary of their
    own in every restricted field of every report."""
    generator = generator or Generator(SEED)
    scripts = []
    for index in range(start, start + count):
        script = generator.script()
        canary = f"{CANARY_PREFIX}-{index:06d}-{random.Random(index).getrandbits(32):08x}"
        script.opening = plant(script.opening, canary)
        script.steps = [
            Step(step.party, lambda c, build=step.build, canary=canary: plant(build(c), canary), step.expect,
                 step.label)
            for step in script.steps
        ]
        scripts.append(script)
    return scripts


def canaries_in(value: Any) -> bool:
    data = value if isinstance(value, bytes) else str(value).encode()
    return CANARY_PREFIX.encode() in data


# --- the schema check ---------------------------------------------------------------------------------------------


def schema_markers(schema: Any, path: str = "$") -> list[str]:
    """Paths in a JSON schema where a field is marked medical or free text."""
    out: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in (MEDICAL_KEY, FREE_TEXT_KEY) and value:
                out.append(f"{path}.{key}")
            else:
                out += schema_markers(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            out += schema_markers(value, f"{path}[{index}]")
    return out


def restricted_leaf_names(cls: type[msgspec.Struct]) -> set[str]:
    """Names of the medical or free-text fields of ``cls`` and of the structs nested in it."""
    out: set[str] = set()

    def walk(t: Any) -> None:
        if isinstance(t, msgspec.inspect.StructType):
            restricted = restricted_fields(t.cls)
            for f in t.fields:
                if f.name in restricted:
                    before = len(out)
                    walk(f.type)
                    if len(out) == before:
                        out.add(f.name)  # a leaf: the marked string itself
        elif isinstance(t, msgspec.inspect.Metadata):
            walk(t.type)
        elif isinstance(t, msgspec.inspect.UnionType):
            for member in t.types:
                walk(member)
        elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.TupleType, msgspec.inspect.FrozenSetType)):
            walk(t.item_type)

    walk(msgspec.inspect.type_info(cls))
    return out


def feed_field_names() -> set[str]:
    names: set[str] = set()
    for cls in FEED_TYPES:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        names |= {f.name for f in info.fields}
    return names


@dataclass
class SchemaCheck:
    feed_types: int
    #: restricted fields of a feed type by the type information (must be none)
    feed_restricted: dict[str, list[str]]
    #: medical / free-text markers anywhere in the feed messages' JSON schema (must be none)
    feed_markers: list[str]
    #: report types whose schema holds markers, and the report types with restricted fields (must agree)
    report_types_marked: list[str]
    report_types_restricted: list[str]
    #: per report type: its restricted field names that are also feed fields (must be none)
    shared_names: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return (not any(self.feed_restricted.values()) and not self.feed_markers
                and self.report_types_marked == self.report_types_restricted and bool(self.report_types_marked)
                and not any(self.shared_names.values()))


def schema_check() -> SchemaCheck:
    feed_names = feed_field_names()
    return SchemaCheck(
        feed_types=len(FEED_TYPES),
        feed_restricted={cls.__name__: sorted(restricted_fields(cls)) for cls in FEED_TYPES},
        feed_markers=schema_markers(msgspec.json.schema(AnyFeedMessage)),
        report_types_marked=sorted(r.tag_of(cls) for cls in r.REPORT_TYPES if schema_markers(msgspec.json.schema(cls))),
        report_types_restricted=sorted(r.tag_of(cls) for cls in restricted_report_types()),
        shared_names={r.tag_of(cls): sorted(restricted_leaf_names(cls) & feed_names) for cls in r.REPORT_TYPES},
    )


# --- the running system -------------------------------------------------------------------------------------------


@dataclass
class FeedMessage:
    stream: str
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes

    @property
    def msg_id(self) -> str:
        return self.headers.get("Nats-Msg-Id") or f"{self.subject}:{self.seq}"

    @property
    def enterprise(self) -> str:
        return self.subject.split(".")[2]


@dataclass
class Fed:
    reports: int = 0
    accepted: int = 0
    surprises: list[str] = field(default_factory=list)


@contextlib.contextmanager
def running_system(workdir: Path) -> Iterator[Any]:
    """The embedded runtime under ``workdir`` (random loopback port), stopped on exit, children by their pid."""
    from reintegration.runtime import Runtime

    runtime = Runtime(Settings(data_dir=workdir / "data"), nats_port=0)
    try:
        runtime.start()
        runtime.wait_ready(timeout=60)
        yield runtime
    finally:
        runtime.stop()


def feed_scripts(runtime: Any, scripts: list[Script], fed: Fed) -> None:
    from lab.demo import feed

    tally = asyncio.run(feed(runtime.settings.nats_url, scripts, concurrency=16, **runtime.settings.nats_options()))
    fed.accepted += tally.accepted
    fed.reports += tally.accepted + sum(tally.rejected.values())
    fed.surprises += tally.surprises


def settle(runtime: Any, timeout: float) -> bool:
    """Until deadlines and benefits have applied every recorded event (and every past-due timer fired), and both
    relays have published everything their stores hold."""
    from lab.bench.derived import StoreProbe
    from lab.demo import wait_for_derived

    if not wait_for_derived(runtime.settings, runtime, timeout=timeout):
        return False
    deadline = time.monotonic() + timeout
    probes = {name: StoreProbe(runtime.settings.data_dir / f"{name}.sqlite") for name in ("deadlines", "benefits")}
    streams = {"deadlines": DEADLINES_STREAM, "benefits": BENEFITS_STREAM}
    try:
        calm = 0
        while time.monotonic() < deadline:
            runtime.supervise_once()
            behind = [n for n, p in probes.items() if p.tracking(f"relay:{n}->{streams[n]}") < p.last_position()]
            calm = calm + 1 if not behind else 0
            if calm >= 2:
                return True
            time.sleep(0.25)
        return False
    finally:
        for probe in probes.values():
            probe.close()


async def employer_messages(settings: Settings) -> list[FeedMessage]:
    """Every message on ``reintegration.employer.>`` in DEADLINES and BENEFITS, in stream order."""
    import nats
    import nats.js.errors

    nc = await nats.connect(settings.nats_url, **settings.nats_options())
    out: list[FeedMessage] = []
    try:
        js = nc.jetstream()
        for stream in FEED_STREAMS:
            seq = 1
            while True:
                try:
                    msg = await js.get_msg(stream, seq, subject=f"{EMPLOYER_FEED_PREFIX}.>", next=True)
                except nats.js.errors.NotFoundError:
                    break
                assert msg.seq is not None and msg.subject is not None
                out.append(FeedMessage(stream, msg.seq, msg.subject, dict(msg.headers or {}), msg.data or b""))
                seq = msg.seq + 1
    finally:
        await nc.close()
    return out


async def employer_replays(settings: Settings, credentials: dict[str, Path], expected: Counter[str]
                           ) -> tuple[dict[str, list[Any]], list[str]]:
    """Each employer with credentials replays its own feed in both streams, as itself, until it holds what the
    streams hold for it and its consumer has nothing pending. (messages by employer, employers without
    credentials)."""
    import nats.errors

    from shared.infra.parties import connect_as, open_feed

    received: dict[str, list[Any]] = {}
    missing = sorted(e for e in expected if f"employer:{e}" not in credentials)
    for enterprise in sorted(e for e in expected if f"employer:{e}" in credentials):
        nc = await connect_as(credentials[f"employer:{enterprise}"], settings.nats_url)
        got: list[Any] = []
        try:
            for stream in FEED_STREAMS:
                sub = await open_feed(nc, enterprise, stream, consumer="replay", reset=True)
                while (await sub.consumer_info()).num_pending:
                    try:
                        batch = await sub.fetch(200, timeout=5)
                    except (TimeoutError, nats.errors.TimeoutError):
                        break  # pending yet nothing came: counted as lost below
                    for msg in batch:
                        got.append(msg)
                        await msg.ack()
        finally:
            await nc.close()
        received[enterprise] = got
    return received, missing


def intake_coverage(settings: Settings) -> tuple[Counter[str], int, int]:
    """From the intake store: accepted events per restricted report type whose every restricted field holds a
    canary; canary fields recorded; restricted fields recorded without one."""
    from reintegration.operate import intake_log

    covered: Counter[str] = Counter()
    planted = unplanted = 0
    for _position, event in intake_log(settings):
        values = restricted_values(event.report)
        if not values:
            continue
        good = [v for v in values if isinstance(v, str) and v.startswith(CANARY_PREFIX)]
        planted += len(good)
        unplanted += len(values) - len(good)
        if len(good) == len(values):
            covered[r.tag_of(event.report)] += 1
    return covered, planted, unplanted


# --- S2 -----------------------------------------------------------------------------------------------------------


@scenario("S2", "medical data to employers")
def medical_data_to_employers(workdir: Path, quick: bool) -> Row:
    cases = S2_QUICK_CASES if quick else S2_CASES
    started = time.monotonic()
    fed = Fed()
    schema = schema_check()
    with running_system(workdir) as runtime:
        feed_scripts(runtime, canary_scripts(cases), fed)
        settled = settle(runtime, timeout=120 + cases * 0.1)
        messages = asyncio.run(employer_messages(runtime.settings))
        expected = Counter(m.enterprise for m in messages)
        replays, no_credentials = asyncio.run(employer_replays(runtime.settings, runtime.credentials, expected))
        covered, planted, unplanted = intake_coverage(runtime.settings)
    leaked = [m for m in messages if canaries_in(m.data) or canaries_in(m.subject) or canaries_in(m.headers)]
    delivered = [msg for got in replays.values() for msg in got]
    leaked_delivered = [m for m in delivered if canaries_in(m.data) or canaries_in(m.subject)
                        or canaries_in(m.headers or {})]
    undecodable = 0
    for m in messages:
        try:
            msgspec.json.decode(m.data, type=AnyFeedMessage)
        except msgspec.MsgspecError:
            undecodable += 1
    lost = doubled = foreign = 0
    for enterprise, got in replays.items():
        ids = Counter((m.headers or {}).get("Nats-Msg-Id") or f"{m.subject}:{m.metadata.sequence.stream}" for m in got)
        want = {m.msg_id for m in messages if m.enterprise == enterprise}
        lost += len(want - set(ids))
        doubled += sum(n - 1 for n in ids.values() if n > 1)
        foreign += sum(1 for m in got if m.subject.split(".")[2] != enterprise)
    needed = {r.tag_of(cls) for cls in restricted_report_types()}
    uncovered = sorted(needed - set(covered))
    passed = (settled and not leaked and not leaked_delivered and not uncovered and not unplanted and not undecodable
              and not lost and not doubled and not foreign and not no_credentials and bool(messages)
              and schema.ok and not fed.surprises)
    detail = (
        f"{cases:,} cases, {fed.reports:,} reports ({fed.accepted:,} accepted), {planted:,} canary fields recorded "
        f"in {len(covered)}/{len(needed)} report types with medical or free-text fields"
        f"{' (never exercised: ' + ', '.join(uncovered) + ')' if uncovered else ''}; {len(messages):,} messages on "
        f"employer subjects, {len(delivered):,} replayed by {len(replays)} employers with their own credentials: "
        f"{len(leaked) + len(leaked_delivered)} canaries; feed schema: {schema.feed_types} types, "
        f"{len(schema.feed_markers)} medical/free-text markers, "
        f"{sum(len(v) for v in schema.shared_names.values())} report restricted field names in the feed"
        f"{'' if settled else '; NOT SETTLED in time'}{'' if not fed.surprises else f'; {len(fed.surprises)} surprising replies'}"
        f"{'; employers without credentials: ' + ', '.join(no_credentials) if no_credentials else ''}"
        f"; {time.monotonic() - started:.0f} s"
    )
    return Row(
        id="S2", title="medical data to employers", faults=planted, sent=fed.reports, lost=lost, doubled=doubled,
        recover_s=None, pass_figure="0 canaries delivered; 0 medical fields in the feed schema", passed=passed,
        detail=detail,
        extra={"cases": cases, "canary_fields": planted, "covered": dict(covered), "needed": sorted(needed),
               "uncovered": uncovered, "unplanted": unplanted, "employer_messages": len(messages),
               "delivered": len(delivered), "employers": len(replays), "leaked": len(leaked),
               "leaked_delivered": len(leaked_delivered), "undecodable": undecodable, "foreign": foreign,
               "no_credentials": no_credentials, "settled": settled, "surprises": fed.surprises[:10],
               "schema_ok": schema.ok, "feed_markers": schema.feed_markers,
               "feed_restricted": schema.feed_restricted, "shared_names": schema.shared_names,
               "report_types_marked": schema.report_types_marked},
    )


# --- S4 -----------------------------------------------------------------------------------------------------------

#: The auditor questions S4 asks, in turn, each about a random case.
QUERY_COMMANDS: tuple[tuple[str, ...], ...] = (("history",), ("applied",), ("asof", "--version", "1"), ("verify",))


def ask_auditor(data_dir: Path, command: tuple[str, ...], case_id: str, auditor: str) -> int:
    """One ``reintegration audit <command> CASE`` as its process runs it (argv included, which the query record
    names), in this process; its exit code."""
    from typer.testing import CliRunner

    from reintegration.cli import app

    args = ["audit", command[0], case_id, *command[1:], "--data-dir", str(data_dir)]
    saved = sys.argv
    sys.argv = ["reintegration", *args]
    try:
        result = CliRunner().invoke(app, args, env={"REINTEGRATION_AUDITOR": auditor})
    finally:
        sys.argv = saved
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code


def disclosure_records(settings: Settings) -> list[Any]:
    from services.disclosures.log import build_disclosures

    log = build_disclosures(settings)
    try:
        return list(log.records())
    finally:
        log.close()


def _has_canary(record: Any) -> bool:
    return any(canaries_in(getattr(record, name)) for name in ("who", "what", "legal_basis", "reference"))


@scenario("S4", "unlogged disclosure")
def unlogged_disclosure(workdir: Path, quick: bool) -> Row:
    from services.disclosures.log import AUDIT_BASIS, EMPLOYER_BASIS

    target = S4_QUICK_DELIVERIES if quick else S4_DELIVERIES
    queries = S4_QUICK_QUERIES if quick else S4_QUERIES
    started = time.monotonic()
    began = datetime.now(UTC)
    fed = Fed()
    rng = random.Random(SEED)
    failures: list[str] = []
    with running_system(workdir) as runtime:
        settings = runtime.settings
        messages: list[FeedMessage] = []
        fed_cases, batch = 0, (60 if quick else 400)
        generator = Generator(SEED)
        settled = True
        while len(messages) < target and fed_cases < 50 * target:
            feed_scripts(runtime, canary_scripts(batch, generator, start=fed_cases), fed)
            fed_cases += batch
            settled = settle(runtime, timeout=120 + batch * 0.1)
            messages = asyncio.run(employer_messages(settings))
        # The recorder has seen every delivery once its two consumers have nothing pending.
        deadline = time.monotonic() + 120
        while len([x for x in disclosure_records(settings) if x.kind == "delivery"]) < len(messages):
            if time.monotonic() > deadline:
                break
            runtime.supervise_once()
            time.sleep(0.5)
        cases = sorted({str(e.case_id) for e in _opened_cases(settings)})
        asked: list[tuple[str, str, tuple[str, ...]]] = []
        for index in range(queries):
            command = QUERY_COMMANDS[index % len(QUERY_COMMANDS)]
            case_id, auditor = rng.choice(cases), f"inspector-{index:04d}"
            code = ask_auditor(settings.data_dir, command, case_id, auditor)
            if code != 0:
                failures.append(f"audit {' '.join(command)} {case_id}: exit {code}")
            asked.append((auditor, case_id, command))
        ended = datetime.now(UTC)
        records = disclosure_records(settings)
    deliveries = [x for x in records if x.kind == "delivery"]
    by_reference = Counter(x.reference for x in deliveries)
    delivery_lost = sum(1 for m in messages if m.msg_id not in by_reference)
    delivery_doubled = sum(n - 1 for n in by_reference.values() if n > 1)
    by_message = {m.msg_id: m for m in messages}
    bad_deliveries = [
        x for x in deliveries
        if x.reference not in by_message
        or x.who != f"employer:{by_message[x.reference].enterprise}"
        or by_message[x.reference].subject not in x.what
        or EMPLOYER_BASIS not in x.legal_basis or not x.legal_basis.split(";")[0].strip()
        or x.disclosed_at.tzinfo is None or not began <= x.disclosed_at <= ended
        or str(x.case_id) not in by_message[x.reference].subject
    ]
    query_records = [x for x in records if x.kind == "query"]
    by_who = Counter(x.who for x in query_records)
    query_lost = sum(1 for auditor, _, _ in asked if by_who[f"auditor:{auditor}"] == 0)
    query_doubled = sum(n - 1 for n in by_who.values() if n > 1)
    wanted = {f"auditor:{a}": (case, command) for a, case, command in asked}
    bad_queries = [
        x for x in query_records
        if x.who not in wanted or str(x.case_id) != wanted[x.who][0]
        or f"audit {wanted[x.who][1][0]} {wanted[x.who][0]}" not in x.what
        or x.legal_basis != AUDIT_BASIS or x.disclosed_at.tzinfo is None or not began <= x.disclosed_at <= ended
    ]
    medical = [x for x in records if _has_canary(x)]
    lost, doubled = delivery_lost + query_lost, delivery_doubled + query_doubled
    passed = (len(messages) >= target and len(asked) == queries and not lost and not doubled and not bad_deliveries
              and not bad_queries and not medical and not failures and settled and not fed.surprises)
    detail = (
        f"{len(messages):,} employer deliveries ({fed_cases:,} cases) and {len(asked):,} auditor queries: "
        f"{len(deliveries):,} + {len(query_records):,} disclosure records, {lost} missing, {doubled} doubled, "
        f"{len(bad_deliveries) + len(bad_queries)} incomplete or wrong (who, what, basis, when), {len(medical)} with "
        f"medical content{'; ' + failures[0] if failures else ''}{'' if settled else '; NOT SETTLED in time'}; "
        f"{time.monotonic() - started:.0f} s"
    )
    return Row(
        id="S4", title="unlogged disclosure", faults=0, sent=len(messages) + len(asked), lost=lost, doubled=doubled,
        recover_s=None, pass_figure="100% of deliveries and queries leave a disclosure record (who, what, legal "
        "basis, when), none with medical content", passed=passed, detail=detail,
        extra={"deliveries": len(messages), "delivery_records": len(deliveries), "queries": len(asked),
               "query_records": len(query_records), "delivery_lost": delivery_lost, "query_lost": query_lost,
               "bad_deliveries": len(bad_deliveries), "bad_queries": len(bad_queries), "medical": len(medical),
               "failures": failures[:10], "settled": settled, "surprises": fed.surprises[:10]},
    )


def _opened_cases(settings: Settings) -> list[Any]:
    from reintegration.operate import intake_log

    return [event for _position, event in intake_log(settings) if event.version == 1]
